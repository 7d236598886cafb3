"""Explore mode's bpy-free planning (blender_addon/explore_plan.py): rings, nearest-first order, lod
upgrades, cancelling what the view left behind, bounded eviction, bit-exact shared tile edges; and the
world_tiles geometry request it starts with, over real sockets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import addon_module
from protocol.client import Client

plan = addon_module("explore_plan")
L = 1920.0  # metres per tile, as the shipped models make them


def test_tile_convention_rows_grow_south() -> None:
    assert plan.tile_at(0.5 * L, -0.5 * L, L) == (0, 0)
    assert plan.tile_at(0.5 * L, 0.5 * L, L) == (0, -1)  # north of the origin: the row above
    assert plan.tile_at(-1.0, -1.0, L) == (-1, 0)
    assert plan.tile_at(*plan.tile_centre((7, -3), L), L) == (7, -3)
    with pytest.raises(ValueError, match="tile width"):
        plan.tile_at(0.0, 0.0, 0.0)


@pytest.mark.parametrize("near,far", [(0, 0), (1, 2), (2, 4)])
def test_wanted_is_the_square_nearest_first(near, far) -> None:
    x, y = 3.3 * L, -7.8 * L  # inside tile (3, 7), near its south-east corner
    want = plan.wanted(x, y, L, plan.Rings(near=near, far=far))
    tiles = [t for t, _ in want]
    assert len(tiles) == len(set(tiles)) == (2 * far + 1) ** 2
    assert tiles[0] == (3, 7)
    rings = [plan.ring(t, (3, 7)) for t in tiles]
    assert rings == sorted(rings)
    assert all(lod == (0 if plan.ring(t, (3, 7)) <= near else 1) for t, lod in want)
    if far:
        assert tiles[1] == (3, 8)  # the nearest neighbour of the point (south), not just any ring-1 tile


def test_rings_refuse_bad_values() -> None:
    for bad in (dict(near=2, far=1), dict(near=-1), dict(far=plan.MAX_RING + 1), dict(max_tiles=-1), dict(batch=0)):
        with pytest.raises(ValueError):
            plan.Rings(**bad)
    assert plan.Rings(far=2, max_tiles=3).limit == 25  # never fewer than the tiles in view
    assert plan.Rings(far=2).limit == 49


def test_next_request_fills_in_order_and_upgrades() -> None:
    want = plan.wanted(0.5 * L, -0.5 * L, L, plan.Rings(near=1, far=2))
    assert plan.next_request(want, {}, 1) == (0, [(0, 0)])
    shown = {t: 1 for t, _ in want}  # everything at the coarse level: the near ones get upgraded
    lod, tiles = plan.next_request(want, shown, 64)
    assert lod == 0 and tiles == [t for t, k in want if k == 0]
    shown.update((t, 0) for t in tiles)
    assert plan.next_request(want, shown, 64) is None  # coarse tiles need nothing finer
    del shown[want[-1][0]]
    assert plan.next_request(want, shown, 4) == (1, [want[-1][0]])


def test_a_job_the_view_left_behind_is_cancelled() -> None:
    rings = plan.Rings(near=1, far=2)
    here = plan.wanted(0.5 * L, -0.5 * L, L, rings)
    assert plan.still_wanted((0, [(0, 0)]), here)
    far_away = plan.wanted(10.5 * L, -0.5 * L, L, rings)
    assert not plan.still_wanted((0, [(0, 0)]), far_away)
    moved_near = plan.wanted(2.5 * L, -0.5 * L, L, rings)  # (2, 0) is now the centre: wanted at lod 0
    assert not plan.still_wanted((1, [(2, 0)]), moved_near)  # a coarse job for it is not worth finishing
    assert plan.still_wanted((0, [(4, 0)]), moved_near)  # a fine job for a now-coarse tile still helps


def test_walk_keeps_tiles_bounded_and_near_ones_fine() -> None:
    """Fly east over 12 tiles and back, letting every job finish at once: the explorer's loop."""
    rings = plan.Rings(near=1, far=2, max_tiles=30)
    shown: dict = {}
    evicted = set()
    for x in [*np.linspace(0.5, 12.5, 49), *np.linspace(12.5, 0.5, 49)]:
        x, y = float(x) * L, -0.5 * L
        want = plan.wanted(x, y, L, rings)
        while True:  # one tick: evict, then one job (which arrives before the next tick)
            gone = plan.evictions(shown, want, x, y, L, rings.limit)
            assert not set(gone) & {t for t, _ in want}
            for t in gone:
                del shown[t]
            evicted |= set(gone)
            assert len(shown) <= rings.limit
            if (request := plan.next_request(want, shown, 3)) is None:
                break
            shown.update((t, request[0]) for t in request[1])
        centre = plan.tile_at(x, y, L)
        assert all(shown[t] == 0 for t, k in want if k == 0) and shown[centre] == 0
        assert all(t in shown for t, _ in want)
    assert (0, 0) in evicted and (12, 0) in evicted  # far tiles did go, at both ends of the walk


def test_evictions_take_the_farthest_unwanted_first() -> None:
    want = plan.wanted(0.5 * L, -0.5 * L, L, plan.Rings(near=0, far=0))
    shown = {(0, 0): 0, (5, 0): 1, (1, 1): 1, (-9, 2): 0}
    assert plan.evictions(shown, want, 0.5 * L, -0.5 * L, L, limit=2) == [(-9, 2), (5, 0)]
    assert plan.evictions(shown, want, 0.5 * L, -0.5 * L, L, limit=4) == []
    assert plan.evictions({(0, 0): 0}, want, 0.5 * L, -0.5 * L, L, limit=0) == []  # wanted tiles stay


