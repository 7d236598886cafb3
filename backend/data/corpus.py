"""Build the training corpus: simulate maps per style, cut them into tiles, write shards.

Layout of ``out/``::

    manifest.json                 sizes, sha256 checksums, names, split membership
    train-00000.npz ...           shards of tiles from training maps
    heldout-00000.npz ...         shards of tiles from held-out maps (whole maps, never split)

Each shard is an uncompressed ``.npz`` readable with ``np.load(path, allow_pickle=False)``:

    heights   (N, T, T) float32 metres        masks  (N, K, T, T) float32, names in mask_names (K,)
    splat     (N, M, T, T) float32            splat_names (M,)
    style     (N,) int16 index into style_names (S,)
    map_id, row, col (N,) int32: tile (row, col) of map map_id, so neighbours can be found
    params    (N, P) float32, names in param_names (P,), NaN where a style has no such param
    sliders   (N, 4) float32 (slider_names)   cell_size (N,) float32 metres

Zip entries carry a fixed timestamp, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from backend.simulation.artist_masks import SPLAT_NAMES
from backend.simulation.style_specs import STYLE_NAMES, parameter_names
from backend.simulation.styles import MASK_NAMES, SLIDER_NAMES, simulate_with_params
from backend.terrain import Heightfield

FORMAT_VERSION = 1
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> int:
    """Write an uncompressed, deterministic .npz (fixed entry order and timestamps); returns bytes."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            arr = np.ascontiguousarray(arrays[name])
            if arr.dtype == object:
                raise ValueError(f"array {name!r} has dtype object; shards must not need pickle")
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    return path.stat().st_size


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def param_names() -> tuple[str, ...]:
    """Union of every style's parameter names (sorted), then the slider values."""
    return parameter_names() + tuple(f"slider_{s}" for s in SLIDER_NAMES)


