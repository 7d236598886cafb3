"""Every job the backend runs, declared once: how its params are checked and how the worker runs it.

A job kind is a :class:`JobKind` in :data:`JOB_KINDS`. Its ``parse`` is the kind's schema: it checks the
submit's ``params`` and arrays (types, ranges, sizes; paths confined to the roots) before anything runs
and raises ValueError naming the bad value. Its ``run`` is called on the worker thread and returns the
result's meta and arrays; the worker reports failures and cancellations for every kind alike. The
envelope around ``params`` (types, string lengths, nesting depth, message size) is already checked by
``protocol.decode``. Adding a kind means adding one entry here.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch

from backend.diffusion.samplers import cancel_on
from backend.generators import Cancelled, GenerateRequest, Generator, registry
from backend.generators.voxel_region import MODEL_SOURCES
from backend.metrics.style_classifier import StyleClassifier
from backend.simulation.material import material_masks
from backend.voxels.chunk import PALETTE

from .brush_job import BrushRequest
from .curve_job import CurveRequest
from .edit_log_job import EditLogRequest
from .export_job import ExportRequest
from .jobs import Job
from .paths import Roots
from .simulate_job import SimulateRequest
from .style_job import StyleFromRequest
from .voxel_job import VoxelRequest, run_voxels
from .world_job import OpenWorlds, WorldTilesRequest, check_available

Arrays = dict[str, np.ndarray]
EDIT_THREADS = 1  # intra-op torch threads of brush and curve edits (``torch_threads``)
Outcome = tuple[dict[str, Any], Arrays]  # the result's meta and arrays


class Services(Protocol):
    """What the worker lends a running job (everything here lives on the worker thread)."""

    worlds: OpenWorlds

    def generator(self, name: str) -> Generator: ...

    def classifier(self) -> StyleClassifier: ...

    def send(self, job: Job, kind: str, content: dict[str, Any], arrays: Arrays | None = None) -> None: ...


@dataclass(frozen=True)
class JobKind:
    name: str
    parse: Callable[[dict[str, Any], Arrays, Roots], Any]  # (params, arrays, roots) -> request; ValueError
    run: Callable[[Services, Job], Outcome]


def _check_cancel(job: Job, step: int, total: int) -> None:
    if job.cancel.is_set():
        raise Cancelled(f"stopped at step {step} of {total}")


def _progress(services: Services, job: Job, step: int, total: int, stage: str) -> None:
    job.step, job.total = step, total
    services.send(job, "progress", {"step": step, "total": total, "stage": stage})


# -- generate --------------------------------------------------------------------------------
def _parse_generate(params: dict[str, Any], arrays: Arrays, roots: Roots) -> GenerateRequest:
    request = GenerateRequest.from_params(params, registry.default_name())
    registry.check_request(request)
    return request


def _run_generate(services: Services, job: Job) -> Outcome:
    request: GenerateRequest = job.request
    services.send(job, "progress", {"step": 0, "total": 0, "stage": "started"})

    def on_step(step: int, total: int, preview: np.ndarray | None) -> None:
        _check_cancel(job, step, total)
        _progress(services, job, step, total, "generating")
        if preview is not None:
            n = preview.shape[0]
            meta = {"resolution": n, "size_m": request.size_m, "cell_size": request.size_m / (n - 1)}
            services.send(job, "preview", {"step": step, "meta": meta}, {"heights": preview.astype(np.float32)})

    def interrupt() -> None:
        if job.cancel.is_set():
            raise Cancelled(f"stopped during step {job.step + 1} of {job.total}")

    heightfield = services.generator(request.generator).generate(request, on_step, interrupt)
    heights = heightfield.heights
    meta = {"cell_size": float(heightfield.cell_size), "resolution": int(heights.shape[0]),
            "size_m": request.size_m, "generator": request.generator, "seed": request.seed,
            "min_m": float(heights.min()), "max_m": float(heights.max())}
    arrays = {"heights": heights}
    if request.masks:  # for the add-on's terrain material: one (H, W, N) array, its layers named in meta
        masks = material_masks(heights, heightfield.cell_size)
        meta["mask_names"], arrays["masks"] = list(masks), np.stack(list(masks.values()), axis=-1)
    return meta, arrays


# -- export ----------------------------------------------------------------------------------
def _run_export(services: Services, job: Job) -> Outcome:
    services.send(job, "progress", {"step": 0, "total": 1, "stage": "exporting"})
    return {"files": [str(f) for f in job.request.run()]}, {}


# -- brush and curve (edits of a terrain the client sends) -----------------------------------
_EXTRA_WEIGHTS = {"profile": "profile_1d", "voxel": "voxel_chunks",  # an optional model's weights files
                  "voxel_memory": "voxel_chunks, voxel_memory and voxel_readout"}


def _learned_styles(job: str, extra: str | None = None) -> tuple[str, ...]:
    """The learned models' styles; ValueError when they (or the ``extra`` model) are not loaded."""
    if "diffusion" not in registry.available():
        raise ValueError(f"{job} needs the learned models (terrain_base and terrain_superres weights)")
    spec = registry.get("diffusion")
    if extra is not None and extra not in spec.extras:
        raise ValueError(f"{job} needs the learned models and the {extra} model "
                         f"(terrain_base, terrain_superres and {_EXTRA_WEIGHTS[extra]} weights)")
    return spec.styles


