"""What a person would rather look at: images, filters, feature maps, Grad-CAM, embeddings, curves, explorers.

Figures only: what they show is computed elsewhere (``feature_maps`` and ``grad_cam`` live in
``tlcourse.activations`` and are re-exported here for the lessons).

Every plotting function returns its matplotlib :class:`~matplotlib.figure.Figure` (with a title and axis labels)
and never calls ``plt.show()``. In a notebook, end the line with ``;`` (or assign the figure) so that it is drawn
once. The explorers return an ``ipywidgets.VBox``; they render with Agg into an ``ipywidgets.Image``, so they
work with any matplotlib backend.

Images may be given as normalised tensors ``(C, H, W)`` / ``(N, C, H, W)`` (un-normalised with ``mean``/``std``
for display; ``mean=None`` means the tensor already holds raw values in [0, 1]), PIL images or numpy ``HWC``
arrays (raw, ``uint8`` or floats in [0, 1]).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from io import BytesIO
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullFormatter
from PIL import Image
from torch import nn

from tlcourse.activations import feature_maps, grad_cam, resolve_module

if TYPE_CHECKING:  # pragma: no cover
    import ipywidgets
    from matplotlib.axes import Axes

__all__ = [
    "plot_timeline",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EMBEDDING_METHODS",
    "show_images",
    "show_dataset",
    "plot_filters",
    "feature_maps",
    "plot_feature_maps",
    "mistake_pager",
    "grad_cam",
    "show_cam",
    "plot_embedding",
    "plot_history",
    "LiveCurve",
    "plot_confusion_matrix",
    "plot_roc",
    "plot_learning_curve",
    "plot_lr_find",
    "plot_bars",
    "show_masks",
    "feature_map_explorer",
    "misclassified_gallery",
    "text_error_pager",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

ImageLike = torch.Tensor | np.ndarray | Image.Image
Stats = Sequence[float] | None


# ----------------------------------------------------------------------------------------------------------------
# image helpers
# ----------------------------------------------------------------------------------------------------------------
def _to_display(image: Any, mean: Stats = IMAGENET_MEAN, std: Stats = IMAGENET_STD) -> np.ndarray:
    """One image as a float array in [0, 1]: ``(H, W, 3)`` for colour, ``(H, W)`` for grey."""
    if isinstance(image, Image.Image):
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        return np.asarray(image, dtype=np.float32) / 255.0
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim == 2:
            t = t[None]
        if t.ndim != 3 or t.shape[0] not in (1, 3):
            raise ValueError(
                f"cannot show a tensor of shape {tuple(image.shape)}: expected (C, H, W) with C = 1 or 3 "
                "(or a batch (N, C, H, W))"
            )
        if t.dtype == torch.uint8:
            t = t.float() / 255.0
        else:
            t = t.float()
            if mean is not None:
                if std is None:
                    raise ValueError("mean given without std: pass both, or mean=None for raw [0, 1] images")
                m = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
                s = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)
                if m.shape[0] != t.shape[0] or s.shape[0] != t.shape[0]:
                    raise ValueError(
                        f"the image has {t.shape[0]} channel(s) but mean/std have {m.shape[0]}/{s.shape[0]} "
                        "values: pass matching mean=..., std=... or mean=None for raw [0, 1] images"
                    )
                t = t * s + m
        arr = t.permute(1, 2, 0).numpy()
    elif isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3, 4):
            arr = arr.transpose(1, 2, 0)  # CHW given: be forgiving
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4)):
            raise ValueError(f"cannot show an array of shape {arr.shape}: expected (H, W), (H, W, 3) or (H, W, 4)")
        arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
        if arr.ndim == 3 and arr.shape[-1] == 4:
            arr = arr[..., :3]
    else:
        raise TypeError(
            f"cannot show a {type(image).__name__}: pass a torch tensor (C, H, W), a PIL image or a numpy "
            "(H, W, C) array"
        )
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return np.clip(arr, 0.0, 1.0)


def _as_image_list(images: Any) -> list[Any]:
    """A batch tensor / array or a sequence of images → a list of single images."""
    if isinstance(images, torch.Tensor):
        if images.ndim == 4:
            return list(images)
        if images.ndim in (2, 3):
            return [images]
        raise ValueError(f"expected an image batch (N, C, H, W) or one image (C, H, W), got {tuple(images.shape)}")
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, Sequence) and not isinstance(images, str):
        return list(images)
    raise TypeError(f"expected a tensor, an array, a PIL image or a list of them, got {type(images).__name__}")


def _to_list(values: Any) -> list[Any]:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().reshape(-1).tolist()
    if isinstance(values, np.ndarray):
        return values.reshape(-1).tolist()
    return list(values)


def _name(label: Any, class_names: Sequence[str] | None) -> str:
    if isinstance(label, torch.Tensor | np.generic):
        label = label.item()
    if class_names is not None and isinstance(label, int | np.integer):
        if not 0 <= int(label) < len(class_names):
            raise IndexError(f"label {label} has no name: class_names has {len(class_names)} entries")
        return str(class_names[int(label)])
    return str(label)


def _imshow(ax: Axes, arr: np.ndarray, **kwargs: Any) -> None:
    if arr.ndim == 2:
        ax.imshow(arr, cmap="gray", vmin=0.0, vmax=1.0, **kwargs)
    else:
        ax.imshow(arr, **kwargs)


def _figure_png(fig: Figure, dpi: int = 72) -> bytes:
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)  # no bbox_inches="tight": it costs a second draw per slider move
    return buf.getvalue()


def _grid(n: int, ncols: int) -> tuple[int, int]:
    if n == 0:
        raise ValueError("nothing to show: got 0 images")
    cols = max(1, min(ncols, n))
    return math.ceil(n / cols), cols


# ----------------------------------------------------------------------------------------------------------------
# images and datasets
# ----------------------------------------------------------------------------------------------------------------
def show_images(
    images: Any,
    labels: Any = None,
    class_names: Sequence[str] | None = None,
    preds: Any = None,
    ncols: int = 8,
    mean: Stats = IMAGENET_MEAN,
    std: Stats = IMAGENET_STD,
    title: str | None = None,
) -> Figure:
    """A grid of images with their labels; with ``preds``, wrong predictions get red titles.

    ``images``: a batch tensor ``(N, C, H, W)`` normalised with ``mean``/``std`` (``mean=None`` for raw [0, 1]),
    a list of tensors, PIL images or numpy ``HWC`` arrays. Titles show the label (or ``#i`` without labels); with
    ``preds`` they show the prediction, green when right and red (with the true label) when wrong.

    Example:
        >>> fig = show_images(torch.rand(4, 3, 8, 8), labels=[0, 1, 1, 0], class_names=["ant", "bee"], mean=None)
        >>> fig.axes[1].get_title()
        'bee'
    """
    items = _as_image_list(images)
    n = len(items)
    label_list = None if labels is None else _to_list(labels)
    pred_list = None if preds is None else _to_list(preds)
    for what, values in (("labels", label_list), ("preds", pred_list)):
        if values is not None and len(values) != n:
            raise ValueError(f"got {n} images but {len(values)} {what}")
    rows, cols = _grid(n, ncols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.9 * rows + 0.4), squeeze=False,
                             layout="constrained")
    flat = axes.ravel()
    for i, ax in enumerate(flat):
        if i >= n:
            ax.remove()
            continue
        _imshow(ax, _to_display(items[i], mean, std))
        ax.set_xticks([])
        ax.set_yticks([])
        if pred_list is not None:
            pred = _name(pred_list[i], class_names)
            if label_list is None:
                ax.set_title(pred, fontsize=9)
            else:
                true = _name(label_list[i], class_names)
                right = pred == true
                ax.set_title(pred if right else f"{pred}\n(true: {true})", fontsize=9,
                             color="tab:green" if right else "tab:red")
        elif label_list is not None:
            ax.set_title(_name(label_list[i], class_names), fontsize=9)
        else:
            ax.set_title(f"#{i}", fontsize=9)
    if title is None:
        title = f"{n} image{'s' if n != 1 else ''}"
        if pred_list is not None and label_list is not None:
            wrong = sum(_name(p, class_names) != _name(t, class_names) for p, t in zip(pred_list, label_list, strict=True))
            title += f" — {wrong} wrong prediction{'s' if wrong != 1 else ''} in red"
    fig.suptitle(title)
    return fig


def _dataset_classes(ds: Any) -> list[str] | None:
    """``classes`` of a dataset, looking through ``Subset``-like wrappers (``.dataset``)."""
    for _ in range(5):
        classes = getattr(ds, "classes", None)
        if classes is not None:
            return list(classes)
        ds = getattr(ds, "dataset", None)
        if ds is None:
            return None
    return None


def show_dataset(
    ds: Any,
    n: int = 16,
    *,
    indices: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    ncols: int = 8,
    mean: Stats = IMAGENET_MEAN,
    std: Stats = IMAGENET_STD,
    title: str | None = None,
) -> Figure:
    """Show ``n`` items of a Dataset (evenly spaced, or the given ``indices``) with their labels.

    Items may be ``(image, label)`` pairs or bare images. Class names default to ``ds.classes`` (looked up
    through ``Subset`` wrappers).

    Example:
        >>> ds = torch.utils.data.TensorDataset(torch.rand(10, 3, 8, 8), torch.arange(10) % 2)
        >>> fig = show_dataset(ds, n=4, mean=None)
        >>> len(fig.axes)
        4
    """
    size = len(ds)
    if size == 0:
        raise ValueError("the dataset is empty")
    if indices is None:
        indices = sorted({int(i) for i in np.linspace(0, size - 1, num=min(n, size))})
    images, labels = [], []
    for i in indices:
        item = ds[int(i)]
        if isinstance(item, tuple | list):
            images.append(item[0])
            labels.append(item[1] if len(item) > 1 else None)
        else:
            images.append(item)
            labels.append(None)
    has_labels = all(lab is not None for lab in labels)
    names = class_names if class_names is not None else _dataset_classes(ds)
    if title is None:
        title = f"{type(ds).__name__}: {len(images)} of {size} items"
    return show_images(images, labels if has_labels else None, class_names=names, ncols=ncols, mean=mean,
                       std=std, title=title)


# ----------------------------------------------------------------------------------------------------------------
# filters and feature maps
# ----------------------------------------------------------------------------------------------------------------
def _first_rgb_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            return name, module
    raise ValueError(
        f"{type(model).__name__} has no nn.Conv2d with 3 input channels; pass the weight tensor "
        "(out, 3, kh, kw) instead"
    )


def plot_filters(model_or_weight: nn.Module | torch.Tensor, ncols: int = 8, max_filters: int = 32) -> Figure:
    """The first convolution's filters as RGB tiles (each filter min–max normalised on its own).

    The first ``nn.Conv2d`` with 3 input channels found in ``model.modules()`` is used; a weight tensor
    ``(out, C, kh, kw)`` with C = 1 or 3 may be passed instead.

    Example:
        >>> fig = plot_filters(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
        >>> fig.axes[0].get_title().startswith("First-layer filters")
        True
    """
    if isinstance(model_or_weight, nn.Module):
        name, conv = _first_rgb_conv(model_or_weight)
        weight = conv.weight
    elif isinstance(model_or_weight, torch.Tensor):
        name, weight = "weight", model_or_weight
    else:
        raise TypeError(f"expected an nn.Module or a weight tensor, got {type(model_or_weight).__name__}")
    w = weight.detach().float().cpu()
    if w.ndim != 4 or w.shape[1] not in (1, 3):
        raise ValueError(f"expected a conv weight (out, 1 or 3, kh, kw), got shape {tuple(w.shape)}")
    total = w.shape[0]
    w = w[:max_filters]
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    w = (w - lo) / (hi - lo).clamp_min(1e-12)
    n, c, kh, kw = w.shape
    rows, cols = _grid(n, ncols)
    pad = 1
    mosaic = np.ones((rows * (kh + pad) + pad, cols * (kw + pad) + pad, 3), dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, cols)
        tile = w[i].permute(1, 2, 0).numpy()
        y, x = pad + r * (kh + pad), pad + col * (kw + pad)
        mosaic[y : y + kh, x : x + kw] = tile if c == 3 else np.repeat(tile, 3, axis=2)
    fig, ax = plt.subplots(figsize=(min(1.0 * cols, 10) + 0.5, min(1.0 * rows, 8) + 0.8),
                           layout="constrained")
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_title(f"First-layer filters: {name} ({n} of {total}, {kh}×{kw}, normalised per filter)")
    ax.set_xticks([(kw + pad) * j + pad + (kw - 1) / 2 for j in range(cols)], [str(j) for j in range(cols)])
    ax.set_yticks([(kh + pad) * j + pad + (kh - 1) / 2 for j in range(rows)],
                  [str(j * cols) for j in range(rows)])
    ax.set_xlabel("filter index (column)")
    ax.set_ylabel("filter index (row start)")
    ax.tick_params(length=0, labelsize=7)
    return fig


def plot_feature_maps(
    model: nn.Module,
    image: torch.Tensor,
    layers: Sequence[str],
    n_channels: int = 8,
    cmap: str = "viridis",
) -> Figure:
    """A row per depth: the ``n_channels`` channels with the highest mean activation for ``image``.

    Row labels give the layer name, its spatial size and channel count — watch the maps shrink and the
    channels multiply from edges to parts.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2))
        >>> fig = plot_feature_maps(net, torch.rand(3, 16, 16), ["1", "2"], n_channels=4)
        >>> fig.axes[4].get_ylabel()
        '2\\n6×6, 8 ch'
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    acts = feature_maps(model, image, names)
    fig, axes = plt.subplots(len(names), n_channels, figsize=(1.4 * n_channels + 1.2, 1.5 * len(names) + 0.6),
                             squeeze=False, layout="constrained")
    for row, name in enumerate(names):
        act = acts[name][0]
        if act.ndim != 3:
            raise ValueError(
                f"layer {name!r} outputs shape {tuple(acts[name].shape)}, not a (N, C, H, W) feature map; "
                "pick a convolutional layer"
            )
        c, h, w = act.shape
        top = torch.argsort(act.mean(dim=(1, 2)), descending=True)[:n_channels].tolist()
        for col in range(n_channels):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(top):
                ax.imshow(act[top[col]].numpy(), cmap=cmap)
                ax.set_title(f"ch {top[col]}", fontsize=8)
            else:
                ax.set_frame_on(False)
        axes[row, 0].set_ylabel(f"{name}\n{h}×{w}, {c} ch", fontsize=9)
    fig.suptitle(f"Feature maps by depth — top {n_channels} channels by mean activation")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Grad-CAM
