"""``Model.check_out_tensor``: a named tensor of the latest training step or evaluation batch (reference 4.9).

HugeCTR's meaning: ``Tensor_t.Evaluate`` gives the forward values of the latest eval batch, except that
the prediction a BCE / MultiCE loss reads holds sigmoid(x) and a CE one softmax(x); ``Tensor_t.Train``
gives the *gradient* of the tensor in the latest training step (HugeCTR reuses activation buffers for
gradients; the gradient of ``loss * scaler``, as backward computed it). Labels, which get no gradient,
and loss outputs give their values.

Design: the steps keep nothing but what it takes to replay them. A compiled network cannot hand out
the gradients of its intermediate tensors, and keeping every activation and gradient of every step
would cost the hot path memory traffic for a debugging call. So ``StepRecorder`` keeps, per training
step, the step's inputs (references to tensors that exist anyway: embedding outputs, dense, label),
the RNG state before the dense forward and one device copy of the dense weights before the
optimizer updates them (microseconds: the dense weights are one flat buffer); per eval batch, its
inputs and a copy of the weights and buffers (BatchNorm statistics) it ran with.
``check_out_tensor`` replays that step eagerly with those weights, asks autograd for the tensor's
gradient (``retain_grad``) or value, and puts every weight, buffer and RNG state back. Results equal
the step's own (tested against NumPy); on a GPU with the compiled network they agree to rounding,
except that a Dropout layer draws other masks in the replay (the compiled kernels draw differently).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from .enums import Tensor_t, coerce


@dataclass
class _Record:
    inputs: dict[str, torch.Tensor]          # the dense network's inputs, detached
    rng: list[torch.Tensor] | None           # RNG states before the forward (training only)


def _rng_state(device: torch.device) -> list[torch.Tensor]:
    states = [torch.get_rng_state()]
    if device.type == "cuda":
        states.append(torch.cuda.get_rng_state(device))
    return states


def _set_rng_state(states: list[torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(states[0])
    if device.type == "cuda":
        torch.cuda.set_rng_state(states[1], device)


class StepRecorder:
    """What replaying the latest training step and evaluation batch needs (owned by the ``StepEngine``)."""

    def __init__(self, network, flat, device: torch.device) -> None:
        self.network, self.flat, self.device = network, flat, device
        self.train: _Record | None = None
        self.eval: _Record | None = None
        self._rng: list[torch.Tensor] | None = None
        self._train_weights = torch.empty_like(flat.weights)
        self._eval_weights: torch.Tensor | None = None
        self._eval_buffers: list[torch.Tensor] = []

    def before_train_forward(self) -> None:
        self._rng = _rng_state(self.device)

    def after_train_backward(self, inputs: dict[str, torch.Tensor]) -> None:
        """Call after backward, before the optimizer changes the weights."""
        self._train_weights.copy_(self.flat.weights)
        self.train = _Record({name: t.detach() for name, t in inputs.items()}, self._rng)

    def after_eval(self, inputs: dict[str, torch.Tensor]) -> None:
        """Call after an eval batch: keeps its inputs and the weights and buffers it ran with (a copy of the
        dense weights per eval batch, small next to the batch's forward)."""
        if self._eval_weights is None:
            self._eval_weights = torch.empty_like(self.flat.weights)
            self._eval_buffers = [torch.empty_like(b) for b in self.network.buffers()]
        self._eval_weights.copy_(self.flat.weights)
        for saved, buffer in zip(self._eval_buffers, self.network.buffers()):
            saved.copy_(buffer)
        self.eval = _Record({name: t.detach() for name, t in inputs.items()}, None)


def check_out(model, tensor_name: str, tensor_type) -> np.ndarray:
    """``Model.check_out_tensor``: float32 NumPy array of the tensor's shape (see the module docstring)."""
    kind = coerce(Tensor_t, tensor_type, "Model.check_out_tensor: tensor_type")
    graph = model.graph
    if not isinstance(tensor_name, str):
        raise TypeError(f"Model.check_out_tensor: tensor_name must be a string, got {tensor_name!r}")
    if tensor_name in graph.sparse_inputs:
        raise ValueError(f"Model.check_out_tensor: '{tensor_name}' is a sparse input (keys, not a float tensor); "
                         "check out the embedding output that reads it")
    if tensor_name not in graph.shapes:
        raise ValueError(f"Model.check_out_tensor: no tensor named '{tensor_name}'; tensors: "
                         f"{', '.join(graph.shapes)}")
    engine = model.engine
    training = kind is Tensor_t.Train
    record = engine.recorder.train if training else engine.recorder.eval
    if record is None:
        step = "training step (fit() or train())" if training else "evaluation batch (fit() or eval())"
        raise RuntimeError(f"Model.check_out_tensor('{tensor_name}', {kind}): no {step} has run yet")
    with _replay_state(engine, training):
        value = _replay_train(engine, record, tensor_name) if training else _replay_eval(engine, record, tensor_name)
    return value.detach().to(torch.float32).cpu().numpy()


@contextlib.contextmanager
def _replay_state(engine, training: bool):
    """Load the recorded weights (and buffers), then put back everything the replay touches."""
    recorder, network, flat = engine.recorder, engine.network, engine.flat
    was_training = network.training
    buffers = [b.detach().clone() for b in network.buffers()]
    rng = _rng_state(recorder.device)
    params = flat.params
    with torch.no_grad():
        weights = recorder._train_weights if training else recorder._eval_weights
        if params:
            torch._foreach_copy_([p.data for p in params], [w.view_as(p) for w, p in zip(
                weights.split([p.numel() for p in params]), params)])
        if not training:
            for buffer, saved in zip(network.buffers(), recorder._eval_buffers):
                buffer.copy_(saved)
    try:
        network.train(training)
        yield
    finally:
        with torch.no_grad():
            flat.scatter_weights()
            for buffer, saved in zip(network.buffers(), buffers):
                buffer.copy_(saved)
        flat.zero_grad()
        _set_rng_state(rng, recorder.device)
        network.train(was_training)


def _loss_of_top(network, name: str):
    for layer, tops in zip(network.layers, network.tops):
        if layer.is_loss and name in tops:
            return layer
    return None


def _loss_reading(network, name: str):
    """The loss layer whose prediction is ``name`` (HugeCTR overwrites it with probabilities in eval)."""
    for layer, bottoms in zip(network.layers, network.bottoms):
        if layer.is_loss and bottoms[0] == name:
            return layer
    return None


def _loss_value(network, losses, terms, layer) -> torch.Tensor:
    value = losses[layer.label_name].detach().float()
    term = terms.get(layer.label_name)
    return (value if term is None else value + term.detach().float()).reshape(1)


def _replay_train(engine, record: _Record, name: str) -> torch.Tensor:
    network = engine.network
    _set_rng_state(record.rng, engine.recorder.device)
    label_tensors = {engine.label_name}
    inputs = {}
    for key, value in record.inputs.items():
        value = value.detach()
        if key not in label_tensors and value.is_floating_point():
            value = value.clone().requires_grad_(True)           # its gradient is what backward computed
        inputs[key] = value
    loss_layer = _loss_of_top(network, name)
    keep = () if loss_layer is not None else (name,)
    with torch.enable_grad(), engine._autocast():
        losses, _, _, kept = network(inputs, keep)
    terms = network.regularization(engine.settings.per_gpu_batch)
    if loss_layer is not None:
        return _loss_value(network, losses, terms, loss_layer)
    tensor = kept[name]
    if tensor.requires_grad:
        tensor.retain_grad()
    objective = sum(losses.values()) + sum(terms.values()) if terms else sum(losses.values())
    (objective * engine.settings.scaler).backward()
    if not tensor.requires_grad:
        return tensor                                             # labels: no gradient, their values
    return tensor.grad if tensor.grad is not None else torch.zeros_like(tensor)


@torch.no_grad()
def _replay_eval(engine, record: _Record, name: str) -> torch.Tensor:
    network = engine.network
    loss_layer = _loss_of_top(network, name)
    keep = () if loss_layer is not None else (name,)
    with engine._autocast():
        losses, _, _, kept = network(dict(record.inputs), keep)
    if loss_layer is not None:
        return _loss_value(network, losses, network.regularization(engine.settings.per_gpu_batch), loss_layer)
    reader = _loss_reading(network, name)
    return kept[name] if reader is None else reader.probabilities(kept[name])
