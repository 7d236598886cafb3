"""Voxel brushes along a stroke: carve a tunnel, fill, regenerate. The stroke is a 3D polyline in world
metres with a radius; its shape is the union of capsules around its segments.

Densities stay signed distances near the stroke: carve takes ``min(density, distance - radius)``, fill
``max(density, radius - distance)``, regenerate blends towards the source's next variant over one voxel.
Only cells within ``radius + MARGIN_VOXELS`` voxels of the stroke change, so the chunks a stroke touches
(and the chunks whose meshes read their first layer) are known before anything is computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from typing import Any, Literal

import numpy as np

from backend.voxels.chunk import CHUNK, FLUIDS, MATERIAL, ChunkKey, VoxelChunk

Op = Literal["carve", "fill", "regenerate"]
OPS: tuple[str, ...] = ("carve", "fill", "regenerate")
MARGIN_VOXELS = 2.0  # cells this far outside the radius may still change value (never sign)
MAX_POINTS = 1024
MAX_RADIUS_M = 64.0


# the materials the add-on's Fill with menu offers (any solid material of the palette is accepted)
FILL_NOTES: dict[str, tuple[str, str]] = {
    name: (name.replace("_", " ").title(), f"Fill with {name.replace('_', ' ')}")
    for name in ("rock", "rock_light", "rock_dark", "dirt", "sand", "gravel", "ice", "ore_gold", "crystal")}


@dataclass(frozen=True)
class VoxelStroke:
    op: Op
    points: np.ndarray  # (P, 3) float64 world metres (x east, y north, z up), P >= 1
    radius: float  # metres
    material: int = MATERIAL["rock"]  # what fill puts where there was air

    @classmethod
    def from_params(cls, params: Any) -> VoxelStroke:
        """ValueError names the bad field."""
        if not isinstance(params, dict) or set(params) - {"op", "points", "radius", "material"}:
            raise ValueError(f"edit must be a map of op, points, radius, material; got {params!r:.200}")
        op = params.get("op")
        if op not in OPS:
            raise ValueError(f"edit.op must be one of {OPS}, got {op!r:.40}")
        points = params.get("points")
        if not isinstance(points, list) or not 1 <= len(points) <= MAX_POINTS or not all(
                isinstance(p, (list, tuple)) and len(p) == 3 for p in points):
            raise ValueError(f"edit.points must be a list of 1 to {MAX_POINTS} [x, y, z] points in metres")
        try:
            xyz = np.array(points, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("edit.points must hold numbers") from None
        if not np.isfinite(xyz).all() or np.abs(xyz).max() > 1e7:
            raise ValueError("edit.points must be finite metres within 10,000 km")
        radius = params.get("radius")
        if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not 0 < radius <= MAX_RADIUS_M:
            raise ValueError(f"edit.radius must be metres in (0, {MAX_RADIUS_M}], got {radius!r:.40}")
        name = params.get("material", "rock")
        if name not in MATERIAL or MATERIAL[name] == 0:
            raise ValueError(f"edit.material must be a solid palette material, got {name!r:.40}")
        return cls(op, xyz, float(radius), MATERIAL[name])

    def reach(self, voxel_size: float) -> float:
        return self.radius + MARGIN_VOXELS * voxel_size

    def chunks(self, voxel_size: float) -> list[ChunkKey]:
        """The chunks whose cells the stroke may change (over its bounding box plus reach)."""
        side = CHUNK * voxel_size
        lo = self.points.min(0) - self.reach(voxel_size)
        hi = self.points.max(0) + self.reach(voxel_size)
        # x -> i, y -> j (south: -y), z -> k; cell centres sit half a voxel inside a chunk
        i0, i1 = math.floor(lo[0] / side), math.floor(hi[0] / side)
        j0, j1 = math.floor(-hi[1] / side), math.floor(-lo[1] / side)
        k0, k1 = math.floor(lo[2] / side), math.floor(hi[2] / side)
        return [ChunkKey(i, j, k) for k, j, i in product(range(k0, k1 + 1), range(j0, j1 + 1), range(i0, i1 + 1))]


def stroke_distance(chunk: VoxelChunk, points: np.ndarray, limit: float) -> np.ndarray:
    """(CHUNK,)*3 distance in metres from each cell centre to the polyline, capped at ``limit``."""
    x, y, z = chunk.cell_centres()
    cells = np.stack(np.meshgrid(z, y, x, indexing="ij")[::-1], -1).reshape(-1, 3)  # (N, 3) as (x, y, z)
    best = np.full(len(cells), limit, np.float64)
    lo, hi = cells.min(0) - limit, cells.max(0) + limit
    segments = [(points[s], points[min(s + 1, len(points) - 1)]) for s in range(max(1, len(points) - 1))]
    for a, b in segments:
        if (np.minimum(a, b) > hi).any() or (np.maximum(a, b) < lo).any():
            continue  # the segment's box is out of reach of the chunk
        ab = b - a
        t = np.clip(((cells - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
        np.minimum(best, np.linalg.norm(cells - (a + t[:, None] * ab), axis=1), out=best)
    return best.reshape((CHUNK,) * 3)


def apply_stroke(chunk: VoxelChunk, stroke: VoxelStroke, fresh: VoxelChunk | None = None) -> VoxelChunk:
    """The chunk after the stroke (a new chunk; the input is left alone). ``fresh`` is the source's next
    variant of the chunk, needed by regenerate."""
    reach = stroke.reach(chunk.voxel_size)
    dist = stroke_distance(chunk, stroke.points, reach)
    near = dist < reach
    density, material = chunk.density.copy(), chunk.material.copy()
    if stroke.op == "carve":
        density[near] = np.minimum(density[near], dist[near] - stroke.radius)
        material[dist < stroke.radius] = MATERIAL["air"]  # the tunnel holds no water or lava either
    elif stroke.op == "fill":
        was_air = density <= 0
        density[near] = np.maximum(density[near], stroke.radius - dist[near])
        material[was_air & (density > 0)] = stroke.material
    else:
        if fresh is None or fresh.key != chunk.key:
            raise ValueError("regenerate needs the source's fresh version of the same chunk")
        weight = np.clip((stroke.radius - dist) / chunk.voxel_size + 0.5, 0.0, 1.0)
        density = ((1 - weight) * density + weight * fresh.density).astype(np.float32)
        material = np.where(weight >= 0.5, fresh.material, material)
    return VoxelChunk(chunk.key, chunk.voxel_size, density, _settle(density, material))


def _settle(density: np.ndarray, material: np.ndarray) -> np.ndarray:
    """Materials consistent with the density: air where it is not solid (fluids stay), rock where a
    solid cell had none."""
    material = material.copy()
    material[(density <= 0) & ~np.isin(material, list(FLUIDS))] = MATERIAL["air"]
    material[(density > 0) & (material == MATERIAL["air"])] = MATERIAL["rock"]
    return material
