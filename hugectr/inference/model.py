"""``InferenceModel`` and ``CreateInferenceSession`` (HugeCTR <= 23.08's ``hugectr.inference``).

An inference model is the training graph of ``Model.graph_to_json`` with the weights of a snapshot
(``dense_model_file``, one ``sparse_model_files`` folder per embedding), run forward only: each loss
layer gives its probabilities (BCE and MultiCrossEntropy a sigmoid, CrossEntropy a softmax), as
HugeCTR swaps its loss layers for those at inference. It is built with the training code itself
(``Model.construct_from_json`` + the ``load_*`` methods + the evaluation step), so a prediction is
exactly what ``Model.eval()`` computes on the same batch. The whole tables sit on one device (the first
of ``deployed_devices``): HugeCTR's embedding cache and parameter server have nothing to do here.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.batch import Batch
from ..data.reader import DataReader, SourceOptions
from ..embedding.sparse_batch import SparseBatch
from ..enums import Check_t, DataReaderType_t, MetricsType, Optimizer_t, Tensor_t
from ..metrics import MetricsCollection
from ..model import Model
from ..params import CreateOptimizer, CreateSolver, DataReaderParams
from .params import InferenceParams


class InferenceModel:
    """``InferenceModel(model_config_path, inference_params)``: predictions and AUC over data files."""

    def __init__(self, model_config_path: str, inference_params: InferenceParams):
        if not isinstance(inference_params, InferenceParams):
            raise TypeError(f"InferenceModel: inference_params must come from hugectr.inference.InferenceParams, "
                            f"got {type(inference_params).__name__}")
        p = self.params = inference_params
        device = p.deployed_devices[0] if p.deployed_devices else p.device_id
        solver = CreateSolver(model_name=p.model_name, batchsize=p.max_batchsize, batchsize_eval=p.max_batchsize,
                              vvgpu=[[device]], i64_input_key=p.i64_input_key, use_mixed_precision=p.use_mixed_precision,
                              scaler=p.scaler, use_cuda_graph=p.use_cuda_graph, repeat_dataset=True)
        # The model's own reader is never used: predict() and evaluate() name their data.
        reader = DataReaderParams(data_reader_type=DataReaderType_t.Parquet, source=[model_config_path],
                                  eval_source=model_config_path, check_type=Check_t.Non)
        # SGD keeps no optimizer state, so a workspace holds the most rows (a snapshot's keys always fit).
        model = self.model = Model(solver, reader, CreateOptimizer(optimizer_type=Optimizer_t.SGD))
        model.construct_from_json(model_config_path, True)
        model.compile()
        model.load_dense_weights(p.dense_model_file)
        model.load_sparse_weights(p.sparse_model_files)

    # -- over data files ----------------------------------------------------------------------
    def predict(self, num_batches: int, source: str, data_reader_type, check_type, slot_size_array=(),
                data_source_params=None, reading_file_sequentially: bool = True, num_samples: int = 0) -> np.ndarray:
        """``(num_batches * max_batchsize, label_dim)`` probabilities of the data in ``source`` (a file list, or
        a Raw file of ``num_samples`` samples), in file order; data shorter than that is read again. One
        reader thread reads the files in list order, which is what ``reading_file_sequentially`` asks for."""
        return np.concatenate([p for p, _ in self._batches(num_batches, source, data_reader_type, check_type,
                                                           slot_size_array, data_source_params, num_samples)])

    def evaluate(self, num_batches: int, source: str, data_reader_type, check_type, slot_size_array=(),
                 data_source_params=None, reading_file_sequentially: bool = True, num_samples: int = 0) -> float:
        """The AUC of the predictions of ``predict`` against the data's labels."""
        metrics = MetricsCollection({MetricsType.AUC: 1.0})
        for probabilities, labels in self._batches(num_batches, source, data_reader_type, check_type,
                                                   slot_size_array, data_source_params, num_samples):
            metrics.update(torch.from_numpy(probabilities), torch.from_numpy(labels), torch.zeros(()))
        return float(dict(metrics.finalize())["AUC"])

    def check_out_tensor(self, tensor_name: str) -> np.ndarray:
        """A tensor of the last predicted batch (``Model.check_out_tensor`` with ``Tensor_t.Evaluate``)."""
        return self.model.check_out_tensor(tensor_name, Tensor_t.Evaluate)

    def _batches(self, num_batches, source, data_reader_type, check_type, slot_size_array, data_source_params,
                 num_samples):
        if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1:
            raise ValueError(f"InferenceModel: num_batches must be a positive int, got {num_batches!r}")
        model, batch_size = self.model, self.params.max_batchsize
        extra = {} if data_source_params is None else {"data_source_params": data_source_params}
        params = DataReaderParams(data_reader_type=data_reader_type, source=[source], eval_source=source,
                                  check_type=check_type, slot_size_array=list(slot_size_array),
                                  num_samples=num_samples, eval_num_samples=num_samples, **extra)
        reader = DataReader(params, model.graph.input, batch_size, source, repeat=True,
                            i64_input_key=self.params.i64_input_key, pin_memory=model.device.type == "cuda",
                            source_options=SourceOptions(num_samples=num_samples))
        with reader:
            for _ in range(num_batches):
                yield self._forward(reader.next_batch())

    def _forward(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, labels) of one batch as float32 arrays."""
        engine = self.model.engine
        engine.eval_step(batch.to(self.model.device), MetricsCollection({MetricsType.AverageLoss: 0.0}))
        probabilities, labels = engine.last_eval
        return probabilities.float().cpu().numpy(), labels.float().cpu().numpy()


class InferenceSession(InferenceModel):
    """``CreateInferenceSession``'s session: ``predict`` over arrays (CSR keys per table) or over data files."""

    def predict(self, *args, **kwargs):
        """``predict(dense_feature, embeddingcolumns, row_ptrs) -> list[float]`` (``num_samples x label_dim``), or
        ``predict(num_batches, source, data_reader_type, check_type, ...)`` as ``InferenceModel.predict``.

        ``dense_feature``: ``num_samples x dense_dim`` floats. ``embeddingcolumns``: the keys of every embedding
        table one after the other, as the sparse model files hold them. ``row_ptrs``: per table, the
        ``num_samples x slot_num + 1`` CSR offsets into that table's keys, one table after the other.
        """
        names = ("dense_feature", "embeddingcolumns", "row_ptrs")
        if (args and not isinstance(args[0], (int, np.integer))) or set(kwargs) & set(names):
            values = dict(zip(names, args), **kwargs)
            missing = [name for name in names if name not in values]
            if missing:
                raise TypeError(f"InferenceSession.predict() missing argument(s): {', '.join(missing)}")
            return self._predict_arrays(values["dense_feature"], values["embeddingcolumns"], values["row_ptrs"])
        return super().predict(**_session_file_arguments("predict", args, kwargs))

    def evaluate(self, *args, **kwargs) -> float:
        """``evaluate(num_batches, source, data_reader_type, check_type, slot_size_array=[], num_samples=0,
        data_source_params=...)``: the AUC, as ``InferenceModel.evaluate``."""
        return super().evaluate(**_session_file_arguments("evaluate", args, kwargs))

    def refresh_embedding_cache(self) -> None:
        """Nothing to refresh: the whole tables are on the device, no cache in front of a parameter server."""

    def _predict_arrays(self, dense_feature, embeddingcolumns, row_ptrs) -> list[float]:
        inp = self.model.graph.input
        dense = np.asarray(dense_feature, dtype=np.float32).reshape(-1)
        keys = np.asarray(embeddingcolumns, dtype=np.int64).reshape(-1)
        offsets = np.asarray(row_ptrs, dtype=np.int64).reshape(-1)
        sparse_params = inp.data_reader_sparse_param_array
        slots = [p.slot_num for p in sparse_params]
        if inp.dense_dim:
            if dense.size % inp.dense_dim:
                raise ValueError(f"InferenceSession.predict: dense_feature holds {dense.size} values, not a multiple "
                                 f"of the model's dense_dim {inp.dense_dim}")
            num_samples = dense.size // inp.dense_dim
        else:
            num_samples = (offsets.size - len(slots)) // sum(slots)
        if not 0 < num_samples <= self.params.max_batchsize:
            raise ValueError(f"InferenceSession.predict: {num_samples} samples; give 1 to max_batchsize "
                             f"({self.params.max_batchsize}) samples")
        expected = sum(num_samples * s + 1 for s in slots)
        if offsets.size != expected:
            raise ValueError(f"InferenceSession.predict: row_ptrs holds {offsets.size} offsets; {num_samples} samples "
                             f"and slots {slots} (one CSR per table: samples x slots + 1 each) need {expected}")
        sparse, key_start, pointer = {}, 0, 0
        for param, slot_num in zip(sparse_params, slots):
            table_offsets = offsets[pointer:pointer + num_samples * slot_num + 1]
            pointer += table_offsets.size
            if table_offsets[0] != 0 or np.any(np.diff(table_offsets) < 0):
                raise ValueError(f"InferenceSession.predict: the row_ptrs of '{param.top_name}' must start at 0 "
                                 f"and never decrease, got {table_offsets[:8].tolist()}...")
            count = int(table_offsets[-1])
            if key_start + count > keys.size:
                raise ValueError(f"InferenceSession.predict: row_ptrs ask for {key_start + count} keys, "
                                 f"embeddingcolumns holds {keys.size}")
            sparse[param.top_name] = SparseBatch(torch.from_numpy(keys[key_start:key_start + count].copy()),
                                                 torch.from_numpy(table_offsets.copy()), num_samples, slot_num)
            key_start += count
        if key_start != keys.size:
            raise ValueError(f"InferenceSession.predict: embeddingcolumns holds {keys.size} keys, row_ptrs use "
                             f"{key_start}")
        batch = Batch(label=torch.zeros(num_samples, sum(inp.label_dims)),
                      dense=torch.from_numpy(dense.reshape(num_samples, inp.dense_dim).copy()), sparse=sparse)
        probabilities, _ = self._forward(batch)
        return probabilities.reshape(-1).tolist()


# The session's file overloads put num_samples before data_source_params (InferenceModel's have no num_samples).
_SESSION_FILE_ARGUMENTS = ("num_batches", "source", "data_reader_type", "check_type", "slot_size_array", "num_samples",
                           "data_source_params")


def _session_file_arguments(what: str, args: tuple, kwargs: dict) -> dict:
    if len(args) > len(_SESSION_FILE_ARGUMENTS):
        raise TypeError(f"InferenceSession.{what}() takes at most {len(_SESSION_FILE_ARGUMENTS)} positional "
                        f"arguments ({', '.join(_SESSION_FILE_ARGUMENTS)}), got {len(args)}")
    named = dict(zip(_SESSION_FILE_ARGUMENTS, args))
    twice = sorted(set(named) & set(kwargs))
    if twice:
        raise TypeError(f"InferenceSession.{what}() got {', '.join(twice)} both by position and by keyword")
    return {**named, **kwargs}


def CreateInferenceSession(model_config_path: str, inference_params: InferenceParams) -> InferenceSession:  # noqa: N802
    """HugeCTR's factory: the session over ``model_config_path`` (a ``graph_to_json`` file) and its weights."""
    return InferenceSession(model_config_path, inference_params)
