"""``make demo``: the whole loop on this machine, offline, in a few minutes.

Starts a private Orthanc as the demo PACS and ``aiws serve`` on the shipped defaults (aiws/defaults.toml)
with its own free ports, loads one phantom study per imaging pipeline into Orthanc, has Orthanc send them
to AIWS as a PACS would (``POST /modalities/AIWS/store``), posts one tabular example per plugin, waits for
the results to arrive back in Orthanc and prints a table and the pages to look at. Ctrl-C stops everything
it started. Everything (studies, Orthanc's storage, the service's data, logs, caches) stays under the data
folder (default ./var/demo), which the next run clears.

    .venv/bin/python scripts/demo.py             # leave it running, look around, Ctrl-C to stop
    .venv/bin/python scripts/demo.py --ci        # exit after the table; exit status 1 if a result is missing
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiws.api.accounts import create_account  # noqa: E402
from aiws.api.auth import Role  # noqa: E402
from aiws.cli import DEFAULT_CONFIG  # noqa: E402
from aiws.config import config_from_mapping, load_config  # noqa: E402
from aiws.ledger import Ledger  # noqa: E402
from aiws.logsetup import CONSOLE, setup_logging  # noqa: E402
from scripts.demo_plugins import PluginRun, examples, run_example  # noqa: E402
from scripts.demo_studies import PIPELINES, DemoStudy, write_studies  # noqa: E402
from scripts.orthanc_local import Orthanc, free_port, wait_for  # noqa: E402

#: A file that marks a folder as the demo's own, so that a rerun may clear it (and nothing else).
MARKER = ".aiws-demo"
AIWS_AE = "AIWS"


class DemoError(Exception):
    """The demo cannot go on (a folder it may not clear, a service that did not start)."""


def prepare(data_dir: Path) -> None:
    """Clear the demo's previous run and make the folder; refuse a non-empty folder that is not the demo's.

    Raises:
        DemoError: *data_dir* holds files and no marker.
    """
    if data_dir.exists() and any(data_dir.iterdir()) and not (data_dir / MARKER).exists():
        raise DemoError(f"{data_dir} is not empty and not a demo folder: choose another --data-dir")
    shutil.rmtree(data_dir, ignore_errors=True)
    for sub in ("cache", "tmp"):
        (data_dir / sub).mkdir(parents=True)
    (data_dir / MARKER).write_text("made by scripts/demo.py; cleared by its next run\n")


def local_env(data_dir: Path) -> dict[str, str]:
    """Variables that keep the caches and temporary files of every process under *data_dir*."""
    cache = str((data_dir / "cache").resolve())
    return {"XDG_CACHE_HOME": cache, "MPLCONFIGDIR": str(Path(cache) / "matplotlib"),
            "TMPDIR": str((data_dir / "tmp").resolve()), "TCP_NODELAY": "1"}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def toml_text(raw: Mapping[str, Any]) -> str:
    """A configuration mapping as TOML: top-level arrays first, then one ``[table]`` per mapping.

    Raises:
        ValueError: the text does not read back as *raw* (a value TOML cannot carry).
    """
    lines = [f"{k} = [\n" + "".join(f"  {_toml_value(v)},\n" for v in items) + "]"
             for k, items in raw.items() if not isinstance(items, Mapping)]
    for table, body in raw.items():
        if isinstance(body, Mapping):
            lines.append(f"\n[{table}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
    text = "\n".join(lines) + "\n"
    if tomllib.loads(text) != json.loads(json.dumps(raw)):
        raise ValueError("configuration does not survive TOML")
    return text


@dataclass(frozen=True)
class Ports:
    dicom: int
    http: int
    pacs: int


def demo_config(ports: Ports, data_dir: Path, quiet_seconds: float) -> dict[str, Any]:
    """The shipped defaults with the demo's own ports, loopback only, data under *data_dir*, and the PDF report
    sent to the PACS too (``pdf_report``), so that every object a pipeline writes can be seen there.

    Raises:
        aiws.errors.ConfigError: the result does not validate (names the key).
    """
    raw = tomllib.loads(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    raw["dicom"].update(host="127.0.0.1", port=ports.dicom)
    raw["dicom"]["destinations"] = [{**d, "port": ports.pacs, "pdf_report": True} if d["name"] == "pacs" else d
                                    for d in raw["dicom"]["destinations"]]
    raw["http"].update(host="127.0.0.1", port=ports.http, admin_token=secrets.token_urlsafe(24))
    raw["study"]["quiet_seconds"] = quiet_seconds
    raw["storage"].update(data_dir=str(data_dir.resolve()), min_free_mb=64)
    config_from_mapping(raw, "demo configuration")
    return raw


@dataclass
class Service:
    """``aiws serve --config`` as a child process, its log in the data folder."""

    config_file: Path
    log_file: Path
    env: dict[str, str]
    url: str
    token: str = ""  # the demo's admin token ([http] admin_token): every API read needs a role
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "aiws.cli", "serve", "--config", str(self.config_file)],
                                         stdout=log, stderr=subprocess.STDOUT, env=self.env)
        wait_for(self._up, timeout=120, interval=0.3, what="aiws serve to answer on /health")
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise DemoError(f"aiws serve exited; see {self.log_file}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        """SIGTERM (the service finishes what it can and stops), SIGKILL after 60 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _figures(pipeline: str, s: Mapping[str, Any]) -> str:
    """The key figures of a job summary (as the API shows it), in a few words."""
    if pipeline == "lung_nodules":
        sizes = sorted((n.get("mean_diameter_mm") or 0 for n in s.get("nodules", [])), reverse=True)
        return (f"{len(sizes)} nodules" + (f" (largest {sizes[0]:.1f} mm)" if sizes else "")
                + f", Lung-RADS {s.get('lung_rads')}")
    if pipeline == "coronary_ct":
        return f"Agatston {s['total']['agatston']:.0f}, CAC-DRS {s.get('cac_drs')}"
    if pipeline == "cardiac_mri":
        return f"LVEF {s['LVEF']:.0f} %, LVEDV {s['LVEDV']:.0f} ml, LV mass {s['LVM']:.0f} g"
    if pipeline == "mammography":
        return f"density {s.get('density')}, exam score {s.get('exam_score')}/10, {len(s.get('findings', []))} marks"
    return ", ".join(f"{k} {v}" for k, v in s.items() if isinstance(v, (int, float, str)))[:60]