# ----------------------------------------------------------------------------------------------------------------
def show_cam(
    image: ImageLike,
    cam: np.ndarray,
    alpha: float = 0.5,
    title: str | None = None,
    *,
    mean: Stats = IMAGENET_MEAN,
    std: Stats = IMAGENET_STD,
    cmap: str = "jet",
) -> Figure:
    """The image beside the image overlaid with a Grad-CAM heat map.

    Example:
        >>> fig = show_cam(torch.rand(3, 16, 16), np.random.rand(16, 16), mean=None)
        >>> fig.axes[1].get_title()
        'Grad-CAM overlay'
    """
    arr = _to_display(image, mean, std)
    cam = np.asarray(cam, dtype=np.float32)
    if cam.shape != arr.shape[:2]:
        raise ValueError(f"cam has shape {cam.shape} but the image is {arr.shape[:2]}; compute it with grad_cam")
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.6), layout="constrained")
    _imshow(axes[0], arr)
    axes[0].set_title("input")
    _imshow(axes[1], arr)
    im = axes[1].imshow(cam, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0)
    axes[1].set_title("Grad-CAM overlay")
    for ax in axes:
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04, label="class evidence")
    fig.suptitle(title or "Where does the evidence for the class come from?")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# embeddings
# ----------------------------------------------------------------------------------------------------------------
def _tsne(seed: int, n: int) -> Any:
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, init="pca", random_state=seed, perplexity=float(min(30.0, max(2.0, (n - 1) / 3))))


