"""The ``load_*`` functions — one per dataset of the registry, each returning a ``torch.utils.data.Dataset`` with
``classes``, ``targets`` and a ``fingerprint`` — and the helpers every loader and tlcourse verb shares:
:func:`make_loader` (re-exported from ``tlcourse._plumbing``); ``select_indices`` and ``fingerprint`` live in
``datasets``.
"""

from __future__ import annotations

import gzip
import html
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np

from tlcourse._plumbing import choose, make_loader
from tlcourse.config import profile
from tlcourse.data.catalog import AMAZON_DOMAINS, DATASETS, FASHION_MNIST_CLASSES, DatasetSpec
from tlcourse.data.datasets import (
    ArrayImageDataset,
    ImageFolderSubset,
    TextDataset,
    fingerprint,
    open_image,
    select_indices,
)
from tlcourse.data.store import fetch

__all__ = [
    "select_indices",
    "fingerprint",
    "make_loader",
    "load_hymenoptera",
    "load_medmnist",
    "load_mnist_test",
    "load_usps",
    "load_rt_polarity",
    "load_amazon_reviews",
    "load_sst2",
    "load_fashion_mnist",
    "load_image_folder",
    "load_text_csv",
    "ImageOptions",
]


# ----------------------------------------------------------------------------------------------------------------
# DataLoaders, subsets and fingerprints
# ----------------------------------------------------------------------------------------------------------------
class ImageOptions(TypedDict, total=False):
    """The keywords every image loader of the registry takes (``**options``).

    ``train_aug``: the default transform augments (random crops and flips) for training; ``image_size``: its side
    (the profile's by default); ``per_class`` / ``limit``: a seeded stratified subset (``seed``); ``download=False``
    fails instead of fetching a missing dataset.

    Example:
        >>> ImageOptions(per_class=2, seed=1)
        {'per_class': 2, 'seed': 1}
    """

    train_aug: bool
    image_size: int | None
    per_class: int | None
    limit: int | None
    seed: int
    download: bool


def _default_transform(transform: Any, train_aug: bool, image_size: int | None, crop: bool = True) -> Any:
    if transform is not None:
        return transform
    from tlcourse.models import preprocess  # lazy: models imports timm

    return preprocess("efficientnet_lite0", train=train_aug, image_size=image_size or profile().image_size,
                      crop=crop)


def _fetch(spec: DatasetSpec | str, options: ImageOptions) -> Path:
    """The dataset's folder, fetched unless ``options`` say ``download=False`` (the key is used up)."""
    return fetch(spec, download=options.pop("download", True))


# ----------------------------------------------------------------------------------------------------------------
# Loaders: vision
# ----------------------------------------------------------------------------------------------------------------
_HYMENOPTERA_SPLITS = ("train", "val")
_MEDMNIST_SPLITS = ("train", "val", "test")
_USPS_FILES = {"train": "zip.train.gz", "test": "zip.test.gz"}


def load_hymenoptera(
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    **options: Unpack[ImageOptions],
) -> ImageFolderSubset:
    """Ants vs bees as an ``ImageFolder`` (244 train / 153 val; ``imageNotFound.gif`` is skipped).

    ``transform=None`` uses ``tlcourse.models.preprocess("efficientnet_lite0", train=train_aug, image_size=...)``.

    Example:
        >>> ds = load_hymenoptera("val", transform=lambda im: im.size, per_class=2)  # doctest: +SKIP
        >>> ds.classes, len(ds)  # doctest: +SKIP
        (['ants', 'bees'], 4)
    """
    split = choose(_HYMENOPTERA_SPLITS, split, "hymenoptera split")
    root = _fetch("hymenoptera", options) / split
    transform = _default_transform(transform, options.pop("train_aug", False), options.pop("image_size", None))
    return ImageFolderSubset(root, transform, name="hymenoptera", split=split, **options)


