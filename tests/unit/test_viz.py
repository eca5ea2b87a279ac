"""Tests of tlcourse.viz: every figure renders (not blank), Grad-CAM finds the object, hooks are removed,
explorers react to their controls. Tiny random CNNs only — no pretrained weights."""

from __future__ import annotations

import doctest
import re
from collections.abc import Iterator
from io import BytesIO

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import to_rgba
from PIL import Image
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits
from torch import nn

from tlcourse import viz


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """On a busy 2-core machine torch's and scikit-learn's OpenMP pools fight (t-SNE of 50 points: 0.4 s with one
    thread, 30 s with both pools spinning); the tests are tiny, so one thread each."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _agg_and_close() -> Iterator[None]:
    plt.switch_backend("Agg")
    yield
    plt.close("all")


def assert_rendered(fig: plt.Figure, coloured: bool = True) -> np.ndarray:
    """Render to PNG, read it back, check it is not blank (variance) and, for colour plots, that it shows
    coloured data (an empty set of axes with titles and ticks has none)."""
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    buf.seek(0)
    rgb = mpimg.imread(buf)[..., :3]
    assert rgb.var() > 1e-3, "figure is (nearly) blank"
    if coloured:
        share = ((rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.2).mean()
        assert share > 0.002, f"figure shows no coloured data (only {share:.4f} of pixels)"
    assert fig.axes and (fig.axes[0].get_title() or fig._suptitle is not None), "figure has no title"
    return rgb


def tiny_cnn(num_classes: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),       # 0 1 2
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),  # 3 4 5
        nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(),                           # 6 7
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes),              # 8 9 10
    )


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


# ------------------------------------------------------------------------------------------------ images
def test_show_images_unnormalises_and_marks_wrong_predictions_red() -> None:
    torch.manual_seed(0)
    raw = torch.rand(6, 3, 12, 12)
    mean, std = torch.tensor(viz.IMAGENET_MEAN).view(3, 1, 1), torch.tensor(viz.IMAGENET_STD).view(3, 1, 1)
    fig = viz.show_images((raw - mean) / std, labels=[0, 1, 1, 0, 1, 0], preds=torch.tensor([0, 0, 1, 0, 1, 1]),
                          class_names=["ant", "bee"], ncols=4, title="batch")
    assert_rendered(fig)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), raw[0].permute(1, 2, 0).numpy(), atol=1e-5)
    assert len(fig.axes) == 6  # the two spare cells of the 2×4 grid are removed
    assert fig.axes[0].get_title() == "ant"
    assert to_rgba(fig.axes[0].title.get_color()) == to_rgba("tab:green")
    assert fig.axes[1].get_title() == "ant\n(true: bee)"
    assert to_rgba(fig.axes[1].title.get_color()) == to_rgba("tab:red")
    assert to_rgba(fig.axes[5].title.get_color()) == to_rgba("tab:red")
    assert fig._suptitle.get_text() == "batch"


def test_show_images_accepts_pil_numpy_and_raw_tensors() -> None:
    rng = np.random.default_rng(0)
    hwc = (rng.random((10, 10, 3)) * 255).astype(np.uint8)
    items = [Image.fromarray(hwc), hwc, torch.rand(3, 10, 10), rng.random((10, 10))]
    fig = viz.show_images(items, mean=None)
    assert_rendered(fig)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), hwc / 255.0, atol=1e-6)
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), hwc / 255.0, atol=1e-6)
    assert fig.axes[3].images[0].get_array().shape == (10, 10)
    assert [ax.get_title() for ax in fig.axes] == ["#0", "#1", "#2", "#3"]


def test_show_images_errors_are_actionable() -> None:
    with pytest.raises(ValueError, match="mean=None"):
        viz.show_images(torch.rand(2, 1, 8, 8))  # 1 channel, ImageNet stats have 3
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        viz.show_images(torch.rand(2, 3, 8, 8), labels=[0, 1, 1])
    with pytest.raises(TypeError, match="PIL image"):
        viz.show_images(["not an image"])


def test_show_dataset_uses_class_names_through_subset() -> None:
    class Named(torch.utils.data.TensorDataset):
        classes = ["cat", "dog"]

    ds = Named(torch.rand(10, 3, 8, 8), torch.arange(10) % 2)
    fig = viz.show_dataset(torch.utils.data.Subset(ds, [1, 2, 3, 5]), n=3, mean=None)
    assert_rendered(fig)
    # evenly spaced: subset positions 0, 1, 3 → dataset items 1, 2, 5 → labels 1, 0, 1
    assert [ax.get_title() for ax in fig.axes] == ["dog", "cat", "dog"]
    assert "3 of 4" in fig._suptitle.get_text()


# ------------------------------------------------------------------------------------------------ filters, maps
def test_plot_filters_finds_first_rgb_conv_and_normalises_each_filter() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Identity(), nn.Sequential(nn.Conv2d(3, 10, 3), nn.Conv2d(10, 4, 3)))
    fig = viz.plot_filters(model, ncols=5, max_filters=8)
    assert_rendered(fig)
    title = fig.axes[0].get_title()
    assert "1.0" in title and "8 of 10" in title and "3×3" in title
    mosaic = fig.axes[0].images[0].get_array()
    tile = mosaic[1:4, 1:4]  # filter 0
    w = model[1][0].weight[0].detach().permute(1, 2, 0).numpy()
    np.testing.assert_allclose(tile, (w - w.min()) / (w.max() - w.min()), atol=1e-6)
    assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()
    assert_rendered(viz.plot_filters(torch.randn(4, 1, 5, 5)), coloured=False)  # grey filters
    with pytest.raises(ValueError, match="3 input channels"):
        viz.plot_filters(nn.Conv2d(1, 4, 3))


def test_feature_maps_shapes_copies_and_hooks_removed() -> None:
    torch.manual_seed(0)
    model = tiny_cnn().train()
    x = torch.randn(2, 3, 20, 20)
    acts = viz.feature_maps(model, x, ["0", "5", "8"])
    assert list(acts) == ["0", "5", "8"]
    model.eval()
    with torch.no_grad():
        for name, end in (("0", 1), ("5", 6), ("8", 9)):
            assert acts[name].shape == model[:end](x).shape
    assert acts["0"].min() < 0  # a copy: the in-place ReLU after conv "0" did not overwrite it
    assert model.training is False  # we set eval above; feature_maps restores the mode it found
    model.train()
    viz.feature_maps(model, x[0], "3")
    assert model.training is True
    assert no_hooks(model)
    with pytest.raises(RuntimeError):
        viz.feature_maps(model, torch.randn(1, 5, 20, 20), ["0"])  # wrong channels: forward fails …
    assert no_hooks(model)  # … and the hooks are still removed
    with pytest.raises(KeyError, match="named_modules"):
        viz.feature_maps(model, x, ["conv_stem"])


def test_plot_feature_maps_rows_per_depth_top_channels() -> None:
    torch.manual_seed(0)
    model = tiny_cnn()
    image = torch.randn(3, 24, 24)
    fig = viz.plot_feature_maps(model, image, ["2", "5"], n_channels=4)
    assert_rendered(fig)
    assert len(fig.axes) == 8
    assert fig.axes[0].get_ylabel() == "2\n24×24, 8 ch"
    assert fig.axes[4].get_ylabel() == "5\n12×12, 16 ch"
    act = viz.feature_maps(model, image, ["5"])["5"][0]
    best = int(act.mean(dim=(1, 2)).argmax())
    assert fig.axes[4].get_title() == f"ch {best}"
    with pytest.raises(ValueError, match="not a .* feature map"):
        viz.plot_feature_maps(model, image, ["9"])
    assert no_hooks(model)


# ------------------------------------------------------------------------------------------------ Grad-CAM
def square_batch(g: torch.Generator, n: int, size: int = 32, side: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Dark noisy images; label 1 = a bright square at a random place."""
    x = torch.rand(n, 3, size, size, generator=g) * 0.2
    y = torch.randint(0, 2, (n,), generator=g)
    for i in torch.nonzero(y).flatten().tolist():
        r, c = torch.randint(0, size - side, (2,), generator=g).tolist()
        x[i, :, r : r + side, c : c + side] = 1.0
    return x, y