def _pca(seed: int, n: int) -> Any:
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed)


EMBEDDING_METHODS: dict[str, tuple[str, Callable[[int, int], Any]]] = {
    "tsne": ("t-SNE", _tsne),
    "pca": ("PCA", _pca),
}
"""method name → (display name, factory(seed, n_points) of a scikit-learn estimator with ``fit_transform``)."""

_MARKERS = "o^sDvP*Xh<>"


def plot_embedding(
    features: Any,
    labels: Any,
    domains: Any = None,
    method: str = "tsne",
    class_names: Sequence[str] | None = None,
    domain_names: Sequence[str] | None = None,
    seed: int = 0,
    max_points: int = 2000,
    title: str | None = None,
) -> Figure:
    """2-D map of features (t-SNE or PCA from scikit-learn): colour = class, marker = domain.

    ``features`` (N, D) (extra dims are flattened); at most ``max_points`` points are drawn (a seeded random
    subset). Methods come from :data:`EMBEDDING_METHODS`.

    Example:
        >>> fig = plot_embedding(np.random.rand(40, 5), np.arange(40) % 2, domains=np.arange(40) // 20,
        ...                      method="pca")
        >>> fig.axes[0].get_xlabel()
        'PCA 1'
    """
    if method not in EMBEDDING_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(EMBEDDING_METHODS)}")
    feats = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    feats = feats.reshape(len(feats), -1).astype(np.float32)
    y = np.asarray(_to_list(labels))
    d = np.zeros(len(feats), dtype=int) if domains is None else np.asarray(_to_list(domains))
    if not len(feats) == len(y) == len(d):
        raise ValueError(f"got {len(feats)} feature rows, {len(y)} labels and {len(d)} domains: they must match")
    if len(feats) < 3:
        raise ValueError("need at least 3 points to draw an embedding")
    rng = np.random.default_rng(seed)
    if len(feats) > max_points:
        keep = np.sort(rng.choice(len(feats), size=max_points, replace=False))
        feats, y, d = feats[keep], y[keep], d[keep]
    display_name, factory = EMBEDDING_METHODS[method]
    xy = factory(seed, len(feats)).fit_transform(feats)
    classes, domain_ids = np.unique(y), np.unique(d)
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(6.5, 5.5), layout="constrained")
    for ci, cls in enumerate(classes):
        for di, dom in enumerate(domain_ids):
            mask = (y == cls) & (d == dom)
            if mask.any():
                ax.scatter(xy[mask, 0], xy[mask, 1], s=14, alpha=0.75, color=colours(ci % colours.N),
                           marker=_MARKERS[di % len(_MARKERS)], edgecolors="none")
    class_handles = [
        Line2D([], [], linestyle="", marker="o", color=colours(ci % colours.N), label=_name(cls, class_names))
        for ci, cls in enumerate(classes)
    ]
    legend = ax.legend(handles=class_handles, title="class", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       fontsize=8)
    if domains is not None:
        ax.add_artist(legend)
        domain_handles = [
            Line2D([], [], linestyle="", marker=_MARKERS[di % len(_MARKERS)], color="0.3",
                       label=_name(dom, domain_names))
            for di, dom in enumerate(domain_ids)
        ]
        ax.legend(handles=domain_handles, title="domain", loc="lower left", bbox_to_anchor=(1.01, 0.0), fontsize=8)
    ax.set_xlabel(f"{display_name} 1")
    ax.set_ylabel(f"{display_name} 2")
    ax.set_title(title or f"{display_name} of features ({len(feats)} points)")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# training curves
