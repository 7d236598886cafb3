"""The curve guides' 1D profile model as serving holds it (sampled by ``backend.generators.curve_profiles``)."""

from __future__ import annotations

from pathlib import Path

import torch

from .inference import LoadedModel


class ProfileModel(LoadedModel):
    """The loaded 1D denoiser and the metadata it was trained with (see ``train_terrain.build_profile``)."""

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> ProfileModel:
        model = super().load(path, device)
        if model.meta.get("kind") != "profile":
            raise ValueError(f"{path} is not a profile model (kind {model.meta.get('kind')!r})")
        return model

    @property
    def length(self) -> int:
        return int(self.meta["length"])
