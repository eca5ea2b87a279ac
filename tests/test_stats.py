"""tlcourse.stats: paired bootstrap intervals."""

import numpy as np
import pytest

from tlcourse.stats import PairedDifference, paired_bootstrap


def _labels(n_pos: int = 20, n_neg: int = 58) -> np.ndarray:
    return np.array([1] * n_pos + [0] * n_neg)


def test_clear_winner_is_found_both_ways() -> None:
    y = _labels()
    rng = np.random.default_rng(1)
    good, noise = y + 0.3 * rng.random(y.size), rng.random(y.size)
    ab, ba = paired_bootstrap(y, good, noise, n_resamples=500), paired_bootstrap(y, noise, good, n_resamples=500)
    assert ab.a_better and not ab.b_better
    assert ba.b_better and not ba.a_better
    assert ab.difference == pytest.approx(-ba.difference)
    assert ab.low <= ab.difference <= ab.high


def test_identical_scores_give_a_zero_interval() -> None:
    y = _labels()
    s = np.random.default_rng(2).random(y.size)
    gap = paired_bootstrap(y, s, s, n_resamples=200)
    assert (gap.difference, gap.low, gap.high) == (0.0, 0.0, 0.0)
    assert not gap.a_better and not gap.b_better


def test_close_models_on_few_examples_are_not_separated() -> None:
    """Two noisy scorers of equal quality on 78 examples: the interval straddles zero."""
    y = _labels()
    rng = np.random.default_rng(3)
    a, b = y + rng.normal(0, 1, y.size), y + rng.normal(0, 1, y.size)
    gap = paired_bootstrap(y, a, b)
    assert gap.low < 0 < gap.high
    assert gap.high - gap.low > 0.05  # 78 examples cannot pin an AUC gap down to a few points


def test_interval_is_paired_narrower_than_the_scores_alone() -> None:
    """b = a plus a small tweak: pairing cancels the shared noise, so the interval is tight around the gap."""
    y = _labels()
    a = y + np.random.default_rng(4).normal(0, 1, y.size)
    b = a.copy()
    b[y == 1] -= 0.05
    gap = paired_bootstrap(y, a, b, n_resamples=500)
    assert gap.high - gap.low < 0.05 and gap.difference > 0


def test_other_metrics_and_reproducibility() -> None:
    y = _labels()
    rng = np.random.default_rng(5)
    right, coin = y.copy(), rng.integers(0, 2, y.size)
    acc = paired_bootstrap(y, right, coin, lambda t, p: float(np.mean(t == p)), n_resamples=300, seed=7)
    assert acc.difference == pytest.approx(1 - np.mean(coin == y)) and acc.a_better
    assert acc == paired_bootstrap(y, right, coin, lambda t, p: float(np.mean(t == p)), n_resamples=300, seed=7)
    assert isinstance(acc, PairedDifference) and "interval" in str(acc)


@pytest.mark.parametrize(
    ("y", "a", "b", "kwargs", "message"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1], {}, "one class"),
        ([0, 1, 0], [0.1, 0.2], [0.3, 0.2, 0.1], {}, "equally long"),
        ([0, 1], [0.1, 0.9], [0.2, 0.8], {"confidence": 95}, "confidence"),
        ([0, 1], [0.1, 0.9], [0.2, 0.8], {"n_resamples": 10}, "too few"),
    ],
)
def test_bad_input_is_explained(y, a, b, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(y, a, b, **kwargs)