def test_grad_cam_of_trained_cnn_points_at_the_object() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        x, y = square_batch(g, 16)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    xt, yt = square_batch(g, 64)
    with torch.no_grad():
        assert (model(xt).argmax(1) == yt).float().mean() > 0.9, "the square detector did not learn"

    image = torch.rand(3, 32, 32, generator=g) * 0.2
    r0, r1, c0, c1 = 4, 12, 18, 26  # off-centre, so a transposed or flipped map would miss it
    image[:, r0:r1, c0:c1] = 1.0
    model.zero_grad(set_to_none=True)
    cam = viz.grad_cam(model, image, model[8])  # last ReLU (in-place), class = the prediction ("square")
    assert cam.shape == (32, 32) and cam.dtype == np.float32
    assert cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    box = np.zeros_like(cam, dtype=bool)
    box[r0:r1, c0:c1] = True
    assert cam[box].mean() > 2 * cam[~box].mean()  # a uniform or random map fails here
    rows, cols = np.mgrid[:32, :32]
    cy, cx = (cam * rows).sum() / cam.sum(), (cam * cols).sum() / cam.sum()
    assert r0 <= cy < r1 and c0 <= cx < c1, f"CAM centre ({cy:.1f}, {cx:.1f}) outside the square"
    assert all(p.grad is None for p in model.parameters())  # autograd.grad, not .backward()
    assert no_hooks(model)


