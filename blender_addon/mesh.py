"""Writing height grids into Blender meshes in bulk, and the preview mesh that protects the artist's mesh.

Every write goes through ``foreach_set`` on whole float32/int32 arrays (no ``from_pydata``, no per-vertex
Python). Topology is built once per grid shape, edges included (computed in numpy, so Blender does not
recompute them); after that a new result of the same shape writes positions only.

While a job runs, previews go into a separate mesh swapped onto the target object; the artist's own
mesh is not touched until the final result, so a failed, cancelled or disconnected job restores it
exactly by swapping back.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from . import grid

SHAPE_KEY = "worldsculpt_grid_shape"  # custom property on the mesh: [H, W] of the grid it holds
# custom property on the mesh: the grid's cell size in metres as the backend gave it (a double), so exports
# state the exact world size (4000 m, not the 3999.985 m that float32 vertex spacing gives)
CELL_KEY = "worldsculpt_cell_size"
_positions = grid.PositionBuffer()


def has_grid(mesh: bpy.types.Mesh, h: int, w: int) -> bool:
    """True if ``mesh`` already holds our (h, w) grid topology, so only positions need writing."""
    shape = mesh.get(SHAPE_KEY)
    return (shape is not None and tuple(shape) == (h, w) and len(mesh.vertices) == h * w
            and len(mesh.polygons) == (h - 1) * (w - 1) and len(mesh.loops) == 4 * (h - 1) * (w - 1))


def build_grid(mesh: bpy.types.Mesh, h: int, w: int) -> None:
    """Replace the mesh's geometry with an (h, w) vertex grid of quads (positions left at zero)."""
    corners = grid.quad_corners(h, w)
    edge_verts = grid.edges(h, w)
    mesh.clear_geometry()
    mesh.vertices.add(h * w)
    mesh.edges.add(len(edge_verts))
    mesh.loops.add(len(corners))
    mesh.polygons.add((h - 1) * (w - 1))
    mesh.attributes[".edge_verts"].data.foreach_set("value", edge_verts.ravel())
    mesh.attributes[".corner_vert"].data.foreach_set("value", corners)
    mesh.attributes[".corner_edge"].data.foreach_set("value", grid.corner_edges(h, w))
    mesh.polygons.foreach_set("loop_start", grid.loop_starts(h, w))
    mesh[SHAPE_KEY] = [h, w]


def write_heights(mesh: bpy.types.Mesh, heights: np.ndarray, cell_size: float) -> bool:
    """Put a height grid into ``mesh``; returns True if the topology had to be (re)built."""
    heights = grid.check_heights(heights, cell_size)
    rebuilt = write_grid(mesh, _positions(heights, cell_size).reshape(*heights.shape, 3))
    mesh[CELL_KEY] = float(cell_size)
    return rebuilt


def write_grid(mesh: bpy.types.Mesh, xyz: np.ndarray) -> bool:
    """Put (H, W, 3) float32 vertex positions laid out as ``grid`` does into ``mesh``; True if rebuilt."""
    h, w, _ = xyz.shape
    rebuilt = not has_grid(mesh, h, w)
    if rebuilt:
        build_grid(mesh, h, w)
    mesh.attributes["position"].data.foreach_set("vector", np.ascontiguousarray(xyz, dtype=np.float32).ravel())
    mesh.update()
    return rebuilt


# -- objects, previews and results -------------------------------------------------------------

@dataclass
class Preview:
    """What a running job has put on screen, by name (references die across undo)."""

    target: str
    preview_mesh: str
    original_mesh: str | None  # None: the object did not exist and was created for the preview


def _target_object(target: str) -> bpy.types.Object | None:
    obj = bpy.data.objects.get(target)
    if obj is not None and obj.type != "MESH":
        raise ValueError(f"target {target!r} is a {obj.type} object, not a mesh")
    if obj is not None and obj.mode == "EDIT":
        raise ValueError(f"target {target!r} is in Edit Mode: leave it to receive terrain")
    return obj


def _new_object(scene: bpy.types.Scene, target: str, mesh: bpy.types.Mesh) -> bpy.types.Object:
    obj = bpy.data.objects.new(target, mesh)
    scene.collection.objects.link(obj)
    return obj


def show_preview(scene: bpy.types.Scene, target: str, heights: np.ndarray, cell_size: float,
                 preview: Preview | None) -> Preview:
    """Show a preview on the target object through a mesh of its own; the artist's mesh stays as is."""
    obj = _target_object(target)
    mesh = bpy.data.meshes.get(preview.preview_mesh) if preview else None
    if mesh is None:
        mesh = bpy.data.meshes.new(f"{target} (preview)")
        if obj is None:
            obj = _new_object(scene, target, mesh)
            preview = Preview(target, mesh.name, None)
        else:
            preview = Preview(target, mesh.name, obj.data.name)
    if obj is None:  # the artist deleted the object mid-job
        obj = _new_object(scene, target, mesh)
    if obj.data != mesh:
        obj.data = mesh
    write_heights(mesh, heights, cell_size)
    return preview


