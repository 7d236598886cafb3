"""The world on disk: an unbounded grid of tiles that outlives sessions and is never half-written.

A world lives next to the artist's .blend as ``<blend_name>.world/`` and can be copied as a folder::

    world.json                        format version, seed, tile size, cell size, styles, created
    tiles/x{tx}_y{ty}.safetensors     one heightfield tile: tensors + JSON metadata + SHA-256
    blobs/<sha256>.safetensors        edit deltas, named by the SHA-256 of the file's bytes
    edits.jsonl                       append-only brush log, one checksummed JSON record a line
    memory/<name>.safetensors         model memory state (dict of arrays)

Durability, as implemented:

* Every file but the log is written whole to a temp file in its own folder (``.<name>.<pid>.<rand>.tmp``),
  flushed, fsynced, renamed over the target with ``os.replace`` and the folder fsynced. After a crash
  the target holds the old bytes or the new ones; once a write call returns, the new bytes are on disk.
* Tiles, blobs and memory files carry a SHA-256 of their content (metadata and arrays) in the
  safetensors header and are verified on every load. A file that fails to parse or verify raises
  `CorruptFileError` (`CorruptTileError` for tiles): corrupt data is never returned, and is never
  silently treated as missing, because regenerating over an artist's edited tile would destroy work.
  A tile that was never written is missing: `get_tile` returns None.
* ``edits.jsonl`` is appended with one write + fsync per record, after the record's delta blob is
  durable. An invalid *last* line is a torn append from a crash: ignored by readers, cut off by the next
  writer before it appends. An invalid line anywhere else raises `CorruptEditLogError`.
* One writing process per world at a time (the backend); temp files never look like tiles.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from backend.durable import fsync_dir, write_bytes
from backend.terrain import Heightfield

FORMAT_VERSION = 1
TILE_FORMAT = "worldsculpt.tile.v1"
DELTA_FORMAT = "worldsculpt.delta.v1"
MEMORY_FORMAT = "worldsculpt.memory.v1"
SOURCES = ("generated", "edited")

Coords = tuple[int, ...]  # (tx, ty) for heightfield tiles; (cx, cy, cz) for future 3D chunks
Window = tuple[int, int, int, int]  # (row0, col0, row1, col1), half-open, in tile cells

_AXES = "xyz"
_TILE_FILE = re.compile(r"(x-?\d+_y-?\d+)\.safetensors")
_MEMORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_INT64 = (-(2**63), 2**63 - 1)


class CorruptFileError(Exception):
    """A world file that exists but fails to parse or verify; holds the path so it can be shown."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class CorruptTileError(CorruptFileError):
    pass


class CorruptEditLogError(CorruptFileError):
    pass


# --- keys ----------------------------------------------------------------------------------------


def check_coords(coords: Sequence[int], ndim: int = 2) -> Coords:
    """Validated integer coordinates (signed 64-bit, so seeds and file names stay well defined)."""
    if len(coords) != ndim:
        raise ValueError(f"expected {ndim} integer coordinates, got {coords!r}")
    out = []
    for c in coords:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not _INT64[0] <= c <= _INT64[1]:
            raise ValueError(f"coordinate must be a 64-bit integer, got {c!r} in {coords!r}")
        out.append(int(c))
    return tuple(out)


def key_name(coords: Coords) -> str:
    """File stem for a tile or chunk: (3, -2) -> 'x3_y-2', (3, -2, 1) -> 'x3_y-2_z1'."""
    return "_".join(f"{axis}{c}" for axis, c in zip(_AXES, coords))


def parse_key_name(stem: str) -> Coords | None:
    """Inverse of `key_name`; None for anything that is not a canonical name (e.g. temp files)."""
    try:
        coords = tuple(int(part[1:]) for part in stem.split("_"))
    except ValueError:
        return None
    return coords if 2 <= len(coords) <= 3 and key_name(coords) == stem else None


def world_path_for_blend(blend_path: str | os.PathLike[str]) -> Path:
    """``/art/island.blend`` -> ``/art/island.world``: the world travels with the .blend."""
    blend = Path(blend_path)
    return blend.with_name(f"{blend.stem}.world")


# --- checksummed safetensors files --------------------------------------------------------------


def _c_order(a: np.ndarray) -> np.ndarray:
    """C-contiguous without np.ascontiguousarray's promotion of 0-d arrays to shape (1,)."""
    return a if a.flags.c_contiguous else a.copy(order="C")