def _summary_figures(pipeline: str, summary: Mapping[str, Any]) -> str:
    """:func:`_figures`, or which key it missed when a pipeline's summary has changed shape (the results
    are in the PACS all the same)."""
    try:
        return _figures(pipeline, summary)
    except (KeyError, TypeError, ValueError) as exc:
        return f"done (summary without {exc!s:.40})"


@dataclass(frozen=True)
class Outcome:
    """How one study ended: ok (every result in the PACS), failed, not routed, or still waiting."""

    study: DemoStudy
    state: str
    figures: str
    results: str = ""
    seconds: float = 0.0
    job_seconds: float = 0.0
    orthanc_id: str = ""


_KIND_ORDER = ("sr", "seg", "sc", "gsps", "pdf")


def _kinds(results: Sequence[Mapping[str, Any]]) -> str:
    """``SR SEG 3 SC``: the kinds of result objects and how many of each."""
    counts: dict[str, int] = {}
    for r in results:
        counts[str(r.get("kind", "?"))] = counts.get(str(r.get("kind", "?")), 0) + 1
    order = sorted(counts, key=lambda k: (_KIND_ORDER.index(k) if k in _KIND_ORDER else len(_KIND_ORDER), k))
    return " ".join(f"{counts[k]} {k.upper()}" if counts[k] > 1 else k.upper() for k in order)