# ----------------------------------------------------------------------------------------------------------------
_NOT_METRICS = {"epoch", "lr", "seconds", "time", "step"}


def _history_frame(history: Any) -> pd.DataFrame:
    """History (``.to_frame()``), DataFrame, dict of lists or list of dicts → a DataFrame with ``epoch``."""
    if isinstance(history, pd.DataFrame):
        frame = history.copy()
    elif hasattr(history, "to_frame"):
        frame = pd.DataFrame(history.to_frame())
    elif isinstance(history, Mapping):
        frame = pd.DataFrame({k: pd.Series(list(v), dtype=float) for k, v in history.items()})
    elif isinstance(history, Sequence) and all(isinstance(row, Mapping) for row in history):
        frame = pd.DataFrame(list(history))
    else:
        raise TypeError(
            f"cannot read a history from a {type(history).__name__}: pass the History returned by fit "
            "(anything with .to_frame()), a DataFrame, a dict of lists or a list of dicts"
        )
    frame = frame.reset_index(drop=True)
    if "epoch" not in frame.columns:
        frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    return frame


def _draw_history(fig: Figure, history: Any, metrics: Sequence[str] | None, title: str | None) -> Figure:
    frame = _history_frame(history)
    loss_cols = [c for c in frame.columns if "loss" in str(c).lower()]
    if metrics is None:
        metric_cols = [
            c for c in frame.columns
            if c not in loss_cols and str(c) not in _NOT_METRICS and pd.api.types.is_numeric_dtype(frame[c])
        ]
    else:
        missing = [m for m in metrics if m not in frame.columns]
        if missing:
            raise KeyError(f"metrics {missing} not in the history; its columns are {list(frame.columns)}")
        metric_cols = list(metrics)
    panels = [(name, cols) for name, cols in (("Loss", loss_cols), ("Metrics", metric_cols)) if cols]
    if not panels:
        raise ValueError(f"nothing to plot: no loss or metric columns in {list(frame.columns)}")
    fig.clear()
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, cols) in zip(axes, panels, strict=True):
        for col in cols:
            part = frame[["epoch", col]].dropna()
            ax.plot(part["epoch"].to_numpy(), part[col].to_numpy(dtype=float), marker="o", label=str(col))
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if name == "Loss" else (str(cols[0]) if len(cols) == 1 else "value"))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_history(history: Any, metrics: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """Loss curves (train/val) and metric curves per epoch.

    ``history``: the History from ``tlcourse.train.fit`` (anything with ``.to_frame()``), a DataFrame with
    columns like ``epoch, train_loss, val_loss, val_accuracy, lr, seconds``, or a dict of lists. Columns with
    ``loss`` in their name go left; ``metrics`` (default: the other numeric columns except epoch/lr/seconds) right.

    Example:
        >>> fig = plot_history({"train_loss": [1.0, 0.6], "val_loss": [1.1, 0.8], "val_accuracy": [0.5, 0.7]})
        >>> [ax.get_title() for ax in fig.axes]
        ['Loss', 'Metrics']
    """
    return _draw_history(plt.figure(figsize=(10, 3.8)), history, metrics, title)


class LiveCurve:
    """A training curve that redraws in place after each epoch: ``live(history)``.

    In a notebook the first call shows the figure with ``display(..., display_id=True)`` and later calls
    ``.update(...)`` that same output (a PNG snapshot, so it works with every matplotlib backend); outside a
    notebook nothing is displayed and the figure is just kept in ``.figure``. The figure is a plain
    ``matplotlib.figure.Figure`` (not pyplot's), so it is not drawn a second time at the end of the cell.

    Example:
        >>> live = LiveCurve()
        >>> for epoch in range(1, 4):
        ...     fig = live({"train_loss": [1.0 / e for e in range(1, epoch + 1)]})
        >>> len(fig.axes[0].lines[0].get_xdata())
        3
    """

    def __init__(self, metrics: Sequence[str] | None = None, title: str | None = "Training (live)",
                 figsize: tuple[float, float] = (10, 3.8), dpi: int = 80) -> None:
        self.metrics = metrics
        self.title = title
        self.dpi = dpi
        self.figure = Figure(figsize=figsize)
        self._handle: Any = None

    @staticmethod
    def _in_notebook() -> bool:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython comes with ipywidgets
            return False
        shell = get_ipython()
        return shell is not None and getattr(shell, "kernel", None) is not None

    def __call__(self, history: Any) -> Figure:
        """Redraw from ``history`` (same types as :func:`plot_history`) and return the figure.

        Example:
            >>> LiveCurve()({"train_loss": [0.9]}).axes[0].get_title()
            'Loss'
        """
        _draw_history(self.figure, history, self.metrics, self.title)
        if self._in_notebook():
            from IPython.display import Image as PNG
            from IPython.display import display

            shot = PNG(data=_figure_png(self.figure, dpi=self.dpi))  # any backend can show a PNG
            if self._handle is None:
                self._handle = display(shot, display_id=True)
            else:
                self._handle.update(shot)
        return self.figure


# ----------------------------------------------------------------------------------------------------------------
# evaluation plots
# ----------------------------------------------------------------------------------------------------------------
def plot_confusion_matrix(
    y_true: Any,
    y_pred: Any,
    class_names: Sequence[str] | None = None,
    normalize: bool = True,
    title: str | None = None,
) -> Figure:
    """Confusion matrix (scikit-learn), annotated; ``normalize=True`` divides each row by its count (recall).

    Example:
        >>> fig = plot_confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], class_names=["ant", "bee"])
        >>> fig.axes[0].get_xlabel()
        'predicted label'
    """
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    t, p = np.asarray(_to_list(y_true)), np.asarray(_to_list(y_pred))
    if len(t) != len(p):
        raise ValueError(f"got {len(t)} true labels but {len(p)} predictions")
    labels = list(range(len(class_names))) if class_names is not None else sorted(set(t) | set(p))
    cm = confusion_matrix(t, p, labels=labels, normalize="true" if normalize else None)
    names = list(class_names) if class_names is not None else [str(lab) for lab in labels]
    size = max(4.0, 0.6 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size), layout="constrained")
    ConfusionMatrixDisplay(cm, display_labels=names).plot(
        ax=ax, cmap="Blues", colorbar=True, values_format=".2f" if normalize else "d",
        im_kw={"vmin": 0.0, "vmax": 1.0} if normalize else None,
    )
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title or ("Confusion matrix (rows normalised = recall per class)" if normalize
                           else "Confusion matrix (counts)"))
    if len(labels) > 6:
        ax.tick_params(axis="x", labelrotation=45)
    return fig


