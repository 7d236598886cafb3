"""Continuous diffusion over the voxel channels against masked discrete diffusion over cell classes, at an equal,
small budget: which draws better chunks here, measured rather than argued.

    python -m backend.data.corpus --out runs/voxel_kinds/maps --seed 5 --maps-per-style 2 --map-size 128 \
        --heldout-fraction 0
    python -m backend.data.voxel_corpus --out runs/voxel_kinds/voxels --corpus runs/voxel_kinds/maps \
        --regions-per-style 4 --seed 3
    python reports/compare_voxel_diffusion.py --kind continuous   # train one for --budget-s CPU seconds
    python reports/compare_voxel_diffusion.py --kind discrete     # (the two may run side by side)
    python reports/compare_voxel_diffusion.py --evaluate          # both: numbers + table

Reduced size: windows of 24³ cells (a 16³ chunk and 4 cells of its neighbours), the same small 3D U-Net (the
shared backbone, cells folded 2³ into channels) and the same windows, conditions (terrain tsdf, known neighbour
slabs, style, sliders) and CPU seconds of training for both; the last region of every style is held out.

* continuous: EDM on the three channels of ``backend.voxels.channels`` (feature change of truncated density,
  fluid, ore), sampled by DPM-Solver++(2M) in 4 steps with the known cells replacing the estimate, decoded as
  the product decodes;
* discrete: absorbing-state (masked) diffusion over five classes per cell (air, rock, rock with ore, water,
  lava): the network sees the classes one-hot with a mask class and predicts the masked cells (cross-entropy);
  sampled in 4 steps, each unmasking the most confident share of the cells (cosine schedule).

On held-out windows, with the west slab known (outpainting): cave share and overhang columns against the
held-out truth at the same places, specks (changed cells with no changed 6-neighbour), floating rock, the
seam across the known face over interior planes, and seconds per window. Writes reports/voxels/diffusion_kinds.md
and .json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python reports/compare_voxel_diffusion.py` from anywhere
    sys.path.insert(0, str(ROOT))

from backend.data.voxel_corpus import VoxelRegions, load_regions  # noqa: E402
from backend.diffusion.loss import EDMLoss  # noqa: E402
from backend.diffusion.preconditioning import Conditioning, Denoiser  # noqa: E402
from backend.diffusion.samplers import get_sampler  # noqa: E402
from backend.diffusion.schedules import karras_sigmas  # noqa: E402
from backend.generators.voxel_chunks import feathered  # noqa: E402
from backend.networks.unet import UNet, UNetConfig  # noqa: E402
from backend.voxels import channels as ch  # noqa: E402
from backend.voxels import energy as en  # noqa: E402
from backend.voxels.chunk import MATERIAL  # noqa: E402
from backend.voxels.measures import chunk_measures  # noqa: E402

OUT = ROOT / "reports" / "voxels"
Tensor = torch.Tensor
MARGIN, SIDE = 4, 16
WINDOW = SIDE + 2 * MARGIN
N_CLASSES = 5  # air, rock, rock with ore, water, lava
MASK = N_CLASSES  # the absorbing state
ORES = [MATERIAL["ore_coal"], MATERIAL["ore_iron"], MATERIAL["ore_gold"]]
FOLD3 = ch.FOLD**3
STEPS = 4
NAMES = ("truth", "continuous", "continuous feathered", "discrete")  # the held-out truth and the samplers


def classes_of(density: np.ndarray, material: np.ndarray) -> np.ndarray:
    solid = density > 0
    out = np.where(solid, 1, 0).astype(np.int64)
    out[solid & np.isin(material, ORES)] = 2
    out[~solid & (material == MATERIAL["water"])] = 3
    out[~solid & (material == MATERIAL["lava"])] = 4
    return out


def window(regions: VoxelRegions, r: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A WINDOW³ block at a random place of region r: its channels, classes, terrain depth and a known mask."""
    lo = [int(rng.integers(0, n - WINDOW + 1)) for n in regions.density.shape[1:]]
    box = tuple(slice(a, a + WINDOW) for a in lo)
    density = regions.density[r][box].astype(np.float32)
    material = regions.material[r][box]
    depth = regions.terrain_depth(r)[box]
    known = np.zeros((WINDOW,) * 3, bool)
    for axis in range(3):
        for slab in (np.s_[:MARGIN], np.s_[WINDOW - MARGIN:]):
            if rng.random() < 0.5:
                index = [slice(None)] * 3
                index[axis] = slab
                known[tuple(index)] = True
    return {"x": ch.encode(density, material, depth, regions.voxel_size), "classes": classes_of(density, material),
            "depth": depth, "known": known, "density": density}