def test_grad_cam_hand_set_brightness_model_frozen_and_signs() -> None:
    conv = nn.Conv2d(3, 1, 3, padding=1)
    with torch.no_grad():
        conv.weight.fill_(1 / 27)
        conv.bias.fill_(-0.5)  # responds only where the image is bright
    head = nn.Linear(1, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[-1.0], [1.0]]))  # class 1 = "bright thing present"
        head.bias.zero_()
    model = nn.Sequential(conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    for p in model.parameters():
        p.requires_grad_(False)  # a frozen backbone must still work
    model.train()
    image = torch.zeros(3, 40, 40)
    image[:, 25:35, 5:15] = 1.0
    by_name = viz.grad_cam(model, image, "1")
    by_module = viz.grad_cam(model, image, model[1], class_idx=1)
    np.testing.assert_allclose(by_name, by_module)
    np.testing.assert_allclose(by_name[26:34, 6:14], 1.0)  # the square's inside: full evidence
    assert by_name[:24].max() == 0.0 and by_name[:, 16:].max() == 0.0  # none away from it
    assert np.argmax(by_name) // 40 in range(25, 35) and np.argmax(by_name) % 40 in range(5, 15)
    assert viz.grad_cam(model, image, "1", class_idx=0).max() == 0.0  # no evidence *against* the square
    assert model.training is True and no_hooks(model)
    with pytest.raises(IndexError, match="out of range"):
        viz.grad_cam(model, image, "1", class_idx=5)
    assert no_hooks(model)
    fig = viz.show_cam(image, by_name, mean=None, title="bright square")
    assert_rendered(fig)
    assert fig.axes[0].get_title() == "input" and fig._suptitle.get_text() == "bright square"
    with pytest.raises(ValueError, match="grad_cam"):
        viz.show_cam(image, np.zeros((8, 8)), mean=None)


# ------------------------------------------------------------------------------------------------ embeddings
@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_plot_embedding_class_colours_domain_markers(method: str) -> None:
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    domains = np.arange(60) // 30
    feats = rng.normal(size=(60, 8)) + 4 * labels[:, None]
    fig = viz.plot_embedding(torch.tensor(feats), labels, domains, method=method, class_names=["a", "b", "c"],
                             domain_names=["MNIST", "USPS"], max_points=50)
    assert_rendered(fig)
    ax = fig.axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 50
    assert len(ax.collections) == 6  # 3 classes × 2 domains
    legends = [child for child in ax.get_children() if isinstance(child, plt.matplotlib.legend.Legend)]
    texts = sorted(t.get_text() for leg in legends for t in leg.get_texts())
    assert texts == ["MNIST", "USPS", "a", "b", "c"]
    assert ax.get_xlabel().endswith("1") and ax.get_title()
    with pytest.raises(ValueError, match="choose one of"):
        viz.plot_embedding(feats, labels, method="umap")


# ------------------------------------------------------------------------------------------------ curves
class FakeFitHistory:
    """A real stand-in for train.History: only the duck-typed surface viz relies on."""

    def __init__(self, rows: list[dict[str, float]]) -> None:
        self.rows = rows

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


ROWS = [
    {"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "val_accuracy": 0.5, "lr": 1e-3, "seconds": 2.0},
    {"epoch": 2, "train_loss": 0.7, "val_loss": 0.9, "val_accuracy": 0.7, "lr": 1e-3, "seconds": 2.1},
    {"epoch": 3, "train_loss": 0.5, "val_loss": 0.8, "val_accuracy": 0.8, "lr": 1e-4, "seconds": 2.0},
]


@pytest.mark.parametrize("kind", ["object", "frame", "dict"])
def test_plot_history_from_every_history_type(kind: str) -> None:
    frame = pd.DataFrame(ROWS)
    history = {"object": FakeFitHistory(ROWS), "frame": frame, "dict": frame.to_dict(orient="list")}[kind]
    fig = viz.plot_history(history)
    assert_rendered(fig)
    loss_ax, metric_ax = fig.axes
    assert (loss_ax.get_title(), metric_ax.get_title()) == ("Loss", "Metrics")
    assert [line.get_label() for line in loss_ax.lines] == ["train_loss", "val_loss"]
    assert [line.get_label() for line in metric_ax.lines] == ["val_accuracy"]  # not lr / seconds
    np.testing.assert_allclose(metric_ax.lines[0].get_ydata(), [0.5, 0.7, 0.8])
    assert loss_ax.get_xlabel() == "epoch"
    with pytest.raises(KeyError, match="columns are"):
        viz.plot_history(history, metrics=["f1"])


def test_plot_history_dict_without_epochs_and_ragged_lists() -> None:
    fig = viz.plot_history({"train_loss": [1.0, 0.8, 0.6], "val_loss": [1.1, 0.9]}, title="ragged")
    assert_rendered(fig)
    assert len(fig.axes) == 1
    np.testing.assert_array_equal(fig.axes[0].lines[1].get_xdata(), [1, 2])


def test_live_curve_outside_notebook_redraws_same_figure() -> None:
    live = viz.LiveCurve()
    figs = [live(FakeFitHistory(ROWS[:k])) for k in (1, 2, 3)]
    assert figs[0] is figs[1] is figs[2] is live.figure
    assert live._handle is None  # nothing was displayed outside a notebook
    loss_ax = live.figure.axes[0]
    assert len(loss_ax.lines) == 2 and all(len(line.get_xdata()) == 3 for line in loss_ax.lines)
    assert len(live.figure.axes) == 2  # redraw clears: no stacked axes from earlier calls
    assert_rendered(live.figure)


# ------------------------------------------------------------------------------------------------ evaluation
def test_plot_confusion_matrix_normalised_and_counts() -> None:
    fig = viz.plot_confusion_matrix([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], class_names=["ant", "bee", "wasp"])
    assert_rendered(fig)
    ax = fig.axes[0]
    cells = [t.get_text() for t in ax.texts]
    assert cells == ["0.50", "0.50", "0.00", "0.00", "1.00", "0.00", "1.00", "0.00", "0.00"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ant", "bee", "wasp"]
    assert ax.get_title().startswith("Confusion matrix")
    counts = viz.plot_confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), normalize=False)
    assert [t.get_text() for t in counts.axes[0].texts] == ["1", "1", "0", "1"]


def test_plot_roc_auc_multiple_curves_and_operating_point() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    good, weak = y + rng.normal(0, 0.6, 200), y + rng.normal(0, 2.0, 200)
    fig = viz.plot_roc(y, good, label="fine-tuned", mark_threshold=0.5)
    ax = fig.axes[0]
    assert viz.plot_roc(y, np.stack([1 - weak, weak], axis=1), label="scratch", ax=ax) is fig
    assert_rendered(fig)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == f"fine-tuned (AUC = {roc_auc_score(y, good):.2f})"
    assert f"scratch (AUC = {roc_auc_score(y, weak):.2f})" in legend
    assert sum(line.get_gid() == "chance" for line in ax.lines) == 1  # one diagonal for both curves
    point = next(line for line in ax.lines if line.get_label().startswith("threshold"))
    pred = good >= 0.5
    assert point.get_xdata()[0] == pytest.approx(pred[y == 0].mean())
    assert point.get_ydata()[0] == pytest.approx(pred[y == 1].mean())
    assert ax.get_title() == "ROC curve"
    with pytest.raises(ValueError, match="both classes"):
        viz.plot_roc([1, 1, 1], [0.1, 0.2, 0.3])


def test_plot_learning_curve_mapping_frame_and_bands() -> None:
    results = {"linear probe": {1: 0.62, 4: 0.75, 16: 0.88}, "from scratch": {1: [0.5, 0.52], 4: 0.55, 16: 0.6}}
    fig = viz.plot_learning_curve(results, chance=0.5)
    assert_rendered(fig)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "labelled images per class"
    assert [line.get_label() for line in ax.lines] == ["linear probe", "from scratch", "chance (0.5)"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.51, 0.55, 0.6])
    assert len(ax.collections) == 1  # only the repeated runs give a band
    frame = pd.DataFrame({"method": ["a", "a", "b", "b"], "n": [2, 8, 2, 8], "accuracy": [0.6, 0.8, 0.5, 0.7],
                          "std": [0.05, 0.02, 0.04, 0.01]})
    fig2 = viz.plot_learning_curve(frame, y_label="AUC")
    assert_rendered(fig2)
    assert len(fig2.axes[0].collections) == 2 and fig2.axes[0].get_ylabel() == "AUC"
    with pytest.raises(KeyError, match="method, n, accuracy"):
        viz.plot_learning_curve(pd.DataFrame({"n": [1], "acc": [0.5]}))


