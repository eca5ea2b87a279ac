"""Tests of tlcourse.dense: the digit-scene data (shapes, determinism, masks agree with boxes), the metrics on known
masks, the head's shapes on a tiny random backbone, training that lowers the loss; and (slow) the lesson's demo in
the grading profile: an ImageNet backbone's maps give a better mask head than a random backbone's."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from tlcourse import dense, viz
from tlcourse.config import PROFILES


@pytest.fixture(autouse=True)
def _agg_and_close() -> Iterator[None]:
    plt.switch_backend("Agg")
    yield
    plt.close("all")


def _digits(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic 'digits': a filled bar per image (no MNIST needed), labels 0–9."""
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 4:24, 10:18] = 255
    return images, np.arange(n) % 10


def _scenes(n: int = 6, size: int = 32, **kw: object) -> dense.DigitScenes:
    return dense.make_digit_scenes(n, size, digits=_digits(), backgrounds=["coffee", "grass"], **kw)


def test_scenes_shapes_and_types() -> None:
    ds = _scenes(5, 40)
    assert ds.images.shape == (5, 40, 40, 3) and ds.images.dtype == np.uint8
    assert ds.masks.shape == (5, 40, 40) and ds.masks.dtype == bool
    assert ds.boxes.shape == (5, 4) and len(ds) == 5 and ds.in_memory
    x, y = ds[0]
    assert x.shape == (3, 40, 40) and x.dtype == torch.float32 and isinstance(y, int)
    assert torch.allclose(ds.tensors()[0], x)
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0  # Lite's normalisation: (x - 0.5) / 0.5


def test_scenes_are_deterministic_and_seeded() -> None:
    a, b, c = _scenes(seed=3), _scenes(seed=3), _scenes(seed=4)
    assert (a.images == b.images).all() and (a.masks == b.masks).all() and a.targets == b.targets
    assert a.fingerprint == b.fingerprint
    assert not (a.images == c.images).all() and a.fingerprint != c.fingerprint


def test_train_and_test_use_disjoint_digits() -> None:
    images, labels = _digits(20)
    images = images.copy()
    for i in range(20):  # make each digit unique: a one-pixel code in the corner
        images[i, 0, i] = 255
    train, test = (dense.make_digit_scenes(40, 28, digits=(images, labels), split=s, scale=(1.0, 1.0))
                   for s in ("train", "test"))
    assert train.fingerprint != test.fingerprint
    codes = [{int(np.argmax(ds.masks[i][0])) for i in range(len(ds)) if ds.masks[i][0].any()} for ds in (train, test)]
    assert codes[0] and codes[1] and not (codes[0] & codes[1])


def test_masks_boxes_and_pixels_agree() -> None:
    ds = _scenes(8, 48, scale=(0.4, 0.8))
    for mask, box in zip(ds.masks, ds.boxes, strict=True):
        assert mask.any(), "every image holds a digit"
        x0, y0, x1, y1 = box
        assert mask[y0:y1, x0:x1].sum() == mask.sum(), "the box holds the whole mask"
        assert mask[y0, x0:x1].any() and mask[y1 - 1, x0:x1].any() and mask[y0:y1, x0].any() and mask[y0:y1, x1 - 1].any()
        assert 0.4 * 48 * 0.5 <= (y1 - y0) <= 0.8 * 48 + 1, "the digit's height follows `scale`"
    background = dense.make_digit_scenes(8, 48, digits=(np.zeros((20, 28, 28), np.uint8), _digits()[1]),
                                         backgrounds=["coffee", "grass"])
    assert not background.masks.any(), "a blank digit leaves no mask"


def test_scenes_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        _scenes(split="val")
    with pytest.raises(ValueError, match="background"):
        dense.make_digit_scenes(2, 16, digits=_digits(), backgrounds=["nope"])
    with pytest.raises(ValueError, match="scale"):
        _scenes(scale=(0.5, 1.5))


