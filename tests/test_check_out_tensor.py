"""``Model.check_out_tensor``: HugeCTR's meaning (reference 4.9), checked against a NumPy forward/backward.

Train -> the gradient of the named tensor in the latest training step (of ``loss * scaler``); labels and
the loss give values. Evaluate -> forward values of the latest eval batch, sigmoid for a BCE input.
"""

import numpy as np
import pytest
import torch

import hugectr
from hugectr.data.batch import Batch
from hugectr.embedding.sparse_batch import SparseBatch
from hugectr.metrics import MetricsCollection

L = hugectr.Layer_t
B, SLOTS, EV, DENSE, HIDDEN, SCALER, LR = 6, 2, 2, 3, 4, 2.0, 0.1


def _model(dropout: bool = False, seed: int = 3) -> hugectr.Model:
    """Embedding, Concat with dense, fc1, ReLU, logit, BCE (``dropout``: fc1, BatchNorm, ReLU, Dropout)."""
    solver = hugectr.CreateSolver(seed=seed, batchsize=B, batchsize_eval=B, lr=LR, vvgpu=[[0]], scaler=SCALER)
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=["unused"],
                                      eval_source="unused", check_type=hugectr.Check_t.Non)
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.SGD))
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=DENSE, dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("keys", 1, True, SLOTS)]))
    model.add(hugectr.SparseEmbedding(hugectr.Embedding_t.DistributedSlotSparseEmbeddingHash, 1, EV, "sum", "emb",
                                      "keys"))
    layers = [(L.Reshape, ["emb"], ["flat"], {"leading_dim": SLOTS * EV}),
              (L.Concat, ["flat", "dense"], ["x"], {}),
              (L.InnerProduct, ["x"], ["fc1"], {"num_output": HIDDEN}),
              (L.ReLU, ["fc1"], ["relu1"], {})]
    if dropout:   # with BatchNorm: its running statistics must survive replays too
        layers[3] = (L.BatchNorm, ["fc1"], ["bn1"], {"factor": 0.5})
        layers += [(L.ReLU, ["bn1"], ["relu1"], {}), (L.Dropout, ["relu1"], ["drop1"], {"dropout_rate": 0.5})]
    layers += [(L.InnerProduct, ["drop1" if dropout else "relu1"], ["logit"], {"num_output": 1}),
               (L.BinaryCrossEntropyLoss, ["logit", "label"], ["loss"], {})]
    for kind, bottoms, tops, keywords in layers:
        model.add(hugectr.DenseLayer(layer_type=kind, bottom_names=bottoms, top_names=tops, **keywords))
    model.compile()
    return model


def _batch(seed: int) -> Batch:
    rng = np.random.default_rng(seed)
    keys = torch.from_numpy(rng.integers(0, 5, size=(B, SLOTS, 1)))
    return Batch(torch.from_numpy(rng.integers(0, 2, size=(B, 1)).astype(np.float32)),
                 torch.from_numpy(rng.normal(size=(B, DENSE)).astype(np.float32)),
                 {"keys": SparseBatch.from_fixed(keys)})


def _train(model, batch):
    return model.engine.train_step(batch.to(model.device), LR, {"emb": LR})


def _eval(model, batch, metrics=None):
    model.engine.eval_step(batch.to(model.device), metrics or MetricsCollection({hugectr.MetricsType.AUC: 1.0}))


def _state(model, batch):
    """What a NumPy reference needs: the batch's embedding rows and the dense weights (W[in, out], b)."""
    table = model.engine.tables["emb"][1]
    keys, vectors, _ = table.export()
    row = {int(k): v for k, v in zip(keys.cpu(), vectors.cpu().numpy())}
    emb = np.stack([[row[int(k)] for k in sample] for sample in batch.sparse["keys"].values.view(B, SLOTS).numpy()])
    w = model.flat_parameters.weights.cpu().numpy().copy()
    n_in = SLOTS * EV + DENSE
    sizes = [n_in * HIDDEN, HIDDEN, HIDDEN, 1]
    w1, b1, w2, b2 = np.split(w, np.cumsum(sizes)[:-1])
    return emb, w1.reshape(n_in, HIDDEN), b1, w2.reshape(HIDDEN, 1), b2


def _numpy_step(state, batch):
    """Forward values and gradients of ``mean BCE * SCALER`` for the no-dropout model."""
    emb, w1, b1, w2, b2 = state
    dense, label = batch.dense.numpy(), batch.label.numpy()
    x = np.concatenate([emb.reshape(B, -1), dense], axis=1)
    fc1 = x @ w1 + b1
    relu1 = np.maximum(fc1, 0)
    logit = relu1 @ w2 + b2
    prob = 1 / (1 + np.exp(-logit))
    loss = np.mean(np.maximum(logit, 0) - logit * label + np.log1p(np.exp(-np.abs(logit))))
    g_logit = (prob - label) / B * SCALER
    g_relu1 = g_logit @ w2.T
    g_fc1 = g_relu1 * (fc1 > 0)
    g_x = g_fc1 @ w1.T
    values = dict(fc1=fc1, relu1=relu1, logit=logit, prob=prob, loss=loss, x=x, emb=emb)
    grads = dict(logit=g_logit, relu1=g_relu1, fc1=g_fc1, x=g_x, emb=g_x[:, :SLOTS * EV].reshape(B, SLOTS, EV),
                 dense=g_x[:, SLOTS * EV:])
    return values, grads


