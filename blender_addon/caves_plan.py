"""The Caves panel's bpy-free part: which chunks a region asks for, the voxel jobs' params, and the
chunk meshes' Blender layout (loop starts, colours).

Frame: the terrain object's local metres (x east, y north, z up, the grid centred), which is the
backend's voxel frame: chunk (i, j, k) spans x [i S, (i+1) S), y (-(j+1) S, -j S], z [k S, (k+1) S)
with S = 32 voxels. Chunk objects carry the terrain's transform, so the caves follow the terrain.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

CHUNK = 32  # voxels per chunk side (backend/voxels/chunk.py)
MAX_AXIS_CHUNKS = 8  # per side of one region job (backend/server/voxel_job.py)
MAX_REGION_CHUNKS = 64
COLLECTION = "Worldsculpt Caves"
CHUNK_KEY = "worldsculpt_chunk"  # on each chunk object: [i, j, k]
COLOR_ATTRIBUTE = "ws_voxel_color"  # linear RGBA, per vertex (smooth) or per face corner (blocky)
MATERIAL_ATTRIBUTE = "ws_voxel_material"  # palette index, same domain
MATERIAL_NAME = "Worldsculpt Voxels"
# On the caves collection: {history_name(key): {"key": key, "seqs": [edit numbers]}} of the voxel edits stored
# in each world at each voxel size, so Blender's undo rewinds the lists with the chunk meshes (``edit_history``
# does the same for terrain). Property names are limited to 63 characters, so a world's path is a value.
EDITS_KEY = "worldsculpt_voxel_edits"


def history_name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def history_key(world: str, voxel_size: float) -> str:
    """One voxel history: a world folder's edits at one voxel size (each size has its own store)."""
    return f"{float(voxel_size):g}|{world}"


def split_history_key(key: str) -> tuple[str, float]:
    """(world, voxel size) of a ``history_key``."""
    size, _, world = key.partition("|")
    return world, float(size)


@dataclass(frozen=True)
class Region:
    chunk_min: tuple[int, int, int]
    chunk_count: tuple[int, int, int]

    @property
    def chunks(self) -> int:
        return self.chunk_count[0] * self.chunk_count[1] * self.chunk_count[2]


def lod_rings(x: float, y: float, region: Region, voxel_size: float, radius: int) -> dict[str, Any]:
    """The ``voxels`` job's ``lod``: full detail within ``radius`` chunks of the chunk under terrain-local
    (x, y) at the region's top layer (where the ground is), a level coarser per ring farther out."""
    side = CHUNK * voxel_size
    top = region.chunk_min[2] + region.chunk_count[2] - 1
    return {"focus": [math.floor(x / side), math.floor(-y / side), top], "radius": int(radius)}


def chunk_name(key: list[int] | tuple[int, ...]) -> str:
    return f"Cave {key[0]},{key[1]},{key[2]}"


def region_at(x: float, y: float, heights: np.ndarray, cell_size: float, voxel_size: float, size: int,
              depth: int) -> Region:
    """``size`` x ``size`` chunks centred on terrain-local (x, y), from ``depth`` chunk layers below the lowest
    ground in that footprint up to the chunk holding its highest ground. ValueError when too big for one job."""
    if size < 1 or depth < 1:
        raise ValueError(f"size and depth must be at least one chunk, got {size} and {depth}")
    side = CHUNK * voxel_size
    i0 = math.floor(x / side) - (size - 1) // 2
    j0 = math.floor(-y / side) - (size - 1) // 2
    h, w = heights.shape
    # the footprint in grid samples (the grid is centred: sample (0, 0) at (-(w-1)/2, (h-1)/2) cells)
    c0 = int(np.clip(math.floor(i0 * side / cell_size + (w - 1) / 2), 0, w - 1))
    c1 = int(np.clip(math.ceil((i0 + size) * side / cell_size + (w - 1) / 2), 0, w - 1))
    r0 = int(np.clip(math.floor(j0 * side / cell_size + (h - 1) / 2), 0, h - 1))
    r1 = int(np.clip(math.ceil((j0 + size) * side / cell_size + (h - 1) / 2), 0, h - 1))
    ground = heights[r0:r1 + 1, c0:c1 + 1]
    k_top = math.floor(float(ground.max()) / side)
    k0 = math.floor(float(ground.min()) / side) - depth + 1
    region = Region((i0, j0, k0), (size, size, k_top - k0 + 1))
    if max(region.chunk_count) > MAX_AXIS_CHUNKS or region.chunks > MAX_REGION_CHUNKS:
        raise ValueError(f"the region needs {size} x {size} x {region.chunk_count[2]} = {region.chunks} chunks; at most "
                         f"{MAX_REGION_CHUNKS} ({MAX_AXIS_CHUNKS} a side): pick fewer chunks, less depth or bigger voxels")
    return region


def frame_params(s: Any, cell_size: float, world: str) -> dict[str, Any]:
    """The params every voxel job of the panel's settings ``s`` shares (the heights go as an array). With the
    world's memory (generated chunks only) an unsent cave density is the one the memory reads near committed edits."""
    params = {"voxel_size": float(s.voxel_size), "mesh": s.mesh_style, "cell_size": float(cell_size),
              "world": world, "seed": int(s.seed), "cave_density": float(s.cave_density),
              "overhang": float(s.overhang), "passages": float(s.passages), "cover": s.cover, "source": s.source}
    if s.memory and s.source == "learned":
        params["memory"] = True
        if s.cave_density_from_memory:
            del params["cave_density"]
    return params


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] -> linear (the palette is sRGB; Blender's colour attributes are linear)."""
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def element_colours(material: np.ndarray, palette: list[list[int]]) -> np.ndarray:
    """(N * 4,) float32 linear RGBA of palette indices (palette: sRGB bytes per index)."""
    table = np.ones((len(palette), 4), np.float32)
    table[:, :3] = srgb_to_linear(np.asarray(palette, np.float64) / 255.0)
    if len(material) and int(material.max()) >= len(palette):
        raise ValueError(f"material index {int(material.max())} outside the palette of {len(palette)}")
    return np.ascontiguousarray(table[material]).ravel()


def check_mesh(vertices: np.ndarray, faces: np.ndarray, material: np.ndarray) -> None:
    """ValueError unless the arrays make a mesh (before bpy is touched)."""
    if vertices.ndim != 2 or vertices.shape[1] != 3 or not np.isfinite(vertices).all():
        raise ValueError(f"vertices must be finite (N, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] not in (3, 4):
        raise ValueError(f"faces must be (F, 3) or (F, 4), got {faces.shape}")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError("face indices outside the vertices")
    if len(material) not in (len(vertices), len(faces)):
        raise ValueError(f"{len(material)} materials for {len(vertices)} vertices and {len(faces)} faces")
