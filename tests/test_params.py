"""Solver, optimizer and reader parameters against HugeCTR's signatures and defaults.

Every expected value is written out here from the API inventory (reference §1.3, §4.7)
and HugeCTR's Python-interface docs (seed 001), not read back from ``hugectr.params``.
"""

import numpy as np
import pytest

import hugectr
from hugectr import (Alignment_t, AllReduceAlgo, Check_t, DataReaderType_t, DeviceLayout, FileSystemType_t,
                     LrPolicy_t, MetricsType, Optimizer_t, Update_t)

# ---------------------------------------------------------------- CreateSolver (§1.3 table)

SOLVER_DEFAULTS = {
    "model_name": "", "seed": 0, "lr_policy": LrPolicy_t.fixed, "lr": 0.001, "warmup_steps": 1,
    "decay_start": 0, "decay_steps": 1, "decay_power": 2.0, "end_lr": 0.0, "max_eval_batches": 100,
    "batchsize_eval": 2048, "batchsize": 2048, "vvgpu": [[0]], "repeat_dataset": True,
    "use_mixed_precision": False, "enable_tf32_compute": False, "scaler": 1.0,
    "metrics_spec": {MetricsType.AUC: 1.0}, "i64_input_key": False, "use_algorithm_search": True,
    "use_cuda_graph": True, "gen_loss_summary": True, "train_intra_iteration_overlap": False,
    "train_inter_iteration_overlap": False, "eval_intra_iteration_overlap": False,
    "eval_inter_iteration_overlap": False, "device_layout": DeviceLayout.LocalFirst,
    "use_embedding_collection": False, "all_reduce_algo": AllReduceAlgo.NCCL, "grouped_all_reduce": False,
    "num_iterations_statistics": 20, "perf_logging": False, "drop_incomplete_batch": True,
    "kafka_brockers": "", "training_callbacks": [],
}
# (v3.9's data_source_params takes effect: tests/io/test_fs.py)
SOLVER_LEGACY = ["async_mlp_wgrad", "overlap_lr", "overlap_init_wgrad", "overlap_ar_a2a", "eval_overlap",
                 "use_holistic_cuda_graph", "use_overlapped_pipeline"]


def test_create_solver_defaults_every_keyword():
    solver = hugectr.CreateSolver()
    assert isinstance(solver, hugectr.Solver)
    for name, expected in SOLVER_DEFAULTS.items():
        value = getattr(solver, name)
        assert value == expected and type(value) is type(expected), name
    # Each solver gets its own mutable defaults.
    other = hugectr.CreateSolver()
    solver.vvgpu[0].append(1)
    solver.metrics_spec[MetricsType.HitRate] = 0.5
    assert other.vvgpu == [[0]] and other.metrics_spec == {MetricsType.AUC: 1.0}


def test_create_solver_every_keyword_is_accepted():
    # Passing the default of every keyword must reproduce the defaults (and be accepted).
    solver = hugectr.CreateSolver(**SOLVER_DEFAULTS)
    assert all(getattr(solver, n) == v for n, v in SOLVER_DEFAULTS.items())


def test_create_solver_doc_example():
    solver = hugectr.CreateSolver(max_eval_batches=300, batchsize_eval=16384, batchsize=16384, lr=0.001,
                                  vvgpu=[[0]], repeat_dataset=True, i64_input_key=True)
    assert (solver.max_eval_batches, solver.batchsize_eval, solver.batchsize) == (300, 16384, 16384)
    assert solver.i64_input_key is True and solver.lr == 0.001 and solver.warmup_steps == 1


def test_create_solver_positional_in_pybind_order():
    # pybind binds positionals in the table's order: model_name, seed, lr_policy, lr, warmup_steps, ...
    solver = hugectr.CreateSolver("dcn", 42, LrPolicy_t.fixed, 0.01, 100)
    assert (solver.model_name, solver.seed, solver.lr, solver.warmup_steps) == ("dcn", 42, 0.01, 100)


