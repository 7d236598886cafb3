"""Surfaces of 3D voxel grids (caves, overhangs, arches): smooth through PyMCubes, blocky by greedy quads.

Grids are indexed (z, row, col): z up (index 0 at the bottom), rows south (row 0 north), columns east,
the heightfield's image order with height in front. ``origin`` is the world (x, y, z) of sample
[0, 0, 0]; world x is east, y north, z up, so a row step is -y. Faces wind outward, away from solid.

Chunk borders without cracks: a chunk of n cells a side is meshed from an (n + 1)³ grid, its own cells
plus the first layer of its +col, +row and +z neighbours. Then every cube between samples belongs to
exactly one chunk (smooth), every face between two cells to exactly one chunk (blocky: the chunk on the
face's low side), and two chunks compute the vertices on the plane they share from the same samples,
so those vertices coincide bit for bit.
"""

from __future__ import annotations

import numpy as np

# (dz, drow, dcol) -> world (dx, dy, dz): x = col, y = -row, z = z
_GRID_TO_WORLD = np.array([[0, 0, 1], [0, -1, 0], [1, 0, 0]], np.float64)
Mesh = tuple[np.ndarray, np.ndarray, np.ndarray]  # vertices (N, 3) float32, faces (F, C) int32, per-element material


def _to_world(zrc: np.ndarray, voxel_size: float, origin: tuple[float, float, float]) -> np.ndarray:
    """(N, 3) grid coordinates (z, row, col) -> world (x east, y north, z up) float32 metres.

    A swap of axes plus one negation: the winding of faces is kept."""
    vertices = np.empty((len(zrc), 3), dtype=np.float32)
    vertices[:, 0] = origin[0] + zrc[:, 2] * voxel_size
    vertices[:, 1] = origin[1] - zrc[:, 1] * voxel_size
    vertices[:, 2] = origin[2] + zrc[:, 0] * voxel_size
    return vertices


def _check(density: np.ndarray, voxel_size: float) -> np.ndarray:
    density = np.asarray(density, dtype=np.float32)
    if density.ndim != 3 or min(density.shape) < 2:
        raise ValueError(f"density must be (D, H, W) with every side >= 2, got shape {density.shape}")
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be positive metres, got {voxel_size}")
    return density


