"""Data-reader parameters: ``DataReaderParams``, ``AsyncParam``, ``DataSourceParams``."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._checks import bind_arguments, require_bool, require_int, require_int_list, require_str
from ..enums import Alignment_t, Check_t, DataReaderType_t, FileSystemType_t, coerce


@dataclass
class DataSourceParams:
    """Where data and models live: the file system, its server and port (``hugectr.data``)."""

    source: FileSystemType_t = FileSystemType_t.Local
    server: str = "localhost"
    port: int = 9000

    def __post_init__(self) -> None:
        self.source = coerce(FileSystemType_t, self.source, "DataSourceParams: source")
        require_str("DataSourceParams", "server", self.server)
        require_int("DataSourceParams", "port", self.port, minimum=0)


_ASYNC_NAMES = ["num_threads", "num_batches_per_thread", "max_num_requests_per_thread", "io_depth",
                "io_alignment", "shuffle", "aligned_type", "multi_hot_reader", "is_dense_float"]
_ASYNC_DEFAULTS = {"max_num_requests_per_thread": 0, "io_depth": 0, "io_alignment": 0,
                   "aligned_type": Alignment_t.Non, "multi_hot_reader": True, "is_dense_float": True}


class AsyncParam:
    """Settings of the RawAsync reader; positional order and defaults as HugeCTR's.

    >>> AsyncParam(num_threads=1, num_batches_per_thread=16, shuffle=False).multi_hot_reader
    True
    """

    def __init__(self, *args, **kwargs):
        bound = bind_arguments("AsyncParam", _ASYNC_NAMES, args, kwargs, _ASYNC_DEFAULTS)
        for name in ("num_threads", "num_batches_per_thread"):
            require_int("AsyncParam", name, bound[name], minimum=1)
        for name in ("max_num_requests_per_thread", "io_depth", "io_alignment"):
            require_int("AsyncParam", name, bound[name], minimum=0)
        for name in ("shuffle", "multi_hot_reader", "is_dense_float"):
            bound[name] = require_bool("AsyncParam", name, bound[name])
        bound["aligned_type"] = coerce(Alignment_t, bound["aligned_type"], "AsyncParam: aligned_type")
        self.__dict__.update(bound)

    def __repr__(self) -> str:
        return "AsyncParam(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in _ASYNC_NAMES) + ")"


def _default_async_param() -> AsyncParam:
    # HugeCTR's default has multi_hot_reader=False: RawAsync users pass their own AsyncParam.
    return AsyncParam(16, 4, 512000, 4, 512, False, Alignment_t.Non, multi_hot_reader=False, is_dense_float=False)


_READER_NAMES = ["data_reader_type", "source", "keyset", "eval_source", "check_type", "cache_eval_data",
                 "num_samples", "eval_num_samples", "float_label_dense", "read_file_sequentially", "num_workers",
                 "slot_size_array", "data_source_params", "async_param"]
_READER_DEFAULTS = {"keyset": list, "cache_eval_data": 0, "num_samples": 0, "eval_num_samples": 0,
                    "float_label_dense": False, "read_file_sequentially": False, "num_workers": 12,
                    "slot_size_array": list, "data_source_params": DataSourceParams,
                    "async_param": _default_async_param}


@dataclass(init=False)
class DataReaderParams:
    """The data source of a ``Model``: reader type, train and eval sources and reading options.

    ``source`` is kept as a list (HugeCTR takes a string or a list and reads ``source[0]``).

    >>> p = DataReaderParams(data_reader_type=DataReaderType_t.Parquet, source="train/_file_list.txt",
    ...                      eval_source="val/_file_list.txt", check_type=Check_t.Non)
    >>> p.source, p.num_workers
    (['train/_file_list.txt'], 12)
    """

    data_reader_type: DataReaderType_t
    source: list[str]
    keyset: list[str]
    eval_source: str
    check_type: Check_t
    cache_eval_data: int
    num_samples: int
    eval_num_samples: int
    float_label_dense: bool
    read_file_sequentially: bool
    num_workers: int
    slot_size_array: list[int] = field(default_factory=list)
    data_source_params: DataSourceParams = field(default_factory=DataSourceParams)
    async_param: AsyncParam = field(default_factory=_default_async_param)

    def __init__(self, *args, **kwargs):
        owner = "DataReaderParams"
        b = bind_arguments(owner, _READER_NAMES, args, kwargs, _READER_DEFAULTS)
        b["data_reader_type"] = coerce(DataReaderType_t, b["data_reader_type"], f"{owner}: data_reader_type")
        b["check_type"] = coerce(Check_t, b["check_type"], f"{owner}: check_type")
        b["source"] = _path_list(owner, "source", b["source"])
        b["keyset"] = _path_list(owner, "keyset", b["keyset"], allow_empty=True)
        if isinstance(b["eval_source"], (list, tuple)) and len(b["eval_source"]) == 1:
            b["eval_source"] = b["eval_source"][0]
        require_str(owner, "eval_source", b["eval_source"], allow_empty=False)
        for name in ("cache_eval_data", "num_samples", "eval_num_samples"):
            require_int(owner, name, b[name], minimum=0)
        require_int(owner, "num_workers", b["num_workers"], minimum=1)
        for name in ("float_label_dense", "read_file_sequentially"):
            b[name] = require_bool(owner, name, b[name])
        b["slot_size_array"] = require_int_list(owner, "slot_size_array", b["slot_size_array"])
        if any(size <= 0 for size in b["slot_size_array"]):
            raise ValueError(f"{owner}: every slot_size_array entry must be > 0, got {b['slot_size_array']}")
        for name, kind in (("data_source_params", DataSourceParams), ("async_param", AsyncParam)):
            if not isinstance(b[name], kind):
                raise TypeError(f"{owner}: {name} must be a {kind.__name__}, got {b[name]!r}")
        self.__dict__.update(b)


def _path_list(owner: str, name: str, value, allow_empty: bool = False) -> list[str]:
    if isinstance(value, str):
        # HugeCTR's str overload defaults keyset to "": an empty string names no file.
        paths = [] if allow_empty and not value else [value]
    else:
        paths = value
    if not isinstance(paths, (list, tuple)) or any(not isinstance(p, str) for p in paths):
        raise TypeError(f"{owner}: {name} must be a path or a list of paths, got {value!r}")
    if not allow_empty and (not paths or not all(paths)):
        raise ValueError(f"{owner}: {name} must name at least one file (a file list or a data file)")
    return list(paths)
