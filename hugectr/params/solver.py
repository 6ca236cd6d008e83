"""``CreateSolver`` and ``Solver``: the training resources and schedule of a model."""

from __future__ import annotations

import dataclasses
from dataclasses import field

from .._checks import require_bool, require_int, require_number
from ..enums import AllReduceAlgo, DeviceLayout, LrPolicy_t, MetricsType, coerce
from ._dataclass import strict_params
from .reader import DataSourceParams

# Keywords of older HugeCTR releases: accepted so old scripts run, with no effect here.
# (v3.9's data_source_params is a field instead: it does take effect.)
LEGACY_SOLVER_KEYWORDS = (
    "async_mlp_wgrad", "overlap_lr", "overlap_init_wgrad", "overlap_ar_a2a", "eval_overlap",
    "use_holistic_cuda_graph", "use_overlapped_pipeline",
)


def _default_metrics() -> dict:
    return {MetricsType.AUC: 1.0}


def _default_vvgpu() -> list[list[int]]:
    return [[0]]


@strict_params(legacy=LEGACY_SOLVER_KEYWORDS, owner="CreateSolver")
class Solver:
    """What ``CreateSolver`` returns; field names and defaults are HugeCTR's."""

    model_name: str = ""
    seed: int = 0
    lr_policy: LrPolicy_t = LrPolicy_t.fixed
    lr: float = 0.001
    warmup_steps: int = 1
    decay_start: int = 0
    decay_steps: int = 1
    decay_power: float = 2.0
    end_lr: float = 0.0
    max_eval_batches: int = 100
    batchsize_eval: int = 2048
    batchsize: int = 2048
    vvgpu: list[list[int]] = field(default_factory=_default_vvgpu)
    repeat_dataset: bool = True
    use_mixed_precision: bool = False
    enable_tf32_compute: bool = False
    scaler: float = 1.0
    metrics_spec: dict = field(default_factory=_default_metrics)
    i64_input_key: bool = False
    use_algorithm_search: bool = True
    use_cuda_graph: bool = True
    gen_loss_summary: bool = True
    train_intra_iteration_overlap: bool = False
    train_inter_iteration_overlap: bool = False
    eval_intra_iteration_overlap: bool = False
    eval_inter_iteration_overlap: bool = False
    device_layout: DeviceLayout = DeviceLayout.LocalFirst
    use_embedding_collection: bool = False
    all_reduce_algo: AllReduceAlgo = AllReduceAlgo.NCCL
    grouped_all_reduce: bool = False
    num_iterations_statistics: int = 20
    perf_logging: bool = False
    drop_incomplete_batch: bool = True
    kafka_brockers: str = ""
    training_callbacks: list = field(default_factory=list)
    # Extension (not in HugeCTR): the half type of use_mixed_precision, "fp16" (HugeCTR's) or "bf16".
    mixed_precision_dtype: str = "fp16"
    # HugeCTR v3.9's keyword (gone at HEAD): the file system of plain paths, for the data when
    # DataReaderParams leaves it Local, and for model files (hugectr.io.fs). None: the local disk.
    data_source_params: DataSourceParams | None = None

    def __post_init__(self) -> None:
        owner = "CreateSolver"
        for name in ("seed", "warmup_steps", "decay_start", "decay_steps", "num_iterations_statistics"):
            setattr(self, name, require_int(owner, name, getattr(self, name), minimum=0))
        for name in ("max_eval_batches", "batchsize_eval", "batchsize"):
            setattr(self, name, require_int(owner, name, getattr(self, name), minimum=1))
        for name in ("lr", "decay_power", "end_lr", "scaler"):
            setattr(self, name, require_number(owner, name, getattr(self, name)))
        for f in dataclasses.fields(self):
            if f.type == "bool":
                setattr(self, f.name, require_bool(owner, f.name, getattr(self, f.name)))
        self.lr_policy = coerce(LrPolicy_t, self.lr_policy, "CreateSolver: lr_policy")
        self.device_layout = coerce(DeviceLayout, self.device_layout, "CreateSolver: device_layout")
        self.all_reduce_algo = coerce(AllReduceAlgo, self.all_reduce_algo, "CreateSolver: all_reduce_algo")
        self.vvgpu = _normalise_vvgpu(self.vvgpu)
        self.metrics_spec = {coerce(MetricsType, k, "CreateSolver: metrics_spec key"): float(v)
                             for k, v in dict(self.metrics_spec).items()}
        self.training_callbacks = list(self.training_callbacks)
        if self.data_source_params is not None and not isinstance(self.data_source_params, DataSourceParams):
            raise TypeError(f"CreateSolver: data_source_params must be a hugectr.data.DataSourceParams, got "
                            f"{self.data_source_params!r}")
        if self.lr < 0 or self.end_lr < 0:
            raise ValueError(f"CreateSolver: lr and end_lr must be >= 0, got lr={self.lr}, end_lr={self.end_lr}")
        if self.decay_power < 1:
            raise ValueError(f"CreateSolver: decay_power must be >= 1, got {self.decay_power}")
        if self.mixed_precision_dtype not in ("fp16", "bf16"):
            raise ValueError(f"CreateSolver: mixed_precision_dtype must be 'fp16' or 'bf16', got "
                             f"{self.mixed_precision_dtype!r}")
        if self.use_mixed_precision and self.enable_tf32_compute:
            raise ValueError("CreateSolver: use_mixed_precision and enable_tf32_compute cannot both be True; "
                             "pick fp16 mixed precision or TF32 matrix products")
        if self.batchsize % self.num_gpus or self.batchsize_eval % self.num_gpus:
            raise ValueError(f"CreateSolver: batchsize ({self.batchsize}) and batchsize_eval ({self.batchsize_eval}) "
                             f"are global and must divide by the number of GPUs in vvgpu ({self.num_gpus})")

    @property
    def num_gpus(self) -> int:
        """GPUs over all nodes named by ``vvgpu``."""
        return sum(len(node) for node in self.vvgpu)


def _normalise_vvgpu(vvgpu) -> list[list[int]]:
    """``[[0, 1], [0, 1]]`` per node; a flat ``[0, 1]`` means one node."""
    if isinstance(vvgpu, (list, tuple)) and vvgpu and all(isinstance(g, int) for g in vvgpu):
        vvgpu = [list(vvgpu)]
    if (not isinstance(vvgpu, (list, tuple)) or not vvgpu
            or any(not isinstance(node, (list, tuple)) or not node for node in vvgpu)
            or any(isinstance(g, bool) or not isinstance(g, int) or g < 0 for node in vvgpu for g in node)):
        raise TypeError(f"CreateSolver: vvgpu must be a list per node of GPU ids, like [[0]] or [[0, 1]]; got {vvgpu!r}")
    for node in vvgpu:
        if len(set(node)) != len(node):
            raise ValueError(f"CreateSolver: vvgpu names a GPU twice in one node: {list(node)}")
    return [list(node) for node in vvgpu]


def CreateSolver(*args, **kwargs) -> Solver:  # noqa: N802 - HugeCTR's name
    """Build a ``Solver``; every keyword and default is HugeCTR's.

    Positional arguments bind in HugeCTR's keyword order (``model_name``, ``seed``, ``lr_policy``, ...),
    as its pybind signature allows.

    >>> solver = CreateSolver(batchsize=1024, lr=0.01, vvgpu=[[0]])
    >>> solver.batchsize, solver.batchsize_eval, solver.repeat_dataset
    (1024, 2048, True)
    """
    return Solver(*args, **kwargs)
