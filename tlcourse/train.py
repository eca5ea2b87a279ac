"""One training loop for vision and text (``ARCHITECTURE.md``: the toolkit).

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
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from sklearn import metrics as skm
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm, trange

from tlcourse._plumbing import (
    BATCH_ADAPTERS,
    Batch,
    as_loader,
    channels_last,
    choose,
    cycle_batches,
    grad_scaler,
    logits_of,
    read_batch,
)
from tlcourse.config import profile
from tlcourse.device import autocast, get_device, seed_everything
from tlcourse.history import EarlyStopping, History, is_number, jsonable

__all__ = [
    "FitSettings",
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


# ---------------------------------------------------------------------------------------------- loss, amp
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
    with torch.no_grad(), channels_last(model, device):
        for raw in tqdm(loader, desc=desc, leave=False, disable=not progress):
            batch = read_batch(raw, device)
            with autocast(device, enabled=amp):
                out = logits_of(batch.forward(model))
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
    dev = get_device(device)
    model.to(dev)
    loader = as_loader(data, batch_size, dev)
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
    dev = get_device(device)
    model.to(dev)
    loader = as_loader(data, batch_size, dev)
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


# ------------------------------------------------------------------------------------------ one training run
@dataclass
class _Run:
    """Everything one training run needs, set up once by :func:`_setup` (shared by ``fit`` and ``lr_find``)."""

    model: nn.Module
    device: torch.device
    loader: DataLoader
    optimizer: torch.optim.Optimizer
    criterion: Callable[..., torch.Tensor]
    scaler: torch.amp.GradScaler
    use_amp: bool
    groups: list[dict]
    base_lr: float
    trainable: list[nn.Parameter]  # every parameter of ``groups``
    grad_clip: float | None = None
    train_bn: bool = True
    penalty: Callable[[nn.Module], torch.Tensor] | None = None  # added to the loss (e.g. tlcourse.regularize.L2SP)
    stop: bool = False  # a callback asks the loop to stop after this batch / epoch


def _setup(model: nn.Module, train_data: Data, settings: FitSettings, device: torch.device | str | None) -> _Run:
    """Device, seed, shuffled loader, trainable parameter groups, optimizer, loss scaler and loss."""
    s = settings
    opt_factory = choose(OPTIMIZERS, s.optimizer, "optimizer")
    if s.grad_clip is not None and s.grad_clip <= 0:
        raise ValueError(f"grad_clip must be a positive max norm, got {s.grad_clip}")
    dev = get_device(device)
    if s.seed is not None:
        seed_everything(s.seed)
    loader = as_loader(train_data, s.batch_size, dev, shuffle=True)
    model.to(dev)
    groups, base_lr = _param_groups(model, s.lr)
    use_amp = _resolve_amp(s.amp, dev)
    scaler = grad_scaler(dev, use_amp)
    criterion = _make_loss(s.loss_fn, s.class_weights, dev)
    opt = opt_factory(groups, base_lr, s.weight_decay, s.momentum)
    trainable = [p for g in groups for p in g["params"]]
    return _Run(model, dev, loader, opt, criterion, scaler, use_amp, groups, base_lr, trainable, s.grad_clip,
                s.train_bn, s.penalty)


def _train_step(run: _Run, batch: Batch) -> float:
    """One optimisation step; returns the batch loss (no step is taken when it is not finite)."""
    if batch.targets is None:
        raise ValueError("training batches need targets: (x, y) tuples or dicts with 'labels'")
    run.optimizer.zero_grad(set_to_none=True)
    with autocast(run.device, enabled=run.use_amp):
        logits = logits_of(batch.forward(run.model))
    loss = run.criterion(logits.float(), batch.targets)
    value = float(loss.item())  # the data loss: the penalty is not part of what is reported
    if not math.isfinite(value):
        return value
    if run.penalty is not None:
        loss = loss + run.penalty(run.model)
    apply_gradients(loss, run.optimizer, run.scaler, run.trainable, run.grad_clip)
    return value


def apply_gradients(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    params: Sequence[nn.Parameter] = (), grad_clip: float | None = None) -> None:
    """Backward through a (scaled) loss, clip the gradient norm of ``params`` if asked, and step — the part of a
    training step that every loop of the package shares (``fit``, ``lr_find``, ``adapt``'s loops).

    Example:
        >>> net = nn.Linear(2, 1); opt = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> before = net.weight.detach().clone()
        >>> apply_gradients(net(torch.ones(1, 2)).sum(), opt, grad_scaler(torch.device("cpu")))
        >>> bool((net.weight != before).all())
        True
    """
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(list(params), grad_clip)
    scaler.step(optimizer)
    scaler.update()


def _train_mode(model: nn.Module, train_bn: bool) -> None:
    """``model.train()``, but frozen BatchNorm layers stay in eval mode — every one with ``train_bn=False``."""
    model.train()
    bn_eval = _bn_eval_fn()
    if bn_eval is not None:
        bn_eval(model)
    if not train_bn:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


# ------------------------------------------------------------------------------------------------ callbacks
class _Callback:
    """A hook into the loop (fastai's ``Callback``, Hugging Face's ``TrainerCallback``): override what you need.

    ``run.stop = True`` ends the loop after the current batch (in ``after_batch``) or epoch (``after_epoch``).
    """

    def before_fit(self, run: _Run, history: History) -> None: ...

    def wrap_batches(self, batches: Iterable[Any]) -> Iterable[Any]:
        """The epoch's batches, possibly wrapped (a progress bar); by default as they are."""
        return batches

    def before_batch(self, run: _Run) -> None: ...

    def after_batch(self, run: _Run, loss: float, n: int) -> None: ...

    def after_epoch(self, run: _Run, history: History) -> None: ...

    def after_fit(self, run: _Run, history: History) -> None: ...


class _Diverged(_Callback):
    """A non-finite training loss ends ``fit`` with an error that says what to do."""

    def __init__(self) -> None:
        self.epoch = 1

    def after_batch(self, run: _Run, loss: float, n: int) -> None:
        if not math.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss} at epoch {self.epoch}: the run diverged — "
                                     "lower the learning rate (lr_find helps) or set grad_clip")

    def after_epoch(self, run: _Run, history: History) -> None:
        self.epoch = len(history.records) + 1


