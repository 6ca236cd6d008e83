"""HugeCTR's graph JSON (``Model.graph_to_json`` / ``Model.construct_from_json``), both directions.

Layout (reference section 3.10): ``{"layers": [Data, embeddings..., dense layers...], "model_name": ...}``,
keys sorted alphabetically and indented by 2 (nlohmann's ``std::setw(2)`` of a ``std::map``), float
fields stored as float32 and printed as the shortest double that reads back to it (0.9 ->
0.8999999761581421), ``model_name`` only when non-empty, no trailing newline.

Writing follows HugeCTR's writer: the graph is analysed first, so the implicit Slices that hand a
shared tensor's readers their own copies (``<t>_slice<i>``) appear explicitly; the multi-label Slice
(bottom ``combined_multi_label``) is left out because the Input recreates it. Information HugeCTR's
writer drops is kept in extra keys its reader ignores (``label_weights`` here; MultiCross
``projection_dim`` and Reshape ``shape`` in those layers' ``to_json``).

Reading follows HugeCTR's ``construct_from_json``: the first layer must be the Data layer, the
embedding layers follow it, then the dense layers (only when asked). Implicit Slices are recognised
and dropped, their readers rewired to the shared tensor, so the model that re-adds the layers inserts
them again exactly as before. Legacy configs (``solver`` / ``optimizer`` sections, Data layers with
``source`` / ``eval_source`` / ``check``, ``name`` keys) read the same way: unused keys are ignored.
"""

from __future__ import annotations

import copy
import json
import math
import os

import numpy as np

from ..embedding.capacity import max_vocabulary_size_global
from ..enums import Embedding_t, Layer_t, Optimizer_t, Update_t  # noqa: F401 - Update_t: doctests
from ..graph import MULTI_LABEL_TENSOR, DenseNode, Graph
from ..layers.base import layer_class, registered_types
from ..params import (CreateOptimizer, DataReaderSparseParam, DenseLayer, Input, OptParamsPy, Solver,
                      SparseEmbedding)
from . import fs
from .files import atomic_write_bytes

DATA_LAYER = "Data"
# Keys every dense-layer entry has; the rest belong to the layer's ``json_to_keywords``.
_RESERVED_KEYS = ("type", "bottom", "top", "name")
# Per optimizer: the hyper-parameter section and its keys (JSON keys = ``OptParamsPy`` field names).
_OPTIMIZER_HPARAMS = {
    Optimizer_t.Adam: ("adam_hparam", ("beta1", "beta2", "epsilon")),
    Optimizer_t.AdaGrad: ("adagrad_hparam", ("initial_accu_value", "epsilon")),
    Optimizer_t.MomentumSGD: ("momentum_sgd_hparam", ("momentum_factor",)),
    Optimizer_t.Nesterov: ("nesterov_hparam", ("momentum_factor",)),
    Optimizer_t.SGD: ("sgd_hparam", ("atomic_update",)),
    Optimizer_t.Ftrl: ("ftrl_hparam", ("beta", "lambda1", "lambda2")),
}
# JSON keys that name the same field: HugeCTR writes PReLU_Dice's alpha as ``alpha`` but reads
# ``elu_alpha``; we accept both and hand the layer class both spellings.
_FIELD_ALIASES = {Layer_t.PReLU_Dice: ("prelu_dice_param", ("alpha", "elu_alpha"))}


# -- float formatting -------------------------------------------------------------------------
def float32_json(value):
    """``value`` with every float rounded to float32 (HugeCTR's field type), as nlohmann prints it.

    Python's ``repr`` of the rounded double is the shortest string that reads back to it, which is
    what nlohmann writes; non-finite floats become ``null`` as there. Booleans and ints are kept.

    >>> float32_json({"rate": 0.9, "eps": 1e-7, "n": 3, "ok": True})
    {'rate': 0.8999999761581421, 'eps': 1.0000000116860974e-07, 'n': 3, 'ok': True}
    """
    if isinstance(value, float):
        return float(np.float32(value)) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: float32_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [float32_json(item) for item in value]
    return value


def dumps_graph_json(config: dict) -> str:
    """The text HugeCTR writes for ``config``: sorted keys, indent 2, float32 floats, no final newline.

    >>> print(dumps_graph_json({"layers": [{"type": "Dropout", "rate": 0.5}], "model_name": "m"}))
    {
      "layers": [
        {
          "rate": 0.5,
          "type": "Dropout"
        }
      ],
      "model_name": "m"
    }
    """
    return json.dumps(float32_json(config), indent=2, sort_keys=True, ensure_ascii=False)


