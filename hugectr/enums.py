"""HugeCTR's enums, spelled exactly as its Python module spells them.

Every enum is a string-valued ``Enum`` whose values are the canonical member
names, so they print, compare and serialise (graph JSON) by name. HugeCTR
writes ``None`` as ``Non`` because ``None`` is a Python keyword; we follow.
Misspellings that HugeCTR's documentation uses are kept as aliases so the
scripts that copied them still run.
"""

from __future__ import annotations

import enum

__all__ = [
    "Error_t", "Check_t", "DataReaderType_t", "FileSystemType_t", "SourceType_t", "TrainPSType_t", "Embedding_t",
    "Initializer_t", "Layer_t", "Alignment_t", "LrPolicy_t", "Optimizer_t", "Update_t", "Activation_t",
    "FcPosition_t", "Regularizer_t", "MetricsRawType", "MetricsType", "DeviceLayout", "AllReduceAlgo",
    "Distribution_t", "PowerLaw_t", "Tensor_t", "CommunicationStrategy", "CompressionStrategy",
    "DataReaderSparse_t", "GroupLayer_t", "HybridEmbeddingType", "CommunicationType", "DataSourceType_t",
]


class _HugeCTREnum(str, enum.Enum):
    """Base: value == canonical name; ``str()`` gives ``Enum_t.Member``.

    ``int(member)`` is the member's position, and ``Enum_t(i)`` the member at position ``i``, as
    HugeCTR's pybind11 enums number theirs (C++ declaration order; legacy extras come last).

    >>> int(Check_t.Non), Check_t(0), Check_t("Non")
    (1, Check_t.Sum, Check_t.Non)
    """

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    __repr__ = __str__

    def __int__(self) -> int:
        return list(type(self)).index(self)

    __index__ = __int__

    @classmethod
    def _missing_(cls, value):
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(cls):
            return list(cls)[value]
        return None


def _members(*names: str) -> dict[str, str]:
    return {name: name for name in names}


def _make(name: str, *members: str, aliases: dict[str, str] | None = None) -> type[_HugeCTREnum]:
    body = _members(*members)
    body.update(aliases or {})
    return _HugeCTREnum(name, body, module=__name__)