def plot_roc(
    y_true: Any,
    scores: Any,
    label: str | None = None,
    ax: Axes | None = None,
    mark_threshold: float | None = None,
) -> Figure:
    """ROC curve with its AUC in the legend; pass ``ax`` to draw several curves on one plot.

    ``scores``: the positive class's score (N,) or probabilities (N, 2). ``mark_threshold`` marks the operating
    point (FPR, TPR) of predicting positive when ``score >= threshold``.

    Example:
        >>> fig = plot_roc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], label="model", mark_threshold=0.5)
        >>> fig.axes[0].get_legend().get_texts()[0].get_text()
        'model (AUC = 0.75)'
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    t = np.asarray(_to_list(y_true)).astype(int)
    s = scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores, dtype=float)
    if s.ndim == 2:
        if s.shape[1] != 2:
            raise ValueError(f"plot_roc is for binary problems; pass the positive class's score, not {s.shape}")
        s = s[:, 1]
    if len(s) != len(t):
        raise ValueError(f"got {len(t)} labels but {len(s)} scores")
    if set(np.unique(t)) != {0, 1}:
        raise ValueError(f"y_true must hold both classes 0 and 1, got {sorted(set(np.unique(t)))}")
    fpr, tpr, _ = roc_curve(t, s)
    auc = roc_auc_score(t, s)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    fig = ax.figure
    if not any(line.get_gid() == "chance" for line in ax.lines):
        ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", label="chance (AUC = 0.50)", gid="chance")
    (line,) = ax.plot(fpr, tpr, label=f"{label or 'ROC'} (AUC = {auc:.2f})")
    if mark_threshold is not None:
        pred = s >= mark_threshold
        op_tpr, op_fpr = pred[t == 1].mean(), pred[t == 0].mean()
        ax.plot([op_fpr], [op_tpr], marker="o", markersize=8, color=line.get_color(), linestyle="",
                label=f"threshold {mark_threshold:g}: sens {op_tpr:.2f}, spec {1 - op_fpr:.2f}")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false positive rate (1 − specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("ROC curve")
    ax.set_aspect("equal")
    # the chance line sorts first in the legend only when it was drawn first; keep the model curves on top
    handles, texts = ax.get_legend_handles_labels()
    order = [i for i, h in enumerate(handles) if h.get_gid() != "chance"] + \
            [i for i, h in enumerate(handles) if h.get_gid() == "chance"]
    ax.legend([handles[i] for i in order], [texts[i] for i in order], loc="lower right", fontsize=8)
    return fig


def _learning_curve_frame(results: Any) -> pd.DataFrame:
    if isinstance(results, pd.DataFrame):
        missing = {"method", "n", "accuracy"} - set(results.columns)
        if missing:
            raise KeyError(f"the results frame needs columns method, n, accuracy (optional std); missing {missing}")
        frame = results.copy()
    elif isinstance(results, Mapping):
        rows = []
        for method, points in results.items():
            if not isinstance(points, Mapping):
                raise TypeError(f"results[{method!r}] must map n → accuracy, got {type(points).__name__}")
            for n, acc in points.items():
                values = np.atleast_1d(np.asarray(acc, dtype=float))
                rows += [{"method": str(method), "n": n, "accuracy": v} for v in values]
        frame = pd.DataFrame(rows, columns=["method", "n", "accuracy"])
    else:
        raise TypeError("results must be a mapping method → {n: accuracy} or a DataFrame (method, n, accuracy)")
    if "std" not in frame.columns:  # repeated runs (seeds) → mean ± std
        frame = frame.groupby(["method", "n"], sort=False, as_index=False)["accuracy"].agg(["mean", "std"])
        frame = frame.rename(columns={"mean": "accuracy"})
    return frame


def plot_learning_curve(
    results: Any,
    *,
    x_label: str = "labelled images per class",
    y_label: str = "accuracy",
    chance: float | None = None,
    title: str | None = None,
) -> Figure:
    """Accuracy vs number of labelled samples for several methods, on a log x axis.

    ``results``: ``{method: {n: accuracy}}`` (an accuracy may be a list of runs → mean ± std band), or a
    DataFrame with columns ``method, n, accuracy`` and optionally ``std`` (an error band).

    Example:
        >>> fig = plot_learning_curve({"probe": {2: 0.6, 8: 0.8}, "scratch": {2: 0.5, 8: [0.55, 0.6]}}, chance=0.5)
        >>> fig.axes[0].get_xscale()
        'log'
    """
    frame = _learning_curve_frame(results)
    if frame.empty:
        raise ValueError("results are empty")
    fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
    for method, part in frame.groupby("method", sort=False):
        part = part.sort_values("n")
        n = part["n"].to_numpy(dtype=float)
        acc = part["accuracy"].to_numpy(dtype=float)
        (line,) = ax.plot(n, acc, marker="o", label=str(method))
        std = part["std"].to_numpy(dtype=float)
        if np.isfinite(std).any():
            std = np.nan_to_num(std)
            ax.fill_between(n, acc - std, acc + std, color=line.get_color(), alpha=0.2)
    if chance is not None:
        ax.axhline(chance, linestyle="--", color="0.5", label=f"chance ({chance:g})")
    ax.set_xscale("log")
    ticks = np.unique(frame["n"].to_numpy(dtype=float))
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title or f"{y_label.capitalize()} vs {x_label}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_lr_find(lrs: Sequence[float], losses: Sequence[float], suggestion: float | None = None) -> Figure:
    """Learning-rate range test: loss vs learning rate (log x), with the suggested rate marked.

    The y range is cut at 1.5× the first loss so that the final blow-up does not flatten the curve.

    Example:
        >>> fig = plot_lr_find([1e-5, 1e-4, 1e-3, 1e-2], [2.3, 2.1, 1.5, 9.0], suggestion=1e-3)
        >>> fig.axes[0].get_xscale()
        'log'
    """
    x, y = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"got {len(x)} learning rates and {len(y)} losses: need the same, non-zero number")
    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    ax.plot(x, y, label="loss")
    finite = y[np.isfinite(y)]
    if finite.size:
        low, high = finite.min(), finite.max()
        if finite[0] > 0:
            high = min(high, 1.5 * finite[0])
        margin = 0.05 * max(high - low, 1e-8)
        ax.set_ylim(low - margin, high + margin)
    if suggestion is not None:
        ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggestion: {suggestion:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title("Learning-rate range test")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_timeline(events: Sequence[tuple[int, str]], title: str | None = None, width: float = 11.0) -> Figure:
    """Events on a horizontal time axis, labels alternating above and below (the history page's figure).

    Example:
        >>> fig = plot_timeline([(1976, "first study"), (2012, "AlexNet"), (2019, "BERT")])
        >>> len(fig.axes)
        1
    """
    if not events:
        raise ValueError("plot_timeline needs at least one (year, label) event")
    years = [int(y) for y, _ in events]
    fig, ax = plt.subplots(figsize=(width, 3.6), layout="constrained")
    ax.axhline(0, color="0.5", lw=1)
    for i, (year, label) in enumerate(sorted(events)):
        up = 1 if i % 2 == 0 else -1
        height = up * (1.0 + 0.6 * ((i // 2) % 2))
        ax.plot([year, year], [0, height], color="0.6", lw=0.8)
        ax.plot(year, 0, "o", color="C0")
        ax.annotate(f"{year}\n{label}", (year, height), ha="center", va="bottom" if up > 0 else "top", fontsize=8)
    span = max(years) - min(years) or 1
    ax.set_xlim(min(years) - 0.06 * span, max(years) + 0.06 * span)
    ax.set_ylim(-2.6, 2.6)
    ax.set_yticks([])
    ax.spines[["left", "right", "top"]].set_visible(False)
    if title:
        ax.set_title(title)
    return fig


def plot_bars(
    values: Mapping[str, float],
    title: str,
    ylabel: str,
    *,
    xlabel: str = "method",
    fmt: str = "{:.3g}",
) -> Figure:
    """A labelled bar chart (e.g. accuracy per fine-tuning strategy), values written on the bars.

    Example:
        >>> fig = plot_bars({"frozen": 0.81, "top-2": 0.88, "full": 0.9}, "Strategies", "val accuracy")
        >>> fig.axes[0].get_ylabel()
        'val accuracy'
    """
    if not values:
        raise ValueError("values is empty: pass a mapping name → number")
    names = [str(k) for k in values]
    heights = [float(v) for v in values.values()]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 * len(names) + 1.5), 4.0), layout="constrained")
    bars = ax.bar(names, heights, color=plt.get_cmap("tab10")(np.arange(len(names)) % 10))
    ax.bar_label(bars, labels=[fmt.format(h) for h in heights], fontsize=8, padding=2)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    ax.margins(y=0.12)
    if max(len(n) for n in names) > 10:
        ax.tick_params(axis="x", labelrotation=30)
    return fig


def _mask_rows(true_masks: Any, predicted_masks: Any) -> dict[str, np.ndarray | None]:
    """Row title → predicted masks (None: the row shows the true masks only)."""
    if predicted_masks is None:
        return {"true mask": None}
    if isinstance(predicted_masks, Mapping):
        return {str(k): np.asarray(v, bool) for k, v in predicted_masks.items()}
    return {"prediction": np.asarray(predicted_masks, bool)}


def _iou(pred: np.ndarray, true: np.ndarray) -> float:
    union = np.logical_or(pred, true).sum()
    return float(np.logical_and(pred, true).sum() / union) if union else 1.0


def show_masks(
    images: Any,
    true_masks: Any,
    predicted_masks: Any = None,
    *,
    n: int = 6,
    mean: Stats = IMAGENET_MEAN,
    std: Stats = IMAGENET_STD,
    title: str | None = None,
) -> Figure:
    """Segmentation overlays: each image with its true mask outlined (green) and a predicted mask filled (red).

    ``images``: as :func:`show_images` (``mean=None`` for raw [0, 1] tensors; ``uint8`` arrays ``N×H×W×3`` are
    raw anyway). ``true_masks`` / ``predicted_masks``: boolean ``N×H×W``. ``predicted_masks`` may be a mapping
    ``{run name: masks}``: one row per run, same images, each panel titled with that image's IoU.
    Only the first ``n`` images are shown.

    Example:
        >>> m = np.zeros((2, 8, 8), bool); m[:, 2:6, 2:6] = True
        >>> fig = show_masks(np.zeros((2, 8, 8, 3), np.uint8), m, {"a": m, "b": ~m})
        >>> [ax.get_title().split()[-1] for ax in fig.axes[:3]]  # titles: run name, then the image's IoU
        ['1.00', '1.00', '0.00']
    """
    items = _as_image_list(images)[:n]
    truth = np.asarray(true_masks, bool)[: len(items)]
    rows = _mask_rows(truth, predicted_masks)
    if len(truth) != len(items) or any(p is not None and len(p) < len(items) for p in rows.values()):
        raise ValueError(f"got {len(items)} images but {len(truth)} true masks or fewer predicted masks")
    fig, axes = plt.subplots(len(rows), len(items), figsize=(1.8 * len(items), 2.0 * len(rows) + 0.4),
                             squeeze=False, layout="constrained")
    for r, (name, pred) in enumerate(rows.items()):
        for c, image in enumerate(items):
            ax = axes[r, c]
            _imshow(ax, _to_display(image, mean, std))
            if pred is not None:
                ax.imshow(np.ma.masked_where(~pred[c], pred[c]), cmap="autumn", alpha=0.55, vmin=0, vmax=1)
                ax.set_title(f"{name}\nIoU {_iou(pred[c], truth[c]):.2f}", fontsize=8)
            else:
                ax.set_title(f"{name} #{c}", fontsize=8)
            ax.contour(truth[c].astype(float), levels=[0.5], colors="lime", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title or "Masks: true outline in green, prediction in red")
    fig.supxlabel("test images", fontsize=9)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# explorers (ipywidgets)
# ----------------------------------------------------------------------------------------------------------------
def _image_png(image: Any, mean: Stats, std: Stats, min_side: int = 192) -> bytes:
    arr = (_to_display(image, mean, std) * 255).round().astype(np.uint8)
    pil = Image.fromarray(arr)
    side = max(pil.size)
    if side < min_side:
        scale = math.ceil(min_side / side)
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buf = BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def _feature_map_png(image: np.ndarray, title: str, fmap: np.ndarray, map_title: str) -> bytes:
    """The input image beside one channel's feature map (with a colour bar), as PNG bytes."""
    fig = Figure(figsize=(7.2, 3.2))
    fig.subplots_adjust(left=0.02, right=0.92, bottom=0.14, top=0.88, wspace=0.25)
    ax_in, ax_map = fig.subplots(1, 2)
    _imshow(ax_in, image)
    ax_in.set_title(title)
    ax_in.set_axis_off()
    im = ax_map.imshow(fmap, cmap="viridis")
    ax_map.set_title(map_title)
    ax_map.set_xlabel("x")
    ax_map.set_ylabel("y")
    fig.colorbar(im, ax=ax_map, fraction=0.046, pad=0.04)
    return _figure_png(fig)


def feature_map_explorer(
    model: nn.Module,
    images: Any,
    layers: Sequence[str],
    *,
    image_names: Sequence[str] | None = None,
    mean: Stats = IMAGENET_MEAN,
    std: Stats = IMAGENET_STD,
) -> ipywidgets.VBox:
    """Widget: image dropdown × layer dropdown × channel slider → that channel's feature map.

    Activations are computed lazily with :func:`feature_maps` and cached per (image, layer), so moving the
    slider costs no forward pass. Children: ``HBox([image dropdown, layer dropdown, channel slider])``,
    an ``HTML`` caption, an ``Image`` with the rendered map.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> w = feature_map_explorer(net, torch.rand(2, 3, 16, 16), ["0", "1"], mean=None)
        >>> w.children[0].children[2].max
        3
    """
    import ipywidgets as widgets

    items = _as_image_list(images)
    names = [layers] if isinstance(layers, str) else list(layers)
    if not items or not names:
        raise ValueError("need at least one image and one layer name")
    for name in names:
        resolve_module(model, name)
    labels = list(image_names) if image_names is not None else [f"image {i}" for i in range(len(items))]
    if len(labels) != len(items):
        raise ValueError(f"got {len(items)} images but {len(labels)} image_names")
    cache: dict[tuple[int, str], torch.Tensor] = {}

    def activation(i: int, layer: str) -> torch.Tensor:
        if (i, layer) not in cache:
            act = feature_maps(model, items[i], [layer])[layer][0]
            if act.ndim != 3:
                raise ValueError(f"layer {layer!r} outputs {tuple(act.shape)}, not a (C, H, W) feature map")
            cache[(i, layer)] = act
        return cache[(i, layer)]

    image_dd = widgets.Dropdown(options=list(zip(labels, range(len(items)), strict=True)), value=0, description="image")
    layer_dd = widgets.Dropdown(options=names, value=names[0], description="layer")
    slider = widgets.IntSlider(min=0, max=0, value=0, description="channel", continuous_update=False)
    caption = widgets.HTML()
    picture = widgets.Image(format="png")
    busy = {"now": False}

    def render(_: Any = None) -> None:
        if busy["now"]:
            return
        busy["now"] = True
        try:
            i, layer = image_dd.value, layer_dd.value
            act = activation(i, layer)
            slider.max = act.shape[0] - 1  # may clamp slider.value; the guard avoids a second render
            ch = slider.value
            fmap = act[ch].numpy()
            picture.value = _feature_map_png(_to_display(items[i], mean, std), labels[i], fmap, f"{layer} · channel {ch}")
            c, h, w = act.shape
            caption.value = (f"<b>{layer}</b>: {h}×{w}, {c} channels — channel {ch}: "
                             f"mean {fmap.mean():.3f}, max {fmap.max():.3f}")
        finally:
            busy["now"] = False

    for control in (image_dd, layer_dd, slider):
        control.observe(render, names="value")
    render()
    return widgets.VBox([widgets.HBox([image_dd, layer_dd, slider]), caption, picture])


def _mistakes(n: int, y_true: Any, y_pred: Any, probs: Any, what: str) -> tuple[list, list, list[int], Any]:
    """``(true labels, predictions, indices of the mistakes, each prediction's confidence or None)``, checked."""
    t, p = _to_list(y_true), _to_list(y_pred)
    if not n == len(t) == len(p):
        raise ValueError(f"got {n} {what}s, {len(t)} true labels and {len(p)} predictions: they must match")
    conf = None
    if probs is not None:
        arr = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs, dtype=float)
        if len(arr) != n:
            raise ValueError(f"got {n} {what}s but {len(arr)} rows of probs")
        conf = arr[np.arange(n), np.asarray(p, dtype=int)] if arr.ndim == 2 else arr
    return t, p, [i for i in range(n) if t[i] != p[i]], conf