def test_create_solver_unknown_keyword_names_it_and_lists_valid():
    with pytest.raises(TypeError) as info:
        hugectr.CreateSolver(batch_size=1024)
    message = str(info.value)
    assert "'batch_size'" in message and "CreateSolver" in message
    for valid in ("batchsize", "vvgpu", "kafka_brockers", "training_callbacks"):
        assert valid in message


@pytest.mark.parametrize("legacy", SOLVER_LEGACY)
def test_create_solver_accepts_legacy_keywords(legacy):
    solver = hugectr.CreateSolver(batchsize=512, **{legacy: True})
    assert solver.batchsize == 512


@pytest.mark.parametrize("kwargs", [
    dict(batchsize=1001, vvgpu=[[0, 1]]),                           # global batch not divisible by 2 GPUs
    dict(batchsize=1024, batchsize_eval=1023, vvgpu=[[0], [0]]),    # eval batch, 2 nodes x 1 GPU
    dict(use_mixed_precision=True, enable_tf32_compute=True),
    dict(decay_power=0.5),
    dict(lr=-0.1),
    dict(end_lr=-1e-4),
    dict(batchsize=0),
    dict(vvgpu=[[0, 0]]),                                           # one GPU named twice in a node
])
def test_create_solver_value_errors(kwargs):
    with pytest.raises(ValueError, match="CreateSolver"):
        hugectr.CreateSolver(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(batchsize="1024"), dict(repeat_dataset=2), dict(vvgpu=[]),
                                    dict(vvgpu=[["0"]]), dict(vvgpu=0), dict(lr_policy="step"),
                                    dict(metrics_spec={"ROC": 1.0})])
def test_create_solver_type_errors(kwargs):
    with pytest.raises(TypeError, match="CreateSolver"):
        hugectr.CreateSolver(**kwargs)


@pytest.mark.parametrize("vvgpu, nested, gpus", [
    ([[0]], [[0]], 1),
    ([[0, 1, 2, 3]], [[0, 1, 2, 3]], 4),
    ([0, 2, 4, 7], [[0, 2, 4, 7]], 4),               # flat list: one node, non-contiguous ids
    ([[0, 1], [1, 2]], [[0, 1], [1, 2]], 4),         # two nodes; ids repeat across nodes
    (((0,), (1,)), [[0], [1]], 2),
])
def test_create_solver_vvgpu_forms(vvgpu, nested, gpus):
    solver = hugectr.CreateSolver(vvgpu=vvgpu, batchsize=4096, batchsize_eval=4096)
    assert solver.vvgpu == nested and solver.num_gpus == gpus


def test_create_solver_enum_keywords_by_name_and_metrics_spec():
    solver = hugectr.CreateSolver(all_reduce_algo="OneShot", lr_policy="fixed", device_layout="NodeFirst",
                                  metrics_spec={"AUC": 0.8025, MetricsType.AverageLoss: 0, "HitRate": 0.8})
    assert solver.all_reduce_algo is AllReduceAlgo.OneShot and solver.device_layout is DeviceLayout.NodeFirst
    assert solver.metrics_spec == {MetricsType.AUC: 0.8025, MetricsType.AverageLoss: 0.0, MetricsType.HitRate: 0.8}
    assert all(type(k) is MetricsType for k in solver.metrics_spec)


# ---------------------------------------------------------------- CreateOptimizer

OPTIMIZER_DEFAULTS = {"optimizer_type": Optimizer_t.Adam, "update_type": Update_t.Global, "beta": 0.0,
                      "lambda1": 0.0, "lambda2": 0.0, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-7,
                      "initial_accu_value": 0.0, "momentum_factor": 0.0, "atomic_update": True}


def test_create_optimizer_defaults_every_keyword():
    opt = hugectr.CreateOptimizer()
    assert isinstance(opt, hugectr.OptParamsPy)
    for name, expected in OPTIMIZER_DEFAULTS.items():
        assert getattr(opt, name) == expected and type(getattr(opt, name)) is type(expected), name


