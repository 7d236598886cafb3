"""What memory buys voxel chunks: ``python reports/make_voxel_memory_report.py`` -> ``reports/voxel_memory/``.

Needs ``corpus/voxels`` (``python -m backend.data.voxel_corpus``), ``models/voxel_chunks.safetensors``, the
memory model ``models/voxel_memory.safetensors`` (``python -m backend.training.train_voxel_memory
configs/voxel_memory.json``) and its slider readout ``models/voxel_readout.safetensors`` (``python -m
backend.training.train_voxel_readout configs/voxel_readout.json``). Writes the README, summary.json, the training
log and curve, and the two models' cards. Every figure is on the regions the memory model's file names as held out
of its training (the readout holds out the same).

0. Denoising a window of a held-out region with memory written from 6 other chunks of that region (at the
   serving context noise): mean squared error of the x0 estimate with memory, with the null memory (the same
   weights) and by the shipped model, at several noise levels, with the region's sliders given and with the
   sliders left at their null (an artist who did not set them).
1. Cave share of chunks generated (interactive quality, annealed) under a held-out region's terrain, sliders
   unset, no neighbours as known cells, reading memory written from all 17 other chunks of a cave-rich or a
   cave-poor held-out region around it, or of the region itself: by the memory model alone, and as served (the
   memory model conditioned on the slider readout's estimate); with the null memory and by the shipped model.
2. The slider readout's error on the held-out regions' reads against the best constant (its file's figures).
3. How far the estimate reaches: the readout's cave density for chunks 0 to 8 chunks east of a target, in memory
   written from the chunks of a cave-rich or a cave-poor held-out region around the target.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python reports/make_voxel_memory_report.py` from anywhere
    sys.path.insert(0, str(ROOT))

from backend.data.voxel_corpus import REGION_CHUNKS, load_regions  # noqa: E402
from backend.data.voxel_walks import VoxelWalkDataset  # noqa: E402
from backend.diffusion.preconditioning import Conditioning  # noqa: E402
from backend.generators.voxel_chunks import VoxelChunkRequest, generate_chunk_with_stats  # noqa: E402
from backend.memory.loss import walk_memory  # noqa: E402
from backend.memory.network import MemoryDenoiser, null_tokens  # noqa: E402
from backend.models.voxel import VoxelModel, VoxelReadout  # noqa: E402
from backend.voxels.chunk import CHUNK, ChunkKey, VoxelChunk  # noqa: E402
from backend.voxels.measures import cave_cells  # noqa: E402
from backend.world.voxel_memory import MemoryChunks, VoxelMemory  # noqa: E402
from reports.make_voxel_report import committed_log, training_curve  # noqa: E402

OUT = ROOT / "reports" / "voxel_memory"
SIGMAS = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)
WINDOWS_PER_REGION = 4
CONTEXT = 6
TARGET = (0, 1, 1)  # (z, row, col) chunk of a region generated in section 1: the lower layer's centre, underground
DONORS = 3  # cave-rich and cave-poor regions whose chunks are committed around a target
SEEDS = 2


def denoising_errors(memory_model: VoxelModel, base: VoxelModel, regions, held: np.ndarray, batch: int = 8
                     ) -> dict[str, dict[str, list[float]]]:
    """Per slider setting and condition: each item's error per sigma ([items, sigmas] as lists)."""
    denoiser: MemoryDenoiser = memory_model.denoiser
    network, cfg = denoiser.network, denoiser.network.config
    data = VoxelWalkDataset(regions, held, cfg.region_tiles, CONTEXT, fold_probability=0.0, seed=1,
                            min_context=CONTEXT)
    items = [data[h * data.windows_per_region + w] for h in range(len(held)) for w in range(WINDOWS_PER_REGION)]
    out: dict[str, dict[str, list]] = {s: {"memory": [], "null memory": [], "shipped": []}
                                       for s in ("sliders given", "sliders unset")}
    g = torch.Generator().manual_seed(7)
    for start in range(0, len(items), batch):
        part = items[start:start + batch]
        x0 = torch.stack([it[0] for it in part])
        cond = Conditioning.cat([it[1].map(lambda t: t[None]) for it in part])
        extras = {k: torch.stack([it[2][k] for it in part]) for k in part[0][2]}
        context = extras["context"]
        noised = context + cfg.write_sigma * torch.randn(context.shape, generator=g)
        sigma_w = torch.full((noised.shape[0] * noised.shape[1],), cfg.write_sigma)
        with torch.no_grad():
            tokens = network.encode(noised.flatten(0, 1), sigma_w).unflatten(0, noised.shape[:2])
            memory = walk_memory(network, tokens, extras)
        noise = torch.randn(x0.shape, generator=g)
        for setting in out:
            c = cond if setting == "sliders given" else cond.replace(sliders=torch.zeros_like(cond.sliders))
            rows = {name: [] for name in out[setting]}
            for sigma in SIGMAS:
                x = x0 + sigma * noise
                s = torch.full((len(x0),), sigma)
                with torch.no_grad():
                    found = {"memory": denoiser(x, s, c.replace(memory=memory)),
                             "null memory": denoiser(x, s, c.replace(memory=null_tokens(cfg, len(x0)))),
                             "shipped": base.denoiser(x, s, c)}
                for name, d in found.items():
                    rows[name].append(((d - x0) ** 2).flatten(1).mean(1))
            for name, per_sigma in rows.items():
                out[setting][name] += torch.stack(per_sigma, 1).tolist()
    return out


