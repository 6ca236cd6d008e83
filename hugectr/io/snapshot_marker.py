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

The complete marker also carries what a resumed run needs and HugeCTR's files lack, under
``"training_state"``, keyed by the file it belongs with (``training_state()`` reads it back)::

    "m_opt_dense_10.model":   {"step_count": 10, "lr_scheduler_step": 10}
    "m0_opt_sparse_10.model": {"step": 10, "last_step_file": "m0_opt_sparse_10.model.last_step"}
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterator

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


def finish(prefix: str, iteration: int, files: list[str], data_source_params=None,
           training_state: dict | None = None) -> None:
    """Record that every file of the snapshot is written, with the sizes they must keep.

    ``training_state``: per file basename, the state beyond HugeCTR's files (module docstring).
    """
    sizes = {fs.basename(f): _size(f, data_source_params) for f in files}
    body = {"complete": True, "iteration": iteration, "files": sizes}
    if training_state:
        body["training_state"] = training_state
    atomic_write_bytes(marker_path(prefix, iteration), json.dumps(body, indent=2).encode(), data_source_params)


def _markers_naming(path: str, data_source_params=None) -> Iterator[tuple[str, dict]]:
    """``(marker path, body)`` of each of our markers beside ``path`` that lists it."""
    folder, name = fs.parent(path) or ".", fs.basename(path)
    pattern = f"*_snapshot_*{MARKER_SUFFIX}"
    for marker_name in sorted(n for n in fs.list_files(folder, data_source_params) if fnmatch.fnmatch(n, pattern)):
        marker = fs.join(folder, marker_name)
        try:
            body = json.loads(fs.read_text(marker, data_source_params))
            files = body["files"]
        except (OSError, ValueError, KeyError, TypeError):
            continue                      # not one of ours
        if isinstance(files, dict) and name in files:
            yield marker, body


def refuse_incomplete(path: str | os.PathLike, what: str, data_source_params=None) -> None:
    """Raise if a snapshot marker beside ``path`` says it is incomplete or has another size."""
    path = os.fspath(path)
    name = fs.basename(path)
    for marker, body in _markers_naming(path, data_source_params):
        if not body.get("complete"):
            raise ValueError(f"{what}: '{path}' belongs to snapshot {body.get('iteration')} whose writing never "
                             f"finished ({marker} says complete: false); load an earlier snapshot")
        files = body["files"]
        size = _size(path, data_source_params) if files[name] is not None else None
        if size is not None and size != files[name]:
            raise ValueError(f"{what}: '{path}' has {size} bytes but snapshot marker {marker} recorded "
                             f"{files[name]}; the file was changed or cut after the snapshot was written")


def training_state(path: str | os.PathLike, data_source_params=None) -> dict | None:
    """The ``training_state`` entry a complete marker beside ``path`` keeps for it, or None.

    None for files no marker names (HugeCTR's own snapshots) and for markers written before
    markers carried it: the caller then starts counting afresh, as HugeCTR does.
    """
    path = os.fspath(path)
    for _, body in _markers_naming(path, data_source_params):
        state = body.get("training_state")
        if body.get("complete") and isinstance(state, dict) and isinstance(state.get(fs.basename(path)), dict):
            return state[fs.basename(path)]
    return None