def write_graph_json(path: str | os.PathLike, config: dict, data_source_params=None) -> None:
    """Write ``config`` to ``path`` as HugeCTR formats it, atomically (temporary file + rename, or one
    whole object on remote storage: ``hugectr.io.fs``)."""
    atomic_write_bytes(path, dumps_graph_json(config).encode("utf-8"), data_source_params)


# -- writing ----------------------------------------------------------------------------------
def graph_to_json_dict(graph: Graph, solver: Solver, model_opt_params: OptParamsPy,
                       embedding_capacities: dict[str, int] | None = None) -> dict:
    """HugeCTR's graph JSON of ``graph`` as a dict (the file is ``write_graph_json`` of it).

    ``embedding_capacities`` maps embedding names to ``max_vocabulary_size_global``; missing ones are
    computed with HugeCTR's formula over ``solver.num_gpus``. Embeddings without an optimizer of their
    own write ``model_opt_params``. Like HugeCTR, this analyses the graph first (inserting the
    implicit Slices into ``graph``; analysing again later is a no-op).
    """
    if graph.input is None:
        raise ValueError("graph_to_json: the model has no Input yet; add the Input, embeddings and layers first")
    graph.analyse()
    capacities = dict(embedding_capacities or {})
    layers = [_data_layer_json(graph.input)]
    for emb in graph.embeddings:
        optimizer = emb.optimizer or model_opt_params
        capacity = capacities.get(emb.sparse_embedding_name)
        if capacity is None:
            capacity = max_vocabulary_size_global(emb, optimizer, solver.num_gpus)
        layers.append(_embedding_json(emb, optimizer, capacity))
    layers += [_dense_json(node) for node in graph.dense_nodes if node.bottoms != [MULTI_LABEL_TENSOR]]
    config: dict = {"layers": layers}
    if solver.model_name:
        config["model_name"] = solver.model_name
    return float32_json(config)


def _one_or_list(names: list[str]):
    """HugeCTR writes a single tensor name as a string, several as a list."""
    return names[0] if len(names) == 1 else list(names)


def _data_layer_json(inp: Input) -> dict:
    multi = len(inp.label_names) > 1
    label = {"top": _one_or_list(inp.label_names),
             "label_dim": list(inp.label_dims) if multi else inp.label_dims[0]}
    if any(weight != 1.0 for weight in inp.label_weights):
        # Extension: HugeCTR's writer drops label weights (and its reader ignores this key).
        label["label_weights"] = list(inp.label_weights) if multi else inp.label_weights[0]
    sparse = [{"top": p.top_name, "nnz_per_slot": list(p.nnz_per_slot), "is_fixed_length": p.is_fixed_length,
               "slot_num": p.slot_num} for p in inp.data_reader_sparse_param_array]
    return {"type": DATA_LAYER, "label": label, "dense": {"top": inp.dense_name, "dense_dim": inp.dense_dim},
            "sparse": sparse}


def _embedding_json(emb: SparseEmbedding, optimizer: OptParamsPy, capacity: int) -> dict:
    hparam = {"workspace_size_per_gpu_in_mb": emb.workspace_size_per_gpu_in_mb,
              "max_vocabulary_size_global": int(capacity), "embedding_vec_size": emb.embedding_vec_size,
              "combiner": emb.combiner}
    if emb.slot_size_array:
        hparam["slot_size_array"] = list(emb.slot_size_array)
    return {"type": emb.embedding_type.name, "bottom": emb.bottom_name, "top": emb.sparse_embedding_name,
            "sparse_embedding_hparam": hparam, "optimizer": optimizer_json(optimizer)}


def optimizer_json(opt: OptParamsPy) -> dict:
    """An embedding's ``optimizer`` section (floats as float32, as HugeCTR stores them).

    >>> optimizer_json(CreateOptimizer(optimizer_type=Optimizer_t.SGD, update_type=Update_t.Local))
    {'type': 'SGD', 'update_type': 'Local', 'sgd_hparam': {'atomic_update': True}}
    """
    section = {"type": opt.optimizer_type.name, "update_type": opt.update_type.name}
    if opt.optimizer_type in _OPTIMIZER_HPARAMS:   # RMSProp has no section in HugeCTR's writer
        name, fields = _OPTIMIZER_HPARAMS[opt.optimizer_type]
        section[name] = {field: _hparam_value(getattr(opt, field)) for field in fields}
    return section


def _hparam_value(value):
    return value if isinstance(value, bool) else float(np.float32(value))


