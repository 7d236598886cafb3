"""The real DEMs measured as the realism reference: the figures in data/real_dems/README.md.

    python -m backend.metrics.real_reference [--out data/real_dems]   # metrics.json, hillshade.png, README table

Kept apart from ``backend/data/real_dems.py`` (which fetches and crops the files) because measuring uses the
realism metrics, which sit above the data layer.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from backend.data.real_dems import (DATA_DIR, MEASURE_SCALES, SHEET, SOURCES, table_rows, finest_square_cell, load,
                                    real_samples, resample_square, write_readme)
from backend.durable import write_bytes
from backend.metrics.realism import contact_sheet, terrain_features
from backend.terrain import Heightfield


def summary(terrains: list[Heightfield]) -> dict[str, float]:
    """Mean pit density, drainage-area exceedance exponent and hypsometric integral over ``terrains``."""
    feats = [terrain_features(t) for t in terrains]  # pits hold log10(share + 1e-5): undone below
    rows, cols = terrains[0].shape
    return {"cell_m": terrains[0].cell_size, "rows": rows, "cols": cols, "crops": len(terrains),
            "pit_density": float(np.mean([10 ** f["pits"]["log_pit_density"] - 1e-5 for f in feats])),
            "area_exponent": float(np.nanmean([f["drainage"]["area_exponent"] for f in feats])),
            "hypsometric_integral": float(np.mean([f["hypsometry"]["integral"] for f in feats]))}


def measure_source(name: str, folder: Path = DATA_DIR) -> dict[str, dict[str, float]]:
    """One source: the whole map at its finest square cell ("native") and crops at ``MEASURE_SCALES``
    (a scale is left out where the source is coarser or too small for one crop)."""
    grid = load(name, folder)
    scales = {"native": summary([resample_square(grid, finest_square_cell(grid))])}
    for cell, side in MEASURE_SCALES:
        try:
            scales[f"{cell:g}m/{side}"] = summary(real_samples(cell, side, (name,), folder))
        except ValueError:
            continue  # coarser than the scale or too small for one crop: no entry
    return scales


def measure(folder: Path = DATA_DIR) -> dict[str, dict[str, dict[str, float]]]:
    """``measure_source`` of every source, by name."""
    return {s.name: measure_source(s.name, folder) for s in SOURCES}


def write_sheet(folder: Path = DATA_DIR) -> Path:
    """Hillshades of every source, whole, at its finest square cell: what the metrics describe."""
    grids = {s.name: load(s.name, folder) for s in SOURCES}
    whole = [resample_square(g, finest_square_cell(g), name) for name, g in grids.items()]
    return contact_sheet(whole, folder / SHEET, cols=3)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Measure the real DEMs: metrics.json, hillshade.png, README table.")
    ap.add_argument("--out", type=Path, default=DATA_DIR, help="folder of the extracted files")
    args = ap.parse_args(argv)
    metrics = measure(args.out)
    write_bytes(args.out / "metrics.json", (json.dumps(metrics, indent=1) + "\n").encode())
    write_sheet(args.out)
    print("\n".join(table_rows(metrics)))
    print(write_readme(args.out))


if __name__ == "__main__":
    main()
