"""Lung phantom family B (issue 28): differs from family A in anatomy and appearance, truth right at its
edges (perifissural on a fissure, round juxtapleural keeps its size category), DICOM valid, dataset --family."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from models.lung_nodules.lungrads import NoduleForRads, NoduleType, nodule_category
from training.ct_dicom import CtSeriesInfo
from training.lung_nodules.dataset import main as dataset_main
from training.lung_nodules.phantom import PhantomConfig, generate_phantom
from training.lung_nodules.phantom_b import PhantomConfigB, generate_phantom_b, write_dicom_b
from training.msd import read_case

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from peers import dciodvfy_errors, have_tool

EDGE_KINDS = ("perifissural", "juxtapleural-round", "juxtapleural-lentiform", "juxtapleural-triangular")


@pytest.fixture(scope="module")
def edge_phantoms() -> list:
    config = PhantomConfigB(max_matrix=200, kinds=EDGE_KINDS, diameter_mm=(5.0, 9.5))
    return [generate_phantom_b(seed, config) for seed in (1, 2)]


def _body_fill(hu: np.ndarray) -> float:
    """Share of the body's bounding box the body covers on the middle slice (a super-ellipse fills more)."""
    body = ndimage.binary_fill_holes(hu[hu.shape[0] // 2] > -500)
    rows, cols = np.nonzero(body)
    return float(body.sum()) / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))


def _high_frequency_share(hu: np.ndarray) -> float:
    """Share of the noise power above half the Nyquist frequency in the air in front of the body."""
    patch = hu[hu.shape[0] // 2, :24, 40:-40].astype(np.float64)
    patch -= patch.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(patch, axis=1)) ** 2
    half = power.shape[1] // 2
    return float(power[:, half:].sum() / power[:, 1:].sum())


def test_family_b_differs_from_a_in_anatomy_and_appearance() -> None:
    a = [generate_phantom(s, PhantomConfig(max_matrix=160, z_extent_mm=50.0)) for s in range(3)]
    b = [generate_phantom_b(s, PhantomConfigB(max_matrix=160, z_extent_mm=50.0, nodules=(1, 1))) for s in range(3)]
    fill_a, fill_b = [_body_fill(p.hu) for p in a], [_body_fill(p.hu) for p in b]
    print("body fill A", np.round(fill_a, 3), "B", np.round(fill_b, 3))
    assert max(fill_a) < min(fill_b)  # family B's body is boxier (super-ellipse power 2.6-3.4)
    assert all(p.info["family"] == "b" and p.info["fissures"] for p in b)
    assert {p.info["kernel"] for p in b} | {p.info["kernel"] for p in (generate_phantom_b(s, PhantomConfigB(
        max_matrix=96, z_extent_mm=20.0, nodules=(0, 0))) for s in range(3, 8))} == {"soft", "sharp"}
    sharp = [p for p in b if p.info["kernel"] == "sharp"] or [generate_phantom_b(s, PhantomConfigB(
        max_matrix=160, z_extent_mm=30.0, nodules=(0, 0))) for s in range(3, 8)]
    sharp = [p for p in sharp if p.info["kernel"] == "sharp"]
    hf_a = [_high_frequency_share(p.hu) for p in a]
    hf_b = [_high_frequency_share(p.hu) for p in sharp]
    print("noise power above Nyquist/2: A", np.round(hf_a, 3), "B sharp", np.round(hf_b, 3))
    assert min(hf_b) > max(hf_a)  # the sharp kernel's noise is fine-grained, family A's is low-passed


def test_perifissural_nodule_lies_on_its_fissure(edge_phantoms: list) -> None:
    checked = 0
    for p in edge_phantoms:
        planes = [(np.array(f["point_mm"]), np.array(f["normal"])) for f in p.info["fissures"]]
        for n in p.nodules:
            if n["kind"] != "perifissural":
                continue
            centre = np.array(n["centre_mm"])
            distance = min(abs(float((centre - q) @ m)) for q, m in planes)
            assert distance < 0.5 and n["fissure_distance_mm"] < 0.5
            voxels = p.grid.to_mm(np.argwhere(p.labels == n["label"]))
            side = [(voxels - q) @ m for q, m in planes]
            assert any((s < 0).any() and (s > 0).any() for s in side)  # the plane runs through the nodule
            assert n["juxtapleural"] and n["pleura"] == "fissural" and n["pleural_shape"] == "lentiform"
            if n["mean_diameter_mm"] < 10:
                assert n["lung_rads"] == "2"
            checked += 1
    assert checked >= 1