def conditioning(regions: VoxelRegions, rs: list[int], spatial: np.ndarray) -> Conditioning:
    style = torch.zeros(len(rs), len(regions.style_names))
    style[torch.arange(len(rs)), torch.tensor([int(regions.style[r]) for r in rs])] = 1.0
    sliders = torch.from_numpy(2 * regions.sliders[rs] - 1).float()
    return Conditioning(style_weights=style, sliders=sliders, spatial=ch.fold(torch.from_numpy(spatial)))


def spatial_of(kind: str, w: dict[str, np.ndarray], voxel_size: float) -> np.ndarray:
    """The spatial condition: terrain tsdf, known mask, the known cells (channels or one-hot classes)."""
    known = w["known"][None].astype(np.float32)
    values = w["x"] if kind == "continuous" else np.eye(N_CLASSES, dtype=np.float32)[w["classes"]].transpose(3, 0, 1, 2)
    return np.concatenate([ch.tsdf(w["depth"], voxel_size)[None], known, values * known]).astype(np.float32)


def build(kind: str, regions: VoxelRegions) -> torch.nn.Module:
    data = ch.N_CHANNELS if kind == "continuous" else N_CLASSES
    cfg = UNetConfig(dims=3, in_channels=(data if kind == "continuous" else N_CLASSES + 1) * FOLD3,
                     out_channels=data * FOLD3, cond_channels=(2 + data) * FOLD3, model_channels=16,
                     channel_mult=(1, 2), num_res_blocks=1, attn_levels=(), mid_attn=False, groups=4, emb_channels=32,
                     n_styles=len(regions.style_names), n_sliders=regions.sliders.shape[1])
    net = UNet(cfg)
    return Denoiser(net, sigma_data=0.25) if kind == "continuous" else net


def batch(kind: str, regions: VoxelRegions, train: list[int], rng: np.random.Generator,
          size: int) -> tuple[list[dict], Conditioning]:
    rs = [int(rng.choice(train)) for _ in range(size)]
    ws = [window(regions, r, rng) for r in rs]
    return ws, conditioning(regions, rs, np.stack([spatial_of(kind, w, regions.voxel_size) for w in ws]))


def discrete_loss(net: torch.nn.Module, ws: list[dict], cond: Conditioning, rng: np.random.Generator) -> Tensor:
    """Cross-entropy of the masked cells (each item masks a share drawn uniformly in (0, 1])."""
    classes = torch.from_numpy(np.stack([w["classes"] for w in ws]))
    known = torch.from_numpy(np.stack([w["known"] for w in ws]))
    share = torch.from_numpy(rng.uniform(0.02, 1.0, len(ws))).float()
    masked = (torch.from_numpy(rng.random(classes.shape)).float() < share.view(-1, 1, 1, 1)) & ~known
    logits = ch.unfold(net(_one_hot_in(classes, masked), share, **cond.as_dict()))
    loss = F.cross_entropy(logits, classes, reduction="none")
    return (loss * masked).sum() / masked.sum().clamp(min=1)


def _one_hot_in(classes: Tensor, masked: Tensor) -> Tensor:
    shown = torch.where(masked, torch.full_like(classes, MASK), classes)
    return ch.fold(F.one_hot(shown, N_CLASSES + 1).permute(0, 4, 1, 2, 3).float())