def _parse_brush(params: dict[str, Any], arrays: Arrays, roots: Roots) -> BrushRequest:
    return BrushRequest.from_params(params, arrays, _learned_styles("brushes"), roots)


def _parse_curve(params: dict[str, Any], arrays: Arrays, roots: Roots) -> CurveRequest:
    return CurveRequest.from_params(params, arrays, _learned_styles("curve guides", "profile"), roots)


def _run_edit(services: Services, job: Job) -> Outcome:
    """Edit the stroke's or curve's window, log it when committed, answer with the window (previews meanwhile)."""
    request: BrushRequest | CurveRequest = job.request
    services.send(job, "progress", {"step": 0, "total": 0, "stage": "started"})
    stage = "brushing" if job.kind == "brush" else "shaping"

    def on_step(step: int, total: int, window: tuple[int, int, int, int], heights: Callable[[], np.ndarray]) -> None:
        _check_cancel(job, step, total)
        _progress(services, job, step, total, stage)
        services.send(job, "preview", {"step": step, "meta": {"window": list(window)}}, {"heights": heights()})

    def on_live_step(step: int, total: int, window: tuple[int, int, int, int], heights: Callable[[], np.ndarray]
                     ) -> None:
        """A live update is itself a preview, its result due within a few tens of ms: its steps are not
        streamed (each one Blender would write into the mesh, on the same CPU, only to overwrite it), nor made."""
        _check_cancel(job, step, total)
        _progress(services, job, step, total, stage)

    with torch_threads(EDIT_THREADS):
        edit, extra = request.run(services.generator("diffusion"), on_step if request.edit.commit else on_live_step)
    seq = request.record(edit) if request.edit.commit and request.edit.world is not None else None
    meta = {"window": list(edit.window), "kind": request.kind, "commit": request.edit.commit, "edit_seq": seq}
    return meta, {"heights": edit.heights, "weight": edit.weight, **extra}


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads (the worker runs one job at a time, so nothing else sees it).

    An edit is a few hundred small ops on grids of 34-128² model cells: a second thread buys little there (a
    committed 256² dab 72 vs 81 ms in-process on a quiet core pair), and when a core is busy (Blender writing the
    previews into the mesh and redrawing beside the backend, another process) the two threads wait on each other:
    a live regenerate dab at 128² took 142-1781 ms with two threads on this 2-core machine under load, 22-46 ms
    with one; committed 128² dabs took 180-3150 ms end to end in bench_brush for 14-43 ms of compute."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- style_from ------------------------------------------------------------------------------
def _run_style_from(services: Services, job: Job) -> Outcome:
    """Read the reference, measure it, answer with its style weights and sliders (no arrays)."""
    services.send(job, "progress", {"step": 0, "total": 1, "stage": "measuring style"})
    return job.request.run(services.classifier()), {}


