"""``EmbeddingTableConfig`` and ``EmbeddingCollectionConfig``: HugeCTR's embedding collection ("3G embedding").

A collection holds tables (static: ``max_vocabulary_size > 0``, keys in ``[0, vocab)``; dynamic:
``-1``, a hash table that grows) and lookups (a one-slot sparse input looked up in a table and
combined by ``sum`` / ``average`` / ``concat``). Two output forms, as HugeCTR's:

* single form, one call per lookup: a feature-major output ``top_name`` of shape ``(B, 1, ev)``
  (``(B, 1, hotness * ev)`` for ``concat``);
* grouped form, one call with lists: one batch-major output ``top_name`` of shape ``(B, sum of the
  lookups' widths)``; it must be the collection's only ``embedding_lookup`` call.

``shard`` records a placement plan (tables per GPU, ``"mp"`` / ``"dp"`` groups, compression); it is
checked here and applies once the collection runs over several GPUs.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from .._checks import bind_arguments, require_bool, require_int, require_str
from ..enums import CommunicationStrategy, CompressionStrategy, coerce
from .optimizer import OptParamsPy

COMBINERS = ("sum", "average", "concat")
PLACEMENTS = ("mp", "dp")
DYNAMIC = -1


class EmbeddingTableConfig:
    """One table: ``name``, ``max_vocabulary_size`` (-1: dynamic), ``ev_size``, optimizer, initializer.

    ``opt_params_or_empty``: an ``OptParamsPy`` (``hugectr.CreateOptimizer``) or None for the
    model's optimizer. ``init_param_or_empty``: None for HugeCTR's default (static tables
    U(+-sqrt(1/vocab)), dynamic ones U(-0.05, 0.05)) or a number b for U(-b, b) (HugeCTR's Python
    module builds no ``InitParams``; the number is this package's stand-in for its uniform one).

    >>> t = EmbeddingTableConfig("t0", 1000, 16)
    >>> t.name, t.max_vocabulary_size, t.ev_size, t.is_dynamic
    ('t0', 1000, 16, False)
    """

    _NAMES = ["name", "max_vocabulary_size", "ev_size", "opt_params_or_empty", "init_param_or_empty"]

    def __init__(self, *args, **kwargs):
        owner = "EmbeddingTableConfig"
        if "opt_params" in kwargs:          # the documentation's name for the fourth argument
            kwargs["opt_params_or_empty"] = kwargs.pop("opt_params")
        b = bind_arguments(owner, self._NAMES, args, kwargs,
                           {"opt_params_or_empty": None, "init_param_or_empty": None})
        self.name = require_str(owner, "name", b["name"], allow_empty=False)
        owner = f"EmbeddingTableConfig '{self.name}'"
        self.max_vocabulary_size = require_int(owner, "max_vocabulary_size", b["max_vocabulary_size"])
        if self.max_vocabulary_size == 0 or self.max_vocabulary_size < DYNAMIC:
            raise ValueError(f"{owner}: max_vocabulary_size must be > 0 (a static table of keys 0..size-1) or -1 "
                             f"(a dynamic hash table), got {self.max_vocabulary_size}")
        self.ev_size = require_int(owner, "ev_size", b["ev_size"], minimum=1)
        optimizer = b["opt_params_or_empty"]
        if optimizer is not None and not isinstance(optimizer, OptParamsPy):
            raise TypeError(f"{owner}: opt_params_or_empty must be None (the model's optimizer) or come from "
                            f"hugectr.CreateOptimizer, got {optimizer!r}")
        self.opt_params = optimizer
        bound = b["init_param_or_empty"]
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, numbers.Real) or bound <= 0):
            raise TypeError(f"{owner}: init_param_or_empty must be None (HugeCTR's default initializer) or a "
                            f"positive number b for U(-b, b), got {bound!r}")
        self.init_bound = None if bound is None else float(bound)

    @property
    def is_dynamic(self) -> bool:
        return self.max_vocabulary_size == DYNAMIC

    def same_table(self, other: EmbeddingTableConfig) -> bool:
        return (self.max_vocabulary_size, self.ev_size, self.opt_params, self.init_bound) == \
            (other.max_vocabulary_size, other.ev_size, other.opt_params, other.init_bound)

    def __repr__(self) -> str:
        return f"EmbeddingTableConfig({self.name!r}, {self.max_vocabulary_size}, {self.ev_size})"


@dataclass
class Lookup:
    """One lookup: the keys of sparse input ``bottom`` in table ``table`` combined by ``combiner``.

    ``top`` is the lookup's own output name (for the grouped form an internal name, HugeCTR's
    ``top_name + index``; the graph sees only the batch-major output).
    """

    table: str
    bottom: str
    top: str
    combiner: str


class EmbeddingCollectionConfig:
    """Tables and lookups of one embedding collection; ``Model.add`` it after the ``Input``.

    >>> t0, t1 = EmbeddingTableConfig("t0", 10, 4), EmbeddingTableConfig("t1", -1, 8)
    >>> ebc = EmbeddingCollectionConfig()
    >>> ebc.embedding_lookup(t0, "data0", "emb0", "sum")
    >>> ebc.embedding_lookup(t1, "data1", "emb1", "concat")
    >>> ebc.embedding_lookup(t0, "data2", "emb2", "average")
    >>> ebc.table_names, ebc.output_shapes(32, {"data0": 1, "data1": 3, "data2": 2})
    (['t0', 't1'], {'emb0': (32, 1, 4), 'emb1': (32, 1, 24), 'emb2': (32, 1, 4)})
    """

    def __init__(self, *args, **kwargs):
        owner = "EmbeddingCollectionConfig"
        b = bind_arguments(owner, ["use_exclusive_keys", "comm_strategy"], args, kwargs,
                           {"use_exclusive_keys": False, "comm_strategy": CommunicationStrategy.Uniform})
        self.use_exclusive_keys = require_bool(owner, "use_exclusive_keys", b["use_exclusive_keys"])
        self.comm_strategy = coerce(CommunicationStrategy, b["comm_strategy"], f"{owner}: comm_strategy")
        self.tables: dict[str, EmbeddingTableConfig] = {}     # first-use order = HugeCTR's table ids
        self.lookups: list[Lookup] = []
        self.batch_major_output: str | None = None            # set by the grouped form
        self.shard_matrix: list[list[str]] | None = None
        self.shard_strategy: list[tuple[str, list]] | None = None
        self.compression_strategy: dict = {}

    @property
    def table_names(self) -> list[str]:
        return list(self.tables)

    @property
    def bottom_names(self) -> list[str]:
        return [lookup.bottom for lookup in self.lookups]

    # -- lookups ------------------------------------------------------------------------------
    def embedding_lookup(self, *args, **kwargs) -> None:
        """Add a lookup (single form) or, given lists, all of them with one batch-major output."""
        b = bind_arguments("EmbeddingCollectionConfig.embedding_lookup",
                           ["table_config", "bottom_name", "top_name", "combiner"], args, kwargs, {})
        if isinstance(b["table_config"], (list, tuple)):
            self._grouped_lookup(b["table_config"], b["bottom_name"], b["top_name"], b["combiner"])
            return
        if self.batch_major_output is not None:
            raise ValueError(f"EmbeddingCollectionConfig.embedding_lookup: the grouped (list) form already made the "
                             f"batch-major output '{self.batch_major_output}'; it must be the collection's only "
                             "embedding_lookup call (use a second collection for more lookups)")
        self._add_lookup(b["table_config"], b["bottom_name"], b["top_name"], b["combiner"])

    def _grouped_lookup(self, tables, bottoms, top, combiners) -> None:
        owner = "EmbeddingCollectionConfig.embedding_lookup (grouped form)"
        if self.lookups:
            raise ValueError(f"{owner}: must be the collection's first and only embedding_lookup call; "
                             f"{len(self.lookups)} lookup(s) were added before")
        if not isinstance(bottoms, (list, tuple)) or not isinstance(combiners, (list, tuple)):
            raise TypeError(f"{owner}: with a list of table configs, bottom_name and combiner must be lists too "
                            f"(one per table), got {bottoms!r} and {combiners!r}")
        if not (len(tables) == len(bottoms) == len(combiners)) or not tables:
            raise ValueError(f"{owner}: table_config ({len(tables)}), bottom_name ({len(bottoms)}) and combiner "
                             f"({len(combiners)}) must have the same, non-zero length")
        top = require_str(owner, "top_name", top, allow_empty=False)
        for index, (table, bottom, combiner) in enumerate(zip(tables, bottoms, combiners)):
            self._add_lookup(table, bottom, f"{top}{index}", combiner)
        self.batch_major_output = top

    def _add_lookup(self, table, bottom, top, combiner) -> None:
        owner = "EmbeddingCollectionConfig.embedding_lookup"
        if not isinstance(table, EmbeddingTableConfig):
            raise TypeError(f"{owner}: table_config must be a hugectr.EmbeddingTableConfig (or a list of them), "
                            f"got {type(table).__name__}")
        bottom = require_str(owner, "bottom_name", bottom, allow_empty=False)
        top = require_str(owner, "top_name", top, allow_empty=False)
        combiner = require_str(owner, "combiner", combiner)
        if combiner not in COMBINERS:
            hint = " ('mean' is spelled 'average' in the embedding collection)" if combiner == "mean" else ""
            raise ValueError(f"{owner}: lookup '{top}': combiner must be one of {', '.join(COMBINERS)}, "
                             f"got {combiner!r}{hint}")
        known = self.tables.get(table.name)
        if known is not None and known is not table and not known.same_table(table):
            raise ValueError(f"{owner}: two different tables are named '{table.name}' ({known!r} and {table!r}); "
                             "table names must be unique")
        if any(lookup.top == top for lookup in self.lookups):
            raise ValueError(f"{owner}: output '{top}' is already the output of another lookup; give each a new name")
        self.tables.setdefault(table.name, table)
        self.lookups.append(Lookup(table.name, bottom, top, combiner))

    def output_shapes(self, batch_size: int, hotness: dict[str, int]) -> dict[str, tuple[int, ...]]:
        """The graph tensors this collection makes: ``top -> shape``; ``hotness`` = max keys per input."""
        widths = []
        for lookup in self.lookups:
            ev = self.tables[lookup.table].ev_size
            widths.append(ev * hotness[lookup.bottom] if lookup.combiner == "concat" else ev)
        if self.batch_major_output is not None:
            return {self.batch_major_output: (batch_size, sum(widths))}
        return {lookup.top: (batch_size, 1, width) for lookup, width in zip(self.lookups, widths)}

    # -- placement ----------------------------------------------------------------------------
    def shard(self, *args, **kwargs) -> None:
        """Record the placement plan: ``shard_matrix`` (table names per GPU), ``shard_strategy``
        (``[("mp" | "dp", [name or (name, column_splits), ...]), ...]``) and ``compression_strategy``
        (``{CompressionStrategy: [names]}``). Checked against the tables now, applied over several GPUs."""
        owner = "EmbeddingCollectionConfig.shard"
        b = bind_arguments(owner, ["shard_matrix", "shard_strategy", "compression_strategy"], args, kwargs,
                           {"compression_strategy": dict})
        matrix = self._check_shard_matrix(owner, b["shard_matrix"])
        strategy = self._check_shard_strategy(owner, b["shard_strategy"], matrix)
        compression = b["compression_strategy"]
        if not isinstance(compression, dict):
            raise TypeError(f"{owner}: compression_strategy must be a dict {{CompressionStrategy: [table names]}}, "
                            f"got {compression!r}")
        checked = {}
        for kind, names in compression.items():
            kind = coerce(CompressionStrategy, kind, f"{owner}: compression_strategy key")
            checked[kind] = [self._known_table(owner, name) for name in _str_list(owner, "compression_strategy", names)]
        self.shard_matrix, self.shard_strategy, self.compression_strategy = matrix, strategy, checked

    def _known_table(self, owner: str, name: str) -> str:
        if name not in self.tables:
            raise ValueError(f"{owner}: no table named '{name}' in this collection; tables: "
                             f"{', '.join(self.tables) or '(none: call embedding_lookup first)'}")
        return name

    def _check_shard_matrix(self, owner: str, matrix) -> list[list[str]]:
        if not isinstance(matrix, (list, tuple)) or not matrix:
            raise TypeError(f"{owner}: shard_matrix must be a non-empty list (one entry per GPU) of lists of table "
                            f"names, got {matrix!r}")
        checked = [[self._known_table(owner, n) for n in _str_list(owner, f"shard_matrix[{gpu}]", names)]
                   for gpu, names in enumerate(matrix)]
        placed = {name for names in checked for name in names}
        missing = [name for name in self.tables if name not in placed]
        if missing:
            raise ValueError(f"{owner}: table(s) {', '.join(map(repr, missing))} are on no GPU of shard_matrix; "
                             "every table must be placed on at least one GPU")
        return checked

    def _check_shard_strategy(self, owner: str, strategy, matrix) -> list[tuple[str, list]]:
        if not isinstance(strategy, (list, tuple)):
            raise TypeError(f"{owner}: shard_strategy must be a list of ('mp' | 'dp', [table names]) tuples, "
                            f"got {strategy!r}")
        checked, grouped = [], {}
        for entry in strategy:
            if not isinstance(entry, (list, tuple)) or len(entry) != 2 or entry[0] not in PLACEMENTS \
                    or not isinstance(entry[1], (list, tuple)):
                raise ValueError(f"{owner}: each shard_strategy entry is ('mp' or 'dp', [table names]), got {entry!r}")
            names = [self._strategy_item(owner, item) for item in entry[1]]
            for name, _ in names:
                if name in grouped:
                    raise ValueError(f"{owner}: table '{name}' is in two shard_strategy groups")
                grouped[name] = entry[0]
            checked.append((entry[0], [name if splits is None else (name, splits) for name, splits in names]))
        missing = [name for name in self.tables if name not in grouped]
        if missing:
            raise ValueError(f"{owner}: table(s) {', '.join(map(repr, missing))} are in no shard_strategy group; "
                             "give each table 'mp' (model parallel) or 'dp' (data parallel)")
        for name, placement in grouped.items():
            if placement == "dp" and not all(name in names for names in matrix):
                raise ValueError(f"{owner}: data-parallel ('dp') table '{name}' must be on every GPU of shard_matrix")
        return checked

    def _strategy_item(self, owner: str, item) -> tuple[str, int | None]:
        if isinstance(item, str):
            return self._known_table(owner, item), None
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
            return self._known_table(owner, item[0]), require_int(owner, f"column splits of '{item[0]}'", item[1],
                                                                  minimum=1)
        raise ValueError(f"{owner}: a shard_strategy table is a name or (name, column_splits), got {item!r}")

    def __repr__(self) -> str:
        return f"EmbeddingCollectionConfig(tables={self.table_names}, lookups={len(self.lookups)})"


def _str_list(owner: str, what: str, value) -> list[str]:
    if not isinstance(value, (list, tuple)) or any(not isinstance(v, str) for v in value):
        raise TypeError(f"{owner}: {what} must be a list of table names, got {value!r}")
    return list(value)
