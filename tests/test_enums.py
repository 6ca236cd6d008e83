"""HugeCTR's enums: names, members and their order, doc aliases, module-level export.

Expected values are written out from the API inventory (reference §1.2, HEAD pybind
`common_wrapper.hpp`), not read back from ``hugectr.enums``.
"""

import pytest

import hugectr
from hugectr.enums import coerce

# enum -> members in HEAD pybind order (C++ None is spelled Non).
HEAD_ENUMS = {
    "Error_t": ["Success", "FileCannotOpen", "BrokenFile", "OutOfMemory", "OutOfBound", "WrongInput",
                "IllegalCall", "NotInitialized", "UnSupportedFormat", "InvalidEnv", "MpiError", "CublasError",
                "CudnnError", "CudaDriverError", "CudaRuntimeError", "NcclError", "DataCheckError",
                "UnspecificError", "EndOfFile"],
    "Check_t": ["Sum", "Non"],
    "DataReaderType_t": ["Norm", "Raw", "Parquet", "RawAsync"],
    "FileSystemType_t": ["Local", "HDFS", "S3", "GCS", "Other"],
    "SourceType_t": ["FileList", "Mmap", "Parquet"],
    "TrainPSType_t": ["Staged", "Cached"],
    "Embedding_t": ["DistributedSlotSparseEmbeddingHash", "LocalizedSlotSparseEmbeddingHash"],
    "Initializer_t": ["Default", "Uniform", "XavierNorm", "XavierUniform", "Zero"],
    "Layer_t": ["BatchNorm", "LayerNorm", "BinaryCrossEntropyLoss", "Reshape", "Select", "Concat",
                "CrossEntropyLoss", "Dropout", "ElementwiseMultiply", "ELU", "InnerProduct", "MLP", "Interaction",
                "MultiCrossEntropyLoss", "ReLU", "ReLUHalf", "Sigmoid", "Slice", "WeightMultiply", "FmOrder2", "Add",
                "ReduceSum", "Softmax", "Gather", "PReLU_Dice", "GRU", "MatrixMultiply", "MultiHeadAttention",
                "Scale", "FusedReshapeConcat", "FusedReshapeConcatGeneral", "Sub", "ReduceMean", "MultiCross",
                "Cast", "SequenceMask"],
    "Alignment_t": ["Auto", "Non"],
    "LrPolicy_t": ["fixed"],
    "Optimizer_t": ["Ftrl", "Adam", "RMSProp", "AdaGrad", "MomentumSGD", "Nesterov", "SGD"],
    "Update_t": ["Local", "Global", "LazyGlobal"],
    "Activation_t": ["Relu", "Non"],
    "FcPosition_t": ["Non", "Head", "Body", "Tail", "Isolated"],
    "Regularizer_t": ["L1", "L2"],
    "MetricsRawType": ["Loss", "Pred", "Label"],
    "MetricsType": ["AUC", "AverageLoss", "HitRate", "NDCG", "SMAPE"],
    "DeviceLayout": ["LocalFirst", "NodeFirst"],
    "AllReduceAlgo": ["OneShot", "NCCL"],
    "Distribution_t": ["Uniform", "PowerLaw"],
    "PowerLaw_t": ["Long", "Medium", "Short", "Specific"],
    "Tensor_t": ["Train", "Evaluate"],
    "CommunicationStrategy": ["Uniform", "Hierarchical"],
    "CompressionStrategy": ["Reduction", "Unique"],
}

# Members that older releases had (the §1.2 notes column), kept after the HEAD members so
# that scripts written for those releases still run.
OLDER_RELEASE_MEMBERS = {
    "Error_t": ["CudaError"],                                                  # v3.4
    "Embedding_t": ["LocalizedSlotSparseEmbeddingOneHot", "HybridSparseEmbedding"],  # <= v24.06
    "Layer_t": ["FusedInnerProduct"],                                          # <= v24.06
}

# Enums removed at HEAD that older scripts still name (§1.2, legacy list).
LEGACY_ENUMS = {
    "DataReaderSparse_t": ["Distributed", "Localized"],
    "GroupLayer_t": ["GroupFusedInnerProduct"],
    "HybridEmbeddingType": ["Distributed"],
    "CommunicationType": ["IB_NVLink_Hier", "IB_NVLink", "NVLink_SingleNode"],
    "DataSourceType_t": ["Local", "HDFS", "S3", "Other"],
}

# Order in which HEAD's CommonPybind registers (and .export_values()) its enums: §1.2 line numbers.
EXPORT_ORDER = ["Error_t", "Check_t", "DataReaderType_t", "FileSystemType_t", "SourceType_t", "TrainPSType_t",
                "Embedding_t", "Initializer_t", "Layer_t", "Alignment_t", "LrPolicy_t", "Optimizer_t", "Update_t",
                "Activation_t", "FcPosition_t", "Regularizer_t", "MetricsRawType", "MetricsType", "DeviceLayout",
                "AllReduceAlgo", "Distribution_t", "PowerLaw_t", "Tensor_t"]


