"""HugeCTR's model files: names, layouts, and reading them back into a model.

For ``prefix`` and iteration ``it`` (reference section 3.9):
  ``{prefix}_dense_{it}.model``         raw fp32 dense weights, layers in add order
  ``{prefix}_dense_{it}.model.ntp.json`` BatchNorm running statistics, when the net has BatchNorm
  ``{prefix}_opt_dense_{it}.model``     raw fp32 dense optimizer state tensors, concatenated
  ``{prefix}{i}_sparse_{it}.model/``    per embedding i: ``key`` int64, ``emb_vector`` fp32 (n, ev),
                                        ``slot_id`` uint64 for LocalizedSlot embeddings
  ``{prefix}{i}_opt_sparse_{it}.model`` the embedding's whole optimizer state buffers, fp32

``prefix`` and the paths read may be remote (``s3://``, ``gs://``, ``hdfs://``, or paths on a
``DataSourceParams``: ``hugectr.io.fs``); every function takes ``data_source_params`` for that.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from .. import log
from . import fs, snapshot_marker
from .files import atomic_write_array, atomic_write_bytes, atomic_write_folder, read_array


def snapshot_paths(prefix: str, iteration: int, num_embeddings: int) -> dict[str, object]:
    """Every path ``save_params_to_files(prefix, iteration)`` writes.

    >>> snapshot_paths("wdl", 20000, 2)["sparse"]
    ['wdl0_sparse_20000.model', 'wdl1_sparse_20000.model']
    """
    return {
        "dense": f"{prefix}_dense_{iteration}.model",
        "opt_dense": f"{prefix}_opt_dense_{iteration}.model",
        "sparse": [f"{prefix}{i}_sparse_{iteration}.model" for i in range(num_embeddings)],
        "opt_sparse": [f"{prefix}{i}_opt_sparse_{iteration}.model" for i in range(num_embeddings)],
    }


def _host(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).contiguous().numpy()


def write_sparse(path: str, table, data_source_params=None) -> None:
    keys, vectors, slot_ids = table.export()
    files = {"key": keys.cpu().numpy().astype(np.int64), "emb_vector": _host(vectors)}
    if slot_ids is not None:
        files["slot_id"] = slot_ids.cpu().numpy().astype(np.uint64)
    atomic_write_folder(path, files, data_source_params)


def write_sparse_optimizer(path: str, table, data_source_params=None) -> None:
    states = table.optimizer_states()
    data = np.concatenate([_host(s).reshape(-1) for s in states]) if states else np.zeros(0, np.float32)
    atomic_write_array(path, data, data_source_params)


def write_dense(path: str, flat_weights: torch.Tensor, non_trainable: list[dict], data_source_params=None) -> None:
    atomic_write_array(path, _host(flat_weights), data_source_params)
    if non_trainable:
        atomic_write_bytes(path + ".ntp.json", json.dumps({"layers": non_trainable}, indent=2).encode(),
                           data_source_params)


def write_dense_optimizer(path: str, states: list[torch.Tensor], data_source_params=None) -> None:
    data = np.concatenate([_host(s).reshape(-1) for s in states]) if states else np.zeros(0, np.float32)
    atomic_write_array(path, data, data_source_params)


def save_all(prefix: str, iteration: int, model, data_source_params=None) -> None:
    """Write a full snapshot in HugeCTR's order, logging as HugeCTR does, between two markers."""
    prefix, source = str(prefix), data_source_params
    paths = snapshot_paths(prefix, iteration, len(model.embedding_tables))
    files = [paths["dense"], paths["opt_dense"], *paths["sparse"], *paths["opt_sparse"]]
    non_trainable = model.engine.network.non_trainable_states()
    if non_trainable:
        files.append(paths["dense"] + ".ntp.json")
    snapshot_marker.begin(prefix, iteration, files, source)
    for path, table in zip(paths["sparse"], model.embedding_tables):
        log.info("Rank0: Write hash table to file")
        write_sparse(path, table, source)
    log.info("Dumping sparse weights to files, successful")
    for path, table in zip(paths["opt_sparse"], model.embedding_tables):
        log.info("Rank0: Write optimzer state to file")
        write_sparse_optimizer(path, table, source)
        log.info("Done")
    log.info("Dumping sparse optimzer states to files, successful")
    write_dense(paths["dense"], model.flat_parameters.weights, non_trainable, source)
    log.info("Dumping dense weights to file, successful")
    write_dense_optimizer(paths["opt_dense"], model.dense_optimizer.state_tensors(), source)
    log.info("Dumping dense optimizer states to file, successful")
    snapshot_marker.finish(prefix, iteration, files, source)


def read_dense(path: str, numel: int, data_source_params=None) -> np.ndarray:
    snapshot_marker.refuse_incomplete(path, "load_dense_weights", data_source_params)
    return read_array(path, np.float32, "load_dense_weights", count=numel, data_source_params=data_source_params)


def read_float_states(path: str, count: int, what: str, data_source_params=None) -> np.ndarray:
    """An optimizer-state file: ``count`` float32 values (the state tensors concatenated)."""
    snapshot_marker.refuse_incomplete(path, what, data_source_params)
    return read_array(path, np.float32, what, count=count, data_source_params=data_source_params)


def read_batch_norm_stats(path: str, data_source_params=None) -> list[dict] | None:
    ntp = f"{path}.ntp.json"
    if not fs.is_file(ntp, data_source_params):
        return None
    return json.loads(fs.read_text(ntp, data_source_params))["layers"]


def read_sparse(path: str, embedding_vec_size: int, name: str,
                data_source_params=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The ``key`` / ``emb_vector`` / ``slot_id`` arrays of one sparse model folder, sizes checked."""
    folder, source = str(path), data_source_params
    what = f"load_sparse_weights('{name}')"
    snapshot_marker.refuse_incomplete(folder, what, source)
    if not fs.is_dir(folder, source):
        raise FileNotFoundError(f"{what}: sparse model folder '{folder}' does not exist")
    keys = read_array(fs.join(folder, "key"), np.int64, what, data_source_params=source)
    vectors = read_array(fs.join(folder, "emb_vector"), np.float32, what, data_source_params=source)
    if vectors.size != keys.size * embedding_vec_size:
        raise ValueError(f"{what}: '{folder}' has {keys.size} keys and {vectors.size} floats in emb_vector, which is "
                         f"not {keys.size} x embedding_vec_size {embedding_vec_size}; the folder belongs to an "
                         "embedding of another size or is truncated")
    slot_ids = None
    if fs.is_file(fs.join(folder, "slot_id"), source):
        slot_ids = read_array(fs.join(folder, "slot_id"), np.uint64, what, count=keys.size, data_source_params=source)
    return keys, vectors.reshape(keys.size, embedding_vec_size), slot_ids