def _mistake_caption(what: str, idx: int, t: list, p: list, conf: Any, class_names: Sequence[str] | None) -> str:
    text = (f"{what} #{idx}: true <b>{html.escape(_name(t[idx], class_names))}</b>, predicted "
            f"<b style='color:#c0392b'>{html.escape(_name(p[idx], class_names))}</b>")
    return text + (f" (confidence {float(conf[idx]):.2f})" if conf is not None else "")


def misclassified_gallery(
    images: Any,
    y_true: Any,
    y_pred: Any,
    *,
    class_names: Sequence[str] | None = None,
    probs: Any = None,
    mean: Stats = IMAGENET_MEAN,
    std: Stats = IMAGENET_STD,
) -> ipywidgets.VBox:
    """Widget paging through the wrong predictions: Prev/Next buttons, the image, a true/pred/confidence caption.

    The same arguments as :func:`text_error_pager`: ``(items, y_true, y_pred, *, class_names, probs)``.
    ``probs``: (N, K) class probabilities (confidence = probability of the predicted class) or (N,) confidences.
    Children: ``HBox([Prev, Next])``, an ``HTML`` caption, an ``Image``.

    Example:
        >>> w = misclassified_gallery(torch.rand(4, 3, 8, 8), [0, 1, 1, 0], [0, 0, 1, 1], mean=None)
        >>> "image #1" in w.children[1].value
        True
    """
    import ipywidgets as widgets

    items = _as_image_list(images)
    t, p, wrong, conf = _mistakes(len(items), y_true, y_pred, probs, "image")
    picture = widgets.Image(format="png")

    def draw(idx: int | None) -> None:
        if idx is not None:
            picture.value = _image_png(items[idx], mean, std)

    return mistake_pager(wrong, lambda i: _mistake_caption("image", i, t, p, conf, class_names), draw, picture,
                         f"No misclassified images among {len(items)}.", "wrong prediction")


