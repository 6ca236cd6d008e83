"""Shared pytest set-up: GPU tests skip on machines without CUDA; CPU threads kept small."""

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; runs on the device machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device():
    """The device GPU tests run on."""
    return torch.device("cuda")


@pytest.fixture(scope="session")
def planted_data(tmp_path_factory):
    """Two train files of 512 samples + one eval file; 13 dense, 3 one-hot slots."""
    from hugectr.testing.datasets import planted_parquet

    return planted_parquet(tmp_path_factory.mktemp("planted"), [7, 11, 5], samples_per_file=512)


@pytest.fixture
def build_small_model():
    """``build(data, **solver_overrides) -> Model``: embedding (dim 4) + 2-layer MLP + BCE, compiled."""
    import hugectr
    from hugectr.testing.small_model import add_small_network

    def build(data, optimizer=None, embedding_type=None, compile=True, **overrides):
        solver_args = dict(seed=5, batchsize=64, batchsize_eval=128, max_eval_batches=4, lr=0.01,
                           vvgpu=[[0]], repeat_dataset=True, i64_input_key=True)
        solver_args.update(overrides)
        solver = hugectr.CreateSolver(**solver_args)
        reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=[data.source],
                                          eval_source=data.eval_source, check_type=hugectr.Check_t.Non,
                                          slot_size_array=data.slot_size_array)
        optimizer = optimizer or hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.Adam,
                                                         update_type=hugectr.Update_t.Local)
        model = hugectr.Model(solver, reader, optimizer)
        add_small_network(model, len(data.slot_size_array), data.dense_dim, embedding_type=embedding_type)
        if compile:
            model.compile()
        return model

    return build