@pytest.mark.parametrize("tile_m", [L, 1919.999, 37.3])
def test_neighbours_share_edge_vertices_bit_for_bit(tile_m) -> None:
    rng = np.random.default_rng(0)
    fine = rng.normal(size=(257, 257)).astype(np.float32)
    coarse = fine[::4, ::4]
    for a, b, edge in [((-70001, 3), (-70000, 3), "x"), ((5, -2), (5, -1), "y")]:
        for sa, sb in [(fine, fine), (fine, coarse), (coarse, fine)]:
            pa, pb = plan.tile_positions(sa, a, tile_m), plan.tile_positions(sb, b, tile_m)
            step = (sa.shape[0] - 1) // (sb.shape[0] - 1) if sa.shape[0] > sb.shape[0] else 1
            other = (sb.shape[0] - 1) // (sa.shape[0] - 1) if sb.shape[0] > sa.shape[0] else 1
            if edge == "x":  # a's east column against b's west column
                ea, eb = pa[::step, -1, :2], pb[::other, 0, :2]
            else:  # a's south row against b's north row
                ea, eb = pa[-1, ::step, :2], pb[0, ::other, :2]
            assert ea.tobytes() == eb.tobytes()
    p = plan.tile_positions(fine, (0, 0), tile_m)
    assert p.dtype == np.float32 and np.array_equal(p[..., 2], fine)
    assert p[0, 0, 1] > p[-1, 0, 1] and p[0, 0, 0] < p[0, -1, 0]  # row 0 north, column 0 west
    assert math.isclose(p[0, -1, 0] - p[0, 0, 0], tile_m, rel_tol=1e-6)


def test_bad_tile_heights_are_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        plan.tile_positions(np.full((3, 3), np.nan), (0, 0), 1.0)
    with pytest.raises(ValueError, match="shape"):
        plan.tile_positions(np.zeros((3, 4)), (0, 0), 1.0)


def test_world_folder_goes_next_to_the_blend_as_the_backend_says() -> None:
    from backend.world.store import world_path_for_blend

    for blend in ("/art/island.blend", "relative/x.y.blend"):
        assert plan.world_path_for_blend(blend) == world_path_for_blend(blend)


def test_world_geometry_request_without_tiles(learned_backend, tmp_path) -> None:
    """Explore's first job: no tiles, just the new world's tile width and samples."""
    client = Client(learned_backend.address)
    try:
        params = {"world": str(tmp_path / "w"), "tiles": [], "create": {"seed": 1, "style": "alpine"}}
        result = client.wait_result(client.submit("world_tiles", params, target="explore"), timeout=60)
    finally:
        client.close()
    meta = result.content["meta"]
    assert result.arrays["heights"].shape == (0, meta["samples"], meta["samples"])
    assert meta["tile_size_m"] == (meta["samples"] - 1) * meta["cell_size"] > 0
    assert (tmp_path / "w" / "world.json").is_file() and not (tmp_path / "w" / "tiles").exists()


def test_shown_heights_agree_on_every_shared_sample() -> None:
    """Neighbours from separate canvases differ on their shared samples; shown, every holder has the same
    value (the finest, then last holder's), and one level alone is exactly the stitched map."""
    from backend.world.tiles import stitch

    rng = np.random.default_rng(1)
    fine = {(x, y): rng.normal(size=(17, 17)).astype(np.float32) for y in range(3) for x in range(3)}
    shown = {c: plan.shown_heights({t: (0, h) for t, h in fine.items()}, c) for c in fine}
    np.testing.assert_array_equal(stitch(shown, range(3), range(3)), stitch(fine, range(3), range(3)))
    for (x, y), h in shown.items():
        if x < 2:
            assert np.array_equal(h[:, -1], shown[(x + 1, y)][:, 0])
        if y < 2:
            assert np.array_equal(h[-1, :], shown[(x, y + 1)][0, :])
        if x < 2 and y < 2:
            assert h[-1, -1] == shown[(x + 1, y + 1)][0, 0] == shown[(x + 1, y)][-1, 0] == shown[(x, y + 1)][0, -1]
    coarse = {c for c in fine if (c[0] + c[1]) % 2 == 0}  # the centre and the corners
    mixed = {c: (1, h[::4, ::4]) if c in coarse else (0, h) for c, h in fine.items()}
    shown = {c: plan.shown_heights(mixed, c) for c in mixed}
    centre = shown[(1, 1)]  # coarse, between fine tiles on all four sides: takes their samples
    assert np.array_equal(centre[:, 0], shown[(0, 1)][::4, -1]) and np.array_equal(centre[:, -1], shown[(2, 1)][::4, 0])
    assert np.array_equal(centre[0, :], shown[(1, 0)][-1, ::4]) and np.array_equal(centre[-1, :], shown[(1, 2)][0, ::4])
    assert np.array_equal(centre[1:-1, 1:-1], fine[(1, 1)][::4, ::4][1:-1, 1:-1])  # inside: its own
    west = shown[(0, 1)]  # fine, between coarse tiles north, south and east
    assert np.array_equal(west[1:-1, 1:-1], fine[(0, 1)][1:-1, 1:-1])  # keeps its own samples inside
    assert np.array_equal(west[4:-1:4, -1], fine[(0, 1)][4:-1:4, -1])  # and where the coarse vertices are
    between = np.interp(np.arange(17), np.arange(0, 17, 4), west[::4, -1])  # the rest: on the coarse edge
    np.testing.assert_allclose(west[:, -1], between, atol=1e-6)
    assert not np.allclose(fine[(0, 1)][:, -1], between)