def _dense_json(node: DenseNode) -> dict:
    entry = {"type": node.params.layer_type.name, "bottom": _one_or_list(node.bottoms),
             "top": _one_or_list(node.tops)}
    fields = node.layer.to_json()
    clash = [key for key in fields if key in entry]
    if clash:
        raise RuntimeError(f"{node.layer.describe()}: to_json wrote reserved keys {clash}")
    entry.update(fields)
    return entry


# -- reading ----------------------------------------------------------------------------------
def layers_from_json(source: str | os.PathLike | dict, include_dense_network: bool, batch_size: int = 1,
                     data_source_params=None) -> tuple[Input, list[SparseEmbedding], list[DenseLayer]]:
    """The ``Input``, ``SparseEmbedding``s and (if asked) ``DenseLayer``s of a graph JSON, in add order.

    ``source`` is a path (local or remote, ``hugectr.io.fs``) or an already parsed dict. Implicit
    Slices are dropped (``Model.add`` + ``compile`` insert them again). The layers are checked on a
    scratch graph of per-GPU batch ``batch_size`` (give the model's: GRU and Gather shapes depend on
    it), so a wrong shape or name is reported here with the layer's index.
    """
    where = _describe_source(source)
    config = _load(source, where, data_source_params)
    layers = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"{where}: expected an object with a non-empty \"layers\" list (HugeCTR's graph JSON)")
    inp = _input_from_json(layers[0], where)
    scratch = Graph(batch_size=batch_size)
    scratch.add_input(inp)
    embeddings, index = [], 1
    while index < len(layers) and _layer_type_name(layers[index], index, where) in Embedding_t.__members__:
        emb = _embedding_from_json(layers[index], _Context(where, index, layers[index]))
        _checked(_Context(where, index, layers[index]), scratch.add_embedding, emb)
        embeddings.append(emb)
        index += 1
    if not include_dense_network:
        return inp, embeddings, []
    contexts = [_Context(where, i, layers[i]) for i in range(index, len(layers))]

    def base_graph() -> Graph:
        graph = Graph(batch_size=batch_size)
        graph.add_input(inp)
        for emb in embeddings:
            graph.add_embedding(emb)
        return graph

    return inp, embeddings, _dense_from_json(contexts, base_graph)


def _describe_source(source) -> str:
    return "graph JSON (dict)" if isinstance(source, dict) else f"graph JSON '{os.fspath(source)}'"


def _load(source, where: str, data_source_params=None):
    if isinstance(source, dict):
        return source
    if not fs.is_file(source, data_source_params):
        raise FileNotFoundError(f"{where}: file does not exist")
    try:
        return json.loads(fs.read_text(source, data_source_params))
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from err


class _Context:
    """Where a layer sits in the file, for error messages: ``graph JSON 'g.json': layer 3 (InnerProduct 'fc1')``."""

    def __init__(self, where: str, index: int, entry):
        self.where, self.index, self.entry = where, index, entry

    def fail(self, message: str) -> ValueError:
        entry = self.entry if isinstance(self.entry, dict) else {}
        top = entry.get("top")
        name = f" '{top if isinstance(top, str) else ','.join(map(str, top or []))}'" if top else ""
        return ValueError(f"{self.where}: layer {self.index} ({entry.get('type', '?')}{name}): {message}")

    def field(self, section: dict, key: str, path: str = ""):
        """``section[key]``, or an error naming the missing field (``path`` = the enclosing section)."""
        if not isinstance(section, dict):
            raise self.fail(f"field '{path}' must be an object, got {section!r}")
        if key not in section:
            raise self.fail(f"missing required field '{path + '.' if path else ''}{key}'")
        return section[key]


def _checked(ctx: _Context, function, *args, **kwargs):
    """Call ``function``; a user-level error it raises is re-raised naming the layer."""
    try:
        return function(*args, **kwargs)
    except KeyError as err:
        raise ctx.fail(f"missing required field '{err.args[0]}'") from err
    except (TypeError, ValueError) as err:
        raise ctx.fail(str(err)) from err


def _layer_type_name(entry, index: int, where: str) -> str:
    ctx = _Context(where, index, entry)
    if not isinstance(entry, dict):
        raise ctx.fail(f"each layer must be an object, got {entry!r}")
    name = ctx.field(entry, "type")
    if not isinstance(name, str):
        raise ctx.fail(f"field 'type' must be a string, got {name!r}")
    return name


def _names(ctx: _Context, key: str) -> list[str]:
    """``bottom`` / ``top``: one name or a list of names."""
    value = ctx.field(ctx.entry, key)
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ctx.fail(f"field '{key}' must be a tensor name or a list of them, got {value!r}")
    return list(names)


