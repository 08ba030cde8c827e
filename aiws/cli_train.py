"""Retraining loop commands: ``aiws train``, ``aiws evaluate``, ``aiws export``.

    aiws train lung_nodules --data DIR --config FILE [--run NAME] [--runs-dir runs]
    aiws train lung_nodule_classifier --data DIR [--config FILE]   # the second stage's candidate classifier
    aiws rescore RUN --data DIR         # lung_nodules: fit the second stage (FP reduction) on tuning phantoms
    aiws rescore RUN --data DIR --classifier CLASSIFIER_RUN|VERSION   # ... with the classifier's logit
    aiws rescore RUN --data DIR --from-version N   # ... of a published version, as a new run (no training)
    aiws evaluate RUN --data DIR        # unseen phantoms, through ONNX Runtime; writes RUN/evaluation.json
    aiws evaluate --version N --task TASK --family a|b|both [--phantoms K]   # per phantom family, with the bars
    aiws export RUN                     # next version in [runtime] model_repository (triton_repo/)
    aiws dataset check --data DIR --format FORMAT   # read a dataset (training.readers): cases, skipped and why
    aiws dataset export --in DIR --out DIR --de-identify --key-out FILE   # PS3.15 Basic Profile copy
    aiws dataset pull --source AE (--query KEY=VALUE ... | --accessions FILE) --out DIR   # from the PACS, resumable

``--format`` on train/evaluate names the layout of ``--data`` (see ``training.readers.FORMATS``); each task's loop
accepts the formats in :data:`LOOP_FORMATS` (the lung loops read MSD folders; the phantom tasks take no dataset yet).

A running service picks the new version up at its next job (hot reload: versions are listed
per job; see models/runtime/repository.py). With Triton in poll mode the server loads it by itself;
in explicit mode load it with ``POST /v2/repository/models/<model>/load``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import logging
from pathlib import Path

import numpy as np

from aiws import cli_framework
from aiws.config import Config
from aiws.errors import ConfigError, NotFound
from aiws.logsetup import CONSOLE

REPOSITORY_HELP = "model repository (default: [runtime] model_repository)"
LOGGER = logging.getLogger(__name__)
#: training.readers.FORMATS keys, kept here so that building the parser imports no training code.
FORMAT_NAMES = ("dicom-seg", "msd", "luna16", "lidc", "acdc", "mnms", "orcascore", "cbis-ddsm", "vindr-mammo",
                "inbreast")

TASKS = ("lung_nodules", "lung_nodule_classifier", "coronary_ct", "cardiac_mri", "mammography")
#: Tasks trained on phantoms generated from seeds (no --data) -> their commands module
#: (``is_run``, ``train_run``, ``evaluate_run``, optionally ``export_run``), imported when used.
PHANTOM_TASKS = {"coronary_ct": "training.coronary_ct.commands", "cardiac_mri": "training.cardiac_mri.commands",
                 "mammography": "training.mammography.commands"}


#: Dataset formats each task's training/evaluation loop consumes today (it reads the folder itself).
LOOP_FORMATS: dict[str, tuple[str, ...]] = {"lung_nodules": ("msd",), "lung_nodule_classifier": ("msd",)}


def _check_format(task: str, args: argparse.Namespace) -> None:
    """Refuse a --format the task's loop cannot consume; for one it can, refuse a dataset with bad cases
    (the loop reads every case of the folder and cannot skip one), listing the reasons.

    Raises:
        ConfigError: the format is not consumed by the task's loop, or the dataset has skipped cases.
    """
    fmt = getattr(args, "format", None)
    if fmt is None:
        return
    accepted = LOOP_FORMATS.get(task, ())
    if fmt not in accepted:
        takes = f"only {', '.join(accepted)}" if accepted else "no dataset yet (it trains on phantoms)"
        raise ConfigError(f"--format {fmt}: the {task} loop takes {takes}; read the dataset with "
                          f"aiws dataset check --data DIR --format {fmt}")
    result = _read_dataset(args.data, fmt)
    if result.skipped:
        listed = "; ".join(f"{s.case_id}: {s.reason}" for s in result.skipped[:5])
        raise ConfigError(f"{args.data}: {len(result.skipped)} bad case(s) that the {task} loop cannot skip "
                          f"(remove them from the dataset): {listed}")


def _read_dataset(data: Path | None, fmt: str):  # type: ignore[no-untyped-def]
    from training.readers import DatasetError, read_dataset

    if data is None:
        raise ConfigError(f"--format {fmt}: --data DIR is required")
    try:
        return read_dataset(data, fmt)
    except DatasetError as exc:
        raise ConfigError(str(exc)) from None


def cmd_dataset_check(args: argparse.Namespace, config: Config) -> int:
    """``aiws dataset check``: read every case; one line per case and per skipped case; exit 1 when none is usable."""
    from training.readers import DatasetError, iter_dataset
    from training.readers.case import Case

    try:
        items = iter_dataset(args.data, args.format)
        n_cases = n_skipped = 0
        for item in items:
            if isinstance(item, Case):
                n_cases += 1
                CONSOLE.info(_case_line(item))
            else:
                n_skipped += 1
                CONSOLE.info(f"SKIPPED {item.case_id}: {item.reason}")
    except DatasetError as exc:
        raise ConfigError(str(exc)) from None
    CONSOLE.info(f"{args.data.name} ({args.format}): {n_cases} usable case(s), {n_skipped} skipped")
    if not n_cases:
        raise ConfigError(f"{args.data.name}: no usable {args.format} case")
    return 0


def cmd_dataset_export(args: argparse.Namespace, config: Config) -> int:
    """``aiws dataset export --de-identify``: PS3.15 Basic Profile copy of a folder (training.datasets.deidentify)."""
    if not args.de_identify:
        raise ConfigError("dataset export: --de-identify is required (no other export is offered)")
    from training.datasets.deidentify import DeidError, export

    report = args.report_out or args.key_out.with_name(f"{args.key_out.stem}.report.json")
    try:
        summary = export(args.in_dir, args.out, args.key_out, report)
    except DeidError as exc:
        raise ConfigError(str(exc)) from None
    CONSOLE.info(f"{args.out.name}: {summary.exported} file(s) de-identified, {summary.patients} patient(s) in the "
                 f"key {args.key_out.name}; {len(summary.withheld)} withheld (burned-in annotation YES or unknown, "
                 f"unreadable), listed in {report.name}")  # not here: file names in a PACS export may name patients
    return 0


def cmd_dataset_pull(args: argparse.Namespace, config: Config) -> int:
    """``aiws dataset pull``: C-FIND + C-GET/C-MOVE of studies with their SEG/SR into a dicom-seg folder."""
    from aiws.dataset_tools import PullRequest, parse_query, pull, read_accessions

    query = parse_query(args.query or [])
    accessions = read_accessions(args.accessions) if args.accessions else ()
    summary = pull(config, PullRequest(args.source, args.out, query, accessions))
    CONSOLE.info(f"{args.out.name}: {summary.fetched} stud(ies) retrieved ({summary.instances} instances), "
                 f"{summary.skipped} complete already, {summary.studies} matched")
    return 0


def _case_line(case) -> str:  # type: ignore[no-untyped-def]
    parts = [f"case {case.case_id}: image {'x'.join(map(str, case.image.shape))}",
             "spacing " + "x".join(f"{v:.3g}" for v in case.image.spacing_mm) + " mm"]
    if case.label is not None:
        counts = {case.label.names[v]: int(n) for v, n in zip(*np.unique(case.label.voxels, return_counts=True))
                  if v != 0}
        parts.append("labels " + ", ".join(f"{k} {v} vx" for k, v in counts.items()))
    if case.nodules:
        parts.append(f"{len(case.nodules)} nodule(s) " + ", ".join(
            f"{n.diameter_mm:.1f} mm {n.nodule_type.value if n.nodule_type else ''}".strip() for n in case.nodules))
    if case.calcium:
        parts.append("calcium " + ", ".join(sorted({c.vessel for c in case.calcium})))
    if case.boxes:
        parts.append(f"{len(case.boxes)} box(es)")
    labels = case.image_labels
    parts += [f"{k} {v}" for k, v in (("density", labels.density), ("assessment", labels.assessment),
                                      ("laterality", labels.laterality), ("view", labels.view),
                                      ("phase", labels.phase)) if v]
    return "; ".join(parts)


def _phantom_commands(task: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(PHANTOM_TASKS[task])


def _phantom_task_of(run: Path) -> str | None:
    return next((t for t in PHANTOM_TASKS if _phantom_commands(t).is_run(run)), None)


def _run_dir(args: argparse.Namespace) -> Path:
    name = args.run or f"{args.task}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return Path(args.runs_dir) / name


def cmd_train(args: argparse.Namespace, config: Config) -> int:
    if cli_framework.wants_train(args):
        return cli_framework.train(args, config)
    _check_format(args.task, args)
    if args.task in PHANTOM_TASKS:
        for line in _phantom_commands(args.task).train_run(args.config_file, _run_dir(args)):
            CONSOLE.info(line)
        return 0
    from training.lung_nodules.config import TrainConfigError, load_config
    from training.lung_nodules.train import train

    if args.config_file is None and args.task == "lung_nodules":
        raise ConfigError(f"train {args.task}: --config FILE is required")
    if args.data is None or not (args.data / "dataset.json").is_file():
        raise NotFound(f"{args.data}: no dataset.json (MSD layout: imagesTr/, labelsTr/, dataset.json)")
    if args.task == "lung_nodule_classifier":
        return _train_classifier(args, config)
    try:
        train_config = load_config(args.config_file)
    except TrainConfigError as exc:
        raise ConfigError(str(exc)) from None
    run_dir = _free_run_dir(args)
    result = train(train_config, args.data, run_dir, progress=not args.no_progress)
    val = result["validation"]
    CONSOLE.info(f"run {run_dir}: best step {result['best_step']} of {train_config.train.iterations} "
                 f"in {result['seconds']:.0f} s; validation sensitivity(>=5 mm)@1FP "
                 f"{val.get('froc', {}).get('1.0', {}).get('sensitivity')}, Dice {val.get('dice_net_grid')}")
    CONSOLE.info(f"exported candidate: {result['onnx']}; next: aiws evaluate {run_dir} --data DIR; "
                 f"aiws export {run_dir}")
    return 0


def _free_run_dir(args: argparse.Namespace) -> Path:
    run_dir = _run_dir(args)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"{run_dir}: run folder exists and is not empty; choose another --run")
    return run_dir


def _train_classifier(args: argparse.Namespace, config: Config) -> int:
    from models.errors import ModelError
    from training.lung_nodules.classifier import NetworkSource, load_classifier_config, train_classifier
    from training.lung_nodules.config import TrainConfigError

    try:
        classifier_config = load_classifier_config(args.config_file)
    except TrainConfigError as exc:
        raise ConfigError(str(exc)) from None
    source = None
    if args.candidates_from is not None:
        try:
            source = NetworkSource.parse(args.candidates_from, args.repository or config.runtime.model_repository)
        except (FileNotFoundError, ModelError) as exc:
            raise NotFound(str(exc)) from None
    run_dir = _free_run_dir(args)
    try:
        result = train_classifier(classifier_config, args.data, run_dir, progress=not args.no_progress, source=source)
    except ModelError as exc:
        raise ConfigError(str(exc)) from None
    val = result["validation"]
    CONSOLE.info(f"run {run_dir}: best step {result['best_step']} of {classifier_config.train.iterations} in "
                 f"{result['seconds']:.0f} s; validation AUC {val.get('auc')}, sensitivity at 99 % specificity "
                 f"{val.get('sensitivity_at_99_specificity')}")
    CONSOLE.info(f"exported candidate: {result['onnx']}; next: aiws evaluate {run_dir} --data DIR; "
                 f"aiws rescore LUNG_RUN --data TUNE --classifier {run_dir}")
    return 0


def _evaluate_families(args: argparse.Namespace, config: Config) -> int:
    """``aiws evaluate --version N --task TASK --family a|b|both`` (or ``aiws evaluate RUN --family ...``): the
    published version (or the run's candidate) on a few phantoms of each family, one row per family with the
    issue-28 quality bars (written to --out/cross_family.json when given)."""
    from models.errors import ModelError
    from training.families import FamilyError, evaluate_families, table_lines

    task, repo = args.task, args.repository or config.runtime.model_repository
    if args.run is not None:  # a phantom-task run: its exported candidate (a repository of one version)
        task = task or ("lung_nodules" if (args.run / "run.json").is_file() else _phantom_task_of(args.run))
        repo = args.run / "export"
    if task is None:
        raise ConfigError("evaluate --family: --task TASK (or a run folder of a phantom task) is required")
    try:
        rows = evaluate_families(task, Path(repo), args.version or None, args.family, args.phantoms)
    except (FamilyError, ModelError) as exc:
        raise ConfigError(str(exc)) from None
    for line in table_lines(rows):
        CONSOLE.info(line)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cross_family.json").write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
        CONSOLE.info(f"written {args.out / 'cross_family.json'}")
    met = all(b["met"] for row in rows for b in row["bars"].values())
    return 0 if met or not args.strict else 3


def cmd_evaluate(args: argparse.Namespace, config: Config) -> int:
    if getattr(args, "family", None) is not None:
        return _evaluate_families(args, config)
    if args.version is not None or cli_framework.is_run(args.run):
        return cli_framework.evaluate(args, config)
    if args.run is None:
        raise ConfigError("evaluate: give a run folder, or --version N --task TASK")
    phantom_task = None if (args.run / "run.json").is_file() else _phantom_task_of(args.run)
    _check_format(phantom_task or "lung_nodules", args)
    if phantom_task is not None:
        seeds = tuple(int(v) for v in args.seeds.split(":")) if args.seeds else None
        lines, met = _phantom_commands(phantom_task).evaluate_run(args.run, *([seeds] if seeds else []))
        CONSOLE.info("\n".join(lines))
        return 0 if met or not args.strict else 3
    from training.lung_nodules import classifier, evaluate

    if args.data is None:
        raise ConfigError("evaluate: --data DIR is required for this run")
    if not (args.run / "run.json").is_file():
        raise NotFound(f"{args.run}: not a training run (no run.json)")
    if classifier.is_classifier_run(args.run):
        run, error, report = (classifier.evaluate_classifier, classifier.ClassifierEvaluationError,
                              classifier.report_lines)
    else:
        run, error, report = evaluate.evaluate_run, evaluate.EvaluationError, evaluate.report_lines
    try:
        result = run(args.run, args.data, threads=args.threads)
    except error as exc:
        raise ConfigError(str(exc)) from None
    for line in report(result):
        CONSOLE.info(line)
    CONSOLE.info(f"written {args.run / 'evaluation.json'}")
    return 0 if all(b["met"] for b in result.get("bars", {}).values()) or not args.strict else 3


def cmd_rescore(args: argparse.Namespace, config: Config) -> int:
    from models.errors import ModelError
    from training.lung_nodules.rescore import RescoreError, RescoreOptions, report_lines, rescore_run

    if not (args.data / "dataset.json").is_file():
        raise NotFound(f"{args.data}: no dataset.json (MSD layout with nodulesTr/ ground truth)")
    options = RescoreOptions(args.blob_candidates, args.grow_open_mm, args.classifier,
                             args.repository or config.runtime.model_repository, args.max_fp_per_scan)
    problem = options.problem()  # before --from-version makes a run folder
    if problem is not None:
        name, value, rule = problem
        raise ConfigError(f"--{name.replace('_', '-')} {value}: {rule}")
    if args.from_version is not None:
        from training.lung_nodules.export import run_from_version

        if args.run.exists():
            raise ConfigError(f"{args.run}: exists; --from-version starts a new run folder")
        repo = args.repository or config.runtime.model_repository
        try:
            used = run_from_version(repo, "lung_nodules", args.from_version or None, args.run)
        except ModelError as exc:
            raise NotFound(str(exc)) from None
        CONSOLE.info(f"{args.run}: candidate is lung_nodules version {used} from {repo} (no training)")
    if not (args.run / "run.json").is_file():
        raise NotFound(f"{args.run}: not a lung_nodules training run (no run.json)")
    try:
        summary = rescore_run(args.run, args.data, options, threads=args.threads)
    except RescoreError as exc:
        raise ConfigError(str(exc)) from None
    except (FileNotFoundError, ModelError) as exc:
        raise NotFound(str(exc)) from None
    for line in report_lines(summary):
        CONSOLE.info(line)
    CONSOLE.info(f"updated the candidate's model card; next: aiws evaluate {args.run} --data DIR (unseen seeds)")
    return 0


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    from models.runtime.errors import ModelConfigError
    from training.lung_nodules.export import export_run

    if cli_framework.is_run(args.run):
        return cli_framework.export(args, config)
    repo = args.repository or config.runtime.model_repository
    phantom_task = None if (args.run / "run.json").is_file() else _phantom_task_of(args.run)
    exporter = getattr(_phantom_commands(phantom_task), "export_run", export_run) if phantom_task else export_run
    try:
        model, version = exporter(args.run, repo)
    except FileNotFoundError as exc:
        raise NotFound(str(exc)) from None
    except ModelConfigError as exc:
        raise ConfigError(str(exc)) from None
    card = json.loads((repo / model / str(version) / "model_card.json").read_text(encoding="utf-8"))
    CONSOLE.info(f"published {model} version {version} in {repo} (config sha256 "
                 f"{card['provenance']['training_config_sha256'][:12]}); the service uses it from its next job")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("train", help="train a network on a dataset (MSD layout) with a run configuration")
    p.add_argument("task", choices=TASKS)
    p.add_argument("--data", type=Path, help="dataset folder (imagesTr/, labelsTr/, dataset.json); "
                   "not for phantom tasks (coronary_ct, cardiac_mri, mammography)")
    p.add_argument("--format", choices=FORMAT_NAMES, default=None,
                   help="layout of --data: trains through the training framework (aiws.cli_framework); without it "
                        "the phantom loops run")
    p.add_argument("--config", dest="config_file", type=Path, help="run configuration (TOML or JSON)")
    p.add_argument("--run", help="run name (default: TASK-date-time)")
    p.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--candidates-from", default=None, metavar="VERSION|RUN",
                   help="lung_nodule_classifier: also train on the candidates of this lung network (a published "
                        "version of lung_nodules, 0: latest, or a lung_nodules run folder)")
    p.add_argument("--repository", type=Path, default=None, help=REPOSITORY_HELP)
    cli_framework.add_train_arguments(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a training run on unseen data; prints the quality bars")
    p.add_argument("run", type=Path, nargs="?", help="run folder (omit with --version)")
    p.add_argument("--data", type=Path, help="evaluation dataset (MSD layout, unseen seeds); not for phantom tasks")
    p.add_argument("--format", choices=FORMAT_NAMES, default=None,
                   help="layout of --data (checked with training.readers first); lung runs: msd")
    p.add_argument("--seeds", help="phantom tasks: unseen seeds START:STOP (default 10000:10050 / 10000:10020)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: automatic)")
    p.add_argument("--strict", action="store_true", help="exit 3 when a quality bar is not met")
    p.add_argument("--family", choices=("a", "b", "both"), default=None,
                   help="phantom tasks with --task: evaluate the published version on phantom family a, b or both "
                        "(one row per family, with the quality bars); --version N picks it (default: latest)")
    p.add_argument("--phantoms", type=int, default=3, metavar="K", help="with --family: phantoms per family")
    cli_framework.add_evaluate_arguments(p)
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("rescore", help="lung_nodules: fit the second stage (false-positive reduction) of a run "
                       "on tuning phantoms (seeds neither trained nor evaluated on)")
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--data", type=Path, required=True, help="tuning dataset (MSD layout with nodulesTr/)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: automatic)")
    p.add_argument("--from-version", type=int, default=None, metavar="N",
                   help="start RUN (a new folder) from published version N of lung_nodules (0: latest), no training")
    p.add_argument("--repository", type=Path, default=None, help=REPOSITORY_HELP)
    p.add_argument("--blob-candidates", type=int, default=None, metavar="N",
                   help="also take the N strongest dot-filter blobs per scan as candidates (small nodules the network "
                        "misses; 0: none; default: the run's setting)")
    p.add_argument("--grow-open-mm", type=float, default=None, metavar="MM",
                   help="let a solid nodule's outline grow past the network's probability into its CT body, less "
                        "vessels thinner than a ball of MM radius (0: off; default: the run's setting)")
    p.add_argument("--classifier", default=None, metavar="RUN|VERSION",
                   help="give the second stage the logit of a candidate classifier: a run of aiws train "
                        "lung_nodule_classifier (published with this run by aiws export), a published version of it "
                        "(0: latest), or 'none' (default: the run's)")
    p.add_argument("--max-fp-per-scan", type=float, default=None, metavar="RATE",
                   help="operating point: the lowest score with at most RATE false positives per tuning scan "
                        "(cross-validated; default: the run's, 0.5 for a new run)")
    p.set_defaults(handler=cmd_rescore)

    p = sub.add_parser("dataset", help="datasets for training: check a folder, export it de-identified, pull from a PACS")
    dataset = p.add_subparsers(dest="dataset_command", required=True)
    p = dataset.add_parser("check", help="read every case of a dataset; list cases and skipped cases with reasons")
    p.add_argument("--data", type=Path, required=True, help="dataset folder")
    p.add_argument("--format", choices=FORMAT_NAMES, required=True, help="published layout of the folder")
    p.set_defaults(handler=cmd_dataset_check)
    p = dataset.add_parser("export", help="copy a DICOM folder de-identified (PS3.15 Basic Profile) as a dicom-seg "
                           "dataset; the key goes to its own file")
    p.add_argument("--in", dest="in_dir", type=Path, required=True, help="folder of DICOM files (any tree)")
    p.add_argument("--out", type=Path, required=True, help="output dataset folder (dicom-seg layout)")
    p.add_argument("--de-identify", action="store_true", help="apply the Basic Application Level Confidentiality "
                   "Profile (required)")
    p.add_argument("--key-out", type=Path, required=True, help="key file (original <-> pseudonym, date shift per "
                   "patient), outside --out; reused when it exists so a patient keeps pseudonym and shift")
    p.add_argument("--report-out", type=Path, default=None, help="files withheld and why (burned-in annotation "
                   "YES or unknown; default: KEY.report.json beside the key)")
    p.set_defaults(handler=cmd_dataset_export)
    p = dataset.add_parser("pull", help="C-FIND + C-GET/C-MOVE studies with their SEG/SR from a configured source "
                           "into a dicom-seg folder (resumable)")
    p.add_argument("--source", required=True, help="AE title of a [[dicom.sources]] entry with query_retrieve")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--query", nargs="+", metavar="KEY=VALUE", help="study-level C-FIND keys (DICOM keywords)")
    which.add_argument("--accessions", type=Path, metavar="FILE", help="Accession Numbers, one a line")
    p.add_argument("--out", type=Path, required=True, help="dataset folder (pull-manifest.json kept there)")
    p.set_defaults(handler=cmd_dataset_pull)

    p = sub.add_parser("export", help="publish a run's network as the next version in the model repository")
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--repository", type=Path, default=None, help=REPOSITORY_HELP)
    p.set_defaults(handler=cmd_export)
