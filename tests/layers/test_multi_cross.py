"""MultiCross: DCN v1 and v2 against NumPy (random weights, biases included), inits, JSON, errors."""

import math

import numpy as np
import pytest
import torch

from hugectr.enums import Initializer_t, Layer_t
from hugectr.layers.base import layer_class
from hugectr.params.dense_layer import DenseLayer
from hugectr.testing.layer_test import run_layer_test


def numpy_cross(x0, weights, num_layers, projection_dim):
    x = x0
    step = 3 if projection_dim else 2
    for layer in range(num_layers):
        p = weights[layer * step:(layer + 1) * step]
        if projection_dim:
            u, v, b = p
            x = x0 * (x @ u @ v + b) + x
        else:
            w, b = p                                    # w (n,): one scalar per sample
            x = x0 * (x @ w)[:, None] + b + x
    return x


def randomize(layer, seed=7):
    """Default biases are 0: draw every parameter so the formula check sees them all."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("num_layers, projection_dim", [(1, 0), (3, 0), (2, 2), (3, 5)])
def test_matches_numpy(num_layers, projection_dim):
    r = run_layer_test(Layer_t.MultiCross, [(5, 6)], num_layers=num_layers, projection_dim=projection_dim)
    x0 = r.numpy_inputs()[0]
    np.testing.assert_allclose(r.numpy_outputs()[0], numpy_cross(x0, r.numpy_weights(), num_layers, projection_dim),
                               rtol=1e-5, atol=1e-5)
    randomize(r.layer)
    out = r.layer(r.inputs[0]).detach().double().numpy()
    np.testing.assert_allclose(out, numpy_cross(x0, r.numpy_weights(), num_layers, projection_dim),
                               rtol=1e-5, atol=1e-5)


def test_parameter_order_and_shapes():
    v1 = run_layer_test(Layer_t.MultiCross, [(2, 6)], num_layers=2)
    assert [w.shape for w in v1.numpy_weights()] == [(6,), (6,)] * 2
    v2 = run_layer_test(Layer_t.MultiCross, [(2, 6)], num_layers=2, projection_dim=3)
    assert [w.shape for w in v2.numpy_weights()] == [(6, 3), (3, 6), (6,)] * 2


def test_default_init():
    n, k = 512, 64
    v1 = run_layer_test(Layer_t.MultiCross, [(2, n)], num_layers=8).numpy_weights()
    w, b = np.concatenate(v1[0::2]), np.concatenate(v1[1::2])
    assert abs(w.std() / math.sqrt(2 / (n + n)) - 1) < 0.05 and (b == 0).all()
    v2 = run_layer_test(Layer_t.MultiCross, [(2, n)], num_layers=1, projection_dim=k).numpy_weights()
    for kernel in v2[:2]:                              # U (n, k) and V (k, n): both fans (n, k)
        assert abs(kernel.std() / math.sqrt(2 / (n + k)) - 1) < 0.02
    assert (v2[2] == 0).all()


def test_only_zero_changes_the_init_as_in_hugectr():
    default = run_layer_test(Layer_t.MultiCross, [(2, 8)], num_layers=2, seed=3).numpy_weights()
    xavier = run_layer_test(Layer_t.MultiCross, [(2, 8)], num_layers=2, seed=3,
                            weight_init_type=Initializer_t.XavierUniform,
                            bias_init_type=Initializer_t.Uniform).numpy_weights()
    assert all(np.array_equal(a, b) for a, b in zip(default, xavier))
    zero = run_layer_test(Layer_t.MultiCross, [(2, 8)], num_layers=2, weight_init_type=Initializer_t.Zero)
    assert all((w == 0).all() for w in zero.numpy_weights())


def test_json_fields():
    v1 = run_layer_test(Layer_t.MultiCross, [(2, 6)], num_layers=3, bias_init_type=Initializer_t.Zero)
    assert v1.layer.to_json() == {"mc_param": {"num_layers": 3, "bias_init": "Zero"}}
    v2 = run_layer_test(Layer_t.MultiCross, [(2, 6)], num_layers=3, projection_dim=2)
    assert v2.layer.to_json() == {"mc_param": {"num_layers": 3, "projection_dim": 2}}
    keywords = layer_class(Layer_t.MultiCross).json_to_keywords({"mc_param": {"num_layers": 4}})
    assert keywords["num_layers"] == 4 and keywords["projection_dim"] == 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("projection_dim", [0, 2])
def test_mixed_precision(dtype, projection_dim):
    r = run_layer_test(Layer_t.MultiCross, [(4, 8)], num_layers=2, projection_dim=projection_dim, dtype=dtype)
    assert r.layer.supports_mixed_precision and r.outputs[0].dtype == dtype
    expected = numpy_cross(r.numpy_inputs()[0], r.numpy_weights(), 2, projection_dim)
    np.testing.assert_allclose(r.numpy_outputs()[0], expected, rtol=5e-2, atol=5e-2)


def make(**keywords):
    params = DenseLayer(layer_type=Layer_t.MultiCross, bottom_names=["x"], top_names=["mc"], **keywords)
    return layer_class(Layer_t.MultiCross)(params)


def test_bad_keywords_and_shapes():
    with pytest.raises(ValueError, match="MultiCross 'mc'.*num_layers"):
        make()                                         # HugeCTR's default num_layers=0
    with pytest.raises(ValueError, match="MultiCross 'mc'.*projection_dim"):
        make(num_layers=2, projection_dim=-1)
    with pytest.raises(ValueError, match="MultiCross 'mc'.*2-D"):
        make(num_layers=2).output_shapes([(2, 3, 4)])


@pytest.mark.parametrize("num_layers", [1, 4, 6])
def test_v1_gradients_equal_the_layer_by_layer_form(num_layers):
    """The layer's gradients (autograd through its forward) equal those of the recurrence written out here."""
    r = run_layer_test(Layer_t.MultiCross, [(5, 7)], num_layers=num_layers)
    layer = r.layer.double()
    randomize(layer)
    x0 = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(3), requires_grad=True)
    upstream = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    fused = torch.autograd.grad((layer(x0) * upstream).sum(), [x0, *layer.parameters()])
    x = x0
    for w, b in zip(layer.weights[0::2], layer.weights[1::2]):     # written out, as numpy_cross does
        x = x0 * (x @ w)[:, None] + b + x
    unrolled = torch.autograd.grad((x * upstream).sum(), [x0, *layer.parameters()])
    for mine, reference in zip(fused, unrolled):
        torch.testing.assert_close(mine, reference, rtol=1e-10, atol=1e-10)

