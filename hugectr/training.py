"""One training step and one evaluation step, with HugeCTR's loss, scaling and update semantics.

A step: the batch (already on the device) -> each embedding looks its keys up (inserting new
ones while training) -> the dense network runs, compiled on CUDA and under autocast in mixed
precision -> losses (+ regularizer terms) -> backward on the loss times ``scaler`` -> the dense
optimizer updates the flat weight buffer, each embedding updates only the rows it touched.
Nothing here reads a value back to the host: the loss stays a device tensor until a log line
needs it.

Many ranks (data-parallel dense part): each rank holds its part of the global batch and weighs its
data loss by its share ``n_r / n`` (so the gradients summed over ranks are those of the global mean
loss, as HugeCTR's loss divides by the global batch); the flat dense gradient is all-reduced while
the embeddings update, and waited on before the dense optimizer. Regularizer terms keep HugeCTR's
per-GPU batch and are not weighted (HugeCTR adds each GPU's term to its gradient before the sum).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from .data.batch import Batch
from .distributed.batch_part import share
from .distributed.data_parallel import GradientAllReduce
from .graph import MULTI_LABEL_TENSOR
from .metrics import MetricsCollection
from .network import DenseNetwork
from .optimizers.flat_parameters import FlatParameters
from .tensor_checkout import StepRecorder


@dataclass
class StepSettings:
    """What the steps need from the solver."""

    device: torch.device
    autocast_dtype: torch.dtype | None   # fp16 (HugeCTR's mixed precision) or bf16 (extension); None = fp32
    scaler: float
    per_gpu_batch: int
    compile: bool = False                # torch.compile the dense network
    cuda_graphs: bool = False            # ... and replay it from CUDA graphs (mode="reduce-overhead")


def compile_wanted(device: torch.device) -> bool:
    """Compile the dense network on CUDA unless ``HUGECTR_COMPILE=0``; on the CPU only if it is ``1``."""
    choice = os.environ.get("HUGECTR_COMPILE", "").strip()
    if choice not in ("", "0", "1"):
        raise ValueError(f"HUGECTR_COMPILE must be 0 or 1, got {choice!r}")
    return choice == "1" or (choice == "" and device.type == "cuda")


def cuda_graphs_wanted(use_cuda_graph: bool, compiled: bool) -> bool:
    """Replay the compiled dense network from CUDA graphs: ``use_cuda_graph`` unless ``HUGECTR_CUDA_GRAPHS=0``.

    HugeCTR's ``use_cuda_graph`` (default True) asks for graphs. Compiled but without graphs, the
    step is host-bound (H100, DLRM: 6.6 ms of host time for a 6.8 ms step); replayed, the DLRM and
    DCN steps are GPU-bound. ``HUGECTR_CUDA_GRAPHS=0`` keeps the compiled network without graphs
    (e.g. to profile it). On a CPU the mode compiles as usual (there is no graph).
    """
    choice = os.environ.get("HUGECTR_CUDA_GRAPHS", "1").strip()
    if choice not in ("0", "1"):
        raise ValueError(f"HUGECTR_CUDA_GRAPHS must be 0 or 1, got {choice!r}")
    return compiled and use_cuda_graph and choice == "1"


class StepEngine:
    """Runs train and eval steps over the model's compiled parts."""

    def __init__(self, settings: StepSettings, network: DenseNetwork, tables: dict, flat: FlatParameters,
                 dense_optimizer, label_names: list[str], dense_name: str, label_weights: dict[str, float],
                 collections: list | None = None):
        self.settings = settings
        self.network = network
        mode = "reduce-overhead" if settings.cuda_graphs else None
        self.forward = torch.compile(network, dynamic=None, mode=mode) if settings.compile else network
        self.tables = tables              # sparse_embedding_name -> (bottom_name, SparseEmbeddingTable)
        self.flat = flat
        self.dense_optimizer = dense_optimizer
        self.label_name = label_names[0] if len(label_names) == 1 else MULTI_LABEL_TENSOR
        self.dense_name = dense_name
        self.label_weights = label_weights
        self.metrics_label = sorted(network.loss_labels)[0]   # HugeCTR: the loss whose label sorts first
        self.keep: tuple[str, ...] = ()                       # extra tensors to hold after each step
        self.kept: dict[str, torch.Tensor] = {}
        self.last_eval: tuple[torch.Tensor, torch.Tensor] | None = None   # (probabilities, labels) of the last eval batch
        self.collections = list(collections or [])            # EmbeddingCollection runtimes
        self.recorder = StepRecorder(network, flat, settings.device)   # what check_out_tensor replays
        self.gradient_sum = GradientAllReduce(flat)                   # no-op on one rank
        self._pooled_buffers: dict[str, torch.Tensor] = {}            # with CUDA graphs: _static_pooled

    def _step_begins(self) -> None:
        """With CUDA graphs: the outputs of the last replay may now be overwritten (each step uses its own
        before it ends; what outlives a step is cloned: ``_owned``)."""
        if self.settings.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()

    def _owned(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor``, or a copy of it when it may live in a CUDA graph's memory that the next replay rewrites."""
        return tensor.clone() if self.settings.cuda_graphs else tensor

    def _autocast(self):
        dtype = self.settings.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.settings.device.type, dtype=dtype)

    def _inputs(self, batch: Batch, training: bool) -> dict[str, torch.Tensor]:
        out_dtype = self.settings.autocast_dtype or torch.float32
        # Mixed precision: the dense input enters in half, as HugeCTR's reader hands it over, so that
        # a Concat with the half embedding stays half (an fp32 (B, 429) DCN input doubles what the
        # cross and MLP layers read, and adds casts in front of every matmul).
        tensors = {self.label_name: batch.label, self.dense_name: batch.dense.to(out_dtype)}
        for name, (bottom, table) in self.tables.items():
            keys = batch.sparse[bottom]
            shape = (keys.batch_size, table.slot_num, table.embedding_vec_size)
            out = self._static_pooled(name, shape, out_dtype) if training and self.settings.cuda_graphs else None
            pooled = table.lookup(keys, training=training, out_dtype=out_dtype, out=out)   # (B, slots, ev)
            if training:
                pooled.requires_grad_(True)
            tensors[name] = pooled
        for collection in self.collections:             # outputs derive from leaves that require grad
            tensors.update(collection.lookup(batch.sparse, training=training, out_dtype=out_dtype))
        return tensors

    def _static_pooled(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """The buffer at a fixed address that embedding ``name``'s training lookups pool into.

        A CUDA graph reads its inputs from fixed addresses: any other input is first copied there, a
        full read and write of the pooled output every step (0.44 GB for the DLRM workload, ~0.3 ms
        on an H100). Marked static, the graph reads this buffer in place. Its gradient is dropped
        after each update (``train_step``) so that backward does not add to the last one.
        """
        buffer = self._pooled_buffers.get(name)
        if buffer is None or tuple(buffer.shape) != shape or buffer.dtype != dtype:
            buffer = torch.empty(shape, dtype=dtype, device=self.settings.device)
            torch._dynamo.mark_static_address(buffer)
            self._pooled_buffers[name] = buffer
        return buffer

    def _reported_loss(self, losses: dict[str, torch.Tensor], terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """HugeCTR's reported loss, summed over losses; each loss type weighs its label weight its own way."""
        total = None
        for layer in self.network.loss_layers():
            label = layer.label_name
            value = layer.reported_loss(losses[label].detach(), terms.get(label, 0.0),
                                        self.label_weights.get(label, 1.0))
            total = value if total is None else total + value
        return total

    def train_step(self, batch: Batch, dense_lr: float, sparse_lrs: dict[str, float],
                   collection_lr: float | None = None) -> torch.Tensor:
        """One iteration on a batch already on the device; returns the reported loss (no host sync).

        ``collection_lr``: the embedding collections' learning rate (default ``dense_lr``).
        """
        self.network.train()
        self._step_begins()
        inputs = self._inputs(batch, training=True)
        self.recorder.before_train_forward()
        with self._autocast():
            losses, _, _, kept = self.forward(inputs, self.keep)
        self.kept = {name: self._owned(value) for name, value in kept.items()}
        terms = self.network.regularization(self.settings.per_gpu_batch)
        part = share(batch)                     # n_r / n: 1.0 on one rank
        # The gradient ignores label weights (HugeCTR applies them to the reported loss only).
        objective = sum(losses.values())
        if part != 1.0:
            objective = objective * part        # a rank without samples: NaN * 0, whose gradients are empty
        if terms:
            objective = objective + sum(terms.values())
        self.flat.zero_grad()
        (objective * self.settings.scaler).backward()
        self.recorder.after_train_backward(inputs)
        self.flat.gather_grads()
        self.gradient_sum.start()               # summed over ranks while the embeddings update
        for name, (_, table) in self.tables.items():
            table.update(inputs[name].grad, sparse_lrs[name], self.settings.scaler)
            inputs[name].grad = None            # a reused buffer (_static_pooled) must not accumulate
        for collection in self.collections:
            collection.update(dense_lr if collection_lr is None else collection_lr, self.settings.scaler)
        self.gradient_sum.wait()
        self.dense_optimizer.step(dense_lr, self.settings.scaler)
        self.flat.scatter_weights()
        return self._owned(_weighted(self._reported_loss(losses, {k: v.detach() for k, v in terms.items()}), part))

    @torch.no_grad()
    def eval_step(self, batch: Batch, metrics: MetricsCollection) -> None:
        """Forward one eval batch (partial batches included) and feed the metrics."""
        self.network.eval()
        self._step_begins()
        inputs = self._inputs(batch, training=False)
        with self._autocast():
            losses, predictions, labels, kept = self.forward(inputs, self.keep)
        self.kept = {name: self._owned(value) for name, value in kept.items()}
        self.recorder.after_eval(inputs)
        terms = self.network.regularization(self.settings.per_gpu_batch)
        label = self.metrics_label
        loss_layer = next(layer for layer in self.network.loss_layers() if layer.label_name == label)
        probabilities = self._owned(loss_layer.probabilities(predictions[label].float()))
        eval_loss = loss_layer.reported_loss(losses[label], terms.get(label), self.label_weights.get(label, 1.0))
        self.last_eval = (probabilities, self._owned(labels[label]))    # export_predictions writes it
        metrics.update(*self.last_eval, self._owned(eval_loss), share(batch))


def _weighted(loss: torch.Tensor, part: float) -> torch.Tensor:
    """This rank's term of the reported loss: ``part * loss`` (0 for a rank without samples)."""
    if part == 1.0:
        return loss
    return loss * part if part else torch.zeros_like(loss)
