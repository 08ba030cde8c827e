"""MetaImage (``.mhd`` header + ``.raw`` data, or ``LOCAL`` data after the header), read without ITK.

Format (MetaIO, https://itk.org/Wiki/ITK/MetaIO/Documentation): ``Key = Value`` lines; ``ElementDataFile``
is the last key and names the data file (relative to the header), or ``LOCAL`` for data after the header.
Keys used: ``NDims`` (3), ``DimSize`` (x y z, x fastest in the file), ``ElementSpacing``, ``Offset`` (alias
``Origin``, ``Position``: the physical position of the first voxel's centre), ``TransformMatrix`` (alias
``Rotation``, ``Orientation``: 9 numbers, three at a time the direction cosine of the x, then y, then z axis
of the array, as ITK's MetaImageIO reads them), ``ElementType`` (``MET_SHORT`` …), ``BinaryDataByteOrderMSB``
(alias ``ElementByteOrderMSB``), ``CompressedData`` (zlib), ``HeaderSize`` (bytes to skip; -1: data at the end),
``ElementNumberOfChannels`` (1 only).

Physical coordinates: ITK's physical space, in which MetaImage headers are written, is LPS (+x towards the
patient's left, +y posterior, +z superior), the same as DICOM; ``AnatomicalOrientation`` (e.g. ``RAI``) is a
label that ITK does not apply when reading, and neither do we. So ``world = Offset + D · diag(spacing) · (i, j, k)``
is LPS directly, and LUNA16's ``annotations.csv`` world coordinates are LPS millimetres.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from imaging.volume import Volume
from training.readers.case import CaseError

_TYPES = {"MET_CHAR": "i1", "MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_USHORT": "u2", "MET_INT": "i4",
          "MET_UINT": "u4", "MET_LONG": "i4", "MET_ULONG": "u4", "MET_LONG_LONG": "i8", "MET_ULONG_LONG": "u8",
          "MET_FLOAT": "f4", "MET_DOUBLE": "f8"}
_ALIASES = {"Origin": "Offset", "Position": "Offset", "Rotation": "TransformMatrix", "Orientation": "TransformMatrix",
            "ElementByteOrderMSB": "BinaryDataByteOrderMSB"}


def read_header(path: Path) -> tuple[dict[str, str], int]:
    """The header's keys (aliases resolved) and the byte offset just after the ``ElementDataFile`` line.

    Raises:
        CaseError: no ``ElementDataFile`` key, or a line that is not ``Key = Value``.
    """
    raw = path.read_bytes()
    keys: dict[str, str] = {}
    pos = 0
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        end = len(raw) if end < 0 else end
        line = raw[pos:end].decode("latin-1").strip()
        pos = end + 1
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise CaseError(f"{path.name}: header line {line[:40]!r} is not 'Key = Value'")
        key = _ALIASES.get(key.strip(), key.strip())
        keys[key] = value.strip()
        if key == "ElementDataFile":
            return keys, pos
    raise CaseError(f"{path.name}: no ElementDataFile key (not a MetaImage header)")


def _floats(keys: dict[str, str], key: str, n: int, default: list[float], name: str) -> np.ndarray:
    values = [float(v) for v in keys.get(key, " ".join(str(d) for d in default)).split()]
    if len(values) != n:
        raise CaseError(f"{name}: {key} has {len(values)} values, expected {n}")
    return np.array(values)


def read_mhd(path: Path) -> tuple[Volume, list[Path]]:
    """A 3-D MetaImage as a :class:`Volume` (voxels ``(k, r, c)`` = (z, y, x), affine to LPS mm) and the
    files read (header and data).

    Raises:
        CaseError: not 3-D, several channels, an unknown element type, slice-list data files, or a data
            file of the wrong size.
    """
    keys, data_start = read_header(path)
    name = path.name
    if keys.get("NDims", "3") != "3":
        raise CaseError(f"{name}: NDims {keys.get('NDims')}; expected 3")
    if keys.get("ElementNumberOfChannels", "1") != "1":
        raise CaseError(f"{name}: {keys['ElementNumberOfChannels']} channels per voxel; expected 1")
    dims = [int(v) for v in keys.get("DimSize", "").split()]
    if len(dims) != 3 or min(dims) < 1:
        raise CaseError(f"{name}: DimSize {keys.get('DimSize')!r}; expected three positive sizes")
    code = _TYPES.get(keys.get("ElementType", ""))
    if code is None:
        raise CaseError(f"{name}: ElementType {keys.get('ElementType')!r} is not supported")
    msb = keys.get("BinaryDataByteOrderMSB", "False").lower() == "true"
    dtype = np.dtype(code).newbyteorder(">" if msb else "<")
    spacing = _floats(keys, "ElementSpacing", 3, [1.0, 1.0, 1.0], name)
    offset = _floats(keys, "Offset", 3, [0.0, 0.0, 0.0], name)
    direction = _floats(keys, "TransformMatrix", 9, [1, 0, 0, 0, 1, 0, 0, 0, 1], name).reshape(3, 3).T
    data_file = keys["ElementDataFile"]
    files = [path]
    if data_file.upper() == "LOCAL":
        payload = path.read_bytes()[data_start:]
    elif data_file.upper().startswith("LIST") or "%" in data_file:
        raise CaseError(f"{name}: ElementDataFile {data_file!r} (one file per slice) is not supported")
    else:
        data_path = path.parent / data_file
        if not data_path.is_file():
            raise CaseError(f"{name}: data file {data_file} not found beside the header")
        payload = data_path.read_bytes()
        files.append(data_path)
    if keys.get("CompressedData", "False").lower() == "true":
        payload = zlib.decompress(payload)
    need = int(np.prod(dims)) * dtype.itemsize
    header_size = int(keys.get("HeaderSize", "0"))
    if header_size == -1:
        payload = payload[len(payload) - need:]
    elif header_size > 0:
        payload = payload[header_size:]
    if len(payload) < need:
        raise CaseError(f"{name}: data holds {len(payload)} bytes, {need} needed for {dims} {keys['ElementType']}")
    array = np.frombuffer(payload[:need], dtype=dtype).reshape(dims[2], dims[1], dims[0])
    # (k, r, c) = (z, y, x): column c of the affine is the x axis, r the y axis, k the z axis.
    affine = np.eye(4)
    affine[:3, 0] = direction[:, 2] * spacing[2]
    affine[:3, 1] = direction[:, 1] * spacing[1]
    affine[:3, 2] = direction[:, 0] * spacing[0]
    affine[:3, 3] = offset
    return Volume(voxels=array.astype(np.float32), affine=affine), files
