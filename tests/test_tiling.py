"""MultiDiffusion: windows cover the canvas on a world-anchored grid, weights sum to one, one window
is the plain denoiser, spatial conditioning is cut with x, and samplers run on it unchanged."""

from __future__ import annotations

import pytest
import torch

from backend.diffusion import ClassifierFreeGuidance, Conditioning, Denoiser, karras_sigmas, sample_dpmpp_2m
from backend.diffusion.tiling import MultiDiffusion, even_windows, ramp, window_starts
from backend.networks import build_unet

torch.set_num_threads(1)  # 2 shared cores


def identity(x: torch.Tensor, sigma: torch.Tensor, cond: Conditioning | None = None) -> torch.Tensor:
    return x


def echo_spatial(x: torch.Tensor, sigma: torch.Tensor, cond: Conditioning | None = None) -> torch.Tensor:
    assert cond is not None and cond.spatial is not None and cond.spatial.shape[-2:] == x.shape[-2:]
    return cond.spatial + cond.style_weights[:, :1, None, None]


@pytest.mark.parametrize("length,window,stride,offset", [(200, 64, 32, 0), (200, 64, 32, 5), (64, 64, 32, 0),
                                                         (40, 64, 32, 0), (97, 64, 48, 17)])
def test_window_starts_cover_the_canvas_on_the_anchored_grid(length, window, stride, offset) -> None:
    starts = window_starts(length, window, stride, offset)
    covered = torch.zeros(length, dtype=torch.bool)
    for s in starts:
        covered[s:s + window] = True
    assert covered.all() and starts == sorted(set(starts)) and starts[0] == 0
    inner = [s for s in starts if 0 < s and s + window < length]
    assert all((s + offset) % stride == 0 for s in inner)


@pytest.mark.parametrize("length", [256, 320, 512, 768, 1024, 2048])
def test_even_windows_cover_with_the_overlap_and_no_thin_last_window(length) -> None:
    window, stride = even_windows(length, 192, 32)
    starts = window_starts(length, window, stride)
    assert window % 16 == 0 and stride % 16 == 0 and window <= 192 + 16
    assert starts[-1] + window == length and all(b - a <= window - 32 for a, b in zip(starts, starts[1:]))
    assert len(starts) == -(-(length - 32) // (192 - 32))  # as few as windows of 192 with overlap 32 need
    assert even_windows(128, 192, 32) == (128, 128)  # a short canvas is one window


def test_windows_of_overlapping_canvases_agree_in_world_cells() -> None:
    md = MultiDiffusion(identity, 64, 32, origin=(64, 64))
    shifted = MultiDiffusion(identity, 64, 32, origin=(128, 96))
    world = {(r + 64, c + 64) for r, c in md.windows(256, 256)}
    other = {(r + 128, c + 96) for r, c in shifted.windows(256, 256)}
    inner = {(r, c) for r, c in world if 128 <= r <= 256 and 96 <= c <= 256}
    assert inner and inner <= other


@pytest.mark.parametrize("shape", [(1, 1, 130, 200), (2, 3, 64, 97)])
def test_weights_sum_to_one_so_the_merge_of_identical_predictions_is_exact(shape) -> None:
    x = torch.randn(*shape)
    md = MultiDiffusion(identity, 64, 32, max_batch=3)
    assert len(md.windows(*shape[-2:])) > 1
    torch.testing.assert_close(md(x, torch.tensor(1.0)), x, rtol=0, atol=1e-6)
    total = torch.zeros(shape[-2:])
    for r, c in md.windows(*shape[-2:]):
        total[r:r + 64, c:c + 64] += md.weights(*shape[-2:], (r, c))
    assert float(total.min()) > 0.5  # every cell is covered with a real weight, even canvas corners


def test_ramp_is_smooth_positive_and_flat_on_canvas_borders() -> None:
    w = ramp(64, 32)
    assert float(w.min()) > 0 and torch.equal(w, w.flip(0)) and float(w.max()) > 0.99
    assert torch.all(w[1:33] >= w[:32])
    assert torch.equal(ramp(64, 32, rise=False)[:32], torch.ones(32))


@torch.no_grad()
def test_one_window_covering_the_canvas_is_the_plain_denoiser_exactly() -> None:
    torch.manual_seed(0)
    den = Denoiser(build_unet("tiny", n_styles=3, n_sliders=2), sigma_data=0.5).eval()
    cond = Conditioning(style_weights=torch.softmax(torch.randn(2, 3), 1), sliders=torch.randn(2, 2))
    x, sigma = torch.randn(2, 1, 32, 32), torch.tensor([2.0, 0.3])
    md = MultiDiffusion(ClassifierFreeGuidance(den, 2.0), window=32, stride=16)
    assert torch.equal(md(x, sigma, cond), ClassifierFreeGuidance(den, 2.0)(x, sigma, cond))


@torch.no_grad()
def test_spatial_conditioning_is_windowed_with_x_and_batch_fields_follow_their_map() -> None:
    spatial = torch.randn(2, 1, 100, 150)
    cond = Conditioning(style_weights=torch.tensor([[0.0, 1.0], [5.0, 0.0]]), spatial=spatial)
    out = MultiDiffusion(echo_spatial, 48, 24, max_batch=4)(torch.zeros(2, 1, 100, 150), torch.ones(2), cond)
    torch.testing.assert_close(out, spatial + torch.tensor([0.0, 5.0])[:, None, None, None], rtol=0, atol=1e-5)


@torch.no_grad()
def test_chunking_does_not_change_the_result_and_samplers_run_unchanged() -> None:
    torch.manual_seed(0)
    den = Denoiser(build_unet("tiny"), sigma_data=0.5).eval()
    x = torch.randn(1, 1, 48, 80)
    a = MultiDiffusion(den, 32, 16, max_batch=1)(x, torch.tensor(1.5))
    b = MultiDiffusion(den, 32, 16, max_batch=64)(x, torch.tensor(1.5))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    sigmas = karras_sigmas(3)
    out = sample_dpmpp_2m(MultiDiffusion(den, 32, 16), x * sigmas[0], sigmas)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_bad_window_parameters_are_rejected_with_their_values() -> None:
    with pytest.raises(ValueError, match="stride"):
        MultiDiffusion(identity, 32, 48)
    with pytest.raises(ValueError, match="max_batch"):
        MultiDiffusion(identity, 32, 16, max_batch=0)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        MultiDiffusion(identity, 32, 16)(torch.zeros(1, 64, 64), torch.tensor(1.0))
