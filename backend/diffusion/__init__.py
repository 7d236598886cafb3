"""Diffusion core: preconditioning, loss, schedules, samplers, guidance wrappers, distillation."""

from backend.diffusion.guidance import ClassifierFreeGuidance, Inpainting, SoftGuidance, paste_known, sdedit_start
from backend.diffusion.loss import EDMLoss
from backend.diffusion.preconditioning import Conditioning, Denoiser
from backend.diffusion.samplers import (
    SAMPLERS,
    Cancelled,
    cancel_on,
    get_sampler,
    sample_dpmpp_2m,
    sample_euler,
    sample_heun,
)
from backend.diffusion.schedules import exponential_sigmas, karras_sigmas

__all__ = [
    "SAMPLERS", "Cancelled", "ClassifierFreeGuidance", "Conditioning", "Denoiser", "EDMLoss", "Inpainting",
    "SoftGuidance", "cancel_on", "exponential_sigmas", "get_sampler", "karras_sigmas", "paste_known",
    "sample_dpmpp_2m", "sample_euler", "sample_heun", "sdedit_start",
]
