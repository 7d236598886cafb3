"""Network backbones: they know only their inputs (c_in-scaled x, c_noise, conditioning tensors)."""

from backend.networks.unet import PRESETS, UNet, UNetConfig, build_unet, count_params

__all__ = ["PRESETS", "UNet", "UNetConfig", "build_unet", "count_params"]
