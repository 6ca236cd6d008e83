"""Where a path lives: the local disk, or S3 / GCS / HDFS through fsspec; and the few operations the package needs.

``resolve(path, data_source_params)`` gives ``(fsspec file system, path inside it)``. First match wins:

1. A URL names its file system. ``s3://bucket/key`` (also ``s3a://``, ``s3n://``); ``gs://bucket/object``
   (also ``gcs://``); ``hdfs://namenode:port/path``; ``https://storage.googleapis.com/bucket/object`` (GCS);
   ``https://bucket.s3.<region>.amazonaws.com/key`` and ``https://s3.<region>.amazonaws.com/bucket/key``
   (S3, virtual-hosted and path style, the region taken from the URL, as HugeCTR); ``file:///path`` (local).
2. A path without a scheme lives on ``data_source_params.source``: S3 ``bucket/key``, GCS ``bucket/object``,
   HDFS a path on the namenode; Local (the default, also for ``None``) the local disk.

A ``DataSourceParams`` configures only the file system of its own ``source`` type (an ``s3://`` URL with
HDFS params uses the default S3 set-up):

- S3: ``server`` is the endpoint when it looks like one: a URL (``http://minio:9000``) or ``host:port``
  (taken as plain ``http://host:port``, how S3-compatible servers inside a cluster usually listen).
  Otherwise ``server`` is the region, HugeCTR's meaning (its default ``localhost`` means "not set").
  Without an endpoint from ``server`` the standard AWS variables apply: ``AWS_ENDPOINT_URL_S3``, then
  ``AWS_ENDPOINT_URL``; region and credentials come from the usual AWS chain (``AWS_REGION``,
  ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``~/.aws``). ``port`` is ignored, as in HugeCTR.
- GCS: ``server`` is the endpoint override (``storage.googleapis.com`` or ``localhost``: the default one).
- HDFS: ``server`` and ``port`` are the namenode, unless the URL names one.

The v3.x ``DataSourceParams(use_hdfs, namenode, port, ...)`` form is understood too (``use_hdfs`` selects HDFS).
Packages are optional extras: ``pip install 'hugectr[s3]'`` (s3fs), ``'hugectr[gcs]'`` (gcsfs),
``'hugectr[hdfs]'`` (fsspec over pyarrow's HDFS, which needs libhdfs). Local paths never import fsspec:
callers keep their fast paths (``numpy.memmap``, temporary file + ``os.replace``); remote files are
sliced by ranged reads instead of a memory map (``remote_arrays``).

>>> is_remote("s3://bucket/model/wdl"), is_remote("/tmp/wdl"), split_url("https://b.s3.us-west-2.amazonaws.com/k")
(True, False, ('S3', 'b/k', {'region': 'us-west-2'}))
"""

from __future__ import annotations

import importlib
import os
import posixpath
import re
from collections import defaultdict
from urllib.parse import urlsplit

from ..enums import FileSystemType_t

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCHEMES = {"s3": "S3", "s3a": "S3", "s3n": "S3", "gs": "GCS", "gcs": "GCS", "hdfs": "HDFS", "file": "Local"}
# kind -> (fsspec protocol, module that implements it, pip extra)
_BACKENDS = {"S3": ("s3", "s3fs", "s3"), "GCS": ("gcs", "gcsfs", "gcs"), "HDFS": ("hdfs", "pyarrow", "hdfs")}
_UNSET_SERVERS = ("", "localhost")


# -- which file system -------------------------------------------------------------------------
def _params(data_source_params) -> tuple[str, str, int]:
    """(kind, server, port) of a HEAD ``DataSourceParams``, a v3.x one (``use_hdfs``/``namenode``) or None."""
    if data_source_params is None:
        return "Local", "localhost", 0
    if hasattr(data_source_params, "use_hdfs"):
        kind = "HDFS" if data_source_params.use_hdfs else "Local"
        return kind, str(getattr(data_source_params, "namenode", "localhost")), int(data_source_params.port)
    source = getattr(data_source_params, "source", None)
    name = getattr(source, "name", source)
    if name not in FileSystemType_t.__members__:
        raise TypeError(f"data_source_params: expected a hugectr.data.DataSourceParams, got {data_source_params!r}")
    return name, str(data_source_params.server), int(data_source_params.port)


