"""``hugectr.Model``: add layers, compile, fit, evaluate, save and load (orchestration only)."""

from __future__ import annotations

import os

import torch

from . import fit as fit_loops
from . import log
from . import tensor_checkout
from .data.device_feed import DeviceFeed
from .data.reader import DataReader, SourceOptions, parquet_worker_count
from .distributed import data_parallel, env
from .distributed.batch_part import global_size
from .enums import DataReaderType_t, FileSystemType_t, MetricsType
from .graph import Graph
from .io import predictions
from .layers.base import WeightInit
from .metrics import MetricsCollection
from .network import DenseNetwork
from .optimizers.dense import make_dense_optimizer
from .optimizers.flat_parameters import FlatParameters
from .optimizers.lr_scheduler import LearningRateScheduler
from .params import (DataReaderParams, DenseLayer, EmbeddingCollectionConfig, GroupDenseLayer, Input, OptParamsPy,
                     Solver, SparseEmbedding)
from .embedding.collection import build_collections, check_collection
from .embedding.sparse_embedding import SparseEmbeddingTable
from .model_files import ModelFiles
from .summary import print_summary
from .training import StepEngine, StepSettings, compile_wanted, cuda_graphs_wanted
from .version import __version__


class Model(ModelFiles):
    """A HugeCTR model: ``Model(solver, reader_params, opt_params)``, then ``add`` / ``compile`` / ``fit``."""

    def __init__(self, solver: Solver, reader_params: DataReaderParams, opt_params: OptParamsPy, *legacy):
        for name, value, kind in (("solver", solver, Solver), ("reader_params", reader_params, DataReaderParams),
                                  ("opt_params", opt_params, OptParamsPy)):
            if not isinstance(value, kind):
                raise TypeError(f"Model(): {name} must be a hugectr.{kind.__name__}, got {type(value).__name__}")
        self.solver, self.reader_params, self.opt_params = solver, reader_params, opt_params
        if solver.data_source_params is not None and reader_params.data_source_params.source is FileSystemType_t.Local:
            # HugeCTR v3.9's CreateSolver(data_source_params=...): the file system of data the reader leaves Local
            reader_params.data_source_params = solver.data_source_params
        env.init_ranks(solver.vvgpu)        # joins the launcher's ranks, or starts one process per GPU
        self.device = env.select_device(solver.vvgpu)
        # seed 0 draws a random seed: rank 0's, so every rank builds the same initial model
        self.seed = data_parallel.same_on_all_ranks(solver.seed or int.from_bytes(os.urandom(4), "little"))
        self.graph = Graph(batch_size=solver.batchsize // solver.num_gpus)
        self.engine: StepEngine | None = None
        self.embedding_tables: list[SparseEmbeddingTable] = []
        self.dense_trainable = True
        self.embedding_trainable: dict[str, bool] = {}
        self._scheduler = LearningRateScheduler(solver.lr, solver.warmup_steps, solver.decay_start,
                                                solver.decay_steps, solver.decay_power, solver.end_lr)
        self._lr = solver.lr
        self._train_reader: DataReader | None = None
        self._eval_reader: DataReader | None = None
        self._feeds: dict[str, DeviceFeed] = {}
        self._last_loss: torch.Tensor | None = None
        log.plain(f"HugeCTR Version: {'.'.join(__version__.split('.')[:2])}")
        log.banner("Model Init")
        if not solver.model_name:
            log.warning("The model name is not specified when creating the solver.")
        log.info(f"Global seed is {self.seed}")
        log.info(f"Device: {self.device}" + ("" if self.device.type == "cuda" else " (no CUDA GPU in use)"))

    # -- building ---------------------------------------------------------------------------
    def add(self, layer) -> None:
        """Add the ``Input``, a ``SparseEmbedding`` or a ``DenseLayer`` (in that order)."""
        if self.engine is not None:
            raise RuntimeError("Model.add: the model is already compiled; add every layer before compile()")
        if isinstance(layer, Input):
            self.graph.add_input(layer)
        elif isinstance(layer, SparseEmbedding):
            self.graph.add_embedding(layer)
            self.embedding_trainable[layer.sparse_embedding_name] = True
        elif isinstance(layer, DenseLayer):
            self.graph.add_dense(layer)
        elif isinstance(layer, GroupDenseLayer):      # an older API: a chain of FusedInnerProduct layers
            for dense in layer.expand():
                self.graph.add_dense(dense)
        elif isinstance(layer, EmbeddingCollectionConfig):
            check_collection(layer, self.solver, self.graph.input, self.opt_params, self.graph.collections)
            self.graph.add_collection(layer)
        else:
            raise TypeError(f"Model.add takes hugectr.Input, hugectr.SparseEmbedding, hugectr.DenseLayer, "
                            f"hugectr.GroupDenseLayer or hugectr.EmbeddingCollectionConfig, got {type(layer).__name__}")

    def compile(self, loss_names: list[str] | None = None, loss_weights: list[float] | None = None) -> None:
        """Analyse the graph, build every layer and table on the device, set up optimizers and metrics."""
        if self.engine is not None:
            raise RuntimeError("Model.compile was already called")
        graph = self.graph
        if graph.input is None or not graph.loss_nodes():
            raise ValueError("Model.compile: the model needs an Input and at least one loss layer "
                             "(e.g. BinaryCrossEntropyLoss) before compile()")
        if len(graph.loss_nodes()) > 1 and set(self.solver.metrics_spec) - {MetricsType.AUC}:
            raise ValueError("Model.compile: a model with several losses supports only MetricsType.AUC in "
                             "metrics_spec (as HugeCTR); remove the other metrics")
        log.banner("Model Compile")
        log.info("Graph analysis to resolve tensor dependency")
        nodes = graph.analyse()
        self._check_mixed_precision(nodes)
        network = DenseNetwork(nodes, graph.shapes, WeightInit(self.seed)).to(self.device)
        flat = FlatParameters(network.trainable_parameters())
        data_parallel.broadcast_dense(flat)     # data-parallel ranks start from rank 0's weights
        dense_optimizer = make_dense_optimizer(self.opt_params, flat)
        tables = self._build_tables()
        collections = build_collections(graph.collections, graph.input, graph.batch_size, self.opt_params,
                                        seed=self.seed + 2, device=self.device)
        compiled = compile_wanted(self.device)
        self.engine = StepEngine(
            StepSettings(self.device, self._autocast_dtype(), self.solver.scaler, graph.batch_size, compile=compiled,
                         cuda_graphs=cuda_graphs_wanted(self.solver.use_cuda_graph, compiled)),
            network, tables, flat, dense_optimizer, list(graph.input.label_names), graph.input.dense_name,
            self._label_weights(loss_names, loss_weights), collections=collections)
        self.metrics = MetricsCollection(self.solver.metrics_spec)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = self.solver.enable_tf32_compute
            torch.backends.cudnn.allow_tf32 = self.solver.enable_tf32_compute
        elif self.solver.use_mixed_precision:
            log.warning("use_mixed_precision runs in fp32 on the CPU (fp16 needs a CUDA GPU)")

    def _autocast_dtype(self) -> torch.dtype | None:
        """fp16 as HugeCTR's mixed precision (bf16 by the ``mixed_precision_dtype`` extension), on CUDA."""
        if not self.solver.use_mixed_precision or self.device.type != "cuda":
            return None
        return torch.bfloat16 if self.solver.mixed_precision_dtype == "bf16" else torch.float16

    def _check_mixed_precision(self, nodes) -> None:
        for node in nodes:
            node.layer.check_mixed_precision(self.solver.use_mixed_precision)

    def _build_tables(self) -> dict:
        """One table per ``SparseEmbedding``: model-parallel over the ranks when there are several."""
        tables, generator = {}, torch.Generator().manual_seed(self.seed + 1)
        table_class = data_parallel.sharded_table_class() if env.world_size() > 1 else SparseEmbeddingTable
        for emb in self.graph.embeddings:
            table = table_class(emb, self.graph.sparse_inputs[emb.bottom_name],
                                emb.optimizer or self.opt_params, num_gpus=self.solver.num_gpus,
                                generator=generator, device=self.device, rank=env.rank())
            self.embedding_tables.append(table)
            tables[emb.sparse_embedding_name] = (emb.bottom_name, table)
        return tables

    def _label_weights(self, loss_names, loss_weights) -> dict[str, float]:
        inp = self.graph.input
        weights = dict(zip(inp.label_names, inp.label_weights))
        loss_names, loss_weights = list(loss_names or []), list(loss_weights or [])
        if len(loss_names) != len(loss_weights):
            raise ValueError(f"Model.compile: loss_names ({len(loss_names)}) and loss_weights ({len(loss_weights)}) "
                             "must have the same length")
        for name, weight in zip(loss_names, loss_weights):
            if name not in weights:
                raise ValueError(f"Model.compile: loss name '{name}' is not a label name; label names are "
                                 f"{', '.join(inp.label_names)}")
            weights[name] = float(weight)
        return weights

    def summary(self) -> None:
        """Print the model structure table, as HugeCTR does."""
        if self.graph.input is None:
            raise RuntimeError("Model.summary: add the Input and layers first")
        self.graph.analyse()
        print_summary(self.graph)

    # -- high-level training ----------------------------------------------------------------
    def fit(self, num_epochs: int = 0, max_iter: int = 2000, display: int = 200, eval_interval: int = 1000,
            snapshot: int = 10000, snapshot_prefix: str = "") -> None:
        """Train: ``max_iter`` iterations (non-epoch mode) or ``num_epochs`` passes (epoch mode)."""
        self._require_compiled("fit")
        if self.solver.repeat_dataset:
            if max_iter <= 0:
                raise ValueError("Model.fit: non-epoch mode (repeat_dataset=True) needs max_iter > 0")
            fit_loops.fit_non_epoch(self, max_iter, display, eval_interval, snapshot, snapshot_prefix)
        else:
            if num_epochs <= 0:
                raise ValueError("Model.fit: epoch mode (repeat_dataset=False) needs num_epochs > 0")
            fit_loops.fit_epoch(self, num_epochs, display, eval_interval, snapshot, snapshot_prefix)

    def _require_compiled(self, what: str) -> None:
        if self.engine is None:
            raise RuntimeError(f"Model.{what}: call Model.compile() first")

    # -- readers ----------------------------------------------------------------------------
    def _make_reader(self, source: str, batch_size: int) -> DataReader:
        params = self.reader_params
        kind = params.data_reader_type
        # Raw needs the sample count of its file: num_samples for the train source, eval_num_samples for eval.
        num_samples = params.num_samples if source == params.source[0] else params.eval_num_samples
        if kind is DataReaderType_t.Parquet:
            workers = parquet_worker_count(params.num_workers, source, max(len(self.solver.vvgpu[0]), 1),
                                           params.data_source_params, sequential=params.read_file_sequentially)
        elif kind is DataReaderType_t.RawAsync:
            workers = params.async_param.num_threads
        else:  # Norm: num_workers threads over the file list; Raw: over batch lanes of its one file
            workers = params.num_workers
        # RawAsync: each thread works num_batches_per_thread batches ahead (HugeCTR's AsyncParam); others 4 in all.
        prefetch = workers * params.async_param.num_batches_per_thread if kind is DataReaderType_t.RawAsync else 4
        return DataReader(params, self.graph.input, batch_size, source, repeat=self.solver.repeat_dataset,
                          i64_input_key=self.solver.i64_input_key, num_workers=workers, prefetch=prefetch,
                          pin_memory=self.device.type == "cuda",
                          source_options=SourceOptions(num_samples=num_samples, seed=self.seed),
                          part=(env.rank(), env.world_size()))    # batch_size is global: this rank's part

    def _require_input(self, what: str) -> None:
        if self.graph.input is None:
            raise RuntimeError(f"Model.{what}: add the Input first (the readers are made from it, as in HugeCTR)")

    def get_data_reader_train(self) -> DataReader:
        """The training reader (made once the Input is added, as HugeCTR makes it in ``add(Input)``)."""
        self._require_input("get_data_reader_train")
        if self._train_reader is None:
            self._train_reader = self._make_reader(self.reader_params.source[0], self.solver.batchsize)
        return self._train_reader

    def get_data_reader_eval(self) -> DataReader:
        self._require_input("get_data_reader_eval")
        if self._eval_reader is None:
            self._eval_reader = self._make_reader(self.reader_params.eval_source, self.solver.batchsize_eval)
        return self._eval_reader

    def _feed(self, which: str) -> DeviceFeed:
        """The train or eval reader behind a device feed (read-ahead in non-epoch mode only)."""
        reader = self.get_data_reader_train() if which == "train" else self.get_data_reader_eval()
        feed = self._feeds.get(which)
        if feed is None or feed.reader is not reader:
            cache = self.reader_params.cache_eval_data if which == "eval" else 0   # eval batches kept on the device
            feed = self._feeds[which] = DeviceFeed(reader, self.device, read_ahead=self.solver.repeat_dataset,
                                                   cache_batches=cache)
        return feed

    def start_data_reading(self) -> None:
        """Start the train and eval readers (non-epoch mode, before a low-level ``train()`` loop)."""
        self.get_data_reader_train().start()
        self.get_data_reader_eval().start()

    def set_source(self, source: str, eval_source: str, *, keyset=None) -> None:
        """Swap the train and eval sources between ``fit`` calls (epoch mode only).

        ``keyset=`` (HugeCTR <= 23.08, with ``source`` a list of file lists) fed the embedding training
        cache, which staged each list's keys from a parameter server; here the whole table is on the
        device, so that form is refused with the call that does the same (one file list per ``fit``).
        """
        if keyset is not None or not isinstance(source, str):
            raise TypeError("Model.set_source(source=[...], keyset=[...], eval_source=...) is the embedding training "
                            "cache's form (HugeCTR <= 23.08), which hugectr does not need: the whole table stays on "
                            "the device. Train on each file list in turn with "
                            "model.set_source(source=file_list, eval_source=eval_source) and model.fit(num_epochs=...)")
        if self.solver.repeat_dataset:
            raise RuntimeError("Model.set_source can only be used in epoch mode (CreateSolver(repeat_dataset=False))")
        self.reader_params.source = [source]
        self.reader_params.eval_source = eval_source
        if self._train_reader is not None:
            self._train_reader.set_source(source)
        if self._eval_reader is not None:
            self._eval_reader.set_source(eval_source)

    # -- low-level training -----------------------------------------------------------------
    def get_learning_rate_scheduler(self) -> LearningRateScheduler:
        return self._scheduler

    def set_learning_rate(self, lr: float) -> None:
        """The learning rate of the next iteration (0 for frozen parts, as HugeCTR)."""
        self._lr = float(lr)

    def train(self, is_first_batch: bool = True) -> bool:
        """One iteration; False when the training data is exhausted (epoch mode).

        ``is_first_batch``: HugeCTR 3.4's argument, accepted so old scripts run; it changes nothing.
        """
        self._require_compiled("train")
        feed = self._feed("train")
        batch = feed.next_batch()
        if batch is None:
            return False
        if global_size(batch) < self.solver.batchsize and self.solver.drop_incomplete_batch:
            log.info(f"train drop incomplete batch. batchsize:{global_size(batch)}")
            return True
        dense_lr = self._lr if self.dense_trainable else 0.0
        sparse_lrs = {name: (self._lr if trainable else 0.0) for name, trainable in self.embedding_trainable.items()}
        self._last_loss = self.engine.train_step(batch, dense_lr, sparse_lrs, collection_lr=self._lr)
        feed.prefetch()
        return True

    def eval(self, is_first_batch: bool = True) -> bool:
        """Evaluate one batch into the metrics; False when the eval data is exhausted (epoch mode).

        ``is_first_batch``: HugeCTR 3.4's argument, accepted and ignored like ``train``'s.
        """
        self._require_compiled("eval")
        batch = self._feed("eval").next_batch()
        if batch is None:
            return False
        self.engine.eval_step(batch, self.metrics)
        return True

    def get_eval_metrics(self) -> list[tuple[str, float]]:
        """The metrics over the ``eval()`` batches since the last call (which resets them)."""
        self._require_compiled("get_eval_metrics")
        if env.world_size() > 1:
            self.metrics.synchronize(data_parallel.RankReducer())   # the window over the global eval set
        self._per_class_auc = self.metrics.per_class_auc()
        return self.metrics.finalize()

    def per_class_auc(self) -> list[float]:
        return list(getattr(self, "_per_class_auc", []) or [])

    def get_current_loss(self) -> float:
        """The loss of the last training batch (weighted losses + regularizer terms), over all ranks.

        Every rank must call it (the ranks' shares of the loss are summed).
        """
        self.check_overflow()
        return float(data_parallel.sum_over_ranks(self._last_loss)) if self._last_loss is not None else 0.0

    def check_out_tensor(self, tensor_name: str, tensor_type):
        """A tensor of the latest training step (``Tensor_t.Train``: its gradient) or evaluation batch
        (``Tensor_t.Evaluate``: its values) as a float32 NumPy array (``hugectr.tensor_checkout``)."""
        self._require_compiled("check_out_tensor")
        return tensor_checkout.check_out(self, tensor_name, tensor_type)

    def export_predictions(self, output_prediction_file_name: str, output_label_file_name: str) -> None:
        """HugeCTR <= 23.08: append the last eval batch's predictions and labels to two text files
        (``hugectr.io.predictions``); call it after each ``eval()`` to collect a whole evaluation."""
        self._require_compiled("export_predictions")
        predictions.export_last_eval(self.engine, output_prediction_file_name, output_label_file_name)

    def check_overflow(self) -> None:
        """Raise if a table ran out of rows (GPU lookups report it without stopping the stream)."""
        for table in self.embedding_tables:
            table.check_errors()
        for collection in self.engine.collections if self.engine is not None else []:
            collection.check_errors()

    # -- freezing and schedules -------------------------------------------------------------
    def freeze_dense(self) -> None:
        self.dense_trainable = False

    def unfreeze_dense(self) -> None:
        self.dense_trainable = True

    def freeze_embedding(self, embedding_name: str | None = None) -> None:
        self._set_embedding_trainable(embedding_name, False)

    def unfreeze_embedding(self, embedding_name: str | None = None) -> None:
        self._set_embedding_trainable(embedding_name, True)

    def _set_embedding_trainable(self, name: str | None, trainable: bool) -> None:
        if name is None:
            for key in self.embedding_trainable:
                self.embedding_trainable[key] = trainable
        elif name in self.embedding_trainable:
            self.embedding_trainable[name] = trainable
        else:
            raise ValueError(f"no embedding named '{name}'; embeddings: {', '.join(self.embedding_trainable)}")

    def reset_learning_rate_scheduler(self, base_lr: float, warmup_steps: int = 1, decay_start: int = 0,
                                      decay_steps: int = 1, decay_power: float = 2.0, end_lr: float = 0.0) -> None:
        self._scheduler = LearningRateScheduler(base_lr, warmup_steps, decay_start, decay_steps, decay_power, end_lr)
