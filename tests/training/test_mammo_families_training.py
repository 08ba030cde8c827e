"""The mammography training loop on both phantom families (issue 28): the configuration's new keys (and a
version-1 configuration's hash unchanged), single-sided exams, equal family shares per batch, breast-relative
pools, the MONAI patch augmentation, fine-tuning from the shipped version 1 (whose ONNX file folded its batch
norms), and the candidate-versus-baseline verdict."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from models.mammography.preprocess import REFERENCE_AIR
from training.mammography.augment import AugmentError, PatchAugment
from training.mammography.compare import verdict
from training.mammography.config import ConfigError, TrainConfig, load_config
from training.mammography.dataset import FamilySampler, PatchSampler, PoolImage, PoolSpec, build_pool
from training.mammography.phantom import PhantomConfig
from training.mammography.phantom_b import make_exam_b

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "training/mammography/configs"
V1 = ROOT / "triton_repo/mammo_detector/1"


def test_a_version_1_configuration_keeps_its_hash_and_v2_names_both_families(tmp_path: Path) -> None:
    card = json.loads((V1 / "model_card.json").read_text())
    written = tmp_path / "v1.json"
    written.write_text(card["provenance"]["training_config"])
    assert load_config(written).hash == card["provenance"]["training_config_sha256"]
    v2 = load_config(CONFIGS / "v2.json")
    assert v2.families == ("a", "b") and v2.from_version == 1
    assert not v2.relative  # version 1's window input: family A starts where version 1 was
    assert v2.network == load_config(written).network  # fine-tuning needs version 1's architecture
    spans = [v2.seeds(stage, f) for stage in ("train", "validation", "calibration", "evaluation") for f in "ab"]
    assert all(a[1] <= b[0] or b[1] <= a[0] for i, a in enumerate(spans) for b in spans[i + 1:])  # disjoint


@pytest.mark.parametrize("key, value", [("family", "c"), ("network_input", "raw"), ("single_sided_share", 1.5),
                                        ("from_version", 0), ("augment", [1])])
def test_invalid_new_keys_are_refused(tmp_path: Path, key: str, value: object) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({key: value}))
    with pytest.raises(ConfigError, match=key):
        load_config(bad)


def test_single_sided_share_draws_one_side_for_that_share_of_seeds() -> None:
    config = TrainConfig(single_sided_share=0.5)
    sides = [config.lesion_sides(seed) for seed in range(1000)]
    one = [s for s in sides if len(s) == 1]
    assert 0.4 < len(one) / len(sides) < 0.6
    assert {s[0] for s in one} == {"L", "R"}
    assert sides == [config.lesion_sides(seed) for seed in range(1000)]  # deterministic
    assert all(TrainConfig().lesion_sides(seed) == ("R", "L") for seed in range(50))


def _flat_pool(value: float) -> list[PoolImage]:
    x = np.full((300, 200), value, dtype=np.float16)
    inside = np.argwhere(np.ones((300, 200), bool))[::97].astype(np.int32)
    return [PoolImage(x, np.zeros((300, 200), np.uint8), (), inside)]


@pytest.mark.parametrize("batch", [8, 7])
def test_each_family_draws_the_same_share_of_every_batch(batch: int) -> None:
    sampler = FamilySampler([PatchSampler(_flat_pool(0.1), 64, 0), PatchSampler(_flat_pool(0.9), 64, 1)])
    for _ in range(5):
        x, y = sampler.sample(batch)
        assert x.shape == (batch, 1, 64, 64) and y.shape == (batch, 3, 64, 64)
        brightest = x.max(axis=(1, 2, 3))
        assert (brightest < 0.5).sum() == math.ceil(batch / 2) and (brightest > 0.5).sum() == batch // 2


@pytest.mark.slow
def test_single_sided_family_b_pool_is_breast_relative_and_lesion_free_on_the_other_side() -> None:
    spec = PoolSpec("b", relative=True, sides=lambda seed: ("L",))
    seeds = [next(s for s in range(40000, 40040) if any(v.lesions for v in make_exam_b(s, ("L",)).views.values()))]
    pool = build_pool(seeds, lambda seed: PhantomConfig(), spec)
    assert len(pool) == 4  # R CC, R MLO, L CC, L MLO in the exam's order
    assert not pool[0].lesion_centres and not pool[1].lesion_centres
    assert pool[2].lesion_centres or pool[3].lesion_centres
    for image in pool:  # outside the breast: the reference air level, whatever family B's vendor scale
        assert abs(float(np.median(image.x[:, -5:])) - REFERENCE_AIR) < 0.05


def test_augmentation_keeps_targets_binary_and_aligned_with_the_input() -> None:
    rng = np.random.default_rng(0)
    y = np.zeros((4, 3, 96, 96), np.float32)
    for k in range(4):
        r, c = rng.integers(30, 66, 2)
        y[k, 1, r - 12:r + 12, c - 12:c + 12] = 1.0
    x = y[:, 1:2].copy()  # the input shows exactly the mass target
    augment = PatchAugment({"Rand2DElastic": {"spacing": [20, 20], "magnitude_range": [1, 3], "prob": 1.0},
                            "RandZoom": {"min_zoom": 0.8, "max_zoom": 1.2, "prob": 1.0},
                            "RandGaussianNoise": {"std": 0.01, "prob": 1.0}}, seed=3)
    xa, ya = augment(x, y)
    assert set(np.unique(ya)) <= {0.0, 1.0}
    assert not np.array_equal(ya, y)  # moved
    seen = xa[:, 0] > 0.5
    overlap = 2 * (seen & (ya[:, 1] > 0)).sum() / (seen.sum() + ya[:, 1].sum())
    assert overlap > 0.9
    assert np.array_equal(x, y[:, 1:2])  # the caller's arrays are left alone


def test_an_unknown_augmentation_is_refused() -> None:
    with pytest.raises(AugmentError, match="RandWhatever"):
        PatchAugment({"RandWhatever": {}}, seed=0)


@pytest.mark.slow
def test_fine_tuning_starts_from_version_1_exactly(tmp_path: Path) -> None:
    """Version 1's ONNX file (batch norms folded into its convolutions) loaded into the torch network: in eval
    mode the network gives version 1's logits."""
    import onnxruntime as ort
    import torch

    from models.mammography.network import INPUT_NAME, NetworkConfig, build_network
    from training.mammography.export import export_spec
    from training.mammography.warmstart import load_version

    rng = np.random.default_rng(1)
    x = (0.35 + 0.1 * rng.standard_normal((1, 1, 512, 512))).astype(np.float32)  # one tile
    samples = [(0.35 + 0.1 * rng.standard_normal((4, 1, 64, 64))).astype(np.float32) for _ in range(2)]
    net = build_network(NetworkConfig((8, 16, 32, 48, 64), (2, 2, 2, 2), 1))
    source = load_version(net, V1, export_spec("mammo_detector"), tmp_path / "probe.onnx", samples)
    assert "8 folded batch norms" in source
    net.eval()
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
    ref = ort.InferenceSession(str(V1 / "model.onnx")).run(None, {INPUT_NAME: x[:, :, None]})[0][:, :, 0]
    assert np.abs(ours - ref).max() < 1e-3 * max(1.0, float(np.abs(ref).max()))


