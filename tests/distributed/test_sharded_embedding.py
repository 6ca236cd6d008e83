"""Sharded equals unsharded: ``ShardedEmbeddingTable`` on 2 and 3 gloo ranks vs one ``SparseEmbeddingTable``.

Every case (placement x combiner x hotness x optimizer) starts both from the same loaded keys and
vectors, runs the same global batches with the same upstream gradients, and must give the same
pooled outputs, exported key -> vector maps and per-key optimizer states (1e-5). Checkpoints move
between 1 and G ranks. One ``run_ranks`` call per world size covers every case.
"""

import numpy as np
import pytest
import torch

from hugectr.distributed.exchange import unsigned_mod
from hugectr.distributed.sharded_embedding import ShardedEmbeddingTable, key_owners
from hugectr.embedding.sparse_batch import SparseBatch
from hugectr.testing import sharded_cases as sc
from hugectr.testing.ranks import run_ranks

CASES = sc.all_cases()
# Three ranks (uneven ownership, keys % 3): every optimizer on multi-hot bags, one-hot with two of them.
CASES_ON_THREE = [case for case in CASES if case.multi_hot or case.optimizer in ("sgd", "adam_global")]
# Four and eight ranks (the 8-GPU node's layout; 8 ranks split the batch of 12 unevenly and leave
# most ranks without a Localized slot): multi-hot bags, two optimizers, both placements.
CASES_ON_MANY = [case for case in CASES_ON_THREE if case.multi_hot and case.optimizer in ("sgd", "adam_global")]
CASES_BY_WORLD = {2: CASES, 3: CASES_ON_THREE, 4: CASES_ON_MANY, 8: CASES_ON_MANY}
PAIRS = [(world, case) for world, cases in CASES_BY_WORLD.items() for case in cases]
PAIR_IDS = [f"{world}ranks-{case.id}" for world, case in PAIRS]
TOL = dict(rtol=0, atol=1e-5)


def _scenarios():
    return [sc.make_scenario(case, seed=index) for index, case in enumerate(CASES)]


@pytest.fixture(scope="module")
def references():
    """Per case: the single-device run and, for the reload tests, its checkpoint."""
    return {s.case: (s, sc.reference_run(s)) for s in _scenarios()}


@pytest.fixture(scope="module")
def sharded(references):
    """``world -> {case: [rank results]}``, one ``run_ranks`` per world size, run when first asked.

    Each rank also resumes from the single-device checkpoint (weights + optimizer states).
    """
    runs = {}

    def results(world: int) -> dict:
        if world not in runs:
            scenarios = []
            for s, ref in references.values():
                s.checkpoint = ref["checkpoint"]
                if s.case in CASES_BY_WORLD[world]:
                    scenarios.append(s)
            per_rank = [sc.from_bytes(data) for data in run_ranks(world, sc.rank_run, scenarios)]
            runs[world] = {s.case: [per_rank[r][i] for r in range(world)] for i, s in enumerate(scenarios)}
        return runs[world]

    return results


def _bags_with_unknown_keys(batch: SparseBatch, known: torch.Tensor) -> torch.Tensor:
    """(B, slots) True where a bag holds a key outside ``known`` (its vector is a per-rank random row)."""
    unknown = ~torch.isin(batch.values, known)
    flags = torch.zeros(batch.batch_size * batch.num_slots, dtype=torch.bool)
    flags[batch.bag_ids()[unknown]] = True
    return flags.view(batch.batch_size, batch.num_slots)


def _by_key(keys, rows):
    order = torch.argsort(keys)
    return keys[order], rows[order]


def _assert_maps_equal(keys_a, rows_a, keys_b, rows_b, only=None):
    """The same key set, and the same row per key (for the keys in ``only`` when given)."""
    keys_a, rows_a = _by_key(keys_a, rows_a)
    keys_b, rows_b = _by_key(keys_b, rows_b)
    assert torch.equal(keys_a, keys_b)
    keep = torch.ones_like(keys_a, dtype=torch.bool) if only is None else torch.isin(keys_a, only)
    torch.testing.assert_close(rows_a[keep], rows_b[keep], **TOL)


