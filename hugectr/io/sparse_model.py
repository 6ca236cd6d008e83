"""Read a HugeCTR sparse model folder (``key`` / ``emb_vector`` / ``slot_id``) into NumPy arrays."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path  # noqa: F401 - the doctest uses it

import numpy as np

from . import fs
from .files import read_array


@dataclass
class SparseModel:
    """One embedding's saved rows: ``vectors[i]`` belongs to ``keys[i]`` (``slot_ids[i]`` for Localized)."""

    keys: np.ndarray                 # (n,) int64
    vectors: np.ndarray              # (n, embedding_vec_size) float32
    slot_ids: np.ndarray | None      # (n,) uint64, LocalizedSlot embeddings only

    def as_dict(self) -> dict[int, np.ndarray]:
        """``{key: vector}`` (convenient for small tables; large ones should index the arrays)."""
        return dict(zip(self.keys.tolist(), self.vectors))


def read_sparse_model(folder: str | os.PathLike, data_source_params=None) -> SparseModel:
    """Load ``<prefix><i>_sparse_<iter>.model/``; the vector size follows from the file sizes.

    ``folder`` may be remote (``s3://...``, ``gs://...``, ``hdfs://...``, or a path on
    ``data_source_params``; see ``hugectr.io.fs``).

    >>> import tempfile, numpy as np
    >>> d = Path(tempfile.mkdtemp()) / "m0_sparse_1.model"; d.mkdir()
    >>> np.array([7, 3], "<i8").tofile(d / "key"); np.arange(6, dtype="<f4").tofile(d / "emb_vector")
    >>> model = read_sparse_model(d)
    >>> model.keys.tolist(), model.vectors.shape, model.slot_ids
    ([7, 3], (2, 3), None)
    """
    folder, source, what = os.fspath(folder), data_source_params, "read_sparse_model"
    if not fs.is_dir(folder, source):
        raise FileNotFoundError(f"{what}: '{folder}' is not a sparse model folder (expected key and emb_vector "
                                "files inside)")
    keys = read_array(fs.join(folder, "key"), np.int64, what, data_source_params=source)
    vectors = read_array(fs.join(folder, "emb_vector"), np.float32, what, data_source_params=source)
    if keys.size == 0:
        return SparseModel(keys, vectors.reshape(0, 0), None)
    if vectors.size % keys.size:
        raise ValueError(f"{what}: '{folder}' holds {keys.size} keys but {vectors.size} vector values, not a "
                         "multiple; the folder is truncated")
    slot_ids = None
    if fs.is_file(fs.join(folder, "slot_id"), source):
        slot_ids = read_array(fs.join(folder, "slot_id"), np.uint64, what, count=keys.size, data_source_params=source)
    return SparseModel(keys, vectors.reshape(keys.size, -1), slot_ids)
