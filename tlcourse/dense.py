"""Dense prediction heads on backbone feature maps: masks, boxes and classes from a frozen classifier (lesson 01).

Detectors and segmenters reuse classification backbones: Faster R-CNN (Ren et al., 2015) and Mask R-CNN (He et al.,
2017) put region heads on an ImageNet-pretrained ResNet; FCN (Long et al., 2015) turns a classifier into a
per-pixel predictor by reading its feature maps and upsampling. This module shows the idea at laptop scale, on data
whose answers are exact:

* :func:`make_digit_scenes` pastes MNIST test digits at random positions and scales onto random crops of the
  photos that ship with scikit-image (:data:`BACKGROUNDS`). Every image has an exact **mask** (the digit's
  pixels), a **box** (the mask's bounding box) and a **class** (the digit). Deterministic from a seed; the
  dataset carries a ``fingerprint``, so :func:`tlcourse.features.extract_features` caches its features.
* :func:`read_feature_maps` reads one intermediate layer of a frozen backbone (e.g. ``blocks.2`` of
  EfficientNet-Lite0: stride 8) for every image, through ``extract_features``'s forward hook and disk cache (the
  ``"flat"`` entry of :data:`tlcourse.features.POOLS` keeps the whole map).
* :class:`DenseHead`: one shared trainable 3 × 3 convolution on the frozen features, then a ``mask`` head (1 × 1
  convolution, bilinear upsampling to the image) and a ``class`` head (pooled features → 10 digits).
  :func:`train_head` trains any subset of the tasks (:data:`TASK_LOSSES`), so "multi-task" and "one task alone"
  are the same code with the same budget. :func:`evaluate_head` reports mask IoU, box IoU and accuracy.
* :func:`compare_backbones` and :func:`compare_multitask` are the lesson's two experiments.

The head and its training loop are written by hand because they are what the lesson shows (about 60 lines); the
backbone, its weights and the feature cache come from :mod:`tlcourse.models` and :mod:`tlcourse.features`.

Example:
    >>> digits = (np.full((4, 28, 28), 255, np.uint8), np.arange(4))
    >>> ds = make_digit_scenes(4, 32, digits=digits, backgrounds=["coffee"])
    >>> ds.images.shape, ds.masks.shape, ds.boxes.shape, len(ds.targets)
    ((4, 32, 32, 3), (4, 32, 32), (4, 4), 4)
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import trange

from tlcourse.config import profile
from tlcourse.device import get_device, seed_everything

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "BACKGROUNDS",
    "BACKBONE_INITS",
    "DenseComparison",
    "TASK_LOSSES",
    "DemoSizes",
    "DigitScenes",
    "DenseHead",
    "demo_sizes",
    "make_digit_scenes",
    "read_feature_maps",
    "train_head",
    "predict_head",
    "evaluate_head",
    "mask_iou",
    "box_iou",
    "mask_to_box",
    "compare_backbones",
    "compare_multitask",
]

#: Backgrounds: a name → the ``skimage.data`` function that returns the photo (only photos that ship inside
#: scikit-image, so nothing is downloaded). Grey photos are shown in RGB.
BACKGROUNDS: dict[str, str] = {
    "astronaut": "astronaut",
    "chelsea": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
    "hubble": "hubble_deep_field",
    "immunohistochemistry": "immunohistochemistry",
    "camera": "camera",
    "grass": "grass",
    "gravel": "gravel",
    "brick": "brick",
}

DIGIT_CLASSES = [str(d) for d in range(10)]
_SPLIT_CODE = {"train": 0, "test": 1}  # train digits: the first half of MNIST test (shuffled); test: the second


@dataclass(frozen=True)
class DemoSizes:
    """The sizes of lesson 01's dense demo (the canvas side is the profile's ``image_size``).

    Example:
        >>> DemoSizes(n_train=16, n_test=8, epochs=1).hidden
        64
    """

    n_train: int
    n_test: int
    epochs: int  # passes of the head over the cached features (cheap: the backbone does not run)
    hidden: int = 64  # channels of the shared trainable layer
    lr: float = 3e-3
    batch_size: int = 32


def demo_sizes(name: str | None = None) -> DemoSizes:
    """The demo's sizes in the active profile (or the one named): its ``dense_*`` entries, beside every other size
    a lesson reads (:data:`tlcourse.config.PROFILES`).

    Example:
        >>> demo_sizes("grading").n_train, demo_sizes("cpu").n_test
        (160, 128)
    """
    p = profile(name)
    return DemoSizes(n_train=p.get("dense_train"), n_test=p.get("dense_test"), epochs=p.get("dense_epochs"),
                     batch_size=p.get("dense_batch_size", 32))


# ------------------------------------------------------------------------------------------------------- data
@cache
def _background(name: str) -> np.ndarray:
    from skimage import data as skdata

    if name not in BACKGROUNDS:
        raise ValueError(f"unknown background {name!r}; choose from {sorted(BACKGROUNDS)}")
    photo = np.asarray(getattr(skdata, BACKGROUNDS[name])())
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=2)
    return np.ascontiguousarray(photo[..., :3].astype(np.uint8))


def _mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    from tlcourse.data import load_mnist_test

    ds = load_mnist_test(transform=lambda im: im)  # the registry's loader: mirror → checksum → numpy arrays
    return ds.images, np.asarray(ds.targets, dtype=np.int64)


def _crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square crop (a third to 80 % of the photo's short side), resized to ``size``."""
    from PIL import Image

    h, w = photo.shape[:2]
    side = int(rng.uniform(0.33, 0.8) * min(h, w))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    patch = Image.fromarray(photo[y : y + side, x : x + side])
    return np.asarray(patch.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A vivid random colour (full saturation, bright): hue uniform, so the digit is not always light or dark."""
    import colorsys

    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0))) * 255.0


def _paste(background: np.ndarray, digit: np.ndarray, side: int, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray]:
    """Blend a digit (alpha = its grey level) in a random colour at a random place; image and exact mask."""
    from PIL import Image

    size = background.shape[0]
    alpha = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR), np.float32) / 255.0
    y, x = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
    full = np.zeros((size, size), np.float32)
    full[y : y + side, x : x + side] = alpha
    image = background * (1.0 - full[..., None]) + _colour(rng) * full[..., None]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), full > 0.5


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """The tight box ``(x0, y0, x1, y1)`` of a boolean mask (ends exclusive); ``(0, 0, 0, 0)`` when empty.

    Example:
        >>> m = np.zeros((5, 5), bool); m[1:3, 2:5] = True
        >>> mask_to_box(m).tolist()
        [2, 1, 5, 3]
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return np.zeros(4, np.int64)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.int64)