def test_create_optimizer_doc_example_and_names():
    opt = hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.Adam, update_type=hugectr.Update_t.Global,
                                  beta1=0.9, beta2=0.999, epsilon=0.0000001)
    assert (opt.beta1, opt.beta2, opt.epsilon) == (0.9, 0.999, 1e-7)
    ftrl = hugectr.CreateOptimizer(optimizer_type="Ftrl", update_type="Local", beta=0.1, lambda1=1, lambda2=2)
    assert ftrl.optimizer_type is Optimizer_t.Ftrl and ftrl.update_type is Update_t.Local
    assert (ftrl.beta, ftrl.lambda1, ftrl.lambda2) == (0.1, 1.0, 2.0)


def test_create_optimizer_positional_in_pybind_order():
    opt = hugectr.CreateOptimizer(Optimizer_t.MomentumSGD, Update_t.Local, 0.0, 0.0, 0.0, 0.9, 0.999, 1e-7, 0.0, 0.8)
    assert (opt.optimizer_type, opt.update_type, opt.momentum_factor) == (Optimizer_t.MomentumSGD, Update_t.Local, 0.8)


def test_create_optimizer_errors():
    with pytest.raises(TypeError, match=r"'momentum'.*momentum_factor"):
        hugectr.CreateOptimizer(momentum=0.9)
    with pytest.raises(TypeError, match="optimizer_type"):
        hugectr.CreateOptimizer(optimizer_type="Adamw")
    with pytest.raises(TypeError, match="atomic_update"):
        hugectr.CreateOptimizer(atomic_update=2)


@pytest.mark.parametrize("flag", [1, np.int64(1), np.bool_(True)])
def test_bool_keywords_take_what_pybind11_takes(flag):
    """pybind11's bool caster takes numpy bools and the ints 0 / 1; the stored value is a real bool."""
    solver = hugectr.CreateSolver(repeat_dataset=flag, i64_input_key=np.bool_(False))
    assert solver.repeat_dataset is True and solver.i64_input_key is False
    assert hugectr.CreateOptimizer(atomic_update=flag).atomic_update is True
    assert hugectr.DataReaderSparseParam("data", 1, flag, 26).is_fixed_length is True
    assert hugectr.AsyncParam(1, 4, shuffle=0).shuffle is False
    with pytest.raises(TypeError, match="repeat_dataset must be True or False"):
        hugectr.CreateSolver(repeat_dataset="yes")


@pytest.mark.parametrize("optimizer", ["SGD", "MomentumSGD", "Nesterov", "AdaGrad", "Ftrl", "RMSProp"])
def test_lazy_global_is_adam_only(optimizer):
    with pytest.raises(ValueError, match="LazyGlobal"):
        hugectr.CreateOptimizer(optimizer_type=optimizer, update_type=Update_t.LazyGlobal)
    assert hugectr.CreateOptimizer(optimizer_type=optimizer, update_type=Update_t.Local).update_type is Update_t.Local


# k of §4.7: optimizer state copies per weight (capacity = ws / ((1 + k) * 4 * ev)).
STATE_COPIES = [("Adam", "Global", 2), ("Adam", "Local", 2), ("Adam", "LazyGlobal", 3), ("Ftrl", "Global", 2),
                ("AdaGrad", "Global", 1), ("RMSProp", "Global", 1), ("MomentumSGD", "Local", 1),
                ("Nesterov", "Global", 1), ("SGD", "Local", 0), ("SGD", "Global", 0)]


@pytest.mark.parametrize("optimizer, update, copies", STATE_COPIES)
def test_optimizer_state_copies(optimizer, update, copies):
    assert hugectr.CreateOptimizer(optimizer_type=optimizer, update_type=update).state_copies == copies