Error_t = _make(
    "Error_t", "Success", "FileCannotOpen", "BrokenFile", "OutOfMemory", "OutOfBound",
    "WrongInput", "IllegalCall", "NotInitialized", "UnSupportedFormat", "InvalidEnv",
    "MpiError", "CublasError", "CudnnError", "CudaDriverError", "CudaRuntimeError",
    "NcclError", "DataCheckError", "UnspecificError", "EndOfFile", "CudaError",
)
Check_t = _make("Check_t", "Sum", "Non")
DataReaderType_t = _make("DataReaderType_t", "Norm", "Raw", "Parquet", "RawAsync")
FileSystemType_t = _make("FileSystemType_t", "Local", "HDFS", "S3", "GCS", "Other")
SourceType_t = _make("SourceType_t", "FileList", "Mmap", "Parquet")
TrainPSType_t = _make("TrainPSType_t", "Staged", "Cached")
Embedding_t = _make(
    "Embedding_t", "DistributedSlotSparseEmbeddingHash", "LocalizedSlotSparseEmbeddingHash",
    "LocalizedSlotSparseEmbeddingOneHot", "HybridSparseEmbedding",
)
Initializer_t = _make("Initializer_t", "Default", "Uniform", "XavierNorm", "XavierUniform", "Zero")
Layer_t = _make(
    "Layer_t", "BatchNorm", "LayerNorm", "BinaryCrossEntropyLoss", "Reshape", "Select", "Concat",
    "CrossEntropyLoss", "Dropout", "ElementwiseMultiply", "ELU", "InnerProduct", "MLP",
    "Interaction", "MultiCrossEntropyLoss", "ReLU", "ReLUHalf", "Sigmoid", "Slice",
    "WeightMultiply", "FmOrder2", "Add", "ReduceSum", "Softmax", "Gather", "PReLU_Dice", "GRU",
    "MatrixMultiply", "MultiHeadAttention", "Scale", "FusedReshapeConcat",
    "FusedReshapeConcatGeneral", "Sub", "ReduceMean", "MultiCross", "Cast", "SequenceMask",
    "FusedInnerProduct",
    # The layer book's misspellings, used verbatim by scripts that copied it.
    aliases={"MatrixMutiply": "MatrixMultiply", "Selcte": "Select"},
)
Alignment_t = _make("Alignment_t", "Auto", "Non")
LrPolicy_t = _make("LrPolicy_t", "fixed")
Optimizer_t = _make("Optimizer_t", "Ftrl", "Adam", "RMSProp", "AdaGrad", "MomentumSGD", "Nesterov", "SGD")
Update_t = _make("Update_t", "Local", "Global", "LazyGlobal")
Activation_t = _make("Activation_t", "Relu", "Non")
FcPosition_t = _make("FcPosition_t", "Non", "Head", "Body", "Tail", "Isolated")
Regularizer_t = _make("Regularizer_t", "L1", "L2")
MetricsRawType = _make("MetricsRawType", "Loss", "Pred", "Label")
MetricsType = _make("MetricsType", "AUC", "AverageLoss", "HitRate", "NDCG", "SMAPE")
DeviceLayout = _make("DeviceLayout", "LocalFirst", "NodeFirst")
AllReduceAlgo = _make("AllReduceAlgo", "OneShot", "NCCL")
Distribution_t = _make("Distribution_t", "Uniform", "PowerLaw")
PowerLaw_t = _make("PowerLaw_t", "Long", "Medium", "Short", "Specific")
Tensor_t = _make("Tensor_t", "Train", "Evaluate")
CommunicationStrategy = _make("CommunicationStrategy", "Uniform", "Hierarchical")
CompressionStrategy = _make("CompressionStrategy", "Reduction", "Unique")

# Enums that HugeCTR removed but older scripts still name.
DataReaderSparse_t = _make("DataReaderSparse_t", "Distributed", "Localized")
GroupLayer_t = _make("GroupLayer_t", "GroupFusedInnerProduct")
HybridEmbeddingType = _make("HybridEmbeddingType", "Distributed")
CommunicationType = _make("CommunicationType", "IB_NVLink_Hier", "IB_NVLink", "NVLink_SingleNode")
DataSourceType_t = _make("DataSourceType_t", "Local", "HDFS", "S3", "Other")

# HugeCTR's pybind module exports every member at module level too (``hugectr.Adam``);
# where two enums share a member name the one registered last wins, as there.
EXPORTED_ENUMS = (
    Error_t, Check_t, DataReaderType_t, FileSystemType_t, SourceType_t, TrainPSType_t, Embedding_t,
    Initializer_t, Layer_t, Alignment_t, LrPolicy_t, Optimizer_t, Update_t, Activation_t,
    FcPosition_t, Regularizer_t, MetricsRawType, MetricsType, DeviceLayout, AllReduceAlgo,
    Distribution_t, PowerLaw_t, Tensor_t,
)


def module_level_members() -> dict[str, _HugeCTREnum]:
    """Members of the exported enums by bare name, later enums overriding earlier ones."""
    found: dict[str, _HugeCTREnum] = {}
    for enum_type in EXPORTED_ENUMS:
        found.update(enum_type.__members__)
    return found


def coerce(enum_type: type[_HugeCTREnum], value, what: str) -> _HugeCTREnum:
    """Accept a member of ``enum_type`` or its name (as graph JSON stores it).

    >>> coerce(Update_t, "Local", "update_type")
    Update_t.Local
    """
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str) and value in enum_type.__members__:
        return enum_type.__members__[value]
    valid = ", ".join(f"{enum_type.__name__}.{m}" for m in enum_type.__members__)
    raise TypeError(f"{what}: expected one of {valid}; got {value!r}")
