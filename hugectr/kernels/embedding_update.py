"""Embedding backward + sparse optimizer, fused: one summed gradient per hit row, applied in place.

Input: the gradient of the pooled output (B, S, D) (fp32, fp16 or bf16) and what the forward knew
about every key occurrence (``Occurrences``: the distinct rows, each occurrence's index into them,
its bag, its mean-combiner weight). Row ``unique_rows[u]`` gets
``g_u = sum_{i: inverse[i] = u} grad[bag_i] * weight_i / scaler``, then the table's sparse rule
(``hugectr.embedding.sparse_optimizers``: the reference arithmetic) updates its weights and state.
No dense (capacity, D) gradient, no float atomics (the sums are deterministic), no host sync.

Triton design:

1. torch groups occurrences by unique row: a stable sort of ``inverse`` (as int32) gives ``order``
   and the sorted unique index of each position (a forward that sorted its keys can pass both).
2. ``_reduce_apply_kernel``: program k takes SPAN = STEPS x CHUNK consecutive sorted positions, a
   tile of CHUNK at a time: it gathers the tile's gradient rows at once (one wide gather, no
   dependent loop) and sums runs of equal unique index with a segmented scan; a run still open at
   the tile's end is carried into the next tile in registers. A row whose occurrences all lie in
   the program's span is updated right there: weights and state read and written once. A row
   crossing the span's edge leaves its partial sum in ``carry`` (at most two per program). Every
   program does the same work whatever the skew (a key hit 20,000 times spreads over many
   programs instead of serialising one).
3. ``_finish_spanning_kernel``: the program where a crossing row starts adds that row's partials in
   span order (BLOCK_J spans per step) and updates it.

Global rules also touch every row of the table (reference 4.2): ``_table_pass_kernel`` reads and
writes w and its state once per element, after the hit rows for Adam and MomentumSGD, before them
for Nesterov, in HugeCTR's order. LazyGlobal's per-row powers are computed in float64 by torch
(``lazy_global_factors``, U values each) and read by the kernel.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch

from ..embedding.sparse_optimizers import adam_alpha, apply_rule, lazy_global_factors
from .dispatch import next_power_of_2, tl, triton, triton_enabled

# Rule codes inside the kernels (constexpr); the names are sparse_optimizers.RULES keys.
_HIT_CODES = {"sgd": 0, "adagrad": 1, "adam_local": 2, "adam_lazy_global": 3, "adam_global": 4,
              "momentum_local": 5, "momentum_global": 6, "nesterov_local": 7, "nesterov_global": 8}
_TABLE_CODES = {"adam_global": 0, "momentum_global": 1, "nesterov_global": 2}
# Hit-row kernels: tiles of ~512 gradient values (CHUNK >= 8 positions x BLOCK_D <= 128 columns),
# SPAN = 256 sorted positions per program, 2 warps for wide rows and 4 for narrow ones: the best of
# benchmarks/update_tiles.py's sweep on an H100 (D=128: 1.46 ms, 47% of copy bandwidth, against
# 1.74 ms with 16-position tiles; D=16: 0.29 ms). Small tiles keep many programs per SM, so the
# dependent loads (sorted position -> occurrence -> gradient row; unique row -> w, m, v) overlap.
_TILE, _MAX_BLOCK_D, _MIN_CHUNK, _MAX_CHUNK, _SPAN = 512, 128, 8, 128, 256
_SPAN_BLOCK = 32          # carries summed per step when a row crosses many programs
_TABLE_BLOCK = 2048


class Occurrences(NamedTuple):
    """Where the forward's key occurrences went: all the backward needs besides the gradient."""

    unique_rows: torch.Tensor            # (U,) int64 distinct table rows
    inverse: torch.Tensor                # (nnz,) int64: occurrence i hit unique_rows[inverse[i]]
    bag_ids: torch.Tensor | None         # (nnz,) int64 bag b * S + s of each occurrence; None: i // hotness
    key_scale: torch.Tensor | None       # (nnz,) fp32 mean-combiner weight (1 / bag nnz); None for sum
    hotness: int | None = None           # keys per bag when every bag has that many


