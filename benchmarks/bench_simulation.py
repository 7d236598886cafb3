"""Time one 256² and one 1024² simulated map (CPU, and CUDA when present) and the corpus rate.

    python benchmarks/bench_simulation.py [--styles alpine,rolling_hills] [--tile 64]

Prints a header naming the hardware, seconds per map, and the tiles/hour and MB/hour the 256²
timing implies for ``python -m backend.data.corpus`` (heights + masks + splat, float32).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from backend.simulation.artist_masks import SPLAT_NAMES  # noqa: E402
from backend.simulation.styles import MASK_NAMES, simulate  # noqa: E402
from benchmarks.hardware import header  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--styles", default="alpine,rolling_hills,desert_dunes")
    ap.add_argument("--tile", type=int, default=64)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(header("simulation"))
    planes = 1 + len(MASK_NAMES) + len(SPLAT_NAMES)
    for device in devices:
        for style in args.styles.split(","):
            for size in (256, 1024):
                t0 = time.perf_counter()
                simulate(style, seed=0, size=size, cell_size=30.0, device=device)
                if device == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
                line = f"{device:4s} {style:14s} {size:5d}^2: {dt:7.2f} s/map"
                if size == 256:
                    tiles = (size // args.tile) ** 2 * 3600.0 / dt
                    mb = tiles * args.tile * args.tile * 4 * planes / 1e6
                    line += f"  -> {tiles:9.0f} tiles/h, {mb:8.0f} MB/h ({args.tile}² tiles, {planes} float32 planes)"
                print(line, flush=True)


if __name__ == "__main__":
    main()
