"""Samplers: pure functions with one signature that see only the denoiser D(x, sigma, cond) -> x0.

    sample_X(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, churn=0.0, ...) -> x

x starts as noise at sigmas[0] (i.e. randn * sigmas[0]); sigmas decrease and end in 0.
The callback gets {'x', 'i', 'sigma', 'denoised'} at each step, after its first denoiser evaluation,
and may raise `Cancelled` to stop between steps. Randomness (churn) comes only from `generator`.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Callable, Protocol

import torch
from torch import Tensor

from backend.diffusion.preconditioning import Conditioning


class DenoiserFn(Protocol):
    def __call__(self, x: Tensor, sigma: Tensor, cond: Conditioning | None = None) -> Tensor: ...


Callback = Callable[[dict[str, Any]], None]


class Cancelled(Exception):
    """Raised by a callback to stop sampling between steps (the user pressed cancel)."""


def cancel_on(event: threading.Event, then: Callback | None = None) -> Callback:
    """A callback that raises Cancelled once `event` is set (e.g. from the server's control channel)."""

    def callback(info: dict[str, Any]) -> None:
        if event.is_set():
            raise Cancelled(f"cancelled at step {info['i']}")
        if then is not None:
            then(info)

    return callback


def _check_sigmas(x: Tensor, sigmas: Tensor) -> None:
    if sigmas.ndim != 1 or sigmas.numel() < 1:
        raise ValueError(f"sigmas must be a non-empty 1-D tensor, got shape {tuple(sigmas.shape)}")
    if sigmas[-1] != 0 or (sigmas.numel() > 1 and bool((sigmas[1:] >= sigmas[:-1]).any())):
        raise ValueError(f"sigmas must strictly decrease and end in 0, got {sigmas.tolist()}")


def _eval(denoiser: DenoiserFn, x: Tensor, sigma: Tensor, cond: Conditioning | None) -> Tensor:
    return denoiser(x, sigma.expand(x.shape[0]), cond)  # sigma: [] -> [B]


def _eval_and_report(denoiser: DenoiserFn, x: Tensor, sigma: Tensor, i: int, cond: Conditioning | None,
                     callback: Callback | None) -> Tensor:
    """The step's first evaluation, shown to the callback (previews, progress, cancellation)."""
    denoised = _eval(denoiser, x, sigma, cond)
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "denoised": denoised})
    return denoised


def _churn(x: Tensor, sigma: Tensor, n_steps: int, churn: float, s_tmin: float, s_tmax: float,
           s_noise: float, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """EDM Algorithm 2 lines 4-6: raise the noise level from sigma to sigma_hat by adding fresh noise."""
    if churn == 0 or not s_tmin <= float(sigma) <= s_tmax:
        return x, sigma
    if generator is None:
        raise ValueError("churn > 0 needs a seeded torch.Generator (the global RNG is never used)")
    gamma = min(churn / n_steps, math.sqrt(2) - 1)
    sigma_hat = sigma * (1 + gamma)
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + (sigma_hat**2 - sigma**2).sqrt() * s_noise * eps, sigma_hat


def _ode_steps(denoiser: DenoiserFn, x: Tensor, sigmas: Tensor, cond: Conditioning | None, callback: Callback | None,
               generator: torch.Generator | None, churn: float, s_tmin: float, s_tmax: float, s_noise: float,
               heun: bool) -> Tensor:
    """Euler steps along the probability-flow ODE dx/dsigma = (x - D) / sigma, each corrected by Heun's
    second evaluation when ``heun`` (not on the last step, whose sigma is 0)."""
    _check_sigmas(x, sigmas)
    n = len(sigmas) - 1
    for i in range(n):
        x, sigma = _churn(x, sigmas[i], n, churn, s_tmin, s_tmax, s_noise, generator)
        denoised = _eval_and_report(denoiser, x, sigma, i, cond, callback)
        d = (x - denoised) / sigma
        sigma_next = sigmas[i + 1]
        x_next = x + (sigma_next - sigma) * d
        if heun and sigma_next > 0:
            d_next = (x_next - _eval(denoiser, x_next, sigma_next, cond)) / sigma_next
            x_next = x + (sigma_next - sigma) * (d + d_next) / 2
        x = x_next
    return x


def sample_euler(denoiser: DenoiserFn, x: Tensor, sigmas: Tensor, *, cond: Conditioning | None = None,
                 callback: Callback | None = None, generator: torch.Generator | None = None,
                 churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
                 s_noise: float = 1.0) -> Tensor:
    """First-order steps along the probability-flow ODE dx/dsigma = (x - D) / sigma (= DDIM)."""
    return _ode_steps(denoiser, x, sigmas, cond, callback, generator, churn, s_tmin, s_tmax, s_noise, heun=False)


def sample_heun(denoiser: DenoiserFn, x: Tensor, sigmas: Tensor, *, cond: Conditioning | None = None,
                callback: Callback | None = None, generator: torch.Generator | None = None,
                churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
                s_noise: float = 1.0) -> Tensor:
    """EDM Algorithm 2: Heun's 2nd-order method, Euler on the last step (2n - 1 evaluations)."""
    return _ode_steps(denoiser, x, sigmas, cond, callback, generator, churn, s_tmin, s_tmax, s_noise, heun=True)


def sample_dpmpp_2m(denoiser: DenoiserFn, x: Tensor, sigmas: Tensor, *, cond: Conditioning | None = None,
                    callback: Callback | None = None, generator: torch.Generator | None = None,
                    churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
                    s_noise: float = 1.0) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): multistep 2nd order, one evaluation per step.

    Deterministic: churn must be 0 (the multistep history assumes an unperturbed trajectory).
    """
    if churn != 0:
        raise ValueError(f"sample_dpmpp_2m is deterministic; churn must be 0, got {churn}")
    _check_sigmas(x, sigmas)
    old_denoised: Tensor | None = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = _eval_and_report(denoiser, x, sigma, i, cond, callback)
        if sigma_next == 0:
            x = denoised
        else:
            h = sigma.log() - sigma_next.log()  # step in t = -log(sigma)
            if old_denoised is None:
                d = denoised
            else:
                r = (sigmas[i - 1].log() - sigma.log()) / h
                d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_next / sigma) * x - torch.expm1(-h) * d
        old_denoised = denoised
    return x


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "dpmpp_2m": sample_dpmpp_2m,
}


def get_sampler(name: str) -> Callable[..., Tensor]:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {sorted(SAMPLERS)}")
    return SAMPLERS[name]
