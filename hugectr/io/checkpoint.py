"""HugeCTR's model files: names, layouts, and reading them back into a model.

For ``prefix`` and iteration ``it`` (reference section 3.9):
  ``{prefix}_dense_{it}.model``         raw fp32 dense weights, layers in add order
  ``{prefix}_dense_{it}.model.ntp.json`` BatchNorm running statistics, when the net has BatchNorm
  ``{prefix}_opt_dense_{it}.model``     raw fp32 dense optimizer state tensors, concatenated
  ``{prefix}{i}_sparse_{it}.model/``    per embedding i: ``key`` int64, ``emb_vector`` fp32 (n, ev),
                                        ``slot_id`` uint64 for LocalizedSlot embeddings
  ``{prefix}{i}_opt_sparse_{it}.model`` the embedding's whole optimizer state buffers, fp32

Beside them, what a resumed run needs and HugeCTR's files lack (so a run continued from a snapshot
equals one that never stopped): the dense optimizer's step count and the LR scheduler's position,
each sparse optimizer's step (Adam's bias correction), in the snapshot marker's ``training_state``;
LazyGlobal Adam's per-row last update step in ``{prefix}{i}_opt_sparse_{it}.model.last_step`` (raw
int64, one per table row); BatchNorm's running statistics unrounded in
``{prefix}_dense_{it}.model.ntp.f32`` (raw fp32, the ``.ntp.json`` values in its order; that file
rounds them to 6 decimals). HugeCTR's files stay byte for byte as HugeCTR writes them, and files
without this state (HugeCTR's) load as before: counts then start afresh, as in HugeCTR.

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


def last_step_path(opt_sparse_path: str) -> str:
    """The side file of a LazyGlobal table's per-row last update steps.

    >>> last_step_path("wdl0_opt_sparse_20000.model")
    'wdl0_opt_sparse_20000.model.last_step'
    """
    return f"{opt_sparse_path}.last_step"


def sparse_optimizer_of(table):
    """The ``SparseOptimizer`` behind a table (a sharded table's: its shard's; every shard counts alike)."""
    return table.sparse_optimizer if hasattr(table, "sparse_optimizer") else table.shard.sparse_optimizer


def lazy_last_steps(table) -> torch.Tensor | None:
    """LazyGlobal's per-row last update steps, row i for key i of the key file; None for other rules.

    A table may order them itself (``table.last_steps()``); a sharded table without that keeps
    none (its rows are not the key file's): its LazyGlobal rows then restart as in HugeCTR.
    """
    if callable(getattr(table, "last_steps", None)):
        return table.last_steps()
    if hasattr(table, "shard"):
        return None
    last_step = table.sparse_optimizer.last_step
    return None if last_step is None else last_step[:table.capacity]      # the scratch row is not saved


def restore_sparse_optimizer(table, step: int | None, last_step: np.ndarray | None, what: str) -> None:
    """Give a table's optimizer the step and LazyGlobal rows saved by ``read_sparse_optimizer_state``."""
    if step is None:
        return
    if last_step is not None and callable(getattr(table, "load_last_steps", None)):
        table.load_last_steps(torch.from_numpy(last_step))
        last_step = None
    elif last_step is not None and (hasattr(table, "shard") or sparse_optimizer_of(table).last_step is None):
        last_step = None                  # not a (single-device) LazyGlobal table: nothing to put them in
    elif last_step is not None and last_step.size != table.capacity:
        # Row i is key i of the key file; a file written on another GPU count has another row count.
        if last_step.size < table.size:
            raise ValueError(f"{what}: {last_step.size} saved per-row last steps for a table holding {table.size} "
                             "keys; the side file belongs to another table (load the sparse weights first)")
        current = sparse_optimizer_of(table).last_step[:table.capacity].cpu().numpy().copy()
        rows = min(last_step.size, table.capacity)
        current[:rows] = last_step[:rows]
        last_step = current
    sparse_optimizer_of(table).restore_step(int(step), None if last_step is None else torch.from_numpy(last_step))


def non_trainable_buffers(network) -> list[torch.Tensor]:
    """The buffers behind the ``.ntp.json`` entries (BatchNorm running mean, var), in that file's order."""
    return [buffer for layer in network.layers if layer.non_trainable_state() is not None
            for buffer in layer.buffers()]


def training_state(model, paths: dict) -> dict:
    """The marker's ``training_state``: per file basename, the counts HugeCTR's files do not keep."""
    state = {}
    if non_trainable_buffers(model.engine.network):
        state[fs.basename(paths["dense"])] = {"non_trainable_file": fs.basename(paths["dense"] + ".ntp.f32")}
    state[fs.basename(paths["opt_dense"])] = {
        "step_count": model.dense_optimizer.step_count,
        "lr_scheduler_step": model.get_learning_rate_scheduler().get_step()}
    for path, table in zip(paths["opt_sparse"], model.embedding_tables):
        state[fs.basename(path)] = {"step": sparse_optimizer_of(table).step}
    return state


def save_all(prefix: str, iteration: int, model, data_source_params=None) -> None:
    """Write a full snapshot in HugeCTR's order, logging as HugeCTR does, between two markers."""
    prefix, source = str(prefix), data_source_params
    paths = snapshot_paths(prefix, iteration, len(model.embedding_tables))
    files = [paths["dense"], paths["opt_dense"], *paths["sparse"], *paths["opt_sparse"]]
    lazy = [(last_step_path(path), steps) for path, table in zip(paths["opt_sparse"], model.embedding_tables)
            if (steps := lazy_last_steps(table)) is not None]
    files += [path for path, _ in lazy]
    non_trainable = model.engine.network.non_trainable_states()
    if non_trainable:
        files += [paths["dense"] + ".ntp.json", paths["dense"] + ".ntp.f32"]
    state = training_state(model, paths)                # host counters only: read before any file is written
    for path, _ in lazy:
        state[fs.basename(path.removesuffix(".last_step"))]["last_step_file"] = fs.basename(path)
    snapshot_marker.begin(prefix, iteration, files, source)
    for path, table in zip(paths["sparse"], model.embedding_tables):
        log.info("Rank0: Write hash table to file")
        write_sparse(path, table, source)
    log.info("Dumping sparse weights to files, successful")
    for path, table in zip(paths["opt_sparse"], model.embedding_tables):
        log.info("Rank0: Write optimzer state to file")
        write_sparse_optimizer(path, table, source)
        log.info("Done")
    for path, steps in lazy:
        atomic_write_array(path, steps.cpu().numpy().astype(np.int64), source)
    log.info("Dumping sparse optimzer states to files, successful")
    write_dense(paths["dense"], model.flat_parameters.weights, non_trainable, source)
    if non_trainable:
        exact = [_host(b).reshape(-1) for b in non_trainable_buffers(model.engine.network)]
        atomic_write_array(paths["dense"] + ".ntp.f32", np.concatenate(exact), source)
    log.info("Dumping dense weights to file, successful")
    write_dense_optimizer(paths["opt_dense"], model.dense_optimizer.state_tensors(), source)
    log.info("Dumping dense optimizer states to file, successful")
    snapshot_marker.finish(prefix, iteration, files, source, training_state=state)


def read_exact_non_trainable(path: str, count: int, data_source_params=None) -> np.ndarray | None:
    """The unrounded ``.ntp.json`` values saved with dense file ``path`` (``count`` fp32), or None."""
    state = snapshot_marker.training_state(path, data_source_params)
    if not state or not state.get("non_trainable_file"):
        return None
    side = fs.join(fs.parent(str(path)) or ".", state["non_trainable_file"])
    snapshot_marker.refuse_incomplete(side, "load_dense_weights", data_source_params)
    return read_array(side, np.float32, "load_dense_weights", count=count, data_source_params=data_source_params)


def read_dense_optimizer_state(path: str, data_source_params=None) -> dict | None:
    """``{"step_count", "lr_scheduler_step"}`` saved with a dense optimizer-state file, or None (HugeCTR's)."""
    return snapshot_marker.training_state(path, data_source_params)


def read_sparse_optimizer_state(path: str, what: str,
                                data_source_params=None) -> tuple[int | None, np.ndarray | None]:
    """``(step, per-row last steps or None)`` saved with a sparse optimizer-state file; (None, None) if none."""
    state = snapshot_marker.training_state(path, data_source_params)
    if state is None:
        return None, None
    last_step = None
    if state.get("last_step_file"):
        side = fs.join(fs.parent(str(path)) or ".", state["last_step_file"])
        snapshot_marker.refuse_incomplete(side, what, data_source_params)
        last_step = read_array(side, np.int64, what, data_source_params=data_source_params)
    return state.get("step"), last_step


def read_dense(path: str, numel: int, data_source_params=None) -> np.ndarray:
    snapshot_marker.refuse_incomplete(path, "load_dense_weights", data_source_params)
    return read_array(path, np.float32, "load_dense_weights", count=numel, data_source_params=data_source_params)


def read_float_states(path: str, count: int | None, what: str, data_source_params=None) -> np.ndarray:
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