def test_plot_lr_find_and_plot_bars() -> None:
    lrs = np.logspace(-6, 0, 30)
    losses = 2.3 - np.exp(-((np.log10(lrs) + 3) ** 2)) + np.where(lrs > 0.1, 50.0, 0.0)
    fig = viz.plot_lr_find(lrs, losses, suggestion=1e-3)
    assert_rendered(fig)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_title() == "Learning-rate range test"
    assert ax.get_ylim()[1] < 2.3 * 1.6  # the blow-up does not flatten the curve
    assert any(line.get_xdata()[0] == 1e-3 for line in ax.lines[1:])
    bars = viz.plot_bars({"frozen": 0.8, "top-2": 0.86, "full": 0.9, "scratch": 0.6}, "Strategies", "accuracy")
    assert_rendered(bars)
    bax = bars.axes[0]
    assert [p.get_height() for p in bax.patches] == [0.8, 0.86, 0.9, 0.6]
    assert bax.get_title() == "Strategies" and bax.get_ylabel() == "accuracy"
    assert "0.86" in [t.get_text() for t in bax.texts]


# ------------------------------------------------------------------------------------------------ explorers
def test_feature_map_explorer_updates_lazily_and_caches() -> None:
    import ipywidgets as widgets

    torch.manual_seed(0)
    model = tiny_cnn()
    forwards = []
    model.register_forward_hook(lambda *_: forwards.append(1))
    w = viz.feature_map_explorer(model, torch.randn(2, 3, 16, 16), ["2", "5"])
    assert isinstance(w, widgets.VBox)
    image_dd, layer_dd, slider = w.children[0].children
    caption, picture = w.children[1], w.children[2]
    assert isinstance(picture, widgets.Image) and picture.value[:4] == b"\x89PNG"
    assert len(forwards) == 1 and slider.max == 7 and "16×16, 8 channels" in caption.value
    first = picture.value
    slider.value = 3
    assert picture.value != first and "channel 3" in caption.value and len(forwards) == 1
    layer_dd.value = "5"
    assert slider.max == 15 and "8×8, 16 channels" in caption.value and len(forwards) == 2
    slider.value = 12
    image_dd.value = 1
    assert len(forwards) == 3 and "channel 12" in caption.value
    layer_dd.value = "2"  # 8 channels: the slider is clamped, not out of range
    assert slider.value == 7 and len(forwards) == 4
    image_dd.value = 0  # (image 0, layer "2") is cached: no new forward pass
    assert len(forwards) == 4
    assert len(model._forward_hooks) == 1  # only the test's counter is left