def region_cave_share(regions, r: int) -> float:
    """Open cells under the terrain / cells under it, over the whole region."""
    depth = regions.terrain_depth(r)
    return float(cave_cells(regions.density[r] > 0, depth).sum() / max(int((depth > 0).sum()), 1))


def region_chunks(regions, r: int, key0: ChunkKey) -> dict[tuple[int, ...], tuple[VoxelChunk, np.ndarray]]:
    """The region's chunks keyed from ``key0`` (its chunk (0, 0, 0)), with their terrain depth, by (z, row, col)."""
    depth = regions.terrain_depth(r)
    out = {}
    for z, row, col in product(*map(range, REGION_CHUNKS)):
        box = (slice(z * CHUNK, (z + 1) * CHUNK), slice(row * CHUNK, (row + 1) * CHUNK),
               slice(col * CHUNK, (col + 1) * CHUNK))
        key = ChunkKey(key0.i + col, key0.j + row, key0.k + z)
        out[z, row, col] = (VoxelChunk(key, regions.voxel_size, regions.density[r][box].astype(np.float32),
                                       regions.material[r][box]), depth[box])
    return out


def committed_memory(memory_model: VoxelModel, chunks: dict[tuple[int, ...], tuple[VoxelChunk, np.ndarray]]
                     ) -> VoxelMemory:
    """The memory of a world whose artist committed every chunk of ``chunks`` but the target, one edit each."""
    edits = [(seq, chunk) for seq, (pos, (chunk, _)) in enumerate(chunks.items()) if pos != TARGET]
    depths = {chunk.key: depth for chunk, depth in chunks.values()}
    return VoxelMemory.from_edits(memory_model.denoiser, 0, edits, depths.__getitem__)


Condition = tuple[torch.Tensor | None, dict[str, float]]  # (memory tokens, sliders) of one generation


def donor_conditions(memory_model: VoxelModel, readout: VoxelReadout, key: ChunkKey, key0: ChunkKey, regions,
                     donors: list[int], label: str) -> dict[str, list[Condition]]:
    """Memory written from each donor region's chunks around ``key``: read by the memory model alone (sliders
    unset) and as served (the readout's estimate for the unset sliders)."""
    margin = int(memory_model.meta["margin"])
    memories = [committed_memory(memory_model, region_chunks(regions, d, key0)) for d in donors]
    return {f"memory, {label}": [(m.read(key, margin), {}) for m in memories],
            f"served, {label}": [MemoryChunks(m, readout.readout, margin).condition(key, {}) for m in memories]}