def load_medmnist(
    name: str = "breastmnist",
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    **options: Unpack[ImageOptions],
) -> ArrayImageDataset:
    """BreastMNIST (546/78/156) or PneumoniaMNIST (4708/524/624), 28 px grey shown as RGB; official splits.

    Without ``transform``, images are upsampled to ``image_size`` (the profile's by default) and, for evaluation,
    not centre-cropped: a 28-px thumbnail is already the region of interest. (On BreastMNIST at 128 px this
    raised the fine-tuned test AUC from 0.881 to 0.900, mean of three seeds.)

    Example:
        >>> ds = load_medmnist("breastmnist", "test", transform=lambda im: im.size)  # doctest: +SKIP
        >>> len(ds), ds.classes  # doctest: +SKIP
        (156, ['malignant', 'normal/benign'])
    """
    name = choose(("breastmnist", "pneumoniamnist"), name, "MedMNIST subset")
    split = choose(_MEDMNIST_SPLITS, split, "MedMNIST split")
    spec = DATASETS[name]
    path = _fetch(spec, options) / f"{name}.npz"
    with np.load(path) as npz:
        images = npz[f"{split}_images"]
        labels = npz[f"{split}_labels"].reshape(-1).astype(np.int64)
    return _array_dataset(spec, split, images, labels, transform, crop=False, **options)  # the whole thumbnail


