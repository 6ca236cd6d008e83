"""The embedding collection (reference 1.4, 3.6, 4.7 "EBC"): configs, model rules, training against plain torch,
outputs of every combiner and form, key errors, dynamic growth, HugeCTR's dump layout.

References are written here: a plain-torch model trained with the same initial weights, NumPy pooling, and a
NumPy reader/writer of the dump layout (int32[5] meta head, table ids, uint64 key counts, int32 ev sizes;
128-byte int32 headers {1 key / 2 weight, table id} before raw keys / float32 vectors).
"""

import math

import numpy as np
import pytest
import torch

import hugectr
from hugectr.data.batch import Batch
from hugectr.embedding.collection_tables import DynamicGroup
from hugectr.embedding.sparse_batch import SparseBatch

L, Opt = hugectr.Layer_t, hugectr.Optimizer_t
B, DENSE, LR, EPS = 4, 2, 0.1, 1e-7


def _model(configure, nnz=(1, 2, 3), i64=True, **solver):
    args = dict(seed=7, batchsize=B, batchsize_eval=B, lr=LR, vvgpu=[[0]], use_embedding_collection=True,
                i64_input_key=i64)
    args.update(solver)
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=["unused"],
                                      eval_source="unused", check_type=hugectr.Check_t.Non)
    model = hugectr.Model(hugectr.CreateSolver(**args), reader, hugectr.CreateOptimizer(optimizer_type=Opt.SGD))
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=DENSE, dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam(f"data{i}", n, False, 1)
                                                            for i, n in enumerate(nnz)]))
    tops = configure(model)
    width = sum(model.graph.shapes[t][-1] for t in tops)
    layers = [] if len(tops) == 1 else [(L.Concat, tops, "e", {"axis": 2}),            # (B, 1, width)
                                        (L.Reshape, ["e"], "flat", {"leading_dim": width})]
    layers += [(L.Concat, ["flat" if layers else tops[0], "dense"], "x", {}),
               (L.InnerProduct, ["x"], "logit", {"num_output": 1}),
               (L.BinaryCrossEntropyLoss, ["logit", "label"], "loss", {})]
    for kind, bottoms, top, keywords in layers:
        model.add(hugectr.DenseLayer(layer_type=kind, bottom_names=bottoms, top_names=[top], **keywords))
    model.compile()
    return model


def _three_lookups(model):
    """t0 static (AdaGrad) read by data0 (sum) and data2 (sum); t1 dynamic (model's SGD) by data1 (average)."""
    t0 = hugectr.EmbeddingTableConfig("t0", 10, 4, hugectr.CreateOptimizer(optimizer_type=Opt.AdaGrad, epsilon=EPS))
    t1 = hugectr.EmbeddingTableConfig(name="t1", max_vocabulary_size=-1, ev_size=4)
    ebc = hugectr.EmbeddingCollectionConfig()
    for table, i, combiner in [(t0, 0, "sum"), (t1, 1, "average"), (t0, 2, "sum")]:
        ebc.embedding_lookup(table_config=table, bottom_name=f"data{i}", top_name=f"e{i}", combiner=combiner)
    model.add(ebc)
    return ["e0", "e1", "e2"]


