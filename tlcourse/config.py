"""Run profiles: one notebook, three machines (ARCHITECTURE.md §4).

A *profile* holds every size a lesson reads: image size, subset sizes, epochs, batch size, text lengths.
``profile()`` picks it:

1. ``TLCOURSE_PROFILE`` (``grading`` | ``cpu`` | ``gpu``) when set;
2. else ``grading`` when ``NBGRADER_EXECUTION`` is set (nbgrader autograde / validate);
3. else ``gpu`` when CUDA is available;
4. else ``cpu`` — also on Apple silicon, where ``get_device()`` still runs the cpu profile's sizes on MPS
   (the gpu profile's image sizes, epochs and CUDA mixed precision are tuned for CUDA GPUs).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["Profile", "PROFILES", "profile", "profile_name", "environ"]


@dataclass(frozen=True)
class Profile:
    """The sizes of one run profile.

    Example:
        >>> p = PROFILES["grading"]
        >>> p.image_size
        64
    """

    name: str
    description: str
    image_size: int  # square input side for vision backbones
    per_class: int | None  # images per class for small vision subsets (None: all)
    eval_limit: int | None  # images/sentences in evaluation subsets (None: all)
    epochs: int  # epochs of a typical training run
    batch_size: int
    text_train_limit: int | None  # sentences used to train text models (None: all)
    text_max_length: int  # token limit for text models
    num_workers: int  # DataLoader workers
    amp: bool  # mixed precision (CUDA only)
    extra: dict[str, Any] = field(default_factory=dict)  # one lesson's own sizes, read with get()

    def __repr__(self) -> str:  # readable in a notebook
        rows = [f"  {k:<17} {v!r}" for k, v in asdict(self).items() if k not in ("name", "description", "extra")]
        rows += [f"  {k:<17} {v!r}" for k, v in self.extra.items()]
        return f"Profile '{self.name}' — {self.description}\n" + "\n".join(rows)

    def get(self, key: str, default: Any = None) -> Any:
        """Read a size by name, from the fields or ``extra``.

        Example:
            >>> PROFILES["cpu"].get("image_size")
            224
        """
        if key in self.extra:
            return self.extra[key]
        return getattr(self, key, default)

    def with_(self, **changes: Any) -> Profile:
        """A copy with some sizes changed (e.g. to try a bigger image in a notebook).

        Example:
            >>> PROFILES["cpu"].with_(epochs=1).epochs
            1
        """
        return replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "grading": Profile(
        name="grading",
        description="autograding / CI: tiny subsets, 1 epoch, small images; a lesson in <= 60 s on 2 CPU cores",
        image_size=64,
        per_class=16,
        eval_limit=64,
        epochs=1,
        batch_size=32,
        text_train_limit=256,
        text_max_length=32,
        num_workers=0,
        amp=False,
        extra={"dense_train": 160, "dense_test": 64, "dense_epochs": 12},  # lesson 01's dense demo (tlcourse.dense.demo_sizes)
    ),
    "cpu": Profile(
        name="cpu",
        description="student laptop: the real experiment at full image size, frozen parts cached; a lesson in <= 6 min",
        image_size=224,
        per_class=None,
        eval_limit=None,
        epochs=3,
        batch_size=32,
        text_train_limit=None,
        text_max_length=48,
        num_workers=0,
        amp=False,
        extra={"dense_train": 384, "dense_test": 128, "dense_epochs": 12},  # lesson 01's dense demo (tlcourse.dense.demo_sizes)
    ),
    "gpu": Profile(
        name="gpu",
        description="one modern GPU: full image size, more epochs, mixed precision; a lesson in <= 1 min",
        image_size=224,
        per_class=None,
        eval_limit=None,
        epochs=8,
        batch_size=64,
        text_train_limit=None,
        text_max_length=64,
        num_workers=4,
        amp=True,
        extra={"dense_train": 2048, "dense_test": 512, "dense_epochs": 20, "dense_batch_size": 64},  # lesson 01's dense demo (tlcourse.dense.demo_sizes)
    ),
}


def profile_name() -> str:
    """Name of the active profile (see the module docstring for the rules).

    Example:
        >>> profile_name() in PROFILES
        True
    """
    forced = os.environ.get("TLCOURSE_PROFILE", "").strip().lower()
    if forced:
        if forced not in PROFILES:
            raise ValueError(
                f"TLCOURSE_PROFILE={forced!r} is not a profile; choose one of {sorted(PROFILES)}"
            )
        return forced
    if os.environ.get("NBGRADER_EXECUTION"):
        return "grading"
    try:
        import torch

        if torch.cuda.is_available():
            return "gpu"
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return "cpu"


def profile(name: str | None = None) -> Profile:
    """The active run profile, or the one named.

    Example:
        >>> profile("grading").epochs
        1
    """
    key = name or profile_name()
    if key not in PROFILES:
        raise ValueError(f"unknown profile {key!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[key]


@contextlib.contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set environment variables for a block (``None`` removes one), then restore them all.

    Example:
        >>> with environ(TLCOURSE_PROFILE="gpu"):
        ...     profile_name()
        'gpu'
    """
    old = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
