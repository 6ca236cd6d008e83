"""Fused DCN-v1 cross layers (forward + backward kernels) against the torch reference and NumPy.

CPU: the ``interpreted`` tests run in a child process under Triton's interpreter (small batches),
started by ``test_kernels_under_triton_interpreter``. GPU: the same checks at B=8192 on real kernels,
and torch.compile of the layer against eager. The reference itself is checked against a NumPy
forward and a NumPy reverse-mode backward (the layer-by-layer recurrence, x_l kept).
"""


import numpy as np
import pytest
import torch

from hugectr.enums import Layer_t
from hugectr.kernels import multi_cross as mc
from hugectr.testing.layer_test import run_layer_test
from hugectr.testing.interpreter import assert_interpreted_tests_pass, interpreted, starts_interpreter_child
from hugectr.testing.scripts import benchmark_smoke_output

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 1e-2, torch.float16: 1e-2}
LAYERS, FEATURES = [1, 3, 6], [7, 64, 429]


@starts_interpreter_child
def test_kernels_under_triton_interpreter():
    assert_interpreted_tests_pass(__file__, "-k", "not benchmark")


# -- inputs and the independent NumPy reference --------------------------------------------------
def make_inputs(seed, batch, n, num_layers, dtype, param_dtype=torch.float32, device="cpu"):
    """x0 (B, n), L weights and biases (n,), and a random output gradient; w scaled so x_l stays O(1)."""
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, n, generator=gen).to(dtype)
    weights = [(torch.randn(n, generator=gen) * 0.6 / n ** 0.5).to(param_dtype) for _ in range(num_layers)]
    biases = [(torch.randn(n, generator=gen) * 0.2).to(param_dtype) for _ in range(num_layers)]
    dy = torch.randn(batch, n, generator=gen)
    return [t.to(device) for t in (x0, *weights, *biases, dy)]


def numpy_cross(x0, weights, biases, dy):
    """y and (dx0, dw, db) by the recurrence and its reverse mode, every x_l kept (float64)."""
    xs = [x0]
    for w, b in zip(weights, biases):
        xs.append(x0 * (xs[-1] @ w)[:, None] + b + xs[-1])
    g, dx0, dw, db = dy, np.zeros_like(x0), [None] * len(weights), [None] * len(weights)
    for layer in reversed(range(len(weights))):                  # g: gradient of x_{layer + 1}
        x, w = xs[layer], weights[layer]
        db[layer] = g.sum(0)
        g_s = (g * x0).sum(1)                                    # gradient of s_l, one per sample
        dx0 += g * (x @ w)[:, None]
        dw[layer] = g_s @ x
        g = g + g_s[:, None] * w
    return xs[-1], dx0 + g, dw, db


def run_with_grads(fn, x0, weights, biases, dy, autocast_dtype=None):
    """fn(x0, weights, biases) under autocast (if given); returns the output and every gradient."""
    leaves = [t.detach().clone().requires_grad_() for t in (x0, *weights, *biases)]
    num_layers = len(weights)
    with torch.autocast(x0.device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        y = fn(leaves[0], leaves[1:1 + num_layers], leaves[1 + num_layers:])
    (y.float() * dy).sum().backward()
    return y, [t.grad for t in leaves]


def fused(x0, weights, biases):
    """The custom op itself (no dispatch): proves the kernels ran."""
    return mc.fused_multi_cross(x0, torch.stack(weights), torch.stack(biases), mc.output_dtype(x0, weights[0]))


def assert_close(actual, expected, dtype, name):
    """Relative to the largest |expected|: gradients summed over the batch grow with it."""
    tol = TOLERANCE[dtype]
    actual, expected = actual.double().cpu(), torch.as_tensor(expected).double().cpu()
    scale = expected.abs().max().item() or 1.0
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale, msg=lambda m: f"{name}: {m}")