def discard_preview(preview: Preview | None) -> None:
    """Put the artist's mesh back (or remove the object made for the preview) and drop the preview mesh."""
    if preview is None:
        return
    obj = bpy.data.objects.get(preview.target)
    mesh = bpy.data.meshes.get(preview.preview_mesh)
    original = bpy.data.meshes.get(preview.original_mesh) if preview.original_mesh else None
    if obj is not None and obj.type == "MESH" and obj.data == mesh:
        if original is not None:
            obj.data = original
        else:
            bpy.data.objects.remove(obj)
    if mesh is not None and mesh.users == 0:
        bpy.data.meshes.remove(mesh)


def apply_result(scene: bpy.types.Scene, target: str, heights: np.ndarray, cell_size: float,
                 preview: Preview | None) -> bpy.types.Object:
    """Write the final heights into the target's own mesh (creating the object if needed)."""
    heights = grid.check_heights(heights, cell_size)  # fail before touching anything
    _target_object(target)
    discard_preview(preview)
    obj = bpy.data.objects.get(target)
    if obj is None:
        obj = _new_object(scene, target, bpy.data.meshes.new(target))
    write_heights(obj.data, heights, cell_size)
    return obj


def write_window(obj: bpy.types.Object, window: tuple[int, int, int, int], heights: np.ndarray) -> None:
    """Replace the heights of one window of a terrain's grid: one bulk read and one bulk write of all positions."""
    r0, c0, r1, c1 = window
    mesh = obj.data
    shape = mesh.get(SHAPE_KEY)
    if shape is None or len(mesh.vertices) != shape[0] * shape[1]:
        raise ValueError(f"{obj.name!r} holds no Worldsculpt grid")
    h, w = int(shape[0]), int(shape[1])
    if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w) or heights.shape != (r1 - r0, c1 - c0):
        raise ValueError(f"window {window} with heights {heights.shape} does not fit the {h}x{w} grid")
    heights = grid.check_heights(heights, 1.0)  # fail before touching anything
    xyz = np.empty(h * w * 3, dtype=np.float32)
    positions = mesh.attributes["position"].data
    positions.foreach_get("vector", xyz)
    xyz.reshape(h, w, 3)[r0:r1, c0:c1, 2] = heights
    positions.foreach_set("vector", xyz)
    mesh.update()


def _grid_shape(obj: bpy.types.Object) -> tuple[int, int]:
    """(H, W) of the Worldsculpt grid a terrain object holds; ValueError for anything else."""
    if obj.type != "MESH":
        raise ValueError(f"{obj.name!r} is a {obj.type} object, not a terrain mesh")
    shape = obj.data.get(SHAPE_KEY)
    if shape is None or len(obj.data.vertices) != shape[0] * shape[1]:
        raise ValueError(f"{obj.name!r} holds no Worldsculpt grid (generate into it first)")
    return int(shape[0]), int(shape[1])


def read_selection(obj: bpy.types.Object) -> np.ndarray:
    """(H, W) float32 on the terrain's grid: 1 where a vertex is selected, else 0 (one bulk read).

    In Edit Mode the mesh data lags behind the edit mesh: leave Edit Mode first.
    """
    h, w = _grid_shape(obj)
    selected = np.zeros(h * w, dtype=bool)
    obj.data.vertices.foreach_get("select", selected)
    return selected.reshape(h, w).astype(np.float32)


def read_heights(obj: bpy.types.Object) -> tuple[np.ndarray, float]:
    """The (H, W) float32 heights (row 0 north, as ``grid`` lays them out) and cell size of a terrain object.

    Reads the mesh's local z in bulk. The cell size is the one stored with the grid, unless the vertices were
    respaced since (then, and for grids from older versions, the spacing of the first row's vertices).
    """
    h, w = _grid_shape(obj)
    mesh = obj.data
    xyz = np.empty(h * w * 3, dtype=np.float32)
    mesh.attributes["position"].data.foreach_get("vector", xyz)
    xyz = xyz.reshape(h, w, 3)
    spacing = float(xyz[0, 1, 0] - xyz[0, 0, 0])
    stored = float(mesh.get(CELL_KEY, spacing))
    cell_size = stored if abs(stored - spacing) <= 1e-4 * abs(stored) else spacing  # float32 rounding only
    return grid.check_heights(xyz[:, :, 2], cell_size), cell_size
