"""What every benchmark's JSON carries: the machine it ran on, and paths without this machine's prefix."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or cpu
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_at_start": list(os.getloadavg())}


def shown(path: Path) -> str:
    """A path as it goes into the JSON: relative to the repository when inside it (no machine's absolute paths)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return path.name