def test_misclassified_gallery_pages_exactly_through_wrong_predictions() -> None:
    import ipywidgets as widgets

    y_true = np.array([0, 1, 2, 1, 0, 2, 2])
    y_pred = np.array([0, 2, 2, 0, 0, 1, 2])
    probs = np.full((7, 3), 0.1)
    probs[np.arange(7), y_pred] = 0.8
    w = viz.misclassified_gallery(torch.rand(7, 3, 8, 8), y_true, y_pred, class_names=["a", "b", "c"],
                                  probs=probs, mean=None)
    assert isinstance(w, widgets.VBox)
    prev_btn, next_btn = w.children[0].children
    caption, picture = w.children[1], w.children[2]
    seen, pictures = [], []
    for _ in range(5):  # more clicks than pages: stays on the last one
        seen.append(int(re.search(r"image #(\d+)", caption.value).group(1)))
        pictures.append(picture.value)
        next_btn.click()
    assert sorted(set(seen)) == [1, 3, 5] and seen[:3] == [1, 3, 5]
    assert next_btn.disabled and not prev_btn.disabled
    assert "3/3" in caption.value and "true <b>c</b>" in caption.value and "confidence 0.80" in caption.value
    assert len(set(pictures[:3])) == 3
    prev_btn.click()
    prev_btn.click()
    assert "image #1:" in caption.value and prev_btn.disabled
    perfect = viz.misclassified_gallery(torch.rand(2, 3, 8, 8), [0, 1], [0, 1], mean=None)
    assert "No misclassified" in perfect.children[1].value


