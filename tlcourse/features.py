"""Frozen-backbone features, cached on disk; linear and layer-wise probes (ARCHITECTURE.md §2, lesson 02).

``extract_features(model, data)`` runs a frozen model once over a dataset and returns ``(features, labels)`` as
NumPy arrays. ``layer=None`` gives the model's *penultimate* representation — what its classifier head sees —
chosen by the first matching strategy in :data:`PENULTIMATE_STRATEGIES`:

* ``timm``: ``model.forward_head(model.forward_features(x), pre_logits=True)``;
* ``head_input``: the input of ``tlcourse.models.get_head(model)`` (torchvision and Hugging Face classifiers);
* ``last_linear``: the input of the model's last module when that is an ``nn.Linear`` (e.g. an ``nn.Sequential``);
* ``hf_encoder``: a Hugging Face encoder without head: ``last_hidden_state`` averaged over the real tokens.

``layer="blocks.3"`` (any name in ``model.named_modules()``) takes that module's output through a forward hook,
pooled by :data:`POOLS`, the package's one registry (:mod:`tlcourse.pooling`; ``"avg"``: 4-D maps → mean over H×W,
3-D tokens → mean over the batch's real tokens). The forward pass
stops as soon as every hooked layer has fired, so early layers are cheap.

**Cache.** Features are stored as ``.npz`` files in :func:`cache_dir` under a sha256 key of: backbone name,
a digest of *every* tensor of the model's ``state_dict`` (any weight change invalidates), layer, pooling, the
dataset fingerprint, the dataset's transform ``repr``, the loader's sampler/collate, the active profile and the
device/precision. Dataset fingerprints (:func:`dataset_fingerprint`):

* a ``fingerprint`` attribute (every ``tlcourse.data`` loader sets one) is trusted;
* a ``torch.utils.data.Subset`` is its parent's fingerprint plus a digest of its indices;
* a ``TensorDataset`` (data held in ``.tensors``) is digested exactly — every byte, cheap;
* any other dataset is **not cached** (a one-time warning says so): hashing a sample of items is not safe, and
  decoding every image just to hash it costs about as much as extracting.

``CACHE_STATS`` counts hits and misses (one per layer file). Files are written atomically (temp + rename).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import TensorDataset
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    >>> ds = TensorDataset(torch.randn(6, 3, 8, 8), torch.tensor([0, 1] * 3))
    >>> X, y = extract_features(net, ds, cache=False, progress=False, device="cpu")
    >>> X.shape, X.dtype, y.tolist()
    ((6, 4), dtype('float32'), [0, 1, 0, 1, 0, 1])
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from tlcourse import cache as disk_cache
from tlcourse._plumbing import as_loader, call_model, channels_last, first_tensor, labelled_batch
from tlcourse.config import profile, profile_name
from tlcourse.device import autocast, get_device
from tlcourse.pooling import POOLINGS as POOLS
from tlcourse.pooling import get_pooling, mean_pool
from tlcourse.pooling import pool as pooled_by

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from sklearn.pipeline import Pipeline

__all__ = [
    "CACHE_STATS",
    "PENULTIMATE",
    "PENULTIMATE_STRATEGIES",
    "POOLS",
    "ProbeResult",
    "Timer",
    "cache_dir",
    "clear_cache",
    "dataset_fingerprint",
    "weights_fingerprint",
    "penultimate_strategy",
    "extract_features",
    "extract_layers",
    "linear_probe",
    "layerwise_probe",
    "time_it",
]

PENULTIMATE = "penultimate"  # the layer name that means "what the classifier head sees" (same as layer=None)
CACHE_FORMAT = 2  # bump when the file layout or the meaning of a key changes (2: token layers pooled by mask)
CACHE_STATS: dict[str, int] = {"hits": 0, "misses": 0}

Data = DataLoader | Dataset
_WARNED: set[str] = set()


# ------------------------------------------------------------------------------------------------- utilities
@dataclass
class Timer:
    """Wall-clock seconds of a ``with time_it() as t:`` block (``t.seconds`` is live inside the block too).

    Example:
        >>> with time_it() as t:
        ...     _ = sum(range(1000))
        >>> t.seconds >= 0
        True
    """

    start: float = 0.0
    stop: float | None = None

    @property
    def seconds(self) -> float:
        """Elapsed seconds (up to now while the block runs)."""
        end = self.stop if self.stop is not None else time.perf_counter()
        return end - self.start

    def __repr__(self) -> str:
        return f"Timer({self.seconds:.2f} s)"


@contextlib.contextmanager
def time_it() -> Iterator[Timer]:
    """Measure the wall-clock time of a block: "time saved, measured" in lesson 02.

    Example:
        >>> with time_it() as t:
        ...     pass
        >>> isinstance(t.seconds, float)
        True
    """
    timer = Timer(start=time.perf_counter())
    try:
        yield timer
    finally:
        timer.stop = time.perf_counter()


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, stacklevel=3)


# ------------------------------------------------------------------------------------------------ the cache
def cache_dir() -> Path:
    """Folder of the feature cache (:func:`tlcourse.cache.cache_dir`): ``TLCOURSE_CACHE_DIR``, else
    ``<data home>/.cache/features``.

    Example:
        >>> isinstance(cache_dir(), Path)
        True
    """
    return disk_cache.cache_dir()


def clear_cache() -> int:
    """Delete every file of the cache — image features and sentence embeddings alike (:func:`tlcourse.cache.clear`);
    returns how many were removed.

    Example:
        >>> clear_cache() >= 0
        True
    """
    return disk_cache.clear()


def _digest_tensor(h: Any, tensor: torch.Tensor) -> None:
    t = tensor.detach()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
        h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 over every tensor (parameters and buffers) of ``model.state_dict()``: any change shows.

    About 50 ms for EfficientNet-Lite0 (4.7 M parameters) on a laptop CPU.

    Example:
        >>> m = nn.Linear(2, 2)
        >>> a = weights_fingerprint(m)
        >>> with torch.no_grad():
        ...     m.weight[0, 0] += 1
        >>> a == weights_fingerprint(m)
        False
    """
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        if isinstance(tensor, torch.Tensor):
            _digest_tensor(h, tensor)
        else:  # pragma: no cover - extra state
            h.update(repr(tensor).encode())
    return h.hexdigest()


