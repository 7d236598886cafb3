"""The header every benchmark prints first: date, CPU, cores, torch and GPU (results are per machine)."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name:")),
                platform.processor() or "unknown CPU")


def header(title: str) -> str:
    """'# worldsculpt <title> benchmark, <date>' and the hardware lines, ready to print."""
    import torch

    gpu = f"GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no CUDA"
    return (f"# worldsculpt {title} benchmark, {datetime.date.today().isoformat()}\n"
            f"# CPU: {cpu_model()}, {os.cpu_count()} logical cores visible, torch threads {torch.get_num_threads()}\n"
            f"# torch {torch.__version__}, python {platform.python_version()}, {gpu}")