class OccurrenceGroups(NamedTuple):
    """Occurrences sorted by unique index (stable: occurrence order inside a row)."""

    sorted_unique: torch.Tensor          # (nnz,) int32 unique index of each sorted position, ascending
    order: torch.Tensor                  # (nnz,) int64 occurrence at each sorted position


def group_occurrences(inverse: torch.Tensor) -> OccurrenceGroups:
    """Sort occurrences by unique index (no host sync; int32 keys sort in half the radix passes).

    >>> g = group_occurrences(torch.tensor([1, 0, 1, 2]))
    >>> g.sorted_unique.tolist(), g.order.tolist()
    ([0, 1, 1, 2], [1, 0, 2, 3])
    """
    sorted_unique, order = torch.sort(inverse.to(torch.int32), stable=True)
    return OccurrenceGroups(sorted_unique, order)


def _bag_ids(occ: Occurrences) -> torch.Tensor:
    if occ.bag_ids is not None:
        return occ.bag_ids
    return torch.arange(occ.inverse.numel(), device=occ.inverse.device) // occ.hotness


# -- reference ------------------------------------------------------------------------------------
def reduce_gradients_reference(grad: torch.Tensor, occ: Occurrences, scaler: float = 1.0) -> torch.Tensor:
    """(U, D) fp32 summed gradient of each unique row: per-occurrence rows, index_add, / scaler.

    >>> occ = Occurrences(torch.tensor([4, 9]), torch.tensor([0, 1, 0]), torch.tensor([0, 0, 1]), None)
    >>> reduce_gradients_reference(torch.tensor([[[1.0]], [[2.0]]]), occ, scaler=2.0).tolist()
    [[1.5], [0.5]]
    """
    dim = grad.shape[-1]
    per_key = grad.reshape(-1, dim).to(torch.float32).index_select(0, _bag_ids(occ))   # (nnz, D)
    if occ.key_scale is not None:
        per_key.mul_(occ.key_scale[:, None])
    summed = torch.zeros(occ.unique_rows.numel(), dim, device=grad.device).index_add_(0, occ.inverse, per_key)
    return summed.div_(scaler) if scaler != 1.0 else summed


def embedding_update_reference(grad: torch.Tensor, occ: Occurrences, weights: torch.Tensor, optimizer,
                               lr: float, step: int, scaler: float = 1.0) -> None:
    """Plain torch: ``reduce_gradients_reference`` then the optimizer's rule (``apply_rule``)."""
    summed = reduce_gradients_reference(grad, occ, scaler)
    apply_rule(optimizer.rule, occ.unique_rows, summed, weights, optimizer.states, lr, step, optimizer.hyper,
               optimizer.last_step)


# -- Triton ---------------------------------------------------------------------------------------
@triton.jit
def _segment_combine(seg_a, sum_a, seg_b, sum_b):
    # Sorted segment ids: equal ids keep adding, a new id restarts the sum.
    return seg_b, tl.where(seg_a == seg_b, sum_a + sum_b, sum_b)


