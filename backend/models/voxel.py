"""The voxel chunk denoiser as serving holds it, and the quality levels it is sampled at.

Training (``backend.training.train_voxels``) writes ``models/voxel_chunks.safetensors`` with everything
serving needs in its metadata: the style and slider names, the voxel size and window it was trained on, the
fold of cells into channels and each style's cover material. Serving holds it in ``shipped.ShippedModels``.
A voxel world with memory is drawn by the memory-conditioned voxel model (``VOXEL_MEMORY_FILE``, a
``VoxelModel`` whose denoiser reads memory tokens) and conditioned on its slider readout (``READOUT_FILE``,
``VoxelReadout``: ``backend.memory.readout``), both written by training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from backend.diffusion.preconditioning import Conditioning
from backend.memory.readout import ReadoutConfig, SliderReadout

from .inference import (LoadedModel, file_sha256, load_inference, module_tensors, read_format_metadata,
                        read_metadata, save_tensors)

VOXEL_FILE = "voxel_chunks.safetensors"
VOXEL_MEMORY_FILE = "voxel_memory.safetensors"  # optional: voxel worlds with memory (with READOUT_FILE)
READOUT_FILE = "voxel_readout.safetensors"
READOUT_FORMAT = "worldsculpt.slider_readout.v1"


@dataclass(frozen=True)
class VoxelSampling:
    """Steps, noise range and slider guidance of one quality level (DPM-Solver++(2M) on a Karras schedule).

    slider_guidance: classifier-free guidance scale on the sliders alone. Unguided, the shipped model followed
    the sliders weakly (report places: cave share 0.002 with both sliders at 0, 0.006 at 1, no overhang
    columns at either); at 3: 0.0003 and 0.012, and overhang 1 alone 0.0014 of the columns (the corpus
    0.0004 -> 0.0030 from its lowest to highest third). Guiding the style too drew fewer caves, so it is not.
    """

    steps: int
    sigma_max: float = 10.0
    sigma_min: float = 0.01
    slider_guidance: float = 1.0


VOXEL_QUALITY: dict[str, VoxelSampling] = {
    "interactive": VoxelSampling(steps=4, slider_guidance=3.0),
    "full": VoxelSampling(steps=16, slider_guidance=3.0),
}


class VoxelModel(LoadedModel):
    """A loaded voxel chunk denoiser and its training metadata (see train_voxels.build)."""

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> VoxelModel:
        """As ``LoadedModel.load`` but in the contiguous layout (channels-last is for 2D convolutions only)."""
        return cls(load_inference(path, device), read_metadata(path)["config"], file_sha256(path))

    def conditioning(self, style_weights: dict[str, float], sliders: dict[str, float]) -> Conditioning:
        """Style mix as a weight vector, sliders in [0, 1] (unsent = 0.5) mapped to [-1, 1]."""
        names, slider_names = self.meta["style_names"], self.meta["slider_names"]
        unknown = sorted(set(style_weights) - set(names)) + sorted(set(sliders) - set(slider_names))
        if unknown:
            raise ValueError(f"unknown style(s) or slider(s) {unknown}; styles: {names}, sliders: {slider_names}")
        weights = torch.tensor([[float(style_weights.get(n, 0.0)) for n in names]])
        values = torch.tensor([[float(sliders.get(s, 0.5)) for s in slider_names]])
        return Conditioning(style_weights=weights, sliders=values * 2 - 1).map(lambda t: t.float().to(self.device))

    def cover(self, style_weights: dict[str, float]) -> str:
        """The cover material of the style mix's heaviest style."""
        heaviest = max(style_weights, key=lambda s: style_weights[s])
        return self.meta["covers"][heaviest]


def save_readout(path: str | Path, readout: SliderReadout, meta: dict[str, Any]) -> None:
    """Write a slider readout's weights, its config and free-form ``meta`` (the memory model it reads, figures)."""
    save_tensors(module_tensors(readout), Path(path), {"format": READOUT_FORMAT,
                                                       "config": json.dumps(readout.config.to_dict()),
                                                       "meta": json.dumps(meta)})


@dataclass(frozen=True)
class VoxelReadout:
    """A loaded slider readout (eval mode), its metadata and its file's SHA-256."""

    readout: SliderReadout
    meta: dict[str, Any]
    sha256: str

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> VoxelReadout:
        found = read_format_metadata(path, READOUT_FORMAT)
        readout = SliderReadout(ReadoutConfig.from_dict(json.loads(found["config"])))
        readout.load_state_dict(load_file(str(path), device="cpu"), strict=True)
        return cls(readout.to(device).eval().requires_grad_(False), json.loads(found["meta"]), file_sha256(path))