def _input_from_json(entry, where: str) -> Input:
    ctx = _Context(where, 0, entry)
    if not isinstance(entry, dict) or entry.get("type") != DATA_LAYER:
        got = entry.get("type") if isinstance(entry, dict) else entry
        raise ValueError(f"{where}: the first layer must be the \"type\": \"Data\" layer, got {got!r}")
    label = ctx.field(entry, "label")
    tops, dims = ctx.field(label, "top", "label"), ctx.field(label, "label_dim", "label")
    weights = label.get("label_weights")
    if isinstance(tops, list):
        if not isinstance(dims, list) or len(dims) != len(tops):
            raise ctx.fail(f"label.top {tops} and label.label_dim {dims} must be lists of the same length")
    else:
        tops, dims = [tops], [dims]
        weights = weights if weights is None or isinstance(weights, list) else [weights]
    dense = ctx.field(entry, "dense")
    sparse = ctx.field(entry, "sparse")
    if not isinstance(sparse, list):
        raise ctx.fail(f"field 'sparse' must be a list, got {sparse!r}")
    params = [_checked(ctx, DataReaderSparseParam, ctx.field(s, "top", f"sparse[{i}]"),
                       ctx.field(s, "nnz_per_slot", f"sparse[{i}]"),
                       _flag(ctx, ctx.field(s, "is_fixed_length", f"sparse[{i}]"), f"sparse[{i}].is_fixed_length"),
                       ctx.field(s, "slot_num", f"sparse[{i}]")) for i, s in enumerate(sparse)]
    keywords = {} if weights is None else {"label_weights": weights}
    return _checked(ctx, Input, label_dims=dims, label_names=tops, dense_dim=ctx.field(dense, "dense_dim", "dense"),
                    dense_name=ctx.field(dense, "top", "dense"), data_reader_sparse_param_array=params, **keywords)


def _flag(ctx: _Context, value, what: str) -> bool:
    """HugeCTR reads ``is_fixed_length`` as an int: true/false and 1/0 both work."""
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise ctx.fail(f"field '{what}' must be true/false (or 1/0), got {value!r}")


def _embedding_from_json(entry: dict, ctx: _Context) -> SparseEmbedding:
    hparam = ctx.field(entry, "sparse_embedding_hparam")
    if not isinstance(hparam, dict) or not ({"workspace_size_per_gpu_in_mb", "slot_size_array"} & set(hparam)):
        raise ctx.fail("sparse_embedding_hparam needs workspace_size_per_gpu_in_mb or slot_size_array")
    combiner = ctx.field(hparam, "combiner", "sparse_embedding_hparam")
    if combiner in (0, 1) and not isinstance(combiner, bool):   # configs before HugeCTR 3 wrote 0 / 1
        combiner = ("sum", "mean")[combiner]
    optimizer = _optimizer_from_json(ctx, entry["optimizer"]) if "optimizer" in entry else None
    return _checked(ctx, SparseEmbedding, embedding_type=entry["type"],
                    workspace_size_per_gpu_in_mb=hparam.get("workspace_size_per_gpu_in_mb", 0),
                    embedding_vec_size=ctx.field(hparam, "embedding_vec_size", "sparse_embedding_hparam"),
                    combiner=combiner, sparse_embedding_name=ctx.field(entry, "top"),
                    bottom_name=ctx.field(entry, "bottom"), slot_size_array=list(hparam.get("slot_size_array", [])),
                    optimizer=optimizer)


def _optimizer_from_json(ctx: _Context, section) -> OptParamsPy:
    kind = ctx.field(section, "type", "optimizer")
    if kind not in Optimizer_t.__members__:
        raise ctx.fail(f"unknown optimizer type {kind!r}; expected one of {', '.join(Optimizer_t.__members__)}")
    kind = Optimizer_t[kind]
    if "update_type" in section or "global_update" not in section:
        update = ctx.field(section, "update_type", "optimizer")
    else:  # configs older than update_type said global_update: true/false
        update = "Global" if section["global_update"] else "Local"
    keywords = {}
    if kind in _OPTIMIZER_HPARAMS:
        name, fields = _OPTIMIZER_HPARAMS[kind]
        hparam = ctx.field(section, name, "optimizer")
        keywords = {field: ctx.field(hparam, field, f"optimizer.{name}") for field in fields}
    return _checked(ctx, CreateOptimizer, optimizer_type=kind, update_type=update, **keywords)


