"""Fused DLRM dot interaction: Triton kernels and the custom op against the torch reference and NumPy.

The torch reference is checked against a NumPy double loop (values and gradients). CPU: the
``interpreted`` tests run in a child process under Triton's interpreter (small batches), started
by ``test_kernels_under_triton_interpreter``; the rest run in both processes. GPU: the same kernel
checks at B=4096, the layer's Triton path against HUGECTR_KERNELS=torch, and torch.compile of a
small module using the layer against eager.
"""


import numpy as np
import pytest
import torch

from hugectr.enums import Layer_t
from hugectr.kernels import dot_interaction as di
from hugectr.layers.base import layer_class
from hugectr.params.dense_layer import DenseLayer
from hugectr.testing.interpreter import assert_interpreted_tests_pass, interpreted, starts_interpreter_child
from hugectr.testing.scripts import benchmark_smoke_output

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# fp32 sums of k products differ from another order by ~eps * sqrt(k) * (typical term): atol carries
# that scale (sqrt(E) forward, sqrt(S + 1) backward); half outputs are rounded once from fp32.
TOLERANCE = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float16: dict(rtol=1e-2, atol=1e-2),
             torch.bfloat16: dict(rtol=1e-2, atol=1e-2)}
SHAPES = [(1, 4), (3, 16), (26, 128), (26, 4), (3, 128)]          # (S, E)


@starts_interpreter_child
def test_kernels_under_triton_interpreter():
    assert_interpreted_tests_pass(__file__, "-k", "not benchmark")


# -- the independent NumPy formula -----------------------------------------------------------------
def numpy_forward(mlp, emb):
    """concat(mlp, <x_i, x_j> for i = 1..S, j < i, 0) with x_0 = mlp, x_{k+1} = emb[:, k]."""
    x = np.concatenate([mlp[:, None], emb], axis=1)
    pairs = [np.sum(x[:, i] * x[:, j], axis=1) for i in range(1, x.shape[1]) for j in range(i)]
    return np.concatenate([mlp, np.stack(pairs, axis=1), np.zeros((mlp.shape[0], 1))], axis=1)


def numpy_backward(grad, mlp, emb):
    """d/dx_i sum_{i>j} g_ij <x_i, x_j> = sum_{j != i} g_{max,min} x_j; mlp also gets grad[:, :E]."""
    x = np.concatenate([mlp[:, None], emb], axis=1)
    n, vec = x.shape[1], mlp.shape[1]
    weights = np.zeros((x.shape[0], n, n))
    col = vec
    for i in range(1, n):
        for j in range(i):
            weights[:, i, j] = weights[:, j, i] = grad[:, col]
            col += 1
    dx = np.einsum("bij,bje->bie", weights, x)
    return dx[:, 0] + grad[:, :vec], dx[:, 1:]


def random_inputs(device, batch, slots, vec, dtype, seed):
    """mlp (B, E), emb (B, S, E), grad (B, W): standard normal, rounded to ``dtype``."""
    gen = torch.Generator().manual_seed(seed)
    tensors = (torch.randn(batch, vec, generator=gen), torch.randn(batch, slots, vec, generator=gen),
               torch.randn(batch, di.output_width(slots, vec), generator=gen))
    return [t.to(device=device, dtype=dtype) for t in tensors]


def reference_with_grads(mlp, emb, grad, dtype=torch.float32):
    """The reference's output and autograd gradients, in ``dtype`` from the (rounded) inputs."""
    mlp, emb = (t.detach().to(dtype).requires_grad_() for t in (mlp, emb))
    out = di.dot_interaction_reference(mlp, emb)
    return (out.detach(), *torch.autograd.grad(out, (mlp, emb), grad.to(dtype)))


def assert_close(actual, expected, dtype, scale=1.0):
    assert actual.dtype == dtype
    tolerance = dict(TOLERANCE[dtype])
    if dtype == torch.float32:
        tolerance["atol"] *= scale
    torch.testing.assert_close(actual.double().cpu(), expected.double().cpu(), **tolerance)


def assert_all_close(actual, expected, dtype, slots, vec):
    """(out, d_mlp, d_emb) against the reference's, each with its sum's scale."""
    for got, want, scale in zip(actual, expected, (vec ** 0.5, (slots + 1) ** 0.5, (slots + 1) ** 0.5)):
        assert_close(got, want, dtype, scale)