class _Progress(_Callback):
    """tqdm bars: epochs, and the batches of the current epoch with the running loss."""

    def __init__(self, enabled: bool, epochs: int, metric: str | None) -> None:
        self.enabled, self.epochs, self.metric = enabled, epochs, metric
        self.total, self.count, self.batches, self.bar = 0.0, 0, None, None

    def before_fit(self, run: _Run, history: History) -> None:
        self.bar = tqdm(total=self.epochs, desc="epochs", disable=not self.enabled)

    def wrap_batches(self, batches: Iterable[Any]) -> Iterable[Any]:
        # tqdm.auto's bar opens an iterator of the loader when it is made (one draw of the global RNG for the
        # loader's base seed, as `fit` always did: keeping it keeps every seeded run's numbers as they were)
        self.total, self.count = 0.0, 0
        self.batches = tqdm(batches, desc=f"epoch {self.bar.n + 1}", leave=False, disable=not self.enabled)
        return self.batches

    def after_batch(self, run: _Run, loss: float, n: int) -> None:
        self.total, self.count = self.total + loss * n, self.count + n
        self.batches.set_postfix(loss=f"{self.total / self.count:.4f}")

    def after_epoch(self, run: _Run, history: History) -> None:
        if self.batches is not None:
            self.batches.close()
            self.batches = None
        rec = history.records[-1]
        postfix = {k: f"{rec[k]:.4f}" for k in ("train_loss", "val_loss") if k in rec}
        if self.metric and is_number(rec.get(f"val_{self.metric}")):
            postfix[f"val_{self.metric}"] = f"{rec[f'val_{self.metric}']:.4f}"
        self.bar.update(1)
        self.bar.set_postfix(postfix)

    def after_fit(self, run: _Run, history: History) -> None:
        self.bar.close()