@pytest.mark.parametrize("world, case", PAIRS, ids=PAIR_IDS)
def test_pooled_outputs_equal_single_device(sharded, references, world, case):
    ranks = sharded(world)[case]
    scenario, ref = references[case]
    for step in range(sc.STEPS):
        got = torch.cat([rank["outputs"][step] for rank in ranks])
        keep = ~_bags_with_unknown_keys(scenario.batches[step], scenario.keys)
        torch.testing.assert_close(got[keep], ref["outputs"][step][keep], **TOL)
    got = torch.cat([rank["continued"]["output"] for rank in ranks])      # a fourth step after the checkpoint
    keep = ~_bags_with_unknown_keys(scenario.batches[-1], scenario.keys)
    torch.testing.assert_close(got[keep], ref["continued"]["output"][keep], **TOL)
    got_eval = torch.cat([rank["eval"] for rank in ranks])
    keep = ~_bags_with_unknown_keys(scenario.eval_batch, scenario.keys) if case.new_keys else slice(None)
    torch.testing.assert_close(got_eval[keep], ref["eval"][keep], **TOL)


@pytest.mark.parametrize("world, case", PAIRS, ids=PAIR_IDS)
def test_exported_tables_equal_single_device(sharded, references, world, case):
    ranks = sharded(world)[case]
    scenario, ref = references[case]
    loaded = scenario.keys
    for index in (0, 1):                                   # after the first and after the last step
        exports = [rank["exports"][index] for rank in ranks]
        for other in exports[1:]:                          # every rank holds the full table
            for mine, theirs in zip(exports[0], other):
                assert (mine is None and theirs is None) or torch.equal(mine, theirs)
        keys, vectors, slot_ids = exports[0]
        ref_keys, ref_vectors, ref_slots = ref["exports"][index]
        assert all(rank["global_size"] == ref["exports"][1][0].numel() for rank in ranks)
        # Unloaded keys start from each rank's own random rows; their presence must match all the same.
        _assert_maps_equal(keys, vectors, ref_keys, ref_vectors, only=loaded if case.new_keys else None)
        if case.localized:
            _assert_maps_equal(keys, slot_ids, ref_keys, ref_slots)
        else:
            assert slot_ids is None


@pytest.mark.parametrize("world, case", PAIRS, ids=PAIR_IDS)
def test_optimizer_states_follow_the_key_file(sharded, references, world, case):
    """Row i of every state is key i of the exported key file; the rows after the keys are untouched."""
    ranks = sharded(world)[case]
    scenario, ref = references[case]
    keys, ref_keys = ranks[0]["exports"][1][0], ref["exports"][1][0]
    states, ref_states = ranks[0]["states"], ref["states"]
    params, opt = sc.build_params(case)
    expected_rows = sum(sc.SLOT_SIZES) if case.localized else ref_states[0].shape[0] * world if ref_states else 0
    assert len(states) == len(ref_states)
    for state, ref_state in zip(states, ref_states):
        assert state.shape == (expected_rows, sc.EV)
        n = keys.numel()
        _assert_maps_equal(keys, state[:n], ref_keys, ref_state[:n])
        fill = ref_state[-1, 0]                        # what a row never hit holds (0; AdaGrad's memset)
        assert bool((state[n:] == fill).all()) and bool((ref_state[n:] == fill).all())
    last_steps, ref_last_steps = ranks[0]["last_steps"], ref["last_steps"]
    assert (last_steps is None) == (ref_last_steps is None) == (case.optimizer != "adam_lazy_global")
    if last_steps is not None:
        assert last_steps.shape == (expected_rows,) and bool((last_steps[keys.numel():] == 1).all())
        _assert_maps_equal(keys, last_steps[:keys.numel()], ref_keys, ref_last_steps[:keys.numel()])