def _batch(bags: list[list[list[int]]], seed: int) -> Batch:
    """``bags[input][sample]`` = keys; labels and dense values drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    sparse = {f"data{i}": SparseBatch.from_bags([[bag] for bag in samples]) for i, samples in enumerate(bags)}
    return Batch(torch.from_numpy(rng.integers(0, 2, (B, 1)).astype(np.float32)),
                 torch.from_numpy(rng.normal(size=(B, DENSE)).astype(np.float32)), sparse)


def _train(model, batch, lr=LR):
    return model.engine.train_step(batch.to(model.device), lr, {}, collection_lr=lr)


def _eval(model, batch):
    model.engine.eval_step(batch.to(model.device), model.metrics)


def _read_dump(folder):
    """NumPy reader of the layout: {table id: (keys, vectors)} and the meta head."""
    meta = np.fromfile(folder / "meta_data", np.uint8)
    head = meta[:20].view(np.int32)
    n = int(head[0])
    ids = meta[20:20 + 4 * n].view(np.int32)
    counts = np.frombuffer(meta[20 + 4 * n:20 + 12 * n].tobytes(), np.uint64)
    evs = meta[20 + 12 * n:].view(np.int32)
    key_dtype = np.int64 if head[1] == 1 else np.uint32
    tables = {}
    for t, count, ev in zip(ids.tolist(), counts.tolist(), evs.tolist()):
        key_raw, weight_raw = np.fromfile(folder / f"key{t}", np.uint8), np.fromfile(folder / f"weight{t}", np.uint8)
        assert key_raw[:128].view(np.int32).tolist() == [1, t] + [0] * 30
        assert weight_raw[:128].view(np.int32).tolist() == [2, t] + [0] * 30
        keys, vectors = key_raw[128:].view(key_dtype), weight_raw[128:].view(np.float32).reshape(-1, ev)
        assert keys.size == count == vectors.shape[0]
        tables[t] = (keys, vectors)
    return head.tolist(), tables


def _write_dump(folder, tables: dict[int, tuple[np.ndarray, np.ndarray]]):
    """NumPy writer of the layout (int64 keys), for embedding_load."""
    folder.mkdir(parents=True)
    ids = sorted(tables)
    meta = [np.array([len(ids), 1, 0, 0, 0], np.int32), np.array(ids, np.int32),
            np.array([tables[t][0].size for t in ids], np.uint64),
            np.array([tables[t][1].shape[1] for t in ids], np.int32)]
    (folder / "meta_data").write_bytes(b"".join(part.tobytes() for part in meta))
    for t in ids:
        keys, vectors = tables[t]
        header = lambda kind: np.array([kind, t] + [0] * 30, np.int32).tobytes()   # noqa: E731
        (folder / f"key{t}").write_bytes(header(1) + keys.astype(np.int64).tobytes())
        (folder / f"weight{t}").write_bytes(header(2) + vectors.astype(np.float32).tobytes())


def test_training_matches_plain_torch(tmp_path):
    """Shared static AdaGrad table + dynamic SGD table + dense SGD, three steps, against plain torch."""
    model = _model(_three_lookups)
    dyn_keys = np.array([1000, -5, 77, 123456789012])
    dyn_vectors = np.random.default_rng(0).uniform(-0.05, 0.05, (4, 4)).astype(np.float32)
    _write_dump(tmp_path / "init" / "embedding_collection_0", {1: (dyn_keys, dyn_vectors)})
    model.embedding_load(str(tmp_path / "init"), ["t1"])
    model.embedding_dump(str(tmp_path / "start"))
    _, start = _read_dump(tmp_path / "start" / "embedding_collection_0")
    t0 = torch.tensor(start[0][1], requires_grad=True)                               # (10, 4)
    np.testing.assert_array_equal(start[0][0], np.arange(10))
    row = {int(k): i for i, k in enumerate(start[1][0])}
    t1 = torch.tensor(start[1][1], requires_grad=True)
    flat = model.flat_parameters.weights.cpu().clone()
    w = flat[:-1].reshape(-1, 1).clone().requires_grad_(True)
    b = flat[-1:].clone().requires_grad_(True)
    acc = torch.zeros(10, 4)
    steps = [[[[3], [0], [9], [3]], [[1000], [-5, 77], [], [123456789012, 1000]], [[3, 3, 1], [], [2], [9, 0]]],
             [[[1], [1], [5], [7]], [[77], [77], [-5, 1000], [1000]], [[1], [4, 4], [8, 9, 3], [0]]],
             [[[0], [2], [4], [6]], [[123456789012], [-5], [77, 77], []], [[6], [6, 5], [], [0, 1, 2]]]]
    for seed, bags in enumerate(steps):
        batch = _batch(bags, seed)
        _train(model, batch)
        e0 = torch.stack([t0[bag].sum(0) for bag in bags[0]])
        e1 = torch.stack([t1[[row[k] for k in bag]].mean(0) if bag else torch.zeros(4) for bag in bags[1]])
        e2 = torch.stack([t0[bag].sum(0) if bag else torch.zeros(4) for bag in bags[2]])
        x = torch.cat([e0, e1, e2, batch.dense], dim=1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, batch.label)
        grads = torch.autograd.grad(loss, [t0, t1, w, b])
        with torch.no_grad():
            acc += grads[0] ** 2                                                     # one update per row
            t0 -= LR * grads[0] / (acc.sqrt() + EPS)
            t1 -= LR * grads[1]
            w -= LR * grads[2]
            b -= LR * grads[3]
    model.embedding_dump(str(tmp_path / "end"))
    _, end = _read_dump(tmp_path / "end" / "embedding_collection_0")
    np.testing.assert_allclose(end[0][1], t0.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(end[1][0], start[1][0])                            # no new dynamic key
    np.testing.assert_allclose(end[1][1], t1.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.flat_parameters.weights.cpu().numpy(),
                               torch.cat([w.flatten(), b]).detach().numpy(), rtol=1e-5, atol=1e-6)


def _concat_and_grouped(model, grouped: bool):
    s = hugectr.EmbeddingTableConfig("s", 6, 2)
    d = hugectr.EmbeddingTableConfig("d", -1, 3)
    ebc = hugectr.EmbeddingCollectionConfig(False, hugectr.CommunicationStrategy.Uniform)
    if grouped:
        ebc.embedding_lookup([s, d, s], ["data0", "data1", "data2"], "all", ["average", "concat", "concat"])
        model.add(ebc)
        return ["all"]
    for table, i, combiner in [(s, 0, "average"), (d, 1, "concat"), (s, 2, "concat")]:
        ebc.embedding_lookup(table, f"data{i}", f"o{i}", combiner)
    model.add(ebc)
    return ["o0", "o1", "o2"]


@pytest.mark.parametrize("grouped", [False, True])
def test_outputs_of_every_combiner_and_form(tmp_path, grouped):
    model = _model(lambda m: _concat_and_grouped(m, grouped), nnz=(2, 2, 3))
    train_bags = [[[0, 5], [1], [], [2, 2]], [[11, 12], [13], [], [11]], [[0, 1, 2], [3], [4, 5], [0]]]
    _train(model, _batch(train_bags, 0), lr=0.0)         # inserts d's keys, lr 0
    bags = [[[5, 4], [], [3], [1, 1]], [[13, 11], [99], [], [12]], [[2], [], [5, 4, 3], [1, 0]]]
    _eval(model, _batch(bags, 1))
    model.embedding_dump(str(tmp_path))
    _, tables = _read_dump(tmp_path / "embedding_collection_0")
    s_rows = tables[0][1]
    d_rows = dict(zip(tables[1][0].tolist(), tables[1][1]))
    avg = np.stack([s_rows[bag].mean(0) if bag else np.zeros(2) for bag in bags[0]])          # (B, 2)
    d_cat = np.stack([np.concatenate([d_rows.get(k, np.zeros(3)) for k in bag] + [np.zeros(3)] * (2 - len(bag)))
                      for bag in bags[1]])                                                    # (B, 6): unseen 99 -> 0
    s_cat = np.stack([np.concatenate([s_rows[k] for k in bag] + [np.zeros(2)] * (3 - len(bag))) for bag in bags[2]])
    evaluate = lambda name: model.check_out_tensor(name, hugectr.Tensor_t.Evaluate)   # noqa: E731
    if grouped:
        assert model.graph.shapes["all"] == (B, 2 + 6 + 6)
        np.testing.assert_allclose(evaluate("all"), np.concatenate([avg, d_cat, s_cat], axis=1), rtol=1e-6)
    else:
        assert [model.graph.shapes[f"o{i}"] for i in range(3)] == [(B, 1, 2), (B, 1, 6), (B, 1, 6)]
        for name, want in [("o0", avg), ("o1", d_cat), ("o2", s_cat)]:
            np.testing.assert_allclose(evaluate(name), want[:, None, :], rtol=1e-6, err_msg=name)


def test_key_errors_name_the_table():
    """Raised by the step on the CPU; on a GPU by the next check (``check_overflow``), the step never waits."""
    model = _model(_three_lookups)
    ok = [[[1], [2], [3], [4]], [[7], [8], [], [9]], [[0], [], [1], [2]]]
    for bad_key in (10, -1):
        bags = [[[bad_key], [2], [3], [4]], ok[1], ok[2]]
        with pytest.raises(ValueError, match=rf"table 't0' \(static, max_vocabulary_size=10\).*'data0'.*e\.g\. "
                                             rf"{bad_key}.*slot_size_array"):
            _train(model, _batch(bags, 0))
            model.check_overflow()
        with pytest.raises(ValueError, match="table 't0'"):
            _eval(model, _batch(bags, 0))
            model.check_overflow()
    if model.device.type == "cpu":
        assert model.engine.collections[0].group_of_table["t1"].size == 0   # raised before any key was inserted
    concat = _model(lambda m: _concat_and_grouped(m, False), nnz=(2, 2, 3))
    with pytest.raises(ValueError, match="lookup 'o2'.*'concat'.*has 4 keys.*allows 3"):
        _train(concat, _batch([ok[0], ok[0], [[1, 2, 3, 4], [], [], []]], 0))
        concat.check_overflow()


def test_dynamic_table_grows_keeping_rows_and_states():
    table = hugectr.EmbeddingTableConfig("d", -1, 2)
    group = DynamicGroup(table, hugectr.CreateOptimizer(optimizer_type=Opt.AdaGrad), keys_per_batch=10,
                         generator=torch.Generator().manual_seed(0), device="cpu")
    assert group.capacity == 4096 and bool(group.rows.abs().max() <= 0.05)
    first = torch.arange(3000) * 7 - 100
    group.load("d", first, torch.ones(3000, 2), "test")
    group.optimizer.states[0][:3000] = 2.0
    group.reserve(2000)                                                    # 3000 + 2000 > 4096: grows
    assert group.capacity == 16384
    keys, vectors = group.export("d")
    assert torch.equal(keys, first) and torch.equal(vectors, torch.ones(3000, 2))
    assert bool((group.optimizer.states[0][:3000] == 2.0).all()) and bool((group.optimizer.states[0][3000:] == 0).all())
    assert torch.equal(group.hash_table.find(first[[5, 2999]]), torch.tensor([5, 2999]))


def test_initial_values():
    t0 = hugectr.EmbeddingTableConfig("big", 10000, 8)
    t1 = hugectr.EmbeddingTableConfig("dyn", -1, 8)
    t2 = hugectr.EmbeddingTableConfig("set", 50, 8, None, 0.5)

    def configure(model):
        ebc = hugectr.EmbeddingCollectionConfig()
        for table, i in [(t0, 0), (t1, 1), (t2, 2)]:
            ebc.embedding_lookup(table, f"data{i}", f"e{i}", "sum")
        model.add(ebc)
        return ["e0", "e1", "e2"]

    collection = _model(configure).engine.collections[0]
    for name, bound in [("big", math.sqrt(1 / 10000)), ("set", 0.5)]:
        values = collection.export(name)[1].abs()
        assert bool(values.max() <= bound) and bool(values.max() > 0.9 * bound), name
    assert bool(collection.group_of_table["dyn"].rows.abs().max() <= 0.05)


def test_dump_layout_subsets_and_load_round_trip(tmp_path):
    model = _model(_three_lookups, i64=False)
    bags = [[[1], [2], [3], [4]], [[7], [8], [], [9, 7]], [[0], [], [1], [2]]]
    _train(model, _batch(bags, 0))
    model.embedding_dump(str(tmp_path / "all"))
    head, tables = _read_dump(tmp_path / "all" / "embedding_collection_0")
    assert head == [2, 0, 0, 0, 0]                                                    # 2 tables, uint32 keys, fp32
    assert tables[1][0].dtype == np.uint32 and tables[1][0].tolist() == [7, 8, 9]     # first-seen order
    model.embedding_dump(str(tmp_path / "one"), ["t1"])
    assert sorted(p.name for p in (tmp_path / "one" / "embedding_collection_0").iterdir()) == \
        ["key1", "meta_data", "weight1"]
    saved_t0 = model.engine.collections[0].export("t0")[1].clone()
    saved_t1 = model.engine.collections[0].export("t1")[1].clone()
    _train(model, _batch(bags, 1))               # moves both tables
    model.embedding_load(str(tmp_path / "one"), ["t1"])
    assert torch.equal(model.engine.collections[0].export("t1")[1], saved_t1)
    assert not torch.equal(model.engine.collections[0].export("t0")[1], saved_t0)
    model.embedding_load(str(tmp_path / "all"))
    assert torch.equal(model.engine.collections[0].export("t0")[1], saved_t0)


def test_load_and_dump_errors(tmp_path):
    model = _model(_three_lookups)
    with pytest.raises(ValueError, match="no embedding collection table named 'tx'; tables: t0, t1"):
        model.embedding_dump(str(tmp_path / "x"), ["tx"])
    with pytest.raises(FileNotFoundError, match="meta_data"):
        model.embedding_load(str(tmp_path / "missing"))
    model.embedding_dump(str(tmp_path / "one"), ["t1"])
    with pytest.raises(ValueError, match="has no table 0 \\('t0'\\)"):
        model.embedding_load(str(tmp_path / "one"), ["t0"])
    cases = {"ev": {0: (np.arange(3), np.zeros((3, 2)))}, "range": {0: (np.array([3, 10]), np.zeros((2, 4)))}}
    for name, tables in cases.items():
        _write_dump(tmp_path / name / "embedding_collection_0", tables)
    with pytest.raises(ValueError, match="ev_size 4 but the dump.*vectors of 2"):
        model.embedding_load(str(tmp_path / "ev"), ["t0"])
    with pytest.raises(ValueError, match=r"keys outside \[0, 10\).*static table 't0'"):
        model.embedding_load(str(tmp_path / "range"), ["t0"])
    folder = tmp_path / "range" / "embedding_collection_0"
    (folder / "weight0").write_bytes((folder / "weight0").read_bytes()[:-4])
    with pytest.raises(ValueError, match="2 keys but 7 weight values"):
        model.embedding_load(str(tmp_path / "range"), ["t0"])
    (folder / "key0").write_bytes(np.array([2, 0] + [0] * 30, np.int32).tobytes())
    with pytest.raises(ValueError, match="header \\(type 2, table 0\\); expected type 1"):
        model.embedding_load(str(tmp_path / "range"), ["t0"])
    (folder / "meta_data").write_bytes(b"\x01\x00")
    with pytest.raises(ValueError, match="not an embedding collection meta_data"):
        model.embedding_load(str(tmp_path / "range"), ["t0"])


def test_fit_on_parquet(tmp_path):
    from hugectr.testing.datasets import planted_parquet

    data = planted_parquet(tmp_path / "data", [7, 11, 5], samples_per_file=128)
    solver = hugectr.CreateSolver(seed=5, batchsize=32, batchsize_eval=64, max_eval_batches=2, lr=0.05, vvgpu=[[0]],
                                  i64_input_key=True, use_embedding_collection=True)
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=[data.source],
                                      eval_source=data.eval_source, check_type=hugectr.Check_t.Non)
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer(optimizer_type=Opt.SGD))
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=13, dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam(f"data{i}", 1, True, 1)
                                                            for i in range(3)]))
    ebc = hugectr.EmbeddingCollectionConfig(use_exclusive_keys=True)
    tables = [hugectr.EmbeddingTableConfig(str(i), size if i != 1 else -1, 4) for i, size in enumerate([7, 11, 5])]
    ebc.embedding_lookup(tables, [f"data{i}" for i in range(3)], "emb", ["sum"] * 3)
    ebc.shard(shard_matrix=[["0", "1", "2"]], shard_strategy=[("mp", ["0", "1"]), ("dp", ["2"])])
    model.add(ebc)
    for kind, bottoms, top, keywords in [(L.Concat, ["emb", "dense"], "x", {}),
                                         (L.InnerProduct, ["x"], "logit", {"num_output": 1}),
                                         (L.BinaryCrossEntropyLoss, ["logit", "label"], "loss", {})]:
        model.add(hugectr.DenseLayer(layer_type=kind, bottom_names=bottoms, top_names=[top], **keywords))
    model.compile()
    model.fit(max_iter=6, display=0, eval_interval=6, snapshot=0)
    assert model.check_out_tensor("emb", hugectr.Tensor_t.Train).shape == (32, 12)
    model.embedding_dump(str(tmp_path / "dump"), ["1"])
    _, dumped = _read_dump(tmp_path / "dump" / "embedding_collection_0")
    assert set(dumped[1][0].tolist()) <= set(range(11)) and dumped[1][0].size > 0
