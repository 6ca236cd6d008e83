"""DCN-v1 cross network (MultiCross, ``projection_dim == 0``): all layers in one pass, forward and backward.

Per layer ``l``: ``s_l = x_l . w_l`` (one scalar per sample), ``x_{l+1} = x0 * s_l + b_l + x_l``,
``x_0 = x0``, output ``x_L``. Unrolled, every ``x_l`` is x0 scaled per sample plus a vector shared
by the batch: ``x_l = a_l * x0 + B_l`` with ``a_0 = 1``, ``a_{l+1} = a_l + s_l`` and ``B_l = b_0 + ..
+ b_{l-1}``; so ``s_l = a_l * p_l + c_l`` with ``p_l = x0 . w_l`` and ``c_l = B_l . w_l``. All the
per-sample work is ``p = x0 W^T`` (one small matmul), a recurrence on L scalars and
``y = a_L * x0 + B_L``: the forward reads x0 and writes y, nothing else.

Backward, per sample, with ``dy`` the output's gradient: the adjoint of ``a_L`` is ``dy . x0``;
walking the recurrence back, ``ds_l = da_{l+1}``, ``dp_l = ds_l * a_l``, ``da_l = da_{l+1} * (1 +
p_l)``. Then ``dx0 = a_L * dy + dp W`` and, summed over the batch,
``dW = dp^T x0 + (sum_b ds_l) B_l`` and ``db_k = sum_b dy + sum_{l>k} (sum_b ds_l) w_l``.
The kernel recomputes p from x0 (no saved activations besides x0), reads x0 and dy once and writes
dx0; the three small matmuls run on the tensor cores (``tl.dot``, L padded to 16). Both kernels run
a fixed grid of a few programs per SM that strides over the row blocks, so each loads W once (one
program per block spent most of its time loading W). The backward's batch sums are accumulated per
program in registers and written to a (programs, L + 1, n) buffer that torch sums: deterministic,
no float atomics.

fp32 inputs multiply in IEEE fp32 (TF32 when torch allows it for matmuls, as the layer's matmuls
would); half inputs in TF32, which holds bf16 exactly. Accumulation is fp32 throughout. The layer
calls ``multi_cross``: a ``torch.library`` custom op pair, so ``torch.compile`` keeps the kernels
as opaque nodes; CPU tensors (and widths whose tiles do not fit) take ``multi_cross_reference``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch

from .dispatch import interpreting, next_power_of_2, tl, triton, triton_enabled

FUSED_ENV_VAR = "HUGECTR_FUSED_CROSS"
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_MAX_BLOCK_N = 512           # whole rows live in registers and shared memory: wider inputs take the reference
_MAX_LAYERS = 16             # L padded to 16 rows for tl.dot


@dataclass(frozen=True)
class CrossTiles:
    """Launch shape of the fused kernels; the defaults come from the H100 sweep (``benchmarks/cross_kernel.py
    --sweep``; B=65536, n=429, L=6, bf16): forward 86 us, backward 310 us."""

    rows: int = 16               # rows per tile (>= 16: the K of the dW product in the backward)
    forward_warps: int = 4
    backward_warps: int = 8      # for rows of >= 256 columns; narrower rows take 4
    forward_per_sm: int = 8      # programs per SM of each persistent grid
    backward_per_sm: int = 2


DEFAULT_TILES = CrossTiles()


def fused_cross_wanted() -> bool:
    """Whether MultiCross v1 layers run these kernels (default) or the compiled recurrence (``HUGECTR_FUSED_CROSS=0``).

    On an H100 (DCN workload, bf16, CUDA graphs) the kernels train 14.7 M samples/s against 13.4 M for
    the compiled recurrence. On a CPU both choices run the torch recurrence.
    """
    choice = os.environ.get(FUSED_ENV_VAR, "1").strip()
    if choice not in ("0", "1"):
        raise ValueError(f"{FUSED_ENV_VAR} must be 0 or 1, got {choice!r}")
    return choice == "1"


def _check(x0: torch.Tensor, weights, biases) -> tuple[int, int]:
    """Validates the arguments; returns ``(L, n)``."""
    if x0.dim() != 2:
        raise ValueError(f"multi_cross: x0 must be (batch, features), got shape {tuple(x0.shape)}")
    n = x0.shape[1]
    if len(weights) == 0 or len(weights) != len(biases):
        raise ValueError(f"multi_cross: needs one weight and one bias per layer, got {len(weights)} weights and "
                         f"{len(biases)} biases")
    for name, group in (("weight", weights), ("bias", biases)):
        for i, p in enumerate(group):
            if tuple(p.shape) != (n,):
                raise ValueError(f"multi_cross: {name} {i} has shape {tuple(p.shape)}, expected ({n},) for x0 of "
                                 f"shape {tuple(x0.shape)}")
    return len(weights), n


def output_dtype(x0: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype the layer returns: autocast's when it is on (as the matmul it replaces), else the promoted one."""
    device_type = x0.device.type
    if torch.is_autocast_enabled(device_type) and x0.dtype != torch.float64:
        return torch.get_autocast_dtype(device_type)
    return torch.promote_types(x0.dtype, weight.dtype)


