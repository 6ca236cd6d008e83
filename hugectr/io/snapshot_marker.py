"""Snapshot markers: a snapshot cut short by a crash is never loaded as if it were whole.

HugeCTR's files carry no marker, so ours sit beside them: ``{prefix}_snapshot_{iter}.json``
lists the snapshot's files and says whether writing finished. It is written (atomically) with
``"complete": false`` before the first file and rewritten with the files' sizes and
``"complete": true`` after the last. Each file is itself written to a temporary name and
renamed, so a crash leaves either the old file or the new one, never half of one.

Loading a file checks every marker in its folder that names it: a marker still saying
``"complete": false`` (the writer died) or a size that differs refuses the load. Files no marker
names (written by HugeCTR, or by hand) load as before.

On remote storage (``hugectr.io.fs``) the same holds: every file is one whole object, the marker
is rewritten as complete only after the last of them.
"""

from __future__ import annotations

import fnmatch
import json
import os

from . import fs
from .files import atomic_write_bytes

MARKER_SUFFIX = ".json"


def marker_path(prefix: str, iteration: int) -> str:
    return f"{os.fspath(prefix)}_snapshot_{iteration}{MARKER_SUFFIX}"


def _size(path: str, data_source_params=None) -> int | None:
    """Bytes of a file, or of the files directly in a folder; None when neither exists."""
    if fs.is_file(path, data_source_params):
        return fs.file_size(path, data_source_params)
    if fs.is_dir(path, data_source_params):
        return sum(fs.list_files(path, data_source_params).values())
    return None


def begin(prefix: str, iteration: int, files: list[str], data_source_params=None) -> None:
    """Record that the snapshot's ``files`` are being written."""
    body = {"complete": False, "iteration": iteration, "files": {fs.basename(f): None for f in files}}
    atomic_write_bytes(marker_path(prefix, iteration), json.dumps(body, indent=2).encode(), data_source_params)


def finish(prefix: str, iteration: int, files: list[str], data_source_params=None) -> None:
    """Record that every file of the snapshot is written, with the sizes they must keep."""
    sizes = {fs.basename(f): _size(f, data_source_params) for f in files}
    body = {"complete": True, "iteration": iteration, "files": sizes}
    atomic_write_bytes(marker_path(prefix, iteration), json.dumps(body, indent=2).encode(), data_source_params)


def refuse_incomplete(path: str | os.PathLike, what: str, data_source_params=None) -> None:
    """Raise if a snapshot marker beside ``path`` says it is incomplete or has another size."""
    path = os.fspath(path)
    folder, name = fs.parent(path) or ".", fs.basename(path)
    pattern = f"*_snapshot_*{MARKER_SUFFIX}"
    for marker_name in sorted(n for n in fs.list_files(folder, data_source_params) if fnmatch.fnmatch(n, pattern)):
        marker = fs.join(folder, marker_name)
        try:
            body = json.loads(fs.read_text(marker, data_source_params))
            files = body["files"]
        except (OSError, ValueError, KeyError, TypeError):
            continue                      # not one of ours
        if not isinstance(files, dict) or name not in files:
            continue
        if not body.get("complete"):
            raise ValueError(f"{what}: '{path}' belongs to snapshot {body.get('iteration')} whose writing never "
                             f"finished ({marker} says complete: false); load an earlier snapshot")
        size = _size(path, data_source_params) if files[name] is not None else None
        if size is not None and size != files[name]:
            raise ValueError(f"{what}: '{path}' has {size} bytes but snapshot marker {marker} recorded "
                             f"{files[name]}; the file was changed or cut after the snapshot was written")
