"""Voxel regions for engines and voxel editors: MagicaVoxel ``.vox`` and GLB of the chunk meshes.

``.vox`` (version 150, https://github.com/ephtracy/voxel-model): Z up, at most ``MODEL_SIDE`` voxels
per axis per model, so a region is cut into models placed by a scene graph (root transform -> group ->
one transform + shape per model). A model's transform ``_t`` is its centre in voxels: its lowest corner
plus ``size // 2``, as MagicaVoxel places models. Voxel x is east, y north, z up, counted from the
region's lowest corner; colour index m is palette material m (index 0 is empty, so air is no voxel).
Every cell whose material is not air is a voxel (water and lava included).

GLB: all chunk meshes in one mesh, vertex colours from the palette (``write_mesh``, glTF's Y up).
A JSON sidecar states the voxel size and where the region's corner lies in the terrain's frame.
"""

from __future__ import annotations

import os
import struct
from itertools import product
from pathlib import Path

import numpy as np

from backend.export.meshes import write_mesh
from backend.export.paths import prepare_dir, safe_path, write_bytes, write_json
from backend.voxels.chunk import CHUNK, PALETTE, VoxelChunk

MODEL_SIDE = 256  # MagicaVoxel's limit per axis per model
VOX_FORMATS: tuple[str, ...] = ("vox", "glb")
MeshArrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # vertices, faces (F, 3|4), material per vertex or face


