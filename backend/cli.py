"""Command line: ``worldsculpt serve`` runs the server, ``worldsculpt generate`` makes a world headless
(``python -m backend ...`` runs the same)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def _serve(args: argparse.Namespace) -> int:
    from backend.generators import use_models_dir
    from backend.server import Server, ServerConfig
    from backend.server.worker import resolve_device

    if args.models_dir is not None and not use_models_dir(args.models_dir):
        raise SystemExit(f"--models-dir {args.models_dir}: terrain_base.safetensors and "
                         "terrain_superres.safetensors not both found there")
    missing = [str(r) for r in args.root if not r.is_dir()]
    if missing:
        raise SystemExit(f"--root {', '.join(missing)}: not a folder")
    try:
        server = Server(ServerConfig(args.address, resolve_device(args.device), tuple(args.root), args.keys))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    server.serve()
    return 0


def _formats(text: str) -> list[str]:
    """``--formats png16,r16,glb`` -> ["png16", "r16", "glb"]; unknown names are an argparse error."""
    from backend.export import FORMATS

    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(f"unknown formats {unknown or text!r}; choose from {','.join(FORMATS)}")
    return formats


def _generate(args: argparse.Namespace) -> int:
    from backend.headless import generate_world

    params = {"style": args.style, "seed": args.seed, "resolution": args.resolution, "size_m": args.size_m,
              "height_m": args.height_m, "quality": args.quality, "erosion_stage": args.erosion}
    if args.generator is not None:
        params["generator"] = args.generator
    for path in generate_world(params, args.out, device=args.device, render=not args.no_render, timeout=args.timeout,
                               formats=args.formats, preset=args.preset):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    from backend.simulation.landscape import EROSION_STAGES  # numpy and fastscapelib only: --help stays quick

    parser = argparse.ArgumentParser(prog="worldsculpt", description="worldsculpt backend")
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the add-on over ZeroMQ")
    serve.add_argument("--address", default="tcp://127.0.0.1:5555")
    serve.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    serve.add_argument("--models-dir", type=Path, default=None,
                       help="folder with the learned models (default: the shipped models/)")
    serve.add_argument("--root", type=Path, action="append", default=[], metavar="FOLDER",
                       help="a folder the paths of requests (exports, worlds, references) must lie in; repeatable "
                            "(default: your home folder)")
    serve.add_argument("--keys", type=Path, default=None, metavar="FOLDER",
                       help="CURVE key folder (created on first use): only clients holding a key get in; "
                            "needed to bind any address but loopback")
    serve.set_defaults(run=_serve)

    gen = commands.add_parser("generate", help="start a local backend, generate one world, write its assets")
    gen.add_argument("--out", type=Path, required=True, help="output folder")
    gen.add_argument("--resolution", type=int, default=256, help="cells per side")
    gen.add_argument("--size-m", type=float, default=4000.0, help="world size, metres")
    gen.add_argument("--height-m", type=float, default=1500.0, help="elevation range, metres")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--style", default="alpine")
    gen.add_argument("--quality", choices=("interactive", "full"), default="interactive",
                     help="few sampler steps, or the full sampler (learned terrain)")
    gen.add_argument("--erosion", choices=tuple(EROSION_STAGES), default="light",
                     help="stream-power erosion after sampling: carves drainage (learned terrain)")
    gen.add_argument("--generator", default=None, help="diffusion or procedural (default: the backend's default)")
    gen.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    gen.add_argument("--formats", type=_formats, default=["glb", "png16"], metavar="F1,F2",
                     help="comma-separated export formats: png16 r16 raw exr geotiff masks glb gltf obj ply stl")
    gen.add_argument("--preset", choices=("unreal", "unity"), default=None,
                     help="resample heightmaps/masks to the engine's landscape sizes")
    gen.add_argument("--no-render", action="store_true", help="skip the Blender preview render")
    gen.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the result")
    gen.set_defaults(run=_generate)

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.run(args)