# ---------------------------------------------------------------- AsyncParam, DataReaderParams, DataSourceParams

ASYNC_FIELDS = ["num_threads", "num_batches_per_thread", "max_num_requests_per_thread", "io_depth", "io_alignment",
                "shuffle", "aligned_type", "multi_hot_reader", "is_dense_float"]


def _async_fields(p):
    return [getattr(p, name) for name in ASYNC_FIELDS]


def test_async_param_positional_nine_args():
    p = hugectr.AsyncParam(32, 4, 10, 2, 512, True, hugectr.Alignment_t.Non, False, False)
    assert _async_fields(p) == [32, 4, 10, 2, 512, True, Alignment_t.Non, False, False]
    p7 = hugectr.AsyncParam(16, 4, 72, 4, 4096, False, Alignment_t.Auto)   # v23.08 scripts: 7 positional
    assert _async_fields(p7) == [16, 4, 72, 4, 4096, False, Alignment_t.Auto, True, True]


def test_async_param_keyword_form_defaults():
    p = hugectr.AsyncParam(num_threads=1, num_batches_per_thread=16, shuffle=False, multi_hot_reader=True,
                           is_dense_float=True)
    assert _async_fields(p) == [1, 16, 0, 0, 0, False, Alignment_t.Non, True, True]
    assert hugectr.AsyncParam(2, 8, shuffle=True, aligned_type="Auto").aligned_type is Alignment_t.Auto


@pytest.mark.parametrize("kwargs, missing", [
    (dict(num_batches_per_thread=4, shuffle=False), "num_threads"),
    (dict(num_threads=1, shuffle=False), "num_batches_per_thread"),
    (dict(num_threads=1, num_batches_per_thread=4), "shuffle"),
    (dict(multi_hot_reader=True, is_dense_float=True), "num_threads"),   # the docs' RawAsync snippet
])
def test_async_param_required_arguments(kwargs, missing):
    with pytest.raises(TypeError, match=f"AsyncParam.*missing.*{missing}"):
        hugectr.AsyncParam(**kwargs)


def test_async_param_bad_values():
    with pytest.raises(TypeError, match="'io_block'"):
        hugectr.AsyncParam(1, 4, shuffle=False, io_block=3)
    with pytest.raises(ValueError, match="num_threads"):
        hugectr.AsyncParam(0, 4, shuffle=False)
    with pytest.raises(TypeError, match="shuffle"):
        hugectr.AsyncParam(1, 4, shuffle="no")


READER_DEFAULTS = {"keyset": [], "cache_eval_data": 0, "num_samples": 0, "eval_num_samples": 0,
                   "float_label_dense": False, "read_file_sequentially": False, "num_workers": 12,
                   "slot_size_array": []}
# The default async_param: AsyncParam(16, 4, 512000, 4, 512, False, Non, multi_hot_reader=False, is_dense_float=False).
READER_DEFAULT_ASYNC = [16, 4, 512000, 4, 512, False, Alignment_t.Non, False, False]


def _reader(**kwargs):
    base = dict(data_reader_type=DataReaderType_t.Parquet, source="train/_file_list.txt",
                eval_source="val/_file_list.txt", check_type=Check_t.Non)
    return hugectr.DataReaderParams(**{**base, **kwargs})


def test_data_reader_params_defaults():
    p = _reader()
    assert p.data_reader_type is DataReaderType_t.Parquet and p.check_type is Check_t.Non
    assert p.source == ["train/_file_list.txt"] and p.eval_source == "val/_file_list.txt"
    for name, expected in READER_DEFAULTS.items():
        assert getattr(p, name) == expected and type(getattr(p, name)) is type(expected), name
    assert _async_fields(p.async_param) == READER_DEFAULT_ASYNC
    ds = p.data_source_params
    assert isinstance(ds, hugectr.data.DataSourceParams)
    assert (ds.source, ds.server, ds.port) == (FileSystemType_t.Local, "localhost", 9000)
    other = _reader()
    assert other.async_param is not p.async_param and other.slot_size_array is not p.slot_size_array