@triton.jit
def _apply_rule(g, offs, mask, lazy_ptr, lazy_idx, row_ok, num_unique, w_ptr, s1_ptr, s2_ptr,
                c0, c1, c2, c3, c4, c5, RULE: tl.constexpr):
    """Update w / state at ``offs`` (R, BLOCK_D) with final gradients ``g`` where ``mask``.

    Constants per rule (signs folded in as the reference's ``alpha=-lr`` does): see ``_hit_constants``.
    Every load comes before the first store: the compiler cannot move a load past a store that may
    alias it, and the loads should be in flight together.

    Division and square root are the fast full-range forms (``/``: 2 ulp; ``tl.sqrt``), not the IEEE
    ``div_rn`` / ``sqrt_rn``: those branch to a slow path for tiny operands, and Adam's ``m`` of a row
    hit rarely decays to ~1e-28. On the DLRM workload (H100) that made this kernel slow down from
    1.48 ms to 1.93 ms over the first 400 steps; the fast forms hold 1.45 ms throughout. The error
    they add is ~1e-7 of an update that is itself ~lr of the weight.
    """
    writes_w = (RULE != 4) and (RULE != 6)           # the Global hit-row steps leave w to the table pass
    w = tl.load(w_ptr + offs, mask=mask & writes_w)
    if RULE == 0:        # sgd: w += -lr g
        w = w + c0 * g
    elif RULE == 1:      # adagrad: acc += g^2; w += -lr g / (sqrt(acc) + eps)
        acc = tl.load(s1_ptr + offs, mask=mask) + g * g
        tl.store(s1_ptr + offs, acc, mask=mask)
        w = w + c0 * (g / (tl.sqrt(acc) + c1))
    elif RULE == 2:      # adam local: m, v moving averages; w += -alpha_t m / (sqrt(v) + eps)
        m = tl.load(s1_ptr + offs, mask=mask) * c1 + c2 * g
        v = tl.load(s2_ptr + offs, mask=mask) * c3 + c4 * (g * g)
        tl.store(s1_ptr + offs, m, mask=mask)
        tl.store(s2_ptr + offs, v, mask=mask)
        w = w + c0 * (m / (tl.sqrt(v) + c5))
    elif RULE == 3:      # adam lazy global: w step with the old m, v and the row's alpha; then decay by b^s
        alpha = tl.load(lazy_ptr + lazy_idx, mask=row_ok, other=0.0)
        beta1_skipped = tl.load(lazy_ptr + num_unique + lazy_idx, mask=row_ok, other=0.0)
        beta2_skipped = tl.load(lazy_ptr + 2 * num_unique + lazy_idx, mask=row_ok, other=0.0)
        m = tl.load(s1_ptr + offs, mask=mask)
        v = tl.load(s2_ptr + offs, mask=mask)
        w = w + (m / (tl.sqrt(v) + c5)) * -alpha
        tl.store(s1_ptr + offs, m * beta1_skipped + c2 * g, mask=mask)
        tl.store(s2_ptr + offs, v * beta2_skipped + c4 * (g * g), mask=mask)
    elif RULE == 4:      # adam global, hit rows: m += (1-b1)/b1 g, v += (1-b2)/b2 g^2 (w untouched)
        m = tl.load(s1_ptr + offs, mask=mask)
        v = tl.load(s2_ptr + offs, mask=mask)
        tl.store(s1_ptr + offs, m + c2 * g, mask=mask)
        tl.store(s2_ptr + offs, v + c4 * (g * g), mask=mask)
    elif RULE == 5:      # momentum local: mom = f mom - lr g; w += mom
        mom = tl.load(s1_ptr + offs, mask=mask) * c1 + c0 * g
        tl.store(s1_ptr + offs, mom, mask=mask)
        w = w + mom
    elif RULE == 6:      # momentum global, hit rows: mom += -lr/f g (w untouched)
        tl.store(s1_ptr + offs, tl.load(s1_ptr + offs, mask=mask) + c0 * g, mask=mask)
    elif RULE == 7:      # nesterov local: a' = mu a - lr g; w += (1 + mu) a' - mu a
        old = tl.load(s1_ptr + offs, mask=mask)
        new = old * c1 - c2 * g
        tl.store(s1_ptr + offs, new, mask=mask)
        w = w + (new * c3 - old * c1)
    else:                # nesterov global, hit rows (after the table pass): a += -lr g; w += -(1+mu) lr g
        tl.store(s1_ptr + offs, tl.load(s1_ptr + offs, mask=mask) + c0 * g, mask=mask)
        w = w + c2 * g
    if writes_w:
        tl.store(w_ptr + offs, w, mask=mask)