def _row(role: str, family: str, **measured: float) -> dict[str, object]:
    base = {"density_agreement": 0.9, "density_within_one_grade": 1.0, "mass_sensitivity": 1.0,
            "mass_fp_per_image": 0.2, "marks_in_lesion_free_breasts": 0}
    values = {**base, **measured}
    bars = {"density_agreement": values["density_agreement"] >= 0.85, "mass_fp_per_image": values["mass_fp_per_image"] <= 0.5}
    return {"role": role, "family": family, "seeds": list(range(10)), "measured": values,
            "bars": {k: {"value": values[k], "bar": 0, "met": v} for k, v in bars.items()}}


def test_verdict_better_on_b_and_not_worse_on_a() -> None:
    base_b = _row("baseline", "b", density_agreement=0.4, mass_fp_per_image=5.0)
    ok, _ = verdict([_row("baseline", "a"), base_b, _row("candidate", "a", density_agreement=0.8),
                     _row("candidate", "b", mass_fp_per_image=0.4)])
    assert ok  # A's agreement 0.9 -> 0.8 is one exam in ten: noise
    ok, reasons = verdict([_row("baseline", "a"), base_b, _row("candidate", "a", density_agreement=0.7),
                           _row("candidate", "b", mass_fp_per_image=0.4)])
    assert not ok and "density_agreement" in reasons[1]
    ok, reasons = verdict([_row("baseline", "a"), base_b, _row("candidate", "a"),
                           _row("candidate", "b", density_agreement=0.4, mass_fp_per_image=5.0)])
    assert not ok and "not better" in reasons[0]