def split_url(path: str) -> tuple[str, str, dict]:
    """``(kind, path inside the file system, options from the URL)`` of a URL; kind '' for a plain path.

    >>> split_url("hdfs://nn:9000/data/list.txt")
    ('HDFS', '/data/list.txt', {'host': 'nn', 'port': 9000})
    >>> split_url("https://storage.googleapis.com/bucket/a/b")
    ('GCS', 'bucket/a/b', {})
    """
    match = _SCHEME.match(path)
    if not match:
        return "", path, {}
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        return _split_https(path)
    kind = _SCHEMES.get(scheme)
    if kind is None:
        raise ValueError(f"'{path}': unsupported scheme '{scheme}://'; use a local path, s3://, gs://, hdfs:// or an "
                         "https:// URL of S3 or Google Cloud Storage")
    rest = path[match.end():]
    if kind == "HDFS":
        parts = urlsplit(path)
        options = {"host": parts.hostname} if parts.hostname else {}
        if parts.port:
            options["port"] = parts.port
        return kind, parts.path or "/", options
    return kind, rest if kind != "Local" else "/" + rest.lstrip("/"), {}


def _split_https(url: str) -> tuple[str, str, dict]:
    parts = urlsplit(url)
    host, key = (parts.hostname or "").lower(), parts.path.lstrip("/")
    labels = host.split(".")
    if host == "storage.googleapis.com":
        return "GCS", key, {}
    if host.endswith(".storage.googleapis.com"):
        return "GCS", host[:-len(".storage.googleapis.com")] + "/" + key, {}
    if host.endswith("amazonaws.com") and "s3" in labels:
        at = len(labels) - 1 - labels[::-1].index("s3")        # bucket names may hold dots
        region = labels[at + 1] if len(labels) - at == 4 else None   # s3.<region>.amazonaws.com
        bucket_in_host = ".".join(labels[:at])
        inner = f"{bucket_in_host}/{key}" if bucket_in_host else key
        return "S3", inner, {"region": region} if region else {}
    raise ValueError(f"'{url}': an https:// URL must name an S3 object (https://<bucket>.s3.<region>.amazonaws.com/"
                     "<key> or https://s3.<region>.amazonaws.com/<bucket>/<key>) or a GCS object "
                     "(https://storage.googleapis.com/<bucket>/<object>)")


def filesystem_kind(path, data_source_params=None) -> str:
    """'Local', 'S3', 'GCS' or 'HDFS': where ``path`` lives (rules in the module docstring)."""
    kind, _, _ = split_url(os.fspath(path))
    if kind:
        return kind
    source = _params(data_source_params)[0]
    if source == "Other":
        raise ValueError(f"'{os.fspath(path)}': DataSourceParams(source=FileSystemType_t.Other) names no file system "
                         "this package can open; use Local, S3, GCS or HDFS, or give the path as a URL")
    return source


def is_remote(path, data_source_params=None) -> bool:
    """True when ``path`` is not on the local disk."""
    return filesystem_kind(path, data_source_params) != "Local"


def local_path(path) -> str:
    """A local path as a plain string (``file://`` stripped)."""
    path = os.fspath(path)
    return split_url(path)[1] if path.startswith("file://") else path


def _require(module: str, extra: str, path: str, kind: str) -> None:
    for name in dict.fromkeys(("fsspec", module)):
        try:
            importlib.import_module(name)
        except ImportError:
            install = f"pip install 'hugectr[{extra}]'" if extra else f"pip install {name}"
            raise ImportError(f"'{path}' is on {kind}, which needs the '{name}' package: install it with "
                              f"{install}") from None


