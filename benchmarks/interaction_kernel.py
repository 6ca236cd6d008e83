"""DLRM dot-interaction micro-benchmark: the fused op against the bmm reference, forward and forward+backward.

    python benchmarks/interaction_kernel.py                # GPU: B=65536, 26 slots + 1 bottom vector, E=128, bf16
    python benchmarks/interaction_kernel.py --cpu-smoke    # CPU: tiny sizes, only to exercise the code

"fused op" is ``hugectr.kernels.dot_interaction.dot_interaction`` (Triton on CUDA; on CPU the
reference inside the custom op); "torch reference" is the layer's former bmm + index_select math
with torch autograd. Backward uses ``torch.autograd.grad`` (no ``.grad`` accumulation). GB/s counts
the bytes an op must move at least once: forward reads X (B, S+1, E) and writes the output
(B, W); backward reads dOut and X and writes dX. "% copy" compares with a device copy in this run.
"""

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).parent))
from timing import median_seconds as time_call  # noqa: E402

from hugectr.kernels.dispatch import triton_enabled  # noqa: E402
from hugectr.kernels.dot_interaction import dot_interaction, dot_interaction_reference, output_width  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class Row(NamedTuple):
    name: str
    seconds: float
    bytes_moved: float


def measure(args, device: torch.device) -> list[Row]:
    dtype = DTYPES[args.dtype]
    batch, slots, vec = args.batch, args.slots, args.dim
    mlp = torch.randn(batch, vec, device=device, dtype=dtype, requires_grad=True)
    emb = torch.randn(batch, slots, vec, device=device, dtype=dtype, requires_grad=True)
    grad = torch.randn(batch, output_width(slots, vec), device=device, dtype=dtype)
    size = grad.element_size()
    x_bytes, out_bytes = batch * (slots + 1) * vec * size, grad.numel() * size
    forward_bytes, backward_bytes = x_bytes + out_bytes, out_bytes + 2 * x_bytes
    src = torch.empty(max(x_bytes, 1 << 20) // 4, device=device)
    dst = torch.empty_like(src)
    rows = [Row("copy (read + write)", time_call(device, lambda: dst.copy_(src), args.iters, 3), 2.0 * src.nbytes)]
    fused = "triton" if triton_enabled(device) else "torch inside"
    for name, op in ((f"fused op ({fused})", dot_interaction), ("torch reference (bmm)", dot_interaction_reference)):
        with torch.no_grad():
            rows.append(Row(f"{name}, fwd", time_call(device, lambda: op(mlp, emb), args.iters, 3), forward_bytes))

        def forward_backward():
            return torch.autograd.grad(op(mlp, emb), (mlp, emb), grad)

        rows.append(Row(f"{name}, fwd+bwd", time_call(device, forward_backward, args.iters, 3),
                        forward_bytes + backward_bytes))
    return rows


def print_table(rows: list[Row], args, device: torch.device) -> None:
    copy_bandwidth = rows[0].bytes_moved / rows[0].seconds
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; batch {args.batch}, {args.slots} slots + 1 bottom vector, E={args.dim}, {args.dtype}")
    print(f"{'measurement':40} {'time (us)':>11} {'GB/s':>9} {'% copy':>7}")
    for r in rows:
        bandwidth = r.bytes_moved / r.seconds
        print(f"{r.name:40} {r.seconds * 1e6:>11.1f} {bandwidth / 1e9:>9.1f} {100 * bandwidth / copy_bandwidth:>6.1f}%")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU, to exercise the code")
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--slots", type=int, default=26)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--iters", type=int, default=50)
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        args.batch, args.slots, args.dim, args.iters = 64, 4, 16, 2
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        parser.error("no CUDA device: use --cpu-smoke")
    print_table(measure(args, device), args, device)


if __name__ == "__main__":
    main()
