"""Samplers against an exact answer: the closed-form denoiser of an isotropic Gaussian mixture.

As in NVlabs edm's toy_example: p(x0) = sum_k w_k N(mu_k, s_k^2 I), so the noisy marginal is
sum_k w_k N(mu_k, (s_k^2 + sigma^2) I) and E[x0 | x] has a closed form. A correct sampler on
this exact D must reproduce the mixture; any error is the sampler's (or the schedule's).
"""

from __future__ import annotations

import math
import threading

import pytest
import torch
from torch import Tensor

from backend.diffusion import (
    Cancelled,
    cancel_on,
    exponential_sigmas,
    karras_sigmas,
    sample_dpmpp_2m,
    sample_euler,
    sample_heun,
)

torch.set_num_threads(1)  # the CI box is 2 shared cores: more threads oversubscribe and crawl

N_SAMPLES = 4000
# Mode weights: binomial standard error sqrt(w(1-w)/N) <= 0.008 at N=4000; 0.03 is ~4 SE.
WEIGHT_TOL = 0.03
# Per-mode mean, in units of that mode's std: SE is 1/sqrt(n_k) ~ 0.05 at n_k ~ 500, plus
# discretisation error; 0.25 std still catches a sampler that shrinks or shifts a mode.
MEAN_TOL_STD = 0.25
# Per-mode variance, relative: SE of a sample variance ~ sqrt(2/(n_k d)) ~ 0.06; few-step samplers
# with a Karras schedule under-disperse slightly, so 20% relative. A broken sampler is off by x2 or more.
VAR_REL_TOL = 0.20


class GaussianMixtureDenoiser:
    """Exact D(x, sigma) = E[x0 | x0 + sigma n = x] for a mixture of isotropic Gaussians in d dims."""

    def __init__(self, means: Tensor, stds: Tensor, weights: Tensor):
        self.means = means.double()  # [K, d]
        self.stds = stds.double()  # [K]
        self.weights = weights.double() / weights.sum()  # [K]

    def __call__(self, x: Tensor, sigma: Tensor, cond=None) -> Tensor:  # x: [B, d], sigma: [B]
        xd, s2 = x.double(), sigma.double().reshape(-1, 1) ** 2  # [B, 1]
        var = self.stds**2 + s2  # [B, K]: variance of mode k at this noise level
        d = self.means.shape[1]
        sq = ((xd[:, None, :] - self.means[None]) ** 2).sum(-1)  # [B, K]
        logp = self.weights.log() - 0.5 * sq / var - 0.5 * d * var.log()
        r = torch.softmax(logp, dim=1)  # [B, K] posterior responsibilities
        shrink = (self.stds**2 / var)[..., None]  # [B, K, 1]
        post = self.means[None] + shrink * (xd[:, None, :] - self.means[None])  # [B, K, d]
        return (r[..., None] * post).sum(1).to(x.dtype)


MIXTURES = {
    "1d": (torch.tensor([[-2.0], [0.5], [3.0]]), torch.tensor([0.3, 0.2, 0.4]), torch.tensor([0.3, 0.2, 0.5])),
    "2d": (torch.tensor([[-2.0, -2.0], [2.0, -1.0], [0.0, 2.5]]), torch.tensor([0.4, 0.3, 0.5]),
           torch.tensor([0.25, 0.35, 0.4])),
}
# Steps per sampler: Euler is first order and still inflates the narrow middle 1D mode by ~36% at
# 64 steps (measured), so it gets 128; the second-order samplers are within ~10% at 32.
SAMPLERS = {"euler": (sample_euler, 128), "heun": (sample_heun, 32), "dpmpp_2m": (sample_dpmpp_2m, 32)}