# -- simulate --------------------------------------------------------------------------------
def _run_simulate(services: Services, job: Job) -> Outcome:
    """Erode the sent terrain; every call's heights stream as a preview of the whole grid."""
    request: SimulateRequest = job.request
    services.send(job, "progress", {"step": 0, "total": request.steps, "stage": "simulating"})
    generator = services.generator("diffusion") if "diffusion" in registry.available() else None
    surrogate = getattr(getattr(generator, "models", None), "erosion", None)

    def on_call(done: int, total: int, heights: np.ndarray) -> None:
        _check_cancel(job, done, total)
        _progress(services, job, done, total, "simulating")
        services.send(job, "preview", {"step": done, "meta": {"window": [0, 0, *heights.shape]}}, {"heights": heights})

    return request.run(surrogate, on_call)


# -- world_tiles -----------------------------------------------------------------------------
def _parse_world_tiles(params: dict[str, Any], arrays: Arrays, roots: Roots) -> WorldTilesRequest:
    request = WorldTilesRequest.from_params(params, roots)
    check_available(request)
    return request


def _run_world_tiles(services: Services, job: Job) -> Outcome:
    request: WorldTilesRequest = job.request
    services.send(job, "progress", {"step": 0, "total": len(request.tiles), "stage": "world_tiles"})
    models = services.generator("diffusion")
    meta, heights = services.worlds.run(
        request, models.base, models.superres, cancel_on(job.cancel),
        lambda done, total: _progress(services, job, done, total, "world_tiles"), getattr(models, "memory", None))
    return meta, {"heights": heights}


# -- voxels and voxel_edit ----------------------------------------------------------------------
def _voxel_parser(job: str) -> Callable[[dict[str, Any], Arrays, Roots], VoxelRequest]:
    """The job's params checked; a source drawn by the voxel model needs it loaded with the learned models."""
    def parse(params: dict[str, Any], arrays: Arrays, roots: Roots) -> VoxelRequest:
        request = VoxelRequest.from_params(job, params, arrays, roots)
        if request.source in MODEL_SOURCES:
            _learned_styles(f"the {request.source!r} chunk source", "voxel")
        if request.memory:
            _learned_styles("a voxel world with memory", "voxel_memory")
        return request
    return parse


def _run_voxels(services: Services, job: Job) -> Outcome:
    """Each chunk's mesh goes out as a preview the moment it is ready; the result sums them up."""
    request: VoxelRequest = job.request
    stage = request.stroke.op if request.stroke is not None else "undo" if request.history else "meshing"
    services.send(job, "progress", {"step": 0, "total": len(request.keys), "stage": stage})

    def on_mesh(done: int, total: int, key: Any, mesh: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        _progress(services, job, done, total, stage)
        vertices, faces, material = mesh
        meta = {"chunk": [key.i, key.j, key.k], "mesh": request.mesh, "lod": request.lod.level(key),
                "palette": [list(rgb) for _, rgb in PALETTE],
                "material_domain": "POINT" if request.mesh == "smooth" else "FACE"}
        services.send(job, "preview", {"step": done, "meta": meta},
                      {"vertices": vertices, "faces": faces, "material": material})

    models = services.generator("diffusion").models if request.source in MODEL_SOURCES else None
    memory = (models.voxel_memory, models.voxel_readout) if request.memory else None
    return run_voxels(request, on_mesh, lambda step, total: _check_cancel(job, step, total),
                      models.voxel if models is not None else None, memory), {}


JOB_KINDS: dict[str, JobKind] = {kind.name: kind for kind in (
    JobKind("generate", _parse_generate, _run_generate),
    JobKind("export", lambda params, arrays, roots: ExportRequest.from_params(params, arrays, roots), _run_export),
    JobKind("brush", _parse_brush, _run_edit),
    JobKind("world_tiles", _parse_world_tiles, _run_world_tiles),
    JobKind("curve", _parse_curve, _run_edit),
    JobKind("style_from", lambda params, arrays, roots: StyleFromRequest.from_params(params, arrays, roots),
            _run_style_from),
    JobKind("voxels", _voxel_parser("voxels"), _run_voxels),
    JobKind("voxel_edit", _voxel_parser("voxel_edit"), _run_voxels),
    JobKind("voxel_undo", _voxel_parser("voxel_undo"), _run_voxels),
    JobKind("simulate", lambda params, arrays, roots: SimulateRequest.from_params(params, arrays), _run_simulate),
    JobKind("edit_log", lambda params, arrays, roots: EditLogRequest.from_params(params, roots),
            lambda services, job: (job.request.run(), {})),
)}
