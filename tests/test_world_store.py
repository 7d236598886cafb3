"""World store: exact round trips, crash safety under SIGKILL, corruption detection, seeds, cache."""

from __future__ import annotations

import inspect
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from backend.terrain import Heightfield
from backend.world.cache import LRUCache, heightfield_nbytes, tile_cache
from backend.world.seeding import tile_generator, tile_rng, tile_seed, tile_seed_sequence
from backend.world.store import (
    CorruptEditLogError,
    CorruptFileError,
    CorruptTileError,
    Tile,
    TileMeta,
    WorldStore,
    world_path_for_blend,
)

ROOT = Path(__file__).resolve().parents[1]


def tile_for(x: int, y: int, version: int, n: int, cell_size: float = 2.0) -> Heightfield:
    """Deterministic tile content from (x, y, version): the writer and the checker agree bitwise."""
    base = np.arange(n * n, dtype=np.float32).reshape(n, n) * np.float32(1e-3)
    heights = base + np.float32(x * 7 + y * 13 + version)
    rock = (heights % np.float32(1.0)).astype(np.float32)
    return Heightfield(heights, cell_size, masks={"rock": rock}, style="alpine")


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def same_field(a: Heightfield, b: Heightfield) -> bool:
    return (
        same_array(a.heights, b.heights)
        and a.cell_size == b.cell_size
        and list(a.masks) == list(b.masks)
        and all(same_array(a.masks[k], b.masks[k]) for k in a.masks)
        and (a.splat is None) == (b.splat is None)
        and (a.splat is None or same_array(a.splat, b.splat))
        and a.splat_names == b.splat_names
        and a.style == b.style
    )


def test_save_reopen_is_bitwise_exact(tmp_path: Path) -> None:
    path = world_path_for_blend(tmp_path / "island.blend")
    assert path.name == "island.world"
    store = WorldStore.create(path, seed=2**64 - 5, tile_size=32, cell_size=0.1, styles=("alpine", "desert"))
    rng = np.random.default_rng(0)
    fields = {}
    for coords in [(0, 0), (-3, 7), (2**40, -(2**40))]:
        heights = rng.standard_normal((32, 32)).astype(np.float32) * 100
        heights[0, 0] = np.float32(np.nan)  # NaN bits must survive too
        splat = rng.random((32, 32, 3)).astype(np.float32)
        fields[coords] = Heightfield(
            heights, 0.1,
            masks={"water": rng.random((32, 32)).astype(np.float32), "path": (rng.random((32, 32)) > 0.5)},
            splat=splat, splat_names=("grass", "rock", "snow"), style="desert",
        )
        store.put_tile(coords, fields[coords], TileMeta("edited", "edm2-terrain", 32))
    deltas = {"heights": rng.standard_normal((5, 6)).astype(np.float32), "water": np.zeros((5, 6, 1), np.float16)}
    rec = store.append_edit("raise", (-3, 7), (1, 2, 6, 8), {"radius": 0.1 + 0.2, "strength": -1e-300}, deltas)
    memory = {"keys": rng.standard_normal((4, 8)).astype(np.float16), "step": np.array(7, np.int64),
              "seen": np.array([True, False]), "empty": np.zeros((0, 3), np.float64)}
    store.save_memory("world-memory", memory)

    again = WorldStore.open(path)
    assert again.info == store.info
    assert again.tiles() == sorted(fields)
    for coords, field in fields.items():
        tile = again.get_tile(coords)
        assert isinstance(tile, Tile) and tile.coords == coords
        assert same_field(tile.field, field)
        assert tile.meta == TileMeta("edited", "edm2-terrain", 32)
    assert again.get_tile((5, 5)) is None and not again.has_tile((5, 5))
    (logged,) = again.edits()
    assert logged == rec and logged.params == {"radius": 0.1 + 0.2, "strength": -1e-300}
    loaded = again.edit_deltas(logged)
    assert set(loaded) == set(deltas) and all(same_array(loaded[k], deltas[k]) for k in deltas)
    restored = again.load_memory("world-memory")
    assert restored is not None and list(restored) == list(memory)
    assert all(same_array(restored[k], memory[k]) for k in memory)
    assert again.load_memory("other") is None


