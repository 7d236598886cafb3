"""What fewer sampler steps cost a brush edit: time and quality against a many-step reference.

    python -m benchmarks.bench_brush_steps [--threads 1] [--models-dir models]

In this process, with the learned models: every brush kind once on a 256² terrain of the learned generator
(the test suite's stroke, scaled), with the default EditSettings and cheaper ones, against a reference of
8 detail and 16 coarse steps from the same noise. Per setting: median compute time, the RMS distance to the
reference inside the stroke over the reference's own change there (0 = the converged edit), the detail kept
(mean |Laplacian| in the stroke's core over the reference's: < 1 is smoother), the seam ratio at the rim
(~1 = no seam). Style paint draws desert dunes at their own relief (tens of metres) on the alpine terrain: its
style shows in the detail column, not in the patch's terrain-wide features, which stay the mountain's.
Writes benchmarks/results/brush_steps_cpu.txt.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from backend.editing import KINDS, EditSettings, Stroke, apply_stroke, seam_ratio
from backend.generators import DiffusionGenerator, GenerateRequest
from backend.models.shipped import MODELS_DIR
from benchmarks.hardware import header

RESULTS = Path(__file__).resolve().parent / "results" / "brush_steps_cpu.txt"
N, CELL, RELIEF = 256, 30.0, 1500.0
PATH = np.array([[128.0, 60.0, 1.0], [120.0, 128.0, 1.0], [132.0, 196.0, 1.0]])
RADIUS = 28.0
REFERENCE = EditSettings(detail_steps=8, coarse_steps=16)
SETTINGS = {"default": EditSettings(), "detail 2": EditSettings(detail_steps=2),
            "detail 2, coarse 4": EditSettings(detail_steps=2, coarse_steps=4),
            "detail 1, coarse 3": EditSettings(detail_steps=1, coarse_steps=3)}


def laplacian(h: np.ndarray) -> np.ndarray:
    h = h.astype(np.float64)
    return np.abs(h[1:-1, 2:] + h[1:-1, :-2] + h[2:, 1:-1] + h[:-2, 1:-1] - 4 * h[1:-1, 1:-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = DiffusionGenerator("cpu", models_dir=args.models_dir)

    def terrain(style: str, seed: int) -> np.ndarray:
        request = GenerateRequest(style_weights={style: 1.0}, resolution=N, size_m=CELL * (N - 1), height_m=RELIEF,
                                  seed=seed, generator="diffusion")
        return models.generate(request, lambda *_: None).heights

    heights = terrain("alpine", 3)
    lines = [header("brush steps"), f"# {N}² alpine terrain at {CELL:g} m, stroke of radius {RADIUS:g} cells, "
             f"reference {REFERENCE}; {args.repeats} timed runs per setting", "",
             f"{'kind':<12} {'setting':<20} {'ms':>7} {'x default':>9} {'rms/change':>10} {'detail':>7} {'seam':>6}"]
    for kind in KINDS:
        stroke = Stroke(kind, PATH, RADIUS, 0.8)
        style = {"desert_dunes": 1.0} if kind == "style_paint" else {"alpine": 1.0}

        def edit(settings: EditSettings):
            return apply_stroke(models.base, models.superres, heights, stroke, style, {}, 2.0, CELL, 1, settings)

        ref = edit(REFERENCE)
        r0, c0, r1, c1 = ref.window
        before, inside, core = heights[r0:r1, c0:c1], ref.weight > 0, ref.weight > 0.5
        change = float(np.sqrt(np.mean((ref.heights - before)[inside] ** 2)))
        default_ms = None
        for name, settings in {**SETTINGS, "reference": REFERENCE}.items():
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                out = edit(settings)
                times.append(time.perf_counter() - start)
            ms = float(np.median(times)) * 1000
            default_ms = default_ms or ms
            rms = float(np.sqrt(np.mean((out.heights - ref.heights)[inside] ** 2))) / max(change, 1e-9)
            detail = laplacian(out.heights)[core[1:-1, 1:-1]].mean() / laplacian(ref.heights)[core[1:-1, 1:-1]].mean()
            lines.append(f"{kind:<12} {name:<20} {ms:7.0f} {ms / default_ms:9.2f} {rms:10.3f} {detail:7.2f} "
                         f"{seam_ratio(out.heights, out.weight):6.2f}")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.write_text(text)


if __name__ == "__main__":
    main()