def outcome(service: Service, pacs: Orthanc, study: DemoStudy, sent_at: float) -> Outcome | None:
    """The outcome of *study* once it has one, else None (still on its way)."""
    doc = service.get(f"/api/studies/{study.study_uid}")
    jobs = [j for j in doc.get("jobs", []) if j["state"] != "superseded"]
    if doc.get("state") == "error" or any(j["state"] == "failed" for j in jobs):
        reason = next((j.get("error") for j in jobs if j["state"] == "failed"), doc.get("error")) or "failed"
        return Outcome(study, "failed", str(reason).splitlines()[0][:70])
    if doc.get("unrouted"):
        return Outcome(study, "not routed", "no route matched its series")
    if not jobs or any(j["state"] != "done" for j in jobs):
        return None
    sends = [s for s in doc.get("sends", []) if s["state"] != "superseded"]
    if any(s["state"] == "dead" for s in sends):
        return Outcome(study, "failed", "a result could not be sent to the PACS")
    if not sends or any(s["state"] != "done" for s in sends):
        return None
    wanted = {r["sop_instance_uid"] for r in doc.get("results", [])}
    held = {i["MainDicomTags"].get("SOPInstanceUID") for i in pacs.instances_of_study(study.study_uid)}
    if not wanted <= held:
        return None
    figures = "; ".join(_summary_figures(j["pipeline"], j.get("summary") or {}) for j in jobs)
    job_seconds = sum((j.get("finished_at") or 0.0) - (j.get("started_at") or 0.0) for j in jobs)
    return Outcome(study, "ok", figures, _kinds(doc.get("results", [])), time.monotonic() - sent_at, job_seconds,
                   pacs.study_id(study.study_uid))


def send_and_wait(service: Service, pacs: Orthanc, studies: Sequence[DemoStudy], timeout_s: float) -> list[Outcome]:
    """Have the PACS send each study to AIWS, then wait until every study has an outcome (or *timeout_s*)."""
    sent: dict[str, float] = {}
    for study in studies:
        pacs.post(f"/modalities/{AIWS_AE}/store", {"Resources": [pacs.study_id(study.study_uid)],
                                                   "Synchronous": True})
        sent[study.study_uid] = time.monotonic()
        CONSOLE.info(f"  sent {study.pipeline:<13} {study.description} ({len(study.files)} images)")
    done: dict[str, Outcome] = {}
    deadline = time.monotonic() + timeout_s
    while len(done) < len(studies) and time.monotonic() < deadline:
        for study in studies:
            if study.study_uid not in done:
                found = outcome(service, pacs, study, sent[study.study_uid])
                if found is not None:
                    done[study.study_uid] = found
                    CONSOLE.info(f"  {found.state:<4} {study.pipeline:<13} {found.seconds:5.0f} s")
        time.sleep(1.0)
    return [done.get(s.study_uid) or Outcome(s, "timeout", f"no result within {timeout_s:.0f} s") for s in studies]


def table(outcomes: Sequence[Outcome], runs: Sequence[PluginRun]) -> str:
    """The demo's table: one row per study and per plugin example."""
    rows = [("study", "pipeline", "result", "key figures", "seconds")]
    rows += [(o.study.description, o.study.pipeline, o.results if o.state == "ok" else o.state.upper(),
              o.figures, f"{o.seconds:.0f} ({o.job_seconds:.0f})" if o.state == "ok" else "-") for o in outcomes]
    rows += [(r.example.description, r.example.plugin, "JSON" if r.ok else "FAILED", r.figures,
              f"{r.seconds:.1f}") for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4].rjust(8)
             for row in rows]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def demo_account(config_file: Path) -> tuple[str, str]:
    """An admin account for the console (user ``demo``, a random password), made in the demo's ledger before the
    service starts; returns (user, password)."""
    password = secrets.token_urlsafe(12)
    ledger = Ledger.of_config(load_config(config_file, env={}))
    try:
        create_account(ledger, "demo", Role.ADMIN, password, actor="demo")
    finally:
        ledger.close()
    return "demo", password


def pages(pacs: Orthanc, service: Service, outcomes: Sequence[Outcome], login: tuple[str, str] = ("", "")) -> str:
    """Where to look: Orthanc Explorer's study pages (the results are in the same study) and the AIWS console."""
    lines = [f"Orthanc Explorer (the demo PACS):  {pacs.explorer_url}"]
    lines += [f"  {o.study.pipeline:<13} {pacs.study_page(o.orthanc_id)}" for o in outcomes if o.orthanc_id]
    lines += [f"AIWS console:                     {service.url}/console/  (user {login[0]}, password {login[1]})",
              f"AIWS API:                         {service.url}/api/studies  {service.url}/api/jobs  "
              f"{service.url}/docs"]
    return "\n".join(lines)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo as Ctrl-C does: every child is stopped on the way out