def _array_dataset(
    spec: DatasetSpec,
    split: str,
    images: np.ndarray,
    labels: np.ndarray,
    transform: Any,
    *,
    crop: bool = True,
    names: Sequence[str] | None = None,
    raw: bool = False,
    train_aug: bool = False,
    image_size: int | None = None,
    per_class: int | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> ArrayImageDataset:
    """Images and labels held in arrays, subset as asked, with the default transform unless one is given
    (``raw``: none, grey PIL images)."""
    idx = select_indices(labels, per_class=per_class, limit=limit, seed=seed)
    names = list(spec.classes if names is None else names)
    if raw:
        return ArrayImageDataset(images[idx], labels[idx].tolist(), names, None,
                                 fingerprint(spec.name, split + "[raw L]", idx, None), mode="L")
    transform = _default_transform(transform, train_aug, image_size, crop)
    return ArrayImageDataset(images[idx], labels[idx].tolist(), names, transform,
                             fingerprint(spec.name, split, idx, transform))


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse a gzip IDX file (MNIST's format: big-endian magic, dims, uint8 data) with numpy."""
    raw = gzip.decompress(path.read_bytes())
    header = np.frombuffer(raw, dtype=">i4", count=1 + (magic & 0xFF))
    if int(header[0]) != magic:
        raise ValueError(f"{path}: not an IDX file with magic {magic} (got {int(header[0])})")
    dims = [int(d) for d in header[1:]]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 * len(header)).reshape(dims)


def load_mnist_test(
    transform: Callable[[Any], Any] | None = None,
    **options: Unpack[ImageOptions],
) -> ArrayImageDataset:
    """The 10,000 MNIST test digits (28 px grey shown as RGB); IDX files parsed with numpy.

    Example:
        >>> ds = load_mnist_test(transform=lambda im: im.size, limit=10)  # doctest: +SKIP
        >>> len(ds), ds.classes[:3]  # doctest: +SKIP
        (10, ['0', '1', '2'])
    """
    spec = DATASETS["mnist_test"]
    root = _fetch(spec, options)
    images = _read_idx(root / "t10k-images-idx3-ubyte.gz", 2051)
    labels = _read_idx(root / "t10k-labels-idx1-ubyte.gz", 2049).astype(np.int64)
    return _array_dataset(spec, "test", images, labels, transform, **options)


def load_usps(
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    **options: Unpack[ImageOptions],
) -> ArrayImageDataset:
    """USPS digits, ESL version (7,291 train / 2,007 test), 16 px; values in [-1, 1] mapped to uint8 [0, 255].

    Example:
        >>> ds = load_usps("test", transform=lambda im: im.size)  # doctest: +SKIP
        >>> len(ds), ds[0][0]  # doctest: +SKIP
        (2007, (16, 16))
    """
    split = choose(tuple(_USPS_FILES), split, "USPS split")
    spec = DATASETS["usps"]
    text = gzip.decompress((_fetch(spec, options) / _USPS_FILES[split]).read_bytes()).decode("ascii")
    values = np.fromstring(text, dtype=np.float32, sep=" ").reshape(-1, 257)
    labels = values[:, 0].astype(np.int64)
    images = np.clip(np.rint((values[:, 1:] + 1.0) * 127.5), 0, 255).astype(np.uint8).reshape(-1, 16, 16)
    return _array_dataset(spec, split, images, labels, transform, **options)


_FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _class_subset(
    classes: Any, names: tuple[str, ...], images: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Keep the listed classes (indices or names, in that order), relabelled 0..k-1."""
    if classes is None:
        return images, labels, list(names)
    chosen = [names.index(c) if isinstance(c, str) and c in names else c for c in classes]
    if (len(set(chosen)) != len(chosen) or len(chosen) < 2
            or not all(isinstance(c, int | np.integer) and 0 <= c < len(names) for c in chosen)):
        raise ValueError(f"classes must name at least two different classes of {list(names)} (or their indices "
                         f"0-{len(names) - 1}), got {classes!r}")
    remap = np.full(len(names), -1, dtype=np.int64)
    remap[list(chosen)] = np.arange(len(chosen))
    keep = np.flatnonzero(remap[labels] >= 0)
    return images[keep], remap[labels[keep]], [names[c] for c in chosen]


def load_fashion_mnist(
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    *,
    raw: bool = False,
    classes: Any = None,
    **options: Unpack[ImageOptions],
) -> ArrayImageDataset:
    """Fashion-MNIST (60,000 train / 10,000 test), 28 px grey; IDX files parsed with numpy.

    ``raw=True`` gives the images as they are — grey (``"L"``) 28×28 PIL images, no transform — for code that
    must cope with them itself; otherwise they are shown as RGB and ``transform=None`` uses the backbone's
    preprocessing, as in every loader. ``classes`` keeps some classes (indices or names, in that order), relabelled
    ``0..k-1``. The files resolve like every dataset's, and also from Debian's ``dataset-fashion-mnist``
    (``/usr/share/datasets/fashion-mnist``).

    Example:
        >>> ds = load_fashion_mnist("test", raw=True, classes=["Trouser", "Bag"], per_class=3)  # doctest: +SKIP
        >>> len(ds), ds.classes, ds[0][0].mode, ds[0][0].size  # doctest: +SKIP
        (6, ['Trouser', 'Bag'], 'L', (28, 28))
    """
    split = choose(tuple(_FASHION_FILES), split, "Fashion-MNIST split")
    spec = DATASETS["fashion_mnist"]
    root = _fetch(spec, options)
    images_file, labels_file = _FASHION_FILES[split]
    images = _read_idx(root / images_file, 2051)
    labels = _read_idx(root / labels_file, 2049).astype(np.int64)
    images, labels, names = _class_subset(classes, FASHION_MNIST_CLASSES, images, labels)
    part = split if classes is None else f"{split}(classes={','.join(names)})"
    return _array_dataset(spec, part, images, labels, transform, crop=False, names=names, raw=raw, **options)


# ----------------------------------------------------------------------------------------------------------------
# Loaders: your own data (the capstone, lesson 07)
# ----------------------------------------------------------------------------------------------------------------
def _split_indices(targets: list[int], split: str, val_fraction: float, seed: int) -> list[int]:
    from sklearn.model_selection import train_test_split

    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    every = np.arange(len(targets))
    counts = np.bincount(np.asarray(targets, dtype=np.int64))
    stratify = targets if counts.min() >= 2 else None
    train_idx, val_idx = train_test_split(every, test_size=val_fraction, stratify=stratify, random_state=seed)
    return sorted((train_idx if split == "train" else val_idx).tolist())


def load_image_folder(
    root: str | Path,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    *,
    val_fraction: float = 0.25,
    per_class: int | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> ImageFolderSubset:
    """Your own images in the ``ImageFolder`` layout: one sub-folder per class (``root/cats/*.jpg``,
    ``root/dogs/*.jpg``), or ``root/train/<class>/`` and ``root/val/<class>/`` when you have split them yourself.

    Without ``train``/``val`` sub-folders, ``split`` takes a seeded stratified part of the folder
    (``val_fraction`` of each class for ``"val"``). Items are ``(PIL image, int label)`` in the files' own mode
    and size — unlike the registry's loaders, no preprocessing unless you pass ``transform``.

    Example:
        >>> train = load_image_folder("my_photos", "train")  # doctest: +SKIP
        >>> train.classes, train[0][0].mode  # doctest: +SKIP
        (['cats', 'dogs'], 'RGB')
    """
    from torchvision.datasets import ImageFolder

    split = choose(("train", "val"), split, "split")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (the layout: one sub-folder of images per class)")
    name = f"folder:{root.resolve()}"
    if (root / "train").is_dir() and (root / "val").is_dir():
        return ImageFolderSubset(root / split, transform, name=name, split=split, per_class=per_class,
                                 limit=limit, seed=seed, loader=open_image)
    keep = _split_indices(ImageFolder(str(root), loader=open_image).targets, split, val_fraction, seed)
    return ImageFolderSubset(root, transform, name=name, split=f"{split}(val_fraction={val_fraction},seed={seed})",
                             per_class=per_class, limit=limit, seed=seed, keep=keep, loader=open_image)


def load_text_csv(
    path: str | Path,
    split: str = "train",
    *,
    text_column: str = "text",
    label_column: str = "label",
    val_fraction: float = 0.25,
    limit: int | None = None,
    seed: int = 0,
) -> TextDataset:
    """Your own texts: a CSV file with a text column and a label column (any labels: names or numbers).

    ``classes`` are the labels' distinct values, sorted as strings; ``split`` takes a seeded stratified part
    (``val_fraction`` of each class for ``"val"``). Rows without a text or a label are dropped.

    Example:
        >>> train = load_text_csv("reviews.csv", text_column="review", label_column="stars")  # doctest: +SKIP
        >>> train.classes  # doctest: +SKIP
        ['1', '2', '3', '4', '5']
    """
    import pandas as pd

    split = choose(("train", "val"), split, "split")
    path = Path(path).expanduser()
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in (text_column, label_column) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: no column {missing} (columns: {list(table.columns)}); pass text_column= and "
                         "label_column=")
    table = table[(table[text_column].str.strip() != "") & (table[label_column].str.strip() != "")]
    labels = table[label_column].str.strip().tolist()
    names = sorted(set(labels))
    if len(names) < 2:
        raise ValueError(f"{path}: the column {label_column!r} holds {len(names)} label(s); a classifier needs two")
    targets = [names.index(v) for v in labels]
    texts = table[text_column].tolist()
    chosen = _split_indices(targets, split, val_fraction, seed)
    spec = DatasetSpec(name=f"csv:{path.resolve()}", title=path.name, folder=str(path.parent), downloads=(),
                       licence="yours", citation="", homepage="", description="", classes=tuple(names))
    return _text_dataset(spec, f"{split}(val_fraction={val_fraction},seed={seed})",
                         [texts[i] for i in chosen], [targets[i] for i in chosen], limit, seed)


# ----------------------------------------------------------------------------------------------------------------
# Loaders: text
# ----------------------------------------------------------------------------------------------------------------
def _text_dataset(
    spec: DatasetSpec, split: str, texts: list[str], labels: list[int], limit: int | None, seed: int
) -> TextDataset:
    idx = select_indices(labels, limit=limit, seed=seed)
    return TextDataset(
        [texts[i] for i in idx], [labels[i] for i in idx], spec.classes, fingerprint(spec.name, split, idx, None)
    )


def _labelled(parts: Iterable[tuple[int, list[str]]]) -> tuple[list[str], list[int]]:
    """Texts and labels of ``(label, texts)`` parts, one after the other."""
    texts: list[str] = []
    labels: list[int] = []
    for label, items in parts:
        texts += items
        labels += [label] * len(items)
    return texts, labels


def load_rt_polarity(
    split: str = "all",
    *,
    test_fraction: float = 0.15,
    seed: int = 0,
    limit: int | None = None,
    download: bool = True,
) -> TextDataset:
    """Movie-review snippets (latin-1), label 1 = positive; ``all`` = 5,331 negative then 5,331 positive.

    ``train``/``test`` are a fixed seeded stratified split (``test_fraction``); ``limit`` a stratified subset.

    Example:
        >>> ds = load_rt_polarity("test", limit=8)  # doctest: +SKIP
        >>> len(ds), type(ds[0][0]).__name__  # doctest: +SKIP
        (8, 'str')
    """
    split = choose(("all", "train", "test"), split, "rt-polarity split")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    spec = DATASETS["rt_polarity"]
    root = fetch(spec, download=download)

    def lines(fname: str) -> list[str]:
        # split on "\n" only: latin-1 byte 0x85 decodes to U+0085, which str.splitlines() would treat as a break
        return [ln.strip() for ln in (root / fname).read_text(encoding="latin-1").split("\n") if ln.strip()]

    texts, labels = _labelled([(0, lines("rt-polarity.neg")), (1, lines("rt-polarity.pos"))])
    if split != "all":
        from sklearn.model_selection import train_test_split

        train_idx, test_idx = train_test_split(
            np.arange(len(texts)), test_size=test_fraction, stratify=labels, random_state=seed
        )
        chosen = np.sort(train_idx if split == "train" else test_idx)
        texts = [texts[i] for i in chosen]
        labels = [labels[i] for i in chosen]
        split = f"{split}(test_fraction={test_fraction},seed={seed})"
    return _text_dataset(spec, split, texts, labels, limit, seed)


_REVIEW = re.compile(r"<review>(.*?)</review>", re.S)
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)
_REVIEW_TEXT = re.compile(r"<review_text>(.*?)</review_text>", re.S)


def _clean(text: str) -> str:
    # twice: a few reviews are double-escaped ("&amp;quot;")
    return " ".join(html.unescape(html.unescape(text)).split())


def _parse_reviews(path: Path) -> list[str]:
    """Texts of the ``<review>`` blocks of a pseudo-XML ``.review`` file: ``title. review_text``.

    A regex, not an XML parser: the files have no root element and raw ``&``/``<`` in places.
    """
    out = []
    for block in _REVIEW.findall(path.read_text(encoding="utf-8", errors="replace")):
        title = _TITLE.search(block)
        body = _REVIEW_TEXT.search(block)
        head = _clean(title.group(1)) if title else ""
        text = _clean(body.group(1)) if body else ""
        if head and text:  # "title. text", without doubling the title's own final punctuation
            head = head if head[-1] in ".!?" else head + "."
            out.append(f"{head} {text}")
        else:
            out.append(head or text)
    return out


def load_amazon_reviews(
    domain: str = "books", *, limit: int | None = None, seed: int = 0, download: bool = True
) -> TextDataset:
    """Amazon reviews of one domain (1,000 negative then 1,000 positive), text = ``title + ". " + review``.

    The ``.review`` files are not well-formed XML, so ``<review>`` blocks are cut out with a regex and HTML
    entities unescaped. Domains: ``books``, ``dvd``, ``electronics``, ``kitchen``.

    Example:
        >>> ds = load_amazon_reviews("dvd", limit=10)  # doctest: +SKIP
        >>> len(ds), ds.classes  # doctest: +SKIP
        (10, ['negative', 'positive'])
    """
    domain = choose(tuple(AMAZON_DOMAINS), domain, "Amazon domain")
    spec = DATASETS["amazon_reviews"]
    folder = fetch(spec, download=download) / "sorted_data_acl" / AMAZON_DOMAINS[domain]
    texts, labels = _labelled([(0, _parse_reviews(folder / "negative.review")),
                               (1, _parse_reviews(folder / "positive.review"))])
    return _text_dataset(spec, domain, texts, labels, limit, seed)


def load_sst2(split: str = "train", *, limit: int | None = None, seed: int = 0, download: bool = True) -> TextDataset:
    """GLUE SST-2 (67,349 train / 872 dev sentences), label 1 = positive.

    Example:
        >>> ds = load_sst2("dev")  # doctest: +SKIP
        >>> len(ds)  # doctest: +SKIP
        872
    """
    split = choose(("train", "dev"), split, "SST-2 split")
    spec = DATASETS["sst2"]
    lines = (fetch(spec, download=download) / f"{split}.tsv").read_text(encoding="utf-8").split("\n")
    texts: list[str] = []
    labels: list[int] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        sentence, label = line.rsplit("\t", 1)
        texts.append(sentence.strip())
        labels.append(int(label))
    return _text_dataset(spec, split, texts, labels, limit, seed)
