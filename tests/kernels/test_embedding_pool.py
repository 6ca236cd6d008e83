"""Fused embedding forward (find + gather + pool) against its torch reference and a NumPy loop.

CPU: the ``interpreted`` tests run in a child process under Triton's interpreter (small sizes);
``test_kernels_under_triton_interpreter`` starts it. GPU: the same checks, larger, on real kernels,
and SparseEmbeddingTable.lookup with HUGECTR_KERNELS=torch against Triton.
"""


import numpy as np
import pytest
import torch

import hugectr
from hugectr.embedding.hash_table import EMPTY_KEY, HashTable
from hugectr.embedding.sparse_batch import SparseBatch
from hugectr.embedding.sparse_embedding import SparseEmbeddingTable
from hugectr.kernels.embedding_pool import embedding_pool, embedding_pool_reference, embedding_pool_triton
from hugectr.kernels.hash_find import HashSlots
from hugectr.testing.interpreter import assert_interpreted_tests_pass, interpreted, starts_interpreter_child
from hugectr.testing.scripts import benchmark_smoke_output

TOLERANCE = {torch.float32: dict(rtol=1e-6, atol=1e-6), torch.float16: dict(rtol=1e-2, atol=1e-2),
             torch.bfloat16: dict(rtol=1e-2, atol=1e-2)}
HALF_AND_FULL = [torch.float32, torch.float16, torch.bfloat16]


@starts_interpreter_child
def test_kernels_under_triton_interpreter():
    assert_interpreted_tests_pass(__file__, "-k", "not benchmark")