@pytest.mark.parametrize("name", sorted(HEAD_ENUMS))
def test_head_enum_members_in_order(name):
    enum_type = getattr(hugectr, name)
    expected = HEAD_ENUMS[name] + OLDER_RELEASE_MEMBERS.get(name, [])
    assert [m.name for m in enum_type] == expected
    # HEAD members keep their HEAD positions (pybind's int value = position).
    assert [m.name for m in enum_type][:len(HEAD_ENUMS[name])] == HEAD_ENUMS[name]


@pytest.mark.parametrize("name", sorted(LEGACY_ENUMS))
def test_legacy_enums_exist(name):
    assert [m.name for m in getattr(hugectr, name)] == LEGACY_ENUMS[name]


def test_members_print_and_compare_by_name():
    # pybind prints "Enum.Member"; graph JSON stores the bare name.
    assert str(hugectr.Layer_t.InnerProduct) == "Layer_t.InnerProduct"
    assert repr(hugectr.Optimizer_t.Adam) == "Optimizer_t.Adam"
    assert hugectr.Check_t.Non.name == "Non"
    assert hugectr.Layer_t.PReLU_Dice == "PReLU_Dice"
    assert hugectr.Layer_t.InnerProduct is not hugectr.Layer_t.MLP


def test_layer_book_misspellings_are_aliases():
    assert hugectr.Layer_t.MatrixMutiply is hugectr.Layer_t.MatrixMultiply
    assert hugectr.Layer_t.Selcte is hugectr.Layer_t.Select
    # Aliases are not extra members: iteration still yields each layer once.
    names = [m.name for m in hugectr.Layer_t]
    assert "MatrixMutiply" not in names and "Selcte" not in names
    assert len(names) == len(set(names))


def _last_registered(member: str) -> str:
    """The enum whose .export_values() set hugectr.<member> last (the test's own order table)."""
    owners = [e for e in EXPORT_ORDER if member in HEAD_ENUMS[e] + OLDER_RELEASE_MEMBERS.get(e, [])]
    return owners[-1]


def test_module_level_export_of_members():
    assert hugectr.Adam is hugectr.Optimizer_t.Adam
    assert hugectr.Sum is hugectr.Check_t.Sum
    assert hugectr.LazyGlobal is hugectr.Update_t.LazyGlobal
    assert hugectr.InnerProduct is hugectr.Layer_t.InnerProduct
    assert hugectr.AUC is hugectr.MetricsType.AUC
    assert hugectr.XavierUniform is hugectr.Initializer_t.XavierUniform
    assert hugectr.RawAsync is hugectr.DataReaderType_t.RawAsync


def test_module_level_export_last_registered_wins():
    # Written out by hand from the registration order (Check_t 56 < Alignment_t 140 <
    # Activation_t 168 < FcPosition_t 172; DataReaderType_t 60 < SourceType_t 73; ...).
    assert hugectr.Non is hugectr.FcPosition_t.Non
    assert hugectr.Parquet is hugectr.SourceType_t.Parquet
    assert hugectr.Uniform is hugectr.Distribution_t.Uniform
    assert hugectr.Local is hugectr.Update_t.Local
    for enum_name in EXPORT_ORDER:
        for member in HEAD_ENUMS[enum_name]:
            owner = getattr(hugectr, _last_registered(member))
            assert getattr(hugectr, member) is owner[member], member


def test_clashing_module_level_members_still_work_where_their_name_is_meant():
    # hugectr.Parquet is SourceType_t.Parquet, hugectr.Non is FcPosition_t.Non, yet a script that
    # passes them where a DataReaderType_t / Check_t is expected gets the member of that name.
    p = hugectr.DataReaderParams(data_reader_type=hugectr.Parquet, source="t.txt", eval_source="v.txt",
                                 check_type=hugectr.Non)
    assert p.data_reader_type is hugectr.DataReaderType_t.Parquet
    assert p.check_type is hugectr.Check_t.Non


def test_coerce_accepts_member_or_name_and_lists_valid_ones():
    assert coerce(hugectr.Update_t, "LazyGlobal", "update_type") is hugectr.Update_t.LazyGlobal
    assert coerce(hugectr.Update_t, hugectr.Update_t.Local, "update_type") is hugectr.Update_t.Local
    with pytest.raises(TypeError, match=r"update_type.*Update_t\.Local, Update_t\.Global, Update_t\.LazyGlobal"):
        coerce(hugectr.Update_t, "Lazy", "update_type")
    with pytest.raises(TypeError, match="got 3"):
        coerce(hugectr.Update_t, 3, "update_type")


def test_int_protocol_is_the_pybind_position():
    """``int(member)`` is its position and ``Enum_t(i)`` the member there, as HugeCTR's pybind11 enums."""
    assert int(hugectr.Optimizer_t.SGD) == HEAD_ENUMS["Optimizer_t"].index("SGD")
    assert int(hugectr.Layer_t.InnerProduct) == HEAD_ENUMS["Layer_t"].index("InnerProduct")
    assert hugectr.Check_t(1) is hugectr.Check_t.Non and hugectr.Check_t("Sum") is hugectr.Check_t.Sum
    assert ["a", "b"][hugectr.Check_t.Non] == "b"                 # usable as an index, as pybind11's enums are
    for bad in (2, -1, True):
        with pytest.raises(ValueError):
            hugectr.Check_t(bad)