@triton.jit
def _gather_tile(grad_ptr, seg_ptr, order_ptr, bag_ptr, scale_ptr, pos, valid, cols, col_ok, nnz,
                 HOTNESS: tl.constexpr, HAS_SCALE: tl.constexpr, DIM: tl.constexpr):
    """Unique index (CHUNK,) of sorted positions ``pos``, of the next positions, and the tile's run sums.

    The gradient rows of all CHUNK positions are gathered at once; a segmented scan then sums runs
    of equal unique index (inclusive: a run's total sits at its last position).
    """
    seg = tl.load(seg_ptr + pos, mask=valid, other=-1)
    seg_next = tl.load(seg_ptr + pos + 1, mask=pos + 1 < nnz, other=-1)
    occ = tl.load(order_ptr + pos, mask=valid, other=0)
    if HOTNESS > 0:
        bag = occ // HOTNESS
    else:
        bag = tl.load(bag_ptr + occ, mask=valid, other=0)
    g = tl.load(grad_ptr + (bag * DIM)[:, None] + cols[None, :], mask=valid[:, None] & col_ok[None, :],
                other=0.0, eviction_policy="evict_first").to(tl.float32)         # (CHUNK, BLOCK_D)
    if HAS_SCALE:
        g = g * tl.load(scale_ptr + occ, mask=valid, other=0.0)[:, None]
    seg_tile = tl.broadcast_to(seg[:, None], g.shape)
    _, total = tl.associative_scan((seg_tile, g), 0, _segment_combine)
    return seg, seg_next, total


@triton.jit
def _reduce_apply_kernel(grad_ptr, seg_ptr, order_ptr, bag_ptr, scale_ptr, rows_ptr, w_ptr, s1_ptr, s2_ptr,
                         lazy_ptr, carry_ptr, nnz, num_unique, scaler, c0, c1, c2, c3, c4, c5,
                         HOTNESS: tl.constexpr, HAS_SCALE: tl.constexpr, RULE: tl.constexpr, DIM: tl.constexpr,
                         CHUNK: tl.constexpr, STEPS: tl.constexpr, BLOCK_D: tl.constexpr):
    program = tl.program_id(0)
    first = program * (CHUNK * STEPS)                # this program's sorted positions: [first, stop)
    stop = tl.minimum(first + CHUNK * STEPS, nnz)
    seg_before = tl.load(seg_ptr + first - 1, mask=first > 0, other=-1)
    for d0 in range(0, DIM, BLOCK_D):                # rows wider than BLOCK_D take several passes
        cols = d0 + tl.arange(0, BLOCK_D)
        col_ok = cols < DIM
        open_seg = seg_before * 0 - 1                # the run still open at the end of the last tile
        open_sum = tl.zeros((BLOCK_D,), dtype=tl.float32)
        for start in range(first, stop, CHUNK):
            pos = start + tl.arange(0, CHUNK)
            valid = pos < stop
            seg, seg_next, total = _gather_tile(grad_ptr, seg_ptr, order_ptr, bag_ptr, scale_ptr, pos, valid,
                                                cols, col_ok, nnz, HOTNESS, HAS_SCALE, DIM)
            total += tl.where((seg == open_seg)[:, None], open_sum[None, :], 0.0)
            started = seg != seg_before              # the row's first occurrence is in this program
            continues = valid & (seg == seg_next)    # more occurrences of the row follow
            at_end = valid & ~continues              # the row's last occurrence: its sum is complete
            done = at_end & started
            row = tl.load(rows_ptr + seg, mask=done, other=0) * DIM
            _apply_rule(total / scaler, row[:, None] + cols[None, :], done[:, None] & col_ok[None, :],
                        lazy_ptr, seg[:, None], done[:, None], num_unique, w_ptr, s1_ptr, s2_ptr,
                        c0, c1, c2, c3, c4, c5, RULE)
            # A row crossing the program's edges: slot 0 holds the part of a row that began before
            # it, slot 1 the start of a row that goes on after it.
            to_slot0 = valid & ~started & (at_end | (pos == stop - 1))
            to_slot1 = started & continues & (pos == stop - 1)
            carry_row = (program * 2 + tl.where(to_slot1, 1, 0)).to(tl.int64) * DIM
            tl.store(carry_ptr + carry_row[:, None] + cols[None, :], total,
                     mask=(to_slot0 | to_slot1)[:, None] & col_ok[None, :])
            tile_last = pos == start + CHUNK - 1
            open_seg = tl.max(tl.where(tile_last, seg, -1), axis=0)
            open_sum = tl.sum(tl.where(tile_last[:, None], total, 0.0), axis=0)


