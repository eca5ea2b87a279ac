"""Domain adaptation: reduce the gap between a labelled *source* domain and an unlabelled *target* domain.

Lesson 04 ("domain adaptation and negative transfer") builds on this module. It holds

* the **gradient reversal layer** and the **domain discriminator** of DANN (Ganin et al. 2016, JMLR),
  trained by :func:`fit_dann`;
* two **feature-alignment losses**, Deep CORAL (Sun & Saenko 2016) and multi-kernel MMD (Long et al. 2015),
  trained by :func:`fit_aligned` (registry :data:`ALIGNMENT_LOSSES`), with :func:`fit_source_only` as the
  baseline (the same loop without the alignment term);
* closed-form **CORAL** on fixed features (:func:`coral_align`, Sun, Feng & Saenko 2016);
* transductive **self-training** with pseudo-labels (:func:`select_pseudo_labels`, :func:`self_train`);
* the **proxy A-distance**, a measure of how far apart two domains are (:func:`proxy_a_distance`).

The losses and the gradient reversal layer are written by hand on purpose: they are what the lesson teaches.
Everything else uses the ecosystem (torch optimisers, scikit-learn classifiers, tqdm.auto progress bars).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from tqdm.auto import tqdm

from tlcourse._plumbing import channels_last, cycle_batches, grad_scaler, labelled_batch, read_batch
from tlcourse.device import autocast, get_device, seed_everything
from tlcourse.history import History

__all__ = [
    "GradReverse",
    "grad_reverse",
    "GradientReversal",
    "dann_lambda",
    "DomainDiscriminator",
    "coral_loss",
    "coral_align",
    "mmd_loss",
    "ALIGNMENT_LOSSES",
    "AdaptResult",
    "fit_dann",
    "fit_aligned",
    "fit_source_only",
    "select_pseudo_labels",
    "self_train",
    "proxy_a_distance",
]


# --------------------------------------------------------------------------------------------------------------
# Gradient reversal (DANN)
# --------------------------------------------------------------------------------------------------------------
class GradReverse(torch.autograd.Function):
    """Identity on the way forward, ``-lambd * grad`` on the way back (Ganin et al. 2016, JMLR 17(59)).

    Written by hand on purpose: this 10-line autograd function is the heart of DANN and of lesson 04.
    Use it through :func:`grad_reverse` or :class:`GradientReversal`.

    Example:
        >>> x = torch.ones(2, requires_grad=True)
        >>> GradReverse.apply(x, 1.0).sum().backward()
        >>> x.grad.tolist()
        [-1.0, -1.0]
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lambd: float) -> torch.Tensor:
        ctx.lambd = float(lambd)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lambd * grad_output, None


def grad_reverse(x: torch.Tensor, lambd: float = 1.0) -> torch.Tensor:
    """Gradient reversal: returns ``x`` unchanged, but multiplies the gradient flowing back by ``-lambd``.

    Placed between a feature extractor and a domain discriminator, it makes the discriminator *minimise* the
    domain loss while the features *maximise* it, so that the features become domain-invariant
    (Ganin & Lempitsky 2015, ICML; Ganin et al. 2016, JMLR). Written by hand on purpose (lesson 04).

    Example:
        >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> y = grad_reverse(x, lambd=0.5)
        >>> torch.equal(y, x)
        True
        >>> y.sum().backward(); x.grad.tolist()
        [-0.5, -0.5]
    """
    return GradReverse.apply(x, lambd)