def _dense_from_json(contexts: list[_Context], base_graph) -> list[DenseLayer]:
    """The dense layers, implicit Slices dropped when the graph analysis gives them back exactly.

    A Slice of ``t`` into ``t_slice0 .. t_slice{n-1}`` over its whole width may be HugeCTR's
    implicit one, or one the user wrote under those names: it is dropped (its readers rewired to
    ``t``) only if re-analysing the remaining layers reproduces the file's layers one for one;
    otherwise every Slice is kept as written, as HugeCTR's own reader does.
    """
    for ctx in contexts:
        _layer_type_name(ctx.entry, ctx.index, ctx.where)
    dense, analysed = _read_dense(contexts, base_graph(), drop_implicit=True)
    as_written = [(_dense_layer_type(ctx), _names(ctx, "bottom"), _names(ctx, "top")) for ctx in contexts]
    if analysed != [entry for entry in as_written if entry[1] != [MULTI_LABEL_TENSOR]]:
        dense, _ = _read_dense(contexts, base_graph(), drop_implicit=False)
    return dense


def _read_dense(contexts: list[_Context], scratch: Graph, drop_implicit: bool) -> tuple[list[DenseLayer], list]:
    """Add the layers to ``scratch`` (copies: analysis rewires them); returns them and the analysed graph."""
    aliases: dict[str, str] = {}       # dropped Slice top -> the tensor it copies
    result = []
    for ctx in contexts:
        layer_type = _dense_layer_type(ctx)
        written = _names(ctx, "bottom")
        bottoms, tops = [aliases.get(name, name) for name in written], _names(ctx, "top")
        if layer_type is Layer_t.Slice and written == [MULTI_LABEL_TENSOR]:
            continue                   # the multi-label Input adds this Slice itself
        implicit = layer_type is Layer_t.Slice and _looks_implicit(ctx.entry, written, tops, scratch, aliases)
        if drop_implicit and implicit:
            aliases.update({top: written[0] for top in tops})
            continue
        params = _dense_params(ctx, layer_type, bottoms, tops)
        _checked(ctx, scratch.add_dense, copy.copy(params))
        result.append(params)
    try:
        nodes = scratch.analyse()
    except ValueError as err:
        raise ValueError(f"{contexts[0].where}: {err}") from err
    return result, [(n.params.layer_type, n.bottoms, n.tops) for n in nodes if n.bottoms != [MULTI_LABEL_TENSOR]]


def _dense_layer_type(ctx: _Context) -> Layer_t:
    name = ctx.entry["type"]
    if name in Embedding_t.__members__:
        raise ctx.fail("embedding layers must come right after the Data layer, before every dense layer")
    if name not in Layer_t.__members__:
        known = ", ".join(sorted(t.name for t in registered_types()))
        raise ctx.fail(f"unknown layer type '{name}'; layer types this hugectr implements: {known}")
    return Layer_t[name]


def _looks_implicit(entry: dict, bottoms: list[str], tops: list[str], scratch: Graph, aliases: dict) -> bool:
    """Named and shaped as HugeCTR's graph analysis makes them: ``t`` whole into ``t_slice0 ..``."""
    if len(bottoms) != 1 or len(tops) < 2 or bottoms[0] in aliases or bottoms[0] not in scratch.shapes:
        return False
    tensor, ranges = bottoms[0], entry.get("ranges")
    width = scratch.shapes[tensor][-1]
    return (isinstance(ranges, list) and len(ranges) == len(tops)
            and all(isinstance(r, list) and r == [0, width] for r in ranges)
            and tops == [f"{tensor}_slice{i}" for i in range(len(tops))])


def _dense_params(ctx: _Context, layer_type: Layer_t, bottoms: list[str], tops: list[str]) -> DenseLayer:
    cls = _checked(ctx, layer_class, layer_type)
    fields = {key: value for key, value in ctx.entry.items() if key not in _RESERVED_KEYS}
    keywords = _checked(ctx, cls.json_to_keywords, with_field_aliases(layer_type, fields))
    return _checked(ctx, DenseLayer, layer_type=layer_type, bottom_names=bottoms, top_names=tops, **keywords)


def with_field_aliases(layer_type: Layer_t, fields: dict) -> dict:
    """``fields`` with both spellings of a field HugeCTR writes and reads under different names.

    >>> with_field_aliases(Layer_t.PReLU_Dice, {"prelu_dice_param": {"alpha": 0.5, "eps": 1e-8}})
    {'prelu_dice_param': {'alpha': 0.5, 'elu_alpha': 0.5, 'eps': 1e-08}}
    """
    section, names = _FIELD_ALIASES.get(layer_type, ("", ()))
    inner = fields.get(section)
    present = [name for name in names if isinstance(inner, dict) and name in inner]
    if not present:
        return fields
    return {**fields, section: {**{name: inner[present[0]] for name in names}, **inner}}
