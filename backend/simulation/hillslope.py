"""Linear hillslope diffusion, one backward-Euler step solved exactly in a sine or cosine basis.

Backward Euler is unconditionally stable and, solved exactly, isotropic at any step: the erosion stage
relaxes slopes by D dt = 1500 m² a step at 30 m cells (D dt / dx² = 1.7), where fastscapelib's
Crank-Nicolson ADI leaves streaks along the grid axes and a checkerboard. The transforms of large maps use
every core (at 1024² a step takes 21 ms on two, 39 on one); below ``THREADED_FROM_CELLS`` handing the work to
threads costs more than it saves (a 36² transform, a brush window's, 131 us threaded, 40 on one). Two borders:
* ``no_flux``: nothing leaves through the edges (the corpus's closed landscapes; cosine basis);
* ``held``: the border is the base level (the erosion stage's): nothing flows in from beyond it, its
  corners keep their heights and it relaxes only along itself (sine basis).
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dctn, dstn, idctn, idstn

THREADED_FROM_CELLS = 128 * 128


def _workers(z: np.ndarray) -> int:
    """scipy.fft's workers for a transform of ``z``: every core for large maps, one for small ones."""
    return -1 if z.size >= THREADED_FROM_CELLS else 1


def _eigenvalues(modes: np.ndarray, period: int, cell_size: float) -> np.ndarray:
    """Minus the eigenvalues of the 1D second difference for the basis functions of frequency k pi / ``period``."""
    return (2.0 - 2.0 * np.cos(np.pi * modes / period)) / cell_size ** 2


def no_flux(z: np.ndarray, diffusion: float, cell_size: float) -> np.ndarray:
    """One step of dz/dt = D laplacian(z) with no-flux edges (D dt = ``diffusion`` m²); keeps the mass."""
    rows, cols = z.shape
    workers = _workers(z)
    spectrum = dctn(z, type=2, norm="ortho", workers=workers)
    spectrum /= 1.0 + diffusion * (_eigenvalues(np.arange(rows), rows, cell_size)[:, None]
                                   + _eigenvalues(np.arange(cols), cols, cell_size)[None, :])
    return idctn(spectrum, type=2, norm="ortho", workers=workers)


def held(z: np.ndarray, diffusion: float, cell_size: float) -> np.ndarray:
    """One step of dz/dt = D laplacian(z) with the border as base level (D dt = ``diffusion`` m²).

    The corners keep their heights and each border line relaxes only along itself (1D, its ends held), so
    nothing flows in from beyond the map and the border's texture matches the relaxed inside; then the
    inside takes a step with that border held.
    """
    if min(z.shape) < 3:
        return z.copy()
    bordered = z.copy()
    for line in (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]):
        bordered[line] = _held_step(z[line], diffusion, cell_size)
    return _held_step(bordered, diffusion, cell_size)


def _held_step(z: np.ndarray, diffusion: float, cell_size: float) -> np.ndarray:
    """One backward-Euler step of an array of any dimension whose outermost cells stay as they are.

    The change u of the inside solves (1 - D lap) u = D lap(z) with u = 0 outside (z_new = z + u then
    satisfies z_new - z = D lap(z_new)), diagonal in the type-I sine basis.
    """
    inside = tuple(slice(1, -1) for _ in z.shape)
    lap = np.zeros(tuple(n - 2 for n in z.shape))
    denominator = np.ones_like(lap)
    for axis, n in enumerate(z.shape):
        before = tuple(slice(None, -2) if a == axis else slice(1, -1) for a in range(z.ndim))
        after = tuple(slice(2, None) if a == axis else slice(1, -1) for a in range(z.ndim))
        lap += (z[before] + z[after] - 2.0 * z[inside]) / cell_size ** 2
        shape = [1] * z.ndim
        shape[axis] = n - 2
        denominator = denominator + diffusion * _eigenvalues(np.arange(1, n - 1), n - 1, cell_size).reshape(shape)
    out = z.copy()
    workers = _workers(lap)
    out[inside] += idstn(dstn(diffusion * lap, type=1, workers=workers) / denominator, type=1, workers=workers)
    return out
