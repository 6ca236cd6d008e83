"""``RoutedGroup``: one table group of an embedding collection used by every rank, held by some.

A group (``hugectr.embedding.collection_tables``) is held by its ``holders``: every rank for a
data-parallel ("dp") group, one rank for a model-parallel ("mp") one. Each rank joins the keys of
its part of the global batch into one CSR as on one device (``JoinedKeys``: this rank's bags,
lookup after lookup); then, with ``hugectr.distributed.exchange``'s primitives:

1. lookup: the bag sizes, each bag's lookup index and the keys go to every holder (two
   all-to-alls after one count exchange: the lookup's one host sync). A holder joins what it
   received in rank order, ``(bags of rank 0, bags of rank 1, ...)``, and pools it with the group's
   own ``lookup``.
2. "mp": the pooled rows go back to their ranks (one all-to-all). "dp": every rank pooled the
   whole global batch on its replica, so it keeps its own rows; nothing more is sent.
3. update: each rank's ``(bags, ev)`` gradient goes to the holders the same way (for "dp" an
   all-gather), and each holder applies the group's ``update`` to the global batch's gradient: a
   dp replica gets the same keys, gradients and order on every rank, so the replicas stay equal
   bit for bit; an mp table gets the update one device would make with the global batch (up to
   the summation order of a row's duplicate keys).

The gradient arriving here is the global objective's gradient for this rank's samples (each
rank's loss is weighted by its share of the global batch), so holders simply apply the sum.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..embedding.collection_tables import JoinedKeys, TableGroup
from .exchange import all_to_all_rows, any_rank, exchange_counts, group_world


class _Route(NamedTuple):
    """The split sizes of the last training lookup, for ``update``."""

    bag_send: list[int]            # bags this rank sent to each rank
    bag_recv: list[int]            # bags each rank sent here
    num_bags: int                  # this rank's bags


class RoutedGroup:
    """A table group over the ranks of ``process_group``; ``group`` is None on ranks that do not hold it.

    ``table_of_lookup``: (collection lookups,) int64, the group-local table index of each lookup's
    table (-1 for lookups of other groups): a holder rebuilds ``bag_table`` from received lookup ids.
    """

    def __init__(self, group: TableGroup | None, holders: tuple[int, ...], table_of_lookup: torch.Tensor, *,
                 ev: int, name: str, device, process_group=None) -> None:
        self.group, self.holders, self.ev, self.name = group, holders, ev, name
        self.device = torch.device(device)
        self.process_group = process_group
        self.rank, self.world = group_world(process_group)
        self.replicated = len(holders) == self.world      # "dp": every rank pools the global batch
        self.holds = self.rank in holders
        if self.holds != (group is not None):
            raise RuntimeError(f"embedding collection group '{name}': rank {self.rank} holds it: {self.holds}, "
                               f"storage given: {group is not None}")
        self.table_of_lookup = table_of_lookup.to(self.device)
        is_holder = torch.zeros(self.world, dtype=torch.int64)
        is_holder[list(holders)] = 1
        self.is_holder = is_holder.to(self.device)                # (world,) built once: no copy per step
        self._saved: _Route | None = None

    # -- forward ------------------------------------------------------------------------------
    @torch.no_grad()
    def lookup(self, keys: JoinedKeys, training: bool) -> torch.Tensor:
        """(this rank's bags, ev) fp32 sums; every rank calls it together."""
        if self.replicated and not training:
            # evaluation reads a replica as it is (no insert, no update): this rank's keys suffice
            return self._raise_together(*self._guarded(self.group.lookup, keys, False, keys.num_bags))
        sizes = _bag_sizes(keys)                                                   # (bags,)
        bag_info = torch.stack([sizes, keys.bag_lookup], dim=1)                    # (bags, 2)
        counts = torch.tensor([keys.values.numel(), keys.num_bags], dtype=torch.int64, device=self.device)
        counts = counts[None, :] * self.is_holder[:, None]                         # (world, 2): holders only
        send, recv = exchange_counts(counts, self.process_group)
        copies = len(self.holders)
        values = keys.values if copies == 1 else keys.values.repeat(copies)        # one copy per holder
        bag_info = bag_info if copies == 1 else bag_info.repeat(copies, 1)
        got_values = all_to_all_rows(values, send[0], recv[0], self.process_group)  # (keys of all senders,)
        got_info = all_to_all_rows(bag_info, send[1], recv[1], self.process_group)  # (bags of all senders, 2)
        pooled = self._raise_together(*self._pool(got_values, got_info, sum(recv[1]), training))   # (bags in, ev)
        if training:
            self._saved = _Route(send[1], recv[1], keys.num_bags)
        if self.replicated:
            start = sum(recv[1][:self.rank])
            return pooled[start:start + keys.num_bags]
        return all_to_all_rows(pooled, recv[1], send[1], self.process_group)      # (this rank's bags, ev)

    def _pool(self, values: torch.Tensor, info: torch.Tensor, num_bags: int, training: bool):
        """``(pooled, error)``: the held group pools what it received; a non-holder received nothing."""
        if self.group is None:
            return torch.zeros(0, self.ev, dtype=torch.float32, device=self.device), None
        offsets = torch.cat([info.new_zeros(1), torch.cumsum(info[:, 0], 0)])     # (bags + 1,)
        lookups = info[:, 1]
        joined = JoinedKeys(values, offsets, None, num_bags, self.table_of_lookup.index_select(0, lookups), lookups)
        return self._guarded(self.group.lookup, joined, training, num_bags)

    def _guarded(self, lookup, keys: JoinedKeys, training: bool, num_bags: int):
        """``(pooled, error)``: a bad key raises at once on the CPU; hold it so every rank can raise together."""
        try:
            return lookup(keys, training), None
        except ValueError as error:
            return torch.zeros(num_bags, self.ev, dtype=torch.float32, device=self.device), error

    def _raise_together(self, pooled: torch.Tensor, error: Exception | None) -> torch.Tensor:
        """``pooled``, or the error on every rank when any rank's CPU check failed (none waits forever on the
        next collective). GPU checks never raise here: ``check_errors`` reports them later, collectively."""
        if self.device.type == "cpu" and any_rank(error is not None, self.device, self.process_group):
            raise error or RuntimeError(f"embedding collection group '{self.name}': another rank's lookup failed "
                                        "(its error names the cause)")
        return pooled

    # -- backward -----------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, grad: torch.Tensor | None, lr: float, scaler: float) -> None:
        """Send ``grad`` (this rank's bags, ev) to the holders, which apply the optimizer; every rank calls it."""
        if self._saved is None:
            raise RuntimeError(f"embedding collection group '{self.name}': update() needs a training lookup first")
        route, self._saved = self._saved, None
        if grad is None:
            grad = torch.zeros(route.num_bags, self.ev, dtype=torch.float32, device=self.device)
        grad = grad.float()
        copies = len(self.holders)
        outgoing = grad if copies == 1 else grad.repeat(copies, 1)                 # (copies * bags, ev)
        received = all_to_all_rows(outgoing, route.bag_send, route.bag_recv, self.process_group)
        if self.group is not None:
            self.group.update(received, lr, scaler)                                # the global batch's gradient


def _bag_sizes(keys: JoinedKeys) -> torch.Tensor:
    """(bags,) int64 key count of each bag."""
    if keys.offsets is None:
        return torch.full((keys.num_bags,), keys.hotness, dtype=torch.int64, device=keys.values.device)
    return keys.offsets[1:] - keys.offsets[:-1]
