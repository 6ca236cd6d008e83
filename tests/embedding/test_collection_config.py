"""EmbeddingTableConfig / EmbeddingCollectionConfig and the rules of Model.add(EmbeddingCollectionConfig):
every user mistake is a clear error (reference 1.4: combiners sum / average / concat, grouped form first and
only, shard plan names known tables, use_embedding_collection and one-slot inputs required)."""

import pytest

import hugectr
from hugectr import CompressionStrategy, Optimizer_t

T = hugectr.EmbeddingTableConfig


def _ebc(*lookups):
    ebc = hugectr.EmbeddingCollectionConfig()
    for table, bottom, top, combiner in lookups:
        ebc.embedding_lookup(table, bottom, top, combiner)
    return ebc


def test_table_config_fields_and_keywords():
    sgd = hugectr.CreateOptimizer(optimizer_type=Optimizer_t.SGD)
    t = T(name="t", max_vocabulary_size=-1, ev_size=8, opt_params=sgd)        # the docs' keyword
    assert (t.name, t.max_vocabulary_size, t.ev_size, t.opt_params, t.is_dynamic, t.init_bound) == \
        ("t", -1, 8, sgd, True, None)
    assert T("u", 5, 2, None, 0.25).init_bound == 0.25


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: T("t", 0, 4), ValueError, "max_vocabulary_size must be > 0.*or -1"),
    (lambda: T("t", -2, 4), ValueError, "max_vocabulary_size"),
    (lambda: T("t", 10, 0), ValueError, "ev_size must be >= 1"),
    (lambda: T("", 10, 4), ValueError, "name must not be empty"),
    (lambda: T("t", 10.0, 4), TypeError, "max_vocabulary_size must be an int"),
    (lambda: T("t", 10, 4, "sgd"), TypeError, "opt_params_or_empty"),
    (lambda: T("t", 10, 4, None, -1.0), TypeError, "init_param_or_empty"),
    (lambda: T("t", 10, 4, vocab=3), TypeError, "unknown keyword.*'vocab'"),
    (lambda: hugectr.EmbeddingCollectionConfig(comm_strategy="Ring"), TypeError, "CommunicationStrategy"),
    (lambda: hugectr.EmbeddingCollectionConfig(use_exclusive_keys=2), TypeError, "use_exclusive_keys"),
])
def test_table_and_collection_argument_errors(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_lookup_errors():
    t, other = T("t", 10, 4), T("t", 20, 4)
    with pytest.raises(ValueError, match="'mean' is spelled 'average'"):
        _ebc((t, "d", "e", "mean"))
    with pytest.raises(ValueError, match="combiner must be one of sum, average, concat"):
        _ebc((t, "d", "e", "max"))
    with pytest.raises(ValueError, match="two different tables are named 't'"):
        _ebc((t, "d0", "e0", "sum"), (other, "d1", "e1", "sum"))
    with pytest.raises(ValueError, match="output 'e' is already"):
        _ebc((t, "d0", "e", "sum"), (t, "d1", "e", "sum"))
    with pytest.raises(TypeError, match="EmbeddingTableConfig"):
        _ebc(("t", "d", "e", "sum"))
    grouped = hugectr.EmbeddingCollectionConfig()
    grouped.embedding_lookup([t, T("u", -1, 2)], ["d0", "d1"], "all", ["sum", "concat"])
    assert [lk.top for lk in grouped.lookups] == ["all0", "all1"] and grouped.batch_major_output == "all"
    with pytest.raises(ValueError, match="only embedding_lookup call"):
        grouped.embedding_lookup(t, "d2", "e2", "sum")
    with pytest.raises(ValueError, match="first and only"):
        _ebc((t, "d0", "e0", "sum")).embedding_lookup([t], ["d1"], "all", ["sum"])
    with pytest.raises(ValueError, match="same, non-zero length"):
        hugectr.EmbeddingCollectionConfig().embedding_lookup([t, t], ["d0"], "all", ["sum", "sum"])


def test_shard_plan_is_checked_and_kept():
    ebc = _ebc((T("a", 10, 4), "d0", "e0", "sum"), (T("b", 20, 4), "d1", "e1", "sum"))
    ebc.shard([["a", "b"], ["b"]], [("dp", ["b"]), ("mp", [("a", 2)])], {CompressionStrategy.Reduction: ["a"]})
    assert ebc.shard_matrix == [["a", "b"], ["b"]] and ebc.shard_strategy == [("dp", ["b"]), ("mp", [("a", 2)])]
    assert ebc.compression_strategy == {CompressionStrategy.Reduction: ["a"]}
    cases = [(([["a", "c"]], [("mp", ["a", "b"])]), "no table named 'c'"),
             (([["a"]], [("mp", ["a", "b"])]), "'b' are on no GPU"),
             (([["a", "b"], ["a"]], [("dp", ["b"]), ("mp", ["a"])]), "'dp'.*'b' must be on every GPU"),
             (([["a", "b"]], [("mp", ["a"])]), "'b' are in no shard_strategy group"),
             (([["a", "b"]], [("mp", ["a", "b"]), ("dp", ["b"])]), "'b' is in two"),
             (([["a", "b"]], [("xp", ["a", "b"])]), "'mp' or 'dp'"),
             (([["a", "b"]], [("mp", ["a", ("b", 0)])]), "column splits of 'b' must be >= 1")]
    for args, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            ebc.shard(*args)
    with pytest.raises(TypeError, match="CompressionStrategy"):
        ebc.shard([["a", "b"]], [("mp", ["a", "b"])], {"Zip": ["a"]})


def _model(use_embedding_collection=True, slots=1, optimizer=Optimizer_t.SGD, vvgpu=((0,),)):
    solver = hugectr.CreateSolver(batchsize=8, vvgpu=[list(g) for g in vvgpu],
                                  use_embedding_collection=use_embedding_collection)
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=["unused"],
                                      eval_source="unused", check_type=hugectr.Check_t.Non)
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer(optimizer_type=optimizer))
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=2, dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("d0", 1, True, slots),
                                                            hugectr.DataReaderSparseParam("d1", 2, False, 1)]))
    return model