def _s3_options(server: str, url_options: dict) -> dict:
    options, client = {"use_listings_cache": False}, {}
    endpoint = None
    if re.match(r"^https?://", server):
        endpoint = server.rstrip("/")
    elif re.fullmatch(r"[A-Za-z0-9_.-]+:\d+", server):
        endpoint = f"http://{server}"
    elif server not in _UNSET_SERVERS:
        client["region_name"] = server
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    if url_options.get("region"):
        client["region_name"] = url_options["region"]
    if client:
        options["client_kwargs"] = client
    return options


def _options(kind: str, path: str, data_source_params, url_options: dict) -> dict:
    source, server, port = _params(data_source_params)
    own = source == kind                   # params configure only their own kind of file system
    if kind == "S3":
        return _s3_options(server if own else "", url_options)
    if kind == "GCS":
        options = {"use_listings_cache": False}
        if own and server not in (*_UNSET_SERVERS, "storage.googleapis.com"):
            options["endpoint_url"] = server if _SCHEME.match(server) else f"https://{server}"
        return options
    host = url_options.get("host") or (server if own else "default")
    return {"host": host, "port": url_options.get("port", port if own and host != "default" else 0)}


def resolve(path, data_source_params=None):
    """``(fsspec file system, path inside it)`` for a local path, a URL, or a path on ``data_source_params``.

    Raises ImportError naming the extra to install when the file system's package is missing.
    """
    path = os.fspath(path)
    kind, inner, url_options = split_url(path)
    kind = kind or filesystem_kind(path, data_source_params)
    if kind == "Local":
        _require("fsspec", "", path, "the local disk")
        import fsspec

        return fsspec.filesystem("file"), os.path.abspath(inner)
    protocol, module, extra = _BACKENDS[kind]
    _require(module, extra, path, kind)
    import fsspec

    if kind in ("S3", "GCS"):
        inner = inner.lstrip("/")
    return fsspec.filesystem(protocol, **_options(kind, path, data_source_params, url_options)), inner


# -- path arithmetic on strings (URLs keep their scheme) ---------------------------------------
def join(base, name: str) -> str:
    """``base/name``; a URL stays a URL.

    >>> join("s3://bucket/snap", "key"), join("s3://bucket/snap/", "key")
    ('s3://bucket/snap/key', 's3://bucket/snap/key')
    """
    base = os.fspath(base)
    if _SCHEME.match(base):
        return base.rstrip("/") + "/" + name
    return os.path.join(base, name)


def parent(path) -> str:
    """The folder holding ``path`` ('' for a bare local name).

    >>> parent("s3://bucket/snap/m_dense_1.model"), parent("s3://bucket/m0_sparse_1.model/")
    ('s3://bucket/snap', 's3://bucket')
    """
    path = os.fspath(path)
    match = _SCHEME.match(path)
    if match:
        head, rest = path[:match.end()], path[match.end():].rstrip("/")
        return head + rest.rsplit("/", 1)[0] if "/" in rest else head + rest
    return os.path.dirname(path.rstrip("/") or path)


def basename(path) -> str:
    """The last component of ``path`` (trailing slashes ignored)."""
    return os.fspath(path).rstrip("/").rsplit("/", 1)[-1]


def on_same_system(reference: str, line: str) -> str:
    """``line`` (a path read from a file) as a path on ``reference``'s file system.

    A URL is kept; a relative path is taken beside ``reference``; an absolute path keeps
    ``reference``'s scheme and bucket / namenode.

    >>> on_same_system("s3://b/lists/l.txt", "../train/0.parquet"), on_same_system("hdfs://nn:9000/l", "/d/0")
    ('s3://b/train/0.parquet', 'hdfs://nn:9000/d/0')
    """
    if _SCHEME.match(line):
        return line
    match = _SCHEME.match(reference)
    if line.startswith("/"):
        return f"{reference[:match.end()]}{urlsplit(reference).netloc}{line}" if match else line
    if not match:
        return posixpath.normpath(posixpath.join(posixpath.dirname(reference), line))
    folder = parent(reference)
    root = folder[:match.end()] + urlsplit(folder).netloc             # '..' must not climb out of the bucket
    return root + posixpath.normpath(posixpath.join("/", folder[len(root):], line))


