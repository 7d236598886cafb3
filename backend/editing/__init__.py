"""Brush edits: a stroke becomes a weight mask and a target (``brushes``), which a masked few-step
diffusion edit turns into natural terrain on the stroke's window only (``guided``)."""

from .brushes import FALLOFFS, KINDS, REGION_KINDS, RegionStroke, Stroke
from .guided import LIVE_SETTINGS, Edit, EditSettings, apply_stroke, seam_ratio

__all__ = ["FALLOFFS", "KINDS", "LIVE_SETTINGS", "REGION_KINDS", "Edit", "EditSettings", "RegionStroke", "Stroke", "apply_stroke",
           "seam_ratio"]