def check_kernels(device, batch, slots, vec, dtype, seed):
    """Triton forward and backward equal the reference's values and autograd gradients (in fp64 / fp32)."""
    mlp, emb, grad = random_inputs(device, batch, slots, vec, dtype, seed)
    expected = reference_with_grads(mlp, emb, grad, torch.float64 if dtype == torch.float32 else torch.float32)
    out = di.dot_interaction_forward_triton(mlp, emb)
    assert torch.equal(out[:, :vec], mlp) and not out[:, -1].any()        # exact copy, exact zero column
    assert_all_close((out, *di.dot_interaction_backward_triton(grad, mlp, emb)), expected, dtype, slots, vec)


def interaction_layer(slots, vec, device="cpu"):
    params = DenseLayer(layer_type=Layer_t.Interaction, bottom_names=["mlp", "emb"], top_names=["inter"])
    layer = layer_class(Layer_t.Interaction)(params)
    layer.build([(1, vec), (1, slots, vec)], None)
    return layer.to(device)


# -- the reference, on CPU (both processes) -----------------------------------------------------------
@pytest.mark.parametrize("slots, vec", [(1, 3), (3, 4), (26, 8)])
def test_reference_matches_numpy(slots, vec):
    mlp, emb, grad = random_inputs("cpu", 4, slots, vec, torch.float64, seed=slots)
    expected_dx = numpy_backward(grad.numpy(), mlp.numpy(), emb.numpy())
    np.testing.assert_allclose(di.dot_interaction_reference(mlp, emb).numpy(), numpy_forward(mlp.numpy(), emb.numpy()),
                               rtol=1e-12)
    for got, expected in zip(reference_with_grads(mlp, emb, grad, torch.float64)[1:], expected_dx):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)                    # its autograd
    for got, expected in zip(di.dot_interaction_backward_reference(grad, mlp, emb), expected_dx):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_op_casts_like_the_layer_under_autocast(monkeypatch):
    monkeypatch.setenv("HUGECTR_KERNELS", "torch")
    mlp, emb, _ = random_inputs("cpu", 3, 4, 8, torch.float32, seed=1)
    mlp.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = di.dot_interaction(mlp, emb)
        assert out.dtype == torch.bfloat16
        assert di.dot_interaction(mlp.double(), emb.double()).dtype == torch.float64    # autocast leaves fp64
    assert torch.equal(out, di.dot_interaction_reference(mlp.bfloat16(), emb.bfloat16()))
    out.float().sum().backward()
    assert mlp.grad.dtype == torch.float32
    assert di.dot_interaction(mlp, emb.half()).dtype == torch.float16                  # no autocast: emb's


def test_opcheck_forward_and_backward():
    mlp, emb, grad = random_inputs("cpu", 3, 4, 8, torch.float32, seed=2)
    torch.library.opcheck(torch.ops.hugectr.dot_interaction.default, (mlp.requires_grad_(), emb.requires_grad_()))
    torch.library.opcheck(torch.ops.hugectr.dot_interaction_backward.default, (grad, mlp.detach(), emb.detach()))


def test_compile_keeps_one_opaque_node():
    graphs = []

    def recording_backend(gm, example_inputs):
        graphs.append(gm.graph)
        return gm.forward

    layer = interaction_layer(3, 8)
    mlp, emb, grad = random_inputs("cpu", 5, 3, 8, torch.float32, seed=3)
    torch.compile(layer, backend=recording_backend, fullgraph=True)(mlp, emb)
    targets = [str(node.target) for node in graphs[0].nodes if node.op == "call_function"]
    assert targets.count("hugectr.dot_interaction.default") == 1 and not any("bmm" in t for t in targets), targets
    # Through AOT autograd (fake tensors, the registered backward): same values and gradients as eager.
    results = []
    for run in (layer, torch.compile(layer, backend="aot_eager", fullgraph=True)):
        leaves = [t.clone().requires_grad_() for t in (mlp, emb)]
        out = run(*leaves)
        results.append((out, *torch.autograd.grad(out, leaves, grad)))
    for compiled, eager in zip(results[1], results[0]):
        torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-6)


