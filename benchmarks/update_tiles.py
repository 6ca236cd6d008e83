"""Tile sweep of the fused backward + Adam Local kernel: which (positions per tile, tiles per program,
warps) moves the most bytes per second on this GPU, for each embedding dim.

    python benchmarks/update_tiles.py --dims 16 128

The defaults live in ``hugectr/kernels/embedding_update.py`` (``_blocks``, ``_warps``); this prints
what to set them to. Rows come pre-grouped, as the training step hands them over.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from embedding_kernels import _update_problem, measure_copy, parse_setup, time_call  # noqa: E402

from hugectr.kernels import embedding_update as update  # noqa: E402

CHUNKS = (8, 16, 32, 64)
SPANS = (32, 64, 128, 256, 512)
WARPS = (2, 4, 8)


def main() -> None:
    setup = parse_setup()
    copy = measure_copy(setup)[0]
    copy_bandwidth = copy.bytes_moved / copy.seconds
    nnz = setup.batch * setup.slots
    default_warps = update._warps
    for dim in setup.dims:
        occ, optimizer, weights = _update_problem(setup, dim)
        groups = update.group_occurrences(occ.inverse)
        grad = torch.randn(setup.batch, setup.slots, dim, device=setup.device).to(torch.bfloat16)
        moved = nnz * dim * 2 + 6 * occ.unique_rows.numel() * dim * 4
        default = update._blocks(dim)
        results = []
        for warps in WARPS:
            update._warps = lambda block_d, warps=warps: warps
            for chunk in CHUNKS:
                for span in SPANS:
                    if span < chunk or chunk * min(dim, 128) > 8192:
                        continue
                    tiles = (chunk, span // chunk)
                    seconds = time_call(setup, lambda: update.embedding_update_triton(
                        grad, occ, weights, optimizer, 1e-3, 5, groups=groups, tiles=tiles))
                    results.append((seconds, chunk, span, warps))
        update._warps = default_warps
        results.sort()
        print(f"D={dim}: default chunk {default[0]}, span {default[0] * default[1]}, warps {default_warps(default[2])}")
        for seconds, chunk, span, warps in results[:8] + results[-2:]:
            print(f"  chunk {chunk:3d} span {span:4d} warps {warps}: {seconds * 1e6:8.1f} us "
                  f"{100 * moved / seconds / copy_bandwidth:5.1f}% of copy")
        del occ, optimizer, weights, grad


if __name__ == "__main__":
    main()