REACH = (0, 1, 2, 4, 8)  # chunks east of the target whose estimate section 3 reads


def estimate_reach(memory_model: VoxelModel, readout: VoxelReadout, regions, donors: dict[str, list[int]]
                   ) -> dict[str, list[float]]:
    """Section 3: per donor kind, the mean cave density estimate at each distance in REACH (the donor's chunks
    committed around its own target, read farther and farther east)."""
    vs, margin = regions.voxel_size, int(memory_model.meta["margin"])
    out = {}
    for kind, found in donors.items():
        rows, served = [], []
        for d in found:
            key0 = ChunkKey(0, 0, int(round((regions.z[d][0] - vs / 2) / (CHUNK * vs))))
            chunks = MemoryChunks(committed_memory(memory_model, region_chunks(regions, d, key0)), readout.readout,
                                  margin)
            target = ChunkKey(key0.i + TARGET[2], key0.j + TARGET[1], key0.k + TARGET[0])
            keys = [ChunkKey(target.i + r, target.j, target.k) for r in REACH]
            rows.append([chunks.readout.estimate(chunks.memory.read(k, margin))["cave_density"] for k in keys])
            served.append([chunks.memory.near(k) for k in keys])
        out[kind] = {"estimate": np.mean(rows, axis=0).tolist(), "served": np.all(served, axis=0).tolist()}
    return out


def cave_response(memory_model: VoxelModel, base: VoxelModel, readout: VoxelReadout, regions, held: np.ndarray
                  ) -> dict:
    """Section 1: mean cave share of generated chunks per condition, each target's row, the readout's estimates."""
    vs = regions.voxel_size
    shares = {int(r): region_cave_share(regions, int(r)) for r in held}
    ranked = sorted(shares, key=shares.__getitem__)
    poor, rich = ranked[:DONORS], ranked[-DONORS:]
    null = null_tokens(memory_model.denoiser.network.config, 1)
    rows, estimates = [], {}
    for r in map(int, held):
        key0 = ChunkKey(0, 0, int(round((regions.z[r][0] - vs / 2) / (CHUNK * vs))))
        own, depth = region_chunks(regions, r, key0)[TARGET]
        key = own.key
        style = regions.style_names[int(regions.style[r])]
        under = max(int((depth > 0).sum()), 1)

        def share(solid: np.ndarray) -> float:
            return float(cave_cells(solid, depth).sum() / under)

        row: dict = {"region": r, "style": style, "corpus": share(own.solid)}
        conditions: dict[str, list[Condition]] = {"shipped": [(None, {})], "null memory": [(null, {})]}
        for label, donors in (("cave-rich", [d for d in rich if d != r][:DONORS - 1]),
                              ("cave-poor", [d for d in poor if d != r][:DONORS - 1]), ("own region", [r])):
            conditions.update(donor_conditions(memory_model, readout, key, key0, regions, donors, label))
        for name, found in conditions.items():
            model = base if name == "shipped" else memory_model
            row[name] = float(np.mean([share(generate_chunk_with_stats(model, VoxelChunkRequest(
                regions.surface[r], vs, (vs / 2, -vs / 2), key, vs, world_seed=seed, style_weights={style: 1.0},
                sliders=sliders, memory=memory))[0].solid) for memory, sliders in found for seed in range(SEEDS)]))
            if name.startswith("served"):
                estimates.setdefault(name, []).extend(sliders for _, sliders in found)
        rows.append(row)
    names = [n for n in rows[0] if n not in ("region", "style")]
    return {"rows": rows, "mean": {n: float(np.mean([row[n] for row in rows])) for n in names},
            "off_corpus": {n: float(np.mean([abs(row[n] - row["corpus"]) for row in rows])) for n in names[1:]},
            "estimates": {n: {s: float(np.mean([e[s] for e in found])) for s in found[0]}
                          for n, found in estimates.items()},
            "donor_share": {"rich": [shares[d] for d in rich], "poor": [shares[d] for d in poor]},
            "reach": estimate_reach(memory_model, readout, regions, {"cave-rich": rich, "cave-poor": poor})}


