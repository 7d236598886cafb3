"""The README's figures, computed from benchmarks/results/ and the reports' committed results: written into the
docs, never typed.

In README.md (and docs/*.md) every measured figure sits between markers, ``<!--fig:NAME-->0.42 s<!--/fig-->``
(invisible on GitHub). ``python -m benchmarks.figures`` rewrites every marked figure from the results files;
``tests/test_readme_figures.py`` fails when a marked figure differs from what the results say.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REPORTS = ROOT / "reports"
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
MARKER = re.compile(r"<!--fig:(?P<name>[a-z0-9_]+)-->(?P<value>.*?)<!--/fig-->")


def _text(name: str) -> str:
    return (RESULTS / name).read_text()


def _number(name: str, pattern: str) -> float:
    """The first group of ``pattern`` in a results file, as a float; a clear error if the file changed shape."""
    found = re.search(pattern, _text(name), flags=re.M)
    if found is None:
        raise ValueError(f"benchmarks/results/{name} has no line matching {pattern!r}")
    return float(found.group(1))


def _brush_range(window: int, column: int) -> str:
    """Min-max over the brush kinds of one column of brush_cpu.txt's table, for one window size."""
    rows = [line.split() for line in _text("brush_cpu.txt").splitlines() if line.strip().startswith(f"{window}² ")]
    if not rows:
        raise ValueError(f"benchmarks/results/brush_cpu.txt has no {window}² rows")
    values = [float(row[column]) for row in rows]
    return f"{min(values):.0f}-{max(values):.0f} ms"


def _brush_overhead() -> str:
    """End to end over in-process compute, min-max over every row (the last column)."""
    values = [float(line.split()[-1]) for line in _text("brush_cpu.txt").splitlines() if re.match(r"\s+\d+² ", line)]
    return f"{min(values):.2f}-{max(values):.2f}x"


def _world_tile_cpu_s(lod: int) -> str:
    tiles_per_cpu_s = _number("world_cpu.txt", rf"^stream fresh world, lod {lod}: .*= ([\d.]+) tiles per CPU second")
    return f"{1.0 / tiles_per_cpu_s:.1f} s"


def _measured(name: str, pattern: str, unit: str, digits: int = 0) -> Callable[[], str]:
    return lambda: f"{_number(name, pattern):.{digits}f} {unit}"


def _reported(name: str, *keys: str, digits: int = 2, scale: float = 1.0) -> Callable[[], str]:
    """A figure a report committed (reports/NAME, a JSON file), found by its keys (times ``scale``: 100 for a share
    shown as a percentage)."""
    def value() -> str:
        found = json.loads((REPORTS / name).read_text())
        for key in keys:
            found = found[key]
        return f"{scale * float(found):.{digits}f}"

    return value


TERRAIN = "terrain_models/results.json"


