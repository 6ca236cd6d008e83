"""DCN-v1 cross layers (MultiCross): the fused kernels against layer-by-layer torch, time and GB/s.

    python benchmarks/cross_kernel.py                # GPU: B=65536, n=429, 6 layers, bf16 autocast
    python benchmarks/cross_kernel.py --sweep        # GPU: the kernels' GPU time for each launch shape
    python benchmarks/cross_kernel.py --cpu-smoke    # CPU: tiny sizes, only to exercise the code

Rows: ``multi_cross`` as the layer calls it (the fused Triton pair on a GPU), the torch reference
(fp32 inside, eager and under torch.compile), and the layer-by-layer bf16 recurrence the layer ran
before the kernels (``x = x0 * (x @ w) + b + x`` under autocast: each layer one elementwise pass
each way). x0 is bf16, the parameters fp32, all under bf16 autocast, as in mixed-precision training.

The rows "kernel alone" time the fused kernels by CUDA-graph replay: GPU time only. The other rows
time a call from the host, which for a fast kernel is mostly the host's own time (Python, launches):
they compare the forms as a step would call them, not what the GPU spends.

GB/s counts the bytes the fused pair must move, the same for every row so the column compares
times: forward x0 read, y written; backward dy and x0 read, dx0 written. "% copy" compares with ``dst.copy_(src)`` (read + write) in the same run: the roofline.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
from timing import graph_seconds, median_seconds  # noqa: E402
from hugectr.kernels.dispatch import triton_enabled  # noqa: E402
from hugectr.kernels import multi_cross as mc  # noqa: E402
from hugectr.kernels.multi_cross import multi_cross, multi_cross_reference  # noqa: E402


class Row(NamedTuple):
    name: str
    seconds: float
    bytes_moved: float


@dataclass
class Setup:
    device: torch.device
    batch: int
    features: int
    layers: int
    iters: int
    warmup: int
    compile: bool
    sweep: bool = False

    def inputs(self):
        """x0 (B, n) bf16, L weights and biases (n,) fp32, dy (B, n) bf16; all leaves needing grad."""
        gen = torch.Generator(device=self.device).manual_seed(0)
        n = self.features

        def randn(*shape, scale=1.0, dtype=torch.float32):
            return (torch.randn(*shape, generator=gen, device=self.device) * scale).to(dtype).requires_grad_()
        x0 = randn(self.batch, n, dtype=torch.bfloat16)
        weights = [randn(n, scale=0.6 / n ** 0.5) for _ in range(self.layers)]
        biases = [randn(n, scale=0.1) for _ in range(self.layers)]
        return x0, weights, biases, randn(self.batch, n, dtype=torch.bfloat16).detach()


def layer_by_layer_bf16(x0, weights, biases):
    """The unfused recurrence in the autocast dtype (what MultiCross ran before the kernels)."""
    x = x0
    for w, b in zip(weights, biases):
        s = torch.matmul(x, w).unsqueeze(1)                       # (B, 1) in the autocast dtype
        x = x0.to(s.dtype) * s + b.to(s.dtype) + x.to(s.dtype)
    return x


def time_call(setup: Setup, fn: Callable[[], object]) -> float:
    return median_seconds(setup.device, fn, setup.iters, setup.warmup)


def fused_bytes(setup: Setup) -> tuple[float, float]:
    """(forward, forward + backward) bytes the fused pair moves: bf16 activations."""
    activation = setup.batch * setup.features * 2
    return 2 * activation, 5 * activation


def variants(setup: Setup) -> list[tuple[str, Callable]]:
    kind = "fused triton" if triton_enabled(setup.device) else "multi_cross (torch ref here)"
    found = [(kind, multi_cross), ("torch reference, fp32 inside", multi_cross_reference),
             ("layer by layer, bf16 (old layer)", layer_by_layer_bf16)]
    if setup.compile:
        found += [("torch reference, torch.compile", torch.compile(multi_cross_reference)),
                  ("layer by layer bf16, torch.compile", torch.compile(layer_by_layer_bf16))]
    return found


def measure(setup: Setup) -> list[Row]:
    x0, weights, biases, dy = setup.inputs()
    leaves = [x0, *weights, *biases]
    forward_bytes, both_bytes = fused_bytes(setup)
    src = torch.empty(setup.batch * setup.features, dtype=torch.bfloat16, device=setup.device).fill_(1.0)
    dst = torch.empty_like(src)
    rows = [Row("copy x0 (read + write)", time_call(setup, lambda: dst.copy_(src)), 2.0 * src.nbytes)]
    autocast = dict(device_type=setup.device.type, dtype=torch.bfloat16)
    for name, fn in variants(setup):
        def forward(fn=fn):
            with torch.no_grad(), torch.autocast(**autocast):
                return fn(x0, weights, biases)

        def forward_backward(fn=fn):
            with torch.autocast(**autocast):
                y = fn(x0, weights, biases)
            return torch.autograd.grad(y, leaves, dy)           # no .grad accumulation pass
        rows.append(Row(f"forward, {name}", time_call(setup, forward), forward_bytes))
        rows.append(Row(f"forward + backward, {name}", time_call(setup, forward_backward), both_bytes))
    if setup.device.type == "cuda":
        rows += kernel_rows(setup, mc.DEFAULT_TILES)
    return rows


def kernel_rows(setup: Setup, tiles, label: str = "") -> list[Row]:
    """GPU time of the fused forward and backward kernels alone (CUDA-graph replay), launched with ``tiles``."""
    x0, weights, biases, dy = (t.detach() for t in _stacked_inputs(setup))
    prefix, c = mc._batch_constants(weights, biases)
    bias_sum = prefix[-1] + biases[-1]
    forward_bytes, both_bytes = fused_bytes(setup)
    forward = graph_seconds(lambda: mc.multi_cross_forward_triton(x0, weights, c, bias_sum, torch.bfloat16, tiles))
    backward = graph_seconds(lambda: mc.multi_cross_backward_triton(dy, x0, weights, c, tiles))
    return [Row(f"forward kernel alone{label}", forward, forward_bytes),
            Row(f"backward kernel alone{label}", backward, both_bytes - forward_bytes)]


def _stacked_inputs(setup: Setup):
    x0, weights, biases, dy = setup.inputs()
    return x0, torch.stack(weights), torch.stack(biases), dy


def sweep(setup: Setup) -> list[Row]:
    """The kernels alone for each launch shape: what ``CrossTiles``' defaults should be on this GPU."""
    src = torch.empty(setup.batch * setup.features, dtype=torch.bfloat16, device=setup.device).fill_(1.0)
    dst = torch.empty_like(src)
    rows = [Row("copy x0 (read + write)", graph_seconds(lambda: dst.copy_(src)), 2.0 * src.nbytes)]
    for tiles in (mc.CrossTiles(rows, fw, bw, fps, bps) for rows in (16, 32) for fw in (4, 8) for bw in (4, 8, 16)
                  for fps, bps in ((4, 1), (8, 2), (8, 4))):
        label = (f" rows={tiles.rows} warps={tiles.forward_warps}/{tiles.backward_warps} "
                 f"per SM={tiles.forward_per_sm}/{tiles.backward_per_sm}")
        try:
            rows += kernel_rows(setup, tiles, label)
        except Exception as error:  # noqa: BLE001 - a shape out of resources is reported, not fatal
            print(f"{label}: {type(error).__name__}: {str(error)[:120]}")
    return rows


