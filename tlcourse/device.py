"""Device choice, seeding and mixed precision.

Apple silicon: ``get_device()`` picks MPS when there is no CUDA, and ``tlcourse.config`` gives such a laptop the
``cpu`` profile's sizes (the ``gpu`` profile is tuned for CUDA). Operators MPS lacks fall back to the CPU when
``PYTORCH_ENABLE_MPS_FALLBACK=1`` is set before torch loads: ``import tlcourse`` sets it (the lessons import
``tlcourse`` first); otherwise ``get_device()`` warns once and says how to set it.
"""

from __future__ import annotations

import contextlib
import os
import random
import warnings
from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "offset_seed", "autocast", "describe_device"]


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``prefer`` when given (a name or a ``torch.device``; checked to exist), else
    ``TLCOURSE_DEVICE``, else the best available: cuda > mps > cpu. The one resolver of every ``device=`` argument.

    Example:
        >>> get_device("cpu").type, get_device(torch.device("cpu")).type
        ('cpu', 'cpu')
    """
    if isinstance(prefer, torch.device):
        wanted = str(prefer)
    else:
        wanted = (prefer or os.environ.get("TLCOURSE_DEVICE", "")).strip().lower()
    if wanted:
        dev = torch.device(wanted)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {wanted!r} was asked for, but CUDA is not available on this machine")
        if dev.type == "mps" and not _mps_available():
            raise RuntimeError(f"device {wanted!r} was asked for, but MPS is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        _warn_without_mps_fallback()
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


_MPS_FALLBACK_HINT = (
    "Apple silicon (MPS): PYTORCH_ENABLE_MPS_FALLBACK is not set, so an operator MPS lacks will raise "
    "NotImplementedError instead of running on the CPU. Import tlcourse before torch (the lessons do), or start "
    "Jupyter with PYTORCH_ENABLE_MPS_FALLBACK=1; TLCOURSE_DEVICE=cpu avoids MPS altogether."
)


def _warn_without_mps_fallback() -> None:
    if os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK") != "1":
        warnings.warn(_MPS_FALLBACK_HINT, RuntimeWarning, stacklevel=3)


def describe_device(device: torch.device | None = None) -> str:
    """A one-line human description of a device (GPU name where there is one).

    Example:
        >>> describe_device(torch.device("cpu")).startswith("cpu")
        True
    """
    dev = device or get_device()
    if dev.type == "cuda":
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{idx} ({torch.cuda.get_device_name(idx)}, CUDA {torch.version.cuda})"
    if dev.type == "cpu":
        return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    if dev.type == "mps":
        fallback = "on" if os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK") == "1" else "off"
        return f"mps (Apple silicon GPU; cpu profile sizes; CPU fallback for missing ops {fallback})"
    return str(dev)


def offset_seed(seed: int) -> int:
    """``seed`` plus ``TLCOURSE_SEED_OFFSET`` (default 0): how every tlcourse seed is read.

    Example:
        >>> offset_seed(3) >= 3
        True
    """
    return int(seed) + int(os.environ.get("TLCOURSE_SEED_OFFSET", "0") or 0)


def seed_everything(seed: int = 0, deterministic: bool = False) -> int:
    """Seed Python, NumPy and torch (CPU and CUDA); optionally make cuDNN deterministic.

    ``TLCOURSE_SEED_OFFSET`` (an integer, default 0) is added to every seed: the benchmark repeats a lesson with
    other seeds without editing it (``benchmarks/run.py --seeds 0 1 2``). Returns the seed used.

    Example:
        >>> seed_everything(0)
        0
    """
    seed = offset_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    return seed


@contextlib.contextmanager
def autocast(device: torch.device | str | None = None, enabled: bool = True) -> Iterator[None]:
    """Mixed precision on CUDA (bf16 where supported, else fp16); a no-op on CPU and MPS.

    Example:
        >>> with autocast("cpu"):
        ...     y = torch.ones(2) * 2
    """
    dev = get_device(device)
    if not enabled or dev.type != "cuda":
        yield
        return
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    with torch.autocast(device_type="cuda", dtype=dtype):
        yield
