"""Where each table of an embedding collection lives on several ranks: ``placement(config, world)``.

HugeCTR's ``EmbeddingCollectionConfig.shard(shard_matrix, shard_strategy)`` (reference 1.4) names,
per GPU, the tables it holds, and per table ``"mp"`` (model parallel) or ``"dp"`` (data parallel):

* ``"dp"``: a full replica on every rank (the config check already requires it on every GPU);
* ``"mp"`` on one GPU: the whole table lives on that rank (table-wise model parallel).

Not supported here, refused with an error naming the table (HugeCTR supports them):
``"mp"`` tables listed on several GPUs (HugeCTR then spreads their rows over those GPUs) and
column-wise splits ``(name, k)`` with ``k > 1``.

Without a shard plan HugeCTR has no working default (``shard`` is what fills its shard matrix and
lookup ids; every HugeCTR sample calls it). Here every table is then data parallel: it keeps the
single-device semantics whatever the number of ranks, at the cost of one replica per rank.
"""

from __future__ import annotations

from typing import NamedTuple

from ..params.embedding_collection import EmbeddingCollectionConfig


class Placement(NamedTuple):
    """One table's place: ``"dp"`` (every rank) or ``"mp"`` (only ``holders``)."""

    strategy: str
    holders: tuple[int, ...]

    @property
    def key(self) -> tuple:
        return (self.strategy, self.holders)


def placement(config: EmbeddingCollectionConfig, world: int, what: str) -> dict[str, Placement]:
    """``{table name: Placement}`` for ``world`` ranks; ValueError for plans this package cannot run.

    >>> from hugectr.params.embedding_collection import EmbeddingTableConfig
    >>> c = EmbeddingCollectionConfig()
    >>> c.embedding_lookup(EmbeddingTableConfig("a", 10, 4), "x", "ea", "sum")
    >>> c.embedding_lookup(EmbeddingTableConfig("b", 10, 4), "y", "eb", "sum")
    >>> c.shard([["a", "b"], ["b"]], [("mp", ["a"]), ("dp", ["b"])])
    >>> placement(c, 2, "test")
    {'a': Placement(strategy='mp', holders=(0,)), 'b': Placement(strategy='dp', holders=(0, 1))}
    """
    everyone = tuple(range(world))
    if config.shard_strategy is None:
        return {name: Placement("dp", everyone) for name in config.table_names}
    result = {}
    for strategy, items in config.shard_strategy:
        for item in items:
            name = item if isinstance(item, str) else item[0]
            if not isinstance(item, str) and item[1] > 1 and world > 1:
                raise ValueError(f"{what}: table '{name}' asks for a column-wise split in {item[1]} "
                                 "(shard_strategy (name, k) with k > 1); this package shards whole tables only: "
                                 "give the table by name")
            if strategy == "dp":
                result[name] = Placement("dp", everyone)
                continue
            holders = tuple(gpu for gpu, names in enumerate(config.shard_matrix) if name in names)
            if len(holders) > 1 and world > 1:
                raise ValueError(f"{what}: model-parallel table '{name}' is on GPUs {list(holders)} of shard_matrix; "
                                 "HugeCTR spreads such a table's rows over those GPUs, which this package does "
                                 "not do: list each 'mp' table on exactly one GPU, or make it 'dp'")
            result[name] = Placement("mp", holders[:1])
    return result
