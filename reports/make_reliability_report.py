"""The backend's reliability report: fuzzing, SIGKILL rounds and a soak against live backends on loopback.

    python reports/make_reliability_report.py [--messages 100000] [--store-kills 60] [--stroke-kills 25]
                                              [--soak 100000] [--seed 0]

writes ``reports/reliability/README.md``. It is not a test (the suite runs a smaller hypothesis fuzz); it is
sized to finish in a few minutes on two CPU cores. Every message goes to a real ``python -m backend serve``
over a real socket, one at a time: each must get its direct answer (a reply or an error) within
HANG_S seconds, and the process must still be alive at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import msgpack
import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.headless import LocalBackend, free_port  # noqa: E402
from protocol import PROTOCOL_VERSION, Message, decode, encode  # noqa: E402
from protocol.client import Client  # noqa: E402

OUT = ROOT / "reports" / "reliability" / "README.md"
HANG_S = 10.0  # a message unanswered this long counts as a hang
JOB_MESSAGES = ("progress", "preview", "result")  # a job's own stream, not a direct answer
Frames = list[bytes]


# -- backends ------------------------------------------------------------------------------------------
class Backend(LocalBackend):
    """A backend on loopback with its own root folder, its output in a log beside it; peak RSS from /proc."""

    def __init__(self, root: Path, port: int | None = None):
        self.log = open(root.parent / f"backend-{port or 'any'}.log", "ab")
        super().__init__("cpu", startup_timeout=120, extra_args=["--root", str(root)], port=port, log=self.log,
                         log_level="CRITICAL", env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)))

    def memory_kb(self, field_name: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise KeyError(field_name)

    def stop(self) -> int:
        code = self.close()
        self.log.close()
        return code


# -- fuzzed messages -----------------------------------------------------------------------------------
def pack(header: Any) -> bytes:
    return msgpack.packb(header, use_bin_type=True)


def envelope(kind: str, content: Any, arrays: list | None = None, **overrides: Any) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": os.urandom(8).hex(), "kind": kind, "parent": None, "content": content,
            "arrays": arrays or [], **overrides}


def nested(depth: int) -> bytes:
    """msgpack of a list nested ``depth`` deep (packb refuses to go deeper than 512 itself)."""
    return b"\x91" * depth + b"\xc0"


def with_raw(header: dict[str, Any], path: tuple[str, ...], raw: bytes) -> bytes:
    """``header`` packed with the value at ``path`` replaced by raw msgpack bytes."""
    marker = "@@" + os.urandom(6).hex()
    node = header
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = marker
    return pack(header).replace(pack(marker), raw)


class Mutator:
    """Messages of every mutation kind issue 20 lists, around valid requests for every job kind."""

    def __init__(self, rng: random.Random, root: Path):
        self.rng = rng
        self.root = root
        heights = np.zeros((33, 33), np.float32)
        self.jobs: dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]] = {
            "generate": ({"style": "alpine", "resolution": 16, "generator": "procedural", "seed": 1}, {}),
            "export": ({"out_dir": str(root / "export"), "cell_size": 1.0, "formats": ["png16"]},
                       {"heights": heights}),
            "world_tiles": ({"world": str(root / "new_world"), "tiles": [], "create": {"seed": 1, "style": "alpine"}},
                            {}),
            "brush": ({"kind": "raise", "stroke": [[4, 4, 1.0]], "radius": 2, "cell_size": 10.0, "commit": False},
                      {"heights": heights}),
            "curve": ({"kind": "ridge", "curve": [[4, 4], [4, 20]], "width": 2.0, "cell_size": 10.0,
                       "commit": False}, {"heights": heights}),
            "style_from": ({"path": str(root / "reference.npy")}, {}),
        }
        self.corrupt_worlds = make_corrupt_worlds(root)
        self.kinds: dict[str, Callable[[], Frames]] = {
            "random bytes": self.random_bytes, "truncated msgpack": self.truncated,
            "F1 envelope key missing": self.missing_key, "envelope value of a wrong type": self.wrong_type,
            "F2 shape product beyond 64 bits": self.shape_overflow, "F3 booleans as dimensions": self.bool_dims,
            "array descriptors of wrong types": self.bad_descriptor,
            "frames and sizes that disagree": self.frame_mismatch, "F4 deep nesting": self.deep,
            "F5 long, NUL or escaping paths": self.bad_path, "F6 corrupt world folders": self.corrupt_world,
            "F7 huge or odd numbers": self.odd_number, "mutated job params": self.mutated_params,
            "plain requests": self.plain_request,
        }

    def message(self) -> tuple[str, Frames]:
        name = self.rng.choice(list(self.kinds))
        return name, self.kinds[name]()

    def submit(self, job: str, params: Any, arrays: dict[str, np.ndarray] | None = None) -> Frames:
        return encode(Message("submit_request", {"job": job, "target": self.rng.choice(["", "T"]), "params": params},
                              arrays or {}))

    def random_bytes(self) -> Frames:
        return [self.rng.randbytes(self.rng.randint(0, 64)) for _ in range(self.rng.randint(1, 3))]

    def truncated(self) -> Frames:
        job = self.rng.choice(list(self.jobs))
        frames = self.submit(job, self.jobs[job][0])
        return [frames[0][: self.rng.randint(0, len(frames[0]) - 1)]]

    def missing_key(self) -> Frames:
        header = envelope("ping", {"sent": 1.0})
        del header[self.rng.choice(list(header))]
        return [pack(header)]

    def wrong_type(self) -> Frames:
        header = envelope(*self.rng.choice([("ping", {"sent": 1.0}), ("cancel_request", {"job_id": "x"}),
                                            ("submit_request", {"job": "generate", "target": "", "params": {}})]))
        key = self.rng.choice(list(header))
        header[key] = self.rng.choice([None, True, 3, -1, 2.5, "x", b"\x00", [], {}, [1, [2]], 2**64 - 1])
        if key == "content" and isinstance(header[key], dict) and self.rng.random() < 0.5:
            header[key] = {"job_id": True, "job": 7, "target": [], "params": "x", "sent": "now"}
        return [pack(header)]

    def shape_overflow(self) -> Frames:
        dtype, shape = self.rng.choice([("uint8", [2**32, 2**32]), ("float32", [2**63, 2]), ("float64", [2**62, 4]),
                                        ("uint8", [2**64 - 1]), ("int64", [2**16] * 4)])
        header = envelope("result", {"job_id": "j", "meta": {}}, [{"name": "a", "dtype": dtype, "shape": shape}])
        return [pack(header), b""]

    def bool_dims(self) -> Frames:
        shape = self.rng.choice([[True, True], [True], [False, 4], [1, True, 1]])
        header = envelope("preview", {"job_id": "j", "step": 0, "meta": {}}, [{"name": "a", "dtype": "uint8",
                                                                               "shape": shape}])
        return [pack(header), b"\0" * self.rng.randint(0, 4)]

    def bad_descriptor(self) -> Frames:
        descriptor: Any = {"name": "a", "dtype": "float32", "shape": [2, 2]}
        key = self.rng.choice(["name", "dtype", "shape", None])
        odd = self.rng.choice([None, True, 3, -1.5, b"\x01", [], [1], {}, {"a": 1}, "float32", [[2, 2]]])
        if key is None:
            descriptor = odd
        else:
            descriptor[key] = odd
        header = envelope("result", {"job_id": "j", "meta": {}}, [descriptor])
        return [pack(header), b"\0" * 16]

    def frame_mismatch(self) -> Frames:
        count = self.rng.choice([0, 1, 2, 40])
        header = envelope("submit_request", {"job": "export", "target": "", "params": {}},
                          [{"name": f"a{i}", "dtype": "float32", "shape": [4, 4]} for i in range(count)])
        return [pack(header), *[b"\0" * self.rng.choice([0, 60, 64, 65])] * self.rng.randint(0, 41)]

    def deep(self) -> Frames:
        job = self.rng.choice(list(self.jobs))
        header = envelope("submit_request", {"job": job, "target": "", "params": dict(self.jobs[job][0])})
        path = self.rng.choice([("content", "target"), ("content", "params", "seed"), ("content", "job"),
                                ("content", "params", "world"), ("parent",), ("arrays",)])
        return [with_raw(header, path, nested(self.rng.choice([17, 100, 511, 1000, 5000])))]

    def bad_path(self) -> Frames:
        value = self.rng.choice(["x" * 5000, "/".join(["d" * 200] * 30), "a\0b", "../" * 40 + "etc",
                                 "/etc/passwd", "/", "~", str(self.root / "link_out" / "x"), "", "." * 300])
        job, key = self.rng.choice([("export", "out_dir"), ("world_tiles", "world"), ("brush", "world"),
                                    ("curve", "world"), ("style_from", "path")])
        params, arrays = self.jobs[job]
        return self.submit(job, {**params, key: value}, arrays)

    def corrupt_world(self) -> Frames:
        world = str(self.rng.choice(self.corrupt_worlds))
        job = self.rng.choice(["world_tiles", "brush", "curve"])
        params, arrays = self.jobs[job]
        if job == "world_tiles":
            return self.submit(job, {"world": world, "tiles": [[0, 0]], "lod": self.rng.randint(0, 2)})
        return self.submit(job, {**params, "world": world}, arrays)

    def odd_value(self) -> Any:
        return self.rng.choice([2**64 - 1, 10**9, -(2**63), -1, 0, 1e308, -1e308, float("nan"), float("inf"),
                                True, None, "", "x" * 1000, [], {}, [0] * 4096, {"a": {"b": [1]}}])

    def odd_number(self) -> Frames:
        job = self.rng.choice(list(self.jobs))
        params, arrays = self.jobs[job]
        params = dict(params)
        key = self.rng.choice([*params, "lod", "seed", "resolution", "steps"])
        params[key] = self.rng.choice([2**64 - 1, 10**9, -(2**63), 10**18, float("nan"), float("inf"), -0.0])
        if job == "world_tiles" and self.rng.random() < 0.5:
            params["lod"] = self.rng.choice([10**9, 2**64 - 1, 9, 8])
        return self.submit(job, params, arrays)

    def mutated_params(self) -> Frames:
        job = self.rng.choice([*self.jobs, "no_such_job"])
        params, arrays = self.jobs.get(job, ({}, {}))
        params = dict(params)
        for _ in range(self.rng.randint(1, 3)):
            action = self.rng.random()
            if action < 0.3 and params:
                del params[self.rng.choice(list(params))]
            elif action < 0.4:
                params[self.rng.choice(["bogus", "style", "sliders", "create", "tiles"])] = self.odd_value()
            elif params:
                params[self.rng.choice(list(params))] = self.odd_value()
        if self.rng.random() < 0.3:
            arrays = {self.rng.choice(["heights", "mask", "x"]): self.rng.choice(
                [np.zeros((2, 2), np.float32), np.full((33, 33), np.nan, np.float32), np.zeros(7, np.uint8),
                 np.ones((33, 33), np.bool_), np.zeros((33, 17), np.float64)])}
        return self.submit(job, params, arrays)

    def plain_request(self) -> Frames:
        kind, content = self.rng.choice([("ping", {"sent": 1.0}), ("status_request", {}),
                                         ("hello_request", {"client": "fuzz"}), ("shutdown_request", {}),
                                         ("cancel_request", {"job_id": os.urandom(4).hex()}),
                                         ("result", {"job_id": "j", "meta": {}})])
        return encode(Message(kind, content))


def make_corrupt_worlds(root: Path) -> list[Path]:
    """World folders with a damaged world.json or generation file, and a link out of the root."""
    docs = {"empty_doc": b"{}", "garbage": b"\x00\xffnot json", "wrong_types": json.dumps(
        {"format_version": "x", "seed": [], "tile_size": {}, "cell_size": "a", "styles": 3, "created": 1}).encode(),
        "future": json.dumps({"format_version": 99}).encode(), "list": b"[1, 2]"}
    worlds = []
    for name, data in docs.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "world.json").write_bytes(data)
        (root / name / "generation.json").write_bytes(data)
        worlds.append(root / name)
    np.save(root / "reference.npy", np.zeros((8, 8), np.float32))
    (root / "link_out").symlink_to("/", target_is_directory=True)
    return worlds


def is_direct_answer(msg: Message) -> bool:
    """A reply to the request itself, not part of a job's stream (job errors carry the job's id)."""
    return msg.kind not in JOB_MESSAGES and not (msg.kind == "error" and "job_id" in msg.content)


@dataclass
class FuzzFigures:
    sent: Counter = field(default_factory=Counter)  # mutation kind -> messages
    answered: Counter = field(default_factory=Counter)
    codes: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # kind -> reply code -> n
    slowest: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # kind -> seconds
    hangs: int = 0
    crashed: bool = False
    seconds: float = 0.0


def answer_to(socket: zmq.Socket, msg_id: str | None) -> Message | None:
    """The direct answer to the message just sent (job streams of earlier submits are skipped)."""
    deadline = time.monotonic() + HANG_S
    while (left := deadline - time.monotonic()) > 0:
        if not socket.poll(int(left * 1000)):
            return None
        reply = decode(socket.recv_multipart(copy=False))
        if is_direct_answer(reply) and reply.parent in (msg_id, None):
            return reply
    return None


def fuzz(backend: Backend, mutator: Mutator, count: int, oversized: int) -> FuzzFigures:
    """Send ``count`` mutated messages one at a time (plus ``oversized`` 600 MiB ones); every one must be answered."""
    figures = FuzzFigures()
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(backend.address)
    started = time.monotonic()
    big = np.zeros(200 * 1024 * 1024, np.uint8)
    try:
        for i in range(count + oversized):
            if i < oversized:  # F9: three frames under the frame limit, over the message limit together
                kind, frames = "F9 600 MiB message", encode(Message("submit_request", {
                    "job": "export", "target": "", "params": {}}, {f"a{j}": big for j in range(3)}))
            else:
                kind, frames = mutator.message()
            try:
                msg_id = msgpack.unpackb(frames[0]).get("id") if frames and frames[0] else None
            except Exception:
                msg_id = None
            msg_id = msg_id if isinstance(msg_id, str) else None
            sent_at = time.monotonic()
            figures.sent[kind] += 1
            socket.send_multipart(frames, copy=False)
            reply = answer_to(socket, msg_id)
            if reply is None:
                figures.hangs += 1
                if backend.process.poll() is not None:
                    figures.crashed = True
                    break
                continue
            figures.answered[kind] += 1
            figures.codes[kind][reply.content.get("code", reply.kind)] += 1
            figures.slowest[kind] = max(figures.slowest[kind], time.monotonic() - sent_at)
    finally:
        socket.close()
    figures.seconds = time.monotonic() - started
    figures.crashed = figures.crashed or backend.process.poll() is not None
    return figures


# -- SIGKILL rounds --------------------------------------------------------------------------------------
STORE_WRITER = """
import sys
import numpy as np
from backend.terrain import Heightfield
from backend.world.store import TileMeta, WorldStore
store, version = WorldStore.open(sys.argv[1]), int(sys.argv[2])
while True:
    coords, n = (version % 3, version % 2), store.tile_size
    store.put_tile(coords, Heightfield(np.full((n, n), version, np.float32), store.cell_size),
                   TileMeta("generated", "writer", version))
    record = store.append_edit("raise", coords, (0, 0, 4, 4), {"v": version},
                               {"heights": np.full((4, 4), version, np.float32)})
    print(record.seq, version, flush=True)
    version += 1