def _fp_attribute(ds: Any) -> str | None:
    fp = getattr(ds, "fingerprint", None)
    return None if fp is None else f"attr:{fp}"


def _fp_subset(ds: Any) -> str | None:
    if not isinstance(ds, Subset):
        return None
    parent = dataset_fingerprint(ds.dataset)
    if parent is None:
        return None
    idx = hashlib.sha256(np.asarray(list(ds.indices), dtype=np.int64).tobytes()).hexdigest()
    return f"subset:{parent}|{idx}"


def _fp_tensors(ds: Any) -> str | None:
    tensors = getattr(ds, "tensors", None)
    if not (isinstance(tensors, tuple | list) and tensors and all(isinstance(t, torch.Tensor) for t in tensors)):
        return None
    h = hashlib.sha256()
    for t in tensors:
        _digest_tensor(h, t)
    return f"tensors:{type(ds).__name__}:{h.hexdigest()}"


# Tried in order; the first that returns a string wins. None everywhere → the dataset is not cached.
DATASET_FINGERPRINTERS: dict[str, Callable[[Any], str | None]] = {
    "attribute": _fp_attribute,
    "subset": _fp_subset,
    "tensors": _fp_tensors,
}


def dataset_fingerprint(dataset: Any) -> str | None:
    """A string that changes whenever the dataset's items do, or ``None`` when that cannot be known cheaply.

    See the module docstring for the rules (``fingerprint`` attribute, ``Subset``, ``TensorDataset``).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> dataset_fingerprint(TensorDataset(torch.zeros(2, 3))).startswith("tensors:")
        True
        >>> dataset_fingerprint([1, 2, 3]) is None
        True
    """
    for fingerprinter in DATASET_FINGERPRINTERS.values():
        fp = fingerprinter(dataset)
        if fp is not None:
            return fp
    return None


def _deterministic_repr(obj: Any) -> str | None:
    """``repr(obj)``, or None when it holds a memory address (it would differ in every session)."""
    text = repr(obj)
    return None if " at 0x" in text else text