def test_user_errors_name_what_was_wrong():
    with pytest.raises(ValueError, match=r"mlp \(4, 3\) and emb \(4, 2, 5\)"):
        di.dot_interaction(torch.zeros(4, 3), torch.zeros(4, 2, 5))
    with pytest.raises(ValueError, match="same B and E"):
        di.dot_interaction(torch.zeros(4, 3), torch.zeros(3, 2, 3))
    with pytest.raises(TypeError, match="torch.int64"):
        di.dot_interaction(torch.zeros(4, 3, dtype=torch.int64), torch.zeros(4, 2, 3))


# -- interpreted (CPU, small) -----------------------------------------------------------------------
@interpreted
@pytest.mark.parametrize("slots, vec", SHAPES)
def test_kernels_match_reference(slots, vec):
    for dtype in DTYPES:
        check_kernels("cpu", 5, slots, vec, dtype, seed=slots * vec)


@interpreted
def test_larger_dims_walk_e_in_chunks():
    check_kernels("cpu", 3, 5, 300, torch.float32, seed=7)        # E = 128 + 128 + 44
    check_kernels("cpu", 2, 40, 16, torch.bfloat16, seed=8)       # n = 41 rows: a 64-row tile
    check_kernels("cpu", 0, 3, 16, torch.float32, seed=9)         # empty batch: no launch


@interpreted
@pytest.mark.parametrize("dtype", DTYPES)
def test_op_autograd_runs_the_kernels(dtype, monkeypatch):
    """HUGECTR_KERNELS=triton here: the reference must not run, and the op's gradients equal its autograd."""
    mlp, emb, grad = random_inputs("cpu", 4, 26, 16, dtype, seed=10)
    expected = reference_with_grads(mlp, emb, grad, torch.float64 if dtype == torch.float32 else torch.float32)
    monkeypatch.setattr(di, "dot_interaction_reference", None)                  # calling it would fail
    monkeypatch.setattr(di, "dot_interaction_backward_reference", None)
    leaves = [mlp.requires_grad_(), emb.transpose(0, 1).contiguous().transpose(0, 1).requires_grad_()]
    out = di.dot_interaction(*leaves)                                           # emb: a non-contiguous view
    assert_all_close((out, *torch.autograd.grad(out, leaves, grad)), expected, dtype, 26, 16)


# -- GPU (real kernels, B = 4096) ----------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("slots, vec", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_kernels_match_reference(device, slots, vec, dtype):
    check_kernels(device, 4096, slots, vec, dtype, seed=slots + vec)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_layer_triton_equals_torch_mode(device, dtype, monkeypatch):
    layer = interaction_layer(26, 128, device)
    mlp, emb, grad = random_inputs(device, 4096, 26, 128, torch.float32, seed=11)
    results = {}
    for mode in ("torch", "auto"):
        monkeypatch.setenv("HUGECTR_KERNELS", mode)
        leaves = [t.clone().requires_grad_() for t in (mlp, emb)]
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            out = layer(*leaves)
        results[mode] = (out, *torch.autograd.grad(out, leaves, grad.to(out.dtype)))
    # Two half-precision paths: the reference rounds dX to bf16 before adding the mlp pass-through,
    # the kernel once after, so they may differ by two roundings.
    tolerance = dict(rtol=1e-5, atol=1e-4) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    for got, want in zip(results["auto"], results["torch"]):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, **tolerance)


@pytest.mark.gpu
def test_gpu_compiled_module_equals_eager(device):
    torch.manual_seed(12)
    slots, vec = 26, 128
    bottom, top = torch.nn.Linear(13, vec).to(device), torch.nn.Linear(di.output_width(slots, vec), 1).to(device)
    layer = interaction_layer(slots, vec, device)

    def network(dense, emb):
        return top(layer(torch.relu(bottom(dense)), emb))

    dense = torch.randn(4096, 13, device=device)
    emb = torch.randn(4096, slots, vec, device=device, requires_grad=True)
    results = []
    for run in (network, torch.compile(network, fullgraph=True)):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = run(dense, emb)
        results.append((out, *torch.autograd.grad(out.float().sum(), (emb, bottom.weight))))
    for compiled, eager in zip(results[1], results[0]):
        torch.testing.assert_close(compiled.float(), eager.float(), rtol=2e-2, atol=2e-2)


def test_benchmark_cpu_smoke_runs(capsys):
    table = benchmark_smoke_output("interaction_kernel.py", capsys)
    assert table.count("fused op") == 2 and table.count("torch reference") == 2 and "GB/s" in table