def _content_sha256(tensors: Mapping[str, np.ndarray], meta_json: str) -> str:
    """Hash of metadata + every tensor's name, dtype, shape and bytes (independent of file layout)."""
    h = hashlib.sha256(meta_json.encode("utf-8"))
    for name in sorted(tensors):
        a = _c_order(tensors[name])
        h.update(b"\0" + json.dumps([name, a.dtype.str, list(a.shape)]).encode("utf-8") + b"\0")
        h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()


def encode_checked(tensors: Mapping[str, np.ndarray], meta: Mapping[str, object]) -> bytes:
    """safetensors bytes whose header holds `meta` as JSON and the SHA-256 of the content."""
    arrays: dict[str, np.ndarray] = {}
    for name, a in tensors.items():
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
            raise ValueError(f"array {name!r} must be a bool/int/float numpy array, got {type(a).__name__}"
                             f"{'' if not isinstance(a, np.ndarray) else ' of ' + str(a.dtype)}")
        if a.dtype.byteorder == ">":  # safetensors is little-endian; keep values, fix byte order
            a = a.astype(a.dtype.newbyteorder("<"))
        arrays[name] = _c_order(a)
    meta_json = json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return st_save(arrays, metadata={"worldsculpt": meta_json, "sha256": _content_sha256(arrays, meta_json)})