def check_against_reference(device, batch, n, num_layers, dtype, seed, autocast=True):
    """Fused output and every gradient (x0, each w_l, each b_l) equal the reference's autograd."""
    x0, *rest, dy = make_inputs(seed, batch, n, num_layers, dtype, device=device)
    weights, biases = rest[:num_layers], rest[num_layers:]
    autocast_dtype = dtype if dtype != torch.float32 and autocast else None
    y, grads = run_with_grads(fused, x0, weights, biases, dy, autocast_dtype)
    y_ref, grads_ref = run_with_grads(mc.multi_cross_reference, x0, weights, biases, dy, autocast_dtype)
    assert y.dtype == y_ref.dtype == (autocast_dtype or torch.float32) and grads[0].dtype == dtype
    assert_close(y, y_ref, dtype, "y")
    names = ["dx0"] + [f"dw{i}" for i in range(num_layers)] + [f"db{i}" for i in range(num_layers)]
    for name, got, expected in zip(names, grads, grads_ref):
        assert got.dtype == expected.dtype
        assert_close(got, expected, dtype, name)
    return x0, weights, biases, dy, y, grads


# -- the reference against NumPy (plain CPU, also in the child) ----------------------------------
@pytest.mark.parametrize("num_layers", LAYERS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_reference_matches_numpy(num_layers, dtype):
    x0, *rest, dy = make_inputs(num_layers, 40, 13, num_layers, dtype, param_dtype=dtype)
    y, grads = run_with_grads(mc.multi_cross_reference, x0, rest[:num_layers], rest[num_layers:], dy)
    as_numpy = [t.double().numpy() for t in (x0, *rest, dy)]
    y_np, dx0, dw, db = numpy_cross(as_numpy[0], as_numpy[1:1 + num_layers], as_numpy[1 + num_layers:-1],
                                    as_numpy[-1])
    for got, expected in zip([y, *grads], [y_np, dx0, *dw, *db]):
        assert_close(got, expected, dtype, "reference")


def test_user_errors_name_what_was_wrong():
    x0, w = torch.zeros(4, 3), [torch.zeros(3)]
    with pytest.raises(ValueError, match="multi_cross: x0 must be"):
        mc.multi_cross(torch.zeros(4, 3, 1), w, w)
    with pytest.raises(ValueError, match="one weight and one bias per layer, got 1 weights and 2"):
        mc.multi_cross(x0, w, w * 2)
    with pytest.raises(ValueError, match=r"bias 0 has shape \(1, 3\), expected \(3,\)"):
        mc.multi_cross(x0, w, [torch.zeros(1, 3)])


# -- interpreted (CPU, small) -------------------------------------------------------------------
@interpreted
@pytest.mark.parametrize("num_layers", LAYERS)
@pytest.mark.parametrize("n", FEATURES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernels_match_reference(num_layers, n, dtype):
    # Three row blocks, the last ragged: one of the two backward programs strides over two.
    batch = 2 * mc.DEFAULT_TILES.rows + 5
    x0, weights, biases, dy, y, grads = check_against_reference("cpu", batch, n, num_layers, dtype, seed=n)
    if dtype == torch.float32:                                   # and the kernels against NumPy directly
        as_numpy = [t.double().numpy() for t in (x0, *weights, *biases, dy)]
        y_np, dx0, dw, db = numpy_cross(as_numpy[0], as_numpy[1:1 + num_layers], as_numpy[1 + num_layers:-1],
                                        as_numpy[-1])
        for got, expected in zip([y, *grads], [y_np, dx0, *dw, *db]):
            assert_close(got, expected, dtype, "kernel vs numpy")


@interpreted
def test_other_tiles_give_the_same_result():
    """Any launch shape the sweep tries computes the same thing (rows 32, other warps)."""
    x0, *rest, dy = make_inputs(9, 70, 20, 3, torch.float32)
    weights, biases = torch.stack(rest[:3]), torch.stack(rest[3:])
    prefix, c = mc._batch_constants(weights, biases)
    tiles = mc.CrossTiles(rows=32, forward_warps=8, backward_warps=4)
    for got, expected in zip(
            [mc.multi_cross_forward_triton(x0, weights, c, prefix[-1] + biases[-1], torch.float32, tiles),
             *mc.multi_cross_backward_triton(dy, x0, weights, c, tiles)[:1]],
            [mc.multi_cross_forward_triton(x0, weights, c, prefix[-1] + biases[-1], torch.float32),
             *mc.multi_cross_backward_triton(dy, x0, weights, c)[:1]]):
        assert_close(got, expected, torch.float32, "tiles")


@interpreted
def test_half_inputs_and_half_parameters():
    check_against_reference("cpu", 50, 24, 3, torch.float16, seed=1)                  # fp16 x0, fp32 params
    x0, *rest, dy = make_inputs(2, 50, 24, 2, torch.bfloat16, param_dtype=torch.bfloat16)   # all bf16
    y, grads = run_with_grads(fused, x0, rest[:2], rest[2:], dy)
    y_ref, grads_ref = run_with_grads(mc.multi_cross_reference, x0, rest[:2], rest[2:], dy)
    assert y.dtype == torch.bfloat16 and all(g.dtype == torch.bfloat16 for g in grads)
    for got, expected in zip([y, *grads], [y_ref, *grads_ref]):
        assert_close(got, expected, torch.bfloat16, "all bf16")


@interpreted
def test_dispatch_picks_the_kernel_or_the_reference():
    x0, w, b, _ = make_inputs(3, 9, 5, 1, torch.float32)
    assert "multi_cross_forward" in mc.multi_cross(x0.requires_grad_(), [w], [b]).grad_fn.name()
    wide, params = torch.randn(3, 600), [torch.zeros(600, requires_grad=True)] * 2
    assert not mc.kernel_fits(600, 2)                            # whole rows would not fit in registers
    assert "multi_cross_forward" not in mc.multi_cross(wide, params, params).grad_fn.name()
    assert mc.multi_cross(x0.double(), [w.double()], [b.double()]).dtype == torch.float64   # fp64: reference


@interpreted
def test_empty_batch():
    x0, w0, w1, b0, b1, dy = make_inputs(5, 0, 6, 2, torch.float32)
    y, grads = run_with_grads(fused, x0, [w0, w1], [b0, b1], dy)
    assert y.shape == (0, 6) and grads[0].shape == (0, 6) and not any(g.any() for g in grads[1:])


@interpreted
def test_custom_op_registrations():
    x0, w, b, _ = make_inputs(6, 19, 7, 1, torch.bfloat16)
    weights = torch.stack([w, 2 * w]).requires_grad_()
    c, bias_sum = torch.randn(2, requires_grad=True), (2 * b).requires_grad_()
    result = torch.library.opcheck(mc.multi_cross_forward_op, (x0.requires_grad_(), weights, c, bias_sum,
                                                               torch.bfloat16))
    assert set(result.values()) == {"SUCCESS"}, result


@interpreted
def test_compile_keeps_the_fused_ops_opaque(monkeypatch):
    monkeypatch.setenv(mc.FUSED_ENV_VAR, "1")
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd
    graphs = []

    def record(graph_module, _inputs):
        graphs.append(graph_module.code)
        return make_boxed_func(graph_module.forward)

    layer = run_layer_test(Layer_t.MultiCross, [(33, 20)], num_layers=3).layer
    compiled = torch.compile(layer, backend=aot_autograd(fw_compiler=record, bw_compiler=record), fullgraph=True)
    x0, *_, dy = make_inputs(7, 33, 20, 3, torch.bfloat16)
    params = list(layer.parameters())
    y, grads = run_with_grads(lambda x, w, b: compiled(x), x0, params[0::2], params[1::2], dy, torch.bfloat16)
    assert "multi_cross_forward" in graphs[0] and "multi_cross_backward" in graphs[1]
    y_eager, grads_eager = run_with_grads(lambda x, w, b: layer(x), x0, params[0::2], params[1::2], dy, torch.bfloat16)
    torch.testing.assert_close(y, y_eager, rtol=0, atol=0)                # same kernels, same bits
    torch.testing.assert_close(grads[0], grads_eager[0], rtol=0, atol=0)


@interpreted
def test_layer_uses_the_kernels(monkeypatch):
    monkeypatch.setenv(mc.FUSED_ENV_VAR, "1")
    r = run_layer_test(Layer_t.MultiCross, [(21, 10)], num_layers=3)
    assert "multi_cross_forward" in r.outputs[0].grad_fn.name()
    w = r.numpy_weights()
    y_np = numpy_cross(r.numpy_inputs()[0], w[0::2], w[1::2], np.zeros((21, 10)))[0]
    assert_close(r.outputs[0], y_np, torch.float32, "layer")


# -- GPU (real kernels, larger) -----------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("num_layers", LAYERS)
@pytest.mark.parametrize("n", FEATURES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_kernels_match_reference(device, num_layers, n, dtype):
    check_against_reference(device, 8192, n, num_layers, dtype, seed=n)


@pytest.mark.gpu
def test_gpu_half_inputs_and_half_parameters(device):
    check_against_reference(device, 8192, 429, 6, torch.float16, seed=3)
    check_against_reference(device, 8192, 500, 4, torch.bfloat16, seed=4)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_compiled_layer_matches_eager(device, dtype, monkeypatch):
    monkeypatch.setenv(mc.FUSED_ENV_VAR, "1")
    layer = run_layer_test(Layer_t.MultiCross, [(64, 429)], num_layers=6, device=device).layer
    with torch.no_grad():
        for bias in list(layer.parameters())[1::2]:                   # default biases are 0
            bias.normal_(0.0, 0.2)
    head = torch.nn.Linear(429, 1).to(device)
    model = torch.nn.Sequential(layer, torch.nn.ReLU(), head)         # the layer inside a compiled graph
    x0 = make_inputs(8, 8192, 429, 6, dtype, device=device)[0]
    autocast_dtype = None if dtype == torch.float32 else dtype
    results = []
    for module in (model, torch.compile(model)):
        model.zero_grad()
        leaf = x0.detach().clone().requires_grad_()
        with torch.autocast("cuda", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            out = module(leaf)
        out.float().square().mean().backward()
        results.append([out.detach(), leaf.grad] + [p.grad.clone() for p in layer.parameters()])
    for got, expected in zip(*results):
        assert_close(got, expected, torch.bfloat16 if autocast_dtype else torch.float32, "compiled")


def test_benchmark_cpu_smoke_runs(capsys):
    table = benchmark_smoke_output("cross_kernel.py", capsys)
    assert table.count("forward") >= 4 and "copy" in table and "GB/s" in table


def test_layer_runs_the_recurrence_when_fused_is_off(monkeypatch):
    monkeypatch.delenv(mc.FUSED_ENV_VAR, raising=False)
    assert mc.fused_cross_wanted()                                        # the default
    monkeypatch.setenv(mc.FUSED_ENV_VAR, "0")
    r = run_layer_test(Layer_t.MultiCross, [(21, 10)], num_layers=3)
    assert "multi_cross_forward" not in r.outputs[0].grad_fn.name()
    w = r.numpy_weights()
    assert_close(r.outputs[0], numpy_cross(r.numpy_inputs()[0], w[0::2], w[1::2], np.zeros((21, 10)))[0],
                 torch.float32, "layer")
    monkeypatch.setenv(mc.FUSED_ENV_VAR, "yes")
    with pytest.raises(ValueError, match="HUGECTR_FUSED_CROSS must be 0 or 1, got 'yes'"):
        run_layer_test(Layer_t.MultiCross, [(21, 10)], num_layers=3)
