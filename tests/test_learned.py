"""The learned terrain generator: shipped weights, determinism, previews, errors, and serving."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.generators import Cancelled, DiffusionGenerator, GenerateRequest
from backend.generators.learned import to_metres
from backend.models.inference import read_metadata
from backend.models.shipped import BASE_FILE, MODELS_DIR, SUPERRES_FILE
from backend.simulation.landscape import EROSION_STAGES
from backend.simulation.styles import SLIDER_NAMES, STYLE_NAMES
from protocol.client import BackendError, Client

from conftest import ROOT


def request(**params) -> GenerateRequest:
    return GenerateRequest.from_params({"generator": "diffusion", "resolution": 96, "seed": 7, **params})


@pytest.fixture(scope="module")
def shipped() -> DiffusionGenerator:
    return DiffusionGenerator("cpu")


@pytest.mark.parametrize("name, config", [(BASE_FILE, "terrain_base.json"), (SUPERRES_FILE, "terrain_superres.json")])
def test_shipped_weights_have_the_documented_config(name, config):
    meta = read_metadata(MODELS_DIR / name)
    documented = json.loads((ROOT / "configs" / config).read_text())
    for key, value in documented["unet"].items():
        got = meta["denoiser"]["unet"][key]
        assert (list(got) if isinstance(got, (list, tuple)) else got) == value, key
    assert meta["config"]["kind"] == documented["kind"]
    assert meta["config"]["style_names"] == list(STYLE_NAMES)
    assert meta["config"]["slider_names"] == list(SLIDER_NAMES)
    assert meta["config"]["run"]["steps_done"] == documented["train"]["steps"]
    size = sum(p.stat().st_size for p in MODELS_DIR.glob("*.safetensors"))
    assert size < 60e6, f"shipped weights are {size / 1e6:.1f} MB"


def test_terrain_models_serve_in_bfloat16_only_on_a_cpu_that_has_it(tiny_models):
    """The base and super-resolution U-Nets run wide maps in bfloat16 where the CPU has it natively (half the
    time of float32 there); elsewhere, and on a GPU, in float32. Their own weights stay as trained."""
    import torch

    from backend.models.inference import serves_in_bfloat16
    from backend.models.shipped import ShippedModels

    native = serves_in_bfloat16(torch.device("cpu"))
    models = ShippedModels.load(tiny_models)
    for net in (models.base.denoiser.net, models.superres.denoiser.net):
        assert all(p.dtype == torch.float32 for p in net.parameters())
        assert (net.wide.conv_in.weight.dtype == torch.bfloat16) if native else net.wide is None
    assert not serves_in_bfloat16(torch.device("cuda"))


def test_shipped_models_are_deterministic_per_seed_and_span_the_relief(shipped):
    a, b, c = (shipped.generate(request(seed=s, height_m=800.0, sliders={"elevation_range": 1.0}),
                                lambda *args: None).heights for s in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (96, 96) and a.dtype == np.float32
    assert np.ptp(a) == pytest.approx(800.0, rel=1e-4)
    assert np.abs(a - c).mean() > 20.0  # another seed is another terrain


def test_previews_go_coarse_then_fine_and_cancel_stops(tiny_models):
    generator = DiffusionGenerator("cpu", tiny_models)
    shapes: list[tuple[int, int, tuple[int, ...]]] = []
    world = request(resolution=200, size_m=generator.native_size_m(100))  # 100 of the tiny models' 128 fine cells
    hf = generator.generate(world, lambda s, t, p: shapes.append((s, t, p.shape)))
    assert hf.heights.shape == (200, 200)
    settings = generator.settings(world)
    erosion = EROSION_STAGES[world.erosion_stage].steps
    total = settings.base_steps + settings.superres_steps + erosion  # 32² at 120 m -> 128² at 30 m -> eroded
    assert [s for s, _, _ in shapes] == list(range(1, total + 1)) and {t for _, t, _ in shapes} == {total}
    sizes = [p[0] for _, _, p in shapes]
    assert sizes == sorted(sizes) and sizes[0] == 25 and sizes[-1] == 100  # the world's share of each level
    assert sizes[-erosion - 1:] == [100] * (erosion + 1)  # the refined map, then each erosion step

    def cancel_at_3(step: int, total: int, preview: np.ndarray) -> None:
        if step == 3:
            raise Cancelled("test")

    with pytest.raises(Cancelled):
        generator.generate(request(), cancel_at_3)


def test_terrain_keeps_its_size_in_metres_at_any_resolution(tiny_models):
    """A world is the same terrain, not a squeezed copy, whatever grid it is sampled on; the models'
    cell size sets which level runs and how much of a model map the world covers."""
    generator = DiffusionGenerator("cpu", tiny_models)
    size_m = generator.native_size_m(100)
    native = generator.generate(request(resolution=100, size_m=size_m), lambda *a: None)
    fine = generator.generate(request(resolution=397, size_m=size_m), lambda *a: None)  # 4x finer cells
    assert fine.cell_size == pytest.approx(native.cell_size / 4)
    back = fine.heights[::4, ::4]  # the fine grid's samples at the native grid's points
    assert np.corrcoef(back.ravel(), native.heights.ravel())[0, 1] > 0.999
    half = generator.generate(request(resolution=101, size_m=generator.native_size_m(51)), lambda *a: None)
    assert np.corrcoef(half.heights[::2, ::2].ravel(), native.heights[24:75, 24:75].ravel())[0, 1] > 0.999
    big = request(resolution=65, size_m=size_m * 4, height_m=700.0, sliders={"elevation_range": 1.0})
    coarse = generator.extent(big)  # cells over 120 m: the base level alone, on one canvas around the world
    assert (coarse.levels, coarse.cells, coarse.canvas) == (1, 100, 112) and not coarse.is_region  # 100 -> 7 x 16
    heights = generator.generate(big, lambda *a: None).heights
    assert heights.shape == (65, 65) and np.isfinite(heights).all() and np.ptp(heights) == pytest.approx(700.0, rel=1e-4)
    with pytest.raises(ValueError, match="the most is 8192"):
        generator.extent(request(resolution=256, size_m=1e6))


def test_style_mix_and_unknown_styles(tiny_models):
    generator = DiffusionGenerator("cpu", tiny_models)
    mixed = generator.generate(request(style_weights={"alpine": 1, "desert_dunes": 1}), lambda *a: None)
    pure = generator.generate(request(style="alpine"), lambda *a: None)
    assert np.abs(mixed.heights - pure.heights).mean() > 1.0
    with pytest.raises(ValueError, match="unknown style"):
        generator.generate(request(style="lunar"), lambda *a: None)


def test_sea_level_puts_that_fraction_of_the_area_under_water():
    import torch

    h = to_metres(torch.linspace(-1, 1, 10_000).reshape(100, 100), 1000.0, 0.3)
    assert float((h < 0).float().mean()) == pytest.approx(0.3, abs=1e-3)
    assert float(h.max() - h.min()) == pytest.approx(1000.0, rel=1e-5)


@pytest.mark.parametrize("params, fragment", [
    ({"style": "lunar"}, "no style(s) ['lunar']"),
    ({"resolution": 8}, "resolution must be in [16, 4096]"),
    ({"resolution": 100_000}, "resolution must be in [16, 4096]"),
    ({"quality": "ultra"}, "quality must be one of ['interactive', 'full']"),
    ({"guidance": -1}, "guidance must be in [0, 50]"),
])
def test_server_refuses_bad_learned_requests(learned_backend, params, fragment):
    client = Client(learned_backend.address)
    try:
        with pytest.raises(BackendError) as info:
            client.submit("generate", {"generator": "diffusion", **params}, target="T")
        assert info.value.code == "bad_params" and fragment in str(info.value)
    finally:
        client.close()


def test_server_defaults_to_the_learned_generator_and_streams_previews(learned_backend):
    assert "diffusion" in learned_backend.hello.content["generators"]
    client = Client(learned_backend.address)
    try:
        job = client.submit("generate", {"style": "desert_dunes", "resolution": 128, "seed": 1}, target="T")
        seen: list[str] = []
        result = client.wait_result(job, timeout=60, on_message=lambda m: seen.append(m.kind))
        assert result.content["meta"]["generator"] == "diffusion"
        assert result.arrays["heights"].shape == (128, 128)
        assert seen.count("preview") >= 2
    finally:
        client.close()


def test_the_style_not_the_seed_decides_the_large_form(shipped):
    """At the base level one seed in two styles gives unrelated maps (each style draws its own noise), while
    a mix stays related to both and moves continuously toward a style as its weight grows. An even mix often
    leans to one parent at a given seed (the models fine-tuned on the landscape-evolution corpus: its smaller
    correlation ranged 0.0-0.5 over seeds 0-5), so its relation to each is taken over seeds."""
    def base_map(weights: dict[str, float], seed: int = 7) -> np.ndarray:
        world = request(style_weights=weights, resolution=64, size_m=63 * 120.0, erosion_stage="off", seed=seed)
        assert shipped.extent(world).levels == 1
        return shipped.generate(world, lambda *a: None).heights.ravel()

    to_parents = []
    for seed in range(4, 10):
        alpine, glacial = base_map({"alpine": 1}, seed), base_map({"glacial_valleys": 1}, seed)
        mix = base_map({"alpine": 1, "glacial_valleys": 1}, seed)
        assert abs(np.corrcoef(alpine, glacial)[0, 1]) < 0.5, seed
        to_parents.append([np.corrcoef(mix, alpine)[0, 1], np.corrcoef(mix, glacial)[0, 1]])
    assert np.mean(to_parents, axis=0).min() > 0.3, to_parents
    alpine, mix = base_map({"alpine": 1}), base_map({"alpine": 1, "glacial_valleys": 1})
    mostly_alpine = base_map({"alpine": 9, "glacial_valleys": 1})
    assert np.corrcoef(mostly_alpine, alpine)[0, 1] > max(0.8, np.corrcoef(mix, alpine)[0, 1])


def test_wide_canvases_are_super_resolved_in_windows_that_keep_the_whole_canvas_result(tiny_models, monkeypatch):
    """On a CPU a canvas wider than one model map is super-resolved in MultiDiffusion windows of at most ~272² (the U-Net's
    activations stay in the cache); the detail is the one the whole canvas gets, without window seams."""
    import torch

    import backend.generators.learned as learned

    generator = DiffusionGenerator("cpu", tiny_models)
    model = generator.superres
    cond = model.conditioning({"alpine": 1.0}, {})
    settings = generator.settings(request())
    coarse = torch.nn.functional.avg_pool2d(learned.style_noise(1, {"alpine": 1.0}, 0, 384), 4)
    noise = learned.style_noise(1, {"alpine": 1.0}, 1, 384)
    with torch.no_grad():
        windowed = learned.super_resolve(model, coarse, cond, settings, noise)
        monkeypatch.setattr(learned, "SUPERRES_WINDOWS", {})
        whole = learned.super_resolve(model, coarse, cond, settings, noise)
    up = learned.upsample(coarse, model.meta["factor"])
    detail = (whole - up).abs().mean()
    assert torch.isfinite(windowed).all() and (windowed - whole).abs().mean() < 0.3 * detail
    steps = (windowed - up)[0, 0].diff(dim=1).abs().mean(dim=0)  # by column: no window edge stands out
    whole_steps = (whole - up)[0, 0].diff(dim=1).abs().mean(dim=0)
    assert steps.max() < 1.2 * whole_steps.max()
