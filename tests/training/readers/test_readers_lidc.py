"""LIDC-IDRI reader on a CT series written with pydicom and a reader XML with four reading sessions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from factories import make_ct_series
from training.readers import read_dataset
from training.readers.case import NoduleType
from training.readers.lidc import texture_type

NS = "http://www.nih.gov"


def _diamond(cx: int, cy: int, rx: int, ry: int) -> list[tuple[int, int]]:
    """An outline with axes 2 rx (columns) and 2 ry (rows) pixels, on integer pixels as LIDC gives them."""
    return [(cx + rx, cy), (cx, cy + ry), (cx - rx, cy), (cx, cy - ry)]


def _roi(sop: str, z: float, points: list[tuple[int, int]]) -> str:
    edges = "".join(f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>" for x, y in points)
    return (f"<roi><imageZposition>{z:.6f}</imageZposition><imageSOP_UID>{sop}</imageSOP_UID>"
            f"<inclusion>TRUE</inclusion>{edges}</roi>")


def _nodule(nid: str, rois: list[str], texture: int | None) -> str:
    chars = "" if texture is None else (
        "<characteristics><subtlety>4</subtlety><internalStructure>1</internalStructure><calcification>6"
        "</calcification><sphericity>4</sphericity><margin>4</margin><lobulation>2</lobulation><spiculation>1"
        f"</spiculation><texture>{texture}</texture><malignancy>3</malignancy></characteristics>")
    return f"<unblindedReadNodule><noduleID>{nid}</noduleID>{chars}{''.join(rois)}</unblindedReadNodule>"


def _xml(series_uid: str, sessions: list[list[str]]) -> str:
    body = "".join(f"<readingSession><annotationVersion>3.12</annotationVersion><servicingRadiologistID>"
                   f"reader{n}</servicingRadiologistID>{''.join(s)}</readingSession>" for n, s in enumerate(sessions))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<LidcReadMessage uid="1.3.6.1.4.1.14519.5.2.1.6279.6001.1" '
            f'xmlns="{NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><ResponseHeader><Version>1.8'
            f"</Version><MessageId>1</MessageId><TaskDescription>Second unblinded read</TaskDescription>"
            f"<SeriesInstanceUid>{series_uid}</SeriesInstanceUid></ResponseHeader>{body}</LidcReadMessage>")


def _series(root: Path, patient: str, n_slices: int = 8) -> tuple[list[str], list[float], str]:
    folder = root / "LIDC-IDRI" / patient / "1.2.826.0.1.3680043.8.498.1" / "1.2.826.0.1.3680043.8.498.2"
    paths = make_ct_series(folder, n_slices=n_slices, series_uid=None)
    headers = [dcmread(p, stop_before_pixels=True) for p in paths]
    return ([str(h.SOPInstanceUID) for h in headers], [float(h.ImagePositionPatient[2]) for h in headers],
            str(headers[0].SeriesInstanceUID))


def test_lidc_keeps_nodules_marked_by_half_of_the_readers(tmp_path: Path) -> None:
    sops, zs, series_uid = _series(tmp_path, "LIDC-IDRI-0001")

    def outline(k: int, cx: int, cy: int, rx: int = 5, ry: int = 5) -> str:
        return _roi(sops[k], zs[k], _diamond(cx, cy, rx, ry))

    nodule_a = [outline(3, 30, 30), outline(4, 30, 30), outline(5, 30, 30)]      # centre (k 4, row 30, col 30)
    nodule_c = [outline(6, 15, 50, 4, 2)]                                          # centre (k 6, row 50, col 15)
    # The same outline naming a SOP Instance UID the series does not hold: found by its z position.
    nodule_c_other_uid = [_roi("1.2.3.999", zs[6], _diamond(15, 50, 4, 2))]
    small = [_roi(sops[1], zs[1], [(50, 50)])]                                    # a < 3 mm mark: one point
    sessions = [
        [_nodule("A1", nodule_a, 5), _nodule("B1", [outline(2, 50, 10)], 5),
         ("<nonNodule><nonNoduleID>n1</nonNoduleID><imageZposition>0</imageZposition><imageSOP_UID>"
          f"{sops[0]}</imageSOP_UID><locus><xCoord>5</xCoord><yCoord>5</yCoord></locus></nonNodule>")],
        [_nodule("A2", nodule_a, 5), _nodule("C2", nodule_c, 1)],
        [_nodule("A3", nodule_a[1:], 4), _nodule("S3", small, None)],
        [_nodule("C4", nodule_c_other_uid, 2), _nodule("S4", small, None)],
    ]
    folder = tmp_path / "LIDC-IDRI" / "LIDC-IDRI-0001" / "1.2.826.0.1.3680043.8.498.1" / "1.2.826.0.1.3680043.8.498.2"
    (folder / "069.xml").write_text(_xml(series_uid, sessions), encoding="utf-8")
    # A second patient whose XML names a series that is not beside it.
    _series(tmp_path, "LIDC-IDRI-0002")
    other = tmp_path / "LIDC-IDRI" / "LIDC-IDRI-0002" / "1.2.826.0.1.3680043.8.498.1" / "1.2.826.0.1.3680043.8.498.2"
    (other / "071.xml").write_text(_xml("1.2.3.4.5", sessions[:1]), encoding="utf-8")

    result = read_dataset(tmp_path, "lidc")
    (case,) = result.cases
    assert case.case_id == "LIDC-IDRI-0001"
    found = sorted(case.nodules, key=lambda n: n.diameter_mm)
    assert len(found) == 2                      # A (3 readers) and C (2 of 4); B (1 reader) and the point marks go
    c, a = found
    np.testing.assert_allclose(case.image.lps_to_index(np.array([a.centre_lps_mm]))[0],
                               [(4 + 4 + 4.5) / 3, 30, 30], atol=0.05)   # reader 3 outlined slices 4-5 only
    np.testing.assert_allclose(case.image.lps_to_index(np.array([c.centre_lps_mm]))[0], [6, 50, 15], atol=0.05)
    assert a.diameter_mm == pytest.approx(10 * 0.7)           # axes 10 px, 0.7 mm pixels
    assert c.diameter_mm == pytest.approx((8 + 4) / 2 * 0.7)   # long 8 px, short 4 px
    assert a.nodule_type is NoduleType.SOLID and c.nodule_type is NoduleType.GROUND_GLASS
    assert "069.xml" in {Path(s.name).name for s in case.sources}
    ((skipped_id, reason),) = [(s.case_id, s.reason) for s in result.skipped]
    assert skipped_id == "LIDC-IDRI-0002" and "series 1.2.3.4.5 is not beside the XML" in reason


def test_texture_maps_to_nodule_type() -> None:
    assert [texture_type(t) for t in range(1, 6)] == [NoduleType.GROUND_GLASS, NoduleType.GROUND_GLASS,
                                                      NoduleType.PART_SOLID, NoduleType.SOLID, NoduleType.SOLID]