def region_grid(chunks: list[VoxelChunk]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The chunks' materials on one dense (x, y, z) grid (x east, y north, z up) and the lowest chunk key
    (i, j_max, k) it starts at. Cells of chunks not given are air."""
    if not chunks:
        raise ValueError("no chunks to export")
    if len({c.voxel_size for c in chunks}) != 1:
        raise ValueError("all chunks of a region must have one voxel size")
    keys = np.array([(c.key.i, c.key.j, c.key.k) for c in chunks])
    lo, hi = keys.min(0), keys.max(0)
    shape = (hi - lo + 1) * CHUNK
    grid = np.zeros((shape[0], shape[1], shape[2]), np.uint8)
    for chunk in chunks:
        i, j, k = chunk.key.i - lo[0], hi[1] - chunk.key.j, chunk.key.k - lo[2]  # y grows north: j counts down
        # (z, row, col) -> (x = col, y = north = last row first, z)
        block = np.transpose(chunk.material, (2, 1, 0))[:, ::-1, :]
        grid[i * CHUNK:(i + 1) * CHUNK, j * CHUNK:(j + 1) * CHUNK, k * CHUNK:(k + 1) * CHUNK] = block
    return grid, (int(lo[0]), int(hi[1]), int(lo[2]))


def _chunk(tag: bytes, content: bytes, children: bytes = b"") -> bytes:
    return tag + struct.pack("<ii", len(content), len(children)) + content + children


def _dict(pairs: dict[str, str]) -> bytes:
    out = struct.pack("<i", len(pairs))
    for key, value in pairs.items():
        for text in (key.encode(), value.encode()):
            out += struct.pack("<i", len(text)) + text
    return out


def vox_bytes(grid: np.ndarray) -> bytes:
    """A .vox file of an (X, Y, Z) uint8 grid of palette indices (0 empty), cut into models of at most
    MODEL_SIDE a side; empty models are left out."""
    models, nodes = b"", []
    for x0, y0, z0 in product(*(range(0, n, MODEL_SIDE) for n in grid.shape)):
        block = grid[x0:x0 + MODEL_SIDE, y0:y0 + MODEL_SIDE, z0:z0 + MODEL_SIDE]
        xyz = np.argwhere(block > 0)
        if len(xyz) == 0:
            continue
        voxels = np.column_stack([xyz, block[block > 0]]).astype(np.uint8)  # argwhere and mask share C order
        models += _chunk(b"SIZE", struct.pack("<iii", *block.shape))
        models += _chunk(b"XYZI", struct.pack("<i", len(voxels)) + voxels.tobytes())
        centre = np.array([x0, y0, z0]) + np.array(block.shape) // 2
        nodes.append(" ".join(str(int(v)) for v in centre))
    scene = _chunk(b"nTRN", struct.pack("<i", 0) + _dict({}) + struct.pack("<iiii", 1, -1, -1, 1) + _dict({}))
    children = [2 + 2 * m for m in range(len(nodes))]
    scene += _chunk(b"nGRP", struct.pack("<i", 1) + _dict({}) + struct.pack(f"<i{len(children)}i", len(children),
                                                                            *children))
    for m, translation in enumerate(nodes):
        scene += _chunk(b"nTRN", struct.pack("<i", 2 + 2 * m) + _dict({}) + struct.pack("<iiii", 3 + 2 * m, -1, 0, 1)
                        + _dict({"_t": translation}))
        scene += _chunk(b"nSHP", struct.pack("<i", 3 + 2 * m) + _dict({}) + struct.pack("<ii", 1, m) + _dict({}))
    palette = np.zeros((256, 4), np.uint8)  # entry m - 1 is colour index m
    palette[:len(PALETTE) - 1, :3] = [rgb for _, rgb in PALETTE[1:]]
    palette[:, 3] = 255
    body = (_chunk(b"PACK", struct.pack("<i", len(nodes))) + models + scene
            + _chunk(b"RGBA", palette.tobytes()))
    return b"VOX " + struct.pack("<i", 150) + _chunk(b"MAIN", b"", body)


def palette_colors(material: np.ndarray) -> np.ndarray:
    """(N, 4) uint8 RGBA sRGB of palette indices."""
    table = np.array([(*rgb, 255) for _, rgb in PALETTE], np.uint8)
    return table[material]


def combined_mesh(meshes: list[MeshArrays]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All chunk meshes as one triangle mesh: vertices, faces (F, 3), vertex colours (N, 4) uint8."""
    vertices, faces, colors, base = [], [], [], 0
    for v, f, material in meshes:
        if len(f) == 0:
            continue
        tris = f if f.shape[1] == 3 else np.concatenate([f[:, [0, 1, 2]], f[:, [0, 2, 3]]])
        per_vertex = material if len(material) == len(v) else np.repeat(material, f.shape[1])  # quads own 4 corners
        vertices.append(v)
        faces.append(tris + base)
        colors.append(palette_colors(per_vertex))
        base += len(v)
    if not vertices:
        raise ValueError("the region has no surface to write (all air or all solid)")
    return np.concatenate(vertices), np.concatenate(faces).astype(np.int32), np.concatenate(colors)


def export_voxel_region(chunks: list[VoxelChunk], meshes: list[MeshArrays], out_dir: str | os.PathLike[str],
                        name: str, formats: tuple[str, ...]) -> list[Path]:
    """Write ``{name}.vox`` and/or ``{name}.glb`` and the sidecar ``{name}_voxels.json`` atomically
    inside ``out_dir``; returns the written paths."""
    unknown = [f for f in formats if f not in VOX_FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown voxel export formats {unknown or list(formats)}; choose from {list(VOX_FORMATS)}")
    root = prepare_dir(out_dir)
    grid, (i, j, k) = region_grid(chunks)
    voxel = chunks[0].voxel_size
    written = []
    if "vox" in formats:
        written.append(write_bytes(safe_path(root, f"{name}.vox"), vox_bytes(grid)))
    if "glb" in formats:
        vertices, faces, colors = combined_mesh(meshes)
        written.append(write_mesh(safe_path(root, f"{name}.glb"), "glb", vertices, faces, colors=colors))
    corner = [i * CHUNK * voxel, -(j + 1) * CHUNK * voxel, k * CHUNK * voxel]
    sidecar = {"voxel_size_m": voxel, "voxels": list(grid.shape), "chunks": len(chunks),
               "frame": "x east, y north, z up, metres, the terrain mesh's centred frame",
               "vox_origin_m": corner, "vox_axes": "x east, y north, z up from vox_origin_m",
               "vox_model_side": MODEL_SIDE, "palette": [n for n, _ in PALETTE],
               "files": [p.name for p in written]}
    written.append(write_json(safe_path(root, f"{name}_voxels.json"), sidecar))
    return written