# -- reference ------------------------------------------------------------------------------------
def multi_cross_reference(x0: torch.Tensor, weights, biases, *, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """(B, n) output of the L cross layers in plain torch: the layer-by-layer recurrence, fp32 inside.

    Args: x0 (B, n); weights, biases: L tensors of shape (n,) each. fp64 inputs are computed in
    fp64. Its own autograd gives the gradients.

    >>> x0 = torch.tensor([[1.0, 2.0]])
    >>> multi_cross_reference(x0, [torch.tensor([1.0, 0.0])], [torch.tensor([0.5, 0.5])])
    tensor([[2.5000, 4.5000]])
    """
    _check(x0, weights, biases)
    out_dtype = out_dtype or output_dtype(x0, weights[0])
    compute = torch.float64 if torch.float64 in (x0.dtype, weights[0].dtype) else torch.float32
    with torch.autocast(x0.device.type, enabled=False):
        x0 = x0.to(compute)
        x = x0
        for w, b in zip(weights, biases):
            s = torch.mv(x, w.to(compute)).unsqueeze(1)          # (B, 1): per-sample x_l . w_l
            x = x0 * s + b.to(compute) + x
    return x.to(out_dtype)


def _batch_constants(weights: torch.Tensor, biases: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B_l (L, n), c (L,))`` in fp32: the bias prefix sums and ``c_l = B_l . w_l``."""
    b32, w32 = biases.float(), weights.float()
    prefix = torch.cat([torch.zeros_like(b32[:1]), torch.cumsum(b32, 0)[:-1]])     # B_l = b_0 + .. + b_{l-1}
    return prefix, (prefix * w32).sum(1)


# -- Triton ---------------------------------------------------------------------------------------
@triton.jit
def _tile(ptr, rows, cols, num_rows, N: tl.constexpr):
    """(BLOCK_B, BLOCK_N) fp32 tile of a row-major (num_rows, N) tensor; zeros outside."""
    mask = (rows < num_rows)[:, None] & (cols < N)[None, :]
    return tl.load(ptr + rows[:, None] * N + cols[None, :], mask=mask, other=0.0,
                   eviction_policy="evict_first").to(tl.float32)


@triton.jit
def _column(tile, layers, l):
    """Column ``l`` of a (BLOCK_B, L_PAD) tile as a (BLOCK_B,) vector."""
    return tl.sum(tl.where(layers[None, :] == l, tile, 0.0), axis=1)


@triton.jit
def _scales(p, c_ptr, layers, L: tl.constexpr, BLOCK_B: tl.constexpr, L_PAD: tl.constexpr):
    """``(a_L, A)``: the forward recurrence on p = x0 W^T; column l of A is a_l (layers < L)."""
    c = tl.load(c_ptr + layers, mask=layers < L, other=0.0)
    a = tl.full([BLOCK_B], 1.0, tl.float32)
    scales = tl.zeros([BLOCK_B, L_PAD], dtype=tl.float32)
    for l in tl.static_range(L):
        scales = tl.where(layers[None, :] == l, a[:, None], scales)
        a += a * _column(p, layers, l) + tl.sum(tl.where(layers == l, c, 0.0), axis=0)
    return a, scales


@triton.jit
def _weights_tile(w_ptr, layers, cols, L: tl.constexpr, N: tl.constexpr):
    """(L_PAD, BLOCK_N) fp32 tile of W; rows past L and columns past N are zero."""
    mask = (layers < L)[:, None] & (cols < N)[None, :]
    return tl.load(w_ptr + layers[:, None] * N + cols[None, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _forward_kernel(x0_ptr, w_ptr, c_ptr, bsum_ptr, y_ptr, num_rows, num_blocks, N: tl.constexpr, L: tl.constexpr,
                    L_PAD: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    cols = tl.arange(0, BLOCK_N)
    layers = tl.arange(0, L_PAD)
    w = _weights_tile(w_ptr, layers, cols, L, N)                                    # (L_PAD, BLOCK_N), once
    bias_sum = tl.load(bsum_ptr + cols, mask=cols < N, other=0.0)
    for block in range(tl.program_id(0), num_blocks, tl.num_programs(0)):
        rows = (block * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)
        x0 = _tile(x0_ptr, rows, cols, num_rows, N)                                 # (BLOCK_B, BLOCK_N)
        p = tl.dot(x0, tl.trans(w), input_precision=PRECISION)                      # (BLOCK_B, L_PAD)
        a, _ = _scales(p, c_ptr, layers, L, BLOCK_B, L_PAD)
        y = x0 * a[:, None] + bias_sum[None, :]
        mask = (rows < num_rows)[:, None] & (cols < N)[None, :]
        tl.store(y_ptr + rows[:, None] * N + cols[None, :], y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _backward_kernel(dy_ptr, x0_ptr, w_ptr, c_ptr, dx0_ptr, part_ptr, part_ds_ptr, num_rows, num_blocks,
                     N: tl.constexpr, L: tl.constexpr, L_PAD: tl.constexpr, BLOCK_B: tl.constexpr,
                     BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    layers = tl.arange(0, L_PAD)
    w = _weights_tile(w_ptr, layers, cols, L, N)                                    # (L_PAD, BLOCK_N)
    acc_w = tl.zeros([L_PAD, BLOCK_N], dtype=tl.float32)                            # sum_b dp^T x0
    acc_dy = tl.zeros([BLOCK_N], dtype=tl.float32)                                  # sum_b dy
    acc_ds = tl.zeros([L_PAD], dtype=tl.float32)                                    # sum_b ds_l
    for block in range(pid, num_blocks, tl.num_programs(0)):
        rows = (block * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)   # past the end: zeros, add 0; int64: rows * N
        x0 = _tile(x0_ptr, rows, cols, num_rows, N)
        dy = _tile(dy_ptr, rows, cols, num_rows, N)
        p = tl.dot(x0, tl.trans(w), input_precision=PRECISION)                      # (BLOCK_B, L_PAD)
        a_last, scales = _scales(p, c_ptr, layers, L, BLOCK_B, L_PAD)
        da = tl.sum(dy * x0, axis=1)                                                # adjoint of a_L
        dp = tl.zeros([BLOCK_B, L_PAD], dtype=tl.float32)
        for i in tl.static_range(L):
            l = L - 1 - i
            ds = da                                                                 # a_{l+1} = a_l + s_l
            dp = tl.where(layers[None, :] == l, (ds * _column(scales, layers, l))[:, None], dp)
            acc_ds += tl.where(layers == l, tl.sum(ds, axis=0), 0.0)
            da += ds * _column(p, layers, l)
        dx0 = dy * a_last[:, None] + tl.dot(dp, w, input_precision=PRECISION)
        mask = (rows < num_rows)[:, None] & (cols < N)[None, :]
        tl.store(dx0_ptr + rows[:, None] * N + cols[None, :], dx0.to(dx0_ptr.dtype.element_ty), mask=mask)
        acc_w = tl.dot(tl.trans(dp), x0, acc_w, input_precision=PRECISION)          # (L_PAD, BLOCK_N)
        acc_dy += tl.sum(dy, axis=0)
    part = part_ptr + pid.to(tl.int64) * (L + 1) * N                                # this program's (L + 1, N)
    tl.store(part + layers[:, None] * N + cols[None, :], acc_w, mask=(layers < L)[:, None] & (cols < N)[None, :])
    tl.store(part + L * N + cols, acc_dy, mask=cols < N)
    tl.store(part_ds_ptr + pid * L + layers, acc_ds, mask=layers < L)


def kernel_fits(n: int, num_layers: int) -> bool:
    """Whether the kernels' register tiles hold n features and L layers (else the reference runs).

    >>> kernel_fits(429, 6), kernel_fits(512, 16), kernel_fits(513, 1), kernel_fits(64, 17)
    (True, True, False, False)
    """
    return next_power_of_2(n) <= _MAX_BLOCK_N and num_layers <= _MAX_LAYERS


def _config(x0: torch.Tensor, out_dtype: torch.dtype, num_layers: int, backward: bool,
            tiles: CrossTiles = DEFAULT_TILES) -> dict:
    """Compile-time sizes (from the H100 sweep of ``benchmarks/cross_kernel.py``) and the dot precision.

    The products are IEEE fp32 only when the layer computes in fp32 (x0 and output fp32, TF32 not
    allowed for matmuls); under autocast the matmuls this replaces would run in half precision, and
    TF32 (which holds bf16 exactly) is both closer and several times faster than IEEE here.

    >>> c = _config(torch.zeros(2, 429), torch.bfloat16, 6, backward=True)
    >>> c["BLOCK_N"], c["L_PAD"], c["num_warps"], c["PRECISION"]
    (512, 16, 8, 'tf32')
    """
    block_n = max(16, next_power_of_2(x0.shape[1]))
    exact = x0.dtype == out_dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32
    warps = (tiles.backward_warps if block_n >= 256 else 4) if backward else tiles.forward_warps
    return dict(N=x0.shape[1], L=num_layers, L_PAD=16, BLOCK_B=tiles.rows, BLOCK_N=block_n,
                PRECISION="ieee" if exact or interpreting() else "tf32", num_warps=warps)


@functools.lru_cache(maxsize=None)
def _multiprocessors(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def _programs(device: torch.device, per_sm: int) -> int:
    """Programs of a grid that strides over the row blocks: ``per_sm`` per SM on a GPU (all resident at
    once, W loaded once by each); 2 under the interpreter. Independent of the batch, so the backward's
    partial sums keep one shape."""
    return per_sm * _multiprocessors(device) if device.type == "cuda" else 2


def multi_cross_forward_triton(x0: torch.Tensor, weights: torch.Tensor, c: torch.Tensor, bias_sum: torch.Tensor,
                               out_dtype: torch.dtype, tiles: CrossTiles = DEFAULT_TILES) -> torch.Tensor:
    """y (B, n) in ``out_dtype``; weights (L, n), c (L,) and bias_sum (n,) from ``_batch_constants``."""
    (batch, n), num_layers = x0.shape, weights.shape[0]
    y = torch.empty(batch, n, dtype=out_dtype, device=x0.device)
    if batch:
        num_blocks = triton.cdiv(batch, tiles.rows)
        grid = (min(num_blocks, _programs(x0.device, tiles.forward_per_sm)),)
        _forward_kernel[grid](x0.contiguous(), weights.contiguous(), c.contiguous(), bias_sum.contiguous(), y, batch,
                              num_blocks, **_config(x0, out_dtype, num_layers, backward=False, tiles=tiles))
    return y


def multi_cross_backward_triton(dy: torch.Tensor, x0: torch.Tensor, weights: torch.Tensor, c: torch.Tensor,
                                tiles: CrossTiles = DEFAULT_TILES) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dx0 like x0, part (P, L + 1, n), part_ds (P, L))``: per program, ``dp^T x0`` (rows < L) and
    ``sum_b dy`` (row L), and ``sum_b ds_l``; the caller sums over the P programs."""
    (batch, n), num_layers = x0.shape, weights.shape[0]
    dx0 = torch.empty_like(x0, memory_format=torch.contiguous_format)
    programs = _programs(x0.device, tiles.backward_per_sm)
    if not batch:
        return (dx0, x0.new_zeros(programs, num_layers + 1, n, dtype=torch.float32),
                x0.new_zeros(programs, num_layers, dtype=torch.float32))
    # Every program stores its whole accumulator (zeros when it got no rows): no zero fill needed.
    part = torch.empty(programs, num_layers + 1, n, dtype=torch.float32, device=x0.device)
    part_ds = torch.empty(programs, num_layers, dtype=torch.float32, device=x0.device)
    _backward_kernel[(programs,)](dy.contiguous(), x0.contiguous(), weights.contiguous(), c.contiguous(), dx0, part,
                                  part_ds, batch, triton.cdiv(batch, tiles.rows),
                                  **_config(x0, dy.dtype, num_layers, backward=True, tiles=tiles))
    return dx0, part, part_ds


# -- custom ops: opaque to torch.compile, autograd through the fused backward --------------------
# The ops hold only the kernel launches. The batch constants before them and the sums after them
# are plain torch in the traced code, so torch.compile fuses them with their neighbours (as eager
# ops inside an opaque op they cost more host time per step than the kernels cost on the GPU), and
# autograd carries the gradients of c and B_L back to W and b by itself.
@torch.library.custom_op("hugectr::multi_cross_forward", mutates_args=())
def multi_cross_forward_op(x0: torch.Tensor, weights: torch.Tensor, c: torch.Tensor, bias_sum: torch.Tensor,
                           out_dtype: torch.dtype) -> torch.Tensor:
    """Fused forward: y (B, n) in ``out_dtype``."""
    return multi_cross_forward_triton(x0, weights, c, bias_sum, out_dtype)


@multi_cross_forward_op.register_fake
def _(x0, weights, c, bias_sum, out_dtype):
    return x0.new_empty(x0.shape, dtype=out_dtype)


@torch.library.custom_op("hugectr::multi_cross_backward", mutates_args=())
def multi_cross_backward_op(dy: torch.Tensor, x0: torch.Tensor, weights: torch.Tensor, c: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused backward: ``(dx0, part, part_ds)`` (see ``multi_cross_backward_triton``)."""
    return multi_cross_backward_triton(dy, x0, weights, c)


@multi_cross_backward_op.register_fake
def _(dy, x0, weights, c):
    programs, (num_layers, n) = _programs(x0.device, DEFAULT_TILES.backward_per_sm), weights.shape
    return (torch.empty_like(x0, memory_format=torch.contiguous_format),
            x0.new_empty((programs, num_layers + 1, n), dtype=torch.float32),
            x0.new_empty((programs, num_layers), dtype=torch.float32))


def _setup_context(ctx, inputs, output):
    x0, weights, c, _, _ = inputs
    ctx.save_for_backward(x0, weights, c)


def _backward(ctx, dy):
    """Gradients of (x0, W, c, B_L): the direct part of dW is ``dp^T x0``, of c ``sum_b ds``, of B_L ``sum_b dy``."""
    x0, weights, c = ctx.saved_tensors
    dx0, part, part_ds = multi_cross_backward_op(dy, x0, weights, c)
    sums = part.sum(0)                                                              # (L + 1, n)
    return dx0, sums[:-1].to(weights.dtype), part_ds.sum(0).to(c.dtype), sums[-1], None


multi_cross_forward_op.register_autograd(_backward, setup_context=_setup_context)


def fused_multi_cross(x0: torch.Tensor, weights: torch.Tensor, biases: torch.Tensor,
                      out_dtype: torch.dtype) -> torch.Tensor:
    """The fused kernels without dispatch: weights and biases stacked (L, n); differentiable."""
    prefix, c = _batch_constants(weights, biases)
    return multi_cross_forward_op(x0, weights, c, prefix[-1] + biases[-1].float(), out_dtype)


# -- the public op ---------------------------------------------------------------------------------
def multi_cross(x0: torch.Tensor, weights, biases) -> torch.Tensor:
    """(B, n) output of the DCN-v1 cross layers: one fused Triton pass, or the torch reference.

    Args: x0 (B, n); weights, biases: L tensors of shape (n,). Under autocast the output has
    autocast's dtype (x0 and the parameters are read as they are, fp32 inside).

    >>> w, b = [torch.tensor([1.0, 0.0])] * 2, [torch.zeros(2)] * 2
    >>> multi_cross(torch.tensor([[1.0, 2.0]]), w, b)          # s_0 = 1: x_1 = 2 x0; s_1 = 2: x_2 = 4 x0
    tensor([[4., 8.]])
    """
    num_layers, n = _check(x0, weights, biases)
    out_dtype = output_dtype(x0, weights[0])
    dtypes = {x0.dtype, out_dtype, *(p.dtype for p in weights), *(p.dtype for p in biases)}
    if triton_enabled(x0.device) and dtypes <= set(_KERNEL_DTYPES) and kernel_fits(n, num_layers):
        return fused_multi_cross(x0, torch.stack(list(weights)), torch.stack(list(biases)), out_dtype)
    return multi_cross_reference(x0, weights, biases, out_dtype=out_dtype)