def decode_checked(data: bytes, path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Inverse of `encode_checked`; raises CorruptFileError unless the content verifies."""
    try:
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        meta_json = header["__metadata__"]["worldsculpt"]
        expected = header["__metadata__"]["sha256"]
        tensors = st_load(data)
        meta = json.loads(meta_json)
    except (SafetensorError, ValueError, KeyError, TypeError) as e:  # JSON/Unicode errors are ValueErrors
        raise CorruptFileError(path, f"unreadable ({type(e).__name__}: {e})") from e
    actual = _content_sha256(tensors, meta_json)
    if actual != expected:
        raise CorruptFileError(path, f"checksum mismatch (header {expected[:12]}..., content {actual[:12]}...)")
    return tensors, meta


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldInfo:
    """Contents of world.json: what every tile of this world agrees on."""

    seed: int
    tile_size: int  # samples per tile edge: every tile's heights are (tile_size, tile_size)
    cell_size: float  # metres per cell
    styles: tuple[str, ...] = ()
    created: str = ""  # ISO 8601, UTC
    format_version: int = FORMAT_VERSION


@dataclass(frozen=True)
class TileMeta:
    source: str = "generated"  # "generated" | "edited": edited tiles must never be regenerated over
    generator: str = ""  # name of the generator/model that made it
    steps: int = 0  # sampler steps (0 for procedural)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"tile source must be one of {SOURCES}, got {self.source!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {self.steps!r}")


@dataclass
class Tile:
    coords: Coords
    field: Heightfield
    meta: TileMeta


@dataclass(frozen=True)
class EditRecord:
    """One brush stroke on one tile; the deltas live in blob `blob` (see `WorldStore.edit_deltas`)."""

    seq: int  # 0, 1, 2, ... in log order
    kind: str  # brush kind, e.g. "raise", "smooth"
    coords: Coords
    window: Window
    params: dict
    blob: str  # SHA-256 hex of the delta blob file
    time: str  # ISO 8601, UTC


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _record_sha256(record: Mapping[str, object]) -> str:
    body = {k: v for k, v in record.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _parse_log_line(line: bytes) -> dict | None:
    """The record on this line, or None if it is not a complete, verified record."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("sha256") != _record_sha256(record):
        return None
    return record


def _parse_log(data: bytes, path: Path) -> tuple[list[dict], int]:
    """Verified records and the byte offset where they end; only the last line may be torn."""
    lines = data.split(b"\n")  # the last piece is b"" after a complete log, else a torn tail
    records: list[dict] = []
    end = 0
    for i, line in enumerate(lines[:-1]):
        record = _parse_log_line(line)
        if record is None or record.get("seq") != len(records):
            if i == len(lines) - 2 and lines[-1] == b"":
                break  # a bad last line: a torn append, never acknowledged to the caller
            raise CorruptEditLogError(path, f"record at line {i + 1} fails verification")
        records.append(record)
        end += len(line) + 1
    return records, end


# --- the store -----------------------------------------------------------------------------------


UNDO_KIND, REDO_KIND = "undo", "redo"  # edit log records that take an earlier edit out and put it back


class WorldStore:
    """An unbounded tiled world in a folder. Use `create` or `open`; one writing process at a time."""

    def __init__(self, root: Path, info: WorldInfo):
        self.root = root
        self.info = info
        self._log_next_seq: int | None = None  # known once this writer has checked the log tail

    # layout
    @property
    def tiles_dir(self) -> Path:
        return self.root / "tiles"

    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs"

    @property
    def memory_dir(self) -> Path:
        return self.root / "memory"

    @property
    def log_path(self) -> Path:
        return self.root / "edits.jsonl"

    @property
    def seed(self) -> int:
        return self.info.seed

    @property
    def tile_size(self) -> int:
        return self.info.tile_size

    @property
    def cell_size(self) -> float:
        return self.info.cell_size

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        seed: int,
        tile_size: int,
        cell_size: float,
        styles: Sequence[str] = (),
    ) -> WorldStore:
        """Make a new world in `path` (absent or an empty folder); world.json is written last."""
        root = Path(path)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
        if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 2:
            raise ValueError(f"tile_size must be an int >= 2 (samples per edge), got {tile_size!r}")
        if not (isinstance(cell_size, (int, float)) and math.isfinite(cell_size) and cell_size > 0):
            raise ValueError(f"cell_size must be positive finite metres, got {cell_size!r}")
        if isinstance(styles, str) or not all(isinstance(s, str) for s in styles):
            raise ValueError(f"styles must be a sequence of str, got {styles!r}")
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise ValueError(f"world path {str(root)!r} exists and is not an empty folder")
        root.mkdir(exist_ok=True)
        fsync_dir(root.absolute().parent)
        info = WorldInfo(seed, tile_size, float(cell_size), tuple(styles), _now())
        doc = {
            "format": "worldsculpt.world",
            "format_version": info.format_version,
            "seed": info.seed,
            "tile_size": info.tile_size,
            "cell_size": info.cell_size,
            "styles": list(info.styles),
            "created": info.created,
        }
        write_bytes(root / "world.json", (json.dumps(doc, indent=2) + "\n").encode("utf-8"))
        return cls(root, info)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> WorldStore:
        root = Path(path)
        meta_path = root / "world.json"
        data = _read(meta_path)
        if data is None:
            raise FileNotFoundError(f"no world at {str(root)!r} (missing world.json)")
        try:
            doc = json.loads(data)
            version = doc["format_version"]
            if version > FORMAT_VERSION:
                raise ValueError(f"world format_version {version} is newer than supported {FORMAT_VERSION}")
            info = WorldInfo(
                seed=int(doc["seed"]),
                tile_size=int(doc["tile_size"]),
                cell_size=float(doc["cell_size"]),
                styles=tuple(doc["styles"]),
                created=str(doc["created"]),
                format_version=int(version),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise CorruptFileError(meta_path, f"unreadable ({type(e).__name__}: {e})") from e
        return cls(root, info)  # opening writes nothing: a world on read-only media can be read

    def _writable_dir(self, folder: Path) -> Path:
        """Sub-folders are made on first write (a copied world may have lost its empty ones)."""
        if not folder.is_dir():
            folder.mkdir()
            fsync_dir(self.root)
        return folder

    # tiles
    def tile_path(self, coords: Sequence[int]) -> Path:
        return self.tiles_dir / f"{key_name(check_coords(coords))}.safetensors"

    def has_tile(self, coords: Sequence[int]) -> bool:
        """Whether a tile file was committed (cheap: not verified; `get_tile` verifies)."""
        return self.tile_path(coords).is_file()

    def tiles(self) -> list[Coords]:
        """Coordinates of every committed tile, sorted; temp files and strangers are ignored."""
        found: list[Coords] = []
        if not self.tiles_dir.is_dir():
            return found
        with os.scandir(self.tiles_dir) as entries:
            for entry in entries:
                m = _TILE_FILE.fullmatch(entry.name)
                coords = parse_key_name(m.group(1)) if m else None
                if coords is not None and len(coords) == 2 and entry.is_file():
                    found.append(coords)
        return sorted(found)

    def put_tile(self, coords: Sequence[int], field: Heightfield, meta: TileMeta | None = None) -> None:
        """Durably write a tile (replacing any previous version); returns once it is on disk."""
        key = check_coords(coords)
        meta = meta if meta is not None else TileMeta()
        if not isinstance(field, Heightfield):
            raise ValueError(f"put_tile needs a Heightfield, got {type(field).__name__}")
        size = (self.tile_size, self.tile_size)
        if field.heights.shape != size or field.heights.dtype != np.float32:
            raise ValueError(f"tile heights must be float32 {size}, got {field.heights.dtype} {field.heights.shape}")
        if field.cell_size != self.cell_size:
            raise ValueError(f"tile cell_size {field.cell_size} differs from the world's {self.cell_size}")
        tensors = {"heights": field.heights}
        for name, mask in field.masks.items():
            if not isinstance(mask, np.ndarray) or mask.shape != size:
                raise ValueError(f"mask {name!r} must be an array of shape {size}")
            tensors[f"mask/{name}"] = mask
        if field.splat is not None:
            if field.splat.shape != (*size, len(field.splat_names)):
                raise ValueError(
                    f"splat shape {field.splat.shape} must be {(*size, len(field.splat_names))} for "
                    f"splat_names {field.splat_names!r}"
                )
            tensors["splat"] = field.splat
        doc = {
            "format": TILE_FORMAT,
            "coords": list(key),
            "cell_size": field.cell_size,
            "style": field.style,
            "masks": list(field.masks),  # keeps the artist's mask order
            "splat_names": list(field.splat_names),
            "has_splat": field.splat is not None,
            "source": meta.source,
            "generator": meta.generator,
            "steps": meta.steps,
        }
        self._writable_dir(self.tiles_dir)
        write_bytes(self.tile_path(key), encode_checked(tensors, doc))

    def get_tile(self, coords: Sequence[int]) -> Tile | None:
        """The verified tile, None if never written; raises CorruptTileError if damaged."""
        key = check_coords(coords)
        path = self.tile_path(key)
        data = _read(path)
        if data is None:
            return None
        try:
            tensors, doc = decode_checked(data, path)
        except CorruptFileError as e:
            raise CorruptTileError(path, e.reason) from e
        try:
            if doc.get("format") != TILE_FORMAT:
                raise ValueError(f"format {doc.get('format')!r} is not {TILE_FORMAT!r}")
            if tuple(doc["coords"]) != key:
                raise ValueError(f"file holds tile {tuple(doc['coords'])}, not {key}")
            field = Heightfield(
                heights=tensors["heights"],
                cell_size=doc["cell_size"],
                masks={name: tensors[f"mask/{name}"] for name in doc["masks"]},
                splat=tensors["splat"] if doc["has_splat"] else None,
                splat_names=tuple(doc["splat_names"]),
                style=doc["style"],
            )
            meta = TileMeta(doc["source"], doc["generator"], doc["steps"])
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptTileError(path, f"inconsistent tile ({e})") from e
        return Tile(key, field, meta)

    def verify_tiles(self) -> dict[Coords, CorruptTileError]:
        """Load every tile; the damaged ones with their errors (empty when the world is intact)."""
        bad: dict[Coords, CorruptTileError] = {}
        for coords in self.tiles():
            try:
                self.get_tile(coords)
            except CorruptTileError as e:
                bad[coords] = e
        return bad

    def remove_temp_files(self) -> int:
        """Delete temp files left by crashed writes; only while no other process writes this world."""
        removed = 0
        for folder in (self.root, self.tiles_dir, self.blobs_dir, self.memory_dir):
            for path in folder.glob(".*.tmp*"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    # edit log
    def append_edit(
        self,
        kind: str,
        coords: Sequence[int],
        window: Sequence[int],
        params: Mapping[str, object],
        deltas: Mapping[str, np.ndarray],
    ) -> EditRecord:
        """Durably log one brush edit: the delta blob first, then one fsynced log line."""
        key = check_coords(coords)
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"edit kind must be a non-empty str, got {kind!r}")
        if len(window) != 4:
            raise ValueError(f"window must be (row0, col0, row1, col1), got {window!r}")
        r0, c0, r1, c1 = (int(v) for v in window)
        if not (0 <= r0 < r1 <= self.tile_size and 0 <= c0 < c1 <= self.tile_size):
            raise ValueError(f"window {tuple(window)} is empty or outside the tile (size {self.tile_size})")
        for name, delta in deltas.items():
            if not isinstance(delta, np.ndarray) or delta.shape[:2] != (r1 - r0, c1 - c0):
                raise ValueError(f"delta {name!r} must be an array starting with the window shape {(r1 - r0, c1 - c0)}")
        try:
            params_doc = json.loads(json.dumps(dict(params), allow_nan=False))
        except (TypeError, ValueError) as e:
            raise ValueError(f"edit params must be finite JSON values, got {params!r} ({e})") from e

        blob = self._write_blob(encode_checked(dict(deltas), {"format": DELTA_FORMAT}))
        seq = self._prepare_log()
        record = {
            "seq": seq,
            "time": _now(),
            "kind": kind,
            "coords": list(key),
            "window": [r0, c0, r1, c1],
            "params": params_doc,
            "blob": blob,
        }
        record["sha256"] = _record_sha256(record)
        line = json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n"
        created = not self.log_path.exists()
        with open(self.log_path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        if created:
            fsync_dir(self.root)
        self._log_next_seq = seq + 1
        return _edit_record(record)

    def edits(self) -> list[EditRecord]:
        """All committed edits in order; a torn last line (crash mid-append) is ignored."""
        data = _read(self.log_path) or b""
        records, _ = _parse_log(data, self.log_path)
        return [_edit_record(r) for r in records]

    def active_edits(self) -> list[EditRecord]:
        """The world's history as the artist sees it: every edit not undone, in log order. An ``undo`` record
        (params ``{"undoes": seq}``) takes its edit out, a later ``redo`` (``{"redoes": seq}``) puts it back;
        the log itself only grows, so a crash never loses either."""
        records = self.edits()
        active = {r.seq: r for r in records if r.kind not in (UNDO_KIND, REDO_KIND)}
        undone: set[int] = set()
        for record in records:
            if record.kind == UNDO_KIND:
                undone.add(int(record.params["undoes"]))
            elif record.kind == REDO_KIND:
                undone.discard(int(record.params["redoes"]))
        return [active[seq] for seq in sorted(active) if seq not in undone]

    def edit_deltas(self, record: EditRecord) -> dict[str, np.ndarray]:
        """The verified delta arrays of `record` (raises CorruptFileError if the blob is damaged)."""
        path = self.blobs_dir / f"{record.blob}.safetensors"
        data = _read(path)
        if data is None:
            raise CorruptFileError(path, f"delta blob of edit {record.seq} is missing")
        if hashlib.sha256(data).hexdigest() != record.blob:
            raise CorruptFileError(path, "blob bytes do not match their content address")
        tensors, _ = decode_checked(data, path)
        return tensors

    def _write_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.blobs_dir / f"{digest}.safetensors"
        existing = _read(path)
        if existing is None or hashlib.sha256(existing).hexdigest() != digest:
            self._writable_dir(self.blobs_dir)
            write_bytes(path, data)
        return digest

    def _prepare_log(self) -> int:
        """Before this writer's first append: cut off a torn tail so new records start on a fresh line."""
        if self._log_next_seq is None:
            data = _read(self.log_path) or b""
            records, end = _parse_log(data, self.log_path)
            if end < len(data):
                with open(self.log_path, "r+b") as f:
                    f.truncate(end)
                    f.flush()
                    os.fsync(f.fileno())
            self._log_next_seq = len(records)
        return self._log_next_seq

    # memory state
    def _memory_path(self, name: str) -> Path:
        if not isinstance(name, str) or not _MEMORY_NAME.fullmatch(name):
            raise ValueError(f"memory name must match {_MEMORY_NAME.pattern}, got {name!r}")
        return self.memory_dir / f"{name}.safetensors"

    def save_memory(self, name: str, state: Mapping[str, np.ndarray]) -> None:
        """Atomically save a model's memory state (names, dtypes, shapes and bytes kept exactly)."""
        path = self._memory_path(name)
        self._writable_dir(self.memory_dir)
        write_bytes(path, encode_checked(dict(state), {"format": MEMORY_FORMAT, "names": list(state)}))

    def load_memory(self, name: str) -> dict[str, np.ndarray] | None:
        """The saved state in its original key order, None if never saved; CorruptFileError if damaged."""
        path = self._memory_path(name)
        data = _read(path)
        if data is None:
            return None
        tensors, doc = decode_checked(data, path)
        return {key: tensors[key] for key in doc["names"]}


def _edit_record(r: Mapping) -> EditRecord:
    return EditRecord(
        seq=r["seq"],
        kind=r["kind"],
        coords=tuple(r["coords"]),
        window=tuple(r["window"]),  # type: ignore[arg-type]
        params=r["params"],
        blob=r["blob"],
        time=r["time"],
    )