def cut_tiles(hf: Heightfield, tile: int, mask_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Non-overlapping (tile x tile) tiles of one map, row-major, with their tile (row, col).

    Returns heights (N, T, T), masks (N, K, T, T), splat (N, M, T, T), row, col (N,).
    Missing masks or splat are zeros.
    """
    h, w = hf.shape
    if tile < 8 or tile > min(h, w):
        raise ValueError(f"tile {tile} must be in [8, {min(h, w)}] for a {h}x{w} map")
    nr, nc = h // tile, w // tile
    rows, cols = np.divmod(np.arange(nr * nc), nc)

    def cut(a: np.ndarray) -> np.ndarray:  # (H, W) -> (N, T, T)
        a = a[:nr * tile, :nc * tile].reshape(nr, tile, nc, tile).transpose(0, 2, 1, 3)
        return a.reshape(nr * nc, tile, tile)

    zeros = np.zeros(hf.shape, np.float32)
    masks = np.stack([cut(hf.masks.get(m, zeros)) for m in mask_names], axis=1)
    splat_src = hf.splat if hf.splat is not None else np.zeros((h, w, len(SPLAT_NAMES)), np.float32)
    splat = np.stack([cut(splat_src[..., i]) for i in range(splat_src.shape[-1])], axis=1)
    return {"heights": cut(hf.heights), "masks": masks.astype(np.float32), "splat": splat.astype(np.float32),
            "row": rows.astype(np.int32), "col": cols.astype(np.int32)}


class ShardWriter:
    """Buffers tiles of one split and writes a shard every ``shard_tiles`` tiles."""

    def __init__(self, out: Path, split: str, shard_tiles: int, constants: dict[str, np.ndarray]):
        self.out, self.split, self.shard_tiles, self.constants = out, split, shard_tiles, constants
        self.buffer: list[dict[str, np.ndarray]] = []
        self.shards: list[dict[str, object]] = []

    def add(self, tiles: dict[str, np.ndarray]) -> None:
        self.buffer.append(tiles)
        while sum(len(b["heights"]) for b in self.buffer) >= self.shard_tiles:
            self._write(self.shard_tiles)

    def _write(self, n: int) -> None:
        merged = {k: np.concatenate([b[k] for b in self.buffer]) for k in self.buffer[0]}
        head = {k: v[:n] for k, v in merged.items()}
        rest = {k: v[n:] for k, v in merged.items()}
        self.buffer = [rest] if len(rest["heights"]) else []
        name = f"{self.split}-{len(self.shards):05d}.npz"
        size = write_npz(self.out / name, {**head, **self.constants})
        self.shards.append({"file": name, "tiles": int(len(head["heights"])), "bytes": size,
                            "sha256": sha256(self.out / name)})

    def close(self) -> list[dict[str, object]]:
        if self.buffer:
            self._write(sum(len(b["heights"]) for b in self.buffer))
        return self.shards


def build_corpus(out: str | Path, seed: int, maps_per_style: int, map_size: int = 256, tile: int = 64,
                 cell_size: float = 30.0, max_bytes: int | None = None, heldout_fraction: float = 0.1,
                 styles: Iterable[str] = STYLE_NAMES, shard_tiles: int = 256, device: str = "cpu",
                 progress: bool = True) -> dict[str, object]:
    """Simulate ``maps_per_style`` maps of every style and write tiled shards + manifest.json.

    Held-out maps: the last round(heldout_fraction * maps_per_style) maps of each style (at least
    one when maps_per_style >= 2 and heldout_fraction > 0). ``max_bytes`` caps the tile bytes:
    simulation stops before a map whose tiles would pass it (manifest "truncated": true).
    Deterministic: map seeds derive from (seed, style, index) only.
    """
    styles = tuple(styles)
    for s in styles:
        if s not in STYLE_NAMES:
            raise ValueError(f"unknown style {s!r}; expected one of {STYLE_NAMES}")
    if maps_per_style < 1:
        raise ValueError(f"maps_per_style must be >= 1, got {maps_per_style}")
    if not 0 <= heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_hold = 0
    if maps_per_style >= 2 and heldout_fraction > 0:
        n_hold = max(1, int(round(heldout_fraction * maps_per_style)))
    names = param_names()
    constants = {"mask_names": np.array(MASK_NAMES), "splat_names": np.array(SPLAT_NAMES),
                 "style_names": np.array(STYLE_NAMES), "param_names": np.array(names),
                 "slider_names": np.array(SLIDER_NAMES)}
    writers = {s: ShardWriter(out, s, shard_tiles, constants) for s in ("train", "heldout")}
    total_bytes, truncated, maps = 0, False, []
    jobs = [(s, j) for s in styles for j in range(maps_per_style)]
    from tqdm import tqdm  # the train extra: serving imports this module for cut_tiles, never runs this

    for map_id, (style, j) in enumerate(tqdm(jobs, desc="corpus", unit="map", disable=not progress)):
        map_seed = int(np.random.SeedSequence([seed, STYLE_NAMES.index(style), j]).generate_state(1)[0])
        n_tiles = (map_size // tile) ** 2
        tile_bytes = n_tiles * tile * tile * 4 * (1 + len(MASK_NAMES) + len(SPLAT_NAMES))
        if max_bytes is not None and total_bytes + tile_bytes > max_bytes:
            truncated = True
            break
        hf, params = simulate_with_params(style, map_seed, map_size, cell_size, device)
        tiles = cut_tiles(hf, tile, MASK_NAMES)
        n = len(tiles["heights"])
        pvec = np.array([params.get(k, np.nan) for k in names], np.float32)
        tiles.update(
            style=np.full(n, STYLE_NAMES.index(style), np.int16),
            map_id=np.full(n, map_id, np.int32),
            params=np.tile(pvec, (n, 1)),
            sliders=np.tile(np.array([params[f"slider_{k}"] for k in SLIDER_NAMES], np.float32), (n, 1)),
            cell_size=np.full(n, cell_size, np.float32),
        )
        split = "heldout" if j >= maps_per_style - n_hold else "train"
        writers[split].add(tiles)
        total_bytes += tile_bytes
        maps.append({"map_id": map_id, "style": style, "seed": map_seed, "split": split, "tiles": n})
    shards = {s: w.close() for s, w in writers.items()}
    manifest: dict[str, object] = {
        "format_version": FORMAT_VERSION,
        "seed": seed, "maps_per_style": maps_per_style, "map_size": map_size, "tile": tile,
        "cell_size": cell_size, "max_bytes": max_bytes, "truncated": truncated,
        "styles": list(styles), "style_names": list(STYLE_NAMES), "mask_names": list(MASK_NAMES),
        "splat_names": list(SPLAT_NAMES), "param_names": list(names), "slider_names": list(SLIDER_NAMES),
        "maps": maps, "shards": shards,
        "total_tiles": sum(m["tiles"] for m in maps),
        "total_bytes": sum(int(s["bytes"]) for ss in shards.values() for s in ss),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Simulate terrain per style and write a tiled corpus.")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--maps-per-style", type=int, default=4)
    ap.add_argument("--map-size", type=int, default=256)
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--cell-size", type=float, default=30.0, help="metres per cell")
    ap.add_argument("--max-bytes", type=int, default=None, help="cap on tile bytes written")
    ap.add_argument("--heldout-fraction", type=float, default=0.1)
    ap.add_argument("--styles", default=",".join(STYLE_NAMES), help="comma-separated style names")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    m = build_corpus(args.out, args.seed, args.maps_per_style, args.map_size, args.tile, args.cell_size,
                     args.max_bytes, args.heldout_fraction, args.styles.split(","), device=args.device)
    print(f"{m['total_tiles']} tiles, {m['total_bytes'] / 1e6:.1f} MB in {args.out}"
          + (" (truncated by --max-bytes)" if m["truncated"] else ""))


if __name__ == "__main__":
    main()