class GradientReversal(nn.Module):
    """The gradient reversal layer as a module; set ``.lambd`` during training to schedule it (see :func:`dann_lambda`).

    Written by hand on purpose: it is what lesson 04 teaches (Ganin et al. 2016, JMLR).

    Example:
        >>> grl = GradientReversal(lambd=0.0)
        >>> grl.lambd = dann_lambda(0.5)
        >>> grl(torch.zeros(3, 4)).shape
        torch.Size([3, 4])
    """

    def __init__(self, lambd: float = 1.0) -> None:
        super().__init__()
        self.lambd = float(lambd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.lambd)

    def extra_repr(self) -> str:
        return f"lambd={self.lambd:.4g}"


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """The DANN schedule of the reversal weight: ``2 / (1 + exp(-gamma * p)) - 1``, ``p`` = training progress in [0, 1].

    It starts at 0 (the discriminator's noisy early gradients do not disturb the features) and rises to ~1
    (Ganin et al. 2016, JMLR, section 5.2.2, with gamma = 10). ``gamma = 0`` keeps lambda at 0: no adaptation.

    Example:
        >>> dann_lambda(0.0)
        0.0
        >>> round(dann_lambda(1.0), 4)
        0.9999
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must lie in [0, 1] (fraction of training done), got {progress}")
    return float(2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


class DomainDiscriminator(nn.Sequential):
    """A small MLP that tells source features (label 1) from target features (label 0): one logit per row.

    Linear-ReLU-Dropout-Linear-ReLU-Linear; train it with ``nn.BCEWithLogitsLoss`` behind a
    :class:`GradientReversal` (Ganin et al. 2016, JMLR).

    Example:
        >>> DomainDiscriminator(8, hidden=16)(torch.zeros(5, 8)).shape
        torch.Size([5, 1])
    """

    def __init__(self, in_features: int, hidden: int = 256, dropout: float = 0.5) -> None:
        if in_features < 1 or hidden < 1:
            raise ValueError(f"in_features and hidden must be positive, got {in_features} and {hidden}")
        super().__init__(
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 1),
        )


# --------------------------------------------------------------------------------------------------------------
# Alignment losses
# --------------------------------------------------------------------------------------------------------------
def _check_pair(source: torch.Tensor, target: torch.Tensor, name: str, min_rows: int = 2) -> None:
    if source.ndim != 2 or target.ndim != 2:
        raise ValueError(
            f"{name} expects 2-D feature batches (rows x features), got shapes {tuple(source.shape)} and "
            f"{tuple(target.shape)}; flatten them first (x.flatten(1))"
        )
    if source.shape[1] != target.shape[1]:
        raise ValueError(
            f"{name}: source and target must have the same number of features, got {source.shape[1]} and "
            f"{target.shape[1]}"
        )
    if source.shape[0] < min_rows or target.shape[0] < min_rows:
        raise ValueError(
            f"{name} needs at least {min_rows} rows per domain, got {source.shape[0]} and {target.shape[0]}; "
            "use a larger batch (and drop_last=True in the DataLoader)"
        )


def _covariance(x: torch.Tensor) -> torch.Tensor:
    xc = x - x.mean(dim=0, keepdim=True)
    return xc.T @ xc / (x.shape[0] - 1)


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL loss: ``||C_s - C_t||_F^2 / (4 d^2)`` between the batch covariances of two feature batches.

    Sun & Saenko 2016, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation", ECCV workshops.
    Written by hand on purpose (lesson 04); differentiable, computed in float32.

    Example:
        >>> x = torch.randn(32, 4)
        >>> float(coral_loss(x, x))
        0.0
        >>> float(coral_loss(x, 3 * x)) > 0
        True
    """
    _check_pair(source, target, "coral_loss")
    d = source.shape[1]
    diff = _covariance(source.float()) - _covariance(target.float())
    return (diff * diff).sum() / (4.0 * d * d)


def mmd_loss(
    source: torch.Tensor,
    target: torch.Tensor,
    kernel_mults: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0),
    bandwidth: float | None = None,
) -> torch.Tensor:
    """Multi-kernel Gaussian MMD² between two feature batches (biased estimator), as in DAN (Long et al. 2015, ICML).

    ``k(a, b) = sum_m exp(-||a - b||² / (2 * m * s))`` where ``s`` is the mean squared pairwise distance of the
    joint batch (detached; the "median/mean heuristic") unless ``bandwidth`` gives it, and ``m`` runs over
    ``kernel_mults``. MMD² = mean k(S,S) + mean k(T,T) − 2 mean k(S,T) (Gretton et al. 2012, JMLR).
    Written by hand on purpose (lesson 04).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g)
        >>> float(mmd_loss(a, b)) < float(mmd_loss(a, b + 3))
        True
    """
    _check_pair(source, target, "mmd_loss", min_rows=1)
    if len(kernel_mults) == 0 or any(m <= 0 for m in kernel_mults):
        raise ValueError(f"kernel_mults must be a non-empty sequence of positive numbers, got {kernel_mults!r}")
    if bandwidth is not None and bandwidth <= 0:
        raise ValueError(f"bandwidth must be positive (or None for the mean heuristic), got {bandwidth}")
    n = source.shape[0]
    z = torch.cat([source, target], dim=0).float()
    sq = torch.cdist(z, z).pow(2)
    if bandwidth is None:
        m = z.shape[0]
        s = sq.detach().sum() / max(m * m - m, 1)
        s = s.clamp_min(1e-12)
    else:
        s = torch.tensor(float(bandwidth), device=z.device)
    kernel = sum(torch.exp(-sq / (2.0 * mult * s)) for mult in kernel_mults)
    k_ss = kernel[:n, :n].mean()
    k_tt = kernel[n:, n:].mean()
    k_st = kernel[:n, n:].mean()
    return k_ss + k_tt - 2.0 * k_st