def table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def own_region_distance(off: dict[str, float]) -> str:
    """The mean distance from the corpus of chunks whose memory was written from their own region, and without."""
    return (f"served {off['served, own region']:.4f}, memory alone {off['memory, own region']:.4f}; without memory: "
            f"shipped {off['shipped']:.4f}, null memory {off['null memory']:.4f}")


def readout_table(readout_meta: dict) -> str:
    """Section 2: the readout's held-out error per slider against the best constant."""
    rows = [[name, f"{e['rmse']:.3f}", f"{e['constant_rmse']:.3f}", f"{e['rmse'] / e['constant_rmse']:.2f}",
             f"{e['correlation']:.2f}", f"{readout_meta['train'][name]['rmse']:.3f}",
             "yes" if name in readout_meta["served"] else "no"]
            for name, e in readout_meta["held_out"].items()]
    return table(["slider", "readout RMSE", "constant RMSE", "readout / constant", "correlation",
                  "readout RMSE on training reads", "served"], rows)


def write_readme(errors: dict, caves: dict, meta: dict, readout_meta: dict, seconds: float, out: Path) -> dict:
    summary: dict = {"denoising": {}, "caves": caves["mean"], "off_corpus": caves["off_corpus"],
                     "estimates": caves["estimates"], "readout": readout_meta["held_out"], "reach": caves["reach"]}
    sections = []
    for setting, found in errors.items():
        means = {n: np.mean(np.array(v), axis=0) for n, v in found.items()}
        better = np.mean(np.array(found["memory"]) < np.array(found["null memory"]), axis=0)
        summary["denoising"][setting] = {n: m.tolist() for n, m in means.items()}
        rows = [[f"{s:g}", f"{means['memory'][i]:.4f}", f"{means['null memory'][i]:.4f}", f"{means['shipped'][i]:.4f}",
                 f"{means['memory'][i] / means['null memory'][i]:.3f}",
                 f"{means['memory'][i] / means['shipped'][i]:.3f}",
                 f"{better[i]:.0%}"] for i, s in enumerate(SIGMAS)]
        sections.append(f"### {setting}\n\n" + table(["sigma", "memory", "null memory", "shipped", "memory / null",
                                                      "memory / shipped", "items better with memory"], rows))
    n_items = len(errors["sliders given"]["memory"])
    run = meta.get("run", {})
    cave_rows = [[str(r["region"]), r["style"], *(f"{r[n]:.4f}" for n in caves["mean"])] for r in caves["rows"]]
    given, unset = summary["denoising"]["sliders given"], summary["denoising"]["sliders unset"]
    ratio = {k: [m / n for m, n in zip(v["memory"], v["null memory"])] for k, v in (("given", given), ("unset", unset))}
    shipped = {k: np.array(v["shipped"]) for k, v in (("given", given), ("unset", unset))}
    means, off = caves["mean"], caves["off_corpus"]
    summary["rich_poor"] = {kind: means[f"{kind}, cave-rich"] / max(means[f"{kind}, cave-poor"], 1e-12)
                            for kind in ("memory", "served")}
    text = README.format(
        headroom=", ".join(f"{g / u:.2f} at sigma {s:g}"
                           for g, u, s in zip(shipped["given"], shipped["unset"], SIGMAS)),
        rich_poor=summary["rich_poor"]["memory"], served_rich_poor=summary["rich_poor"]["served"],
        any_null=(means["memory, cave-rich"] + means["memory, cave-poor"]) / 2 / max(means["null memory"], 1e-12),
        donor_ratio=np.mean(caves["donor_share"]["rich"]) / max(np.mean(caves["donor_share"]["poor"]), 1e-12),
        held=len(meta["held_out_regions"]), items=n_items, context=CONTEXT, write_sigma=meta["memory"]["write_sigma"],
        steps=run.get("steps_done"), batch=run.get("batch_size"), minutes=run.get("wall_seconds_this_process", 0) / 60,
        ratios_given=", ".join(f"{r:.2f} at sigma {s:g}" for r, s in zip(ratio["given"], SIGMAS)),
        ratios_unset=", ".join(f"{r:.2f} at sigma {s:g}" for r, s in zip(ratio["unset"], SIGMAS)),
        denoising="\n\n".join(sections), target=TARGET, donors=DONORS - 1, seeds=SEEDS,
        rich=", ".join(f"{v:.3f}" for v in caves["donor_share"]["rich"]),
        poor=", ".join(f"{v:.3f}" for v in caves["donor_share"]["poor"]),
        cave_means="; ".join(f"{n} {v:.4f}" for n, v in caves["mean"].items()),
        off_corpus=own_region_distance(off),
        estimates="; ".join(f"{n}: " + ", ".join(f"{s} {v:.2f}" for s, v in e.items())
                            for n, e in caves["estimates"].items()),
        caves=table(["region", "style", *caves["mean"]], cave_rows + [["mean", "", *(f"{v:.4f}" for v in
                                                                                    caves["mean"].values())]]),
        readout_figures=", ".join(f"{n} {e['rmse']:.3f} vs {e['constant_rmse']:.3f}"
                                  for n, e in readout_meta["held_out"].items()),
        readout=readout_table(readout_meta), readout_params=readout_meta["run"]["parameters"],
        served=", ".join(readout_meta["served"]) or "none",
        train_regions=readout_meta["train_regions"], train_reads=readout_meta["train_reads"],
        held_reads=readout_meta["held_reads"], readout_seconds=readout_meta["run"]["seconds"],
        reach=table(["donor region", *(f"{r} east" for r in REACH)],
                    [[kind, *(f"{v:.2f}" + ("" if near else " (not served)") for v, near in
                              zip(found["estimate"], found["served"]))] for kind, found in caves["reach"].items()]),
        reach_summary="; ".join(f"{kind} {found['estimate'][0]:.2f} at the target, {found['estimate'][-1]:.2f} "
                                f"at {REACH[-1]} chunks east" for kind, found in caves["reach"].items()),
        n_donors=DONORS, seconds=seconds, params=run.get("trained_parameters"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "README.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def write_model_card(meta: dict, summary: dict, curve: dict, path: Path) -> None:
    run = meta.get("run", {})
    train = run.get("train_config", {})
    den = summary["denoising"]

    def ratios(setting: str) -> str:
        found = den[setting]
        pairs = zip(found["memory"], found["null memory"], SIGMAS)
        return ", ".join(f"{m / n:.2f} at sigma {s:g}" for m, n, s in pairs)

    path.write_text(MODEL_CARD.format(
        params=run.get("parameters"), trained=run.get("trained_parameters"), memory=json.dumps(meta["memory"]),
        sha=meta["init_from"]["sha256"][:16], regions=run.get("train_maps"), held=len(meta["held_out_regions"]),
        steps=run.get("steps_done"), batch=run.get("batch_size"), lr=train.get("lr"), ema=train.get("ema_decay"),
        minutes=run.get("wall_seconds_this_process", 0) / 60, hardware=run.get("hardware"),
        sps=curve["seconds_per_step"],
        first=curve["first_logged"], last=curve["last_logged"], given=ratios("sliders given"),
        unset=ratios("sliders unset"), rich_poor=summary["rich_poor"]["memory"],
        served_rich_poor=summary["rich_poor"]["served"]))


def write_readout_card(readout: VoxelReadout, summary: dict, path: Path) -> None:
    m, run = readout.meta, readout.meta["run"]
    path.write_text(READOUT_CARD.format(
        params=run["parameters"], config=json.dumps(readout.readout.config.to_dict()),
        memory_sha=m["memory_model"]["sha256"][:16], train_regions=m["train_regions"], train_reads=m["train_reads"],
        held=len(m["held_out_regions"]), held_reads=m["held_reads"], steps=run["steps"], batch=run["batch_size"],
        lr=run["lr"], wd=run["weight_decay"], reads_minutes=run["reads_seconds"] / 60, minutes=run["seconds"] / 60,
        min_gain=run["min_gain"], served=", ".join(m["served"]) or "none",
        figures="; ".join(f"{n}: RMSE {e['rmse']:.3f} vs {e['constant_rmse']:.3f} for the best constant, correlation "
                          f"{e['correlation']:.2f}" for n, e in m["held_out"].items()),
        served_rich_poor=summary["rich_poor"]["served"], memory_rich_poor=summary["rich_poor"]["memory"],
        off_corpus=own_region_distance(summary["off_corpus"])))


MODEL_CARD = """# voxel_memory.safetensors: voxel chunks that read a world's memory

**What it does.** The shipped voxel chunk model (`voxel_chunks.safetensors`, sha256 {sha}..., frozen) with
cross-attention to memory tokens in its attention block, and the memory network at dims=3 (`backend/memory/`:
a chunk encoder over the model's 24 folded channels, the same gated writer and world / region banks as the 2D
worlds, and the tokens' mean into the U-Net's embedding, as sliders enter it): {params} parameters, {trained} of
them trained. Memory: `{memory}`. A world's voxel memory is written only from the artist's committed voxel
edits (`backend/world/voxel_memory.py`). Served to voxel jobs that opt in (`memory: true`), always with the slider
readout (`voxel_readout.safetensors`): on its own this adapter carries little of the committed chunks' character
into what it draws.

**Data.** Walks over {regions} regions of the voxel corpus (`backend/data/voxel_walks.py`): a 40³ window and up
to 6 other chunks of its region (never the window's own chunk) written first, each noise-augmented at a random
level (GameNGen's context noise), 10 % memory dropout; {held} regions (the last 2 of each style) held out for
the report.

**Training.** `python -m backend.training.train_voxel_memory configs/voxel_memory.json`: {steps} steps of batch
{batch}, AdamW {lr:g}, EMA {ema:g}, {minutes:.0f} min on {hardware} (median {sps:.2f} s per step). Loss (mean of
the first / last 10 logged steps) {first:.3f} -> {last:.3f}; the log is `reports/voxel_memory/training_log.csv`,
the curve `reports/voxel_memory/training_loss.png`. The frozen model's error dominates the loss, so the curve
shows little of what the adapter learns; the report measures it.

**Figures** (`reports/voxel_memory/README.md`, held-out regions): memory / null-memory denoising error, sliders
given: {given}; sliders unset: {unset}. Cave share of chunks generated beside cave-rich / cave-poor committed
chunks: {rich_poor:.2f} with this model alone, {served_rich_poor:.2f} as served (with the readout's sliders).

**Limits.** An adapter on a small frozen model, trained on one CPU thread; memory regions of 2³ chunks and one
chunk of neighbourhood; no alignment term (the 2D recipe's memory-from-own-estimates), so drift over long chains
of generated-then-committed chunks is not trained against or measured here.
"""


READOUT_CARD = """# voxel_readout.safetensors: the feature sliders a voxel world's memory implies

**What it does.** From the tokens a chunk being generated reads from its world's voxel memory
(`voxel_memory.safetensors`, sha256 {memory_sha}...), estimates the region's feature sliders (cave_density,
overhang in [0, 1]); a voxel world with memory conditions every chunk near its committed edits on that estimate
for each slider the artist left unset, with the slider guidance (`backend/memory/readout.py`, `backend/world/voxel_memory.py`
`MemoryChunks`), for the sliders it reads at least {min_gain:.0%} better than a constant on held-out regions:
served {served}. Attention pooling over the read tokens and a small MLP: {params} parameters, config
`{config}`.

**Data.** Reads after 0 to 17 other chunks of a corpus region were written (the memory's training walks, at the
serving write noise), labelled with the sliders the voxel corpus drew for that region: {train_reads} reads of
{train_regions} regions; the memory model's {held} held-out regions ({held_reads} reads) measure it.

**Training.** `python -m backend.training.train_voxel_readout configs/voxel_readout.json` (the memory frozen):
{steps} steps of batch {batch}, mean squared error, AdamW {lr:g}, weight decay {wd:g}; {minutes:.1f} min on one
CPU thread, {reads_minutes:.1f} of them computing the reads.

**Figures** (held-out regions): {figures}. Chunks generated beside cave-rich / cave-poor committed chunks (sliders
unset): cave share ratio {served_rich_poor:.2f} served with the readout, {memory_rich_poor:.2f} with the memory
model alone; mean distance of a chunk's cave share from its own region's corpus chunk, memory written from the
region's other chunks: {off_corpus} (`reports/voxel_memory/README.md`).

**Limits.** Trained on {train_regions} regions' slider draws: it reads the region's character as the corpus
simulator's two sliders, so it can only ask the model for more or fewer caves and overhangs, not for a cave's
shape or place. A slider it reads no better than a constant (overhang, the figures above) is not served: its
estimate would only pull every chunk toward the corpus's mean. It reads the committed chunks' content, not the slider they were drawn with: a style that draws few
caves at any slider can read as a low cave density. It learned from reads of a region's own chunks, so serving
takes its estimate only where a committed chunk lies in a chunk's neighbourhood or memory region (farther, from the
world bank alone, it read the same for cave-rich and cave-poor worlds: the report's section 3).
"""


README = """# Voxel world memory: what it buys

Regenerate: `python reports/make_voxel_memory_report.py` (needs `corpus/voxels`, `models/voxel_chunks.safetensors`,
`models/voxel_memory.safetensors` from `python -m backend.training.train_voxel_memory configs/voxel_memory.json`
and `models/voxel_readout.safetensors` from `python -m backend.training.train_voxel_readout
configs/voxel_readout.json`).

Models: `voxel_memory` is the shipped `voxel_chunks` model, frozen, with cross-attention to memory tokens in its
attention block, the tokens' mean into its embedding, and a memory network at dims=3 ({params} trained
parameters), trained {steps} steps of batch {batch} ({minutes:.0f} min on one CPU thread). `voxel_readout`
({readout_params} parameters, {readout_seconds:.0f} s on one CPU thread) estimates the region's feature sliders
from the tokens a chunk reads.
Conditions: **memory** = `voxel_memory` reading memory written from committed chunks, sliders unset;
**served** = what a voxel world with memory draws: the same, with every unset slider the readout serves
({served}) set to its estimate (with the slider guidance); **null memory** = `voxel_memory` reading the memory-dropout null;
**shipped** = `voxel_chunks` without memory. All figures are on the {held} corpus regions held out of the
memory's and the readout's training (the last 2 of each style; the shipped model saw them).

## Summary

- Cave share of chunks generated next to cave-rich / next to cave-poor committed chunks, sliders unset (section
  1): served {served_rich_poor:.2f}, memory alone {rich_poor:.2f} (the donors' own cave shares differ
  {donor_ratio:.0f}-fold). Means: {cave_means}.
- Mean distance of a generated chunk's cave share from its own region's corpus chunk, memory written from the
  region's 17 other chunks: {off_corpus}.
- Readout (section 2), held-out RMSE vs the best constant: {readout_figures}. Its mean estimates in section 1:
  {estimates}.
- How far the estimate reaches (section 3), cave density read beside the committed chunks and farther east (where
  serving no longer takes it): {reach_summary}.
- Denoising a window of a held-out region, memory / null-memory error, sliders given: {ratios_given}.
- Sliders unset: {ratios_unset}. (Below 1: the memory carries information about the chunk.) For scale, what
  knowing the region's sliders buys the shipped model (its error with the sliders given / unset): {headroom};
  with any memory / null memory, cave share in section 1: {any_null:.2f}.

## 0. Denoising a window of a held-out region

{items} windows ({held} regions x 4) of the voxel model's 40³ cells with random known cells, as in training;
memory written from {context} other chunks of the window's region (never the chunk holding its centre), each
noise-augmented at the serving context noise (sigma {write_sigma}). Mean squared error of the x0 estimate over the
window in the model's folded channels; the same noise for every condition.

{denoising}

## 1. Chunks generated next to cave-rich and cave-poor committed chunks, and in their own region

Per held-out region: its chunk {target} (z, row, col: the lower layer's centre, underground) generated under
its terrain (interactive quality, annealed, sliders unset, no neighbours given as known cells, so the memory is
the only way the committed chunks reach it), reading memory written from the 17 other chunks of a cave-rich or a
cave-poor held-out region committed around it ({donors} donor regions each), or of its own region, {seeds} seeds
each. Cave share: open cells under the terrain's surface / cells under it. Donor regions' cave shares: rich
{rich}; poor {poor}. "corpus" is the region's own chunk.

{caves}

## 2. The slider readout on held-out regions

Reads of the {held} held-out regions ({held_reads}: 0 to 17 other chunks of the region written, as in training),
against the region's sliders; the constant is the training labels' mean. Trained on {train_reads} reads of
{train_regions} regions.

{readout}

## 3. How far the estimate reaches

The readout's cave density estimate for the chunk at the target's place (section 1) and for chunks farther east,
in memory written from the 17 other chunks of each cave-rich or cave-poor donor region (all {n_donors} of a kind,
averaged). Past the neighbourhood and the region bank only the world bank reaches a chunk, and there the readout
(trained on reads of a region's own chunks) reads the same for both kinds: serving takes its estimate only where a
committed chunk lies in the chunk's 3 x 3 x 3 neighbourhood or memory region ("not served" marks the others, which
keep the sliders unset).

{reach}

This report took {seconds:.0f} s.
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(ROOT / "corpus" / "voxels"))
    ap.add_argument("--model", default=str(ROOT / "models" / "voxel_memory.safetensors"))
    ap.add_argument("--readout", default=str(ROOT / "models" / "voxel_readout.safetensors"))
    ap.add_argument("--base", default=str(ROOT / "models" / "voxel_chunks.safetensors"))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--run-log", default=str(ROOT / "runs" / "voxel_memory" / "metrics.csv"),
                    help="the training run's metrics.csv (copied to <out>/training_log.csv)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    memory_model, base = VoxelModel.load(args.model), VoxelModel.load(args.base)
    readout = VoxelReadout.load(args.readout)
    if readout.meta["memory_model"]["sha256"] != memory_model.sha256:
        raise ValueError(f"{args.readout} was trained on other memory weights than {args.model}")
    regions = load_regions(args.corpus)
    if len(regions) != memory_model.meta["memory_corpus_regions"]:
        raise ValueError(f"{args.corpus} holds {len(regions)} regions, not the "
                         f"{memory_model.meta['memory_corpus_regions']} "
                         "the memory model was trained on: its held-out regions would be others")
    held = np.array(memory_model.meta["held_out_regions"])
    errors = denoising_errors(memory_model, base, regions, held)
    caves = cave_response(memory_model, base, readout, regions, held)
    out = Path(args.out)
    summary = write_readme(errors, caves, memory_model.meta, readout.meta, time.perf_counter() - t0, out)
    log = committed_log(args.run_log, out)
    if log is not None:
        write_model_card(memory_model.meta, summary, training_curve(log, out / "training_loss.png"),
                         Path(args.model).with_suffix(".md"))
    write_readout_card(readout, summary, Path(args.readout).with_suffix(".md"))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