"""


@dataclass
class KillFigures:
    rounds: int = 0
    acknowledged: int = 0  # edits whose write returned (store) or whose result arrived (strokes)
    lost: int = 0
    torn_tiles: int = 0
    temp_files_left: int = 0
    temp_files_swept: int = 0


def check_world(world: Path, acknowledged: dict[int, Any], figures: KillFigures) -> None:
    """Every acknowledged edit is in the log, no tile fails its checksum; temp files counted, then swept."""
    from backend.world.store import WorldStore

    store = WorldStore.open(world)
    logged = {record.seq: record for record in store.edits()}
    figures.lost += sum(1 for seq in acknowledged if seq not in logged)
    figures.torn_tiles += len(store.verify_tiles())
    left = store.remove_temp_files()  # what the backend does when it opens the world
    figures.temp_files_left += left
    figures.temp_files_swept += left - sum(1 for _ in world.rglob(".*.tmp*"))


def kill_store_writer(root: Path, rounds: int, rng: random.Random) -> KillFigures:
    from backend.world.store import WorldStore

    world = root / "killed_store"
    WorldStore.create(world, seed=1, tile_size=513, cell_size=2.0)  # 1 MiB tiles: kills land inside writes
    figures, acknowledged = KillFigures(), {}
    for round_ in range(rounds):
        writer = subprocess.Popen([sys.executable, "-c", STORE_WRITER, str(world), str(round_ * 100_000)],
                                  stdout=subprocess.PIPE, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        first = writer.stdout.readline()  # imports done, writing
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        for line in [first, *writer.stdout.read().splitlines()]:
            seq, version = map(int, line.split())
            acknowledged[seq] = version
        writer.stdout.close()
        figures.rounds += 1
        check_world(world, acknowledged, figures)
    figures.acknowledged = len(acknowledged)
    return figures


def kill_during_strokes(root: Path, rounds: int, rng: random.Random) -> KillFigures:
    """Committed brush strokes into a world; the backend is SIGKILLed mid-stream and restarted each round."""
    world = root / "killed_strokes"
    figures, acknowledged = KillFigures(), {}
    heights = np.zeros((65, 65), np.float32)
    port = free_port()
    for _ in range(rounds):
        backend = Backend(root, port)
        client = Client(backend.address)
        deadline = time.monotonic() + rng.uniform(0.1, 1.5)
        try:
            while time.monotonic() < deadline:
                row, col = rng.randint(20, 44), rng.randint(20, 44)
                job = client.submit("brush", {"kind": rng.choice(["raise", "lower", "smooth"]), "stroke": [
                    [row, col, 1.0]], "radius": 4, "cell_size": 10.0, "world": str(world), "steps": 1},
                    arrays={"heights": heights})
                seq = client.wait_result(job, 60).content["meta"]["edit_seq"]
                acknowledged[seq] = job
            job = client.submit("brush", {"kind": "raise", "stroke": [[30, 30, 1.0]], "radius": 4, "cell_size": 10.0,
                                          "world": str(world), "steps": 1}, arrays={"heights": heights})
            time.sleep(rng.uniform(0.0, 0.05))  # the kill lands while this stroke is being written
        finally:
            client.close()
            backend.process.kill()
            backend.stop()
        figures.rounds += 1
        check_world(world, acknowledged, figures)
    figures.acknowledged = len(acknowledged)
    return figures


# -- soak --------------------------------------------------------------------------------------------------
@dataclass
class SoakFigures:
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    rss_start_kb: int
    rss_end_kb: int
    slope_kb_per_100k: float


def soak(backend: Backend, count: int) -> SoakFigures:
    """ping and status_request alternately, one at a time; RSS sampled 20 times, its slope fitted."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(backend.address)
    latencies = np.empty(count)
    samples: list[tuple[int, int]] = []
    try:
        for i in range(count):
            msg = Message("ping", {"sent": float(i)}) if i % 2 else Message("status_request")
            started = time.perf_counter()
            socket.send_multipart(encode(msg))
            if answer_to(socket, msg.id) is None:
                raise RuntimeError(f"soak request {i} unanswered")
            latencies[i] = time.perf_counter() - started
            if i % max(1, count // 20) == 0 or i == count - 1:
                samples.append((i, backend.memory_kb("VmRSS")))
    finally:
        socket.close()
    x, rss = np.array(samples, dtype=np.float64).T
    half = len(samples) // 2  # the first half warms allocator pools up: the slope is fitted on the second
    slope = float(np.polyfit(x[half:], rss[half:], 1)[0] * 100_000) if len(samples) > 3 else 0.0
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    return SoakFigures(count, float(p50), float(p99), float(latencies.max() * 1000), int(rss[0]), int(rss[-1]),
                       slope)


# -- report ------------------------------------------------------------------------------------------------
def fuzz_table(f: FuzzFigures) -> list[str]:
    lines = ["| mutation | sent | answered | slowest answer | answers |", "|---|---:|---:|---:|---|"]
    for kind in sorted(f.sent):
        codes = ", ".join(f"{code} {n}" for code, n in f.codes[kind].most_common())
        lines.append(f"| {kind} | {f.sent[kind]:,} | {f.answered[kind]:,} | {f.slowest[kind] * 1000:.0f} ms | "
                     f"{codes} |")
    return lines


def kill_line(name: str, k: KillFigures) -> str:
    return (f"| {name} | {k.rounds} | {k.acknowledged:,} | {k.lost} | {k.torn_tiles} | {k.temp_files_left} | "
            f"{k.temp_files_swept} |")


def report(args: argparse.Namespace, f: FuzzFigures, peak_kb: int, exit_code: int, store: KillFigures,
           strokes: KillFigures, s: SoakFigures) -> str:
    sent, answered = sum(f.sent.values()), sum(f.answered.values())
    command = (f"python reports/make_reliability_report.py --messages {args.messages} --oversized {args.oversized} "
               f"--store-kills {args.store_kills} --stroke-kills {args.stroke_kills} --soak {args.soak} "
               f"--seed {args.seed}")
    return "\n".join([
        "# Reliability report", "",
        f"Made by `{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores, CPU backend with the shipped "
        "models, loopback only). Every message went to a live `python -m backend serve` over a real socket, one at "
        f"a time; a message unanswered for {HANG_S:.0f} s counts as a hang.", "",
        "## Fuzzing", "",
        f"**{sent:,} messages sent, {answered:,} answered, {f.hangs} hangs, "
        f"{'a crash' if f.crashed else '0 crashes'}**; the backend then stopped on SIGTERM with exit code "
        f"{exit_code}. Peak memory (VmHWM) of the backend: {peak_kb / 1024:.0f} MiB (the 600 MiB messages are "
        f"received whole by ZeroMQ before the size check refuses them). {f.seconds:.0f} s in all.", "",
        *fuzz_table(f), "",
        "Valid requests among the mutations run as jobs; beyond 32 queued jobs submits are answered `busy`. "
        "`forbidden`: a path outside the backend's root or a shutdown from a client without a CURVE key.", "",
        "## SIGKILL rounds", "",
        "A world-store writer (tiles of 1 MiB and edits, in a loop) killed at a random moment, and a backend "
        "killed while committed brush strokes stream into a world (then restarted on the same port). "
        "Acknowledged: the write call returned (store) or the stroke's result arrived (strokes). Temp files "
        "left by the kills are swept when the world is next opened.", "",
        "| writer | rounds | acknowledged edits | lost | torn tiles | temp files left | swept |",
        "|---|---:|---:|---:|---:|---:|---:|",
        kill_line("world store", store), kill_line("backend, committed strokes", strokes), "",
        "## Soak", "",
        f"{s.requests:,} requests (ping and status alternately, one at a time): latency p50 {s.p50_ms:.2f} ms, "
        f"p99 {s.p99_ms:.2f} ms, max {s.max_ms:.1f} ms; RSS {s.rss_start_kb:,} kB -> {s.rss_end_kb:,} kB, slope "
        f"{s.slope_kb_per_100k:+,.0f} kB per 100,000 requests (fitted on the second half).", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--oversized", type=int, default=5, help="600 MiB messages (F9) sent besides")
    parser.add_argument("--store-kills", type=int, default=60)
    parser.add_argument("--stroke-kills", type=int, default=25)
    parser.add_argument("--soak", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="worldsculpt-reliability-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        backend = Backend(root)
        try:
            figures = fuzz(backend, Mutator(rng, root), args.messages, args.oversized)
            print(f"fuzz: {sum(figures.sent.values())} sent, {sum(figures.answered.values())} answered", flush=True)
            soaked = soak(backend, args.soak)
            peak_kb = backend.memory_kb("VmHWM")
        finally:
            exit_code = backend.stop()
        store = kill_store_writer(root, args.store_kills, rng)
        strokes = kill_during_strokes(root, args.stroke_kills, rng)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(args, figures, peak_kb, exit_code, store, strokes, soaked))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
