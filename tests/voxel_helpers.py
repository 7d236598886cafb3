"""A small voxel model with the shipped model's layout, made in a test's folder (untrained unless asked)."""

from pathlib import Path

import numpy as np

from backend.data.voxel_corpus import MARGIN, SPATIAL_CHANNELS, WINDOW
from backend.diffusion.preconditioning import Denoiser
from backend.models.inference import save_inference
from backend.networks.unet import UNet, UNetConfig
from backend.voxels import channels as ch
from backend.voxels.features import SLIDER_NAMES, STYLE_FEATURES

STYLES = ("alpine", "canyon_mesa")


def tiny_voxel_model(folder: Path, mid_attn: bool = False, styles: tuple[str, ...] = STYLES) -> Path:
    """An untrained model file of the shipped layout (two styles by default; ``mid_attn``: with the attention block
    memory cross-attention goes into, as the shipped model has); returns its path."""
    folded = ch.FOLD**3
    unet = UNetConfig(dims=3, in_channels=ch.N_CHANNELS * folded, out_channels=ch.N_CHANNELS * folded,
                      cond_channels=SPATIAL_CHANNELS * folded, model_channels=8, channel_mult=(1, 2),
                      num_res_blocks=1, attn_levels=(), mid_attn=mid_attn, groups=4, emb_channels=16,
                      n_styles=len(styles), n_sliders=len(SLIDER_NAMES))
    meta = {"kind": "voxel_chunks", "style_names": list(styles), "slider_names": list(SLIDER_NAMES), "voxel_size_m": 2.0,
            "margin": MARGIN, "window": WINDOW, "fold": ch.FOLD, "tsdf_cells": ch.TSDF_CELLS,
            "covers": {s: STYLE_FEATURES[s].cover for s in styles}}
    path = folder / "voxel_chunks.safetensors"
    save_inference(path, Denoiser(UNet(unet), sigma_data=0.15), meta)
    return path


def sloped_heights() -> np.ndarray:
    """A 33 x 33 heightfield at 8 m: a slope with a ridge, spanning the chunks around the origin."""
    r, c = np.mgrid[0:33, 0:33].astype(np.float64)
    return (40 + 0.9 * c + 12 * np.sin(r / 5.0)).astype(np.float32)