class DigitScenes(Dataset):
    """Composited images (uint8 ``N×S×S×3``) with exact ``masks`` (bool ``N×S×S``), ``boxes`` (``N×4``, x0 y0 x1
    y1) and ``targets`` (the digits). Items are ``(normalised image tensor, digit)``, ready for a backbone.

    Example:
        >>> ds = make_digit_scenes(2, 32, digits=(np.full((2, 28, 28), 255, np.uint8), np.array([3, 5])))
        >>> x, y = ds[1]
        >>> tuple(x.shape), ds.classes[y] == str(y), bool(ds.masks[1].any())
        ((3, 32, 32), True, True)
    """

    in_memory = True  # make_loader: no worker processes for data already in memory

    def __init__(self, images: np.ndarray, masks: np.ndarray, boxes: np.ndarray, targets: Sequence[int],
                 backgrounds: Sequence[str], fingerprint: str, mean: Sequence[float], std: Sequence[float]) -> None:
        self.images, self.masks, self.boxes = images, masks, boxes
        self.targets: list[int] = [int(t) for t in targets]
        self.backgrounds = list(backgrounds)
        self.classes = list(DIGIT_CLASSES)
        self.mean, self.std = tuple(mean), tuple(std)
        self.fingerprint = f"{fingerprint}|mean={self.mean}|std={self.std}"

    def __len__(self) -> int:
        return len(self.targets)

    def tensors(self) -> torch.Tensor:
        """All images as one normalised float tensor ``N×3×S×S``.

        Example:
            >>> make_digit_scenes(2, 16, digits=(np.zeros((2, 28, 28), np.uint8), np.zeros(2))).tensors().shape
            torch.Size([2, 3, 16, 16])
        """
        x = torch.from_numpy(self.images).permute(0, 3, 1, 2).float() / 255.0
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        return (x - mean) / torch.tensor(self.std).view(1, 3, 1, 1)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(self.images[i]).permute(2, 0, 1).float() / 255.0
        x = (x - torch.tensor(self.mean).view(3, 1, 1)) / torch.tensor(self.std).view(3, 1, 1)
        return x, self.targets[i]

    def __repr__(self) -> str:
        side = self.images.shape[1] if len(self) else 0
        return f"DigitScenes({len(self)} images of {side} px, backgrounds={sorted(set(self.backgrounds))})"


