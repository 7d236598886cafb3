"""Render a heightfield preview with Blender (bpy), headless. Run as a subprocess:

    python -m backend.render.preview --heights h.npy --cell-size 15.6 --out preview.png

Its own process because bpy is a whole Blender (global state, a second copy of its libraries):
the backend and the CLI never import it. Builds the grid with bulk ``foreach_set`` writes,
colours vertices by height, lights it with a low sun and renders with Workbench (fast, needs no
GPU) from an oblique camera that frames the whole terrain.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import bpy
import numpy as np

from backend.meshing.heightfield import grid_faces, grid_vertices

MAX_GRID = 512  # cells per side rendered; larger terrains are subsampled (a 512 px image cannot show more)


def height_colours(heights: np.ndarray) -> np.ndarray:
    """RGBA per vertex (H*W, 4): sea blue below 0 m, then green, brown, rock grey, snow."""
    stops = np.array([0.0, 0.15, 0.45, 0.75, 1.0])
    palette = np.array([[0.20, 0.35, 0.12], [0.30, 0.45, 0.16], [0.45, 0.36, 0.24], [0.50, 0.48, 0.46],
                        [0.95, 0.95, 0.97]])
    top = max(float(heights.max()), 1e-6)
    t = np.clip(heights / top, 0.0, 1.0).ravel()
    rgb = np.stack([np.interp(t, stops, palette[:, c]) for c in range(3)], axis=-1)
    rgb[heights.ravel() < 0] = (0.05, 0.18, 0.35)
    return np.concatenate([rgb, np.ones((rgb.shape[0], 1))], axis=-1).astype(np.float32)


def build_mesh(heights: np.ndarray, cell_size: float) -> bpy.types.Object:
    vertices = grid_vertices(heights, cell_size)
    triangles = grid_faces(*heights.shape)
    mesh = bpy.data.meshes.new("terrain")
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.ravel())
    mesh.loops.add(triangles.size)
    mesh.loops.foreach_set("vertex_index", triangles.ravel())
    mesh.polygons.add(len(triangles))
    mesh.polygons.foreach_set("loop_start", np.arange(0, triangles.size, 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    colours = mesh.color_attributes.new("height", "FLOAT_COLOR", "POINT")
    colours.data.foreach_set("color", height_colours(heights).ravel())
    mesh.validate()
    obj = bpy.data.objects.new("terrain", mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def setup_scene(extent: float, relief: float, size: tuple[int, int]) -> None:
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "VERTEX"
    shading.show_shadows = True
    shading.show_cavity = True
    scene.display.light_direction = (0.6, 0.4, 0.7)  # low sun from the north-west: hillshade-like
    scene.world = scene.world or bpy.data.worlds.new("world")
    scene.world.color = (0.55, 0.65, 0.8)

    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.data.lens = 35
    camera.data.clip_end = extent * 10
    # Oblique view from the south, 35 degrees above the horizon, far enough that the whole square fits.
    tilt = math.radians(55)
    distance = extent * 1.5
    camera.location = (0.0, -distance * math.sin(tilt), relief * 0.5 + distance * math.cos(tilt))
    camera.rotation_euler = (tilt, 0.0, 0.0)


def render(heights: np.ndarray, cell_size: float, out: Path, size: tuple[int, int] = (512, 384)) -> Path:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    step = max(1, math.ceil((max(heights.shape) - 1) / MAX_GRID))
    heights = heights[::step, ::step]
    cell_size *= step
    build_mesh(heights, cell_size)
    extent = (max(heights.shape) - 1) * cell_size
    setup_scene(extent, float(heights.max() - min(heights.min(), 0.0)), size)
    bpy.context.scene.render.filepath = str(out)
    bpy.ops.render.render(write_still=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", type=Path, required=True, help=".npy file, (H, W) float32 metres, row 0 north")
    parser.add_argument("--cell-size", type=float, required=True, help="metres per cell")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=384)
    args = parser.parse_args(argv)
    heights = np.load(args.heights, allow_pickle=False).astype(np.float32)
    if heights.ndim != 2:
        raise ValueError(f"heights must be 2D, got shape {heights.shape}")
    render(heights, args.cell_size, args.out.resolve(), (args.width, args.height))
    return 0 if args.out.exists() else 1


if __name__ == "__main__":
    sys.exit(main())