def _loader_fingerprint(loader: DataLoader) -> tuple[str | None, str]:
    """(fingerprint of what the loader yields or None, reason when None)."""
    ds = loader.dataset
    fp = dataset_fingerprint(ds)
    if fp is None:
        return None, (
            f"{type(ds).__name__} has no `fingerprint` attribute (and is not a TensorDataset or Subset), so its "
            "features cannot be cached safely; set `dataset.fingerprint = '<a string that changes with the data>'`"
        )
    parts = [fp]
    transform = getattr(ds, "transform", None)
    if transform is not None:
        parts.append(f"transform={transform!r}")
    sampler = loader.sampler
    indices = getattr(sampler, "indices", None)
    if indices is not None:
        parts.append("sampler-indices=" + hashlib.sha256(np.asarray(list(indices), np.int64).tobytes()).hexdigest())
    elif type(sampler).__name__ not in ("SequentialSampler", "RandomSampler"):
        return None, f"the DataLoader's sampler {type(sampler).__name__} is not one the cache can describe"
    parts.append(f"drop_last={loader.drop_last}")
    collate = loader.collate_fn
    if collate is not torch.utils.data.default_collate:
        described = getattr(collate, "fingerprint", None) or _deterministic_repr(collate)
        if described is None:
            return None, (
                "the DataLoader has a custom collate_fn without a `fingerprint` attribute (e.g. a tokenizer "
                "call), so its features cannot be cached safely; give the collate_fn a `fingerprint` string"
            )
        parts.append(f"collate={described}")
    return "|".join(parts), ""


