"""Atomic file writes and checked raw-array reads: a crash never leaves a half-written file.

Local files are written to a temporary name and renamed. Remote files (``s3://``, ``gs://``, ``hdfs://``,
or a path on ``data_source_params``; see ``hugectr.io.fs``) are uploaded whole in one request, which
object stores make visible all at once; a folder there is a set of such objects.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import fs


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview, data_source_params=None) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    A remote ``path`` is uploaded whole instead (one object, visible all at once).
    """
    if fs.is_remote(path, data_source_params):
        fs.write_object(path, data, data_source_params)
        return
    path = Path(fs.local_path(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_array(path: str | os.PathLike, array: np.ndarray, data_source_params=None) -> None:
    """Raw little-endian bytes of ``array`` (HugeCTR's files have no header)."""
    data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
    atomic_write_bytes(path, data.tobytes(), data_source_params)


def atomic_write_folder(path: str | os.PathLike, files: dict[str, np.ndarray], data_source_params=None) -> None:
    """Write a folder of raw arrays under a temporary name, then swap it in whole.

    Remote: every array is one whole object; objects of an earlier folder that the new one lacks are
    deleted first (the snapshot marker, written last, is what says the folder is complete).
    """
    if fs.is_remote(path, data_source_params):
        for stale in set(fs.list_files(path, data_source_params)) - set(files):
            fs.remove(fs.join(path, stale), data_source_params)
        for name, array in files.items():
            atomic_write_array(fs.join(path, name), array, data_source_params)
        return
    path = Path(fs.local_path(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        for name, array in files.items():
            atomic_write_array(tmp / name, array)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_array(path: str | os.PathLike, dtype, what: str, count: int | None = None,
               data_source_params=None) -> np.ndarray:
    """Read a raw array, checking the file exists and its size fits ``dtype`` (and ``count`` if given)."""
    remote = fs.is_remote(path, data_source_params)
    path = os.fspath(path) if remote else Path(fs.local_path(path))
    if not fs.is_file(path, data_source_params):
        raise FileNotFoundError(f"{what}: file '{path}' does not exist")
    itemsize = np.dtype(dtype).itemsize
    size = fs.file_size(path, data_source_params)
    if size % itemsize:
        raise ValueError(f"{what}: '{path}' has {size} bytes, not a whole number of {np.dtype(dtype).name} values; "
                         "the file is truncated or not this kind of file")
    if count is not None and size != count * itemsize:
        raise ValueError(f"{what}: '{path}' holds {size // itemsize} {np.dtype(dtype).name} values but the model "
                         f"expects {count}; the file was written for a different model")
    dtype = np.dtype(dtype).newbyteorder("<")
    if not remote:
        return np.fromfile(path, dtype=dtype)
    out = np.empty(size // itemsize, dtype)
    if size == 0:
        return out
    with fs.open_input(path, data_source_params) as stream:     # straight into the array: no extra copy
        got = stream.readinto(memoryview(out).cast("B"))
    if got != size:
        raise ValueError(f"{what}: read {got} of the {size} bytes of '{path}'; the file changed while being read")
    return out
