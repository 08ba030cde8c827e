"""Durable spool: nothing is acknowledged before it is written, fsynced and renamed.

Layout under the spool root::

    instances/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
    tmp/<random>.part

Every path component is a UID that passed :func:`pacs_bridge.uids.validate_uid`,
so no peer can make us write outside the root.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info

from pacs_bridge.errors import SpoolFull
from pacs_bridge.inspect import InstanceInfo
from pacs_bridge.uids import is_valid_uid, validate_uid

LOGGER = logging.getLogger(__name__)

_COPY_CHUNK = 8 * 2**20


@dataclass(frozen=True)
class SpooledFile:
    path: Path
    size_bytes: int
    created: bool  # False when the SOP Instance UID was already in the spool


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in directory *path* durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _copy_range(out_fd: int, in_fd: int, offset: int, count: int) -> None:
    """Copy ``count`` bytes of *in_fd* from *offset* to *out_fd*, in the kernel where it can."""
    while count > 0:
        try:
            sent = os.sendfile(out_fd, in_fd, offset, min(count, _COPY_CHUNK))
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            sent = os.write(out_fd, os.pread(in_fd, min(count, _COPY_CHUNK), offset))
        if sent == 0:
            raise OSError(errno.EIO, f"source ended {count} bytes early")
        offset += sent
        count -= sent


def _write_through_tmp(path: Path, tmp_dir: Path, fill: Callable[[int], None]) -> None:
    tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        fill(fd)
        os.fdatasync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_durably(path: Path, data: bytes, tmp_dir: Path) -> None:
    """Write *data* to *path* through a temporary file: write, fsync, rename, fsync dir.

    A reader (or a restart after kill -9 or power loss) sees either no file
    or the whole file, never a part of it.
    """
    _write_through_tmp(path, tmp_dir, lambda fd: _write_all(fd, data))


def _size(source: BinaryIO) -> int:
    return source.seek(0, os.SEEK_END)


def _copy_stream(out_fd: int, source: BinaryIO, offset: int, count: int) -> None:
    """Copy ``source[offset:offset + count]``: in the kernel from a file, in chunks from memory."""
    try:
        in_fd = source.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation: a data set received into memory
        source.seek(offset)
        while chunk := source.read(min(count, _COPY_CHUNK)):
            _write_all(out_fd, chunk)
            count -= len(chunk)
        return
    _copy_range(out_fd, in_fd, offset, count)


def copy_durably(path: Path, header: bytes, source: BinaryIO, offset: int, tmp_dir: Path) -> int:
    """As :func:`write_durably`, with *header* then ``source[offset:]`` (copied in chunks, never
    held whole in memory). Returns the bytes written."""
    count = _size(source) - offset

    def fill(fd: int) -> None:
        _write_all(fd, header)
        _copy_stream(fd, source, offset, count)

    _write_through_tmp(path, tmp_dir, fill)
    return len(header) + count


class Spool:
    """The received-instance store. Thread-safe: each write uses its own temporary file."""

    def __init__(self, root: Path, min_free_bytes: int) -> None:
        self.root = root
        self.instances_dir = root / "instances"
        self.tmp_dir = root / "tmp"
        self.min_free_bytes = min_free_bytes
        self.instances_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._clean_tmp()

    def _clean_tmp(self) -> None:
        """Remove partial files left by a process that died mid-write (never acknowledged): ours, and
        the data sets pynetdicom was receiving (``tmp*.dcm``, when the service points the temporary
        folder here, see :mod:`aiws.cli_admin`)."""
        for part in [*self.tmp_dir.glob("*.part"), *self.tmp_dir.glob("tmp*.dcm")]:
            LOGGER.info("removing unacknowledged partial file %s", part.name)
            part.unlink(missing_ok=True)

    def path_for(self, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        """Return the spool path of an instance; every component is validated."""
        return (
            self.instances_dir
            / validate_uid(study_uid, "StudyInstanceUID")
            / validate_uid(series_uid, "SeriesInstanceUID")
            / f"{validate_uid(sop_uid, 'SOPInstanceUID')}.dcm"
        )

    def check_space(self, incoming_bytes: int) -> None:
        """Raise :class:`SpoolFull` when writing *incoming_bytes* would cross the watermark."""
        free = shutil.disk_usage(self.root).free
        if free - incoming_bytes < self.min_free_bytes:
            raise SpoolFull(
                f"below the disk watermark ({free // 2**20} MiB free, watermark {self.min_free_bytes // 2**20} MiB): "
                f"instance refused; spool {self.root}"  # the reason first: a DIMSE Error Comment keeps 64 characters
            )

    def store(self, info: InstanceInfo, encoded_file: bytes) -> SpooledFile:
        """Keep one instance (DICOM file bytes, with meta). Idempotent on SOP Instance UID.

        Raises:
            SpoolFull: below the free-space watermark; nothing is written.
            OSError: the write failed; the temporary file is removed.
        """
        path, known = self._place(info)
        if known is not None:
            return known
        self.check_space(len(encoded_file))
        self._make_parent(path)
        write_durably(path, encoded_file, self.tmp_dir)
        return SpooledFile(path, len(encoded_file), created=True)

    def store_stream(self, info: InstanceInfo, header: bytes, source: BinaryIO, offset: int) -> SpooledFile:
        """As :meth:`store`, the file being *header* then ``source[offset:]`` (a received data set in a
        file), copied without holding it in memory.

        Raises:
            SpoolFull: below the free-space watermark; nothing is written.
            OSError: the write failed; the temporary file is removed.
        """
        path, known = self._place(info)
        if known is not None:
            return known
        self.check_space(len(header) + _size(source) - offset)
        self._make_parent(path)
        size = copy_durably(path, header, source, offset, self.tmp_dir)
        return SpooledFile(path, size, created=True)

    def adopt(self, info: InstanceInfo, source: BinaryIO) -> SpooledFile | None:
        """Keep a received Part 10 file by renaming it into place (fdatasync, rename, fsync dir), when
        it lies in this spool's tmp folder (the service stages received data sets there) and its File
        Meta names *info*'s SOP class, instance and transfer syntax; None when it cannot be adopted
        (then :meth:`store_stream` copies it). Saves writing every image twice.

        Raises:
            SpoolFull: below the free-space watermark; nothing is moved.
            OSError: the sync or the rename failed.
        """
        name = getattr(source, "name", None)
        if not isinstance(name, str) or Path(name).resolve().parent != self.tmp_dir.resolve():
            return None
        try:
            meta = read_file_meta_info(name)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            return None
        if (meta.get("MediaStorageSOPClassUID"), meta.get("MediaStorageSOPInstanceUID"),
                meta.get("TransferSyntaxUID")) != (info.sop_class_uid, info.sop_instance_uid, info.transfer_syntax_uid):
            return None
        path, known = self._place(info)
        if known is not None:
            return known
        size = _size(source)
        self.check_space(0)
        self._make_parent(path)
        os.fdatasync(source.fileno())
        os.replace(name, path)
        fsync_dir(path.parent)
        return SpooledFile(path, size, created=True)

    def _place(self, info: InstanceInfo) -> tuple[Path, SpooledFile | None]:
        """Where *info* is kept, and the file already there (a duplicate: stores are idempotent) or None."""
        path = self.path_for(info.study_instance_uid, info.series_instance_uid, info.sop_instance_uid)
        return path, SpooledFile(path, path.stat().st_size, created=False) if path.exists() else None

    def _make_parent(self, path: Path) -> None:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fsync_dir(path.parent.parent)
            fsync_dir(path.parent.parent.parent)

    def iter_files(self) -> Iterator[tuple[str, str, str, Path]]:
        """Yield (study, series, sop, path) for every complete file in the spool."""
        for study_dir in self.instances_dir.iterdir():
            if not (study_dir.is_dir() and is_valid_uid(study_dir.name)):
                continue
            for series_dir in study_dir.iterdir():
                if not (series_dir.is_dir() and is_valid_uid(series_dir.name)):
                    continue
                for f in series_dir.glob("*.dcm"):
                    if is_valid_uid(f.stem):
                        yield study_dir.name, series_dir.name, f.stem, f

    def remove_study(self, study_uid: str) -> None:
        """Delete every instance of a study (retention)."""
        study_dir = self.instances_dir / validate_uid(study_uid, "StudyInstanceUID")
        if study_dir.exists():
            shutil.rmtree(study_dir)