def _digit_pool(digits: tuple[np.ndarray, np.ndarray] | None, split: str, seed: int
                ) -> tuple[np.ndarray, np.ndarray, str]:
    """The digits a split may use: MNIST test, shuffled once by ``seed`` and halved (train and test disjoint)."""
    source = "mnist_test"
    if digits is None:
        images, labels = _mnist_digits()
    else:
        images, labels = np.asarray(digits[0], np.uint8), np.asarray(digits[1], np.int64)
        source = "given:" + hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()[:16]
    order = np.random.default_rng(seed).permutation(len(images))
    half = max(1, len(order) // 2)
    chosen = order[:half] if split == "train" or len(order) == 1 else order[half:]
    return images[chosen], labels[chosen], source


def make_digit_scenes(
    n: int,
    size: int | None = None,
    *,
    split: str = "train",
    seed: int = 0,
    scale: tuple[float, float] = (0.4, 0.8),
    backgrounds: Sequence[str] | None = None,
    digits: tuple[np.ndarray, np.ndarray] | None = None,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.5, 0.5, 0.5),
) -> DigitScenes:
    """``n`` images of ``size`` px (default: the profile's ``image_size``): a digit on a natural photo.

    Each image: a random crop of a random photo of ``backgrounds`` (default: all of :data:`BACKGROUNDS`), and
    a digit — from the MNIST test set via ``tlcourse.data.load_mnist_test``, or the given ``digits`` ``(images
    N×28×28 uint8, labels)`` — scaled to ``scale`` × ``size``, placed at random and blended in a random colour
    (its grey level is the alpha). The mask is alpha > 0.5, the box the mask's bounding box. The ``train`` and
    ``test`` splits draw from disjoint halves of the digits. Same arguments, same images. ``mean`` / ``std``
    normalise the items (EfficientNet-Lite's by default).

    Example:
        >>> digits = (np.full((6, 28, 28), 255, np.uint8), np.arange(6))
        >>> a = make_digit_scenes(3, 32, digits=digits, seed=1)
        >>> b = make_digit_scenes(3, 32, digits=digits, seed=1)
        >>> bool((a.images == b.images).all()), a.fingerprint == b.fingerprint
        (True, True)
    """
    if split not in _SPLIT_CODE:
        raise ValueError(f"split must be one of {sorted(_SPLIT_CODE)}, got {split!r}")
    side = int(size or profile().image_size)
    names = list(backgrounds or BACKGROUNDS)
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
    pool, pool_labels, source = _digit_pool(digits, split, seed)
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], side])
    images = np.empty((n, side, side, 3), np.uint8)
    masks = np.empty((n, side, side), bool)
    picks, chosen = rng.integers(0, len(pool), n), rng.integers(0, len(names), n)
    for i in range(n):
        background = _crop(_background(names[chosen[i]]), side, rng)
        digit_side = max(4, int(round(rng.uniform(*scale) * side)))
        images[i], masks[i] = _paste(background, pool[picks[i]], digit_side, rng)
    boxes = np.stack([mask_to_box(m) for m in masks]) if n else np.zeros((0, 4), np.int64)
    fp = f"digit_scenes|v1|{source}|{split}|n={n}|size={side}|seed={seed}|scale={scale}|bg={','.join(names)}"
    return DigitScenes(images, masks, boxes, pool_labels[picks], [names[c] for c in chosen], fp, mean, std)


# ---------------------------------------------------------------------------------------------- feature maps


def _map_shape(model: nn.Module, data: Dataset, layer: str) -> tuple[int, int, int]:
    from tlcourse.activations import feature_maps

    device = next(model.parameters()).device
    return tuple(int(n) for n in feature_maps(model, data[0][0].to(device), [layer])[layer].shape[1:])


