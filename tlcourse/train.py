"""One training loop for vision and text (DESIGN §2, ``train``).

``fit`` trains any classifier whose forward returns logits — a tensor (torchvision / timm models) or an object
with ``.logits`` (Hugging Face ``...ForSequenceClassification``) — on batches that are ``(x, y)`` tuples or
dicts with a ``labels`` key. It records every hyper-parameter and every epoch in a :class:`History`.

On top of it, the fine-tuning verbs of lesson 03:

* ``fine_tune`` — fastai's recipe: freeze the body, train the head with one cycle, unfreeze, train everything with
  discriminative learning rates (head at ``lr / 2``, earliest layers ``lr_mult`` times lower);
* ``progressive_unfreeze`` — gradual unfreezing from the head backwards (ULMFiT: Howard & Ruder, 2018,
  *Universal Language Model Fine-tuning for Text Classification*, ACL, https://arxiv.org/abs/1801.06146);
* ``lr_find`` — the learning-rate range test (Smith, 2017, *Cyclical Learning Rates for Training Neural
  Networks*, WACV, https://arxiv.org/abs/1506.01186).

Named variants (optimizers, schedulers, metrics, batch layouts) live in registries: ``OPTIMIZERS``,
``SCHEDULERS``, ``METRICS``, ``BATCH_ADAPTERS``.
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from sklearn import metrics as skm
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm, trange

from tlcourse.config import profile
from tlcourse.device import autocast, get_device, seed_everything

__all__ = [
    "History",
    "EarlyStopping",
    "LRFinderResult",
    "Batch",
    "fit",
    "evaluate",
    "predict",
    "fine_tune",
    "progressive_unfreeze",
    "lr_find",
    "OPTIMIZERS",
    "SCHEDULERS",
    "METRICS",
    "BATCH_ADAPTERS",
]

Data = DataLoader | Dataset
Callback = Callable[["History"], Any]


# --------------------------------------------------------------------------------------------------- History
@dataclass
class History:
    """What a training run did: one record per epoch, the best epoch, and the exact hyper-parameters.

    Each record holds ``epoch``, ``train_loss``, ``val_loss``, ``val_<metric>`` per metric, ``lr`` (first
    parameter group, at the end of the epoch) and ``seconds``; runs made of phases (``fine_tune``) add ``phase``.

    Example:
        >>> h = History(records=[{"epoch": 1, "train_loss": 0.7}, {"epoch": 2, "train_loss": 0.5}], best_epoch=2)
        >>> len(h), h.best("train_loss")
        (2, 0.5)
        >>> History.from_json(h.to_json()) == h
        True
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        n = len(self.records)
        head = f"History({n} epoch{'s' if n != 1 else ''}"
        if self.best_epoch is not None:
            head += f", best epoch {self.best_epoch}"
        if self.stopped_early:
            head += ", stopped early"
        head += ")"
        if not self.records:
            return head
        rows = []
        for rec in self.records:
            cells = []
            for key, value in rec.items():
                if isinstance(value, float):
                    cells.append(f"{key}={value:.4g}")
                elif isinstance(value, int | str):
                    cells.append(f"{key}={value}")
            rows.append("  " + "  ".join(cells))
        return head + "\n" + "\n".join(rows)

    def to_frame(self) -> Any:
        """The records as a pandas DataFrame, one row per epoch.

        Example:
            >>> History(records=[{"epoch": 1, "train_loss": 0.7}]).to_frame().columns.tolist()
            ['epoch', 'train_loss']
        """
        import pandas as pd

        return pd.DataFrame.from_records(self.records)

    def to_json(self) -> str:
        """Serialise to a JSON string (``from_json`` gives back an equal History).

        Example:
            >>> History(best_epoch=1).to_json().startswith("{")
            True
        """
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> History:
        """Rebuild a History from ``to_json`` output.

        Example:
            >>> History.from_json('{"records": [], "best_epoch": null, "stopped_early": false, "meta": {}}')
            History(0 epochs)
        """
        data = json.loads(text)
        missing = {"records", "best_epoch", "stopped_early", "meta"} - set(data)
        if missing:
            raise ValueError(f"not a History JSON: missing keys {sorted(missing)}")
        return cls(
            records=list(data["records"]),
            best_epoch=data["best_epoch"],
            stopped_early=bool(data["stopped_early"]),
            meta=dict(data["meta"]),
        )

    def save(self, path: str | Path) -> Path:
        """Write the History as JSON to ``path`` (parent folders are created); returns the path.

        Example:
            >>> import tempfile, os
            >>> p = History(best_epoch=1).save(os.path.join(tempfile.mkdtemp(), "h.json"))
            >>> History.load(p).best_epoch
            1
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a History written by ``save``.

        Example:
            >>> import tempfile, os
            >>> History.load(History().save(os.path.join(tempfile.mkdtemp(), "h.json")))
            History(0 epochs)
        """
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def best(self, metric: str = "val_loss", mode: str | None = None) -> float:
        """Best value of a recorded metric (lowest for losses, highest otherwise unless ``mode`` says).

        Example:
            >>> History(records=[{"val_accuracy": 0.6}, {"val_accuracy": 0.8}]).best("val_accuracy")
            0.8
        """
        values = [r[metric] for r in self.records if metric in r and _is_number(r[metric])]
        if not values:
            cols = sorted({k for r in self.records for k in r})
            raise ValueError(f"metric {metric!r} is not in this History; recorded columns: {cols}")
        mode = mode or _infer_mode(metric)
        finite = [v for v in values if not math.isnan(v)] or values
        return float(min(finite) if mode == "min" else max(finite))

    def plot(self, **kwargs: Any) -> Any:
        """Plot the learning curves with ``tlcourse.viz.plot_history``.

        Example:
            >>> History(records=[{"epoch": 1, "train_loss": 0.7}]).plot()  # doctest: +SKIP
        """
        from tlcourse.viz import plot_history

        return plot_history(self, **kwargs)

    @classmethod
    def concat(cls, parts: Sequence[tuple[str, History]], meta: dict[str, Any] | None = None) -> History:
        """Join phase histories into one: epochs renumbered, a ``phase`` key in each record.

        ``best_epoch`` comes from the last phase (the weights the model ends with); ``stopped_early`` is true
        when any phase stopped early.

        Example:
            >>> a = History(records=[{"epoch": 1, "train_loss": 0.9}], best_epoch=1)
            >>> b = History(records=[{"epoch": 1, "train_loss": 0.5}], best_epoch=1)
            >>> h = History.concat([("frozen", a), ("unfrozen", b)])
            >>> [r["epoch"] for r in h.records], [r["phase"] for r in h.records], h.best_epoch
            ([1, 2], ['frozen', 'unfrozen'], 2)
        """
        records: list[dict[str, Any]] = []
        best_epoch = None
        for phase, part in parts:
            offset = len(records)
            for rec in part.records:
                new = dict(rec)
                new["epoch"] = offset + int(rec.get("epoch", len(records) - offset + 1))
                new["phase"] = phase
                records.append(new)
            if part.best_epoch is not None:
                best_epoch = offset + part.best_epoch
        full_meta = dict(meta or {})
        full_meta["phases"] = [{"phase": phase, **part.meta} for phase, part in parts]
        return cls(
            records=records,
            best_epoch=best_epoch,
            stopped_early=any(part.stopped_early for _, part in parts),
            meta=_jsonable(full_meta),
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _infer_mode(metric: str) -> str:
    """'min' for losses and errors, 'max' for scores."""
    name = metric.lower()
    return "min" if ("loss" in name or name.endswith("error")) else "max"


def _jsonable(obj: Any) -> Any:
    """Normalise to what JSON gives back (lists for tuples, str for odd objects) so round trips are exact."""
    return json.loads(json.dumps(obj, default=str))


# --------------------------------------------------------------------------------------------- early stopping
@dataclass
class EarlyStopping:
    """Stop when ``metric`` has not improved for ``patience`` epochs; optionally restore the best weights.

    ``mode`` is inferred from the name (``*loss*`` → ``"min"``, else ``"max"``). A bare metric name such as
    ``"accuracy"`` means its validation value, ``"val_accuracy"``.

    Example:
        >>> EarlyStopping("val_accuracy", patience=2).mode
        'max'
        >>> EarlyStopping("accuracy").metric
        'val_accuracy'
    """

    metric: str = "val_loss"
    patience: int = 3
    mode: str | None = None
    restore_best: bool = True
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if not self.metric.startswith(("val_", "train_")):
            self.metric = f"val_{self.metric}"
        if self.mode is None:
            self.mode = _infer_mode(self.metric)
        if self.mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience < 1:
            raise ValueError(f"EarlyStopping patience must be >= 1, got {self.patience}")

    def improved(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` by more than ``min_delta``.

        Example:
            >>> EarlyStopping("val_loss").improved(0.4, 0.5)
            True
        """
        if value is None or math.isnan(value):
            return False
        if best is None:
            return True
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta


# ------------------------------------------------------------------------------------------- batch adapters
class Batch(NamedTuple):
    """One batch on the device: model ``inputs``, ``targets`` (None when unlabelled) and ``forward(model)``.

    Example:
        >>> b = BATCH_ADAPTERS[tuple]((torch.zeros(2, 3), torch.tensor([0, 1])), torch.device("cpu"))
        >>> b.forward(nn.Linear(3, 2)).shape
        torch.Size([2, 2])
    """

    inputs: Any
    targets: torch.Tensor | None
    forward: Callable[[nn.Module], Any]


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def _adapt_sequence(batch: Sequence[Any], device: torch.device) -> Batch:
    """Vision layout: ``(x, y)`` (extra items such as a domain label are ignored) or ``(x,)``."""
    if len(batch) == 0:
        raise ValueError("empty batch: expected (inputs, targets)")
    x = _to_device(batch[0], device)
    y = _to_device(batch[1], device) if len(batch) > 1 else None
    return Batch(x, y, lambda model: model(x))


def _adapt_mapping(batch: Mapping[str, Any], device: torch.device) -> Batch:
    """Hugging Face layout: a dict of model inputs plus ``labels`` (or ``label``)."""
    label_key = next((k for k in ("labels", "label") if k in batch), None)
    inputs = {k: _to_device(v, device) for k, v in batch.items() if k != label_key}
    y = _to_device(batch[label_key], device) if label_key else None
    return Batch(inputs, y, lambda model: model(**inputs))


def _adapt_tensor(batch: torch.Tensor, device: torch.device) -> Batch:
    """Unlabelled layout: a bare input tensor (for ``predict``)."""
    x = batch.to(device, non_blocking=True)
    return Batch(x, None, lambda model: model(x))


#: Batch layouts, checked in order with ``isinstance``; each maps (batch, device) to a :class:`Batch`.
BATCH_ADAPTERS: dict[type, Callable[[Any, torch.device], Batch]] = {
    Mapping: _adapt_mapping,
    tuple: _adapt_sequence,
    list: _adapt_sequence,
    torch.Tensor: _adapt_tensor,
}


def _adapt(batch: Any, device: torch.device) -> Batch:
    for kind, adapter in BATCH_ADAPTERS.items():
        if isinstance(batch, kind):
            return adapter(batch, device)
    raise TypeError(
        f"cannot read a batch of type {type(batch).__name__}: expected an (inputs, targets) tuple, a dict with "
        f"'labels' (Hugging Face), or a tensor; register a new layout in tlcourse.train.BATCH_ADAPTERS"
    )


def _logits(output: Any) -> torch.Tensor:
    """Logits from a model output: a tensor, an object with ``.logits`` (Hugging Face), or a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, list | tuple) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(
        f"the model returned {type(output).__name__}; expected logits (a tensor) or an object with .logits"
    )


# ------------------------------------------------------------------------------------------------- metrics
def _accuracy(y: np.ndarray, pred: np.ndarray, probs: np.ndarray) -> float:
    return float(skm.accuracy_score(y, pred))


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray, probs: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class absent from y: sklearn warns, the value is still defined
        return float(skm.balanced_accuracy_score(y, pred))


def _f1(y: np.ndarray, pred: np.ndarray, probs: np.ndarray) -> float:
    return float(skm.f1_score(y, pred, average="macro", labels=np.arange(probs.shape[1]), zero_division=0))


def _auc(y: np.ndarray, pred: np.ndarray, probs: np.ndarray) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")  # undefined with one class present
    p = probs.astype(np.float64)
    try:
        if p.shape[1] == 2:
            return float(skm.roc_auc_score(y, p[:, 1]))
        p = p / p.sum(axis=1, keepdims=True)
        return float(skm.roc_auc_score(y, p, multi_class="ovr", labels=np.arange(p.shape[1])))
    except ValueError:  # e.g. a class absent from y in the multi-class case
        return float("nan")


def _confusion(y: np.ndarray, pred: np.ndarray, probs: np.ndarray) -> list[list[int]]:
    return skm.confusion_matrix(y, pred, labels=np.arange(probs.shape[1])).tolist()


def _binary_counts(y: np.ndarray, pred: np.ndarray, probs: np.ndarray) -> tuple[int, int, int, int]:
    if probs.shape[1] != 2:
        raise ValueError(
            f"sensitivity/specificity are defined for binary problems (positive = class 1); "
            f"the model has {probs.shape[1]} classes — use 'balanced_accuracy' or 'confusion_matrix'"
        )
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return int(tn), int(fp), int(fn), int(tp)


def _sensitivity(y: np.ndarray, pred: np.ndarray, probs: np.ndarray) -> float:
    tn, fp, fn, tp = _binary_counts(y, pred, probs)
    return tp / (tp + fn) if tp + fn else float("nan")


def _specificity(y: np.ndarray, pred: np.ndarray, probs: np.ndarray) -> float:
    tn, fp, fn, tp = _binary_counts(y, pred, probs)
    return tn / (tn + fp) if tn + fp else float("nan")


#: Metric name → fn(y_true, y_pred, probs) (scikit-learn underneath).
METRICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], Any]] = {
    "accuracy": _accuracy,
    "balanced_accuracy": _balanced_accuracy,
    "f1": _f1,
    "auc": _auc,
    "confusion_matrix": _confusion,
    "sensitivity": _sensitivity,
    "specificity": _specificity,
}


def _check_metrics(metrics: Iterable[str]) -> list[str]:
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(METRICS)}")
    return names


# ------------------------------------------------------------------------------- optimizers and schedulers
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": lambda groups, lr, weight_decay, momentum: torch.optim.AdamW(
        groups, lr=lr, weight_decay=weight_decay
    ),
    "adam": lambda groups, lr, weight_decay, momentum: torch.optim.Adam(
        groups, lr=lr, weight_decay=weight_decay
    ),
    "sgd": lambda groups, lr, weight_decay, momentum: torch.optim.SGD(
        groups, lr=lr, momentum=momentum, weight_decay=weight_decay
    ),
}


class _Sched(NamedTuple):
    scheduler: Any
    every: str  # "batch" | "epoch" | "plateau"


SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer, int, int], _Sched]] = {
    # one cycle (Smith & Topin 2019): warm-up then anneal, per batch; peaks at each group's lr
    "onecycle": lambda opt, epochs, steps: _Sched(
        torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], epochs=epochs, steps_per_epoch=steps
        ),
        "batch",
    ),
    # cosine annealing to 0 over the whole run, per batch
    "cosine": lambda opt, epochs, steps: _Sched(
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps)), "batch"
    ),
    # divide by 10 every third of the run, per epoch
    "step": lambda opt, epochs, steps: _Sched(
        torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1), "epoch"
    ),
    # divide by 10 when the validation loss stalls for one epoch
    "plateau": lambda opt, epochs, steps: _Sched(
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=1), "plateau"
    ),
}


def _choose(registry: Mapping[str, Any], name: str, what: str) -> Any:
    key = str(name).lower()
    if key not in registry:
        raise ValueError(f"unknown {what} {name!r}; choose one of {sorted(registry)}")
    return registry[key]


# ---------------------------------------------------------------------------------------------- data, loss
def _as_loader(data: Any, batch_size: int | None, shuffle: bool, device: torch.device) -> DataLoader:
    if isinstance(data, DataLoader):
        if batch_size is not None and data.batch_size not in (None, batch_size):
            warnings.warn(
                f"batch_size={batch_size} ignored: the DataLoader given already batches by {data.batch_size}",
                stacklevel=3,
            )
        return data
    if not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise TypeError(
            f"expected a DataLoader or a Dataset (with __getitem__ and __len__), got {type(data)}"
        )
    from tlcourse.data import make_loader

    return make_loader(data, batch_size=batch_size, shuffle=shuffle, device=device)


def _make_loss(
    loss_fn: Callable[..., torch.Tensor] | None, class_weights: Any, device: torch.device
) -> Callable[..., torch.Tensor]:
    if loss_fn is not None and class_weights is not None:
        raise ValueError("give either loss_fn or class_weights, not both (put the weights in your loss_fn)")
    if loss_fn is not None:
        return loss_fn
    weight = None
    if class_weights is not None:
        weight = torch.as_tensor(np.asarray(class_weights, dtype=np.float32), device=device)
    return nn.CrossEntropyLoss(weight=weight)


def _loss_name(loss_fn: Any, class_weights: Any) -> str:
    if loss_fn is None:
        return "CrossEntropyLoss(weighted)" if class_weights is not None else "CrossEntropyLoss"
    return getattr(loss_fn, "__name__", type(loss_fn).__name__)


def _resolve_amp(amp: bool | None, device: torch.device) -> bool:
    wanted = profile().amp if amp is None else bool(amp)
    return wanted and device.type == "cuda"


def _dataset_len(loader: DataLoader) -> int | None:
    try:
        return len(loader.dataset)  # type: ignore[arg-type]
    except TypeError:
        return None


def _bn_eval_fn() -> Callable[[nn.Module], Any] | None:
    try:
        from tlcourse.freeze import apply_bn_eval
    except ImportError:
        return None
    return apply_bn_eval


# ------------------------------------------------------------------------------------------------ inference
def _collect(
    model: nn.Module, loader: DataLoader, device: torch.device, amp: bool, progress: bool, desc: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the model over a loader (eval mode, no grad); logits (CPU float32) and targets (or None)."""
    model.eval()
    logits, targets = [], []
    with torch.no_grad():
        for raw in tqdm(loader, desc=desc, leave=False, disable=not progress):
            batch = _adapt(raw, device)
            with autocast(device, enabled=amp):
                out = _logits(batch.forward(model))
            logits.append(out.detach().float().cpu())
            if batch.targets is not None:
                targets.append(batch.targets.detach().cpu())
    if not logits:
        raise ValueError("the data is empty: no batch to evaluate")
    all_targets = torch.cat(targets) if len(targets) == len(logits) else None
    return torch.cat(logits), all_targets


def _score(
    logits: torch.Tensor,
    targets: torch.Tensor,
    metrics: Sequence[str],
    loss_fn: Callable[..., torch.Tensor],
    device: torch.device,
) -> dict[str, Any]:
    """Loss over the whole set (on ``device``, where the loss's tensors live) and metrics (on the CPU)."""
    with torch.no_grad():
        loss = float(loss_fn(logits.to(device), targets.to(device)).item())
    probs = torch.softmax(logits, dim=1).numpy()
    y = targets.numpy()
    pred = probs.argmax(axis=1)
    out: dict[str, Any] = {"loss": loss}
    for name in metrics:
        out[name] = METRICS[name](y, pred, probs)
    return out


def evaluate(
    model: nn.Module,
    data: Data,
    metrics: Sequence[str] = ("accuracy",),
    device: torch.device | str | None = None,
    class_weights: Any = None,
    *,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    amp: bool = False,
    batch_size: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Loss and metrics of a classifier on labelled data (the model is left in eval mode).

    Metrics come from ``METRICS``: ``accuracy``, ``balanced_accuracy``, ``f1`` (macro), ``auc`` (binary:
    probability of class 1; multi-class: one-vs-rest), ``confusion_matrix`` (nested list), and for binary
    problems ``sensitivity`` / ``specificity`` (positive = class 1).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> ds = TensorDataset(torch.randn(8, 3), torch.tensor([0, 1] * 4))
        >>> sorted(evaluate(nn.Linear(3, 2), ds, metrics=("accuracy", "auc")))
        ['accuracy', 'auc', 'loss']
    """
    names = _check_metrics(metrics)
    dev = torch.device(device) if device is not None else get_device()
    model.to(dev)
    loader = _as_loader(data, batch_size, shuffle=False, device=dev)
    criterion = _make_loss(loss_fn, class_weights, dev)
    logits, targets = _collect(model, loader, dev, amp and dev.type == "cuda", progress, "evaluate")
    if targets is None:
        raise ValueError("evaluate needs labelled data: batches of (inputs, targets) or dicts with 'labels'")
    return _score(logits, targets, names, criterion, dev)


def predict(
    model: nn.Module,
    data: Data,
    device: torch.device | str | None = None,
    return_probs: bool = False,
    *,
    amp: bool = False,
    batch_size: int | None = None,
    progress: bool = True,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Predicted classes (and, with ``return_probs``, softmax probabilities) as NumPy arrays.

    Labels in the batches, if any, are ignored.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> preds, probs = predict(nn.Linear(3, 2), TensorDataset(torch.randn(5, 3)), return_probs=True,
        ...                        progress=False)
        >>> preds.shape, probs.shape
        ((5,), (5, 2))
    """
    dev = torch.device(device) if device is not None else get_device()
    model.to(dev)
    loader = _as_loader(data, batch_size, shuffle=False, device=dev)
    logits, _ = _collect(model, loader, dev, amp and dev.type == "cuda", progress, "predict")
    probs = torch.softmax(logits, dim=1).numpy()
    preds = probs.argmax(axis=1)
    return (preds, probs) if return_probs else preds


# ---------------------------------------------------------------------------------------------------- fit
def _param_groups(model: nn.Module, lr: float | Sequence[Mapping[str, Any]]) -> tuple[list[dict], float]:
    """Optimizer parameter groups holding only trainable parameters, and the base lr."""
    if isinstance(lr, int | float):
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": params, "lr": float(lr), "name": "all"}] if params else []
        base = float(lr)
    else:
        groups = []
        for i, g in enumerate(lr):
            if "params" not in g or "lr" not in g:
                raise ValueError(f"parameter group {i} needs 'params' and 'lr' keys, got {sorted(g)}")
            params = [p for p in g["params"] if p.requires_grad]
            if params:
                groups.append(
                    {**g, "params": params, "lr": float(g["lr"]), "name": g.get("name", f"group{i}")}
                )
        base = max((g["lr"] for g in groups), default=0.0)
    if not groups:
        raise ValueError(
            "nothing to train: no parameter has requires_grad=True (call tlcourse.freeze.unfreeze(model) "
            "or give parameter groups with trainable parameters)"
        )
    return groups, base


def _train_step(
    model: nn.Module,
    batch: Batch,
    opt: torch.optim.Optimizer,
    criterion: Callable[..., torch.Tensor],
    scaler: torch.amp.GradScaler,
    device: torch.device,
    use_amp: bool,
    grad_clip: float | None,
    trainable: list[nn.Parameter],
) -> float:
    """One optimisation step; returns the batch loss (no step is taken when it is not finite)."""
    if batch.targets is None:
        raise ValueError("training batches need targets: (x, y) tuples or dicts with 'labels'")
    opt.zero_grad(set_to_none=True)
    with autocast(device, enabled=use_amp):
        logits = _logits(batch.forward(model))
    loss = criterion(logits.float(), batch.targets)
    value = float(loss.item())
    if not math.isfinite(value):
        return value
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
    scaler.step(opt)
    scaler.update()
    return value


def fit(
    model: nn.Module,
    train_data: Data,
    val_data: Data | None = None,
    *,
    epochs: int | None = None,
    lr: float | Sequence[Mapping[str, Any]] = 1e-3,
    optimizer: str = "adamw",
    weight_decay: float = 0.01,
    momentum: float = 0.9,
    scheduler: str | None = None,
    early_stopping: EarlyStopping | str | None = None,
    metrics: Sequence[str] = ("accuracy",),
    class_weights: Any = None,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    grad_clip: float | None = None,
    amp: bool | None = None,
    device: torch.device | str | None = None,
    batch_size: int | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    seed: int | None = None,
    train_bn: bool = True,
) -> History:
    """Train a classifier; returns a :class:`History` with one record per epoch and the exact settings.

    * ``train_data`` / ``val_data``: DataLoaders, or Datasets (batched by ``batch_size`` or the profile's).
      Batches are ``(x, y)`` tuples or Hugging Face dicts with ``labels``; outputs are logits or have ``.logits``.
    * ``lr``: one rate, or optimizer parameter groups (e.g. ``tlcourse.freeze.discriminative_lrs(model, lr)``);
      only parameters with ``requires_grad`` are optimised.
    * ``optimizer``: a name in ``OPTIMIZERS``; ``scheduler``: None or a name in ``SCHEDULERS`` (``plateau``
      steps on the validation loss).
    * ``early_stopping``: an :class:`EarlyStopping` or a metric name (``"val_loss"``, ``"val_accuracy"``, ...).
    * ``class_weights`` → weighted cross-entropy; ``loss_fn(logits, targets)`` replaces it.
    * ``grad_clip``: max global gradient norm. The last step's gradients stay in ``.grad``, as in plain PyTorch.
    * ``amp``: None → the profile's choice, on CUDA only. ``callbacks``: each called as ``cb(history)`` per epoch.
    * Frozen BatchNorm layers are kept in eval mode (``tlcourse.freeze.apply_bn_eval``) after ``model.train()``.
      ``train_bn=False`` keeps *every* BatchNorm layer in eval mode (running statistics fixed, affine parameters
      still trained): the usual fix when an unfrozen body meets small batches (say 16 images).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> x = torch.randn(64, 2); y = (x[:, 0] > 0).long()
        >>> h = fit(nn.Linear(2, 2), TensorDataset(x, y), TensorDataset(x, y), epochs=2, lr=0.1,
        ...         batch_size=16, progress=False, seed=0, device="cpu")
        >>> len(h), sorted(h.records[0])
        (2, ['epoch', 'lr', 'seconds', 'train_loss', 'val_accuracy', 'val_loss'])
    """
    metric_names = _check_metrics(metrics)
    opt_factory = _choose(OPTIMIZERS, optimizer, "optimizer")
    sched_factory = _choose(SCHEDULERS, scheduler, "scheduler") if scheduler is not None else None
    if isinstance(early_stopping, str):
        early_stopping = EarlyStopping(metric=early_stopping)
    n_epochs = int(epochs if epochs is not None else profile().epochs)
    if n_epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {n_epochs}")
    if grad_clip is not None and grad_clip <= 0:
        raise ValueError(f"grad_clip must be a positive max norm, got {grad_clip}")

    dev = torch.device(device) if device is not None else get_device()
    if seed is not None:
        seed_everything(seed)
    train_loader = _as_loader(train_data, batch_size, shuffle=True, device=dev)
    val_loader = _as_loader(val_data, batch_size, shuffle=False, device=dev) if val_data is not None else None

    available = ["train_loss"] + (["val_loss"] + [f"val_{m}" for m in metric_names] if val_loader else [])
    monitor = early_stopping.metric if early_stopping else ("val_loss" if val_loader else "train_loss")
    if monitor not in available:
        raise ValueError(
            f"early stopping watches {monitor!r}, which this run does not record; recorded: {available}"
            + ("" if val_loader else " (give val_data to watch validation metrics)")
        )
    watcher = early_stopping or EarlyStopping(metric=monitor, restore_best=False)

    model.to(dev)
    groups, base_lr = _param_groups(model, lr)
    use_amp = _resolve_amp(amp, dev)
    use_scaler = use_amp and not torch.cuda.is_bf16_supported()  # fp16 needs loss scaling, bf16 does not
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    criterion = _make_loss(loss_fn, class_weights, dev)
    trainable = [p for g in groups for p in g["params"]]

    history = History(
        meta=_jsonable(
            {
                "model": type(model).__name__,
                "optimizer": str(optimizer).lower(),
                "lr": base_lr if isinstance(lr, int | float) else None,
                "param_groups": [
                    {"name": g["name"], "lr": g["lr"], "n_params": sum(p.numel() for p in g["params"])}
                    for g in groups
                ],
                "weight_decay": weight_decay,
                "momentum": momentum,
                "scheduler": scheduler,
                "epochs": n_epochs,
                "batch_size": train_loader.batch_size,
                "steps_per_epoch": len(train_loader),
                "train_size": _dataset_len(train_loader),
                "val_size": _dataset_len(val_loader) if val_loader else None,
                "early_stopping": asdict(early_stopping) if early_stopping else None,
                "metrics": metric_names,
                "loss": _loss_name(loss_fn, class_weights),
                "class_weights": None if class_weights is None else np.asarray(class_weights).tolist(),
                "grad_clip": grad_clip,
                "amp": use_amp,
                "device": str(dev),
                "seed": seed,
                "trainable_params": sum(p.numel() for p in trainable),
            }
        )
    )

    opt = opt_factory(groups, base_lr, weight_decay, momentum)
    sched = sched_factory(opt, n_epochs, len(train_loader)) if sched_factory else None
    bn_eval = _bn_eval_fn()
    best_value: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs = 0

    epoch_bar = trange(1, n_epochs + 1, desc="epochs", disable=not progress)
    for epoch in epoch_bar:
        start = time.perf_counter()
        model.train()
        if bn_eval is not None:
            bn_eval(model)
        if not train_bn:
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        total, count = 0.0, 0
        batch_bar = tqdm(train_loader, desc=f"epoch {epoch}", leave=False, disable=not progress)
        for raw in batch_bar:
            batch = _adapt(raw, dev)
            loss = _train_step(model, batch, opt, criterion, scaler, dev, use_amp, grad_clip, trainable)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"the training loss became {loss} at epoch {epoch}: the run diverged — "
                    f"lower the learning rate (lr_find helps) or set grad_clip"
                )
            if sched is not None and sched.every == "batch":
                sched.scheduler.step()
            n = int(batch.targets.shape[0])
            total += loss * n
            count += n
            batch_bar.set_postfix(loss=f"{total / count:.4f}")
        batch_bar.close()

        rec: dict[str, Any] = {"epoch": epoch, "train_loss": total / max(count, 1)}
        if val_loader is not None:
            logits_v, targets_v = _collect(model, val_loader, dev, use_amp, False, "validate")
            if targets_v is None:
                raise ValueError("validation batches need targets: (x, y) tuples or dicts with 'labels'")
            scores = _score(logits_v, targets_v, metric_names, criterion, dev)
            rec["val_loss"] = scores["loss"]
            for name in metric_names:
                rec[f"val_{name}"] = scores[name]
        rec["lr"] = float(opt.param_groups[0]["lr"])
        if sched is not None and sched.every == "epoch":
            sched.scheduler.step()
        elif sched is not None and sched.every == "plateau":
            sched.scheduler.step(rec.get("val_loss", rec["train_loss"]))
        rec["seconds"] = time.perf_counter() - start
        history.records.append(_jsonable(rec))

        value = rec[monitor]
        if watcher.improved(value, best_value):
            best_value, bad_epochs = value, 0
            history.best_epoch = epoch
            if watcher.restore_best:
                best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1

        postfix = {"train_loss": f"{rec['train_loss']:.4f}"}
        if "val_loss" in rec:
            postfix["val_loss"] = f"{rec['val_loss']:.4f}"
        if metric_names and f"val_{metric_names[0]}" in rec and _is_number(rec[f"val_{metric_names[0]}"]):
            postfix[f"val_{metric_names[0]}"] = f"{rec[f'val_{metric_names[0]}']:.4f}"
        epoch_bar.set_postfix(postfix)
        for cb in callbacks:
            cb(history)
        if early_stopping is not None and bad_epochs >= early_stopping.patience and epoch < n_epochs:
            history.stopped_early = True
            break
    epoch_bar.close()

    if best_state is not None and history.best_epoch != len(history.records):
        model.load_state_dict(best_state)
    return history


# ------------------------------------------------------------------------------------- fine-tuning recipes
def _n_groups(model: nn.Module) -> int:
    from tlcourse.freeze import layer_groups

    return len(layer_groups(model))


def _factor(lr_mult: float, n_groups: int) -> float:
    """Per-group divisor so that the earliest group ends ``lr_mult`` times below the head."""
    if lr_mult <= 0:
        raise ValueError(f"lr_mult must be positive, got {lr_mult}")
    return float(lr_mult ** (1 / (n_groups - 1))) if n_groups > 1 else 1.0


def fine_tune(
    model: nn.Module,
    train_data: Data,
    val_data: Data | None = None,
    *,
    freeze_epochs: int = 1,
    epochs: int | None = None,
    lr: float = 1e-3,
    lr_mult: float = 100,
    **fit_kwargs: Any,
) -> History:
    """fastai-style fine-tuning: train the head on a frozen body, then everything at discriminative rates.

    1. ``tlcourse.freeze.freeze(model)`` and ``fit`` for ``freeze_epochs`` at ``lr`` (one cycle);
    2. ``unfreeze(model)`` and ``fit`` for ``epochs`` (default: the profile's) with
       ``discriminative_lrs(model, lr / 2, factor=lr_mult ** (1 / (n_groups - 1)))`` — head at ``lr / 2``,
       earliest group at ``lr / 2 / lr_mult`` — again with one cycle.

    Other keyword arguments go to :func:`fit` (``scheduler`` defaults to ``"onecycle"``; pass ``train_bn=False``
    to keep the BatchNorm statistics of the pretrained body with small batches). The two histories
    are joined (``phase`` is ``"frozen"`` / ``"unfrozen"``); ``meta["phases"]`` keeps each phase's settings.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 8), nn.Linear(8, 8), nn.Linear(8, 2))
        >>> from torch.utils.data import TensorDataset
        >>> ds = TensorDataset(torch.randn(32, 2), torch.randint(0, 2, (32,)))
        >>> h = fine_tune(net, ds, freeze_epochs=1, epochs=1, progress=False, device="cpu")
        >>> [r["phase"] for r in h.records]
        ['frozen', 'unfrozen']
    """
    from tlcourse.freeze import discriminative_lrs, freeze, unfreeze

    if freeze_epochs < 0:
        raise ValueError(f"freeze_epochs must be >= 0, got {freeze_epochs}")
    fit_kwargs.setdefault("scheduler", "onecycle")
    n_epochs = int(epochs if epochs is not None else profile().epochs)
    parts: list[tuple[str, History]] = []
    if freeze_epochs > 0:
        freeze(model)
        parts.append(("frozen", fit(model, train_data, val_data, epochs=freeze_epochs, lr=lr, **fit_kwargs)))
    unfreeze(model)
    n_groups = _n_groups(model)
    factor = _factor(lr_mult, n_groups)
    groups = discriminative_lrs(model, lr / 2, factor=factor)
    parts.append(("unfrozen", fit(model, train_data, val_data, epochs=n_epochs, lr=groups, **fit_kwargs)))
    meta = {
        "method": "fine_tune",
        "freeze_epochs": freeze_epochs,
        "epochs": n_epochs,
        "lr": lr,
        "lr_mult": lr_mult,
        "n_groups": n_groups,
        "factor": factor,
    }
    return History.concat(parts, meta=meta)


def progressive_unfreeze(
    model: nn.Module,
    train_data: Data,
    val_data: Data | None = None,
    *,
    stages: int | None = None,
    epochs_per_stage: int = 1,
    lr: float = 1e-3,
    lr_mult: float = 10,
    **fit_kwargs: Any,
) -> History:
    """Gradual unfreezing (ULMFiT, Howard & Ruder 2018): each stage trains one more layer group.

    Stage ``k`` (1-based) trains the last ``k`` layer groups (``tlcourse.freeze.freeze_to``) for
    ``epochs_per_stage`` epochs with discriminative rates: head at ``lr``, each earlier group
    ``lr_mult ** (1 / (n_groups - 1))`` times lower (the earliest ends ``lr_mult`` times lower). ``stages``
    defaults to the number of groups (the last stage trains everything). Other keyword arguments go to
    :func:`fit` (``scheduler`` defaults to ``"onecycle"``, close to ULMFiT's slanted triangular rates).
    Records carry ``phase`` = ``"stage1"``, ``"stage2"``, ...

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 8), nn.Linear(8, 8), nn.Linear(8, 2))
        >>> from torch.utils.data import TensorDataset
        >>> ds = TensorDataset(torch.randn(32, 2), torch.randint(0, 2, (32,)))
        >>> h = progressive_unfreeze(net, ds, progress=False, device="cpu")
        >>> [r["phase"] for r in h.records]
        ['stage1', 'stage2', 'stage3']
    """
    from tlcourse.freeze import discriminative_lrs, freeze_to

    n_groups = _n_groups(model)
    n_stages = n_groups if stages is None else int(stages)
    if not 1 <= n_stages <= n_groups:
        raise ValueError(
            f"stages must be between 1 and the number of layer groups ({n_groups}), got {stages}"
        )
    if epochs_per_stage < 1:
        raise ValueError(f"epochs_per_stage must be >= 1, got {epochs_per_stage}")
    fit_kwargs.setdefault("scheduler", "onecycle")
    factor = _factor(lr_mult, n_groups)
    parts: list[tuple[str, History]] = []
    for k in range(1, n_stages + 1):
        freeze_to(model, n_groups - k)
        groups = discriminative_lrs(model, lr, factor=factor)
        parts.append(
            (f"stage{k}", fit(model, train_data, val_data, epochs=epochs_per_stage, lr=groups, **fit_kwargs))
        )
    meta = {
        "method": "progressive_unfreeze",
        "stages": n_stages,
        "epochs_per_stage": epochs_per_stage,
        "lr": lr,
        "lr_mult": lr_mult,
        "n_groups": n_groups,
        "factor": factor,
    }
    return History.concat(parts, meta=meta)


# -------------------------------------------------------------------------------------------------- lr_find
@dataclass
class LRFinderResult:
    """Result of :func:`lr_find`: learning rates tried, smoothed losses, and the steepest-descent suggestion.

    Example:
        >>> r = LRFinderResult(lrs=[1e-4, 1e-3, 1e-2], losses=[1.0, 0.5, 2.0], suggestion=1e-3)
        >>> r.suggestion
        0.001
    """

    lrs: list[float]
    losses: list[float]
    suggestion: float | None

    def __repr__(self) -> str:
        if not self.lrs:
            return "LRFinderResult(no points)"
        sug = "none" if self.suggestion is None else f"{self.suggestion:.2e}"
        return (
            f"LRFinderResult({len(self.lrs)} points, lr {self.lrs[0]:.1e} → {self.lrs[-1]:.1e}, "
            f"suggestion {sug})"
        )

    def plot(self, **kwargs: Any) -> Any:
        """Loss against learning rate (log scale) with the suggestion marked, via ``tlcourse.viz.plot_lr_find``.

        Example:
            >>> LRFinderResult([1e-3, 1e-2], [1.0, 0.8], 1e-3).plot()  # doctest: +SKIP
        """
        from tlcourse.viz import plot_lr_find

        return plot_lr_find(self.lrs, self.losses, self.suggestion, **kwargs)


def _steepest(lrs: Sequence[float], losses: Sequence[float]) -> float | None:
    """The learning rate where the smoothed loss falls fastest against log10(lr)."""
    if len(lrs) < 3:
        return None
    grads = np.gradient(np.asarray(losses, dtype=np.float64), np.log10(np.asarray(lrs, dtype=np.float64)))
    return float(lrs[int(np.argmin(grads))])


def lr_find(
    model: nn.Module,
    train_data: Data,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    optimizer: str = "adamw",
    weight_decay: float = 0.01,
    momentum: float = 0.9,
    class_weights: Any = None,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    smooth: float = 0.98,
    diverge: float = 4.0,
    amp: bool | None = None,
    device: torch.device | str | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    seed: int | None = None,
) -> LRFinderResult:
    """The learning-rate range test (Smith 2017): raise the lr exponentially each batch, watch the loss.

    The loss is smoothed (exponential moving average with bias correction, ``smooth``); the test stops early
    when it exceeds ``diverge`` × its best. The model's weights, buffers and train/eval modes are restored
    afterwards (the optimizer is a fresh one, discarded). ``suggestion`` is the lr of steepest descent.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> ds = TensorDataset(torch.randn(64, 2), torch.randint(0, 2, (64,)))
        >>> r = lr_find(nn.Linear(2, 2), ds, num_iter=20, progress=False, device="cpu", batch_size=16)
        >>> 1e-7 <= r.suggestion <= 10
        True
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if num_iter < 2:
        raise ValueError(f"num_iter must be >= 2, got {num_iter}")
    if not 0 <= smooth < 1:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}")
    opt_factory = _choose(OPTIMIZERS, optimizer, "optimizer")
    dev = torch.device(device) if device is not None else get_device()
    if seed is not None:
        seed_everything(seed)
    loader = _as_loader(train_data, batch_size, shuffle=True, device=dev)
    model.to(dev)
    saved_state = copy.deepcopy(model.state_dict())
    saved_modes = {name: m.training for name, m in model.named_modules()}
    groups, _ = _param_groups(model, start_lr)
    trainable = [p for g in groups for p in g["params"]]
    opt = opt_factory(groups, start_lr, weight_decay, momentum)
    use_amp = _resolve_amp(amp, dev)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and not torch.cuda.is_bf16_supported())
    criterion = _make_loss(loss_fn, class_weights, dev)
    mult = (end_lr / start_lr) ** (1 / (num_iter - 1))

    lrs: list[float] = []
    losses: list[float] = []
    avg, best = 0.0, math.inf
    model.train()
    bn_eval = _bn_eval_fn()
    if bn_eval is not None:
        bn_eval(model)
    batches = iter(loader)
    bar = trange(num_iter, desc="lr_find", disable=not progress)
    try:
        for i in bar:
            try:
                raw = next(batches)
            except StopIteration:
                batches = iter(loader)
                raw = next(batches)
            lr_i = start_lr * mult**i
            for g in opt.param_groups:
                g["lr"] = lr_i
            loss = _train_step(model, _adapt(raw, dev), opt, criterion, scaler, dev, use_amp, None, trainable)
            if not math.isfinite(loss):
                break
            avg = smooth * avg + (1 - smooth) * loss
            smoothed = avg / (1 - smooth ** (i + 1))
            lrs.append(lr_i)
            losses.append(smoothed)
            bar.set_postfix(lr=f"{lr_i:.1e}", loss=f"{smoothed:.4f}")
            if i > 0 and smoothed > diverge * best:
                break
            best = min(best, smoothed)
    finally:
        bar.close()
        model.load_state_dict(saved_state)
        for name, m in model.named_modules():
            m.training = saved_modes[name]  # per module: keeps frozen BatchNorm layers in eval mode
        opt.zero_grad(set_to_none=True)
    return LRFinderResult(lrs=lrs, losses=losses, suggestion=_steepest(lrs, losses))
