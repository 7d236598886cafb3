"""Round-trip time and throughput of heightfield-sized arrays over tcp loopback.

Two layouts in the same run, so the ratio is what to quote: the real protocol (``protocol.codec``
header + zero-copy array frame, decoded and validated on both sides) and raw pyzmq frames
(a tiny header frame + the same buffer, no msgpack, no checks). An echo ROUTER runs in a thread
and sends every message straight back, so each round trip moves the payload once each way.

    python -m benchmarks.bench_transport [--out benchmarks/results/transport_cpu.txt]   (from the repo root)
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import subprocess
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import zmq

from protocol import Limits, Message, decode, encode
from protocol.client import configure_socket

PAYLOADS = {  # name -> float32 array shape
    "256^2 heightfield (256 KiB)": (256, 256),
    "1024^2 heightfield (4 MiB)": (1024, 1024),
    "4 MiB array": (1 << 20,),
    "64 MiB array": (1 << 24,),
}
STOP = b"stop"


def echo(context: zmq.Context, address: str, codec: bool) -> None:
    """ROUTER that returns every message; with ``codec`` it decodes and re-encodes like the server."""
    router = context.socket(zmq.ROUTER)
    configure_socket(router, Limits())
    router.bind(address)
    while True:
        if not router.poll(10_000):
            break
        identity, *frames = router.recv_multipart(copy=False)
        if frames[0].bytes == STOP:
            break
        if codec:
            msg = decode(frames)
            frames = encode(msg.reply("result", msg.content, msg.arrays))
        router.send_multipart([identity, *frames], copy=False)
    router.close()


def run(shape: tuple[int, ...], codec: bool, repeats: int, context: zmq.Context, port: int) -> list[float]:
    address = f"tcp://127.0.0.1:{port}"
    thread = threading.Thread(target=echo, args=(context, address, codec))
    thread.start()
    dealer = context.socket(zmq.DEALER)
    configure_socket(dealer, Limits())
    dealer.connect(address)
    array = np.random.default_rng(0).random(shape, dtype=np.float32)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        if codec:
            msg = Message("result", {"job_id": "bench", "meta": {}}, {"heights": array})
            dealer.send_multipart(encode(msg), copy=False)
        else:
            dealer.send_multipart([msgpack.packb({"n": i}), array], copy=False)
        if not dealer.poll(30_000):
            raise TimeoutError(f"no echo for {shape} in 30 s")
        frames = dealer.recv_multipart(copy=False)
        back = decode(frames).arrays["heights"] if codec else np.frombuffer(frames[1].buffer, np.float32)
        if i > 0:  # the first round trip connects and warms up
            times.append(time.perf_counter() - start)
        if back.size != array.size:
            raise RuntimeError(f"echo returned {back.size} values, sent {array.size}")
    dealer.send(STOP)
    thread.join()
    dealer.close()
    return times


def header() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    cores = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("CPU(s)")), "?")
    return (f"# transport benchmark, {datetime.datetime.now().isoformat(timespec='seconds')}\n"
            f"# cpu: {model}, {cores} logical CPUs (shared with other work; figures vary +-20 %)\n"
            f"# python {platform.python_version()}, numpy {np.__version__}, pyzmq {zmq.__version__}, "
            f"libzmq {zmq.zmq_version()}, msgpack {'.'.join(map(str, msgpack.version))}\n"
            f"# tcp://127.0.0.1, one round trip = payload out and back; GB/s per direction = bytes / (rtt / 2), from the median and the best rtt\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "transport_cpu.txt")
    args = parser.parse_args()
    context = zmq.Context()
    lines = [header(), f"{'payload':<30}{'layout':<14}{'median rtt':>12}{'min rtt':>10}{'GB/s/dir':>10}{'best':>8}"]
    port = 47100
    for name, shape in PAYLOADS.items():
        nbytes = int(np.prod(shape)) * 4
        repeats = 10 if nbytes >= 32 << 20 else 50
        for codec in (False, True):
            port += 1
            times = run(shape, codec, repeats, context, port)
            median = statistics.median(times)
            rate, best = nbytes / (median / 2) / 1e9, nbytes / (min(times) / 2) / 1e9
            layout = "codec" if codec else "raw pyzmq"
            lines.append(f"{name:<30}{layout:<14}{median * 1e3:>10.2f}ms{min(times) * 1e3:>8.2f}ms{rate:>10.2f}{best:>8.2f}")
            print(lines[-1], flush=True)
    context.term()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