def test_data_reader_params_source_forms_and_positional():
    assert _reader(source=["a.txt", "b.txt"]).source == ["a.txt", "b.txt"]
    assert _reader(keyset="k.keyset").keyset == ["k.keyset"]
    assert _reader(keyset="").keyset == []                 # the str overload's default: no keyset
    p = hugectr.DataReaderParams(DataReaderType_t.RawAsync, "train.bin", [], "val.bin", Check_t.Sum, 1, 100, 10)
    assert (p.source, p.eval_source, p.check_type) == (["train.bin"], "val.bin", Check_t.Sum)
    assert (p.cache_eval_data, p.num_samples, p.eval_num_samples, p.num_workers) == (1, 100, 10, 12)


def test_data_reader_params_doc_examples():
    p = _reader(source=["./parquet_data/train/_file_list.txt"], slot_size_array=[10000, 50000, 20000, 300])
    assert p.slot_size_array == [10000, 50000, 20000, 300]
    ap = hugectr.AsyncParam(num_threads=1, num_batches_per_thread=16, shuffle=False, multi_hot_reader=True,
                            is_dense_float=True)
    raw = _reader(data_reader_type=DataReaderType_t.RawAsync, source=["./wdl_raw/train_data.bin"],
                  eval_source="./wdl_raw/validation_data.bin", async_param=ap, num_workers=4,
                  float_label_dense=True)
    assert raw.async_param is ap and raw.num_workers == 4 and raw.float_label_dense is True


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(eval_source=""), ValueError, "eval_source"),
    (dict(source=[]), ValueError, "source"),
    (dict(source=""), ValueError, "source"),
    (dict(source=3), TypeError, "source"),
    (dict(slot_size_array=[10, -1]), ValueError, "slot_size_array"),
    (dict(slot_size_array=[10, 2.5]), TypeError, "slot_size_array"),
    (dict(slot_size_array="10"), TypeError, "slot_size_array"),
    (dict(num_workers=0), ValueError, "num_workers"),
    (dict(async_param={"num_threads": 1}), TypeError, "async_param"),
    (dict(data_reader_type="Avro"), TypeError, "data_reader_type"),
    (dict(num_worker=4), TypeError, "'num_worker'"),
])
def test_data_reader_params_errors(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        _reader(**kwargs)


@pytest.mark.parametrize("missing", ["data_reader_type", "source", "eval_source", "check_type"])
def test_data_reader_params_required(missing):
    base = dict(data_reader_type=DataReaderType_t.Parquet, source="t", eval_source="v", check_type=Check_t.Non)
    del base[missing]
    with pytest.raises(TypeError, match=f"missing.*{missing}"):
        hugectr.DataReaderParams(**base)


def test_data_source_params():
    ds = hugectr.data.DataSourceParams(source=FileSystemType_t.HDFS, server="namenode", port=9000)
    assert (ds.source, ds.server, ds.port) == (FileSystemType_t.HDFS, "namenode", 9000)
    ds = hugectr.data.DataSourceParams("S3", "us-east-1", 0)
    assert ds.source is FileSystemType_t.S3
    ds.server, ds.port = "storage.googleapis.com", 443        # fields are writable, as in pybind
    assert (ds.server, ds.port) == ("storage.googleapis.com", 443)
    assert _reader(data_source_params=ds).data_source_params is ds
    with pytest.raises(TypeError, match="source"):
        hugectr.data.DataSourceParams(source="FTP")



def test_numpy_integers_are_accepted_like_pybind():
    solver = hugectr.CreateSolver(batchsize=np.int64(1024), batchsize_eval=np.int32(512))
    assert solver.batchsize == 1024 and type(solver.batchsize) is int
    assert _reader(slot_size_array=np.array([10, 20])).slot_size_array == [10, 20]