ALIGNMENT_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "coral": coral_loss,
    "mmd": mmd_loss,
}
"""Named feature-alignment losses for :func:`fit_aligned`: ``loss(source_feats, target_feats) -> scalar``."""


def _matrix_power_sym(c: np.ndarray, power: float) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    w = np.clip(w, 1e-12, None)
    return (v * w**power) @ v.T


def coral_align(Xs: np.ndarray, Xt: np.ndarray, eps: float = 1.0) -> np.ndarray:
    """Closed-form CORAL: whiten the source features, then re-colour them with the target covariance.

    ``Xs @ (C_s + eps I)^(-1/2) @ (C_t + eps I)^(1/2)`` (Sun, Feng & Saenko 2016, "Return of Frustratingly Easy
    Domain Adaptation", AAAI). Means are left as they are, as in the paper (which standardises features first);
    ``eps`` regularises the covariances (the paper uses 1 on standardised features). Train any classifier on
    the aligned source features and apply it to the unchanged target features.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> Xs, Xt = rng.normal(size=(200, 3)), 5 * rng.normal(size=(200, 3))
        >>> coral_align(Xs, Xt, eps=1e-3).std(axis=0).round(0).tolist()
        [5.0, 5.0, 5.0]
    """
    Xs = np.asarray(Xs, dtype=np.float64)
    Xt = np.asarray(Xt, dtype=np.float64)
    if Xs.ndim != 2 or Xt.ndim != 2 or Xs.shape[1] != Xt.shape[1]:
        raise ValueError(
            f"coral_align expects two 2-D arrays with the same number of columns, got {Xs.shape} and {Xt.shape}"
        )
    if Xs.shape[0] < 2 or Xt.shape[0] < 2:
        raise ValueError(f"coral_align needs at least 2 rows per domain, got {Xs.shape[0]} and {Xt.shape[0]}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    eye = np.eye(Xs.shape[1])
    cs = np.cov(Xs, rowvar=False) + eps * eye
    ct = np.cov(Xt, rowvar=False) + eps * eye
    return Xs @ _matrix_power_sym(cs, -0.5) @ _matrix_power_sym(ct, 0.5)


# --------------------------------------------------------------------------------------------------------------
# Training loops
# --------------------------------------------------------------------------------------------------------------
@dataclass
class AdaptResult:
    """What an adaptation run returns: the trained model, the per-epoch history and the method name.

    ``model`` is ``nn.Sequential(feature_extractor, classifier)``; ``history`` is a
    :class:`~tlcourse.history.History` with one record per epoch: ``epoch``, ``cls_loss``, ``domain_loss``
    (DANN) or ``align_loss`` (CORAL/MMD), ``lambda`` and ``seconds`` (``history.to_frame()`` for a table).

    Example:
        >>> m = nn.Sequential(nn.Identity(), nn.Linear(2, 2))
        >>> r = AdaptResult(model=m, method="source_only")
        >>> r.predict([torch.zeros(3, 2)]).shape
        (3,)
    """

    model: nn.Sequential
    history: History = field(default_factory=History)
    method: str = ""

    @torch.no_grad()
    def predict_proba(self, x_loader: Iterable[Any]) -> np.ndarray:
        """Softmax class probabilities for every row a loader yields (batches ``(x, y)`` or ``x``).

        Example:
            >>> m = nn.Sequential(nn.Identity(), nn.Linear(2, 3))
            >>> AdaptResult(m).predict_proba([torch.zeros(4, 2)]).shape
            (4, 3)
        """
        self.model.eval()
        try:
            device = next(self.model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
        out = []
        for batch in x_loader:
            with autocast(device):
                logits = read_batch(batch, device).forward(self.model)
            out.append(torch.softmax(logits.float(), dim=1).cpu())
        if not out:
            raise ValueError("the loader yielded no batches")
        return torch.cat(out).numpy()

    def predict(self, x_loader: Iterable[Any]) -> np.ndarray:
        """Predicted class indices for every row a loader yields (batches ``(x, y)`` or ``x``).

        Example:
            >>> m = nn.Sequential(nn.Identity(), nn.Linear(2, 3))
            >>> AdaptResult(m).predict([(torch.zeros(4, 2), torch.zeros(4))]).tolist()[:1] in ([0], [1], [2])
            True
        """
        return self.predict_proba(x_loader).argmax(axis=1)


def _feature_dim(feature_extractor: nn.Module, x: torch.Tensor) -> int:
    was_training = feature_extractor.training
    feature_extractor.eval()
    with torch.no_grad():
        d = feature_extractor(x[:2]).flatten(1).shape[1]
    feature_extractor.train(was_training)
    return int(d)


@dataclass
class _AdaptRun:
    """One adaptation run's moving parts, set up once by :func:`_setup_run`."""

    feature_extractor: nn.Module
    classifier: nn.Module
    model: nn.Sequential
    extra_modules: Sequence[nn.Module]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    source: Iterator[Any]
    target: Iterator[Any] | None
    adapt_term: Callable[[torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, dict[str, float]]] | None
    target_grad: bool


def _setup_run(feature_extractor: nn.Module, classifier: nn.Module, source_loader: Iterable[Any],
               target_loader: Iterable[Any] | None, lr: float, weight_decay: float,
               device: torch.device | str | None, adapt_term: Any, extra_modules: Sequence[nn.Module],
               target_grad: bool) -> _AdaptRun:
    dev = get_device(device)
    model = nn.Sequential(feature_extractor, classifier).to(dev)
    for m in extra_modules:
        m.to(dev)
    params = [p for m in (model, *extra_modules) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    scaler = grad_scaler(dev)
    target = cycle_batches(target_loader) if target_loader is not None and adapt_term is not None else None
    return _AdaptRun(feature_extractor, classifier, model, extra_modules, optimizer, scaler, dev,
                     cycle_batches(source_loader), target, adapt_term, target_grad)


def _target_features(run: _AdaptRun) -> torch.Tensor:
    """The next target batch's features: with gradient, or (source-only baseline) in eval mode without it."""
    xt = read_batch(next(run.target), run.device).inputs
    if run.target_grad:
        return run.feature_extractor(xt)
    run.feature_extractor.eval()
    with torch.no_grad():
        ft = run.feature_extractor(xt)
    run.feature_extractor.train()
    return ft


def _adapt_step(run: _AdaptRun, weight: float) -> dict[str, float]:
    """One step: cross-entropy on a source batch + the adaptation term on (source, target) features."""
    from tlcourse.train import apply_gradients

    source = labelled_batch(next(run.source), run.device, "the source loader")
    xs, ys = source.inputs, source.targets.long()
    with autocast(run.device):
        fs = run.feature_extractor(xs)
        cls = F.cross_entropy(run.classifier(fs).float(), ys)
        loss, logs = cls, {"cls_loss": float(cls.detach())}
        if run.target is not None:
            term, extra = run.adapt_term(fs.flatten(1), _target_features(run).flatten(1), weight)
            loss = loss + term
            logs.update(extra)
    run.optimizer.zero_grad(set_to_none=True)
    apply_gradients(loss, run.optimizer, run.scaler)
    return logs


def _adapt_epoch(run: _AdaptRun, steps: range, weight_at: Callable[[int], float], bar: Any,
                 weight_label: str) -> dict[str, float]:
    """``steps`` adaptation steps (global step numbers); the epoch's mean of every logged loss, and λ."""
    for module in (run.model, *run.extra_modules):
        module.train()
    sums: dict[str, float] = {}
    weight = 0.0
    for count, step in enumerate(steps, start=1):
        weight = weight_at(step)
        for key, value in _adapt_step(run, weight).items():
            sums[key] = sums.get(key, 0.0) + value
        bar.update(1)
        if (step + 1) % 5 == 0 or step + 1 == bar.total:
            bar.set_postfix({**{k: f"{v / count:.3f}" for k, v in sums.items()}, weight_label: f"{weight:.2f}"},
                            refresh=False)
    return {**{k: v / len(steps) for k, v in sums.items()}, "lambda": weight}


@dataclass(frozen=True)
class _Term:
    """What a method adds to the source loss: ``loss(f_s, f_t, weight)`` with its weight over training progress.

    ``target_grad=False`` (the source-only baseline): target features are computed in eval mode without gradient,
    for monitoring only. ``loss_key`` is the history column that must exist whenever there is a target loader.
    """

    method: str
    loss: Callable[[torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, dict[str, float]]]
    weight_at: Callable[[float], float]
    extra_modules: Sequence[nn.Module] = ()
    loss_key: str = "align_loss"
    weight_label: str = "λ"
    target_grad: bool = True


def _run(
    term: _Term,
    feature_extractor: nn.Module,
    classifier: nn.Module,
    source_loader: Iterable[Any],
    target_loader: Iterable[Any] | None,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    device: torch.device | str | None,
    progress: bool,
) -> AdaptResult:
    """The one loop behind fit_dann / fit_aligned / fit_source_only: epochs of :func:`_adapt_step`.

    Each step: a source batch (x, y) and a target batch x; loss = CE(source) + term.loss(f_s, f_t, weight).
    Without gradient through the target (``term.target_grad=False``) the target data change nothing, not even
    BatchNorm statistics.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    steps = max(len(source_loader), len(target_loader) if target_loader is not None else 0)  # type: ignore[arg-type]
    if steps == 0:
        raise ValueError("the source loader is empty")
    run = _setup_run(feature_extractor, classifier, source_loader, target_loader, lr, weight_decay, device,
                     term.loss, term.extra_modules, term.target_grad)
    method = term.method
    total = epochs * steps
    history = History(meta={"method": method, "epochs": epochs, "steps_per_epoch": steps, "lr": lr,
                            "weight_decay": weight_decay, "device": str(run.device)})
    with tqdm(total=total, desc=method, disable=not progress, leave=False) as bar, channels_last(run.model, run.device):
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            row = _adapt_epoch(run, range((epoch - 1) * steps, epoch * steps),
                               lambda step: term.weight_at(step / max(total - 1, 1)), bar, term.weight_label)
            if run.target is not None:
                row.setdefault(term.loss_key, float("nan"))
            history.records.append({"epoch": epoch, **row, "seconds": time.perf_counter() - t0})
    run.model.eval()
    return AdaptResult(model=run.model, history=history, method=method)


def fit_dann(
    feature_extractor: nn.Module,
    classifier: nn.Module,
    source_loader: Iterable[Any],
    target_loader: Iterable[Any],
    *,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    discriminator: nn.Module | None = None,
    gamma: float = 10.0,
    device: torch.device | str | None = None,
    progress: bool = True,
    seed: int | None = None,
) -> AdaptResult:
    """Domain-adversarial training (DANN; Ganin et al. 2016, JMLR 17(59):1-35).

    Features + classifier learn the source labels; a domain discriminator, fed the features through a
    :class:`GradientReversal` whose lambda follows :func:`dann_lambda` (``gamma``), learns to tell source from
    target, and the reversed gradient pushes the features to make the domains indistinguishable. Transductive:
    ``target_loader`` holds the unlabelled target data (batches ``x`` or ``(x, y)``; labels are ignored).
    Each epoch walks the longer loader and cycles the shorter. ``gamma=0`` keeps lambda at 0 (no adaptation).
    The default discriminator is ``DomainDiscriminator(feature_dim)``. History rows carry ``domain_loss`` and
    ``domain_acc`` (near 0.5 when the features are domain-invariant).

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> src = DataLoader(TensorDataset(torch.randn(32, 2), torch.randint(0, 2, (32,))), batch_size=16)
        >>> tgt = DataLoader(TensorDataset(torch.randn(32, 2)), batch_size=16)
        >>> r = fit_dann(nn.Linear(2, 8), nn.Linear(8, 2), src, tgt, epochs=1, progress=False, device="cpu")
        >>> sorted(r.history[0])
        ['cls_loss', 'domain_acc', 'domain_loss', 'epoch', 'lambda', 'seconds']
    """
    if seed is not None:
        seed_everything(seed)
    if discriminator is None:
        dev = get_device(device)
        xs = labelled_batch(next(iter(source_loader)), dev, "the source loader").inputs
        discriminator = DomainDiscriminator(_feature_dim(feature_extractor.to(dev), xs))
    grl = GradientReversal(0.0)
    disc = discriminator

    def domain_term(fs: torch.Tensor, ft: torch.Tensor, lambd: float) -> tuple[torch.Tensor, dict[str, float]]:
        grl.lambd = lambd
        feats = grl(torch.cat([fs, ft], dim=0))
        labels = torch.cat([torch.ones(len(fs)), torch.zeros(len(ft))]).to(feats.device)
        logits = disc(feats).float().squeeze(1)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        acc = ((logits > 0).float() == labels).float().mean()
        return loss, {"domain_loss": float(loss.detach()), "domain_acc": float(acc)}

    def schedule(p: float) -> float:
        return dann_lambda(min(max(p, 0.0), 1.0), gamma)

    term = _Term("dann", domain_term, schedule, extra_modules=(disc,), loss_key="domain_loss")
    return _run(term, feature_extractor, classifier, source_loader, target_loader,
                epochs=epochs, lr=lr, weight_decay=weight_decay, device=device, progress=progress)


def _alignment_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    try:
        return ALIGNMENT_LOSSES[name]
    except KeyError:
        raise ValueError(
            f"unknown alignment loss {name!r}; choose one of {sorted(ALIGNMENT_LOSSES)} (see ALIGNMENT_LOSSES)"
        ) from None


def fit_aligned(
    feature_extractor: nn.Module,
    classifier: nn.Module,
    source_loader: Iterable[Any],
    target_loader: Iterable[Any] | None,
    *,
    loss: str = "coral",
    weight: float = 1.0,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    device: torch.device | str | None = None,
    progress: bool = True,
    seed: int | None = None,
) -> AdaptResult:
    """Source classification loss + ``weight`` × an alignment loss between source and target features.

    ``loss`` names an entry of :data:`ALIGNMENT_LOSSES`: ``"coral"`` (Deep CORAL, Sun & Saenko 2016) or
    ``"mmd"`` (multi-kernel MMD, DAN, Long et al. 2015). The alignment is applied to the flattened output of
    ``feature_extractor`` (the classifier's input). Transductive: ``target_loader`` holds the unlabelled target
    data (batches ``x`` or ``(x, y)``; labels ignored). With ``weight=0`` this is the source-only baseline, which
    still *reports* the alignment loss (``align_loss`` in the history) so the growing domain gap can be watched.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> src = DataLoader(TensorDataset(torch.randn(32, 2), torch.randint(0, 2, (32,))), batch_size=16)
        >>> tgt = DataLoader(TensorDataset(torch.randn(32, 2)), batch_size=16)
        >>> r = fit_aligned(nn.Linear(2, 8), nn.Linear(8, 2), src, tgt, loss="mmd", epochs=1, progress=False)
        >>> r.method, sorted(r.history[0])
        ('mmd', ['align_loss', 'cls_loss', 'epoch', 'lambda', 'seconds'])
    """
    loss_fn = _alignment_loss(loss)
    if weight < 0:
        raise ValueError(f"weight must be >= 0 (0 = source-only), got {weight}")
    if seed is not None:
        seed_everything(seed)

    def align_term(fs: torch.Tensor, ft: torch.Tensor, w: float) -> tuple[torch.Tensor, dict[str, float]]:
        if w == 0.0:  # baseline: monitor the gap, let no gradient through it
            with torch.no_grad():
                value = loss_fn(fs.detach(), ft.detach())
            return torch.zeros((), device=fs.device), {"align_loss": float(value)}
        value = loss_fn(fs, ft)
        return w * value, {"align_loss": float(value.detach())}

    term = _Term(loss if weight > 0 else "source_only", align_term, lambda _p: float(weight),
                 weight_label="weight", target_grad=weight > 0)
    return _run(term, feature_extractor, classifier, source_loader, target_loader,
                epochs=epochs, lr=lr, weight_decay=weight_decay, device=device, progress=progress)


def fit_source_only(
    feature_extractor: nn.Module,
    classifier: nn.Module,
    source_loader: Iterable[Any],
    target_loader: Iterable[Any] | None = None,
    **settings: Any,
) -> AdaptResult:
    """The baseline: train on the source labels only — :func:`fit_aligned` with ``weight=0``, taking the same
    keyword arguments (``epochs``, ``lr``, ``weight_decay``, ``loss``, ``device``, ``progress``, ``seed``), declared
    there only.

    When ``target_loader`` is given, the target data get no gradient, but the alignment loss named by ``loss``
    is measured on every step and logged as ``align_loss`` (how far apart the domains drift).

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> src = DataLoader(TensorDataset(torch.randn(32, 2), torch.randint(0, 2, (32,))), batch_size=16)
        >>> r = fit_source_only(nn.Linear(2, 8), nn.Linear(8, 2), src, epochs=2, progress=False)
        >>> r.method, len(r.history)
        ('source_only', 2)
    """
    if "weight" in settings:
        raise TypeError("fit_source_only trains with weight=0 (no alignment); use fit_aligned for another weight")
    return fit_aligned(feature_extractor, classifier, source_loader, target_loader, weight=0.0, **settings)


# --------------------------------------------------------------------------------------------------------------
# Self-training (pseudo-labels)
# --------------------------------------------------------------------------------------------------------------
def select_pseudo_labels(
    probs: np.ndarray | torch.Tensor, threshold: float = 0.9, *, balance: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The pseudo-label step of self-training: keep the rows whose top class probability is ``>= threshold``.

    Returns ``(indices, labels)``: the kept row indices (ascending) and their argmax class indices.
    ``balance=True`` caps every class at the count of the *rarest* selected class, keeping each class's most
    confident rows — a simple guard against one class swallowing the pseudo-labels (cf. class-balanced
    self-training, Zou et al. 2018, ECCV). ``probs`` must be probabilities (rows sum to 1), not logits.

    Example:
        >>> p = np.array([[0.95, 0.05], [0.6, 0.4], [0.02, 0.98]])
        >>> idx, lab = select_pseudo_labels(p, threshold=0.9)
        >>> idx.tolist(), lab.tolist()
        ([0, 2], [0, 1])
    """
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().float().cpu().numpy()
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probs must be 2-D (rows x classes, at least 2 classes), got shape {p.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1] (a probability), got {threshold}")
    if p.size and (p.min() < -1e-6 or p.max() > 1 + 1e-6 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3)):
        raise ValueError(
            "probs must hold probabilities whose rows sum to 1; got something else (logits?) — apply "
            "torch.softmax(logits, dim=1) or use predict_proba"
        )
    conf = p.max(axis=1)
    labels = p.argmax(axis=1)
    keep = np.flatnonzero(conf >= threshold)
    if balance and keep.size:
        counts = np.bincount(labels[keep], minlength=p.shape[1])
        cap = counts[counts > 0].min()
        chosen = []
        for c in np.flatnonzero(counts):
            rows = keep[labels[keep] == c]
            chosen.append(rows[np.argsort(-conf[rows], kind="stable")[:cap]])
        keep = np.sort(np.concatenate(chosen))
    return keep.astype(np.int64), labels[keep].astype(np.int64)


def self_train(
    estimator: Any,
    X_source: np.ndarray,
    y_source: np.ndarray,
    X_target: np.ndarray,
    *,
    threshold: float = 0.9,
    rounds: int = 3,
    balance: bool = False,
    y_target: np.ndarray | None = None,
) -> tuple[Any, list[dict[str, float]]]:
    """Transductive self-training on features with any scikit-learn classifier that has ``predict_proba``.

    Round 0 fits a clone of ``estimator`` on the source. Each later round pseudo-labels the confident target
    rows (:func:`select_pseudo_labels`) with the current model and fits a fresh clone on source + pseudo-labelled
    target (Yarowsky 1995; Lee 2013; for domain adaptation, e.g. Zou et al. 2018). Returns the last fitted
    estimator and a log with one dict per round: ``round``, ``n_pseudo``, and, when ``y_target`` is given (for
    teaching only — real target labels are unknown), ``pseudo_acc`` (accuracy of the pseudo-labels used to fit
    that round) and ``target_acc`` (accuracy of that round's model on the target).

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> rng = np.random.default_rng(0)
        >>> Xs = rng.normal(size=(40, 2)); ys = (Xs[:, 0] > 0).astype(int)
        >>> est, log = self_train(LogisticRegression(), Xs, ys, Xs + 0.5, rounds=2)
        >>> [row["round"] for row in log]
        [0, 1, 2]
    """
    if not hasattr(estimator, "predict_proba"):
        raise ValueError(
            f"{type(estimator).__name__} has no predict_proba; use e.g. LogisticRegression, KNeighborsClassifier or "
            "CalibratedClassifierCV(SVC())"
        )
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    Xs, ys, Xt = np.asarray(X_source), np.asarray(y_source), np.asarray(X_target)
    if Xs.ndim != 2 or Xt.ndim != 2 or Xs.shape[1] != Xt.shape[1]:
        raise ValueError(f"X_source and X_target must be 2-D with the same columns, got {Xs.shape} and {Xt.shape}")
    if len(ys) != len(Xs):
        raise ValueError(f"X_source has {len(Xs)} rows but y_source has {len(ys)}")
    yt = None if y_target is None else np.asarray(y_target)
    if yt is not None and len(yt) != len(Xt):
        raise ValueError(f"X_target has {len(Xt)} rows but y_target has {len(yt)}")

    model = clone(estimator).fit(Xs, ys)
    log: list[dict[str, float]] = []

    def record(r: int, n: int, pseudo_acc: float | None) -> None:
        row: dict[str, float] = {"round": r, "n_pseudo": n}
        if yt is not None:
            row["pseudo_acc"] = float("nan") if pseudo_acc is None else pseudo_acc
            row["target_acc"] = float(np.mean(model.predict(Xt) == yt))
        log.append(row)

    record(0, 0, None)
    for r in range(1, rounds + 1):
        idx, cols = select_pseudo_labels(model.predict_proba(Xt), threshold, balance=balance)
        pseudo = np.asarray(model.classes_)[cols]
        acc = float(np.mean(pseudo == yt[idx])) if (yt is not None and idx.size) else None
        model = clone(estimator).fit(np.concatenate([Xs, Xt[idx]]), np.concatenate([ys, pseudo]))
        record(r, int(idx.size), acc)
    return model, log


# --------------------------------------------------------------------------------------------------------------
# Measuring the domain gap
# --------------------------------------------------------------------------------------------------------------
def proxy_a_distance(
    source_feats: np.ndarray | torch.Tensor, target_feats: np.ndarray | torch.Tensor, *, seed: int = 0
) -> float:
    """Proxy A-distance ``d_A = 2 (1 - 2 eps)``: how well a linear classifier tells the two domains apart.

    A standardised logistic regression learns source-vs-target on a stratified half of the pooled rows; ``eps``
    is its error on the other half. ``d_A`` ≈ 0 when the domains are indistinguishable and 2 when they are
    perfectly separable; clipped to [0, 2] (Ben-David et al. 2007, NIPS; Ganin et al. 2016, JMLR, section 6.1.4).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = rng.normal(size=(200, 5))
        >>> proxy_a_distance(a, a + 10)
        2.0
    """
    def as_np(x: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            x = x.detach().float().cpu().numpy()
        return np.asarray(x, dtype=np.float64)

    Xs, Xt = as_np(source_feats), as_np(target_feats)
    if Xs.ndim != 2 or Xt.ndim != 2 or Xs.shape[1] != Xt.shape[1]:
        raise ValueError(
            f"proxy_a_distance expects two 2-D arrays with the same number of columns, got {Xs.shape} and "
            f"{Xt.shape}; flatten features first"
        )
    if len(Xs) < 4 or len(Xt) < 4:
        raise ValueError(f"proxy_a_distance needs at least 4 rows per domain, got {len(Xs)} and {len(Xt)}")
    X = np.concatenate([Xs, Xt])
    d = np.concatenate([np.zeros(len(Xs), dtype=int), np.ones(len(Xt), dtype=int)])
    X_tr, X_te, d_tr, d_te = train_test_split(X, d, test_size=0.5, stratify=d, random_state=seed)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    clf.fit(X_tr, d_tr)
    err = 1.0 - float(np.mean(clf.predict(X_te) == d_te))
    return float(np.clip(2.0 * (1.0 - 2.0 * err), 0.0, 2.0))