@pytest.mark.parametrize("world, case", PAIRS, ids=PAIR_IDS)
def test_checkpoint_from_one_rank_resumes_on_several(sharded, references, world, case):
    """The single-device checkpoint (weights, optimizer states, counters) restored on G ranks continues
    exactly as the single device that never stopped."""
    ranks = sharded(world)[case]
    scenario, ref = references[case]
    checkpoint_keys = ref["checkpoint"][0]
    got = torch.cat([rank["resumed"]["output"] for rank in ranks])
    keep = ~_bags_with_unknown_keys(scenario.batches[-1], checkpoint_keys)
    torch.testing.assert_close(got[keep], ref["continued"]["output"][keep], **TOL)
    keys, vectors, _ = ranks[0]["resumed"]["export"]
    continued_keys, continued_vectors, _ = ref["continued"]["export"]
    _assert_maps_equal(keys, vectors, continued_keys, continued_vectors, only=checkpoint_keys)


@pytest.mark.parametrize("world, case", PAIRS, ids=PAIR_IDS)
def test_checkpoint_from_several_ranks_resumes_on_one(sharded, references, world, case):
    """The G-rank checkpoint restored on one rank continues as a plain table restored from the same files,
    and (all keys loaded) as the single device that never stopped."""
    ranks = sharded(world)[case]
    scenario, ref = references[case]
    one_rank = sc.resume(sc.make_table(case, "cpu", sharded=True), ranks[0]["checkpoint"], scenario,
                         slice(0, sc.BATCH), "cpu")
    plain = sc.resume(sc.make_table(case, "cpu", sharded=False), ranks[0]["checkpoint"], scenario,
                      slice(0, sc.BATCH), "cpu")
    torch.testing.assert_close(one_rank["output"], plain["output"], **TOL)
    _assert_maps_equal(*one_rank["export"][:2], *plain["export"][:2])
    if not case.new_keys:                # unloaded keys started from the G ranks' own random rows
        torch.testing.assert_close(one_rank["output"], ref["continued"]["output"], **TOL)
        _assert_maps_equal(*one_rank["export"][:2], *ref["continued"]["export"][:2])


@pytest.mark.parametrize("mode", ["fixed_size", "triton_interpreter"])
def test_gpu_code_paths_equal_single_device(references, monkeypatch, mode):
    """The sync-free hash insert (CUDA's path) and the Triton kernels (through the interpreter) on 2 ranks."""
    picked = [sc.Case(False, "mean", True, "adam_lazy_global"), sc.Case(True, "sum", True, "momentum_global"),
              sc.Case(False, "mean", True, "nesterov_local", new_keys=False)]
    if mode == "triton_interpreter":
        monkeypatch.setenv("TRITON_INTERPRET", "1")        # inherited by the spawned ranks
        monkeypatch.setenv("HUGECTR_KERNELS", "triton")
        picked = picked[:2]
    scenarios = [sc.make_scenario(case, seed=CASES.index(case)) for case in picked]
    per_rank = [sc.from_bytes(data) for data in run_ranks(2, sc.rank_run, scenarios, "gloo", mode == "fixed_size")]
    for index, case in enumerate(picked):
        ref = references[case][1]
        for step in range(sc.STEPS):
            got = torch.cat([per_rank[r][index]["outputs"][step] for r in range(2)])
            torch.testing.assert_close(got, ref["outputs"][step], **TOL)
        keys, vectors, _ = per_rank[0][index]["exports"][1]
        _assert_maps_equal(keys, vectors, ref["exports"][1][0], ref["exports"][1][1])


@pytest.mark.parametrize("fixed_size", [False, True], ids=["insert_raises", "sync_free_insert"])
def test_an_overflow_on_one_rank_raises_on_every_rank(fixed_size):
    with pytest.raises(RuntimeError) as error:
        run_ranks(2, sc.overflow_run, fixed_size, timeout=120)
    message = str(error.value)
    assert "rank 0:" in message and "exceeds max_vocabulary_size_per_gpu" in message
    assert "rank 1:" in message and "another rank's shard" in message


def test_unsigned_owner_matches_uint64_modulo():
    keys = torch.tensor([0, 1, 5, -1, -2, -7, 2 ** 62, -(2 ** 63)], dtype=torch.int64)
    expected = keys.numpy().astype(np.uint64)
    for world in (1, 2, 3, 5, 8):
        assert unsigned_mod(keys, world).tolist() == (expected % np.uint64(world)).astype(np.int64).tolist()


