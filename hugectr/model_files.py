"""``Model``'s file methods: HugeCTR's snapshot files written and read back (a mixin of ``Model``)."""

from __future__ import annotations

import torch

from . import log
from .distributed import data_parallel, env
from .embedding import collection_io
from .embedding.capacity import max_vocabulary_size_global
from .io import checkpoint, graph_json
from .optimizers.flat_parameters import FlatParameters


class ModelFiles:
    """save_params_to_files and the load_* methods; ``Model`` supplies ``engine``, ``graph`` and the rest.

    Every file name may be a URL (``s3://``, ``gs://``, ``hdfs://``, ``https://`` of S3 or GCS); plain
    paths are local unless ``CreateSolver(data_source_params=...)`` (HugeCTR v3.9's keyword) names
    another file system for them. Rules: ``hugectr.io.fs``.
    """

    @property
    def files_source(self):
        """The ``DataSourceParams`` that plain model-file paths live on (None: the local disk)."""
        return getattr(self.solver, "data_source_params", None)

    def save_params_to_files(self, prefix: str, iter: int = 0) -> None:  # noqa: A002 - HugeCTR's keyword
        """Write HugeCTR's dense, sparse and optimizer-state files for iteration ``iter``."""
        self._require_compiled("save_params_to_files")
        self.check_overflow()
        view = data_parallel.snapshot_view(self)    # many ranks: every rank takes part in the tables' export
        if env.rank() == 0:                         # only rank 0 writes files
            checkpoint.save_all(prefix, iter, view, self.files_source)
        data_parallel.barrier()                     # no rank reads the files before they exist

    @property
    def flat_parameters(self) -> FlatParameters:
        return self.engine.flat

    @property
    def dense_optimizer(self):
        return self.engine.dense_optimizer

    def load_dense_weights(self, dense_model_file: str) -> None:
        """Load ``{prefix}_dense_{iter}.model`` (and its BatchNorm statistics, when the net has BatchNorm)."""
        self._require_compiled("load_dense_weights")
        flat = self.engine.flat
        values = checkpoint.read_dense(dense_model_file, flat.numel, self.files_source)
        flat.load_(torch.from_numpy(values))
        stats = checkpoint.read_batch_norm_stats(dense_model_file, self.files_source)
        if stats is not None:
            self.engine.network.load_non_trainable_states(stats)
            # Our snapshots keep the statistics unrounded too (the .ntp.json has 6 decimals): use those.
            buffers = checkpoint.non_trainable_buffers(self.engine.network)
            exact = checkpoint.read_exact_non_trainable(dense_model_file, sum(b.numel() for b in buffers),
                                                        self.files_source)
            if exact is not None:
                with torch.no_grad():
                    for buffer, values in zip(buffers, torch.from_numpy(exact).split([b.numel() for b in buffers])):
                        buffer.copy_(values.view_as(buffer))

    def load_dense_optimizer_states(self, dense_opt_states_file: str) -> None:
        """Load the dense optimizer's state tensors (``{prefix}_opt_dense_{iter}.model``).

        A snapshot of ours also restores the optimizer's step count (Adam's t) and the learning-rate
        scheduler's position, so training continues as if it had never stopped; HugeCTR's files lack
        them and both then stay as they are (HugeCTR restarts them). ``hugectr.io.checkpoint``.
        """
        self._require_compiled("load_dense_optimizer_states")
        optimizer = self.engine.dense_optimizer
        states = optimizer.state_tensors()
        values = checkpoint.read_float_states(dense_opt_states_file, sum(t.numel() for t in states),
                                              "load_dense_optimizer_states", self.files_source)
        optimizer.load_state_tensors(list(torch.from_numpy(values).split([t.numel() for t in states])))
        saved = checkpoint.read_dense_optimizer_state(dense_opt_states_file, self.files_source)
        if saved is not None:
            optimizer.restore_step_count(saved["step_count"])
            self.get_learning_rate_scheduler().restore_step(saved["lr_scheduler_step"])
            log.info(f"Resume the dense optimizer at step {saved['step_count']}, the learning rate scheduler "
                     f"at step {saved['lr_scheduler_step']}")

    def load_sparse_optimizer_states(self, sparse_opt_states_files=None, *, sparse_opt_states_files_map=None) -> None:
        """Load each embedding's optimizer state (a list in add order, or a dict by embedding name;
        ``sparse_opt_states_files_map=`` is the dict overload's keyword in HugeCTR's docs).

        Row i of each state is key i of the sparse model's key file, so a file written with another
        capacity (another GPU count) loads too, as long as its rows cover the table's keys.
        A snapshot of ours also restores each optimizer's step (Adam's t) and LazyGlobal's per-row
        last steps; HugeCTR's files lack them and they then stay as they are (as in HugeCTR).
        """
        self._require_compiled("load_sparse_optimizer_states")
        files = _list_or_map("load_sparse_optimizer_states", "sparse_opt_states_files", sparse_opt_states_files,
                             sparse_opt_states_files_map)
        for name, path in self._by_embedding(files, "load_sparse_optimizer_states").items():
            table = self.engine.tables[name][1]
            what = f"load_sparse_optimizer_states('{name}')"
            values = checkpoint.read_float_states(path, None, what, self.files_source)
            step, last_step = checkpoint.read_sparse_optimizer_state(path, what, self.files_source)
            table.load_optimizer_states(_state_rows(table, torch.from_numpy(values), what, path))
            checkpoint.restore_sparse_optimizer(table, step, last_step, what)

    def load_sparse_weights(self, sparse_embedding_files=None, *, sparse_embedding_files_map=None) -> None:
        """Load each embedding's key / vector files (a list in add order, or a dict by embedding name;
        ``sparse_embedding_files_map=`` is the dict overload's keyword in HugeCTR's docs)."""
        self._require_compiled("load_sparse_weights")
        files = _list_or_map("load_sparse_weights", "sparse_embedding_files", sparse_embedding_files,
                             sparse_embedding_files_map)
        for name, path in self._by_embedding(files, "load_sparse_weights").items():
            table = self.engine.tables[name][1]
            keys, vectors, slot_ids = checkpoint.read_sparse(path, table.embedding_vec_size, name, self.files_source)
            table.load(torch.from_numpy(keys), torch.from_numpy(vectors),
                       None if slot_ids is None else torch.from_numpy(slot_ids.astype("int64")))

    def embedding_dump(self, path: str, table_names: list[str] | None = None) -> None:
        """Write embedding-collection tables (all, or those named) in HugeCTR's EBC layout under ``path``."""
        self._require_compiled("embedding_dump")
        self.check_overflow()
        collection_io.dump(path, self.engine.collections, table_names, i64_keys=self.solver.i64_input_key,
                           data_source_params=self.files_source)

    def embedding_load(self, path: str, table_names: list[str] | None = None) -> None:
        """Load embedding-collection tables (all, or those named) from an ``embedding_dump`` folder."""
        self._require_compiled("embedding_load")
        collection_io.load(path, self.engine.collections, table_names, data_source_params=self.files_source)

    def _by_embedding(self, files, what: str) -> dict[str, str]:
        names = [emb.sparse_embedding_name for emb in self.graph.embeddings]
        if isinstance(files, dict):
            unknown = [n for n in files if n not in names]
            if unknown:
                raise ValueError(f"Model.{what}: no embedding named {unknown}; embeddings: {', '.join(names)}")
            return dict(files)
        files = [files] if isinstance(files, str) else list(files)
        if len(files) != len(names):
            raise ValueError(f"Model.{what}: got {len(files)} file(s) for {len(names)} embedding(s) ({', '.join(names)}); "
                             "give one per embedding in add order, or a dict by embedding name")
        return dict(zip(names, files))

    def graph_to_json(self, graph_config_file: str) -> None:
        """Write the model graph as HugeCTR's graph JSON (implicit Slices included)."""
        capacities = {e.sparse_embedding_name: max_vocabulary_size_global(e, e.optimizer or self.opt_params,
                                                                          self.solver.num_gpus)
                      for e in self.graph.embeddings}
        if env.rank() == 0:
            graph_json.write_graph_json(graph_config_file, graph_json.graph_to_json_dict(
                self.graph, self.solver, self.opt_params, capacities), self.files_source)
        data_parallel.barrier()
        log.info(f"Save the model graph to {graph_config_file} successfully")

    def construct_from_json(self, graph_config_file: str, include_dense_network: bool) -> None:
        """Add the Input, embeddings and (if asked) dense layers of a HugeCTR graph JSON."""
        inp, embeddings, dense_layers = graph_json.layers_from_json(
            graph_config_file, include_dense_network, batch_size=self.graph.batch_size,
            data_source_params=self.files_source)
        for layer in [inp, *embeddings, *dense_layers]:
            self.add(layer)
        log.info(f"Load the model graph from {graph_config_file} successfully")


