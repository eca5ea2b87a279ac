"""The dataset classes the loaders return: images held in an array, ``(text, label)`` pairs, and an image folder
restricted to a seeded subset. Each has ``classes``, ``targets`` and a ``fingerprint`` string (dataset, split,
chosen indices, transform) that feature caches key on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["ArrayImageDataset", "TextDataset", "ImageFolderSubset", "open_image", "select_indices", "fingerprint"]


class ArrayImageDataset(Dataset):
    """Images held as a uint8 array ``(N, H, W)``; items are ``(transform(PIL RGB image), int label)``.

    Grey images are converted to RGB PIL images so the same torchvision transforms serve every vision dataset;
    ``mode="L"`` keeps them grey (a dataset that hands raw images to code that must cope with them).

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
        mode: str = "RGB",
    ) -> None:
        self.images = images
        self.mode = mode
        self.targets: list[int] = [int(t) for t in targets]
        self.classes: list[str] = list(classes)
        self.transform = transform
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.targets)

    def image(self, i: int) -> Image.Image:
        """The raw item ``i`` as a PIL image in ``mode`` (RGB by default; no transform).

        Example:
            >>> ArrayImageDataset(np.zeros((1, 3, 3), np.uint8), [0], ["a"], None, "t").image(0).mode
            'RGB'
        """
        from PIL import Image

        return Image.fromarray(self.images[i]).convert(self.mode)

    def take(self, indices: Sequence[int] | np.ndarray) -> ArrayImageDataset:
        """A new dataset of the items at ``indices``, in that order (e.g. a train / val split of one draw).

        Example:
            >>> ds = ArrayImageDataset(np.zeros((3, 2, 2), np.uint8), [0, 1, 1], ["a", "b"], None, "toy")
            >>> part = ds.take([2, 0])
            >>> part.targets, part.classes
            ([1, 0], ['a', 'b'])
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        digest = hashlib.sha256(idx.tobytes()).hexdigest()[:16]
        return ArrayImageDataset(self.images[idx], [self.targets[i] for i in idx], self.classes, self.transform,
                                 f"{self.fingerprint}|take={digest}", mode=self.mode)

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
    """A torchvision ``ImageFolder`` restricted to a seeded subset (``per_class`` / ``limit``; ``keep``: only these
    indices of the sorted folder, first), with a ``fingerprint``. ``loader`` opens a file (torchvision's default
    converts every image to RGB).

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
        keep: Sequence[int] | None = None,
        loader: Callable[[str], Any] | None = None,
    ) -> None:
        if loader is None:
            super().__init__(str(root), transform=transform)
        else:
            super().__init__(str(root), transform=transform, loader=loader)
        if keep is not None:  # a part of the folder first (a train/val split of one folder of classes)
            self.samples = [self.samples[i] for i in sorted(int(k) for k in keep)]
            self.targets = [t for _, t in self.samples]
        indices = select_indices(self.targets, per_class=per_class, limit=limit, seed=seed)
        self.samples = [self.samples[i] for i in indices]
        self.imgs = self.samples
        self.targets = [t for _, t in self.samples]
        self.fingerprint = fingerprint(name, split, indices, transform)
        if keep is not None:  # the indices above count within the kept part: name the part too
            part = hashlib.sha256(np.asarray(sorted(int(k) for k in keep), dtype=np.int64).tobytes()).hexdigest()
            self.fingerprint += f"|keep={part[:16]}"


def open_image(path: str) -> Image.Image:
    """An image file as a PIL image in its own mode (grey stays ``"L"``, a palette ``"P"``), read at once.

    Example:
        >>> import tempfile, os
        >>> from PIL import Image
        >>> path = os.path.join(tempfile.mkdtemp(), "g.png"); Image.new("L", (3, 2)).save(path)
        >>> open_image(path).mode
        'L'
    """
    from PIL import Image

    with open(path, "rb") as fh:
        image = Image.open(fh)
        image.load()
    return image


def select_indices(
    targets: Sequence[int] | np.ndarray, *, per_class: int | None = None, limit: int | None = None, seed: int = 0
) -> np.ndarray:
    """Indices of a seeded subset: ``per_class`` keeps the first k of each class after a seeded shuffle, then
    ``limit`` keeps a seeded stratified subset of n (all when n ≥ the size). Returned in a **seeded shuffled
    order**, subset or not: the files behind every data set here are grouped by class (ImageFolder sorts by class,
    rt-polarity lists its negatives first), so a sorted subset's first k items would hold one class only — a
    prefix of a loaded data set must be a fair sample.

    Example:
        >>> select_indices([0, 0, 0, 1, 1, 1], per_class=2).size
        4
        >>> bool(set(select_indices([0] * 50 + [1] * 50)[:10] >= 50) == {False, True})  # a prefix: both classes
        True
    """
    targets = np.asarray(targets, dtype=np.int64)
    idx = np.arange(len(targets))
    for arg, value in (("per_class", per_class), ("limit", limit)):
        if value is not None and (not isinstance(value, int | np.integer) or value < 1):
            raise ValueError(f"{arg} must be a positive int or None, got {value!r}")
    if per_class is not None:
        order = np.random.default_rng(seed).permutation(len(targets))
        keep = [order[targets[order] == c][:per_class] for c in np.unique(targets)]
        idx = np.sort(np.concatenate(keep)) if keep else idx
    if limit is not None and limit < len(idx):
        from sklearn.model_selection import train_test_split

        try:
            idx, _ = train_test_split(idx, train_size=limit, stratify=targets[idx], random_state=seed)
        except ValueError:  # too few per class to stratify: plain seeded sample
            idx = np.random.default_rng(seed).choice(idx, size=limit, replace=False)
    return np.random.default_rng([seed, 1]).permutation(np.sort(idx))


def fingerprint(name: str, split: str, indices: Sequence[int] | np.ndarray, transform: Any) -> str:
    """The identity of a loaded dataset that feature caches key on: name, split, size, a hash of the chosen
    indices and the transform's ``repr``.

    Example:
        >>> fingerprint("usps", "test", [0, 1], None)
        'usps|test|n=2|idx=9d34149fbd1fe777|transform=None'
    """
    h = hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]
    return f"{name}|{split}|n={len(indices)}|idx={h}|transform={transform!r}"