def test_localized_owner_is_the_slot_owner():
    batch = SparseBatch.from_bags([[[1, 2], [], [3]], [[4], [5, 6], [7]]])
    assert key_owners(batch, batch.bag_ids(), 2, True).tolist() == [0, 0, 0, 0, 1, 1, 0]


def test_one_rank_without_a_group_equals_the_plain_table():
    case = sc.Case(localized=True, combiner="mean", multi_hot=True, optimizer="adam_global", new_keys=True)
    scenario = sc.make_scenario(case, seed=99)
    plain = sc.train(sc.make_table(case, "cpu", sharded=False), scenario, slice(0, sc.BATCH), "cpu")
    one = sc.train(sc.make_table(case, "cpu", sharded=True), scenario, slice(0, sc.BATCH), "cpu")
    for got, want in zip(one["outputs"], plain["outputs"]):       # same generator: same rows for new keys
        torch.testing.assert_close(got, want, **TOL)
    for got, want in zip(one["states"], plain["states"]):
        torch.testing.assert_close(got, want, **TOL)


def test_user_mistakes_name_the_embedding():
    case = sc.Case(localized=True, combiner="sum", multi_hot=False, optimizer="sgd")
    table = sc.make_table(case, "cpu", sharded=True)
    with pytest.raises(ValueError, match="'emb'.*slot_id"):
        table.load(torch.tensor([1, 2]), torch.zeros(2, sc.EV))
    with pytest.raises(ValueError, match="'emb'.*duplicate"):
        table.load(torch.tensor([1, 1]), torch.zeros(2, sc.EV), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="'emb'.*2 slot"):
        table.lookup(SparseBatch.from_bags([[[1], [2]]]), training=True)
    one_sample = SparseBatch.from_bags([[[1]] * sc.SLOTS])
    with pytest.raises(ValueError, match=rf"'emb': out is \(2, {sc.SLOTS}, {sc.EV}\) torch.float32, the batch needs "
                                         rf"\(1, {sc.SLOTS}, {sc.EV}\) torch.float32"):
        table.lookup(one_sample, training=False, out=torch.zeros(2, sc.SLOTS, sc.EV))
    with pytest.raises(ValueError, match=r"'emb': out is .* torch.float16, the batch needs .* torch.float32"):
        table.lookup(one_sample, training=False, out=torch.zeros(1, sc.SLOTS, sc.EV, dtype=torch.float16))
    with pytest.raises(ValueError, match="'emb'.*rank 3 of 4"):
        params, opt = sc.build_params(case)
        ShardedEmbeddingTable(params, sc.SLOTS, opt, generator=torch.Generator(), device="cpu", num_gpus=4, rank=3)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="the NCCL variant needs 2 GPUs")
def test_nccl_two_gpus_equal_single_device(references):
    """The same equivalence on 2 GPUs (NCCL, Triton kernels, sync-free inserts), one case per optimizer."""
    picked = [case for case in CASES if case.multi_hot and not case.new_keys and case.localized == (
        case.combiner == "sum")]
    scenarios = [sc.make_scenario(case, seed=CASES.index(case)) for case in picked]
    per_rank = [sc.from_bytes(data) for data in run_ranks(2, sc.rank_run, scenarios, "nccl", backend="nccl")]
    for index, case in enumerate(picked):
        ref = references[case][1]
        for step in range(sc.STEPS):
            got = torch.cat([per_rank[r][index]["outputs"][step] for r in range(2)])
            torch.testing.assert_close(got, ref["outputs"][step], **TOL)
        got = torch.cat([per_rank[r][index]["continued"]["output"] for r in range(2)])
        torch.testing.assert_close(got, ref["continued"]["output"], **TOL)
        keys, vectors, _ = per_rank[0][index]["continued"]["export"]
        _assert_maps_equal(keys, vectors, *ref["continued"]["export"][:2])
