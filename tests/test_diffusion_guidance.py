"""Guidance wrappers: CFG at scale 1 is the conditional model, inpainting keeps known values exactly and leans
the generated cells into them."""

from __future__ import annotations

import pytest
import torch

from backend.diffusion import (
    ClassifierFreeGuidance,
    Conditioning,
    Denoiser,
    Inpainting,
    SoftGuidance,
    karras_sigmas,
    paste_known,
    sample_dpmpp_2m,
    sample_euler,
    sample_heun,
    sdedit_start,
)
from backend.diffusion.guidance import spread_mismatch
from backend.networks import build_unet

torch.set_num_threads(1)  # 2 shared cores: more threads oversubscribe and crawl


def model_and_cond(B: int = 2) -> tuple[Denoiser, Conditioning]:
    torch.manual_seed(0)
    den = Denoiser(build_unet("tiny", n_styles=3, n_sliders=2), sigma_data=0.5).eval()
    cond = Conditioning(style_weights=torch.softmax(torch.randn(B, 3), 1), sliders=torch.randn(B, 2))
    return den, cond


@torch.no_grad()
def test_cfg_scale_one_is_conditional_model_exactly() -> None:
    den, cond = model_and_cond()
    x, sigma = torch.randn(2, 1, 16, 16), torch.tensor([2.0, 0.3])
    d_cond = den(x, sigma, cond)
    assert torch.equal(ClassifierFreeGuidance(den, 1.0)(x, sigma, cond), d_cond)
    d_uncond = den(x, sigma, cond.nulled(("style_weights", "sliders")))
    guided = ClassifierFreeGuidance(den, 3.0)(x, sigma, cond)
    torch.testing.assert_close(guided, d_uncond + 3.0 * (d_cond - d_uncond), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(guided, d_cond)
    sigmas = karras_sigmas(4)
    z = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * sigmas[0]
    assert torch.equal(sample_euler(ClassifierFreeGuidance(den, 1.0), z, sigmas, cond=cond),
                       sample_euler(den, z, sigmas, cond=cond))


@pytest.mark.parametrize("sampler, reach", [(sample_euler, 0), (sample_heun, 0), (sample_dpmpp_2m, 0),
                                            (sample_dpmpp_2m, 4)])
@torch.no_grad()
def test_inpainting_keeps_known_region_exactly(sampler, reach) -> None:
    den, cond = model_and_cond()
    g = torch.Generator().manual_seed(0)
    known = torch.randn(2, 1, 16, 16, generator=g)
    mask = (torch.rand(2, 1, 16, 16, generator=g) < 0.5).float()
    inpaint = Inpainting(ClassifierFreeGuidance(den, 2.0), known, mask, reach)
    sigmas = karras_sigmas(6)
    x = sampler(inpaint, torch.randn(2, 1, 16, 16, generator=g) * sigmas[0], sigmas, cond=cond)
    inside = mask == 1
    # The wrapper alone brings the known region to within float error ...
    assert (x - known)[inside].abs().max() < 1e-3
    # ... and the final paste makes it exact, leaving the rest to the model.
    out = inpaint.finalize(x)
    assert torch.equal(out[inside], known[inside])
    assert torch.equal(out[~inside], x[~inside])
    assert (out - known)[~inside].abs().mean() > 0.1
    with pytest.raises(ValueError, match="mask"):
        Inpainting(den, known, mask * 2)
    with pytest.raises(ValueError, match="reach"):
        Inpainting(den, known, mask, reach=0.5)


def test_mismatch_spreads_its_level_far_and_its_detail_briefly() -> None:
    mask = torch.zeros(1, 1, 256, 128)
    mask[..., :64] = 1  # the west half is known
    level = torch.full((1, 1, 256, 128), 2.0)  # known lies 2 above the estimate
    rows = torch.arange(256.0)[None, None, :, None]
    detail = torch.cos(rows * (2 * torch.pi / 8)).expand(1, 1, 256, 128)  # +-1 along the edge, 8 cells a period
    centre = slice(64, 192)  # rows the blurs' edge padding does not reach
    spread = spread_mismatch(level, mask, reach=16)[0, 0, centre]
    assert torch.equal(spread[:, :64], torch.zeros(128, 64))  # the known cells are not touched
    along = spread.mean(0)  # by distance from the edge
    assert along[64] > 1.8 and along[64 + 8] > 1.0 and along[64 + 48] < 0.05  # continues, then fades
    assert torch.all(along[64:].diff() <= 1e-6)  # monotonically
    fine = spread_mismatch(detail, mask, reach=16)[0, 0, centre]
    assert fine[:, 64].abs().max() > 0.3 and fine[:, 64 + 8].abs().max() < 0.05  # dies within a few cells
    assert torch.equal(spread_mismatch(level, torch.zeros_like(mask), reach=16), torch.zeros_like(level))


@torch.no_grad()
def test_soft_guidance_and_paste() -> None:
    den, cond = model_and_cond()
    x, sigma = torch.randn(2, 1, 16, 16), torch.full((2,), 1.0)
    target = torch.full((2, 1, 16, 16), 3.0)
    weight = torch.zeros(2, 1, 16, 16)
    weight[..., :8] = 1.0
    base = den(x, sigma, cond)
    assert torch.equal(SoftGuidance(den, target, weight, 0.0)(x, sigma, cond), base)
    full = SoftGuidance(den, target, weight, 1.0)(x, sigma, cond)
    torch.testing.assert_close(full[..., :8], target[..., :8])
    assert torch.equal(full[..., 8:], base[..., 8:])
    half = SoftGuidance(den, target, weight, 0.5)(x, sigma, cond)
    torch.testing.assert_close(half[..., :8], (base[..., :8] + 3.0) / 2)
    with pytest.raises(ValueError, match="strength"):
        SoftGuidance(den, target, weight, 1.5)
    soft_mask = torch.tensor([0.0, 0.5, 1.0])
    assert torch.equal(paste_known(torch.zeros(3), torch.ones(3), soft_mask), torch.tensor([0.0, 0.0, 1.0]))


def test_sdedit_start() -> None:
    sigmas = karras_sigmas(10)
    x_init = torch.randn(1, 1, 8, 8)
    x0, tail0 = sdedit_start(x_init, sigmas, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(x0, x_init) and tail0.tolist() == [0.0]
    x5, tail5 = sdedit_start(x_init, sigmas, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(tail5, sigmas[5:])
    noise = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x5, x_init + sigmas[5] * noise)
    _, tail1 = sdedit_start(x_init, sigmas, 1.0, torch.Generator())
    assert torch.equal(tail1, sigmas)
    with pytest.raises(ValueError, match="strength"):
        sdedit_start(x_init, sigmas, 1.2, torch.Generator())