# ------------------------------------------------------------------------------------------------ docs
def test_docstring_examples_run() -> None:
    result = doctest.testmod(viz, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 18 and result.failed == 0


@pytest.mark.parametrize("class_idx", [None, 1])
def test_grad_cam_matches_captum(class_idx):
    """The course's Grad-CAM (tlcourse.activations) equals captum's LayerGradCam (ReLU, bilinear upsampling,
    scaled to [0, 1]) on a real backbone, for the predicted class and for another one."""
    from captum.attr import LayerAttribution, LayerGradCam

    from tlcourse.activations import grad_cam
    from tlcourse.models import build_classifier

    torch.manual_seed(0)
    model = build_classifier("efficientnet_lite0", 3, pretrained=False).eval()
    x = torch.randn(1, 3, 96, 96)
    mine = grad_cam(model, x[0], "blocks.5", class_idx=class_idx)
    target = int(model(x)[0].argmax()) if class_idx is None else class_idx
    attr = LayerGradCam(model, model.blocks[5]).attribute(x, target=target, relu_attributions=True)
    ref = LayerAttribution.interpolate(attr, (96, 96), interpolate_mode="bilinear")[0, 0].detach()
    ref = ref - ref.min()
    ref = (ref / ref.max()).numpy() if ref.max() > 0 else ref.numpy()
    np.testing.assert_allclose(mine, ref, atol=1e-4)
    assert mine.max() == pytest.approx(1.0) and not np.allclose(mine, mine.mean())  # a map, not a constant


def test_mistake_widgets_take_one_argument_order():
    """The image gallery and the text pager read the same arguments in the same order (the text pager once took
    probs before class_names, the gallery the reverse); names a learner's own folders gave are escaped."""
    import inspect

    from tlcourse import text

    def shape(fn):
        return [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()][:5]

    assert shape(viz.misclassified_gallery)[1:] == shape(viz.text_error_pager)[1:]
    assert text.text_error_pager is viz.text_error_pager
    w = viz.misclassified_gallery(torch.rand(2, 3, 8, 8), [0, 1], [1, 0], class_names=["<b>x</b>", "y"], mean=None)
    assert "&lt;b&gt;x&lt;/b&gt;" in w.children[1].value and "<b>x</b>" not in w.children[1].value
