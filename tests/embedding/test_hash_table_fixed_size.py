"""The fixed-size (sync-free) insert-or-find equals the exact-size one; its errors arrive one call later."""

import pytest
import torch

import hugectr
from hugectr.embedding.hash_table import EMPTY_KEY, HashTable, HashTableOverflowError
from hugectr.embedding.sparse_batch import SparseBatch
from hugectr.embedding.sparse_embedding import SparseEmbeddingTable


def batches(seed: int, count: int = 5, size: int = 300):
    g = torch.Generator().manual_seed(seed)
    for _ in range(count):
        keys = torch.randint(-50, 200, (size,), generator=g)
        keys[::7] = keys[0]                                    # plenty of duplicates
        yield keys


def test_same_rows_exports_and_finds_as_the_exact_path():
    exact, fixed = HashTable(400, "cpu", fixed_size=False), HashTable(400, "cpu", fixed_size=True)
    for keys in batches(0):
        rows_exact = exact.insert_or_find(keys)
        unique_rows, inverse, new_rows, first_seen = fixed.insert_or_find_new(keys)
        assert torch.equal(unique_rows[inverse], rows_exact)
        assert unique_rows.numel() == keys.numel()                              # padded, no host sync needed
        is_new = new_rows != fixed.scratch_row
        # each new row went to a key whose first occurrence is at first_seen
        assert torch.equal(keys[first_seen[is_new]], fixed.export()[new_rows[is_new]])
    assert fixed.size == exact.size and torch.equal(fixed.export(), exact.export())
    probe = torch.arange(-60, 210)
    assert torch.equal(fixed.find(probe), exact.find(probe))


def test_grouping_from_the_insert_equals_sorting_the_inverse():
    """The backward reuses the insert's sort: occurrences grouped by unique entry, occurrence order within."""
    table = HashTable(400, "cpu", fixed_size=True)
    for keys in batches(3):
        _, inverse, _, first_seen, groups = table.insert_or_find_grouped(keys)
        expected_unique, expected_order = torch.sort(inverse, stable=True)
        assert torch.equal(groups.sorted_unique.long(), expected_unique)
        assert torch.equal(groups.order, expected_order)
        # the first occurrence of each unique entry is the smallest position holding its key
        for u in inverse.unique().tolist():
            assert first_seen[u] == (inverse == u).nonzero()[0, 0]


def test_overflow_is_raised_by_the_next_call_and_changes_nothing():
    table = HashTable(8, "cpu", name="emb", fixed_size=True)
    table.insert_or_find(torch.tensor([1, 2, 3, 4, 5, 6]))
    rows = table.insert_or_find(torch.tensor([1, 7, 8, 9]))     # 9 distinct keys for 8 rows
    assert rows.tolist()[0] == 0 and rows.tolist()[1:] == [table.scratch_row] * 3
    assert table.size == 6 and table.find(torch.tensor([7, 8, 9])).tolist() == [-1, -1, -1]
    with pytest.raises(HashTableOverflowError, match=r"\(9\) exceeds max_vocabulary_size_per_gpu \(8\).*'emb'"):
        table.check_errors()
    with pytest.raises(HashTableOverflowError):
        table.insert_or_find(torch.tensor([1]))


def test_reserved_key_is_reported():
    table = HashTable(8, "cpu", fixed_size=True)
    table.insert_or_find(torch.tensor([3, EMPTY_KEY]))
    with pytest.raises(ValueError, match="reserved"):
        table.check_errors()


@pytest.mark.parametrize("embedding_type", ["DistributedSlotSparseEmbeddingHash", "LocalizedSlotSparseEmbeddingHash"])
def test_embedding_training_is_the_same_with_fixed_size_inserts(embedding_type):
    def table():
        params = hugectr.SparseEmbedding(getattr(hugectr.Embedding_t, embedding_type), 1, 4, "mean", "e", "d")
        opt = hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.Adam, update_type=hugectr.Update_t.Local)
        return SparseEmbeddingTable(params, 3, opt, generator=torch.Generator().manual_seed(1), device="cpu")

    exact, fixed = table(), table()
    fixed.hash_table.fixed_size = True
    g = torch.Generator().manual_seed(2)
    for step in range(4):
        bags = [[torch.randint(0, 40, (int(n),), generator=g).tolist() for n in torch.randint(0, 3, (3,), generator=g)]
                for _ in range(16)]
        batch = SparseBatch.from_bags(bags)
        out_exact, out_fixed = exact.lookup(batch, training=True), fixed.lookup(batch, training=True)
        assert torch.equal(out_exact, out_fixed)
        grad = torch.randn(out_exact.shape, generator=g)
        exact.update(grad, 0.1)
        fixed.update(grad, 0.1)
    for mine, theirs in zip(fixed.export(), exact.export()):
        assert (mine is None and theirs is None) or torch.equal(mine, theirs)
    for mine, theirs in zip(fixed.optimizer_states(), exact.optimizer_states()):
        assert torch.equal(mine, theirs)