def print_table(rows: list[Row], setup: Setup) -> None:
    copy_bandwidth = rows[0].bytes_moved / rows[0].seconds
    name = torch.cuda.get_device_name(setup.device) if setup.device.type == "cuda" else "cpu"
    print(f"device: {name}; B={setup.batch}, n={setup.features}, L={setup.layers}, x0 bf16, params fp32, "
          "bf16 autocast")
    print(f"{'measurement':52} {'time (us)':>11} {'ns/sample':>10} {'GB/s':>9} {'% copy':>7}")
    for r in rows:
        bandwidth = r.bytes_moved / r.seconds
        print(f"{r.name:52} {r.seconds * 1e6:>11.1f} {r.seconds * 1e9 / setup.batch:>10.2f} "
              f"{bandwidth / 1e9:>9.1f} {100 * bandwidth / copy_bandwidth:>6.1f}%")


def parse_setup(argv: list[str] | None = None) -> Setup:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU, to exercise the code")
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--features", type=int, default=429)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--sweep", action="store_true", help="only the kernels alone, for each launch shape")
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        return Setup(torch.device("cpu"), 64, args.features, args.layers, 2, 1, compile=False)
    if not torch.cuda.is_available():
        parser.error("no CUDA device: use --cpu-smoke")
    return Setup(torch.device("cuda"), args.batch, args.features, args.layers, args.iters, 5,
                 compile=not args.no_compile and not args.sweep, sweep=args.sweep)


def main(argv: list[str] | None = None) -> None:
    setup = parse_setup(argv)
    print_table(sweep(setup) if setup.sweep else measure(setup), setup)


if __name__ == "__main__":
    main()