def test_juxtapleural_truth_rule_and_contact(edge_phantoms: list) -> None:
    seen = set()
    for p in edge_phantoms:
        for n in p.nodules:
            if not n["kind"].startswith("juxtapleural"):
                continue
            seen.add(n["kind"])
            by_size = nodule_category(NoduleForRads(NoduleType.SOLID, n["mean_diameter_mm"])).value
            if n["kind"] == "juxtapleural-round":
                assert n["pleural_shape"] == "round" and n["lung_rads"] == by_size
            elif n["mean_diameter_mm"] < 10:
                assert n["lung_rads"] == "2", n
            mask = p.labels == n["label"]
            assert (ndimage.binary_dilation(mask, iterations=2) & ~p.lung).any(), n  # touches the pleura
    assert "juxtapleural-round" in seen and len(seen) >= 2


@pytest.mark.skipif(not have_tool("dciodvfy"), reason="dicom3tools not installed")
def test_family_b_dicom_unsigned_with_intercept(tmp_path: Path) -> None:
    p = generate_phantom_b(4, PhantomConfigB(max_matrix=128, z_extent_mm=12.0, nodules=(1, 1)))
    paths = write_dicom_b(p, tmp_path, CtSeriesInfo(seed_text="family-b-4"))
    assert len(paths) == p.hu.shape[0]
    ds = pydicom.dcmread(paths[0])
    assert ds.PixelRepresentation == 0 and ds.BitsStored == 12 and float(ds.RescaleIntercept) == -1024
    assert int(ds.KVP) == p.info["kvp"] and ds.ConvolutionKernel
    hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    assert np.array_equal(hu, np.clip(p.hu[0], -1024, 3071))
    assert dciodvfy_errors(paths[0]) == []


def test_dataset_writer_family_b(tmp_path: Path) -> None:
    assert dataset_main(["--out", str(tmp_path), "--seeds", "7", "--family", "b", "--slab-mm", "20",
                         "--max-matrix", "96", "--nodules", "1:1"]) == 0
    doc = json.loads((tmp_path / "dataset.json").read_text())
    assert doc["phantom"]["family"] == "b"
    case = read_case(tmp_path, "lungb_00007")
    assert case.meta["family"] == "b" and case.meta["kernel"] in ("soft", "sharp")
    assert all("lung_rads" in n and "centre_mm" in n for n in case.meta["nodules"])


def test_dataset_writer_default_family_a_unchanged(tmp_path: Path) -> None:
    assert dataset_main(["--out", str(tmp_path), "--seeds", "7", "--slab-mm", "20", "--max-matrix", "96",
                         "--nodules", "1:1"]) == 0
    doc = json.loads((tmp_path / "dataset.json").read_text())
    assert "family" not in doc["phantom"]
    case = read_case(tmp_path, "lung_00007")
    direct = generate_phantom(7, PhantomConfig(z_extent_mm=20.0, max_matrix=96, nodules=(1, 1)))
    assert np.array_equal(case.image, direct.hu) and case.meta["nodules"] == json.loads(direct.truth_json())["nodules"]


def test_dataset_writer_appends_the_other_family(tmp_path: Path) -> None:
    """A training set of both families (issue 28): --append keeps family A's cases, lists both and records each
    family's seeds; appending a family already there is refused before anything is written."""
    from training.lung_nodules.dataset import dataset_families, dataset_seeds

    common = ["--out", str(tmp_path), "--slab-mm", "20", "--max-matrix", "96", "--nodules", "1:1"]
    assert dataset_main([*common, "--seeds", "7,8"]) == 0
    assert dataset_main([*common, "--seeds", "8", "--family", "b", "--append"]) == 0
    doc = json.loads((tmp_path / "dataset.json").read_text())
    assert [t["image"] for t in doc["training"]] == ["./imagesTr/lung_00007.nii.gz", "./imagesTr/lung_00008.nii.gz",
                                                     "./imagesTr/lungb_00008.nii.gz"]
    assert doc["numTraining"] == 3 and "family" not in doc["phantom"]
    assert dataset_families(tmp_path) == {"a": [7, 8], "b": [8]} and dataset_seeds(tmp_path) == [7, 8]
    assert doc["phantom"]["families"]["a"]["config"]["max_matrix"] == 96
    assert read_case(tmp_path, "lungb_00008").meta["family"] == "b"
    with pytest.raises(SystemExit):
        dataset_main([*common, "--seeds", "9", "--append"])
    assert not (tmp_path / "imagesTr" / "lung_00009.nii.gz").exists()
    assert dataset_families(tmp_path) == {"a": [7, 8], "b": [8]}