def train(kind: str, regions: VoxelRegions, train_ids: list[int], budget_s: float, out: Path) -> dict:
    """Train for ``budget_s`` CPU seconds of this process; the weights and the steps done go to ``out``."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build(kind, regions)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    edm = EDMLoss()
    start, steps, losses = time.process_time(), 0, []
    while time.process_time() - start < budget_s:
        ws, cond = batch(kind, regions, train_ids, rng, 8)
        if kind == "continuous":
            x0 = ch.fold(torch.from_numpy(np.stack([w["x"] for w in ws])))
            loss = edm(model, x0, cond).mean()
        else:
            loss = discrete_loss(model, ws, cond, rng)
        for group in opt.param_groups:
            group["lr"] = 1e-3 * min(1.0, (steps + 1) / 50)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        steps += 1
    torch.save(model.state_dict(), out)
    return {"steps": steps, "cpu_s": time.process_time() - start, "loss_first": float(np.mean(losses[:20])),
            "loss_last": float(np.mean(losses[-20:]))}


def sample_continuous(model: Denoiser, w: dict, cond: Conditioning, seed: int, voxel_size: float,
                      feather: bool = False) -> np.ndarray:
    """4 DPM-Solver++ steps, the known cells replacing the estimate (``feather``: pulled toward them 2 cells
    beyond, as the product's generator does)."""
    weight, target = feathered(w["known"], w["x"]) if feather else (w["known"].astype(np.float32), w["x"])
    values = ch.fold(torch.from_numpy(np.ascontiguousarray(target, np.float32))[None])
    known_f = ch.fold(torch.from_numpy(np.broadcast_to(weight, w["x"].shape).astype(np.float32))[None])
    sigmas = karras_sigmas(STEPS, 0.01, 10.0)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(values.shape, generator=g) * 10.0

    def denoise(x: Tensor, sigma: Tensor, c: Conditioning | None = None) -> Tensor:
        return torch.lerp(model(x, sigma, c), values, known_f)

    with torch.no_grad():
        out = ch.unfold(get_sampler("dpmpp_2m")(denoise, x, sigmas, cond=cond))[0].numpy()
    z = np.zeros(WINDOW)  # materials are not measured: only the geometry and the fluids
    density, material = ch.decode(np.where(w["known"][None], w["x"], out), w["depth"], z, voxel_size, "grass")
    return classes_of(density, material)


def sample_discrete(net: UNet, w: dict, cond: Conditioning, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    classes = torch.from_numpy(w["classes"])[None].clone()
    masked = ~torch.from_numpy(w["known"])[None]
    total = int(masked.sum())
    with torch.no_grad():
        for step in range(STEPS):
            share = torch.tensor([float(masked.sum()) / (WINDOW**3)])
            probs = ch.unfold(net(_one_hot_in(classes, masked), share, **cond.as_dict())).softmax(1)
            flat = probs.permute(0, 2, 3, 4, 1).reshape(-1, N_CLASSES)
            drawn = torch.multinomial(flat, 1, generator=g).view(classes.shape)
            confidence = probs.gather(1, drawn[:, None])[:, 0] + 1e-3 * torch.rand(classes.shape, generator=g)
            keep = int(total * math.cos(math.pi / 2 * (step + 1) / STEPS))  # still masked after this step
            confidence[~masked] = math.inf
            order = confidence.flatten().argsort()
            still = torch.zeros(classes.numel(), dtype=torch.bool)
            still[order[:keep]] = True
            still = still.view(classes.shape) & masked
            classes = torch.where(masked & ~still, drawn, classes)
            masked = still
    return classes[0].numpy()


def measures(classes: np.ndarray, depth: np.ndarray) -> dict[str, float]:
    """What one window's chunk (its centre SIDE³) holds; the seam across the known west face against the planes
    inside the chunk, as shares of cells whose solidity flips."""
    solid = np.isin(classes, (1, 2))
    terrain = depth > 0
    changed = solid != terrain
    six = ndimage.generate_binary_structure(3, 1).astype(np.int8)
    lonely = changed & (ndimage.convolve(changed.astype(np.int8), six, mode="constant") == 1)  # itself only
    centre = (slice(MARGIN, MARGIN + SIDE),) * 3
    energy_classes = np.array([en.AIR, en.SOLID, en.SOLID, en.WATER, en.LAVA], np.uint8)[classes[centre]]
    found = en.violations(energy_classes)
    flips = np.diff(solid[centre[0], centre[1], MARGIN - 1:MARGIN + SIDE].astype(np.int8), axis=2) != 0
    return {**{k: v for k, v in chunk_measures(solid[centre], depth[centre]).items()
               if k in ("cave_share", "overhang_columns")},
            "specks_per_1000": 1000.0 * float(lonely[centre].mean()),
            "floating": float(found["floating"].any()),
            "local_violation_cells": float(sum(int(found[k].sum()) for k in ("thin_overhang", "unheld_water",
                                                                              "lava_water"))),
            "seam_flips": float(flips[:, :, 0].mean()), "interior_flips": float(flips[:, :, 1:].mean())}


def evaluate(regions: VoxelRegions, held: list[int], weights: Path, per_region: int) -> dict:
    """Every held-out window through both models (west slab known), with the truth's measures beside them."""
    rng = np.random.default_rng(1)
    models = {}
    for kind in ("continuous", "discrete"):
        models[kind] = build(kind, regions)
        models[kind].load_state_dict(torch.load(weights / f"{kind}.pt"))
        models[kind].eval()
    rows: dict[str, list[dict]] = {name: [] for name in NAMES}
    seconds: dict[str, list[float]] = {name: [] for name in NAMES[1:]}
    for r in held:
        for n in range(per_region):
            w = window(regions, r, rng)
            w["known"][:] = False
            w["known"][:, :, :MARGIN] = True  # outpainting east of a known chunk
            rows["truth"].append(measures(w["classes"], w["depth"]))
            for name in NAMES[1:]:
                kind = name.split()[0]
                cond = conditioning(regions, [r], spatial_of(kind, w, regions.voxel_size)[None])
                t0 = time.perf_counter()
                seed = 1000 * r + n
                drawn = (sample_discrete(models[kind], w, cond, seed) if kind == "discrete" else
                         sample_continuous(models[kind], w, cond, seed, regions.voxel_size, "feathered" in name))
                seconds[name].append(time.perf_counter() - t0)
                rows[name].append(measures(drawn, w["depth"]))
    summary = {k: {m: float(np.mean([row[m] for row in v])) for m in v[0]} for k, v in rows.items()}
    for kind in seconds:
        summary[kind]["seconds"] = float(np.median(seconds[kind]))
    for k in summary:
        summary[k]["seam_ratio"] = summary[k]["seam_flips"] / max(summary[k]["interior_flips"], 1e-9)
    return {"windows": len(rows["truth"]), "summary": summary}


def write(result: dict, path: Path) -> None:
    s, names = result["summary"], NAMES
    lines = ["| measure | held-out truth | continuous | continuous, feathered | masked discrete |",
             "|---|---|---|---|---|"]
    for m in ("cave_share", "overhang_columns", "specks_per_1000", "floating", "local_violation_cells", "seam_ratio"):
        lines.append(f"| {m} | " + " | ".join(f"{s[n][m]:.4f}" for n in names) + " |")
    lines.append("| seconds / window | - | " + " | ".join(f"{s[n]['seconds']:.3f}" for n in names[1:]) + " |")
    train = result["training"]
    text = (f"# Continuous vs masked discrete voxel diffusion (reduced, equal budget)\n\n"
            f"Made by `python reports/compare_voxel_diffusion.py` (the recipe is in its docstring; "
            f"{json.dumps(result['settings'])}). "
            f"Training: " + "; ".join(f"{k}: {v['steps']} steps in {v['cpu_s']:.0f} CPU s, loss "
                                      f"{v['loss_first']:.3f} -> {v['loss_last']:.3f}" for k, v in train.items())
            + f". {result['windows']} held-out windows of {WINDOW}³ cells, the west {MARGIN} cells known; "
            "measures on the 16³ chunk (floating: share of windows with any floating rock, before refinement; "
            "seam ratio: solidity flips across the known face over flips across inner planes).\n\n"
            + "\n".join(lines) + "\n")
    path.with_suffix(".md").write_text(text)
    path.with_suffix(".json").write_text(json.dumps(result, indent=1))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(ROOT / "runs" / "voxel_kinds" / "voxels"), help="a voxel corpus folder")
    ap.add_argument("--kind", choices=("continuous", "discrete"), help="train this one")
    ap.add_argument("--evaluate", action="store_true", help="measure both trained models on held-out windows")
    ap.add_argument("--budget-s", type=float, default=480.0, help="CPU seconds of training per model")
    ap.add_argument("--weights", default=str(ROOT / "runs" / "voxel_kinds"))
    ap.add_argument("--per-region", type=int, default=8, help="held-out windows per held-out region")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    regions = load_regions(args.corpus)
    held = [int(np.flatnonzero(regions.style == s)[-1]) for s in np.unique(regions.style)]
    train_ids = [r for r in range(len(regions)) if r not in held]
    weights = Path(args.weights)
    weights.mkdir(parents=True, exist_ok=True)
    if args.kind:
        facts = train(args.kind, regions, train_ids, args.budget_s, weights / f"{args.kind}.pt")
        (weights / f"{args.kind}.json").write_text(json.dumps(facts))
        print(args.kind, facts)
    if args.evaluate:
        result = evaluate(regions, held, weights, args.per_region)
        result["training"] = {k: json.loads((weights / f"{k}.json").read_text()) for k in ("continuous", "discrete")}
        manifest = json.loads((Path(args.corpus) / "manifest.json").read_text())
        result["settings"] = {"train_regions": len(train_ids), "held_out_regions": len(held), "window": WINDOW,
                              "sampling_steps": STEPS, "corpus_seed": manifest["seed"],
                              "regions_per_style": manifest["shards"][0]["regions"]}
        write(result, OUT / "diffusion_kinds")
        print((OUT / "diffusion_kinds.md").read_text())


if __name__ == "__main__":
    main()