def voxel_mesh(density: np.ndarray, iso: float = 0.0, voxel_size: float = 1.0,
               origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) float32 metres and faces (F, 3) int32 of ``density > iso`` (solid inside)."""
    density = _check(density, voxel_size)
    import mcubes  # PyMCubes; lazy so meshing heightfields never needs it

    zrc, faces = mcubes.marching_cubes(density, float(iso))
    return _to_world(zrc, voxel_size, origin), faces.astype(np.int32)


def smooth_surface(density: np.ndarray, material: np.ndarray, voxel_size: float,
                   origin: tuple[float, float, float]) -> Mesh:
    """Marching-cubes surface of ``density > 0`` with each vertex's material.

    A vertex lies on a grid edge between a solid and an air sample; it takes the solid sample's
    material (``material`` (D, H, W) uint8, same shape as ``density``). Returns vertices (N, 3)
    float32, faces (F, 3) int32, vertex materials (N,) uint8.
    """
    density = _check(density, voxel_size)
    if material.shape != density.shape:
        raise ValueError(f"material {material.shape} must have the density's shape {density.shape}")
    import mcubes

    zrc, faces = mcubes.marching_cubes(density, 0.0)
    if len(zrc) == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), np.zeros(0, np.uint8)
    limit = np.array(density.shape) - 1
    low = np.clip(np.floor(zrc).astype(np.int64), 0, limit)
    high = np.clip(np.ceil(zrc).astype(np.int64), 0, limit)
    d_low = density[low[:, 0], low[:, 1], low[:, 2]]
    d_high = density[high[:, 0], high[:, 1], high[:, 2]]
    solid = np.where((d_low >= d_high)[:, None], low, high)
    vertex_material = material[solid[:, 0], solid[:, 1], solid[:, 2]]
    at_sample = np.flatnonzero(vertex_material == 0)  # the surface passes through a sample of density 0
    if len(at_sample):
        steps = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
        around = np.clip(solid[at_sample, None, :] + steps[None], 0, limit)  # (V, 6, 3)
        densest = density[around[..., 0], around[..., 1], around[..., 2]].argmax(1)
        pick = around[np.arange(len(at_sample)), densest]
        vertex_material[at_sample] = material[pick[:, 0], pick[:, 1], pick[:, 2]]
    return _to_world(zrc, voxel_size, origin), faces.astype(np.int32), vertex_material.astype(np.uint8)


# -- blocky ------------------------------------------------------------------------------------------

def _face_labels(solid: np.ndarray, material: np.ndarray, axis: int) -> np.ndarray:
    """Signed labels of the faces across ``axis`` owned by the chunk: (planes, a, b) int16.

    Plane p (1..n) lies between cells p - 1 and p along ``axis``; the other two axes run over the n
    own cells. +m: a face of material m looking towards +axis (solid below it), -m: towards -axis,
    0: no face, so solid cells must carry a material >= 1 (0 is air)."""
    n = solid.shape[axis] - 1
    own = [slice(0, n)] * 3
    below = list(own)
    below[axis] = slice(0, n)
    above = list(own)
    above[axis] = slice(1, n + 1)
    s0, s1 = solid[tuple(below)], solid[tuple(above)]
    m0, m1 = material[tuple(below)].astype(np.int16), material[tuple(above)].astype(np.int16)
    labels = np.where(s0 & ~s1, m0, 0) - np.where(s1 & ~s0, m1, 0)
    return np.moveaxis(labels, axis, 0)


def culled_face_count(solid: np.ndarray) -> int:
    """Faces a per-cell face-culling mesher emits for the chunk (the baseline greedy meshing beats)."""
    n = solid.shape[0] - 1
    count = 0
    for axis in range(3):
        below = [slice(0, n)] * 3
        above = list(below)
        above[axis] = slice(1, n + 1)
        count += int(np.count_nonzero(solid[tuple(below)] != solid[tuple(above)]))
    return count


def _greedy_rectangles(labels: np.ndarray) -> np.ndarray:
    """Merge equal labels of (P, A, B) planes into rectangles: runs along B, then equal runs stacked along A.

    Returns (R, 6) int64 rows (plane, a0, a1, b0, b1, label), half-open. Vectorised over all planes."""
    p, a, b = labels.shape
    padded = np.zeros((p, a, b + 2), labels.dtype)
    padded[:, :, 1:-1] = labels
    change = padded[:, :, 1:] != padded[:, :, :-1]  # (p, a, b + 1): a run starts or ends at this edge
    pp, aa, bb = np.nonzero(change)
    edges = np.stack([pp, aa, bb], 1)
    # consecutive change edges in one (plane, row) bound one run; keep the runs with a face label
    same_row = (edges[1:, 0] == edges[:-1, 0]) & (edges[1:, 1] == edges[:-1, 1])
    start, stop = edges[:-1][same_row], edges[1:][same_row]
    label = labels[start[:, 0], start[:, 1], start[:, 2]]
    runs = np.column_stack([start[:, 0], start[:, 1], start[:, 2], stop[:, 2], label])[label != 0]
    if len(runs) == 0:
        return np.zeros((0, 6), np.int64)
    # stack runs with the same (plane, b0, b1, label) on consecutive rows a into one rectangle
    order = np.lexsort((runs[:, 1], runs[:, 4], runs[:, 3], runs[:, 2], runs[:, 0]))
    runs = runs[order]
    key = runs[:, [0, 2, 3, 4]]
    new = np.ones(len(runs), bool)
    new[1:] = (key[1:] != key[:-1]).any(1) | (runs[1:, 1] != runs[:-1, 1] + 1)
    group = np.cumsum(new) - 1
    a1 = np.zeros(group[-1] + 1, np.int64)
    np.maximum.at(a1, group, runs[:, 1] + 1)
    first = runs[new]
    return np.column_stack([first[:, 0], first[:, 1], a1, first[:, 2], first[:, 3], first[:, 4]])


def _rectangle_quads(rects: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Corners (R, 4, 3) in grid-corner coordinates (z, row, col) of the rectangles on planes across
    ``axis``, wound so the face looks towards its label's sign; and the materials (R,)."""
    plane, a0, a1, b0, b1, label = rects.T
    others = [ax for ax in range(3) if ax != axis]  # the label arrays' a and b axes, in order
    corners = np.zeros((len(rects), 4, 3), np.float64)
    corners[:, :, axis] = plane[:, None] + 1  # plane p lies at the corner coordinate p + 1 (cell p's top)
    corners[:, :, others[0]] = np.stack([a0, a1, a1, a0], 1)
    corners[:, :, others[1]] = np.stack([b0, b0, b1, b1], 1)
    # (a, b) -> world turns one way or the other per axis: flip where the quad's normal comes out wrong
    edge1, edge2 = corners[:, 1] - corners[:, 0], corners[:, 3] - corners[:, 0]
    normal = np.cross(edge1 @ _GRID_TO_WORLD.T, edge2 @ _GRID_TO_WORLD.T)
    want = _GRID_TO_WORLD[:, axis][None, :] * np.sign(label)[:, None]
    flip = (normal * want).sum(1) < 0
    corners[flip] = corners[flip][:, ::-1]
    return corners, np.abs(label).astype(np.uint8)


def blocky_surface(solid: np.ndarray, material: np.ndarray, voxel_size: float,
                   origin: tuple[float, float, float]) -> Mesh:
    """Greedy quads over the faces between solid and air cells, one material per quad.

    ``solid`` and ``material`` are (n + 1)³: the chunk's n³ cells plus its + neighbours' first layer.
    ``origin`` is the world centre of cell [0, 0, 0]; quads lie on cell faces. Returns vertices
    (4 Q, 3) float32 (each quad its own four corners, so materials stay per face), faces (Q, 4)
    int32 and face materials (Q,) uint8.
    """
    solid = np.asarray(solid, dtype=bool)
    if solid.ndim != 3 or len(set(solid.shape)) != 1 or solid.shape[0] < 2:
        raise ValueError(f"solid must be a cube (n + 1, n + 1, n + 1), got shape {solid.shape}")
    if material.shape != solid.shape:
        raise ValueError(f"material {material.shape} must have the solid grid's shape {solid.shape}")
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be positive metres, got {voxel_size}")
    corner_sets, materials = [], []
    for axis in range(3):
        rects = _greedy_rectangles(_face_labels(solid, material, axis))
        corners, mats = _rectangle_quads(rects, axis)
        corner_sets.append(corners)
        materials.append(mats)
    corners = np.concatenate(corner_sets).reshape(-1, 3) - 0.5  # cell corners sit half a cell off the centres
    quads = len(corners) // 4
    faces = np.arange(4 * quads, dtype=np.int32).reshape(quads, 4)
    return _to_world(corners, voxel_size, origin), faces, np.concatenate(materials)