FIGURES: dict[str, Callable[[], str]] = {
    "learned_256_interactive": _measured("learned_cpu.txt", r"256\^2 interactive\s+erosion light\s*: median\s+([\d.]+) s",
                                         "s", 2),
    "learned_256_raw": _measured("learned_cpu.txt", r"256\^2 interactive\s+erosion off\s*: median\s+([\d.]+) s", "s", 2),
    "learned_512_interactive": _measured("learned_cpu.txt", r"512\^2 interactive\s+erosion light\s*: median\s+([\d.]+) s",
                                         "s", 2),
    "learned_1024_ratio": _measured("learned_cpu.txt",
                                    r"1024\^2 interactive\s+erosion light\s*: median .*?runs,\s+([\d.]+)x\)", "x"),
    "brush_live_128": lambda: _brush_range(128, 5),
    "brush_live_256": lambda: _brush_range(256, 5),
    "brush_commit_128": lambda: _brush_range(128, 2),
    "brush_commit_256": lambda: _brush_range(256, 2),
    "brush_e2e_over_compute": _brush_overhead,
    "blender_write_1024": _measured("blender_apply_cpu.txt", r"^attributes.*?median\s+([\d.]+) ms", "ms", 1),
    "blender_write_co_1024": _measured("blender_apply_cpu.txt", r"^baseline vertices.*?median\s+([\d.]+) ms", "ms"),
    "transport_4mib": _measured("transport_cpu.txt",
                                r"^1024\^2 heightfield \(4 MiB\)\s+codec\s+\S+\s+\S+\s+([\d.]+)", "GB/s", 1),
    "world_tile_lod0_cpu": lambda: _world_tile_cpu_s(0),
    "world_first_tile": _measured("world_cpu.txt", r"^stream fresh world: first tile after ([\d.]+) s", "s"),
    "world_all_tiles": _measured("world_cpu.txt", r"^stream fresh world: first tile .* all \d+ in ([\d.]+) s", "s"),
    "map_1024_cpu": _measured("world_cpu.txt", r"^map 1024² .*?wall, ([\d.]+) s CPU", "s"),
    "map_1024_wall": _measured("world_cpu.txt", r"^map 1024² .*?: ([\d.]+) s wall", "s"),
    "learned_1024_cuda": _measured("learned_cuda.txt", r"1024\^2 interactive\s+erosion light\s*: median\s+([\d.]+) s",
                                   "s", 2),
    "learned_1024_cuda_raw": _measured("learned_cuda.txt", r"1024\^2 interactive\s+erosion off\s*: median\s+([\d.]+) s",
                                       "s", 2),
    "voxel_chunk_cpu": _measured("voxels_cpu.txt", r"^learned chunk, .*\(cpu, .*median\s+([\d.]+) ms", "ms"),
    "voxel_chunk_cuda": _measured("voxels_cuda.txt", r"^learned chunk, .*\(cuda, .*median\s+([\d.]+) ms", "ms"),
    "voxel_elongation": _reported("voxels/results.json", "over_styles", "elongation"),
    "voxel_elongation_as_drawn": _reported("voxels/results.json", "over_styles", "elongation_as_drawn"),
    "voxel_corpus_elongation": _reported("voxels/results.json", "over_styles", "corpus_elongation"),
    "voxel_cave_share_ratio": _reported("voxels/results.json", "over_styles", "grown"),
    "voxel_memory_rich_poor": _reported("voxel_memory/summary.json", "rich_poor", "served"),
    "valley_deepest_cut": _reported("valleys/results.json", "this checkout", "deepest_cut_m"),
    "valley_deepest_cut_before": _reported("valleys/results.json", "falling all the way (85895aa)", "deepest_cut_m"),
    "valley_steepest_wall": _reported("valleys/results.json", "this checkout", "steepest_wall_deg"),
    "valley_steepest_wall_before": _reported("valleys/results.json", "falling all the way (85895aa)",
                                             "steepest_wall_deg"),
    "valley_land_steepest": _reported("valleys/results.json", "this checkout", "land_steepest_deg"),
    "classifier_generated": _reported(TERRAIN, "classifier", "generated"),
    "alpine_pits_raw": _reported(TERRAIN, "real_ground", "alpine", "interactive, erosion off", "pits_percent"),
    "alpine_pits_light": _reported(TERRAIN, "real_ground", "alpine", "interactive", "pits_percent"),
    "real_pits": _reported(TERRAIN, "real_samples", "pits_percent"),
    "same_seed_mean": _reported(TERRAIN, "style_over_seed", "same_seed", "mean"),
    "same_style_mean": _reported(TERRAIN, "style_over_seed", "same_style", "mean"),
    "same_seed_above": _reported(TERRAIN, "style_over_seed", "same_seed", "above_half", digits=0),
    "same_seed_pairs": _reported(TERRAIN, "style_over_seed", "same_seed", "pairs", digits=0),
    "same_seed_share": _reported(TERRAIN, "style_over_seed", "same_seed", "share_above_half", digits=1, scale=100),
    "real_pairs_share": _reported(TERRAIN, "style_over_seed", "real", "share_above_half", digits=1, scale=100),
    "surrogate_2048_cuda": _measured("surrogate_cuda.txt", r"2048\^2 K=10: .* x\s*([\d.]+)", "x", 1),
}


def render(text: str) -> str:
    """``text`` with every marked figure replaced by its value from the results."""
    def value(match: re.Match) -> str:
        name = match.group("name")
        if name not in FIGURES:
            raise ValueError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")
        return f"<!--fig:{name}-->{FIGURES[name]()}<!--/fig-->"

    return MARKER.sub(value, text)


def main() -> int:
    """Rewrite the marked figures of the README and docs from benchmarks/results/."""
    for path in DOCS:
        text = path.read_text()
        new = render(text)
        if new != text:
            path.write_text(new)
            print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