def test_train_returns_gradients_of_the_latest_step():
    model = _model()
    _train(model, _batch(0))                       # inserts the keys, moves the weights
    batch = _batch(1)
    values, grads = _numpy_step(_state(model, batch), batch)
    _train(model, batch)
    train = lambda name: model.check_out_tensor(name, hugectr.Tensor_t.Train)   # noqa: E731
    for name in ("logit", "relu1", "fc1", "x", "emb", "dense"):
        got = train(name)
        assert got.dtype == np.float32 and got.shape == grads[name].shape, name
        np.testing.assert_allclose(got, grads[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert train("emb").shape == (B, SLOTS, EV)                                    # the docs' example shape
    np.testing.assert_array_equal(train("label"), batch.label.numpy())             # labels: values
    np.testing.assert_allclose(train("loss"), [values["loss"]], rtol=1e-5)         # the loss: its value
    # The string form of the enum member is accepted too.
    np.testing.assert_allclose(model.check_out_tensor("fc1", "Train"), grads["fc1"], rtol=1e-5, atol=1e-7)


def test_evaluate_returns_values_of_the_latest_eval_batch_with_probabilities():
    model = _model()
    _train(model, _batch(0))
    batch = _batch(2)
    values, _ = _numpy_step(_state(model, batch), batch)
    _eval(model, batch)
    _train(model, _batch(3))                       # training after the eval does not change what it saw
    evaluate = lambda name: model.check_out_tensor(name, hugectr.Tensor_t.Evaluate)   # noqa: E731
    for name in ("fc1", "relu1", "x", "emb"):
        np.testing.assert_allclose(evaluate(name), values[name], rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(evaluate("logit"), values["prob"], rtol=1e-5)       # BCE input: sigmoid(x)
    np.testing.assert_allclose(evaluate("dense"), batch.dense.numpy())
    np.testing.assert_allclose(evaluate("loss"), [values["loss"]], rtol=1e-5)


def _run(model, watch: bool) -> None:
    """Three steps with evaluations; ``watch`` checks tensors out after each (the global RNG reseeded first)."""
    torch.manual_seed(0)
    metrics = MetricsCollection({hugectr.MetricsType.AUC: 1.0})
    for step in range(3):
        batch = _batch(10 + step)
        loss = _train(model, batch)
        torch.rand(3)               # the script draws random numbers too: a replay must not rewind them
        if watch:   # the replay draws the step's own dropout mask: its loss is the step's loss
            np.testing.assert_allclose(model.check_out_tensor("loss", hugectr.Tensor_t.Train), [float(loss)],
                                       rtol=1e-6)
            model.check_out_tensor("fc1", hugectr.Tensor_t.Train)
        _eval(model, batch, metrics)
        if watch:
            model.check_out_tensor("drop1", hugectr.Tensor_t.Evaluate)


def test_replay_leaves_training_unchanged_and_reproduces_dropout(monkeypatch):
    monkeypatch.setenv("HUGECTR_COMPILE", "0")     # a compiled network draws other dropout masks than the replay
    watched, plain = _model(dropout=True), _model(dropout=True)
    _run(watched, watch=True)
    after_watched = torch.get_rng_state()
    _run(plain, watch=False)
    assert torch.equal(after_watched, torch.get_rng_state())          # the replays consumed no random numbers
    assert torch.equal(watched.flat_parameters.weights, plain.flat_parameters.weights)
    for mine, theirs in zip(watched.engine.network.buffers(), plain.engine.network.buffers()):
        assert torch.equal(mine, theirs)
    w_keys, w_vectors, _ = watched.engine.tables["emb"][1].export()
    p_keys, p_vectors, _ = plain.engine.tables["emb"][1].export()
    assert torch.equal(w_keys, p_keys) and torch.equal(w_vectors, p_vectors)


def test_after_fit(planted_data, build_small_model):
    """The documented flow: fit, then check out a training gradient and an evaluation tensor."""
    model = build_small_model(planted_data)
    model.fit(max_iter=4, display=0, eval_interval=4, snapshot=0)
    assert model.check_out_tensor("emb", hugectr.Tensor_t.Train).shape == (64, 3, 4)
    fc1 = model.check_out_tensor("fc1", hugectr.Tensor_t.Evaluate)
    assert fc1.shape[1] == 8 and fc1.dtype == np.float32
    prob = model.check_out_tensor("logit", hugectr.Tensor_t.Evaluate)
    assert ((prob > 0) & (prob < 1)).all()


def test_errors():
    model = _model()
    with pytest.raises(RuntimeError, match="no training step"):
        model.check_out_tensor("fc1", hugectr.Tensor_t.Train)
    with pytest.raises(RuntimeError, match="no evaluation batch"):
        model.check_out_tensor("fc1", hugectr.Tensor_t.Evaluate)
    _train(model, _batch(0))
    with pytest.raises(ValueError, match="no tensor named 'fc9'.*fc1.*relu1"):
        model.check_out_tensor("fc9", hugectr.Tensor_t.Train)
    with pytest.raises(ValueError, match="'keys' is a sparse input"):
        model.check_out_tensor("keys", hugectr.Tensor_t.Train)
    with pytest.raises(TypeError, match="tensor_type"):
        model.check_out_tensor("fc1", "Gradient")
    solver = hugectr.CreateSolver(batchsize=B, vvgpu=[[0]])
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=["unused"],
                                      eval_source="unused", check_type=hugectr.Check_t.Non)
    with pytest.raises(RuntimeError, match="compile"):
        hugectr.Model(solver, reader, hugectr.CreateOptimizer()).check_out_tensor("fc1", hugectr.Tensor_t.Train)
