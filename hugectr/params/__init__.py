"""The parameter objects a HugeCTR script builds before and while it adds layers."""

from .dense_layer import DenseLayer
from .embedding_collection import EmbeddingCollectionConfig, EmbeddingTableConfig
from .graph import DataReaderSparseParam, DenseLayerComputeConfig, Input, SparseEmbedding
from .group_dense_layer import GroupDenseLayer
from .hybrid_embedding import HybridEmbeddingParam
from .optimizer import CreateOptimizer, OptParamsPy
from .reader import AsyncParam, DataReaderParams, DataSourceParams
from .solver import CreateSolver, Solver

__all__ = [
    "AsyncParam", "CreateOptimizer", "CreateSolver", "DataReaderParams", "DataReaderSparseParam",
    "DataSourceParams", "DenseLayer", "DenseLayerComputeConfig", "EmbeddingCollectionConfig", "EmbeddingTableConfig",
    "GroupDenseLayer", "HybridEmbeddingParam", "Input", "OptParamsPy", "Solver",
    "SparseEmbedding",
]
