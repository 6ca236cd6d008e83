"""The model graph: named tensors, the layers that produce and consume them, their shapes.

Shapes are inferred as layers are added, so a mistake is reported at the ``Model.add`` line
that made it. ``analyse`` then does what HugeCTR's graph analysis does at compile time: a
tensor read by several dense layers gets an explicit ``Slice`` that hands each reader its own
copy (visible in the summary and the graph JSON, as in HugeCTR).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .enums import Layer_t
from .layers.base import Layer, Shape, layer_class
from .params import DenseLayer, Input, SparseEmbedding

MULTI_LABEL_TENSOR = "combined_multi_label"
MAX_CONSUMERS = 5  # HugeCTR's Slice has at most five tops


@dataclass
class DenseNode:
    """One dense layer in the graph with the tensor names it reads and writes."""

    params: DenseLayer
    layer: Layer
    bottoms: list[str]
    tops: list[str]
    implicit: bool = False   # inserted by the graph, not by the user


@dataclass
class Graph:
    """Tensors by name and the layers in add order; ``batch_size`` is the per-GPU batch."""

    batch_size: int
    input: Input | None = None
    embeddings: list[SparseEmbedding] = field(default_factory=list)
    dense_nodes: list[DenseNode] = field(default_factory=list)
    shapes: dict[str, Shape] = field(default_factory=dict)
    sparse_inputs: dict[str, int] = field(default_factory=dict)   # top name -> slot_num
    collections: list = field(default_factory=list)                 # EmbeddingCollectionConfig, in add order
    analysed: bool = False                                          # implicit Slices inserted

    # -- adding -----------------------------------------------------------------------------
    def add_input(self, inp: Input) -> None:
        if self.input is not None:
            raise ValueError("Model.add(Input): the model already has an Input; add exactly one, first")
        self.input = inp
        for name, dim in zip(inp.label_names, inp.label_dims):
            self.shapes[name] = (self.batch_size, dim)
        self.shapes[inp.dense_name] = (self.batch_size, inp.dense_dim)
        for sparse in inp.data_reader_sparse_param_array:
            self.sparse_inputs[sparse.top_name] = sparse.slot_num
        if len(inp.label_names) > 1:
            self._add_multi_label_slice(inp)

    def _add_multi_label_slice(self, inp: Input) -> None:
        """Several labels arrive as one block, split by a Slice in alphabetical name order."""
        self.shapes[MULTI_LABEL_TENSOR] = (self.batch_size, inp.label_dim)
        ranges, start = [], 0
        for dim in inp.label_dims:
            ranges.append((start, start + dim))
            start += dim
        params = DenseLayer(layer_type=Layer_t.Slice, bottom_names=[MULTI_LABEL_TENSOR],
                            top_names=list(inp.label_names), ranges=ranges)
        layer = layer_class(Layer_t.Slice)(params)
        layer.output_shapes([self.shapes[MULTI_LABEL_TENSOR]])
        self.dense_nodes.append(DenseNode(params, layer, [MULTI_LABEL_TENSOR], list(inp.label_names), implicit=True))

    def add_embedding(self, emb: SparseEmbedding) -> None:
        self._require_input(f"SparseEmbedding '{emb.sparse_embedding_name}'")
        if emb.bottom_name not in self.sparse_inputs:
            raise ValueError(f"SparseEmbedding '{emb.sparse_embedding_name}': bottom_name '{emb.bottom_name}' is not a "
                             f"sparse input; sparse inputs are: {', '.join(self.sparse_inputs) or '(none)'}")
        if any(e.bottom_name == emb.bottom_name for e in self.embeddings):
            raise ValueError(f"SparseEmbedding '{emb.sparse_embedding_name}': sparse input '{emb.bottom_name}' "
                             "already feeds another embedding; each sparse input feeds one embedding")
        if self.dense_nodes and any(not n.implicit for n in self.dense_nodes):
            raise ValueError(f"SparseEmbedding '{emb.sparse_embedding_name}': add embeddings before dense layers")
        self._require_new(emb.sparse_embedding_name, f"SparseEmbedding '{emb.sparse_embedding_name}'")
        slots = self.sparse_inputs[emb.bottom_name]
        if emb.slot_size_array and len(emb.slot_size_array) != slots:
            raise ValueError(f"SparseEmbedding '{emb.sparse_embedding_name}': slot_size_array has "
                             f"{len(emb.slot_size_array)} entries but '{emb.bottom_name}' has {slots} slots")
        self.embeddings.append(emb)
        self.shapes[emb.sparse_embedding_name] = (self.batch_size, slots, emb.embedding_vec_size)

    def add_collection(self, config) -> None:
        """An ``EmbeddingCollectionConfig``: its lookups read sparse inputs, its outputs become tensors."""
        what = f"EmbeddingCollection {len(self.collections)}"
        config = copy.deepcopy(config)           # later changes to the script's object do not reach the model
        self._require_input(what)
        if any(not n.implicit for n in self.dense_nodes):
            raise ValueError(f"{what}: add embedding collections before dense layers")
        for bottom in config.bottom_names:
            if bottom not in self.sparse_inputs:
                raise ValueError(f"{what}: bottom_name '{bottom}' is not a sparse input; sparse inputs are: "
                                 f"{', '.join(self.sparse_inputs) or '(none)'}")
        hotness = {p.top_name: p.max_nnz for p in self.input.data_reader_sparse_param_array}
        shapes = config.output_shapes(self.batch_size, hotness)
        for name in shapes:
            self._require_new(name, what)
        self.collections.append(config)
        self.shapes.update(shapes)

    def add_dense(self, params: DenseLayer) -> DenseNode:
        self._require_input(f"{params.layer_type} '{params.name}'")
        if self.analysed:
            raise ValueError(f"Model.add({params.layer_type} '{params.name}'): the graph was already analysed by "
                             "summary(), graph_to_json() or compile(); add every layer before calling those")
        layer = layer_class(params.layer_type)(params)
        for name in params.bottom_names:
            if name not in self.shapes:
                hint = " (sparse inputs feed SparseEmbedding layers, not dense layers)" \
                    if name in self.sparse_inputs else ""
                raise ValueError(f"{layer.describe()}: bottom tensor '{name}' does not exist{hint}; "
                                 f"tensors that exist: {', '.join(self.shapes)}")
        for name in params.top_names:
            self._require_new(name, layer.describe())
        in_shapes = [self.shapes[name] for name in params.bottom_names]
        out_shapes = layer.output_shapes(in_shapes)
        node = DenseNode(params, layer, list(params.bottom_names), list(params.top_names))
        self.dense_nodes.append(node)
        for name, shape in zip(params.top_names, out_shapes):
            self.shapes[name] = tuple(shape)
        return node

    def _require_input(self, what: str) -> None:
        if self.input is None:
            raise ValueError(f"Model.add({what}): add the hugectr.Input first")

    def _require_new(self, name: str, what: str) -> None:
        if name in self.shapes or name in self.sparse_inputs:
            raise ValueError(f"{what}: top tensor '{name}' already exists; every tensor name must be new")

    # -- compile-time analysis --------------------------------------------------------------
    def analyse(self) -> list[DenseNode]:
        """Insert a Slice before the first reader of every tensor read by several dense layers.

        Returns the new node list (the graph's own list is replaced by it).
        """
        consumers: dict[str, int] = {}
        for node in self.dense_nodes:
            for name in node.bottoms:
                consumers[name] = consumers.get(name, 0) + 1
        shared = {name: count for name, count in consumers.items() if count > 1}
        for name, count in shared.items():
            if count > MAX_CONSUMERS:
                raise ValueError(f"tensor '{name}' is read by {count} dense layers; HugeCTR allows at most "
                                 f"{MAX_CONSUMERS}: add an explicit Slice or reuse fewer times")
        next_copy = {name: 0 for name in shared}
        nodes: list[DenseNode] = []
        for node in self.dense_nodes:
            for name in dict.fromkeys(node.bottoms):
                if name in shared and next_copy[name] == 0:
                    nodes.append(self._implicit_slice(name, shared[name]))
            rewired = []
            for name in node.bottoms:
                if name in shared:
                    rewired.append(f"{name}_slice{next_copy[name]}")
                    next_copy[name] += 1
                else:
                    rewired.append(name)
            if rewired != node.bottoms:
                node.bottoms = rewired
                node.params.bottom_names = list(rewired)
            nodes.append(node)
        self.dense_nodes = nodes
        self.analysed = True
        return nodes

    def _implicit_slice(self, name: str, copies: int) -> DenseNode:
        width = self.shapes[name][-1]
        tops = [f"{name}_slice{i}" for i in range(copies)]
        params = DenseLayer(layer_type=Layer_t.Slice, bottom_names=[name], top_names=tops,
                            ranges=[(0, width)] * copies)
        layer = layer_class(Layer_t.Slice)(params)
        for top, shape in zip(tops, layer.output_shapes([self.shapes[name]])):
            self.shapes[top] = tuple(shape)
        return DenseNode(params, layer, [name], tops, implicit=True)

    # -- queries ----------------------------------------------------------------------------
    def loss_nodes(self) -> list[DenseNode]:
        return [n for n in self.dense_nodes if n.layer.is_loss]