class _BestEpoch(_Callback):
    """Tracks the best epoch of the monitored metric; with an :class:`EarlyStopping` it also stops the run after
    ``patience`` epochs without improvement and restores the best weights."""

    def __init__(self, watcher: EarlyStopping, stopping: EarlyStopping | None, epochs: int) -> None:
        self.watcher, self.stopping, self.epochs = watcher, stopping, epochs
        self.best: float | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.bad = 0

    def after_epoch(self, run: _Run, history: History) -> None:
        value = history.records[-1][self.watcher.metric]
        if self.watcher.improved(value, self.best):
            self.best, self.bad, history.best_epoch = value, 0, len(history.records)
            if self.watcher.restore_best:
                self.state = copy.deepcopy(run.model.state_dict())
        else:
            self.bad += 1
        if self.stopping is not None and self.bad >= self.stopping.patience and len(history) < self.epochs:
            history.stopped_early = run.stop = True

    def after_fit(self, run: _Run, history: History) -> None:
        if self.state is not None and history.best_epoch != len(history.records):
            run.model.load_state_dict(self.state)


class _EachEpoch(_Callback):
    """The public ``callbacks=`` of :func:`fit`: plain functions called with the history after every epoch."""

    def __init__(self, fn: Callback) -> None:
        self.fn = fn

    def after_epoch(self, run: _Run, history: History) -> None:
        self.fn(history)


# --------------------------------------------------------------------------------------------------- epochs
def _train_epoch(run: _Run, batches: Iterable[Any], callbacks: Sequence[_Callback], sched: _Sched | None) -> float:
    """One pass of optimisation steps over ``batches``; the mean training loss."""
    _train_mode(run.model, run.train_bn)
    for cb in callbacks:
        batches = cb.wrap_batches(batches)
    total, count = 0.0, 0
    for raw in batches:
        batch = read_batch(raw, run.device)
        for cb in callbacks:
            cb.before_batch(run)
        loss = _train_step(run, batch)
        n = int(batch.targets.shape[0])
        for cb in callbacks:
            cb.after_batch(run, loss, n)
        if run.stop:
            break
        if sched is not None and sched.every == "batch":
            sched.scheduler.step()
        total, count = total + loss * n, count + n
    return total / max(count, 1)


def _validate_epoch(run: _Run, loader: DataLoader, metric_names: Sequence[str]) -> dict[str, Any]:
    """Loss and metrics on the validation loader (eval mode, no gradient)."""
    logits, targets = _collect(run.model, loader, run.device, run.use_amp, False, "validate")
    if targets is None:
        raise ValueError("validation batches need targets: (x, y) tuples or dicts with 'labels'")
    scores = _score(logits, targets, metric_names, run.criterion, run.device)
    return {"val_loss": scores["loss"], **{f"val_{name}": scores[name] for name in metric_names}}


def _fit_loop(run: _Run, val_loader: DataLoader | None, epochs: int, metric_names: Sequence[str],
              sched: _Sched | None, history: History, callbacks: Sequence[_Callback]) -> None:
    for cb in callbacks:
        cb.before_fit(run, history)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        rec: dict[str, Any] = {"epoch": epoch, "train_loss": _train_epoch(run, run.loader, callbacks, sched)}
        if val_loader is not None:
            rec.update(_validate_epoch(run, val_loader, metric_names))
        rec["lr"] = float(run.optimizer.param_groups[0]["lr"])
        if sched is not None and sched.every == "epoch":
            sched.scheduler.step()
        elif sched is not None and sched.every == "plateau":
            sched.scheduler.step(rec.get("val_loss", rec["train_loss"]))
        rec["seconds"] = time.perf_counter() - start
        history.records.append(jsonable(rec))
        for cb in callbacks:
            cb.after_epoch(run, history)
        if run.stop:
            break
    for cb in callbacks:
        cb.after_fit(run, history)


# ---------------------------------------------------------------------------------------------------- fit
def _monitor(early_stopping: EarlyStopping | None, metric_names: Sequence[str], has_val: bool) -> EarlyStopping:
    """What the run watches for its best epoch: the early-stopping metric, else the validation (or train) loss."""
    available = ["train_loss"] + (["val_loss"] + [f"val_{m}" for m in metric_names] if has_val else [])
    monitor = early_stopping.metric if early_stopping else ("val_loss" if has_val else "train_loss")
    if monitor not in available:
        raise ValueError(
            f"early stopping watches {monitor!r}, which this run does not record; recorded: {available}"
            + ("" if has_val else " (give val_data to watch validation metrics)")
        )
    return early_stopping or EarlyStopping(metric=monitor, restore_best=False)