def test_one_more_false_mark_in_a_lesion_free_breast_is_noise_and_two_are_worse() -> None:
    base_b = _row("baseline", "b", mass_fp_per_image=5.0, marks_in_lesion_free_breasts=300)
    better_b = _row("candidate", "b", mass_fp_per_image=0.4, marks_in_lesion_free_breasts=25)
    ok, _ = verdict([_row("baseline", "a", marks_in_lesion_free_breasts=9), base_b,
                     _row("candidate", "a", marks_in_lesion_free_breasts=10), better_b])
    assert ok
    ok, reasons = verdict([_row("baseline", "a", marks_in_lesion_free_breasts=9), base_b,
                           _row("candidate", "a", marks_in_lesion_free_breasts=11), better_b])
    assert not ok and "marks_in_lesion_free_breasts 9 -> 11" in reasons[1]


def test_a_network_trained_on_both_families_says_so_in_its_limitations() -> None:
    from training.mammography.export import FAMILY_TEXT, LIMITATIONS, limitations

    assert limitations(TrainConfig()) == LIMITATIONS  # version 1's card
    both = limitations(load_config(CONFIGS / "v2.json"))
    assert "two independently built families" in both[0] and FAMILY_TEXT["a"] in both[0] and FAMILY_TEXT["b"] in both[0]
    assert both[1:len(LIMITATIONS)] == LIMITATIONS[1:]
    assert "not a family the network has never seen" in " ".join(both)
    b_only = limitations(load_config(CONFIGS / "b_only.json"))
    assert FAMILY_TEXT["b"] in b_only[0] and FAMILY_TEXT["a"] not in b_only[0] and len(b_only) == len(LIMITATIONS)


def test_the_comparison_is_beside_the_latest_published_version_with_its_own_train_families(tmp_path: Path) -> None:
    """``python -m training.mammography.compare RUN`` (as ``make train-mammography`` runs it) compares the candidate
    with the version the service runs (version 2, trained on a+b), not with version 1: here the candidate is a copy
    of version 2, so the verdict keeps the baseline."""
    import shutil

    from training.mammography.compare import main

    repo = ROOT / "triton_repo"
    run = tmp_path / "run"
    version = run / "export" / "mammo_detector" / "1"
    version.mkdir(parents=True)
    shutil.copy(repo / "mammo_detector" / "config.pbtxt", version.parent / "config.pbtxt")
    for name in ("model.onnx", "model_card.json"):
        shutil.copy(repo / "mammo_detector" / "2" / name, version / name)
    shutil.copy(CONFIGS / "v2.json", run / "config.json")
    assert main([str(run), "--exams", "1", "--require-better"]) == 3  # no better than itself
    rows = json.loads((run / "comparison.json").read_text())
    baseline = [r for r in rows if r["role"] == "baseline"]
    assert [(r["version"], r["train_family"], r["family"]) for r in baseline] == [(2, "a+b", "a"), (2, "a+b", "b")]
    assert [r["measured"] for r in baseline] == [r["measured"] for r in rows if r["role"] == "candidate"]
