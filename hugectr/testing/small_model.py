"""The small network the tests train: one sparse input, an embedding of dim 4, a little MLP, BCE."""

from __future__ import annotations

import hugectr


def add_small_network(model: hugectr.Model, slots: int, dense_dim: int, hidden: int | None = 8,
                      embedding_type=None) -> hugectr.Model:
    """Adds Input (``slots`` one-hot slots named "keys", ``dense_dim`` dense), SparseEmbedding "emb" (dim 4),
    [InnerProduct(``hidden``) + ReLU when ``hidden``], InnerProduct(1) and BinaryCrossEntropyLoss; the
    tensor ``fc1`` is the hidden layer's output. Returns ``model`` (not compiled)."""
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=dense_dim, dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("keys", 1, True, slots)]))
    model.add(hugectr.SparseEmbedding(
        embedding_type=embedding_type or hugectr.Embedding_t.DistributedSlotSparseEmbeddingHash,
        workspace_size_per_gpu_in_mb=1, embedding_vec_size=4, combiner="sum", sparse_embedding_name="emb",
        bottom_name="keys"))
    L = hugectr.Layer_t
    hidden_layers = [(L.InnerProduct, ["features"], ["fc1"], {"num_output": hidden}),
                     (L.ReLU, ["fc1"], ["relu1"], {})] if hidden else []
    for layer_type, bottoms, tops, keywords in [
            (L.Reshape, ["emb"], ["flat"], {"leading_dim": 4 * slots}),
            (L.Concat, ["flat", "dense"], ["features"], {}),
            *hidden_layers,
            (L.InnerProduct, ["relu1" if hidden else "features"], ["logit"], {"num_output": 1}),
            (L.BinaryCrossEntropyLoss, ["logit", "label"], ["loss"], {})]:
        model.add(hugectr.DenseLayer(layer_type=layer_type, bottom_names=bottoms, top_names=tops, **keywords))
    return model