@triton.jit
def _finish_spanning_kernel(seg_ptr, rows_ptr, carry_ptr, w_ptr, s1_ptr, s2_ptr, lazy_ptr, nnz, num_unique,
                            num_programs, scaler, c0, c1, c2, c3, c4, c5, RULE: tl.constexpr, DIM: tl.constexpr,
                            SPAN: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_J: tl.constexpr):
    program = tl.program_id(0)                       # SPAN sorted positions per program of the first kernel
    first = program * SPAN
    last = tl.minimum(first + SPAN, nnz) - 1
    u = tl.load(seg_ptr + last)
    before = tl.load(seg_ptr + first - 1, mask=first > 0, other=-1)
    after = tl.load(seg_ptr + last + 1, mask=last + 1 < nnz, other=-1)
    if (before != u) & (after == u):                 # the row starts here and crosses the edge
        row = tl.load(rows_ptr + u) * DIM
        lazy_idx = tl.zeros((1, 1), dtype=tl.int32) + u
        for d0 in range(0, DIM, BLOCK_D):
            cols = d0 + tl.arange(0, BLOCK_D)
            col_ok = cols < DIM
            total = tl.load(carry_ptr + (program * 2 + 1).to(tl.int64) * DIM + cols, mask=col_ok, other=0.0)
            # The spans the row goes on into start with it (sorted order): add their slot-0
            # partials, BLOCK_J spans at a time, until one starts with another row.
            j0 = program + 1
            more = u >= 0
            while more:
                js = j0 + tl.arange(0, BLOCK_J)
                inside = js < num_programs
                in_row = inside & (tl.load(seg_ptr + js * SPAN, mask=inside, other=-1) == u)
                part = tl.load(carry_ptr + (js * 2).to(tl.int64)[:, None] * DIM + cols[None, :],
                               mask=in_row[:, None] & col_ok[None, :], other=0.0)
                total += tl.sum(part, axis=0)
                more = tl.sum(in_row.to(tl.int32), axis=0) == BLOCK_J
                j0 += BLOCK_J
            _apply_rule((total / scaler)[None, :], (row + cols)[None, :], col_ok[None, :], lazy_ptr, lazy_idx,
                        lazy_idx >= 0, num_unique, w_ptr, s1_ptr, s2_ptr, c0, c1, c2, c3, c4, c5, RULE)