@dataclass(frozen=True)
class FitSettings:
    """Every hyper-parameter of one :func:`fit` run (its keyword arguments but the run-time ones: device,
    progress bar, callbacks), recorded whole in ``History.meta["settings"]``.

    Example:
        >>> s = FitSettings(epochs=3, lr=0.01, train_bn=False)
        >>> s.record()["train_bn"], s.record()["epochs"], s.record()["penalty"]
        (False, 3, None)
    """

    epochs: int
    lr: float | Sequence[Mapping[str, Any]] = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    momentum: float = 0.9
    scheduler: str | None = None
    early_stopping: EarlyStopping | None = None
    metrics: tuple[str, ...] = ("accuracy",)
    class_weights: Any = None
    loss_fn: Callable[..., torch.Tensor] | None = None
    grad_clip: float | None = None
    amp: bool | None = None
    batch_size: int | None = None
    seed: int | None = None
    train_bn: bool = True
    penalty: Callable[[nn.Module], torch.Tensor] | None = None

    def record(self) -> dict[str, Any]:
        """The settings as JSON: numbers and names as they are, a callable by its ``repr``, parameter groups by
        their names and rates, an early-stopping rule by its fields."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, EarlyStopping):
                value = asdict(value)
            elif name == "lr" and not isinstance(value, int | float):
                value = [{"name": g.get("name"), "lr": g.get("lr")} for g in value]
            elif name == "class_weights" and value is not None:
                value = np.asarray(value).tolist()
            elif callable(value):
                value = repr(value)
            out[name] = value
        return jsonable(out)


def _meta(run: _Run, val_loader: DataLoader | None, settings: FitSettings) -> dict[str, Any]:
    """What a run was and did, as recorded in ``History.meta``: the settings whole, and what they resolved to."""
    return jsonable({
        "model": type(run.model).__name__,
        "optimizer": str(settings.optimizer).lower(),
        "lr": run.base_lr if isinstance(settings.lr, int | float) else None,
        "param_groups": [{"name": g["name"], "lr": g["lr"], "n_params": sum(p.numel() for p in g["params"])}
                         for g in run.groups],
        "weight_decay": settings.weight_decay, "momentum": settings.momentum,
        "scheduler": settings.scheduler, "epochs": settings.epochs,
        "batch_size": run.loader.batch_size, "steps_per_epoch": len(run.loader),
        "train_size": _dataset_len(run.loader), "val_size": _dataset_len(val_loader) if val_loader else None,
        "early_stopping": asdict(settings.early_stopping) if settings.early_stopping else None,
        "metrics": list(settings.metrics), "loss": _loss_name(settings.loss_fn, settings.class_weights),
        "class_weights": None if settings.class_weights is None else np.asarray(settings.class_weights).tolist(),
        "grad_clip": run.grad_clip, "amp": run.use_amp, "device": str(run.device), "seed": settings.seed,
        "train_bn": settings.train_bn, "penalty": repr(settings.penalty) if settings.penalty else None,
        "trainable_params": sum(p.numel() for p in run.trainable),
        "settings": settings.record(),
    })


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
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
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
    * ``penalty(model)``: a term added to each step's loss, e.g. ``tlcourse.regularize.L2SP(model)`` (the
      reported ``train_loss`` stays the data loss).

    The loop is small named steps (:func:`_train_epoch`, :func:`_validate_epoch`) with callbacks for progress,
    the best epoch / early stopping and divergence.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> x = torch.randn(64, 2); y = (x[:, 0] > 0).long()
        >>> h = fit(nn.Linear(2, 2), TensorDataset(x, y), TensorDataset(x, y), epochs=2, lr=0.1,
        ...         batch_size=16, progress=False, seed=0, device="cpu")
        >>> len(h), sorted(h.records[0])
        (2, ['epoch', 'lr', 'seconds', 'train_loss', 'val_accuracy', 'val_loss'])
    """
    metric_names = _check_metrics(metrics)
    sched_factory = choose(SCHEDULERS, scheduler, "scheduler") if scheduler is not None else None
    early_stopping = EarlyStopping(metric=early_stopping) if isinstance(early_stopping, str) else early_stopping
    n_epochs = int(epochs if epochs is not None else profile().epochs)
    if n_epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {n_epochs}")
    watcher = _monitor(early_stopping, metric_names, val_data is not None)
    settings = FitSettings(epochs=n_epochs, lr=lr, optimizer=optimizer, weight_decay=weight_decay, momentum=momentum,
                           scheduler=scheduler, early_stopping=early_stopping, metrics=tuple(metric_names),
                           class_weights=class_weights, loss_fn=loss_fn, grad_clip=grad_clip, amp=amp,
                           batch_size=batch_size, seed=seed, train_bn=train_bn, penalty=penalty)
    run = _setup(model, train_data, settings, device)
    val_loader = as_loader(val_data, batch_size, run.device) if val_data is not None else None
    history = History(meta=_meta(run, val_loader, settings))
    sched = sched_factory(run.optimizer, n_epochs, len(run.loader)) if sched_factory else None
    steps = [_Diverged(), _BestEpoch(watcher, early_stopping, n_epochs),
             _Progress(progress, n_epochs, metric_names[0] if metric_names else None),
             *[_EachEpoch(cb) for cb in callbacks]]
    with channels_last(run.model, run.device):  # NHWC convolutions: faster steps (benchmarks/SPEEDUPS.md)
        _fit_loop(run, val_loader, n_epochs, metric_names, sched, history, steps)
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


