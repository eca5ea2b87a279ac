"""tlcourse — the support package of an offline-first Jupyter course on transfer learning.

Submodules (one job each; the map is ``ARCHITECTURE.md``): ``config``, ``device``, ``threads``, ``models``,
``freeze``, ``data``, ``cache``, ``pooling``, ``features``, ``activations``, ``train``, ``history``, ``adapt``, ``dense``, ``viz``, ``text``,
``record``, ``quiz``, ``lab``, ``launch``, ``grading``, ``cli``.
Everything is imported lazily, so ``import tlcourse`` is instant and ``tlcourse.models`` works without an
explicit import.

Example:
    >>> import tlcourse
    >>> tlcourse.profile("grading").name
    'grading'
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# Apple silicon: operators that MPS lacks run on the CPU instead of raising. torch reads this once, when it loads,
# so it only helps when tlcourse is imported before torch (the lessons' set-up cells do that).
os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")

# thread pools sized to the CPUs this process can use (affinity, cgroup quota, the machine's load), set before
# torch loads where it can: more threads than free cores make small operations several times slower
from tlcourse.threads import configure_threads  # noqa: E402

configure_threads()

__version__ = "0.1.0"
__all__ = ["profile", "get_device", "seed_everything", "record", "claim", "quiz", "__version__"]

# tlcourse.record("frozen_val_acc", 0.95) is the function; binding it here (record.py is light) keeps a later
# `import tlcourse.record` from shadowing it with the module
from tlcourse.quiz import quiz  # noqa: E402  (the same for tlcourse.quiz(...): light, jupyterquiz loads on use)
from tlcourse.record import claim, record  # noqa: E402

# short names re-exported from their modules, imported on first use
_SHORTCUTS = {
    "profile": "tlcourse.config",
    "get_device": "tlcourse.device",
    "seed_everything": "tlcourse.device",
}
_SUBMODULES = {
    "config", "device", "models", "freeze", "data", "features", "train", "history", "adapt", "dense", "viz",
    "text", "trunk", "regularize", "stats", "quiz", "grading", "cli", "threads", "lab", "cache", "launch",
    "pooling", "activations", "lti", "hubcourses",
}


def __getattr__(name: str) -> Any:
    if name in _SHORTCUTS:
        return getattr(importlib.import_module(_SHORTCUTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"tlcourse.{name}")
    raise AttributeError(f"module 'tlcourse' has no attribute {name!r}")
