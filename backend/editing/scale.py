"""Edits at the models' scale: a mesh window resampled to the cells the models were trained at, and back.

The super-resolution model learned 30 m cells and the base 120 m ones; run on a mesh's 7.8 m cells they paint
texture four times too fine (needle peaks, patches 5-9x rougher than the land around). So an edit samples the
window at the models' cells and only the change it made goes back into the mesh (cubic, ``grids.grow``): the mesh's own
finer detail stays, and where the edit changed nothing the mesh is exactly as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from backend.diffusion.guidance import gaussian_blur
from backend.grids import grow

MIN_MODEL_CELLS = 4  # a window smaller than this many model cells per side is sampled at this size


@dataclass(frozen=True)
class ModelGrid:
    """A window's shape on the mesh and at the models' cells (corner samples shared: the same extent)."""

    mesh: tuple[int, int]
    model: tuple[int, int]

    @classmethod
    def of(cls, shape: tuple[int, int], cell_size: float, model_cell: float) -> ModelGrid:
        ratio = cell_size / model_cell
        model = tuple(max(MIN_MODEL_CELLS, round((n - 1) * ratio) + 1) for n in shape)
        return cls((int(shape[0]), int(shape[1])), (int(model[0]), int(model[1])))

    def to_model(self, a: Tensor) -> Tensor:
        """[h, w] mesh -> [hm, wm] model cells on the shared corner samples, low-passed first when shrinking (a
        Gaussian as wide as the bilinear antialias's triangle). torch's antialiased bilinear does not keep the
        corners: its samples sat 1.4-1.8 mesh cells off the ones ``to_mesh`` puts back, so the re-sampled ground
        came back shifted (3.2 m on a 2 m/cell ramp) and a narrow valley's walls doubled (1.12 vs 0.94 as rough)."""
        if self.model == self.mesh:
            return a
        shrink = max((m - 1) / max(n - 1, 1) for m, n in zip(self.mesh, self.model))
        low = gaussian_blur(a.double(), shrink / math.sqrt(6)) if shrink > 1 else a.double()
        return F.interpolate(low[None, None], size=self.model, mode="bilinear", align_corners=True)[0, 0]

    def to_mesh(self, a: Tensor) -> Tensor:
        """[hm, wm] model -> [h, w] mesh cells, cubic through the shared corner samples (``grids.grow``)."""
        if self.model == self.mesh:
            return a
        return grow(a.double(), self.mesh)


def mesh_margin(margin: int, cell_size: float, model_cell: float) -> int:
    """A margin of ``margin`` model cells in mesh cells (never fewer than ``margin``)."""
    return math.ceil(margin * max(1.0, model_cell / cell_size))