@pytest.mark.parametrize("mixture", sorted(MIXTURES))
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_matches_gaussian_mixture(name: str, mixture: str) -> None:
    means, stds, weights = MIXTURES[mixture]
    D = GaussianMixtureDenoiser(means, stds, weights)
    sampler, steps = SAMPLERS[name]
    sigmas = karras_sigmas(steps, sigma_min=0.002, sigma_max=80.0)
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(N_SAMPLES, means.shape[1], generator=g) * sigmas[0]
    out = sampler(D, x, sigmas, generator=g).double()
    assert torch.isfinite(out).all()

    label = torch.cdist(out, means.double()).argmin(1)  # modes are >= 8 std apart: nearest mean is exact enough
    w = weights / weights.sum()
    for k in range(len(w)):
        xk = out[label == k]
        frac = len(xk) / N_SAMPLES
        assert abs(frac - w[k]) < WEIGHT_TOL, f"mode {k} weight {frac:.3f} vs {w[k]:.3f}"
        mean_err = (xk.mean(0) - means[k]).norm() / stds[k]
        assert mean_err < MEAN_TOL_STD, f"mode {k} mean off by {mean_err:.3f} std"
        var = xk.var(0).mean()  # isotropic: average over coordinates
        rel = abs(var / stds[k] ** 2 - 1)
        assert rel < VAR_REL_TOL, f"mode {k} variance {var:.4f} vs {stds[k]**2:.4f} ({rel:.2%})"


def test_heun_with_churn_is_seeded_and_correct() -> None:
    means, stds, weights = MIXTURES["1d"]
    D = GaussianMixtureDenoiser(means, stds, weights)
    sigmas = karras_sigmas(32)
    x = torch.randn(N_SAMPLES, 1, generator=torch.Generator().manual_seed(0)) * sigmas[0]
    a = sample_heun(D, x, sigmas, generator=torch.Generator().manual_seed(7), churn=10.0)
    b = sample_heun(D, x, sigmas, generator=torch.Generator().manual_seed(7), churn=10.0)
    c = sample_heun(D, x, sigmas, generator=torch.Generator().manual_seed(8), churn=10.0)
    assert torch.equal(a, b) and not torch.equal(a, c)
    label = torch.cdist(a.double(), means.double()).argmin(1)
    for k in range(3):
        assert abs((label == k).double().mean() - weights[k] / weights.sum()) < WEIGHT_TOL
    with pytest.raises(ValueError, match="Generator"):
        sample_heun(D, x, sigmas, churn=1.0)


def test_schedules() -> None:
    s = karras_sigmas(10, 0.002, 80.0)
    assert s.shape == (11,) and s[-1] == 0 and (s[1:] < s[:-1]).all()
    assert math.isclose(float(s[0]), 80.0, rel_tol=1e-6) and math.isclose(float(s[-2]), 0.002, rel_tol=1e-5)
    e = exponential_sigmas(5, 0.1, 10.0)
    ratios = e[1:-1] / e[:-2]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios))
    with pytest.raises(ValueError, match="sigma_min"):
        karras_sigmas(10, 1.0, 0.5)
    with pytest.raises(ValueError, match="end in 0"):
        sample_euler(lambda x, s, c=None: x, torch.zeros(1, 1), torch.tensor([2.0, 1.0]))


def test_callback_sees_every_step_and_can_cancel() -> None:
    D = GaussianMixtureDenoiser(*MIXTURES["1d"])
    sigmas = karras_sigmas(8)
    x = torch.randn(16, 1, generator=torch.Generator().manual_seed(0)) * sigmas[0]
    seen: list[int] = []
    sample_dpmpp_2m(D, x, sigmas, callback=lambda info: seen.append(info["i"]))
    assert seen == list(range(8))

    event = threading.Event()

    def press_cancel_at_3(info: dict) -> None:
        if info["i"] == 3:
            event.set()

    for sampler in (sample_euler, sample_heun, sample_dpmpp_2m):
        event.clear()
        seen.clear()
        with pytest.raises(Cancelled):
            sampler(D, x, sigmas, callback=cancel_on(event, then=lambda info: (seen.append(info["i"]),
                                                                               press_cancel_at_3(info))))
        assert seen == [0, 1, 2, 3]  # stopped at the first step after the event was set
