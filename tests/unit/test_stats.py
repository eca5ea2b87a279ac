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


def test_wilson_interval_matches_scipy() -> None:
    from scipy.stats import binomtest

    from tlcourse.stats import proportion_interval

    for k, n in [(140, 156), (0, 20), (20, 20), (77, 153)]:
        ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        gap = proportion_interval(k, n)
        assert gap.low == pytest.approx(ref.low) and gap.high == pytest.approx(ref.high)
        shifted = proportion_interval(k, n, against=0.5)
        assert shifted.low == pytest.approx(ref.low - 0.5) and shifted.difference == pytest.approx(k / n - 0.5)


def test_newcombe_matches_the_published_example() -> None:
    """Newcombe (Stat. Med. 1998, 17:873), method 10: 56/70 vs 48/80 gives 0.0524 to 0.3339."""
    from tlcourse.stats import two_proportions

    gap = two_proportions(56, 70, 48, 80)
    assert gap.difference == pytest.approx(0.2)
    assert gap.low == pytest.approx(0.0524, abs=1e-4) and gap.high == pytest.approx(0.3339, abs=1e-4)


def test_seed_difference_is_a_paired_t_interval() -> None:
    from scipy.stats import ttest_rel

    from tlcourse.stats import seed_difference

    a, b = [0.95, 0.97, 0.94, 0.96], [0.93, 0.96, 0.92, 0.95]
    gap = seed_difference(a, b)
    ref = ttest_rel(a, b).confidence_interval(0.95)
    assert gap.low == pytest.approx(ref.low) and gap.high == pytest.approx(ref.high)
    assert gap.low > 0  # the same small gain on every seed is beyond the seeds' noise, paired
    one = seed_difference([0.902, 0.910, 0.931], 0.901)  # a mean against a published number
    assert one.low < 0 < one.high and one.method == "t interval over 3 seeds"
    with pytest.raises(ValueError, match="one seed"):
        seed_difference([0.9], [0.8])
    with pytest.raises(ValueError, match="one value per seed"):
        seed_difference([0.9, 0.8], [0.8])


def test_metric_interval_against_a_fixed_number() -> None:
    from tlcourse.stats import metric_interval

    y = _labels()
    rng = np.random.default_rng(6)
    strong, weak = y + rng.normal(0, 0.3, y.size), y + rng.normal(0, 3, y.size)
    assert metric_interval(y, strong, against=0.8, n_resamples=500).low > 0
    gap = metric_interval(y, weak, against=0.5, n_resamples=500)
    assert gap.low < gap.difference < gap.high and "against 0.5" in gap.method
    acc = metric_interval(y, (strong > 0.5).astype(int), against=0.5, metric=lambda t, p: float(np.mean(t == p)),
                          n_resamples=300)
    assert acc.low > 0.3
