"""How sure is a measured difference? Intervals for the evidence a lesson's claim rests on.

A validation split of 78 images (BreastMNIST) or 153 (hymenoptera) moves a metric by a whole point per image: a
lesson that *chooses* between two models on it should first ask whether the gap it sees is larger than that noise.
Every function here returns an :class:`Interval` (an estimate, its interval and how it was obtained), which
``tlcourse.claim`` turns into one of three outcomes — held, within noise, did not hold:

- :func:`paired_bootstrap`: two models scored on the same examples (one run, the examples' noise);
- :func:`metric_interval`: one model's metric against a fixed number, e.g. a published baseline;
- :func:`seed_difference`: a number measured over several seeds (the training's noise), paired by seed;
- :func:`proportion_interval` / :func:`two_proportions`: accuracies as counts (Wilson / Newcombe intervals).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats
from sklearn.metrics import roc_auc_score

__all__ = ["Interval", "PairedDifference", "paired_bootstrap", "metric_interval", "seed_difference",
           "proportion_interval", "two_proportions", "accuracy"]

Metric = Callable[[np.ndarray, np.ndarray], float]


def accuracy(y_true: np.ndarray, predicted: np.ndarray) -> float:
    """The share of ``predicted`` equal to ``y_true``: a ``metric`` for the bootstrap on predicted labels.

    Example:
        >>> accuracy(np.array([0, 1, 1]), np.array([0, 1, 0]))
        0.6666666666666666
    """
    return float(np.mean(np.asarray(y_true) == np.asarray(predicted)))


@dataclass(frozen=True)
class Interval:
    """An estimated difference ``a - b`` (or value minus a reference), its interval ``[low, high]``, and how the
    interval was obtained (``method``, e.g. "paired bootstrap over 153 images")."""

    difference: float
    low: float
    high: float
    confidence: float
    method: str = "paired bootstrap"

    @property
    def a_better(self) -> bool:
        """True when the whole interval lies above zero: the data favour ``a`` beyond their noise."""
        return self.low > 0

    @property
    def b_better(self) -> bool:
        """True when the whole interval lies below zero: the data favour ``b`` beyond their noise."""
        return self.high < 0

    def __str__(self) -> str:
        return (f"{self.difference:+.3f} ({self.confidence:.0%} interval {self.low:+.3f} to {self.high:+.3f}, "
                f"{self.method})")


#: The name lessons written before the other intervals existed use.
PairedDifference = Interval


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return float(_scipy_stats.norm.ppf(0.5 + confidence / 2))


def _strata(y: np.ndarray) -> list[np.ndarray]:
    """Indices of each class: resampling within them keeps every class in every resample (AUC needs both)."""
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(f"y_true holds one class only ({classes.tolist()}): nothing to rank or compare")
    return [np.flatnonzero(y == c) for c in classes]


def paired_bootstrap(y_true: object, scores_a: object, scores_b: object, metric: Metric = roc_auc_score, *,
                     n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> PairedDifference:
    """``metric(y, a) - metric(y, b)`` with a percentile interval from a **paired, stratified** bootstrap.

    Both models are rescored on the same resampled examples (paired: the noise they share cancels), and every
    resample keeps each class's count (stratified), so a rare class never drops out. ``metric`` takes
    ``(y_true, scores)``: the default is ROC AUC on positive-class scores; pass e.g.
    ``lambda y, p: np.mean(y == p)`` with predicted labels for accuracy. scipy's ``bootstrap`` does not stratify,
    hence these few lines.

    Example:
        >>> y = np.array([0, 0, 0, 1, 1, 1] * 10)
        >>> good, noise = y + np.linspace(0, 0.5, 60), np.random.default_rng(0).random(60)
        >>> gap = paired_bootstrap(y, good, noise)
        >>> gap.a_better, round(gap.difference, 2) > 0.3
        (True, True)
    """
    y, a, b = (np.asarray(v).reshape(-1) for v in (y_true, scores_a, scores_b))
    if not (y.size == a.size == b.size):
        raise ValueError(f"y_true, scores_a and scores_b must be equally long, got {y.size}, {a.size}, {b.size}")
    gap, low, high = _bootstrap(y, lambda i: metric(y[i], a[i]) - metric(y[i], b[i]), n_resamples, confidence,
                                seed)
    return Interval(gap, low, high, float(confidence), f"paired bootstrap over {y.size} examples")


def _bootstrap(y: np.ndarray, statistic: Callable[[np.ndarray], float], n_resamples: int, confidence: float,
               seed: int) -> tuple[float, float, float]:
    """``statistic`` on all examples and the percentile interval of it over stratified resamples of indices."""
    _z(confidence)
    if n_resamples < 100:
        raise ValueError(f"n_resamples={n_resamples} is too few for a percentile interval: use 100 or more")
    strata, rng = _strata(y), np.random.default_rng(seed)
    values = np.empty(n_resamples)
    for k in range(n_resamples):
        values[k] = statistic(np.concatenate([rng.choice(s, size=s.size, replace=True) for s in strata]))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(statistic(np.arange(y.size))), float(low), float(high)


def metric_interval(y_true: object, scores: object, against: float, metric: Metric = roc_auc_score, *,
                    n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """``metric(y, scores) - against`` with a stratified bootstrap interval: one model against a fixed number.

    Use it to compare a run with a published figure (whose own noise is unknown, so the interval is this run's).

    Example:
        >>> y = np.array([0, 1] * 40)
        >>> gap = metric_interval(y, y + np.random.default_rng(0).normal(0, 0.6, 80), against=0.5)
        >>> gap.low > 0
        True
    """
    y, a = np.asarray(y_true).reshape(-1), np.asarray(scores).reshape(-1)
    if y.size != a.size:
        raise ValueError(f"y_true and scores must be equally long, got {y.size} and {a.size}")
    gap, low, high = _bootstrap(y, lambda i: metric(y[i], a[i]) - against, n_resamples, confidence, seed)
    return Interval(gap, low, high, float(confidence), f"bootstrap over {y.size} examples, against {against:g}")


def seed_difference(a: Sequence[float], b: Sequence[float] | float, *, confidence: float = 0.95) -> Interval:
    """Mean of ``a - b`` over seeds with a Student-t interval: the training's noise, paired by seed.

    ``a[i]`` and ``b[i]`` come from the same seed (same split and initial head); ``b`` may be one fixed number
    (a published baseline). At least two seeds: one seed has no spread to measure.

    Example:
        >>> gap = seed_difference([0.95, 0.96, 0.94], [0.94, 0.96, 0.93])
        >>> round(gap.difference, 4), gap.low < 0 < gap.high
        (0.0067, True)
    """
    a_arr = np.asarray(a, dtype=float).reshape(-1)
    b_arr = np.full(a_arr.size, float(b)) if np.isscalar(b) else np.asarray(b, dtype=float).reshape(-1)
    if a_arr.size != b_arr.size:
        raise ValueError(f"a and b need one value per seed each, got {a_arr.size} and {b_arr.size}")
    if a_arr.size < 2:
        raise ValueError("one seed has no spread: run two or more, or use paired_bootstrap on the examples")
    _z(confidence)
    d = a_arr - b_arr
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
    mean = float(d.mean())
    return Interval(mean, mean - half, mean + half, confidence, f"t interval over {d.size} seeds")


def _wilson(correct: int, n: int, confidence: float) -> tuple[float, float, float]:
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n and n > 0, got correct={correct}, n={n}")
    z, p = _z(confidence), correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return p, float(centre - half), float(centre + half)


def proportion_interval(correct: int, n: int, against: float = 0.0, *, confidence: float = 0.95) -> Interval:
    """An accuracy ``correct / n`` minus ``against`` with a Wilson score interval (binomial noise of ``n`` items).

    Example:
        >>> gap = proportion_interval(140, 156, against=0.863)   # 156 test images vs a published accuracy
        >>> round(gap.difference, 3), gap.low < 0 < gap.high
        (0.034, True)
    """
    p, low, high = _wilson(int(correct), int(n), confidence)
    return Interval(p - against, low - against, high - against, confidence, f"Wilson interval over {n} items")


def two_proportions(correct_a: int, n_a: int, correct_b: int, n_b: int, *, confidence: float = 0.95) -> Interval:
    """``correct_a / n_a - correct_b / n_b`` for two *independent* samples (Newcombe's hybrid score interval).

    For two models on the same examples prefer :func:`paired_bootstrap`, which is narrower.

    Example:
        >>> gap = two_proportions(180, 200, 150, 200)
        >>> round(gap.difference, 2), gap.low > 0
        (0.15, True)
    """
    pa, la, ua = _wilson(int(correct_a), int(n_a), confidence)
    pb, lb, ub = _wilson(int(correct_b), int(n_b), confidence)
    d = pa - pb
    low = d - float(np.sqrt((pa - la) ** 2 + (ub - pb) ** 2))
    high = d + float(np.sqrt((ua - pa) ** 2 + (pb - lb) ** 2))
    return Interval(d, low, high, confidence, f"Newcombe interval, {n_a} and {n_b} items")