def _state_rows(table, values: torch.Tensor, what: str, path: str) -> list[torch.Tensor]:
    """The file's values as the table's state tensors: per state ``(file rows, ev)``, rows in key-file order.

    A sharded table takes the rows as they are (each rank picks its keys' rows); a one-device table
    gets its ``(capacity, ev)`` tensors with the file's rows in front (rows past the file keep their
    values, rows past the capacity must be unused).
    """
    states = table.optimizer_states()          # a collective on a sharded table: every rank calls it
    ev, count = table.embedding_vec_size, len(states)
    if count == 0:                              # SGD keeps no state: its file is empty
        if values.numel():
            raise ValueError(f"{what}: '{path}' holds {values.numel()} float32 values; this table's optimizer "
                             "keeps no state (an empty file); the file belongs to another optimizer")
        return []
    if values.numel() % (count * ev) or values.numel() // (count * ev) < table_keys(table):
        raise ValueError(f"{what}: '{path}' holds {values.numel()} float32 values, which is not {count} state "
                         f"tensor(s) of rows of embedding_vec_size {ev} covering the table's {table_keys(table)} "
                         "keys; the file belongs to another table or optimizer (load the sparse weights first)")
    parts = list(values.view(count, -1, ev))
    if hasattr(table, "shard") or parts[0].shape[0] == states[0].shape[0]:
        return parts                            # sharded: each rank picks its rows; else the same capacity
    fitted = []
    for state, part in zip(states, parts):      # another capacity: the file's rows in front, on the device
        rows = min(part.shape[0], state.shape[0])
        full = state.detach().clone()
        full[:rows] = part[:rows].to(full.device)
        fitted.append(full)
    return fitted


def table_keys(table) -> int:
    """Keys the table holds (all ranks' for a sharded one)."""
    return table.global_size() if hasattr(table, "global_size") else table.size


def _list_or_map(what: str, list_name: str, files, files_map):
    """The one argument of HugeCTR's two overloads: the list (or dict) positionally / as ``list_name``, or
    the dict as ``list_name + '_map'``."""
    if (files is None) == (files_map is None):
        raise TypeError(f"Model.{what}() takes either {list_name} (a list in add order, or a dict by embedding "
                        f"name) or {list_name}_map (a dict by embedding name), exactly one of them")
    if files_map is not None and not isinstance(files_map, dict):
        raise TypeError(f"Model.{what}(): {list_name}_map must be a dict of embedding name -> path, got "
                        f"{type(files_map).__name__}")
    return files if files_map is None else files_map
