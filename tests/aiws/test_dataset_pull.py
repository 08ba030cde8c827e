"""``aiws dataset pull`` from a real Orthanc holding two studies with SEG (highdicom) and SR (imaging.sr): C-FIND at
study level, C-GET of each whole study, a dicom-seg dataset the reader takes, and a resumed pull after an
interrupted one (the complete study skipped, the partial one completed)."""
from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.sr.codedict import codes

from aiws.cli import main
from factories import make_ct_series
from imaging.results import Finding, Measurement, ResultContext
from imaging.sr import write_sr
from imaging.volume import load_volume
from models.lung_nodules.report import DIAMETER, MM, NODULE
from training.readers import read_dataset

CONTEXT = ResultContext(uid_root="1.2.826.0.1.3680043.10.1078", pipeline="lung_nodules", model_version="2.1.0")
STUDIES = {"1.2.826.0.1.3680043.8.498.601": "PULL001", "1.2.826.0.1.3680043.8.498.602": "PULL002"}


def _study(root: Path, study_uid: str, accession: str, n_slices: int) -> list[Path]:
    ct = make_ct_series(root / "ct", n_slices=n_slices, study_uid=study_uid)
    for p in ct:
        ds = dcmread(p)
        ds.AccessionNumber = accession
        ds.save_as(p, enforce_file_format=True)
    volume = load_volume(ct)
    label = np.zeros(volume.shape, dtype=np.uint8)
    label[1:3, 10:20, 10:20] = 1
    seg = hd.seg.Segmentation(
        source_images=[dcmread(p) for p in ct], pixel_array=label,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[hd.seg.SegmentDescription(
            segment_number=1, segment_label="Nodule", segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Nodule, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)],
        series_instance_uid=hd.UID(), series_number=300, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="test", manufacturer_model_name="test", software_versions="0", device_serial_number="0")
    seg.save_as(root / "seg.dcm")
    sr = write_sr(volume, [Finding("nodule-1", NODULE, measurements=(Measurement(DIAMETER, 6.0, MM),),
                                   segment_number=1)], CONTEXT, seg=seg)
    sr.save_as(root / "sr.dcm", enforce_file_format=True)
    return [*ct, root / "seg.dcm", root / "sr.dcm"]


def _config(tmp_path: Path, orthanc_port: int, retrieve: str = "c-get") -> Path:
    path = tmp_path / "aiws.toml"
    path.write_text(f"""
[dicom]
ae_title = "AIWS"
[[dicom.sources]]
ae_title = "ORTHANC"
host = "127.0.0.1"
port = {orthanc_port}
query_retrieve = "{retrieve}"
[storage]
data_dir = "{tmp_path / 'var'}"
""", encoding="utf-8")
    return path