class _LRSweep(_Callback):
    """The range test's per-batch callback: raise the lr exponentially, smooth the loss, stop on divergence."""

    def __init__(self, start_lr: float, mult: float, smooth: float, diverge: float, progress: bool,
                 num_iter: int) -> None:
        self.start_lr, self.mult, self.smooth, self.diverge = start_lr, mult, smooth, diverge
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.avg, self.best, self.i = 0.0, math.inf, 0
        self.bar = trange(num_iter, desc="lr_find", disable=not progress)

    def before_batch(self, run: _Run) -> None:
        for g in run.optimizer.param_groups:
            g["lr"] = self.start_lr * self.mult**self.i

    def after_batch(self, run: _Run, loss: float, n: int) -> None:
        lr_i = self.start_lr * self.mult**self.i
        if not math.isfinite(loss):
            run.stop = True
            return
        self.avg = self.smooth * self.avg + (1 - self.smooth) * loss
        smoothed = self.avg / (1 - self.smooth ** (self.i + 1))
        self.lrs.append(lr_i)
        self.losses.append(smoothed)
        self.bar.update(1)
        self.bar.set_postfix(lr=f"{lr_i:.1e}", loss=f"{smoothed:.4f}")
        if self.i > 0 and smoothed > self.diverge * self.best:
            run.stop = True
        self.best = min(self.best, smoothed)
        self.i += 1


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
    afterwards (the optimizer is a fresh one, discarded). ``suggestion`` is the lr of steepest descent. It runs
    on ``fit``'s set-up and training step, with a per-batch callback (:class:`_LRSweep`).

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
    run = _setup(model, train_data, FitSettings(epochs=1, lr=start_lr, optimizer=optimizer, weight_decay=weight_decay,
                                                momentum=momentum, class_weights=class_weights, loss_fn=loss_fn,
                                                amp=amp, batch_size=batch_size, seed=seed), device)
    saved_state = copy.deepcopy(model.state_dict())
    saved_modes = {name: m.training for name, m in model.named_modules()}
    sweep = _LRSweep(start_lr, (end_lr / start_lr) ** (1 / (num_iter - 1)), smooth, diverge, progress, num_iter)
    try:
        with channels_last(run.model, run.device):
            _train_epoch(run, cycle_batches(run.loader, num_iter), [sweep], None)
    finally:
        sweep.bar.close()
        model.load_state_dict(saved_state)
        for name, m in model.named_modules():
            m.training = saved_modes[name]  # per module: keeps frozen BatchNorm layers in eval mode
        run.optimizer.zero_grad(set_to_none=True)
    return LRFinderResult(lrs=sweep.lrs, losses=sweep.losses, suggestion=_steepest(sweep.lrs, sweep.losses))