def test_rejects_bad_input(tmp_path: Path) -> None:
    store = WorldStore.create(tmp_path / "w", seed=1, tile_size=8, cell_size=1.0)
    with pytest.raises(ValueError, match="not an empty folder"):
        WorldStore.create(tmp_path / "w", seed=1, tile_size=8, cell_size=1.0)
    with pytest.raises(ValueError, match="-1"):
        WorldStore.create(tmp_path / "v", seed=-1, tile_size=8, cell_size=1.0)
    with pytest.raises(ValueError, match=r"\(9, 8\)"):
        store.put_tile((0, 0), Heightfield(np.zeros((9, 8)), 1.0))
    with pytest.raises(ValueError, match="cell_size 2.0"):
        store.put_tile((0, 0), Heightfield(np.zeros((8, 8)), 2.0))
    with pytest.raises(ValueError, match="1.5"):
        store.put_tile((1.5, 0), Heightfield(np.zeros((8, 8)), 1.0))
    with pytest.raises(ValueError, match="bogus"):
        TileMeta(source="bogus")
    with pytest.raises(ValueError, match=r"\(0, 0, 9, 4\)"):
        store.append_edit("raise", (0, 0), (0, 0, 9, 4), {}, {})
    with pytest.raises(ValueError, match="nan"):
        store.append_edit("raise", (0, 0), (0, 0, 2, 2), {"r": float("nan")}, {})
    with pytest.raises(ValueError, match="../evil"):
        store.save_memory("../evil", {})
    assert store.tiles() == [] and store.edits() == []


# A writer that never stops: tiles (large, so a write takes a while) interleaved with edits.
# It announces each put_tile before calling it so the test can aim kills at writes.
WRITER = """
import sys
import numpy as np
from backend.terrain import Heightfield
from backend.world.store import TileMeta, WorldStore
{tile_for}
store = WorldStore.open(sys.argv[1])
version = int(sys.argv[2])
while True:
    for x, y in {order!r}:
        print(f"writing {{x}} {{y}} {{version}}", flush=True)
        store.put_tile((x, y), tile_for(x, y, version, store.tile_size), TileMeta("generated", "writer", version))
        print(f"committed {{x}} {{y}} {{version}}", flush=True)
        rec = store.append_edit("raise", (x, y), (0, 0, 4, 4), {{"v": version}},
                                {{"heights": np.full((4, 4), version, np.float32)}})
        print(f"edit {{rec.seq}} {{version}}", flush=True)
        version += 1
"""