def test_model_add_rules():
    ebc = _ebc((T("a", 10, 4), "d0", "e0", "sum"), (T("b", -1, 4), "d1", "e1", "concat"))
    model = _model()
    model.add(ebc)
    assert model.graph.shapes["e0"] == (8, 1, 4) and model.graph.shapes["e1"] == (8, 1, 8)
    ebc.embedding_lookup(T("c", 5, 4), "d0", "late", "sum")          # after add: does not reach the model
    assert "late" not in model.graph.shapes
    with pytest.raises(ValueError, match="table name\\(s\\) 'a', 'b' already belong to another collection"):
        model.add(_ebc((T("a", 10, 4), "d0", "x0", "sum"), (T("b", -1, 4), "d1", "x1", "sum")))
    with pytest.raises(ValueError, match="top tensor 'e0' already exists"):
        model.add(_ebc((T("z", 10, 4), "d0", "e0", "sum")))
    with pytest.raises(ValueError, match="'nope' is not a sparse input; sparse inputs are: d0, d1"):
        model.add(_ebc((T("y", 10, 4), "nope", "y0", "sum")))
    model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.Reshape, bottom_names=["e0"], top_names=["r"],
                                 leading_dim=4))
    with pytest.raises(ValueError, match="before dense layers"):
        model.add(_ebc((T("w", 10, 4), "d0", "w0", "sum")))


def test_model_add_refusals():
    ebc = _ebc((T("a", 10, 4), "d0", "e0", "sum"))
    with pytest.raises(ValueError, match="use_embedding_collection=True"):
        _model(use_embedding_collection=False).add(ebc)
    with pytest.raises(ValueError, match="slot_num=1.*'d0' have more slots"):
        _model(slots=3).add(ebc)
    with pytest.raises(ValueError, match="has no lookup"):
        _model().add(hugectr.EmbeddingCollectionConfig())
    with pytest.raises(ValueError, match="static table is updated with Optimizer_t.SGD, Optimizer_t.AdaGrad, "
                                         "got Optimizer_t.Adam"):
        _model(optimizer=Optimizer_t.Adam).add(ebc)
    _model(optimizer=Optimizer_t.Adam).add(_ebc((T("dyn", -1, 4), "d0", "e0", "sum")))   # dynamic: Adam is fine
    with pytest.raises(ValueError, match="dynamic.*got Optimizer_t.Ftrl"):
        _model(optimizer=Optimizer_t.Ftrl).add(_ebc((T("dyn", -1, 4), "d0", "e0", "sum")))
    planned = _ebc((T("a", 10, 4), "d0", "e0", "sum"))
    planned.shard([["a"], ["a"]], [("dp", ["a"])])
    with pytest.raises(ValueError, match="shard_matrix has 2 GPU entries but vvgpu names 1"):
        _model().add(planned)
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=["unused"],
                                      eval_source="unused", check_type=hugectr.Check_t.Non)
    bare = hugectr.Model(hugectr.CreateSolver(use_embedding_collection=True), reader, hugectr.CreateOptimizer())
    with pytest.raises(ValueError, match="add the hugectr.Input first"):
        bare.add(ebc)
