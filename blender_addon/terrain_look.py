"""What the terrain material and the water plane look like: data only, no bpy (``material`` builds them).

The backend sends material masks with a result (``backend.simulation.material``): slope, flow and the
weights of six surface layers, each in [0, 1] per vertex. They become float point attributes named
``ws_<mask>``, which any shader can read with an Attribute node; the add-on's own material mixes the
layers' colours by their weights.
"""

from __future__ import annotations

ATTRIBUTE_PREFIX = "ws_"
MATERIAL_NAME = "Worldsculpt Terrain"
WATER_MATERIAL_NAME = "Worldsculpt Water"
SEA_LEVEL_M = 0.0  # heights are metres above sea level (backend.simulation.material.SEA_LEVEL_M)

# layer -> linear RGB: the surfaces the backend's splat rules name
LAYER_COLOURS: dict[str, tuple[float, float, float]] = {
    "rock": (0.16, 0.15, 0.14),
    "scree": (0.33, 0.31, 0.28),
    "soil": (0.18, 0.12, 0.07),
    "grass": (0.10, 0.20, 0.05),
    "sand": (0.60, 0.52, 0.36),
    "snow": (0.90, 0.92, 0.95),
}
WATER_COLOUR = (0.02, 0.09, 0.15, 1.0)


def attribute_name(mask: str) -> str:
    return f"{ATTRIBUTE_PREFIX}{mask}"


def water_name(target: str) -> str:
    return f"{target} Water"


def water_corners(width_m: float, depth_m: float) -> list[tuple[float, float, float]]:
    """The water plane's four corners at sea level, centred like the terrain grid, counter-clockwise."""
    x, y = width_m / 2.0, depth_m / 2.0
    return [(-x, -y, SEA_LEVEL_M), (x, -y, SEA_LEVEL_M), (x, y, SEA_LEVEL_M), (-x, y, SEA_LEVEL_M)]
