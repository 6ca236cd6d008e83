"""HugeCTR's (<= v23.08) hybrid embedding: the param class scripts build, and a HybridSparseEmbedding that
trains exactly as the Distributed embedding it is a faster form of."""

import numpy as np
import pytest

import hugectr


def test_hybrid_embedding_param_takes_the_documented_example():
    param = hugectr.HybridEmbeddingParam(2, -1, 0.01, 1.3e11, 1.9e11, 1.0, hugectr.CommunicationType.IB_NVLink_Hier,
                                         hugectr.HybridEmbeddingType.Distributed)
    assert (param.max_num_frequent_categories, param.max_num_infrequent_samples) == (2, -1)
    assert param.hybrid_embedding_type is hugectr.HybridEmbeddingType.Distributed
    embedding = hugectr.SparseEmbedding(embedding_type=hugectr.Embedding_t.HybridSparseEmbedding,
                                        workspace_size_per_gpu_in_mb=1, embedding_vec_size=4, combiner="sum",
                                        sparse_embedding_name="e", bottom_name="d", hybrid_embedding_param=param)
    assert embedding.hybrid_embedding_param is param
    with pytest.raises(TypeError, match="HybridEmbeddingParam.*missing.*hybrid_embedding_type"):
        hugectr.HybridEmbeddingParam(2, -1, 0.01, 1.3e11, 1.9e11, 1.0, hugectr.CommunicationType.IB_NVLink)
    with pytest.raises(TypeError, match="hybrid_embedding_param must come from hugectr.HybridEmbeddingParam"):
        hugectr.SparseEmbedding(hugectr.Embedding_t.HybridSparseEmbedding, 1, 4, "sum", "e", "d",
                                hybrid_embedding_param={"p_dup_max": 0.01})


def test_hybrid_sparse_embedding_trains_as_the_distributed_one(planted_data, build_small_model):
    models = {}
    for kind in (hugectr.Embedding_t.DistributedSlotSparseEmbeddingHash, hugectr.Embedding_t.HybridSparseEmbedding):
        model = build_small_model(planted_data, embedding_type=kind)
        model.start_data_reading()
        for _ in range(4):
            model.train()
        models[kind] = model
    distributed, hybrid = models.values()
    np.testing.assert_array_equal(hybrid.flat_parameters.weights.numpy(), distributed.flat_parameters.weights.numpy())
    for ours, theirs in zip(hybrid.embedding_tables[0].export(), distributed.embedding_tables[0].export()):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