def _cache_key(
    model: nn.Module, weights: str, layer: str, pool: str, data_fp: str, device: torch.device, amp: bool
) -> str:
    payload = {
        "format": CACHE_FORMAT,
        "backbone": str(getattr(model, "tlcourse_backbone", type(model).__name__)),
        "weights": weights,
        "layer": layer,
        "pool": pool if layer != PENULTIMATE else f"strategy={penultimate_strategy(model)}",
        "data": data_fp,
        "profile": profile_name(),
        "device": device.type,
        "amp": bool(amp and device.type == "cuda"),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _cache_path(model: nn.Module, layer: str, key: str) -> Path:
    backbone = str(getattr(model, "tlcourse_backbone", type(model).__name__))
    return disk_cache.file_path(f"{backbone}-{layer}", key)


def _cache_load(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    arrays = disk_cache.load(path)
    if arrays is None or not {"features", "labels"} <= set(arrays):
        return None
    return arrays["features"], arrays["labels"]


def _cache_save(path: Path, features: np.ndarray, labels: np.ndarray) -> None:
    disk_cache.save(path, features=features, labels=labels)


# ---------------------------------------------------------------------------------------- running the model
def _pooled(out: Any, pool: str, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """A hooked layer's output as one vector per example (:func:`tlcourse.pooling.pool`); token outputs of a
    Hugging Face batch are pooled over its real tokens when the mask fits them."""
    t = first_tensor(out)
    fits = attention_mask is not None and t.dim() == 3 and tuple(attention_mask.shape) == tuple(t.shape[:2])
    return pooled_by(pool, t, attention_mask if fits else None)


class _StopForward(Exception):
    """Raised by the last hook that was waited for: the rest of the network is not needed."""


def _head_module(model: nn.Module) -> nn.Module | None:
    from tlcourse.models import get_head

    try:
        return get_head(model)
    except (ValueError, AttributeError):
        return None


def _last_linear(model: nn.Module) -> nn.Module | None:
    leaves = [m for m in model.modules() if not list(m.children())]
    return leaves[-1] if leaves and isinstance(leaves[-1], nn.Linear) else None


def _is_hf_encoder(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    return config is not None and hasattr(config, "hidden_size") and hasattr(model, "get_input_embeddings")


@dataclass(frozen=True)
class _Strategy:
    """How to get a model's penultimate features: ``applies(model)`` and ``run(model, x) -> (N, D)``."""

    applies: Callable[[nn.Module], bool]
    run: Callable[[nn.Module, Any], torch.Tensor]


def _run_timm(model: nn.Module, x: Any) -> torch.Tensor:
    return model.forward_head(model.forward_features(x), pre_logits=True)


def _run_hooked_input(find: Callable[[nn.Module], nn.Module | None]) -> Callable[[nn.Module, Any], torch.Tensor]:
    def run(model: nn.Module, x: Any) -> torch.Tensor:
        module = find(model)
        assert module is not None  # guaranteed by applies()
        seen: list[torch.Tensor] = []

        def hook(_m: nn.Module, inputs: tuple[Any, ...]) -> None:
            if not seen:  # the head itself still runs (it is cheap), so hooks on it fire too
                seen.append(first_tensor(inputs))

        handle = module.register_forward_pre_hook(hook)
        try:
            call_model(model, x)
        finally:
            handle.remove()
        if not seen:
            raise RuntimeError(f"the head {type(module).__name__} was not called in the model's forward pass")
        return seen[0].flatten(1)

    return run


def _run_hf_encoder(model: nn.Module, x: Any) -> torch.Tensor:
    hidden = first_tensor(call_model(model, x))
    return mean_pool(hidden, x.get("attention_mask") if isinstance(x, Mapping) else None)


# Tried in order; the first whose ``applies`` is true gives ``layer=None`` features.
PENULTIMATE_STRATEGIES: dict[str, _Strategy] = {
    "timm": _Strategy(
        applies=lambda m: hasattr(m, "forward_features") and hasattr(m, "forward_head"), run=_run_timm
    ),
    "head_input": _Strategy(applies=lambda m: _head_module(m) is not None, run=_run_hooked_input(_head_module)),
    "last_linear": _Strategy(applies=lambda m: _last_linear(m) is not None, run=_run_hooked_input(_last_linear)),
    "hf_encoder": _Strategy(applies=_is_hf_encoder, run=_run_hf_encoder),
}


def penultimate_strategy(model: nn.Module) -> str:
    """Name of the :data:`PENULTIMATE_STRATEGIES` entry that gives ``model``'s ``layer=None`` features.

    Example:
        >>> penultimate_strategy(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
        'last_linear'
    """
    for name, strategy in PENULTIMATE_STRATEGIES.items():
        if strategy.applies(model):
            return name
    raise ValueError(
        f"cannot tell where the penultimate features of {type(model).__name__} are: it is not a timm model, has "
        "no classifier head that tlcourse.models.get_head finds, does not end with nn.Linear and is not a "
        f"Hugging Face encoder. Name a layer instead, e.g. layer={_example_layer(model)!r}."
    )


def _example_layer(model: nn.Module) -> str:
    names = [n for n, _ in model.named_modules() if n]
    return names[-1] if names else "<module name>"


def _check_layers(model: nn.Module, layers: Sequence[str | None]) -> list[str]:
    if isinstance(layers, str):
        raise TypeError(f"layers must be a list of names, got the string {layers!r}; write [{layers!r}]")
    names = dict(model.named_modules())
    out: list[str] = []
    for layer in layers:
        key = PENULTIMATE if layer is None else layer
        if key != PENULTIMATE and key not in names:
            close = [n for n in names if n and (key in n or n in key)][:8]
            hint = f" Close matches: {close}." if close else ""
            raise ValueError(
                f"{type(model).__name__} has no module named {key!r}.{hint} See "
                "[n for n, _ in model.named_modules()] for every name (e.g. 'blocks.3' in EfficientNet)."
            )
        if key in out:
            raise ValueError(f"layer {key!r} is listed twice")
        out.append(key)
    if not out:
        raise ValueError("give at least one layer")
    return out


def _run_pass(
    model: nn.Module, loader: DataLoader, layers: list[str], pool: str, device: torch.device, amp: bool, progress: bool
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One pass over ``loader``, collecting every layer in ``layers`` (hooks removed in ``finally``)."""
    modules = dict(model.named_modules())
    hooked = [name for name in layers if name != PENULTIMATE]
    want_penultimate = PENULTIMATE in layers
    strategy = PENULTIMATE_STRATEGIES[penultimate_strategy(model)] if want_penultimate else None
    current: dict[str, torch.Tensor] = {}
    mask: dict[str, torch.Tensor | None] = {"now": None}  # the batch's attention mask, for token outputs
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    labels: list[np.ndarray] = []

    def make_hook(name: str) -> Callable[..., None]:
        def hook(_m: nn.Module, _inputs: Any, output: Any) -> None:
            if name not in current:  # a module called twice in one forward: keep its first output
                current[name] = _pooled(output, pool, mask["now"]).float()
            if not want_penultimate and len(current) == len(hooked):
                raise _StopForward

        return hook

    flags = {m: m.training for m in model.modules()}
    handles = [modules[name].register_forward_hook(make_hook(name)) for name in hooked]
    try:
        model.eval()
        model.to(device)
        bar = tqdm(loader, desc=f"features ({', '.join(layers)})", disable=not progress, leave=False)
        # NHWC convolutions: ~35 % less CPU time for EfficientNet-Lite0
        with torch.inference_mode(), autocast(device, enabled=amp), channels_last(model, device):
            for batch in bar:
                read = labelled_batch(batch, device, "extract_features")
                x, y = read.inputs, read.targets
                mask["now"] = x.get("attention_mask") if isinstance(x, Mapping) else None
                current.clear()
                try:
                    if strategy is not None:
                        current[PENULTIMATE] = strategy.run(model, x).float()
                    else:
                        read.forward(model)
                except _StopForward:
                    pass
                missing = [n for n in layers if n not in current]
                if missing:
                    raise RuntimeError(f"layers {missing} were not called in the model's forward pass")
                for name in layers:
                    chunks[name].append(current[name].reshape(len(current[name]), -1).cpu().numpy())
                labels.append(np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y).reshape(-1))
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in flags.items():
            module.training = flag
    out = {name: np.concatenate(parts).astype(np.float32, copy=False) for name, parts in chunks.items()}
    return out, np.concatenate(labels).astype(np.int64)


def extract_layers(
    model: nn.Module,
    data: Data,
    layers: Sequence[str | None],
    *,
    batch_size: int | None = None,
    cache: bool = True,
    device: torch.device | str | None = None,
    progress: bool = True,
    pool: str = "avg",
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features of several layers in ONE pass: ``({layer: N×D float32}, labels N int64)``.

    ``None`` (or ``"penultimate"``) in ``layers`` means the model's penultimate features (see
    :func:`extract_features`). Each layer is cached in its own file; only the missing ones are computed.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> ds = TensorDataset(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1]))
        >>> feats, y = extract_layers(net, ds, ["0", None], cache=False, progress=False, device="cpu")
        >>> {k: v.shape for k, v in feats.items()}
        {'0': (4, 4), 'penultimate': (4, 4)}
    """
    get_pooling(pool)  # an unknown name fails before any work
    names = _check_layers(model, layers)
    dev = get_device(device)
    amp = bool(profile().amp and dev.type == "cuda")
    loader = as_loader(data, batch_size, dev)

    paths: dict[str, Path] = {}
    if cache:
        data_fp, reason = _loader_fingerprint(loader)
        if data_fp is None:
            _warn_once(reason, f"feature cache disabled: {reason}")
        else:
            weights = weights_fingerprint(model)
            paths = {n: _cache_path(model, n, _cache_key(model, weights, n, pool, data_fp, dev, amp)) for n in names}

    found: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    for name, path in paths.items():
        hit = _cache_load(path)
        if hit is not None:
            found[name], labels = hit
            CACHE_STATS["hits"] += 1
    todo = [n for n in names if n not in found]
    if todo:
        CACHE_STATS["misses"] += len(todo) if paths else 0
        fresh, labels = _run_pass(model, loader, todo, pool, dev, amp, progress)
        for name in todo:
            if name in paths:
                _cache_save(paths[name], fresh[name], labels)
        found.update(fresh)
    assert labels is not None
    return {n: found[n] for n in names}, labels


def extract_features(
    model: nn.Module,
    data: Data,
    layer: str | None = None,
    *,
    batch_size: int | None = None,
    cache: bool = True,
    device: torch.device | str | None = None,
    progress: bool = True,
    pool: str = "avg",
) -> tuple[np.ndarray, np.ndarray]:
    """Run a frozen ``model`` over ``data`` once: ``(features N×D float32, labels N int64)``, cached on disk.

    * ``layer=None``: penultimate features (:data:`PENULTIMATE_STRATEGIES`); ``layer="blocks.3"``: that module's
      output, pooled by ``pool`` (a key of :data:`POOLS`).
    * ``data``: a Dataset of ``(x, y)`` (batched by ``batch_size`` or the profile's, in order) or a DataLoader.
    * The model runs in eval mode under ``torch.inference_mode()`` (mixed precision on CUDA when the profile
      asks); every module's training flag is restored afterwards. ``cache=False`` skips the disk cache.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> ds = TensorDataset(torch.randn(5, 3, 8, 8), torch.zeros(5, dtype=torch.long))
        >>> extract_features(net, ds, "0", cache=False, progress=False, device="cpu")[0].shape
        (5, 4)
    """
    key = PENULTIMATE if layer is None else layer
    feats, labels = extract_layers(
        model, data, [key], batch_size=batch_size, cache=cache, device=device, progress=progress, pool=pool
    )
    return feats[key], labels


# ----------------------------------------------------------------------------------------------------- probes
@dataclass
class ProbeResult:
    """A fitted linear probe (StandardScaler + LogisticRegression) and how well it did.

    Example:
        >>> X = np.r_[np.zeros((10, 2)), np.ones((10, 2))]; y = np.r_[np.zeros(10), np.ones(10)].astype(int)
        >>> r = linear_probe(X, y, X, y)
        >>> r.test_accuracy, r.n_features
        (1.0, 2)
    """

    pipeline: Pipeline
    train_accuracy: float
    test_accuracy: float
    balanced_accuracy: float
    seconds: float
    n_features: int
    C: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class predictions of the fitted probe.

        Example:
            >>> X = np.r_[np.zeros((4, 1)), np.ones((4, 1))]; y = np.r_[np.zeros(4), np.ones(4)].astype(int)
            >>> linear_probe(X, y, X, y).predict(np.array([[1.0]])).tolist()
            [1]
        """
        return self.pipeline.predict(X)

    def as_linear(self) -> nn.Linear:
        """The probe (scaler + logistic regression) as one ``nn.Linear`` on the raw features, with the same
        decisions: the head to start fine-tuning from (linear probing, then fine-tuning: LP-FT, Kumar et al. 2022).
        Two classes give the logits ``[0, w·x + b]``.

        Example:
            >>> rng = np.random.default_rng(0); X = rng.normal(size=(40, 3)); y = (X[:, 0] > 0).astype(int)
            >>> r = linear_probe(X, y, X, y)
            >>> head = r.as_linear()
            >>> bool((head(torch.from_numpy(X).float()).argmax(1).numpy() == r.predict(X)).all())
            True
        """
        scaler, logistic = self.pipeline[0], self.pipeline[-1]
        w = logistic.coef_ / scaler.scale_
        b = logistic.intercept_ - w @ scaler.mean_
        if w.shape[0] == 1:  # binary: class 1's score against a zero for class 0
            w, b = np.vstack([np.zeros_like(w), w]), np.r_[0.0, b]
        head = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
            head.bias.copy_(torch.as_tensor(b, dtype=torch.float32))
        return head

    def __repr__(self) -> str:
        return (
            f"ProbeResult(test_accuracy={self.test_accuracy:.4f}, train_accuracy={self.train_accuracy:.4f}, "
            f"balanced_accuracy={self.balanced_accuracy:.4f}, C={self.C:g}, n_features={self.n_features}, "
            f"seconds={self.seconds:.2f})"
        )


C_GRID: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)


def _check_xy(X: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2:
        raise ValueError(f"X_{what} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if len(X) != len(y):
        raise ValueError(f"X_{what} has {len(X)} rows but y_{what} has {len(y)} labels")
    return X, y


def linear_probe(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    C: float | str = 1.0,
    max_iter: int = 2000,
) -> ProbeResult:
    """Fit StandardScaler + LogisticRegression on frozen features; score it on the test set (multi-class fine).

    ``C="cv"`` picks C from :data:`C_GRID` by 3-fold stratified cross-validation on the training set.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 3, 60); X = np.eye(3)[y] + 0.1 * rng.normal(size=(60, 3))
        >>> linear_probe(X[:40], y[:40], X[40:], y[40:]).test_accuracy
        1.0
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_train, y_train = _check_xy(X_train, y_train, "train")
    X_test, y_test = _check_xy(X_test, y_test, "test")
    if X_train.shape[1] != X_test.shape[1]:
        raise ValueError(f"train has {X_train.shape[1]} features but test has {X_test.shape[1]}")
    if len(np.unique(y_train)) < 2:
        raise ValueError("y_train holds a single class: a probe needs at least two")
    if not (C == "cv" or (isinstance(C, int | float) and C > 0)):
        raise ValueError(f"C must be a positive number or 'cv', got {C!r}")

    with time_it() as timer:
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0 if C == "cv" else float(C), max_iter=max_iter))
        if C == "cv":
            n_splits = int(min(3, np.bincount(np.unique(y_train, return_inverse=True)[1]).min()))
            if n_splits < 2:
                raise ValueError("C='cv' needs at least 2 training examples of every class")
            search = GridSearchCV(
                pipe,
                {"logisticregression__C": list(C_GRID)},
                cv=StratifiedKFold(n_splits, shuffle=True, random_state=0),
            )
            pipe = search.fit(X_train, y_train).best_estimator_
        else:
            pipe.fit(X_train, y_train)
        pred = pipe.predict(X_test)
        train_acc = float(accuracy_score(y_train, pipe.predict(X_train)))
    return ProbeResult(
        pipeline=pipe,
        train_accuracy=train_acc,
        test_accuracy=float(accuracy_score(y_test, pred)),
        balanced_accuracy=float(balanced_accuracy_score(y_test, pred)),
        seconds=timer.seconds,
        n_features=int(X_train.shape[1]),
        C=float(pipe[-1].C),
    )


_EXTRACT_KEYS = ("batch_size", "cache", "device", "progress", "pool")
_PROBE_KEYS = ("C", "max_iter")


def layerwise_probe(
    model: nn.Module, layers: Sequence[str | None], train: Data, test: Data, **kw: Any
) -> pd.DataFrame:
    """Which depth transfers best: a linear probe on each layer's pooled features.

    Features of all ``layers`` come from one pass over ``train`` and one over ``test`` (cached). Keyword
    arguments go to :func:`extract_layers` (``batch_size``, ``cache``, ``device``, ``progress``, ``pool``) or
    :func:`linear_probe` (``C``, ``max_iter``). Rows follow the network's order (``None`` / ``"penultimate"``
    last); ``depth`` is the row's 0-based rank in that order and ``seconds`` the probe's fitting time. The
    extraction time is in ``df.attrs["extract_seconds"]``.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> ds = TensorDataset(torch.randn(8, 3, 8, 8), torch.tensor([0, 1] * 4))
        >>> df = layerwise_probe(net, ["0", None], ds, ds, cache=False, progress=False, device="cpu")
        >>> df[["layer", "depth", "dim"]].values.tolist()
        [['0', 0, 4], ['penultimate', 1, 4]]
    """
    import pandas as pd

    unknown = sorted(set(kw) - set(_EXTRACT_KEYS) - set(_PROBE_KEYS))
    if unknown:
        raise TypeError(f"unexpected keyword arguments {unknown}; allowed: {[*_EXTRACT_KEYS, *_PROBE_KEYS]}")
    extract_kw = {k: v for k, v in kw.items() if k in _EXTRACT_KEYS}
    probe_kw = {k: v for k, v in kw.items() if k in _PROBE_KEYS}
    names = _check_layers(model, layers)
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    names.sort(key=lambda n: order.get(n, len(order)))

    with time_it() as timer:
        train_feats, y_train = extract_layers(model, train, names, **extract_kw)
        test_feats, y_test = extract_layers(model, test, names, **extract_kw)
    rows = []
    for depth, name in enumerate(names):
        result = linear_probe(train_feats[name], y_train, test_feats[name], y_test, **probe_kw)
        rows.append(
            {
                "layer": name,
                "depth": depth,
                "dim": result.n_features,
                "test_accuracy": result.test_accuracy,
                "train_accuracy": result.train_accuracy,
                "seconds": result.seconds,
            }
        )
    df = pd.DataFrame(rows, columns=["layer", "depth", "dim", "test_accuracy", "train_accuracy", "seconds"])
    df.attrs["extract_seconds"] = timer.seconds
    return df