def test_sigkill_mid_write_never_tears_a_tile(tmp_path: Path) -> None:
    n = 1024  # 2 x 4 MiB per tile: writes take long enough for kills to land inside them
    path = tmp_path / "w.world"
    WorldStore.create(path, seed=7, tile_size=n, cell_size=2.0)
    order = [(0, 0), (1, 0), (-1, 2), (3, -4)]  # the writer's order
    writer = WRITER.format(tile_for=inspect.getsource(tile_for), order=order)
    committed: dict[tuple[int, int], int] = {}  # coords -> last version whose put_tile returned
    in_flight: dict[tuple[int, int], set[int]] = {}  # coords -> versions kills may have caught mid-put
    edits: dict[int, int] = {}  # seq -> version, for appends that returned
    in_flight_edits: set[int] = set()  # versions whose append a kill may have caught
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rnd = random.Random(1234)
    for round_ in range(16):
        start = round_ * 10_000
        proc = subprocess.Popen([sys.executable, "-c", writer, str(path), str(start)],
                                stdout=subprocess.PIPE, env=env, cwd=ROOT)
        assert proc.stdout is not None
        lines, writes_to_skip = [], rnd.randint(0, 6)
        while True:  # kill at a random moment of a random put_tile
            lines.append(proc.stdout.readline())
            assert lines[-1], "writer died on its own"
            if lines[-1].startswith(b"writing"):
                if writes_to_skip == 0:
                    break
                writes_to_skip -= 1
        time.sleep(rnd.uniform(0.0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        last = start - 1
        for line in [*lines, *proc.stdout.read().splitlines()]:
            word, *nums = line.split()
            if word == b"committed":
                x, y, last = map(int, nums)
                committed[(x, y)] = last
                in_flight.pop((x, y), None)
            elif word == b"edit":
                edits[int(nums[0])] = int(nums[1])
        proc.stdout.close()
        in_flight.setdefault(order[(last + 1 - start) % 4], set()).add(last + 1)
        in_flight_edits.add(last)

        store = WorldStore.open(path)
        assert store.verify_tiles() == {}
        assert set(committed) <= set(store.tiles()) <= set(committed) | set(in_flight)
        for coords in store.tiles():
            tile = store.get_tile(coords)
            assert tile is not None
            version = tile.meta.steps
            assert version == committed.get(coords) or version in in_flight.get(coords, ()), (coords, version)
            assert same_field(tile.field, tile_for(*coords, version, n))
        log = store.edits()
        assert [r.seq for r in log] == list(range(len(log))) and set(edits) <= {r.seq for r in log}
        for rec in log:
            v = rec.params["v"]
            assert v == edits[rec.seq] if rec.seq in edits else v in in_flight_edits
            assert same_array(store.edit_deltas(rec)["heights"], np.full((4, 4), v, np.float32))
    leftovers = [p for sub in ("tiles", "blobs") for p in (path / sub).glob(".*.tmp*")]
    assert store.remove_temp_files() == len(leftovers)
    assert not any(p.exists() for p in leftovers) and store.verify_tiles() == {}


def test_torn_and_stray_files_are_not_tiles(tmp_path: Path) -> None:
    store = WorldStore.create(tmp_path / "w", seed=3, tile_size=16, cell_size=2.0)
    store.put_tile((2, 3), tile_for(2, 3, 0, 16))
    data = store.tile_path((2, 3)).read_bytes()
    (store.tiles_dir / ".x5_y5.safetensors.123.abcd.tmp").write_bytes(data[: len(data) // 2])
    (store.tiles_dir / "x05_y5.safetensors").write_bytes(data)  # not a canonical name
    (store.tiles_dir / "notes.txt").write_text("hi")
    assert store.tiles() == [(2, 3)]
    for cut in (0, 7, 8, 100, len(data) // 2, len(data) - 1):
        store.tile_path((9, 9)).write_bytes(data[:cut])
        with pytest.raises(CorruptTileError):
            store.get_tile((9, 9))
    store.tile_path((9, 9)).write_bytes(data)  # intact bytes, but they claim to be tile (2, 3)
    with pytest.raises(CorruptTileError, match=r"\(2, 3\)"):
        store.get_tile((9, 9))


@pytest.mark.parametrize("where", ["data", "header"])
def test_flipped_byte_is_detected(tmp_path: Path, where: str) -> None:
    store = WorldStore.create(tmp_path / "w", seed=3, tile_size=16, cell_size=2.0)
    store.put_tile((0, 0), tile_for(0, 0, 0, 16))
    store.put_tile((0, 1), tile_for(0, 1, 0, 16))
    path = store.tile_path((0, 0))
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + header_len]
    # In the header, flip a digit of the tile's metadata (still valid JSON, still parses).
    i = len(data) - 5 if where == "data" else 8 + header.index(b'\\"steps\\":0') + 10
    data[i] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptTileError, match="checksum mismatch"):
        store.get_tile((0, 0))
    assert list(store.verify_tiles()) == [(0, 0)]
    assert store.get_tile((0, 1)) is not None


def test_flipped_blob_and_memory_bytes_are_detected(tmp_path: Path) -> None:
    store = WorldStore.create(tmp_path / "w", seed=3, tile_size=16, cell_size=2.0)
    rec = store.append_edit("smooth", (0, 0), (0, 0, 2, 2), {}, {"heights": np.ones((2, 2), np.float32)})
    store.save_memory("m", {"a": np.arange(10, dtype=np.float32)})
    for path in (store.blobs_dir / f"{rec.blob}.safetensors", store.memory_dir / "m.safetensors"):
        data = bytearray(path.read_bytes())
        data[-2] ^= 0x10
        path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError):
        store.edit_deltas(rec)
    with pytest.raises(CorruptFileError, match="checksum"):
        store.load_memory("m")


def test_edit_log_survives_torn_last_line(tmp_path: Path) -> None:
    store = WorldStore.create(tmp_path / "w", seed=3, tile_size=16, cell_size=2.0)
    for i in range(3):
        store.append_edit("raise", (i, 0), (0, 0, 2, 2), {"i": i}, {"heights": np.full((2, 2), i, np.float32)})
    intact = store.log_path.read_bytes()
    last_line = intact.splitlines(keepends=True)[-1]
    for torn in (last_line[: len(last_line) // 2], b"\0" * 40 + b"\n", last_line.replace(b'"i":2', b'"i":9')):
        store.log_path.write_bytes(intact + torn)
        reader = WorldStore.open(store.root)
        assert [r.params["i"] for r in reader.edits()] == [0, 1, 2]
    # A writer cuts the torn tail off before appending, so the new record is intact.
    writer = WorldStore.open(store.root)
    rec = writer.append_edit("lower", (5, 5), (0, 0, 1, 1), {"i": 3}, {"heights": np.zeros((1, 1), np.float32)})
    assert rec.seq == 3
    assert [r.params["i"] for r in WorldStore.open(store.root).edits()] == [0, 1, 2, 3]
    assert store.log_path.read_bytes().startswith(intact)
    # Damage before the last line is real corruption, never skipped silently.
    lines = store.log_path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"i":1', b'"i":7')
    store.log_path.write_bytes(b"".join(lines))
    with pytest.raises(CorruptEditLogError, match="line 2"):
        WorldStore.open(store.root).edits()


def test_world_json_is_plain_and_versioned(tmp_path: Path) -> None:
    store = WorldStore.create(tmp_path / "w", seed=11, tile_size=16, cell_size=0.5, styles=["alpine"])
    doc = json.loads((store.root / "world.json").read_text())
    fields = ("format_version", "seed", "tile_size", "cell_size", "styles")
    assert [doc[k] for k in fields] == [1, 11, 16, 0.5, ["alpine"]]
    doc["format_version"] = 99
    (store.root / "world.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="99"):
        WorldStore.open(store.root)
    with pytest.raises(FileNotFoundError):
        WorldStore.open(tmp_path / "nowhere")


def test_tile_seeds_do_not_depend_on_request_order() -> None:
    coords = [(x, y) for x in range(-3, 4) for y in range(-3, 4)]
    shuffled = coords[:]
    random.Random(0).shuffle(shuffled)
    forward = {c: tile_rng(42, c).standard_normal(4) for c in coords}
    backward = {c: tile_rng(42, c).standard_normal(4) for c in shuffled}
    assert all(np.array_equal(forward[c], backward[c]) for c in coords)
    seeds = {tile_seed(42, c) for c in coords}
    assert len(seeds) == len(coords) and all(0 <= s < 2**63 for s in seeds)
    assert tile_seed(42, (1, 2)) != tile_seed(43, (1, 2))
    assert tile_seed(42, (1, 2)) != tile_seed(42, (2, 1))
    assert tile_seed(42, (1, 2)) != tile_seed(42, (1, 2), level=1)
    assert tile_seed(42, (1, 2)) != tile_seed(42, (1, 2, 0))
    assert tile_seed(42, (1, 2)) != tile_seed(42, (1, 2), stream="erosion")
    assert tile_seed_sequence(42, (1, 2)).entropy == tile_seed_sequence(42, (1, 2)).entropy
    a = [tile_generator(42, c).initial_seed() for c in [(0, 0), (5, 5)]]
    b = [tile_generator(42, c).initial_seed() for c in [(5, 5), (0, 0)]][::-1]
    assert a == b and a[0] != a[1]
    # Stable across processes (no use of Python's salted hash()).
    code = "from backend.world.seeding import tile_seed; print(tile_seed(42, (-7, 9), 2))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env=dict(os.environ, PYTHONHASHSEED="123", PYTHONPATH=str(ROOT)))
    assert int(out.stdout) == tile_seed(42, (-7, 9), 2)
    with pytest.raises(ValueError, match="2.5"):
        tile_seed(42, (2.5, 0))


def test_lru_cache_stays_bounded() -> None:
    cache: LRUCache[int, int] = LRUCache(max_items=16)
    for i in range(1000):
        cache.put(i, i * i)
        if i == 500:
            assert cache.get(490) == 490 * 490  # touched: survives the next 15 inserts
        assert len(cache) <= 16
    assert cache.keys() == list(range(984, 1000))
    assert cache.get(0) is None and cache.get(999) == 999 * 999

    tiles = tile_cache(max_bytes=10 * 8 * 8 * 4 * 2)  # room for 10 tiles of 8x8 heights + 1 mask
    rng = np.random.default_rng(0)
    for i in range(1000):
        n = int(rng.integers(2, 12))
        field = tile_for(i, 0, 0, n)
        tiles.put((i, 0), Tile((i, 0), field, TileMeta()))
        present = [tiles.get(k) for k in tiles.keys()]
        assert tiles.nbytes == sum(heightfield_nbytes(t.field) for t in present if t is not None)
        assert tiles.nbytes <= tiles.max_bytes
    assert (999, 0) in tiles
    with pytest.raises(ValueError, match="unbounded"):
        LRUCache()


def test_edit_log_job_undoes_and_redoes_edits_and_their_tile(tmp_path: Path) -> None:
    """The edit_log job behind Blender's undo: the log only grows, active_edits() is the artist's history and
    the tile follows; a repeated request changes nothing; bad requests are refused before running."""
    from backend.server.edit_log_job import EditLogRequest
    from backend.server.paths import Roots

    store = WorldStore.create(tmp_path / "w", seed=1, tile_size=8, cell_size=2.0)
    start = np.zeros((8, 8), np.float32)
    store.put_tile((0, 0), Heightfield(start, 2.0), TileMeta(source="edited"))
    tiles = [start]
    for step, kind in enumerate(("raise", "lower")):
        before = tiles[-1][2:5, 1:4].copy()
        after = before + np.float32(step + 1)
        store.append_edit(kind, (0, 0), (2, 1, 5, 4), {}, {"before": before, "after": after, "weight": np.ones_like(after)})
        tiles.append(tiles[-1].copy())
        tiles[-1][2:5, 1:4] = after
        store.put_tile((0, 0), Heightfield(tiles[-1], 2.0), TileMeta(source="edited"))
    world, roots = str(store.root), Roots([tmp_path])

    assert EditLogRequest.from_params({"world": world, "undo": [1]}, roots).run() == {"undone": [1], "redone": []}
    assert [e.kind for e in store.active_edits()] == ["raise"]
    np.testing.assert_array_equal(store.get_tile((0, 0)).field.heights, tiles[1])
    assert EditLogRequest.from_params({"world": world, "undo": [1, 0]}, roots).run() == {"undone": [0], "redone": []}
    np.testing.assert_array_equal(store.get_tile((0, 0)).field.heights, tiles[0])
    assert EditLogRequest.from_params({"world": world, "redo": [0]}, roots).run() == {"undone": [], "redone": [0]}
    assert [e.kind for e in store.active_edits()] == ["raise"]
    assert [e.kind for e in store.edits()] == ["raise", "lower", "undo", "undo", "redo"]
    np.testing.assert_array_equal(store.get_tile((0, 0)).field.heights, tiles[1])

    for bad, says in (({"world": world, "undo": [True]}, "edit numbers"), ({"world": str(tmp_path)}, "existing world"),
                      ({"world": world, "undo": [], "what": 1}, "unknown")):
        with pytest.raises(ValueError, match=says):
            EditLogRequest.from_params(bad, roots)
    with pytest.raises(ValueError, match="has no edits"):
        EditLogRequest.from_params({"world": world, "undo": [7]}, roots).run()
