"""Triangle meshes from terrain: regular height grids and 3D density chunks (numpy only)."""

from backend.meshing.heightfield import grid_faces, grid_mesh, grid_normals
from backend.meshing.voxels import voxel_mesh

__all__ = ["grid_faces", "grid_mesh", "grid_normals", "voxel_mesh"]