def run(args: argparse.Namespace, data_dir: Path) -> int:
    """Everything between preparing the folder and stopping the children; the exit status."""
    env = {**os.environ, **local_env(data_dir)}
    os.environ.update(local_env(data_dir))  # this process's own caches too (matplotlib, while writing phantoms)
    CONSOLE.info(f"AIWS demo: data under {data_dir}")
    CONSOLE.info("writing the phantom studies ...")
    studies = write_studies(data_dir / "studies", tuple(args.pipelines), small=args.small)
    ports = Ports(dicom=free_port(), http=free_port(), pacs=free_port())
    pacs = Orthanc(data_dir / "pacs", aet="ORTHANC", modalities={AIWS_AE: (AIWS_AE, "127.0.0.1", ports.dicom)},
                   dicom_port=ports.pacs, name="AIWS demo PACS")
    config_file = data_dir / "aiws.toml"
    config_file.write_text(f"# written by scripts/demo.py: {DEFAULT_CONFIG.name} with the demo's ports and folders\n"
                           + toml_text(demo_config(ports, data_dir / "aiws", args.quiet_seconds)), encoding="utf-8")
    service = Service(config_file, data_dir / "aiws.log", env, f"http://127.0.0.1:{ports.http}",
                      token=load_config(config_file, env={}).http.admin_token or "")
    login = demo_account(config_file)
    try:
        CONSOLE.info(f"starting the demo PACS (Orthanc, DICOM {ports.pacs}) and AIWS (DICOM {ports.dicom}) ...")
        pacs.start()
        service.start()
        for study in studies:
            pacs.upload(study.files)
        CONSOLE.info("the PACS sends each study to AIWS:")
        outcomes = send_and_wait(service, pacs, studies, args.timeout)
        runs = [run_example(service.url, example, service.token) for example in examples()]
        CONSOLE.info("\n" + table(outcomes, runs) + "\n")
        CONSOLE.info("seconds: from the PACS's send to the last result back in the PACS, in brackets the pipeline's "
                     f"own time (the rest: {args.quiet_seconds:g} s without new images, the queue, sending);\n"
                     "plugins: the HTTP call\n")
        CONSOLE.info(pages(pacs, service, outcomes, login))
        ok = all(o.state == "ok" for o in outcomes) and all(r.ok for r in runs)
        if args.ci:
            return 0 if ok else 1
        CONSOLE.info(f"\nlogs: {data_dir / 'aiws.log'}, {data_dir / 'pacs' / 'orthanc.log'}. Ctrl-C stops the demo.")
        while service.proc is not None and service.proc.poll() is None and pacs.proc is not None \
                and pacs.proc.poll() is None:
            time.sleep(1.0)
        CONSOLE.error("a demo process exited by itself; stopping")
        return 1
    finally:
        service.stop()
        pacs.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("var/demo"),
                        help="everything goes here (default var/demo)")
    parser.add_argument("--ci", action="store_true", help="exit after the table (status 1 if a result is missing)")
    parser.add_argument("--small", action="store_true", help="smaller phantoms (default with --ci)")
    parser.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES))
    parser.add_argument("--quiet-seconds", type=float, default=2.0, help="study complete after this quiet time")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait for all results")
    args = parser.parse_args(argv)
    args.small = args.small or args.ci
    setup_logging(logging.WARNING)
    for sig in (signal.SIGINT, signal.SIGTERM):  # also where SIGINT came in ignored (started in the background)
        signal.signal(sig, _raise_interrupt)
    data_dir = args.data_dir.resolve()
    try:
        prepare(data_dir)
        return run(args, data_dir)
    except KeyboardInterrupt:
        CONSOLE.info("\nstopped: Orthanc and AIWS are down; the data stays under " + str(data_dir))
        return 130
    except (DemoError, TimeoutError, RuntimeError, httpx.HTTPError, OSError) as exc:
        CONSOLE.error(f"demo: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