def test_mask_iou_and_box_iou_on_known_shapes() -> None:
    a = np.zeros((3, 6, 6), bool)
    b = np.zeros((3, 6, 6), bool)
    a[0, :2, :2] = True
    b[0, :2, :2] = True  # identical: 1
    a[1, :2] = True
    b[1, 1:3] = True  # 6 shared of 18: 1/3
    a[2, 0, 0] = True  # disjoint from an empty mask: 0
    np.testing.assert_allclose(dense.mask_iou(a, b), [1.0, 1 / 3, 0.0])
    assert dense.mask_iou(np.zeros((1, 2, 2), bool), np.zeros((1, 2, 2), bool)).tolist() == [1.0]
    boxes = np.array([[0, 0, 4, 4], [0, 0, 2, 2], [0, 0, 1, 1]])
    others = np.array([[0, 0, 4, 4], [1, 1, 3, 3], [5, 5, 6, 6]])
    np.testing.assert_allclose(dense.box_iou(boxes, others), [1.0, 1 / 7, 0.0])
    with pytest.raises(ValueError, match="shapes"):
        dense.mask_iou(a, b[:, :5])


def _tiny_backbone() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))


def test_feature_maps_and_head_shapes_on_a_tiny_backbone() -> None:
    ds = _scenes(6, 32)
    maps, labels = dense.read_feature_maps(_tiny_backbone(), ds, "3", cache=False, progress=False, device="cpu")
    assert tuple(maps.shape) == (6, 12, 8, 8) and labels.tolist() == ds.targets
    head = dense.DenseHead(12, hidden=16, out_size=32)
    out = head(maps)
    assert tuple(out["mask"].shape) == (6, 1, 32, 32) and tuple(out["class"].shape) == (6, 10)
    assert tuple(head(maps, size=16)["mask"].shape) == (6, 1, 16, 16)
    assert tuple(dense.DenseHead(12, out_size=None)(maps)["mask"].shape) == (6, 1, 8, 8)


