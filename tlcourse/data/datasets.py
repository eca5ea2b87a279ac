"""The dataset classes the loaders return: images held in an array, ``(text, label)`` pairs, and an image folder
restricted to a seeded subset. Each has ``classes``, ``targets`` and a ``fingerprint`` string (dataset, split,
chosen indices, transform) that feature caches key on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["ArrayImageDataset", "TextDataset", "ImageFolderSubset"]


class ArrayImageDataset(Dataset):
    """Images held as a uint8 array ``(N, H, W)``; items are ``(transform(PIL RGB image), int label)``.

    Grey images are converted to RGB PIL images so the same torchvision transforms serve every vision dataset.

    Example:
        >>> ds = ArrayImageDataset(np.zeros((2, 4, 4), np.uint8), [0, 1], ["a", "b"], lambda im: im.size, "toy")
        >>> ds[1], len(ds), ds.classes
        (((4, 4), 1), 2, ['a', 'b'])
    """

    def __init__(
        self,
        images: np.ndarray,
        targets: Sequence[int],
        classes: Sequence[str],
        transform: Callable[[Any], Any] | None,
        fingerprint: str,
    ) -> None:
        self.images = images
        self.targets: list[int] = [int(t) for t in targets]
        self.classes: list[str] = list(classes)
        self.transform = transform
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.targets)

    def image(self, i: int) -> Image.Image:
        """The raw item ``i`` as an RGB PIL image (no transform).

        Example:
            >>> ArrayImageDataset(np.zeros((1, 3, 3), np.uint8), [0], ["a"], None, "t").image(0).mode
            'RGB'
        """
        from PIL import Image

        return Image.fromarray(self.images[i]).convert("RGB")

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img = self.image(i)
        return (self.transform(img) if self.transform is not None else img), self.targets[i]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint}, {len(self)} items, classes={self.classes})"


class TextDataset(Dataset):
    """``(text, label)`` pairs with ``classes``, ``targets`` and ``fingerprint``.

    Example:
        >>> ds = TextDataset(["good", "bad"], [1, 0], ["negative", "positive"], "toy")
        >>> ds[0], len(ds)
        (('good', 1), 2)
    """

    def __init__(self, texts: Sequence[str], targets: Sequence[int], classes: Sequence[str], fingerprint: str):
        self.texts: list[str] = list(texts)
        self.targets: list[int] = [int(t) for t in targets]
        self.classes: list[str] = list(classes)
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[str, int]:
        return self.texts[i], self.targets[i]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint}, {len(self)} items, classes={self.classes})"


class ImageFolderSubset(ImageFolder):
    """A torchvision ``ImageFolder`` restricted to a seeded subset (``per_class`` / ``limit``), with a
    ``fingerprint``.

    Example:
        >>> ds = ImageFolderSubset(fetch("hymenoptera") / "val", None, name="hymenoptera", split="val",
        ...                        limit=4)  # doctest: +SKIP
        >>> len(ds), ds.classes  # doctest: +SKIP
        (4, ['ants', 'bees'])
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        transform: Callable[[Any], Any] | None,
        *,
        name: str,
        split: str,
        per_class: int | None = None,
        limit: int | None = None,
        seed: int = 0,
    ) -> None:
        from tlcourse.data.loaders import fingerprint, select_indices  # loaders imports this module

        super().__init__(str(root), transform=transform)
        indices = select_indices(self.targets, per_class=per_class, limit=limit, seed=seed)
        self.samples = [self.samples[i] for i in indices]
        self.imgs = self.samples
        self.targets = [t for _, t in self.samples]
        self.fingerprint = fingerprint(name, split, indices, transform)