def text_error_pager(
    texts: Sequence[str],
    y_true: Any,
    y_pred: Any,
    *,
    class_names: Sequence[str] | None = None,
    probs: Any = None,
    most_confident_first: bool = True,
    max_chars: int = 1200,
) -> ipywidgets.VBox:
    """Widget paging through the misclassified texts: Prev/Next buttons, a caption, the text (escaped).

    The same arguments as :func:`misclassified_gallery`. With ``probs`` (N, K) and ``most_confident_first`` the
    most confident mistakes come first — the most instructive ones. Children: ``HBox([Prev, Next])``, an
    ``HTML`` caption, an ``HTML`` text. Long texts are cut at ``max_chars``.

    Example:
        >>> w = text_error_pager(["good", "bad", "fine"], [1, 0, 1], [1, 1, 0])
        >>> "1/2" in w.children[1].value
        True
    """
    import ipywidgets as widgets

    items = [str(x) for x in texts]
    t, p, wrong, conf = _mistakes(len(items), y_true, y_pred, probs, "text")
    if conf is not None and most_confident_first:
        wrong.sort(key=lambda i: -conf[i])
    body = widgets.HTML()

    def draw(idx: int | None) -> None:
        shown = "" if idx is None else items[idx] if len(items[idx]) <= max_chars else items[idx][:max_chars] + " …"
        body.value = f"<blockquote style='max-width:60em'>{html.escape(shown)}</blockquote>" if shown else ""

    return mistake_pager(wrong, lambda i: _mistake_caption("text", i, t, p, conf, class_names), draw, body,
                         f"No misclassified texts among {len(items)}.", "mistake")