@pytest.mark.network
def test_pull_two_studies_then_resume_an_interrupted_one(tmp_path: Path, orthanc_factory,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from peers import free_port

    orthanc = orthanc_factory({"AIWS": ("AIWS", "127.0.0.1", free_port())})
    sizes = {}
    for n, (uid, accession) in enumerate(STUDIES.items()):
        files = _study(tmp_path / "src" / accession, uid, accession, n_slices=4 + 2 * n)
        orthanc.upload(files)
        sizes[uid] = len(files)
    other = make_ct_series(tmp_path / "src" / "other", n_slices=2)   # a study the query does not match
    orthanc.upload(other)
    config, out = _config(tmp_path, orthanc.dicom_port), tmp_path / "dataset"

    assert main(["--config", str(config), "dataset", "pull", "--source", "ORTHANC", "--query",
                 "AccessionNumber=PULL*", "--out", str(out)]) == 0
    console = capsys.readouterr().out
    for uid, n in sizes.items():
        assert f"study {uid}: {n} instances ({n - 2} CT, 1 SEG, 1 SR)" in console
        assert len(list((out / uid).glob("*.dcm"))) == n
    manifest = json.loads((out / "pull-manifest.json").read_text())["studies"]
    assert {k: v["state"] for k, v in manifest.items()} == {uid: "complete" for uid in STUDIES}
    assert not (out / str(dcmread(other[0]).StudyInstanceUID)).exists()
    result = read_dataset(out, "dicom-seg")
    assert len(result.cases) == 2
    assert all(int(c.label.voxels.sum()) == 2 * 10 * 10 and len(c.nodules) == 1 for c in result.cases)

    # An interrupted pull: the second study was being retrieved (manifest "partial", some files on disk).
    first, second = STUDIES
    kept = sorted((out / second).glob("*.dcm"))
    for path in kept[::2]:
        path.unlink()
    manifest[second] = {"state": "partial", "expected": sizes[second]}
    (out / "pull-manifest.json").write_text(json.dumps({"source": "ORTHANC", "studies": manifest}))
    before = {p.name: p.stat().st_mtime_ns for p in (out / first).glob("*.dcm")}
    (tmp_path / "accessions.txt").write_text("# study list\nPULL001\n\nPULL002\n", encoding="utf-8")

    assert main(["--config", str(config), "dataset", "pull", "--source", "ORTHANC", "--accessions",
                 str(tmp_path / "accessions.txt"), "--out", str(out)]) == 0
    console = capsys.readouterr().out
    assert f"study {first}: complete already ({sizes[first]} instances), skipped" in console
    assert f"study {second}: {sizes[second]} instances" in console
    assert {p.name: p.stat().st_mtime_ns for p in (out / first).glob("*.dcm")} == before
    assert len(list((out / second).glob("*.dcm"))) == sizes[second]
    manifest = json.loads((out / "pull-manifest.json").read_text())["studies"]
    assert manifest[second]["state"] == "complete" and manifest[second]["instances"] == sizes[second]
    assert len(read_dataset(out, "dicom-seg").cases) == 2


@pytest.mark.network
def test_pull_by_c_move_lands_through_the_service_scp(tmp_path: Path, orthanc_factory) -> None:
    """C-MOVE: Orthanc sends to our SCP (as the running service's), which files the instances of the expected
    study into the retrieve inbox under the data directory; the pull takes them from there."""
    from aiws.intake import LedgerListener
    from aiws.ledger import Ledger
    from aiws.priors import RETRIEVE_DIR
    from pacs_bridge.retrieve import RetrieveInbox
    from pacs_bridge.scp import StorageSCP
    from pacs_bridge.settings import AcceptPolicy, ScpSettings, Source
    from pacs_bridge.spool import Spool
    from peers import free_port

    port = free_port()
    orthanc = orthanc_factory({"AIWS": ("AIWS", "127.0.0.1", port)})
    uid, accession = next(iter(STUDIES.items()))
    files = _study(tmp_path / "src", uid, accession, n_slices=3)
    orthanc.upload(files)
    config, out = _config(tmp_path, orthanc.dicom_port, "c-move"), tmp_path / "dataset"
    data = tmp_path / "var"
    ledger = Ledger(data / "aiws.db")
    scp = StorageSCP(ScpSettings(host="127.0.0.1", port=port), lambda: AcceptPolicy("AIWS", True, (Source("ORTHANC"),)),
                     Spool(data / "spool", 0), LedgerListener(ledger), RetrieveInbox(data / RETRIEVE_DIR))
    scp.start()
    try:
        assert main(["--config", str(config), "dataset", "pull", "--source", "ORTHANC", "--query",
                     f"AccessionNumber={accession}", "--out", str(out)]) == 0
    finally:
        scp.stop()
    assert len(list((out / uid).glob("*.dcm"))) == len(files)
    assert not ledger.known_instance_uids()   # retrieved, not spooled and routed as a new study
    assert len(read_dataset(out, "dicom-seg").cases) == 1


def test_pull_refuses_an_unknown_source_and_a_bad_query_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, 4242)
    assert main(["--config", str(config), "dataset", "pull", "--source", "NOPACS", "--query", "PatientID=X",
                 "--out", str(tmp_path / "o")]) != 0
    assert "not one of dicom.sources" in capsys.readouterr().err
    assert main(["--config", str(config), "dataset", "pull", "--source", "ORTHANC", "--query", "PatientNam=X",
                 "--out", str(tmp_path / "o")]) != 0
    assert "--query PatientNam: expected KEY=VALUE" in capsys.readouterr().err