# -- operations --------------------------------------------------------------------------------
def exists(path, data_source_params=None) -> bool:
    if not is_remote(path, data_source_params):
        return os.path.exists(local_path(path))
    fs, inner = resolve(path, data_source_params)
    return fs.exists(inner)


def is_file(path, data_source_params=None) -> bool:
    if not is_remote(path, data_source_params):
        return os.path.isfile(local_path(path))
    fs, inner = resolve(path, data_source_params)
    return fs.isfile(inner)


def is_dir(path, data_source_params=None) -> bool:
    """A folder; on object stores, a prefix that has objects under it."""
    if not is_remote(path, data_source_params):
        return os.path.isdir(local_path(path))
    fs, inner = resolve(path, data_source_params)
    return fs.isdir(inner.rstrip("/"))


def file_size(path, data_source_params=None) -> int:
    """Bytes of the file; FileNotFoundError naming ``path`` when it is missing."""
    path = os.fspath(path)
    if not is_remote(path, data_source_params):
        return os.path.getsize(local_path(path))
    fs, inner = resolve(path, data_source_params)
    try:
        return int(fs.size(inner))
    except FileNotFoundError:
        raise FileNotFoundError(f"'{path}' does not exist") from None


def read_bytes(path, data_source_params=None, start: int | None = None, end: int | None = None) -> bytes:
    """The file's bytes ``[start, end)`` (all by default); FileNotFoundError naming ``path``."""
    path = os.fspath(path)
    if not is_remote(path, data_source_params):
        with open(local_path(path), "rb") as stream:
            stream.seek(start or 0)
            return stream.read() if end is None else stream.read(end - (start or 0))
    fs, inner = resolve(path, data_source_params)
    try:
        return fs.cat_file(inner, start=start, end=end)
    except FileNotFoundError:
        raise FileNotFoundError(f"'{path}' does not exist") from None


def read_text(path, data_source_params=None) -> str:
    return read_bytes(path, data_source_params).decode("utf-8")


def write_object(path, data: bytes | memoryview, data_source_params=None) -> None:
    """Store ``data`` as the whole remote object ``path``: one PUT (or one multipart upload), which object
    stores make visible all at once, so readers never see part of it."""
    fs, inner = resolve(path, data_source_params)
    fs.pipe_file(inner, bytes(data))


def remove(path, data_source_params=None) -> None:
    """Delete a remote object (missing is fine)."""
    fs, inner = resolve(path, data_source_params)
    try:
        fs.rm_file(inner)
    except FileNotFoundError:
        pass


def list_files(folder, data_source_params=None) -> dict[str, int]:
    """``{name: size}`` of the files directly in ``folder`` (empty when it does not exist)."""
    if not is_remote(folder, data_source_params):
        folder = local_path(folder) or "."
        if not os.path.isdir(folder):
            return {}
        return {entry.name: entry.stat().st_size for entry in os.scandir(folder) if entry.is_file()}
    fs, inner = resolve(folder, data_source_params)
    try:
        entries = fs.ls(inner.rstrip("/"), detail=True)
    except FileNotFoundError:
        return {}
    return {basename(e["name"]): int(e.get("size") or 0) for e in entries if e.get("type") == "file"}


def missing_files(paths: list[str], data_source_params=None) -> list[str]:
    """The entries of ``paths`` that do not exist; remote folders are listed once each, not probed per file."""
    by_folder = defaultdict(list)
    for path in paths:
        by_folder[parent(path)].append(path)
    missing = []
    for folder, members in by_folder.items():
        listed = list_files(folder, data_source_params) if is_remote(folder, data_source_params) else None
        for path in members:
            found = basename(path) in listed if listed is not None else os.path.exists(local_path(path))
            if not found and not (listed is not None and exists(path, data_source_params)):  # a listing can lag
                missing.append(path)
    return missing


def open_input(path, data_source_params=None):
    """A binary file object for reading (remote files read in blocks, with read-ahead)."""
    if not is_remote(path, data_source_params):
        return open(local_path(path), "rb")
    fs, inner = resolve(path, data_source_params)
    try:
        return fs.open(inner, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"'{os.fspath(path)}' does not exist") from None