def mistake_pager(
    wrong: Sequence[int],
    caption_for: Callable[[int], str],
    draw: Callable[[int | None], None],
    content: Any,
    empty: str,
    what: str,
) -> ipywidgets.VBox:
    """Prev/Next pager over the indices ``wrong``: ``VBox([HBox([Prev, Next]), HTML caption, content])``.

    ``caption_for(idx)`` gives the caption after the "k/n — " counter; ``draw(idx)`` fills ``content``
    (``draw(None)`` when there is nothing to show, with ``empty`` as the caption). The image and text mistake
    pagers (``misclassified_gallery`` here and ``tlcourse.text.text_error_pager``) are built on it.

    Example:
        >>> import ipywidgets as widgets
        >>> out = widgets.HTML()
        >>> pager = mistake_pager([3, 7], lambda i: f"item {i}", lambda i: None, out, "none", "mistake")
        >>> pager.children[1].value
        '1/2 — item 3'
    """
    import ipywidgets as widgets

    prev_btn = widgets.Button(description="◀ Prev", tooltip=f"previous {what}")
    next_btn = widgets.Button(description="Next ▶", tooltip=f"next {what}")
    caption = widgets.HTML()
    state = {"pos": 0}

    def show() -> None:
        if not wrong:
            caption.value = empty
            draw(None)
            prev_btn.disabled = next_btn.disabled = True
            return
        pos = state["pos"]
        caption.value = f"{pos + 1}/{len(wrong)} — " + caption_for(wrong[pos])
        draw(wrong[pos])
        prev_btn.disabled = pos == 0
        next_btn.disabled = pos == len(wrong) - 1

    def step(delta: int) -> Callable[[Any], None]:
        def on_click(_: Any) -> None:
            state["pos"] = min(max(state["pos"] + delta, 0), max(len(wrong) - 1, 0))
            show()

        return on_click

    prev_btn.on_click(step(-1))
    next_btn.on_click(step(+1))
    show()
    return widgets.VBox([widgets.HBox([prev_btn, next_btn]), caption, content])
