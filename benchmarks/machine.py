"""What the benchmarks' numbers were measured on — one description for every benchmark.

Example:
    >>> sorted(machine())[:3]
    ['cores', 'cpu', 'date']
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["cpu_name", "gpu_name", "machine"]


def cpu_name() -> str:
    """The CPU model, e.g. 'AMD EPYC 7B13' (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """The first CUDA GPU's name, or None."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def machine() -> dict[str, Any]:
    """CPU model, cores, GPU, device, torch and its threads, Python, platform, date, load average at the start."""
    import torch

    from tlcourse.device import describe_device, get_device

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "gpu": gpu_name(), "device": describe_device(get_device()),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "platform": platform.platform(), "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average_at_start": [round(x, 2) for x in load]}
