"""Brush edits: a stroke becomes a weight mask and a target (``brushes``), which a masked few-step
diffusion edit turns into natural terrain on the stroke's window only (``guided``)."""

from .brushes import FALLOFFS, KINDS, Stroke
from .guided import Edit, EditSettings, apply_stroke, seam_ratio

__all__ = ["FALLOFFS", "KINDS", "Edit", "EditSettings", "Stroke", "apply_stroke", "seam_ratio"]
