"""Hash-table kernels (find, insert) against their torch references and a plain-Python dict.

CPU: the ``interpreted`` tests run in a child process under Triton's interpreter (small sizes);
``test_kernels_under_triton_interpreter`` starts it. GPU: the same checks, larger, on real kernels.
"""

import random
import warnings

import numpy as np
import pytest
import torch

from hugectr.embedding.hash_table import HashTable, HashTableOverflowError
from hugectr.kernels import dispatch
from hugectr.kernels.hash_find import EMPTY_KEY, HashSlots, hash_find_reference, hash_find_triton
from hugectr.kernels.hash_insert import hash_insert_reference, hash_insert_triton
from hugectr.testing.interpreter import assert_interpreted_tests_pass, interpreted, starts_interpreter_child



@starts_interpreter_child
def test_kernels_under_triton_interpreter():
    assert_interpreted_tests_pass(__file__)


# -- independent references and inputs ----------------------------------------------------------
def dict_insert(rows: dict, keys) -> list:
    """Rows numbered in first-occurrence order, as HugeCTR hands them out."""
    return [rows.setdefault(k, len(rows)) for k in keys]


def random_keys(rng: random.Random, n: int, universe: list) -> torch.Tensor:
    return torch.tensor([rng.choice(universe) for _ in range(n)], dtype=torch.int64)