# -- inputs and the independent NumPy reference --------------------------------------------------
def random_bags(gen, num_bags: int, max_bag: int, num_rows: int, pad: float = 0.2):
    """CSR (indices (nnz,), offsets (num_bags + 1,)) with empty bags, repeated rows and -1 padding."""
    sizes = torch.randint(0, max_bag + 1, (num_bags,), generator=gen)
    offsets = torch.zeros(num_bags + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(sizes, 0)
    indices = torch.randint(0, num_rows, (int(offsets[-1]),), generator=gen)
    indices[torch.rand(indices.numel(), generator=gen) < pad] = -1
    return indices, offsets


def numpy_pool(weights, indices, offsets, combiner):
    """out[b] = sum of weights[i] over the bag's i >= 0; mean divides by the bag size (all keys) if > 1."""
    w, idx, off = weights.double().cpu().numpy(), indices.cpu().numpy(), offsets.cpu().numpy()
    out = np.zeros((len(off) - 1, w.shape[1]))
    for bag in range(len(off) - 1):
        members = idx[off[bag]:off[bag + 1]]
        out[bag] = w[members[members >= 0]].sum(0)
        if combiner == "mean" and len(members) > 1:
            out[bag] /= len(members)
    return out


def assert_close(actual, expected, dtype):
    assert actual.dtype == dtype
    torch.testing.assert_close(actual.float().cpu(), torch.as_tensor(expected).float().cpu(), **TOLERANCE[dtype])


# -- checks shared by the interpreted (small) and GPU (large) tests -----------------------------
def check_rows_path(device, num_bags, max_bag, num_rows, dim, combiner, dtype, seed, with_numpy):
    gen = torch.Generator().manual_seed(seed)
    weights = torch.randn(num_rows, dim, generator=gen).to(device)
    indices, offsets = (t.to(device) for t in random_bags(gen, num_bags, max_bag, num_rows))
    reference = embedding_pool_reference(weights, indices, offsets, combiner=combiner, out_dtype=dtype)
    assert_close(embedding_pool_triton(weights, indices, offsets, combiner=combiner, out_dtype=dtype), reference, dtype)
    if with_numpy:
        assert_close(reference, numpy_pool(weights, indices, offsets, combiner), dtype)
    empty_bags = (offsets[1:] == offsets[:-1]).nonzero().squeeze(1)
    assert empty_bags.numel() and not reference[empty_bags].any()


def check_hotness_path(device, num_bags, hotness, num_rows, dim, combiner, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    weights = torch.randn(num_rows, dim, generator=gen).to(device)
    indices = torch.randint(0, num_rows, (num_bags * hotness,), generator=gen).to(device)
    offsets = torch.arange(0, num_bags * hotness + 1, hotness, device=device)
    expected = embedding_pool_reference(weights, indices, offsets, combiner=combiner, out_dtype=dtype)
    for pool in (embedding_pool_triton, embedding_pool_reference):
        assert_close(pool(weights, indices, None, hotness=hotness, combiner=combiner, out_dtype=dtype), expected,
                     dtype)
        out = torch.full((num_bags, dim), float("nan"), dtype=dtype, device=device)   # a caller's buffer
        assert pool(weights, indices, None, hotness=hotness, combiner=combiner, out_dtype=dtype, out=out) is out
        assert_close(out, expected, dtype)


def check_find_path(device, capacity, num_bags, dim, combiner, seed, monkeypatch):
    """Keys in, find fused: equals pooling the rows a dict gives (absent keys -> -1, add 0, still count)."""
    gen = torch.Generator().manual_seed(seed)
    monkeypatch.setenv("HUGECTR_KERNELS", "torch")
    table = HashTable(capacity, device)
    stored = torch.randint(-(1 << 62), 1 << 62, (capacity,), generator=gen)
    table.insert_or_find(stored.to(device))
    row_of = {k: r for r, k in enumerate(table.export().tolist())}
    pool_keys = torch.cat([stored, torch.tensor([-1, 0, 12345, EMPTY_KEY])])   # mostly stored, some absent
    picks, offsets = random_bags(gen, num_bags, 4, pool_keys.numel(), pad=0.0)
    keys = pool_keys[picks]
    rows = torch.tensor([row_of.get(k, -1) for k in keys.tolist()], dtype=torch.int64)
    weights = torch.randn(capacity, dim, generator=gen).to(device)
    keys, rows, offsets = keys.to(device), rows.to(device), offsets.to(device)
    expected = embedding_pool_reference(weights, rows, offsets, combiner=combiner)
    for bound in (table.max_probe, table.probe_bound):
        slots = HashSlots(table.slot_keys, table.slot_rows, bound)
        for pool in (embedding_pool_triton, embedding_pool_reference):
            assert_close(pool(weights, keys, offsets, combiner=combiner, hash_slots=slots), expected, torch.float32)


def check_table_lookup_modes(device, monkeypatch, batch_size, slots, dim, combiner, vocabulary, seed):
    """SparseEmbeddingTable.lookup, training and eval, equal with HUGECTR_KERNELS=torch and with Triton."""
    params = hugectr.SparseEmbedding(hugectr.Embedding_t.LocalizedSlotSparseEmbeddingHash, 0, dim, combiner, "emb",
                                     "data", [vocabulary] * slots)
    opt = hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.SGD)
    tables = {mode: SparseEmbeddingTable(params, slots, opt, generator=torch.Generator().manual_seed(seed),
                                         device=device) for mode in ("torch", "triton")}
    gen = torch.Generator().manual_seed(seed)
    batches = [SparseBatch.from_fixed(torch.randint(0, vocabulary, (batch_size, slots, 1), generator=gen)),
               sparse_batch(gen, batch_size, slots, vocabulary)]
    unseen = sparse_batch(gen, batch_size, slots, 2 * vocabulary)                  # half the keys never trained
    outputs = {}
    for mode, table in tables.items():
        monkeypatch.setenv("HUGECTR_KERNELS", mode)
        outputs[mode] = [table.lookup(b, training=True) for b in batches]
        outputs[mode] += [table.lookup(b, training=False) for b in batches + [unseen]]
        outputs[mode].append(table.lookup(unseen, training=False, out_dtype=torch.bfloat16))
        out = torch.full((batch_size, slots, dim), float("nan"), device=device)
        assert table.lookup(batches[1], training=True, out=out) is out
        outputs[mode].append(out)
    for got, expected in zip(outputs["triton"], outputs["torch"]):
        assert_close(got, expected, got.dtype)
    assert tables["triton"].export()[0].tolist() == tables["torch"].export()[0].tolist()
    assert torch.equal(tables["triton"].export()[2], tables["torch"].export()[2])      # slot ids


def sparse_batch(gen, batch_size, slots, vocabulary) -> SparseBatch:
    values, offsets = random_bags(gen, batch_size * slots, 3, vocabulary, pad=0.0)
    return SparseBatch(values, offsets, batch_size, slots)


# -- interpreted (CPU, small) -------------------------------------------------------------------
@interpreted
@pytest.mark.parametrize("dim", [1, 16, 24, 300])
@pytest.mark.parametrize("combiner", ["sum", "mean"])
def test_rows_path_matches_reference_and_numpy(dim, combiner):
    for dtype in HALF_AND_FULL:
        check_rows_path("cpu", 70, 5, 40, dim, combiner, dtype, seed=dim, with_numpy=True)


@interpreted
@pytest.mark.parametrize("hotness", [1, 3])
def test_fixed_hotness_path(hotness):
    check_hotness_path("cpu", 300, hotness, 50, 16, "mean", torch.bfloat16, seed=hotness)
    check_hotness_path("cpu", 33, hotness, 50, 8, "sum", torch.float32, seed=hotness)


@interpreted
@pytest.mark.parametrize("combiner", ["sum", "mean"])
def test_find_fused_in_the_pool(combiner, monkeypatch):
    check_find_path("cpu", 60, 80, 8, combiner, seed=3, monkeypatch=monkeypatch)   # table filled to capacity


@interpreted
def test_empty_inputs():
    weights = torch.randn(4, 8)
    none = torch.zeros(0, dtype=torch.int64)
    for pool in (embedding_pool_triton, embedding_pool_reference):
        assert pool(weights, none, torch.zeros(1, dtype=torch.int64)).shape == (0, 8)
        out = pool(weights, none, torch.zeros(6, dtype=torch.int64), combiner="mean", out_dtype=torch.float16)
        assert out.shape == (5, 8) and out.dtype == torch.float16 and not out.any()


@interpreted
def test_table_lookup_same_with_torch_and_triton(monkeypatch):
    check_table_lookup_modes("cpu", monkeypatch, batch_size=6, slots=3, dim=4, combiner="mean", vocabulary=20,
                             seed=0)


def test_user_errors_name_what_was_wrong():
    weights, rows, offsets = torch.zeros(3, 2), torch.tensor([0, 1]), torch.tensor([0, 2])
    with pytest.raises(ValueError, match="combiner 'max'"):
        embedding_pool(weights, rows, offsets, combiner="max")
    with pytest.raises(TypeError, match="out_dtype torch.float64"):
        embedding_pool(weights, rows, offsets, out_dtype=torch.float64)
    with pytest.raises(ValueError, match="offsets .* or a fixed hotness"):
        embedding_pool(weights, rows, None)
    with pytest.raises(TypeError, match="int64"):
        embedding_pool(weights, rows.int(), offsets)
    with pytest.raises(ValueError, match=r"out must be a contiguous \(1, 2\) torch.float32 tensor, got \(2, 2\)"):
        embedding_pool(weights, rows, offsets, out=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="out must be .* got \\(1, 2\\) torch.float16"):
        embedding_pool(weights, rows, offsets, out=torch.zeros(1, 2, dtype=torch.float16))


# -- GPU (real kernels, larger) -----------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("dim", [16, 128, 1000])
@pytest.mark.parametrize("dtype", HALF_AND_FULL)
def test_gpu_rows_path(device, dim, dtype):
    for combiner in ("sum", "mean"):
        check_rows_path(device, 20000, 6, 100000, dim, combiner, dtype, seed=dim, with_numpy=False)


@pytest.mark.gpu
@pytest.mark.parametrize("dim", [16, 128])
def test_gpu_one_hot_26_slots(device, dim):
    check_hotness_path(device, 4096 * 26, 1, 200000, dim, "sum", torch.bfloat16, seed=dim)
    check_hotness_path(device, 1000 * 26, 4, 5000, dim, "mean", torch.float32, seed=dim)


@pytest.mark.gpu
@pytest.mark.parametrize("combiner", ["sum", "mean"])
def test_gpu_find_fused(device, combiner, monkeypatch):
    check_find_path(device, 50000, 30000, 32, combiner, seed=4, monkeypatch=monkeypatch)


@pytest.mark.gpu
def test_gpu_table_lookup_same_with_torch_and_triton(device, monkeypatch):
    check_table_lookup_modes(device, monkeypatch, batch_size=4096, slots=26, dim=16, combiner="mean",
                             vocabulary=5000, seed=1)


@pytest.mark.gpu
def test_gpu_eval_lookup_never_syncs(device, monkeypatch):
    monkeypatch.setenv("HUGECTR_KERNELS", "triton")
    params = hugectr.SparseEmbedding(hugectr.Embedding_t.DistributedSlotSparseEmbeddingHash, 1, 8, "sum", "e", "d")
    table = SparseEmbeddingTable(params, 4, hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.SGD),
                                 generator=torch.Generator().manual_seed(0), device=device)
    batch = SparseBatch.from_fixed(torch.randint(0, 500, (256, 4, 2), device=device))
    table.lookup(batch, training=True)
    table.lookup(batch, training=False)                # compiles the kernel outside the checked call
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")          # find + pool fused: any host sync raises
    try:
        out = table.lookup(batch, training=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(out, table.lookup(batch, training=True))


def test_benchmark_cpu_smoke_runs(capsys):
    table = benchmark_smoke_output("embedding_kernels.py", capsys)
    assert "copy (read + write)" in table and table.count("pool, rows given") == 4 and "find + pool" in table