def read_feature_maps(
    model: nn.Module,
    data: Dataset,
    layer: str = "blocks.2",
    *,
    cache: bool = True,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The feature maps ``N×C×h×w`` of ``layer`` for every image of ``data``, and the labels (frozen, cached).

    One pass of :func:`tlcourse.features.extract_features` (eval mode, no gradients, the pass stops at
    ``layer``); with ``cache`` the maps are stored on disk under the model's weights, the layer and the dataset's
    ``fingerprint``, so a second call costs a file read.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
        >>> maps, y = read_feature_maps(net, TensorDataset(torch.rand(5, 3, 8, 8), torch.arange(5)), "1",
        ...                             cache=False, progress=False, device="cpu")
        >>> tuple(maps.shape), y.tolist()
        ((5, 4, 4, 4), [0, 1, 2, 3, 4])
    """
    from tlcourse.features import extract_features

    flat, labels = extract_features(model, data, layer, cache=cache, device=device, progress=progress, pool="flat")
    c, h, w = _map_shape(model, data, layer)
    return torch.from_numpy(flat).view(len(flat), c, h, w), torch.from_numpy(labels)


# ------------------------------------------------------------------------------------------------------ heads
class DenseHead(nn.Module):
    """A small trainable head on frozen feature maps: shared layer → ``mask`` and ``class`` outputs.

    * ``norm``: BatchNorm of the frozen features (pretrained and random backbones give maps of different scales;
      both reach the same head standardised);
    * ``shared``: one 3 × 3 convolution to ``hidden`` channels + ReLU (the layer the two tasks share);
    * ``mask``: a 1 × 1 convolution to one logit per cell, upsampled bilinearly to ``out_size`` (FCN's recipe);
    * ``class``: the shared features max-pooled over the map (where is the digit? anywhere) → a linear layer.

    ``forward(maps, size=None)`` returns ``{"mask": N×1×H×W logits, "class": N×num_classes logits}``, the mask
    upsampled to ``size`` (default ``out_size``; None: the map's own resolution).

    Example:
        >>> head = DenseHead(8, hidden=4, out_size=32)
        >>> {k: tuple(v.shape) for k, v in head(torch.rand(2, 8, 4, 4)).items()}
        {'mask': (2, 1, 32, 32), 'class': (2, 10)}
    """

    def __init__(self, in_channels: int, hidden: int = 64, num_classes: int = 10, out_size: int | None = None):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.shared = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU())
        self.mask = nn.Conv2d(hidden, 1, 1)
        self.classify = nn.Linear(hidden, num_classes)
        self.out_size = out_size

    def forward(self, maps: torch.Tensor, size: int | None = None) -> dict[str, torch.Tensor]:
        z = self.shared(self.norm(maps))
        mask = self.mask(z)
        side = size or self.out_size
        if side is not None:
            mask = F.interpolate(mask, size=(side, side), mode="bilinear", align_corners=False)
        return {"mask": mask, "class": self.classify(z.amax(dim=(2, 3)))}


def _mask_loss(out: dict[str, torch.Tensor], masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-pixel binary cross-entropy + soft Dice (the Dice term keeps small digits from being ignored)."""
    logits = out["mask"]
    bce = F.binary_cross_entropy_with_logits(logits, masks)
    probs = torch.sigmoid(logits)
    dice = 1 - (2 * (probs * masks).sum((1, 2, 3)) + 1) / (probs.sum((1, 2, 3)) + masks.sum((1, 2, 3)) + 1)
    return bce + dice.mean()


def _class_loss(out: dict[str, torch.Tensor], masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out["class"], labels)


#: Task name → loss(outputs, masks N×1×H×W float, labels N). Training on several tasks sums their losses.
TASK_LOSSES: dict[str, Callable[[dict[str, torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mask": _mask_loss,
    "class": _class_loss,
}


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one CPU thread for the block (restored after). The head's tensors are tiny: a thread pool's
    start-up dominates such ops, and on a busy 2-core machine two pools spinning against each other made head
    training 3–10× slower than one thread (measured while writing this module)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _as_mask_tensor(masks: np.ndarray | torch.Tensor, size: int | None) -> torch.Tensor:
    """Masks as ``N×1×H×W`` floats; with ``size``, area-averaged to ``size × size`` (soft targets in [0, 1])."""
    m = torch.as_tensor(np.asarray(masks, dtype=np.float32))
    m = m[:, None] if m.dim() == 3 else m
    return F.interpolate(m, size=(size, size), mode="area") if size and size != m.shape[-1] else m


def train_head(
    head: nn.Module,
    maps: torch.Tensor,
    masks: np.ndarray | torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    *,
    tasks: Sequence[str] = ("mask",),
    epochs: int = 10,
    lr: float = 3e-3,
    batch_size: int = 32,
    seed: int = 0,
    mask_size: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[float]:
    """Train ``head`` on cached feature ``maps`` for ``tasks`` (keys of :data:`TASK_LOSSES`, losses summed).

    AdamW with cosine decay, shuffled mini-batches drawn from ``seed``; the same ``epochs`` and batches whatever
    the tasks, so a multi-task run and a single-task run get the same budget. ``mask_size`` trains the mask at
    that resolution (targets area-averaged, the head's output upsampled to it: ``head(maps, size=mask_size)``);
    at 4 × the map's side it costs far less than the full image and loses little, since the map's cells are 8
    pixels apart. Returns the mean loss per epoch.

    Example:
        >>> head = DenseHead(4, hidden=8, out_size=16)
        >>> maps, masks = torch.rand(8, 4, 4, 4), np.zeros((8, 16, 16), bool)
        >>> losses = train_head(head, maps, masks, torch.zeros(8, dtype=torch.long), tasks=("mask", "class"),
        ...                     epochs=3, progress=False)
        >>> len(losses), losses[-1] < losses[0]
        (3, True)
    """
    unknown = [t for t in tasks if t not in TASK_LOSSES]
    if unknown or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of {sorted(TASK_LOSSES)}, got {list(tasks)}")
    target_masks, target_labels = _as_mask_tensor(masks, mask_size), torch.as_tensor(labels, dtype=torch.long)
    if not len(maps) == len(target_masks) == len(target_labels):
        raise ValueError(f"{len(maps)} maps, {len(target_masks)} masks and {len(target_labels)} labels")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    head.to(device)
    steps = epochs * -(-len(maps) // batch_size)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    head.train()
    history: list[float] = []
    with _one_thread() if torch.device(device).type == "cpu" else contextlib.nullcontext():
        _epochs(head, maps, target_masks, target_labels, tasks, epochs, batch_size, mask_size, device, optimizer,
                schedule, generator, progress, history)
    head.eval()
    return history


def _epochs(head: nn.Module, maps: torch.Tensor, target_masks: torch.Tensor, target_labels: torch.Tensor,
            tasks: Sequence[str], epochs: int, batch_size: int, mask_size: int | None, device: torch.device | str,
            optimizer: torch.optim.Optimizer, schedule: Any, generator: torch.Generator, progress: bool,
            history: list[float]) -> None:
    """The loop of :func:`train_head`: shuffled mini-batches, summed task losses, one mean loss per epoch."""
    for _ in trange(epochs, desc=f"head ({' + '.join(tasks)})", disable=not progress, leave=False):
        total = 0.0
        for idx in torch.randperm(len(maps), generator=generator).split(batch_size):
            x, m, y = (t[idx].to(device) for t in (maps, target_masks, target_labels))
            out = head(x, size=mask_size) if mask_size else head(x)
            loss = sum(TASK_LOSSES[t](out, m, y) for t in tasks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / len(maps))


@torch.no_grad()
def predict_head(head: nn.Module, maps: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """The head's outputs on ``maps`` in eval mode: ``mask`` probabilities ``N×H×W`` and ``class`` logits.

    Example:
        >>> out = predict_head(DenseHead(4, hidden=8, out_size=8), torch.rand(3, 4, 2, 2))
        >>> tuple(out["mask"].shape), tuple(out["class"].shape)
        ((3, 8, 8), (3, 10))
    """
    head.eval()
    device = next(head.parameters()).device
    parts = [head(chunk.to(device)) for chunk in maps.split(batch_size)]
    return {"mask": torch.cat([torch.sigmoid(p["mask"][:, 0]).cpu() for p in parts]),
            "class": torch.cat([p["class"].cpu() for p in parts])}


# ---------------------------------------------------------------------------------------------------- metrics
def mask_iou(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> np.ndarray:
    """Intersection over union of boolean masks, one value per image (1.0 when both are empty).

    Example:
        >>> a = np.zeros((1, 4, 4), bool); a[0, :2] = True
        >>> b = np.zeros((1, 4, 4), bool); b[0, 1:3] = True
        >>> mask_iou(a, b).round(3).tolist()
        [0.333]
    """
    p, t = np.asarray(pred, bool), np.asarray(true, bool)
    if p.shape != t.shape:
        raise ValueError(f"mask shapes differ: {p.shape} vs {t.shape}")
    axes = tuple(range(1, p.ndim)) if p.ndim > 2 else None
    inter, union = (p & t).sum(axis=axes), (p | t).sum(axis=axes)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0).astype(np.float64).reshape(-1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``(x0, y0, x1, y1)`` (ends exclusive), row by row: ``N×4`` and ``N×4`` → ``N``.

    Example:
        >>> box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2]])).round(3).tolist()
        [0.333]
    """
    a, b = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inter = w * h
    return np.where(area - inter > 0, inter / np.maximum(area - inter, 1e-12), 0.0)


def evaluate_head(head: nn.Module, maps: torch.Tensor, data: DigitScenes, threshold: float = 0.5
                  ) -> dict[str, Any]:
    """Mask IoU, box IoU (the box read off the predicted mask), share of boxes with IoU ≥ 0.5, and accuracy.

    Example:
        >>> ds = make_digit_scenes(2, 16, digits=(np.full((2, 28, 28), 255, np.uint8), np.arange(2)))
        >>> sorted(evaluate_head(DenseHead(3, hidden=4, out_size=16), ds.tensors(), ds))
        ['accuracy', 'box_hit', 'box_iou', 'mask_iou', 'predicted_masks']
    """
    out = predict_head(head, maps)
    pred = (out["mask"] >= threshold).numpy()
    boxes = np.stack([mask_to_box(m) for m in pred])
    ious = box_iou(boxes, data.boxes)
    labels = np.asarray(data.targets)
    return {
        "mask_iou": float(mask_iou(pred, data.masks).mean()),
        "box_iou": float(ious.mean()),
        "box_hit": float((ious >= 0.5).mean()),  # a "detection" at PASCAL VOC's threshold
        "accuracy": float((out["class"].argmax(1).numpy() == labels).mean()),
        "predicted_masks": pred,
    }


# ------------------------------------------------------------------------------------------------ experiments
# Lesson 01's two experiments (compare_backbones, compare_multitask): the lesson calls them with its scenes, and
# records and claims their numbers itself. They are here, not in the notebook, because each is ~40 lines of
# bookkeeping (same seed, same budget, maps read once) that the lesson does not teach.
#: The two backbones the lesson compares: the same architecture with ImageNet weights or random ones.
BACKBONE_INITS: dict[str, bool] = {"ImageNet": True, "random": False}

#: Which metrics a task is scored on (the other task's head is untrained in a single-task run: not reported).
TASK_METRICS: dict[str, tuple[str, ...]] = {"mask": ("mask_iou", "box_iou", "box_hit"), "class": ("accuracy",)}


@dataclass
class DenseComparison:
    """What an experiment measured: one ``table`` row per run, each run's predicted test masks, the feature maps.

    Example:
        >>> DenseComparison().table.empty
        True
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    maps: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        """The runs as a DataFrame indexed by run name (metrics a run does not train are NaN)."""
        import pandas as pd

        columns = ["run", "backbone", "tasks", "mask_iou", "box_iou", "box_hit", "accuracy", "seconds"]
        return pd.DataFrame(self.rows, columns=columns).set_index("run")

    def row(self, run: str) -> dict[str, Any]:
        """One run's row as a dict.

        Example:
            >>> DenseComparison(rows=[{"run": "a", "mask_iou": 0.5}]).row("a")["mask_iou"]
            0.5
        """
        for r in self.rows:
            if r["run"] == run:
                return r
        raise KeyError(f"no run {run!r}; runs: {[r['run'] for r in self.rows]}")


def _fit_and_score(result: DenseComparison, run: str, init: str, tasks: tuple[str, ...], train: DigitScenes,
                   test: DigitScenes, sizes: DemoSizes, seed: int, device: torch.device, progress: bool) -> None:
    """Train a fresh :class:`DenseHead` on ``init``'s cached maps for ``tasks``; add its row and predictions."""
    import time

    maps_train, maps_test = result.maps[init]
    seed_everything(seed)
    head = DenseHead(maps_train.shape[1], sizes.hidden, len(train.classes), out_size=train.images.shape[1])
    start = time.perf_counter()
    train_head(head, maps_train, train.masks, train.targets, tasks=tasks, epochs=sizes.epochs, lr=sizes.lr,
               batch_size=sizes.batch_size, seed=seed, mask_size=4 * maps_train.shape[-1], device=device,
               progress=progress)
    scores = evaluate_head(head, maps_test, test)
    kept = {m for t in tasks for m in TASK_METRICS[t]}
    row = {"run": run, "backbone": init, "tasks": " + ".join(tasks), "seconds": time.perf_counter() - start}
    row.update({m: (scores[m] if m in kept else float("nan")) for ms in TASK_METRICS.values() for m in ms})
    result.rows.append(row)
    if "mask" in tasks:
        result.predictions[run] = scores["predicted_masks"]


def compare_backbones(
    train: DigitScenes,
    test: DigitScenes,
    *,
    backbone: str = "efficientnet_lite0",
    layer: str = "blocks.2",
    sizes: DemoSizes | None = None,
    seed: int = 0,
    cache: bool = True,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> DenseComparison:
    """The same mask head trained on ``layer``'s maps of an ImageNet backbone and of a randomly initialised one.

    Runs are named ``"<init> · mask"`` (:data:`BACKBONE_INITS`); the backbones stay frozen, only the head trains
    (same seed, same budget: ``sizes``, default :func:`demo_sizes`). The random backbone is built on purpose, as
    the baseline (``load_backbone(..., pretrained=False)``), never as a fallback. ``result.maps`` keeps both
    backbones' maps for :func:`compare_multitask`.

    Example:
        >>> train = make_digit_scenes(256, split="train")  # doctest: +SKIP
        >>> result = compare_backbones(train, make_digit_scenes(64, split="test"))  # doctest: +SKIP
        >>> result.table[["mask_iou", "box_hit"]]  # doctest: +SKIP
    """
    from tlcourse.models import load_backbone

    sizes = sizes or demo_sizes()
    dev = get_device(device)
    result = DenseComparison()
    for init, pretrained in BACKBONE_INITS.items():
        seed_everything(seed)  # the random backbone's weights come from this seed
        model = load_backbone(backbone, pretrained=pretrained).eval()
        result.maps[init] = tuple(  # type: ignore[assignment]
            read_feature_maps(model, data, layer, cache=cache, device=dev, progress=progress)[0]
            for data in (train, test)
        )
        _fit_and_score(result, f"{init} · mask", init, ("mask",), train, test, sizes, seed, dev, progress)
    return result


def compare_multitask(
    first: DenseComparison,
    train: DigitScenes,
    test: DigitScenes,
    *,
    init: str = "ImageNet",
    sizes: DemoSizes | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> DenseComparison:
    """Multi-task vs single-task on ``init``'s frozen maps: ``mask`` alone, ``class`` alone, ``mask + class``.

    The three runs share the architecture (one shared 3 × 3 layer, two heads), the seed and the budget; only the
    summed losses differ. The mask-alone run is ``first``'s (from :func:`compare_backbones`, same seed and budget:
    training it again would give the same head).

    Example:
        >>> mt = compare_multitask(compare_backbones(train, test), train, test)  # doctest: +SKIP
        >>> mt.table[["mask_iou", "accuracy"]]  # doctest: +SKIP
    """
    sizes = sizes or demo_sizes()
    dev = get_device(device)
    result = DenseComparison(maps={init: first.maps[init]})
    alone = f"{init} · mask"
    result.rows.append(dict(first.row(alone)))
    result.predictions[alone] = first.predictions[alone]
    for tasks in (("class",), ("mask", "class")):
        _fit_and_score(result, f"{init} · {' + '.join(tasks)}", init, tasks, train, test, sizes, seed, dev,
                       progress)
    return result