def key_universe(rng: random.Random, n: int) -> list:
    """Wide and narrow, negative and positive keys, -1 and the extremes next to the sentinel."""
    wide = [rng.randint(-(1 << 63), (1 << 63) - 2) for _ in range(n // 2)]
    return wide + list(range(-(n // 4), n // 4)) + [-1, -(1 << 63), EMPTY_KEY - 1]


def max_displacement(slot_keys: torch.Tensor) -> int:
    """Largest distance of a stored key from its home slot, recomputed from the layout in Python."""
    from hugectr.kernels.hash_find import mix64   # the hash itself is checked in tests/embedding
    mask = slot_keys.numel() - 1
    used = (slot_keys != EMPTY_KEY).nonzero().squeeze(1)
    homes = (mix64(slot_keys[used]) & mask).cpu().numpy()
    return int(((used.cpu().numpy() - homes) & mask).max(initial=0))


def set_mode(monkeypatch, mode: str) -> None:
    monkeypatch.setenv("HUGECTR_KERNELS", mode)


# -- checks shared by the interpreted (small) and GPU (large) tests -----------------------------
def check_find(device, capacity: int, num_queries: int, seed: int, monkeypatch) -> None:
    rng = random.Random(seed)
    universe = key_universe(rng, 3 * capacity)
    set_mode(monkeypatch, "torch")                        # the layout comes from the reference insert
    table, reference = HashTable(capacity, device), {}
    stored = list(dict.fromkeys(universe))[:capacity]     # fill to capacity: long probe runs
    rng.shuffle(stored)
    dict_insert(reference, stored)
    table.insert_or_find(torch.tensor(stored, device=device))
    queries = random_keys(rng, num_queries, universe + [EMPTY_KEY]).to(device)
    expected = [reference.get(k, -1) for k in queries.tolist()]
    for bound in (table.max_probe, table.probe_bound):    # host int and device tensor bounds
        slots = HashSlots(table.slot_keys, table.slot_rows, bound)
        assert hash_find_triton(queries, slots).tolist() == expected
        assert hash_find_reference(queries, slots).tolist() == expected
    empty = HashSlots(torch.full_like(table.slot_keys, EMPTY_KEY), table.slot_rows, 0)
    assert hash_find_triton(queries, empty).tolist() == [-1] * num_queries
    assert hash_find_triton(queries[:0], empty).numel() == 0


def check_insert_kernel(device, num_keys: int, num_slots: int, seed: int, row_dtype=torch.int32) -> None:
    """Distinct keys, some sharing a home slot, CAS-inserted at once: every key findable, layout sound.

    ``row_dtype``: the slots' row type (int32 for tables under 2**31 rows, int64 above); finds give int64.
    """
    gen = torch.Generator().manual_seed(seed)
    keys = torch.unique(torch.randint(-(1 << 62), 1 << 62, (num_keys,), generator=gen))
    keys = keys[torch.randperm(keys.numel(), generator=gen)].to(device)
    rows = torch.randperm(keys.numel(), generator=gen).to(device)
    layouts = {}
    for name, insert in (("triton", hash_insert_triton), ("torch", hash_insert_reference)):
        slots = HashSlots(torch.full((num_slots,), EMPTY_KEY, device=device),
                          torch.full((num_slots,), -1, dtype=row_dtype, device=device),
                          torch.zeros(1, dtype=torch.int64, device=device))
        insert(keys, rows, slots)
        assert int((slots.slot_keys != EMPTY_KEY).sum()) == keys.numel()          # one slot per key
        assert int(slots.max_probe) == max_displacement(slots.slot_keys)          # the true longest run
        assert torch.equal(hash_find_reference(keys, slots), rows)
        assert torch.equal(hash_find_triton(keys, slots), rows)
        layouts[name] = slots
    stored = {name: sorted(zip(s.slot_keys[s.slot_keys != EMPTY_KEY].tolist(), s.slot_rows[s.slot_rows >= 0].tolist()))
              for name, s in layouts.items()}
    assert stored["triton"] == stored["torch"] == sorted(zip(keys.tolist(), rows.tolist()))


def check_table_modes_agree(device, capacity: int, batch: int, seed: int, monkeypatch) -> None:
    """HashTable with Triton vs torch kernels vs a dict: same rows, exports, finds; overflow up to capacity."""
    rng = random.Random(seed)
    universe = key_universe(rng, 2 * capacity)
    tables = {}
    for mode in ("triton", "torch"):
        set_mode(monkeypatch, mode)
        tables[mode] = HashTable(capacity, device, name="emb")
    reference, batches_done = {}, 0
    while len(reference) < capacity and batches_done < 50:
        keys = random_keys(rng, rng.randint(0, batch), universe)
        if len(set(reference) | set(keys.tolist())) > capacity:
            break
        expected = dict_insert(reference, keys.tolist())
        for mode, table in tables.items():
            set_mode(monkeypatch, mode)
            assert table.insert_or_find(keys.to(device)).tolist() == expected, mode
        batches_done += 1
    missing = [k for k in dict.fromkeys(universe) if k not in reference][:capacity - len(reference)]
    expected = dict_insert(reference, missing)                        # now exactly full
    for mode, table in tables.items():
        set_mode(monkeypatch, mode)
        assert table.insert_or_find(torch.tensor(missing, dtype=torch.int64, device=device)).tolist() == expected
    queries = random_keys(rng, batch, universe).to(device)
    for mode, table in tables.items():
        set_mode(monkeypatch, mode)
        assert table.size == len(reference) and table.export().tolist() == list(reference)
        assert table.find(queries).tolist() == [reference.get(k, -1) for k in queries.tolist()]
        check_overflow_changes_nothing(table, device, 1)


def check_overflow_changes_nothing(table: HashTable, device, num_new: int) -> None:
    before = (table.slot_keys.clone(), table.slot_rows.clone(), table.export(), table.probe_bound.clone())
    fresh = torch.arange(num_new, device=device) + (1 << 60)          # keys never used
    old = table.export()[:3]
    with pytest.raises(HashTableOverflowError, match="exceeds max_vocabulary_size_per_gpu.*'emb'"):
        table.insert_or_find(torch.cat([old, fresh]))
        table.check_errors()             # a sync-free (CUDA + Triton) table reports it here
    after = (table.slot_keys, table.slot_rows, table.export(), table.probe_bound)
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def check_import_export(device, capacity: int, seed: int) -> None:
    keys = torch.randperm(4 * capacity, generator=torch.Generator().manual_seed(seed))[:capacity] - 2 * capacity
    table = HashTable(capacity, device)
    table.import_keys(keys.to(device))                                # (key, row i) pairs, CAS-inserted
    assert table.export().tolist() == keys.tolist()
    assert table.find(keys.to(device)).tolist() == list(range(capacity))
    assert table.max_probe == max_displacement(table.slot_keys)


# -- interpreted (CPU, small) -------------------------------------------------------------------
@interpreted
@pytest.mark.parametrize("capacity", [5, 37])
def test_find_kernel_matches_reference_and_dict(capacity, monkeypatch):
    check_find("cpu", capacity, 90, seed=capacity, monkeypatch=monkeypatch)


@interpreted
@pytest.mark.parametrize("num_keys,num_slots,row_dtype", [(40, 64, torch.int32), (60, 64, torch.int64),
                                                           (7, 8, torch.int32)])
def test_insert_kernel_places_every_key_once(num_keys, num_slots, row_dtype):
    check_insert_kernel("cpu", num_keys, num_slots, seed=num_keys, row_dtype=row_dtype)


@interpreted
def test_insert_kernel_settles_races_for_one_home_slot():
    from hugectr.kernels.hash_find import mix64
    candidates = torch.arange(-20000, 20000)
    same_home = candidates[(mix64(candidates) & 63) == 9][:20]      # all 20 want slot 9 at once
    slots = HashSlots(torch.full((64,), EMPTY_KEY), torch.full((64,), -1), torch.zeros(1, dtype=torch.int64))
    hash_insert_triton(same_home, torch.arange(20), slots)
    assert sorted(slots.slot_keys[9:29].tolist()) == sorted(same_home.tolist())   # one contiguous run
    assert int(slots.max_probe) == 19
    assert hash_find_triton(same_home, slots).tolist() == list(range(20))


@interpreted
@pytest.mark.parametrize("capacity", [6, 50])
def test_table_gives_same_rows_with_triton_and_torch(capacity, monkeypatch):
    check_table_modes_agree("cpu", capacity, batch=25, seed=capacity, monkeypatch=monkeypatch)


@interpreted
def test_import_export_through_insert_kernel():
    check_import_export("cpu", 30, seed=1)


@interpreted
def test_triton_insert_keeps_max_probe_on_device_only(monkeypatch):
    table = HashTable(8, "cpu")
    table.insert_or_find(torch.arange(8))
    assert not table._max_probe_on_host and isinstance(table.slots().max_probe, torch.Tensor)
    assert table.max_probe == max_displacement(table.slot_keys) and table._max_probe_on_host


# -- GPU (real kernels, larger) -----------------------------------------------------------------
@pytest.mark.gpu
def test_gpu_find_kernel(device, monkeypatch):
    check_find(device, 20000, 50000, seed=1, monkeypatch=monkeypatch)


@pytest.mark.gpu
def test_gpu_insert_kernel(device):
    check_insert_kernel(device, 200000, 1 << 19, seed=2)          # 38% full: long runs, many CAS races
    check_insert_kernel(device, 190000, 1 << 18, seed=3, row_dtype=torch.int64)   # 72% full, int64 rows


@pytest.mark.gpu
def test_gpu_table_modes_agree(device, monkeypatch):
    check_table_modes_agree(device, 30000, batch=20000, seed=3, monkeypatch=monkeypatch)


@pytest.mark.gpu
def test_gpu_import_export(device):
    check_import_export(device, 100000, seed=4)


def count_syncs(fn) -> int:
    """Host syncs ``fn`` makes on the GPU (torch's sync debug mode, one warning per sync)."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("called a synchronizing" in str(w.message) for w in caught)


@pytest.mark.gpu
def test_gpu_insert_never_syncs(device, monkeypatch):
    """New keys through the fixed-size Triton insert: no host sync at all (the host never waits)."""
    set_mode(monkeypatch, "triton")
    table = HashTable(1 << 16, device)
    assert table.fixed_size
    keys = torch.from_numpy(np.random.default_rng(5).integers(-(1 << 40), 1 << 40, 50000)).to(device)
    table.insert_or_find(keys[:1000])
    torch.cuda.synchronize()
    result = []
    assert count_syncs(lambda: result.append(table.insert_or_find(keys))) == 0
    assert result[0].tolist() == dict_insert({}, keys.tolist())


def test_dispatch_follows_hugectr_kernels(monkeypatch):
    monkeypatch.setenv("HUGECTR_KERNELS", "torch")
    assert not dispatch.triton_enabled("cpu") and not dispatch.triton_enabled("cuda")
    monkeypatch.delenv("HUGECTR_KERNELS")
    assert not dispatch.triton_enabled("cpu")
    assert dispatch.triton_enabled("cuda") == dispatch.HAVE_TRITON
    monkeypatch.setenv("HUGECTR_KERNELS", "cuda-please")
    with pytest.raises(ValueError, match="HUGECTR_KERNELS='cuda-please'.*auto"):
        dispatch.triton_enabled("cpu")
    if dispatch.HAVE_TRITON:
        monkeypatch.setenv("HUGECTR_KERNELS", "triton")
        if dispatch.interpreting():
            assert dispatch.triton_enabled("cpu")
        else:
            with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
                dispatch.triton_enabled("cpu")
