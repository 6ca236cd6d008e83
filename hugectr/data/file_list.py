"""HugeCTR's file list: line 1 is the number of files N, then N data-file paths, one a line.

HugeCTR opens every listed path verbatim, i.e. relative to the current working directory.
EXTENSION: a relative path that does not exist there is also looked up relative to the folder
holding the file list, so a dataset folder can be moved or read from another directory.

Remote lists (``s3://``, ``gs://``, ``hdfs://``, or a path on ``data_source_params``: ``hugectr.io.fs``):
a line that is a URL is used as it is; any other line is a path on the list's own file system,
a relative one taken beside the list (there is no working directory there), an absolute one on the
same bucket / namenode of a URL list (``/dir/x`` in ``s3://b/l.txt`` is ``s3://b/dir/x``) or, in a
list given as a plain path on ``data_source_params``, a path there (S3 / GCS: ``/bucket/key``).
Remote data files are checked with one listing per folder.
"""

from __future__ import annotations

import os

from ..io import fs


def read_file_list(file_list: str, data_source_params=None) -> list[str]:
    """The data files named by ``file_list``, checked to exist, in list order.

    Raises ``ValueError`` naming the list (and the line) for a missing list, a first line that
    is not a count, a count that disagrees with the paths listed, and missing data files.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "a.parquet").write_bytes(b"")
    0
    >>> _ = (folder / "list.txt").write_text("1\\na.parquet\\n")
    >>> [os.path.basename(p) for p in read_file_list(str(folder / "list.txt"))]
    ['a.parquet']
    """
    if not isinstance(file_list, str) or not file_list:
        raise ValueError(f"file list: expected the path of a file list, got {file_list!r}")
    remote = fs.is_remote(file_list, data_source_params)
    if not fs.is_file(file_list, data_source_params):
        where = "" if remote else f" (working directory: {os.getcwd()})"
        raise ValueError(f"file list '{file_list}' does not exist{where}; pass the path of a text file whose first "
                         "line is the number of data files, followed by their paths")
    lines = [line.strip() for line in fs.read_text(file_list, data_source_params).splitlines()]
    count = _parse_count(file_list, lines[0] if lines else "")
    paths = [line for line in lines[1:] if line]
    if count != len(paths):
        raise ValueError(f"file list '{file_list}': line 1 says {count} files but {len(paths)} paths follow; "
                         f"set line 1 to {len(paths)} or list the missing paths")
    if count == 0:
        raise ValueError(f"file list '{file_list}' lists no data files; add at least one path")
    line_numbers = [n for n, line in enumerate(lines, start=1) if line][1:]
    if remote or any(fs.is_remote(path) for path in paths):
        return _resolve_remote(file_list, line_numbers, paths, data_source_params, remote)
    folder = os.path.dirname(file_list)
    return [_resolve(file_list, folder, line_number, path) for line_number, path in zip(line_numbers, paths)]


def _resolve_remote(file_list: str, line_numbers: list[int], paths: list[str], data_source_params,
                    remote_list: bool) -> list[str]:
    """Lines of a remote list (or a local list with URL lines) as paths, every one checked to exist."""
    folder, resolved = os.path.dirname(file_list), []
    for line_number, line in zip(line_numbers, paths):
        if remote_list:
            resolved.append(fs.on_same_system(file_list, line))
        else:                             # a local list: URL lines as they are, the others as always
            resolved.append(line if fs.is_remote(line) else _resolve(file_list, folder, line_number, line))
    source = data_source_params if remote_list else None
    missing = set(fs.missing_files([p for p in resolved if fs.is_remote(p, source)], source))
    for line_number, line, path in zip(line_numbers, paths, resolved):
        if path in missing:
            shown = f"'{line}'" + ("" if line == path else f" (as '{path}')")
            raise ValueError(f"file list '{file_list}', line {line_number}: data file {shown} not found. Fix the "
                             "path in the list (relative paths are taken beside a remote list)")
    return resolved


def write_file_list(file_list: str, paths: list[str], data_source_params=None) -> None:
    """Write ``paths`` as a HugeCTR file list (count first), creating the folder if needed."""
    body = f"{len(paths)}\n" + "".join(f"{path}\n" for path in paths)
    if fs.is_remote(file_list, data_source_params):
        fs.write_object(file_list, body.encode("utf-8"), data_source_params)    # one whole object
        return
    folder = os.path.dirname(file_list)
    if folder:
        os.makedirs(folder, exist_ok=True)
    temporary = f"{file_list}.tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        stream.write(body)
    os.replace(temporary, file_list)  # readers never see a half-written list


def _parse_count(file_list: str, first_line: str) -> int:
    try:
        count = int(first_line)
    except ValueError:
        raise ValueError(f"file list '{file_list}', line 1: expected the number of data files, got "
                         f"{first_line!r}; the first line must be an integer N followed by N paths") from None
    if count < 0:
        raise ValueError(f"file list '{file_list}', line 1: the number of files must be >= 0, got {count}")
    return count


def _resolve(file_list: str, folder: str, line_number: int, path: str) -> str:
    if os.path.exists(path):
        return path
    beside = os.path.join(folder, path)
    if not os.path.isabs(path) and os.path.exists(beside):
        return beside
    tried = f"'{path}' (from {os.getcwd()})" + ("" if os.path.isabs(path) else f" and '{beside}'")
    raise ValueError(f"file list '{file_list}', line {line_number}: data file '{path}' not found; tried {tried}. "
                     "Fix the path in the list, or run from the directory the paths are relative to")
