"""What ``Model.add`` takes: ``Input``, ``DataReaderSparseParam``, ``SparseEmbedding``, ``DenseLayer``."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from .._checks import (bind_arguments, require_bool, require_int, require_int_list, require_str,
                       require_str_list)
from ..enums import Embedding_t, coerce
from .hybrid_embedding import HybridEmbeddingParam
from .optimizer import OptParamsPy


class DataReaderSparseParam:
    """One sparse input: its tensor name, nnz per slot (int or per-slot list), fixed length, slots.

    >>> p = DataReaderSparseParam("deep_data", [2, 1, 3], False, 3)
    >>> p.max_feature_num, p.max_nnz
    (6, 3)
    """

    _NAMES = ["top_name", "nnz_per_slot", "is_fixed_length", "slot_num"]

    def __init__(self, *args, **kwargs):
        owner = "DataReaderSparseParam"
        if "sparse_name" in kwargs:  # the layer book's name for the first argument
            kwargs["top_name"] = kwargs.pop("sparse_name")
        b = bind_arguments(owner, self._NAMES, args, kwargs, {})
        self.top_name = require_str(owner, "top_name", b["top_name"], allow_empty=False)
        self.slot_num = require_int(owner, "slot_num", b["slot_num"], minimum=1)
        self.is_fixed_length = require_bool(owner, "is_fixed_length", b["is_fixed_length"])
        nnz = b["nnz_per_slot"]
        if isinstance(nnz, numbers.Integral) and not isinstance(nnz, bool):
            nnz = [nnz] * self.slot_num
        nnz = require_int_list(owner, "nnz_per_slot", nnz)
        if len(nnz) != self.slot_num or any(n < 1 for n in nnz):
            raise ValueError(f"{owner} '{self.top_name}': nnz_per_slot must be one positive int or a list of "
                             f"{self.slot_num} positive ints (one per slot), got {b['nnz_per_slot']!r}")
        self.nnz_per_slot = nnz

    @property
    def max_feature_num(self) -> int:
        return sum(self.nnz_per_slot)

    @property
    def max_nnz(self) -> int:
        return max(self.nnz_per_slot)

    def __repr__(self) -> str:
        return (f"DataReaderSparseParam({self.top_name!r}, {self.nnz_per_slot}, "
                f"{self.is_fixed_length}, {self.slot_num})")


class Input:
    """The data layer: labels, dense features and sparse inputs. Three forms, as HugeCTR's:

    ``Input(label_dim, label_name, dense_dim, dense_name, data_reader_sparse_param_array)``,
    ``Input(label_dims, label_names, dense_dim, dense_name, data_reader_sparse_param_array)``,
    ``Input(label_dims, label_names, label_weights, dense_dim, dense_name, data_reader_sparse_param_array)``.
    Several labels are kept in alphabetical order of their names, as HugeCTR's ``std::map`` does.

    >>> Input(label_dims=[1, 1], label_names=["b", "a"], dense_dim=3, dense_name="dense",
    ...       data_reader_sparse_param_array=[]).label_names
    ['a', 'b']
    """

    def __init__(self, *args, **kwargs):
        owner = "Input"
        multi = ("label_dims" in kwargs or "label_names" in kwargs
                 or (args and isinstance(args[0], (list, tuple))))
        with_weights = "label_weights" in kwargs or (multi and len(args) == 6)
        if not multi:
            names = ["label_dim", "label_name", "dense_dim", "dense_name", "data_reader_sparse_param_array"]
        elif with_weights:
            names = ["label_dims", "label_names", "label_weights", "dense_dim", "dense_name",
                     "data_reader_sparse_param_array"]
        else:
            names = ["label_dims", "label_names", "dense_dim", "dense_name", "data_reader_sparse_param_array"]
        b = bind_arguments(owner, names, args, kwargs, {})
        dims = [b["label_dim"]] if not multi else b["label_dims"]
        labels = [b["label_name"]] if not multi else b["label_names"]
        dims = require_int_list(owner, "label_dims", dims)
        labels = require_str_list(owner, "label_names", labels)
        weights = [float(w) for w in b.get("label_weights", [1.0] * len(labels))]
        if not (len(dims) == len(labels) == len(weights)) or not labels:
            raise ValueError(f"{owner}: label_dims, label_names (and label_weights) must have the same, non-zero "
                             f"length; got {dims}, {labels}, {weights}")
        if len(set(labels)) != len(labels) or any(d < 1 for d in dims):
            raise ValueError(f"{owner}: label names must be distinct and label dims >= 1; got {labels}, {dims}")
        order = sorted(range(len(labels)), key=lambda i: labels[i])
        self.label_names = [labels[i] for i in order]
        self.label_dims = [dims[i] for i in order]
        self.label_weights = [weights[i] for i in order]
        self.dense_dim = require_int(owner, "dense_dim", b["dense_dim"], minimum=0)
        self.dense_name = require_str(owner, "dense_name", b["dense_name"], allow_empty=False)
        sparse = b["data_reader_sparse_param_array"]
        if not isinstance(sparse, (list, tuple)) or any(not isinstance(p, DataReaderSparseParam) for p in sparse):
            raise TypeError(f"{owner}: data_reader_sparse_param_array must be a list of DataReaderSparseParam")
        self.data_reader_sparse_param_array = list(sparse)
        tops = [p.top_name for p in sparse]
        clash = set(tops) & ({self.dense_name} | set(self.label_names))
        if len(set(tops)) != len(tops) or clash or self.dense_name in self.label_names:
            raise ValueError(f"{owner}: tensor names must be distinct; labels {self.label_names}, dense "
                             f"'{self.dense_name}', sparse {tops}")

    @property
    def label_dim(self) -> int:
        """All label columns together (the width of the label block in the data)."""
        return sum(self.label_dims)

    @property
    def label_name(self) -> str:
        return self.label_names[0]

    @property
    def total_slot_num(self) -> int:
        return sum(p.slot_num for p in self.data_reader_sparse_param_array)


_EMBEDDING_NAMES = ["embedding_type", "workspace_size_per_gpu_in_mb", "embedding_vec_size", "combiner",
                    "sparse_embedding_name", "bottom_name", "slot_size_array", "optimizer",
                    "hybrid_embedding_param"]
_EMBEDDING_DEFAULTS = {"workspace_size_per_gpu_in_mb": 0, "slot_size_array": list, "optimizer": None,
                       "hybrid_embedding_param": None}


class SparseEmbedding:
    """A sparse embedding layer: (B, slots, embedding_vec_size) pooled vectors of a sparse input.

    ``optimizer=None`` means the model's optimizer, as in HugeCTR.
    """

    def __init__(self, *args, **kwargs):
        owner = "SparseEmbedding"
        b = bind_arguments(owner, _EMBEDDING_NAMES, args, kwargs, _EMBEDDING_DEFAULTS)
        self.embedding_type = coerce(Embedding_t, b["embedding_type"], f"{owner}: embedding_type")
        self.workspace_size_per_gpu_in_mb = require_int(owner, "workspace_size_per_gpu_in_mb",
                                                        b["workspace_size_per_gpu_in_mb"], minimum=0)
        self.embedding_vec_size = require_int(owner, "embedding_vec_size", b["embedding_vec_size"], minimum=1)
        self.combiner = require_str(owner, "combiner", b["combiner"])
        if self.combiner not in ("sum", "mean"):
            raise ValueError(f"{owner} '{b['sparse_embedding_name']}': combiner must be 'sum' or 'mean', "
                             f"got {self.combiner!r}")
        self.sparse_embedding_name = require_str(owner, "sparse_embedding_name", b["sparse_embedding_name"],
                                                 allow_empty=False)
        self.bottom_name = require_str(owner, "bottom_name", b["bottom_name"], allow_empty=False)
        self.slot_size_array = require_int_list(owner, "slot_size_array", b["slot_size_array"])
        if b["optimizer"] is not None and not isinstance(b["optimizer"], OptParamsPy):
            raise TypeError(f"{owner}: optimizer must come from hugectr.CreateOptimizer, got {b['optimizer']!r}")
        self.optimizer = b["optimizer"]
        if b["hybrid_embedding_param"] is not None and not isinstance(b["hybrid_embedding_param"],
                                                                      HybridEmbeddingParam):
            raise TypeError(f"{owner}: hybrid_embedding_param must come from hugectr.HybridEmbeddingParam, got "
                            f"{b['hybrid_embedding_param']!r}")
        self.hybrid_embedding_param = b["hybrid_embedding_param"]
        if self.workspace_size_per_gpu_in_mb == 0 and not self.slot_size_array:
            raise ValueError(f"{owner} '{self.sparse_embedding_name}': give workspace_size_per_gpu_in_mb (> 0) "
                             "or slot_size_array so the table capacity is known")


@dataclass
class DenseLayerComputeConfig:
    """Performance switches of MLP / MultiCross / Interaction; no effect on results."""

    async_wgrad: bool = False
    fuse_wb: bool = False