@triton.jit
def _table_pass_kernel(w_ptr, s1_ptr, s2_ptr, n, c0, c1, c2, c3, RULE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    s1 = tl.load(s1_ptr + offs, mask=mask)
    w = tl.load(w_ptr + offs, mask=mask)
    if RULE == 0:        # adam global: m *= b1; v *= b2; w += -alpha_t m / (sqrt(v) + eps)
        m = s1 * c0
        v = tl.load(s2_ptr + offs, mask=mask) * c1
        tl.store(s2_ptr + offs, v, mask=mask)
        w = w + c2 * (m / (tl.sqrt(v) + c3))
    elif RULE == 1:      # momentum global: mom *= f; w += mom
        m = s1 * c0
        w = w + m
    else:                # nesterov global: a *= mu; w += mu a
        m = s1 * c0
        w = w + c0 * m
    tl.store(s1_ptr + offs, m, mask=mask)
    tl.store(w_ptr + offs, w, mask=mask)


def _hit_constants(rule: str, hyper: dict, lr: float, step: int) -> tuple[float, ...]:
    """(c0 .. c5) of ``_apply_rule`` for ``rule``, computed in double as the reference's scalars."""
    if rule.startswith("adam"):
        b1, b2, eps = hyper["beta1"], hyper["beta2"], hyper["epsilon"]
        if rule == "adam_global":
            return 0.0, 0.0, (1.0 - b1) / b1, 0.0, (1.0 - b2) / b2, 0.0
        return -adam_alpha(lr, step, b1, b2), b1, 1.0 - b1, b2, 1.0 - b2, eps
    if rule == "adagrad":
        return -lr, hyper["epsilon"], 0.0, 0.0, 0.0, 0.0
    if rule.startswith("momentum"):
        f = hyper["factor"]
        return (-lr / f if rule == "momentum_global" else -lr), f, 0.0, 0.0, 0.0, 0.0
    if rule.startswith("nesterov"):
        mu = hyper["mu"]
        if rule == "nesterov_global":
            return -lr, mu, -(1.0 + mu) * lr, 0.0, 0.0, 0.0
        return lr, mu, lr, 1.0 + mu, 0.0, 0.0
    return -lr, 0.0, 0.0, 0.0, 0.0, 0.0


def _table_pass(rule: str, weights, states, hyper: dict, lr: float, step: int) -> None:
    """Every row of the table (Global rules), one read and write of w and state per element."""
    if rule == "adam_global":
        b1, b2 = hyper["beta1"], hyper["beta2"]
        consts = (b1, b2, -adam_alpha(lr, step, b1, b2), hyper["epsilon"])
    else:
        factor = hyper["factor"] if rule == "momentum_global" else hyper["mu"]
        consts = (factor, 0.0, 0.0, 0.0)
    second = states[1] if len(states) > 1 else states[0]
    grid = (triton.cdiv(weights.numel(), _TABLE_BLOCK),)
    _table_pass_kernel[grid](weights, states[0], second, weights.numel(), *consts, RULE=_TABLE_CODES[rule],
                             BLOCK=_TABLE_BLOCK, num_warps=8)


def _warps(block_d: int) -> int:
    return 2 if block_d >= 64 else 4


def _blocks(dim: int) -> tuple[int, int, int]:
    """(CHUNK, STEPS, BLOCK_D): whole rows up to 128 wide, ~512 values a tile, ~256 positions a program."""
    block_d = min(next_power_of_2(dim), _MAX_BLOCK_D)
    chunk = max(_MIN_CHUNK, min(_MAX_CHUNK, _TILE // block_d))
    return chunk, max(1, _SPAN // chunk), block_d


def _reduce_and_apply(grad2d, occ: Occurrences, weights, optimizer, lr: float, step: int, scaler: float,
                      groups: OccurrenceGroups | None, tiles: tuple[int, int] | None) -> None:
    """Kernels 2 and 3 of the module docstring: hit rows summed and updated."""
    dim, nnz, num_unique = weights.shape[1], occ.inverse.numel(), occ.unique_rows.numel()
    groups = groups if groups is not None else group_occurrences(occ.inverse)
    rule, hyper, states = optimizer.rule, optimizer.hyper, optimizer.states
    lazy = weights                                   # any fp32 tensor when the rule reads none
    if rule == "adam_lazy_global":
        lazy = torch.stack(lazy_global_factors(optimizer.last_step, occ.unique_rows, step, lr, hyper["beta1"],
                                               hyper["beta2"]))                  # (3, U)
    s1, s2 = (list(states) + [weights, weights])[:2]
    chunk, steps, block_d = _blocks(dim)
    chunk, steps = tiles or (chunk, steps)
    num_programs = triton.cdiv(nnz, chunk * steps)
    carry = torch.empty(num_programs, 2, dim, dtype=torch.float32, device=weights.device)
    consts = _hit_constants(rule, hyper, lr, step)
    code, grid = _HIT_CODES[rule], (num_programs,)
    bag_ids = occ.bag_ids if occ.bag_ids is not None else occ.inverse           # unread when HOTNESS > 0
    scale = occ.key_scale if occ.key_scale is not None else weights
    _reduce_apply_kernel[grid](grad2d, groups.sorted_unique, groups.order, bag_ids, scale, occ.unique_rows,
                               weights, s1, s2, lazy, carry, nnz, num_unique, scaler, *consts,
                               HOTNESS=0 if occ.bag_ids is not None else occ.hotness,
                               HAS_SCALE=occ.key_scale is not None, RULE=code, DIM=dim, CHUNK=chunk, STEPS=steps,
                               BLOCK_D=block_d, num_warps=_warps(block_d))
    _finish_spanning_kernel[grid](groups.sorted_unique, occ.unique_rows, carry, weights, s1, s2, lazy, nnz,
                                  num_unique, num_programs, scaler, *consts, RULE=code, DIM=dim,
                                  SPAN=chunk * steps, BLOCK_D=block_d, BLOCK_J=_SPAN_BLOCK, num_warps=4)


def embedding_update_triton(grad: torch.Tensor, occ: Occurrences, weights: torch.Tensor, optimizer, lr: float,
                            step: int, scaler: float = 1.0, *, groups: OccurrenceGroups | None = None,
                            tiles: tuple[int, int] | None = None) -> None:
    """The Triton version of ``embedding_update_reference``.

    ``groups``: ``group_occurrences(occ.inverse)`` if already at hand; ``tiles``: (positions per
    tile, tiles per program), to override the defaults (tests use tiny ones).
    """
    _check(grad, occ, weights)
    grad2d = grad.reshape(-1, weights.shape[1]).contiguous()        # (B * S, D), native dtype
    rule, lr, scaler = optimizer.rule, float(lr), float(scaler)
    # Triton launches on the current device: make it the tables' (several GPUs in one process).
    with torch.cuda.device(weights.device) if weights.is_cuda else contextlib.nullcontext():
        if rule == "nesterov_global":
            _table_pass(rule, weights, optimizer.states, optimizer.hyper, lr, step)
        if occ.inverse.numel():
            _reduce_and_apply(grad2d, occ, weights, optimizer, lr, step, scaler, groups, tiles)
        if rule in ("adam_global", "momentum_global"):
            _table_pass(rule, weights, optimizer.states, optimizer.hyper, lr, step)


def _check(grad: torch.Tensor, occ: Occurrences, weights: torch.Tensor) -> None:
    """Shapes and dtypes the kernels rely on (no values read: no host sync)."""
    if weights.dtype != torch.float32 or weights.dim() != 2 or not weights.is_contiguous():
        raise TypeError(f"embedding_update: weights must be a contiguous (rows, dim) float32 tensor, got "
                        f"{weights.dtype} of shape {tuple(weights.shape)}")
    if grad.dtype not in (torch.float32, torch.float16, torch.bfloat16) or grad.shape[-1] != weights.shape[1]:
        raise TypeError(f"embedding_update: gradient must be float32/float16/bfloat16 (..., {weights.shape[1]}), "
                        f"got {grad.dtype} of shape {tuple(grad.shape)}")
    if occ.bag_ids is None and not occ.hotness:
        raise ValueError("embedding_update: give the bag of every occurrence (bag_ids) or a fixed hotness")


def embedding_update(grad: torch.Tensor, occ: Occurrences, weights: torch.Tensor, optimizer, lr: float,
                     step: int, scaler: float = 1.0, groups: OccurrenceGroups | None = None) -> None:
    """Sum ``grad`` (B, S, D) per unique row and apply ``optimizer``'s sparse rule at ``step``, in place.

    ``optimizer`` is a ``SparseOptimizer`` (its ``rule``, ``hyper``, ``states``, ``last_step``); the
    caller counts the step. Triton on CUDA, the torch reference otherwise (``HUGECTR_KERNELS``).
    ``groups``: the occurrences already grouped by unique entry (the hash insert's sort), if at hand.

    >>> from hugectr.embedding.sparse_optimizers import SparseOptimizer
    >>> import hugectr
    >>> opt = SparseOptimizer(hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.SGD), 4, 1, "cpu", "t")
    >>> w = torch.zeros(4, 1)
    >>> occ = Occurrences(torch.tensor([3]), torch.tensor([0, 0]), torch.tensor([0, 1]), None)
    >>> embedding_update(torch.tensor([[[1.0]], [[2.0]]]), occ, w, opt, lr=0.5, step=1)
    >>> w.flatten().tolist()
    [0.0, 0.0, 0.0, -1.5]
    """
    if triton_enabled(weights.device):
        embedding_update_triton(grad, occ, weights, optimizer, lr, step, scaler, groups=groups)
    else:
        embedding_update_reference(grad, occ, weights, optimizer, float(lr), step, float(scaler))