def test_feature_maps_are_cached_by_fingerprint(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from tlcourse.features import CACHE_STATS

    monkeypatch.setenv("TLCOURSE_CACHE_DIR", str(tmp_path))
    ds, net = _scenes(4, 32), _tiny_backbone()
    first, _ = dense.read_feature_maps(net, ds, "1", progress=False, device="cpu")
    hits = CACHE_STATS["hits"]
    again, _ = dense.read_feature_maps(net, _scenes(4, 32), "1", progress=False, device="cpu")
    assert CACHE_STATS["hits"] == hits + 1 and torch.equal(first, again)


def test_training_lowers_the_loss_and_learns_an_easy_mask() -> None:
    """On maps that *are* the mask (downsampled), the head must learn it: IoU well above an empty guess."""
    ds = _scenes(32, 32, scale=(0.6, 0.9))
    maps = torch.nn.functional.avg_pool2d(torch.from_numpy(ds.masks).float()[:, None], 4).repeat(1, 4, 1, 1)
    head = dense.DenseHead(4, hidden=8, out_size=32)
    losses = dense.train_head(head, maps, ds.masks, ds.targets, tasks=("mask",), epochs=25, lr=1e-2, seed=0,
                              mask_size=16, progress=False)
    assert losses[-1] < 0.7 * losses[0]
    scores = dense.evaluate_head(head, maps, ds)
    assert scores["mask_iou"] > 0.5 and scores["predicted_masks"].shape == ds.masks.shape
    assert not head.training and torch.get_num_threads() >= 1


def test_train_head_checks_its_arguments() -> None:
    head = dense.DenseHead(2, hidden=4, out_size=8)
    maps, masks, labels = torch.rand(4, 2, 2, 2), np.zeros((4, 8, 8), bool), [0, 1, 2, 3]
    with pytest.raises(ValueError, match="tasks"):
        dense.train_head(head, maps, masks, labels, tasks=("depth",), progress=False)
    with pytest.raises(ValueError, match="maps"):
        dense.train_head(head, maps, masks[:3], labels, progress=False)


def test_multitask_runs_share_budget_and_table() -> None:
    """compare_multitask on hand-made maps: three runs, NaN where a task was not trained, mask-alone reused."""
    train, test = _scenes(16, 32), _scenes(8, 32, split="test")
    first = dense.DenseComparison()
    first.maps["ImageNet"] = (torch.rand(16, 4, 4, 4), torch.rand(8, 4, 4, 4))
    sizes = dense.DemoSizes(n_train=16, n_test=8, epochs=1, hidden=4)
    dense._fit_and_score(first, "ImageNet · mask", "ImageNet", ("mask",), train, test, sizes, 0,
                         torch.device("cpu"), False)
    mt = dense.compare_multitask(first, train, test, sizes=sizes, device="cpu", progress=False)
    table = mt.table
    assert list(table.index) == ["ImageNet · mask", "ImageNet · class", "ImageNet · mask + class"]
    assert np.isnan(table.loc["ImageNet · mask", "accuracy"]) and np.isnan(table.loc["ImageNet · class", "mask_iou"])
    assert table.loc["ImageNet · mask", "mask_iou"] == first.row("ImageNet · mask")["mask_iou"]
    assert set(mt.predictions) == {"ImageNet · mask", "ImageNet · mask + class"}


def test_demo_sizes_follow_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's sizes live in the profiles, beside every other size (no table of their own)."""
    monkeypatch.setenv("TLCOURSE_PROFILE", "grading")
    assert dense.demo_sizes() == dense.DemoSizes(n_train=160, n_test=64, epochs=12)
    assert dense.demo_sizes("gpu") == dense.DemoSizes(n_train=2048, n_test=512, epochs=20, batch_size=64)
    assert all(dense.demo_sizes(name).n_test <= dense.demo_sizes(name).n_train for name in PROFILES)
    assert not hasattr(dense, "DEMO_SIZES")
    with pytest.raises(ValueError, match="profile"):
        dense.demo_sizes("tpu")


def test_show_masks_renders_rows_per_run() -> None:
    ds = _scenes(4, 32)
    fig = viz.show_masks(ds.images, ds.masks, {"good": ds.masks, "empty": np.zeros_like(ds.masks)}, n=3)
    assert len(fig.axes) == 6 and fig.axes[0].get_title().endswith("IoU 1.00")
    assert fig.axes[3].get_title().endswith("IoU 0.00")
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    assert buf.tell() > 1000
    assert len(viz.show_masks(ds.tensors(), ds.masks, mean=(0.5,) * 3, std=(0.5,) * 3, n=2).axes) == 2
    with pytest.raises(ValueError, match="masks"):
        viz.show_masks(ds.images, ds.masks[:2], n=3)


@pytest.mark.slow
def test_demo_in_grading_profile_pretrained_beats_random(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """The lesson's demo at grading sizes (real MNIST digits, real Lite0 weights). Measured while writing it: mask
    IoU about 0.40 (ImageNet) vs 0.08 (random); the margin asked here, 0.15, leaves room for other machines."""
    monkeypatch.setenv("TLCOURSE_PROFILE", "grading")
    monkeypatch.setenv("TLCOURSE_CACHE_DIR", str(tmp_path))
    sizes = dense.demo_sizes()
    train = dense.make_digit_scenes(sizes.n_train, split="train")
    test = dense.make_digit_scenes(sizes.n_test, split="test")
    first = dense.compare_backbones(train, test, device="cpu", progress=False)
    pre, rnd = first.row("ImageNet · mask"), first.row("random · mask")
    assert pre["mask_iou"] > rnd["mask_iou"] + 0.15, first.table
    assert pre["box_hit"] > rnd["box_hit"], first.table
    mt = dense.compare_multitask(first, train, test, device="cpu", progress=False)
    assert mt.table["accuracy"].between(0, 1).sum() == 2 and mt.table["mask_iou"].between(0, 1).sum() == 2
