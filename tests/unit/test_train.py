"""Tests of tlcourse.train: the training loop, metrics, History, lr_find and the fine-tuning recipes."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset
from transformers.modeling_outputs import SequenceClassifierOutput

from tlcourse.train import (
    METRICS,
    OPTIMIZERS,
    SCHEDULERS,
    EarlyStopping,
    History,
    LRFinderResult,
    evaluate,
    fine_tune,
    fit,
    lr_find,
    predict,
    progressive_unfreeze,
)

CPU = torch.device("cpu")
QUIET = {"progress": False, "device": "cpu"}


# ---------------------------------------------------------------------------------------------- fixtures
def blobs(n: int = 128, seed: int = 0, flip: bool = False) -> TensorDataset:
    """Two well separated Gaussian blobs in 2-D, classes 0 and 1 alternating."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    centre = (y.float() * 2 - 1)[:, None] * torch.tensor([2.0, 2.0])
    x = centre + 0.5 * torch.randn(n, 2, generator=g)
    return TensorDataset(x, 1 - y if flip else y)


def mlp(seed: int = 0, bn: bool = False) -> nn.Sequential:
    """Three layer groups (one per top-level child): body, body, head."""
    torch.manual_seed(seed)
    first = [nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU()] if bn else [nn.Linear(2, 16), nn.ReLU()]
    return nn.Sequential(nn.Sequential(*first), nn.Sequential(nn.Linear(16, 16), nn.ReLU()), nn.Linear(16, 2))


def loader(ds: Dataset, shuffle: bool = False, batch_size: int = 32) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy(model.state_dict())


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str = "") -> bool:
    keys = [k for k in a if k.startswith(prefix)]
    assert keys, f"no state keys start with {prefix!r}"
    return all(torch.equal(a[k], b[k]) for k in keys)


class TinyTextClassifier(nn.Module):
    """Mimics a Hugging Face sequence classifier: Embedding → masked mean → Linear; returns an output object."""

    def __init__(self, vocab: int = 20, dim: int = 8, num_labels: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.classifier = nn.Linear(dim, num_labels)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        h = (self.embed(input_ids) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        logits = self.classifier(h)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def text_data(n: int = 96, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Sentences of 6 tokens: class 0 uses tokens 1..9, class 1 tokens 10..19; padding (0) masked out."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        label = i % 2
        ids = torch.randint(1 + 9 * label, 10 + 10 * label, (6,), generator=g)
        mask = torch.ones(6, dtype=torch.long)
        ids[5], mask[5] = 0, 0
        rows.append({"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(label)})
    return rows


# ------------------------------------------------------------------------------------------------- fit
def test_fit_learns_and_records_everything() -> None:
    model = mlp()
    h = fit(model, loader(blobs(), shuffle=True), loader(blobs(64, seed=1)), epochs=4, lr=1e-2, seed=0,
            metrics=("accuracy", "auc"), **QUIET)
    assert len(h) == 4
    assert h.records[-1]["train_loss"] < h.records[0]["train_loss"]
    assert h.records[-1]["val_accuracy"] >= 0.9  # chance is 0.5
    assert [r["epoch"] for r in h.records] == [1, 2, 3, 4]
    assert set(h.records[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy", "val_auc", "lr", "seconds"}
    assert h.records[0]["lr"] == 1e-2  # no scheduler: constant
    assert h.meta["optimizer"] == "adamw" and h.meta["lr"] == 1e-2 and h.meta["epochs"] == 4
    assert h.meta["batch_size"] == 32 and h.meta["scheduler"] is None and h.meta["seed"] == 0
    assert h.meta["weight_decay"] == 0.01 and h.meta["train_size"] == 128 and h.meta["val_size"] == 64
    assert h.meta["trainable_params"] == sum(p.numel() for p in model.parameters())
    assert h.best_epoch is not None and h.best("val_loss") == h.records[h.best_epoch - 1]["val_loss"]
    assert not h.stopped_early


def test_fit_wraps_datasets_and_shows_progress() -> None:
    h = fit(mlp(), blobs(), blobs(32, seed=1), epochs=1, batch_size=16, device="cpu", progress=True, seed=0)
    assert h.meta["batch_size"] == 16 and h.meta["steps_per_epoch"] == 8
    assert "val_accuracy" in h.records[0]


def test_fit_is_reproducible_with_a_seed() -> None:
    a = fit(mlp(), blobs(), epochs=2, lr=1e-2, batch_size=16, seed=3, **QUIET)
    b = fit(mlp(), blobs(), epochs=2, lr=1e-2, batch_size=16, seed=3, **QUIET)
    assert [r["train_loss"] for r in a.records] == [r["train_loss"] for r in b.records]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_runs(name: str) -> None:
    model = mlp()
    before = snapshot(model)
    h = fit(model, loader(blobs(64)), epochs=1, optimizer=name, lr=1e-2, **QUIET)
    assert h.meta["optimizer"] == name and math.isfinite(h.records[0]["train_loss"])
    assert not same(before, model.state_dict())


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_runs(name: str) -> None:
    h = fit(mlp(), loader(blobs(64), batch_size=8), loader(blobs(32, seed=1)), epochs=2, scheduler=name,
            lr=1e-2, **QUIET)
    assert h.meta["scheduler"] == name and len(h) == 2
    lrs = [r["lr"] for r in h.records]
    if name in ("onecycle", "cosine"):  # per batch: the rate at the end of the run has annealed well down
        assert lrs[-1] < 1e-3
    if name == "step":  # step_size = max(1, 2 // 3) = 1: divided by 10 after epoch 1
        assert lrs == pytest.approx([1e-2, 1e-3])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"optimizer": "adamx"}, "adamw"),
        ({"scheduler": "linear"}, "onecycle"),
        ({"metrics": ("accuracy", "precision")}, "balanced_accuracy"),
        ({"early_stopping": "val_f1"}, "val_accuracy"),
        ({"epochs": 0}, "epochs"),
        ({"loss_fn": nn.CrossEntropyLoss(), "class_weights": [1.0, 2.0]}, "not both"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit(mlp(), loader(blobs(32)), loader(blobs(32)), **{"epochs": 1, **QUIET, **kwargs})


def test_nothing_trainable_is_an_error() -> None:
    model = mlp()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        fit(model, loader(blobs(32)), epochs=1, **QUIET)


def test_only_trainable_parameters_are_optimised() -> None:
    model = mlp()
    model[0].requires_grad_(False)
    before = snapshot(model)
    h = fit(model, loader(blobs(64)), epochs=1, lr=1e-2, **QUIET)
    after = model.state_dict()
    assert same(before, after, "0.") and not same(before, after, "2.")
    assert h.meta["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)


# ------------------------------------------------------------------------------------------ early stopping
def test_early_stopping_stops_and_restores_the_best_weights() -> None:
    """Validation labels are the training labels flipped: as the model learns, the val loss only rises."""
    model = mlp()
    states: dict[int, dict[str, torch.Tensor]] = {}
    h = fit(model, loader(blobs(), shuffle=True), loader(blobs(64, seed=1, flip=True)), epochs=8, lr=1e-2,
            seed=0, early_stopping=EarlyStopping("val_loss", patience=2),
            callbacks=[lambda hist: states.__setitem__(len(hist), snapshot(model))], **QUIET)
    assert h.stopped_early and len(h) < 8
    assert h.best_epoch == 1 and len(h) == h.best_epoch + 2
    assert same(model.state_dict(), states[h.best_epoch])  # restored
    assert not same(model.state_dict(), states[len(h)])  # ... not the last epoch's weights
    assert h.meta["early_stopping"] == {"metric": "val_loss", "patience": 2, "mode": "min",
                                        "restore_best": True, "min_delta": 0.0}


def test_early_stopping_by_metric_name_without_restore() -> None:
    model = mlp()
    states: dict[int, dict[str, torch.Tensor]] = {}
    h = fit(model, loader(blobs(), shuffle=True), loader(blobs(64, seed=1, flip=True)), epochs=8, lr=1e-2,
            seed=0, early_stopping=EarlyStopping("accuracy", patience=1, restore_best=False),
            callbacks=[lambda hist: states.__setitem__(len(hist), snapshot(model))], **QUIET)
    assert h.meta["early_stopping"]["metric"] == "val_accuracy" and h.meta["early_stopping"]["mode"] == "max"
    assert h.stopped_early and len(h) < 8
    assert same(model.state_dict(), states[len(h)])  # restore_best=False: the last weights stay


def test_early_stopping_string_and_mode_inference() -> None:
    assert EarlyStopping("val_loss").mode == "min"
    assert EarlyStopping("val_auc").mode == "max"
    assert EarlyStopping("train_loss", mode="max").mode == "max"
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    h = fit(mlp(), loader(blobs(64)), loader(blobs(32, seed=1)), epochs=2, early_stopping="val_accuracy",
            **QUIET)
    assert h.meta["early_stopping"]["metric"] == "val_accuracy"


# ------------------------------------------------------------------------------- loss, class weights, clip
def test_class_weights_change_the_loss() -> None:
    model = mlp()
    ds = blobs(64)
    x, y = ds.tensors
    plain = evaluate(model, ds, device=CPU)["loss"]
    weighted = evaluate(model, ds, device=CPU, class_weights=[1.0, 5.0])["loss"]
    with torch.no_grad():
        logits = model(x)
    assert plain == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert weighted == pytest.approx(F.cross_entropy(logits, y, weight=torch.tensor([1.0, 5.0])).item(), rel=1e-5)
    assert weighted != pytest.approx(plain, rel=1e-3)
    a = fit(mlp(), loader(blobs(64)), epochs=1, **QUIET)
    b = fit(mlp(), loader(blobs(64)), epochs=1, class_weights=torch.tensor([1.0, 5.0]), **QUIET)
    assert a.records[0]["train_loss"] != pytest.approx(b.records[0]["train_loss"], rel=1e-3)
    assert b.meta["class_weights"] == [1.0, 5.0] and b.meta["loss"] == "CrossEntropyLoss(weighted)"


def test_custom_loss_fn_is_used() -> None:
    def doubled(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 2 * F.cross_entropy(logits, target)

    ds = blobs(64)
    assert evaluate(mlp(), ds, device=CPU, loss_fn=doubled)["loss"] == pytest.approx(
        2 * evaluate(mlp(), ds, device=CPU)["loss"], rel=1e-5
    )
    assert fit(mlp(), loader(ds), epochs=1, loss_fn=doubled, **QUIET).meta["loss"] == "doubled"


def total_grad_norm(model: nn.Module) -> float:
    return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))


def test_grad_clip_bounds_the_gradient_norm() -> None:
    """The last step's gradients stay in .grad: clipped ones have norm <= grad_clip."""
    free = mlp()
    fit(free, loader(blobs(64)), epochs=1, lr=1e-4, **QUIET)
    assert total_grad_norm(free) > 0.05
    clipped = mlp()
    h = fit(clipped, loader(blobs(64)), epochs=1, lr=1e-4, grad_clip=0.05, **QUIET)
    assert total_grad_norm(clipped) <= 0.05 * (1 + 1e-4)
    assert h.meta["grad_clip"] == 0.05
    with pytest.raises(ValueError, match="grad_clip"):
        fit(mlp(), loader(blobs(32)), epochs=1, grad_clip=0, **QUIET)


# ---------------------------------------------------------------------------------------- text batches
def test_fit_trains_a_hugging_face_style_text_model() -> None:
    torch.manual_seed(0)
    model = TinyTextClassifier()
    train, val = loader(text_data(), shuffle=True, batch_size=16), loader(text_data(48, seed=1), batch_size=16)
    h = fit(model, train, val, epochs=4, lr=5e-2, seed=0, metrics=("accuracy", "f1"), **QUIET)
    assert h.records[-1]["train_loss"] < h.records[0]["train_loss"]
    assert h.records[-1]["val_accuracy"] >= 0.9
    scores = evaluate(model, val, metrics=("accuracy",), device=CPU)
    assert scores["accuracy"] == pytest.approx(h.records[-1]["val_accuracy"])
    preds = predict(model, val, device=CPU, progress=False)
    labels = np.array([int(r["labels"]) for r in text_data(48, seed=1)])
    assert preds.shape == (48,) and (preds == labels).mean() == pytest.approx(scores["accuracy"])


# --------------------------------------------------------------------------------------------- evaluate
def logit_dataset(p1: list[float], y: list[int]) -> TensorDataset:
    """Inputs that *are* two-class logits with P(class 1) = p1 (the model is nn.Identity)."""
    p = torch.tensor(p1, dtype=torch.float64)
    logits = torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], dim=1).float()
    return TensorDataset(logits, torch.tensor(y))


def test_evaluate_binary_metrics_match_hand_computation() -> None:
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    p1 = [0.9, 0.8, 0.6, 0.3, 0.7, 0.2, 0.1, 0.4, 0.35, 0.05]
    # threshold 0.5 → TP 3, FN 1, FP 1, TN 5; AUC: 20 of 24 positive/negative pairs ranked right
    out = evaluate(nn.Identity(), loader(logit_dataset(p1, y), batch_size=4), metrics=sorted(METRICS),
                   device=CPU)
    assert out["accuracy"] == pytest.approx(0.8)
    assert out["sensitivity"] == pytest.approx(3 / 4)
    assert out["specificity"] == pytest.approx(5 / 6)
    assert out["balanced_accuracy"] == pytest.approx((3 / 4 + 5 / 6) / 2)
    assert out["f1"] == pytest.approx((3 / 4 + 5 / 6) / 2)  # P = R in each class here
    assert out["auc"] == pytest.approx(20 / 24)
    assert out["confusion_matrix"] == [[5, 1], [1, 3]]
    expected_loss = -np.mean([math.log(p if t == 1 else 1 - p) for p, t in zip(p1, y, strict=True)])
    assert out["loss"] == pytest.approx(expected_loss, rel=1e-5)


def test_evaluate_multiclass_and_errors() -> None:
    logits = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0], [3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0]])
    y = torch.tensor([0, 1, 2, 0, 2, 1])
    out = evaluate(nn.Identity(), TensorDataset(logits, y), metrics=("accuracy", "auc", "confusion_matrix"),
                   device=CPU, batch_size=4)
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["confusion_matrix"] == [[2, 0, 0], [0, 1, 1], [0, 1, 1]]
    assert 0.5 < out["auc"] < 1.0
    with pytest.raises(ValueError, match="binary"):
        evaluate(nn.Identity(), TensorDataset(logits, y), metrics=("sensitivity",), device=CPU)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(nn.Identity(), TensorDataset(logits, y), metrics=("recall",), device=CPU)
    with pytest.raises(ValueError, match="labelled"):
        evaluate(nn.Identity(), TensorDataset(logits), device=CPU)


def test_auc_with_a_single_class_is_nan() -> None:
    out = evaluate(nn.Identity(), logit_dataset([0.2, 0.7], [1, 1]), metrics=("auc",), device=CPU)
    assert math.isnan(out["auc"])


def test_predict_returns_classes_and_probabilities() -> None:
    ds = logit_dataset([0.9, 0.2, 0.6], [1, 0, 0])
    preds, probs = predict(nn.Identity(), ds, device=CPU, return_probs=True, progress=False)
    assert preds.tolist() == [1, 0, 1]
    assert probs[:, 1] == pytest.approx([0.9, 0.2, 0.6], abs=1e-6)
    assert probs.sum(axis=1) == pytest.approx(np.ones(3))
    only = predict(nn.Identity(), TensorDataset(ds.tensors[0]), device=CPU, progress=False)
    assert isinstance(only, np.ndarray) and only.tolist() == [1, 0, 1]


# ---------------------------------------------------------------------------------------------- History
def test_history_round_trips_and_reads_well(tmp_path) -> None:
    h = fit(mlp(), loader(blobs(64)), loader(blobs(32, seed=1)), epochs=2, scheduler="onecycle",
            metrics=("accuracy", "confusion_matrix"), **QUIET)
    assert History.from_json(h.to_json()) == h
    path = h.save(tmp_path / "runs" / "h.json")
    assert History.load(path) == h
    frame = h.to_frame()
    assert list(frame.columns) == ["epoch", "train_loss", "val_loss", "val_accuracy", "val_confusion_matrix",
                                   "lr", "seconds"]
    assert len(frame) == 2 and frame["epoch"].tolist() == [1, 2]
    text = repr(h)
    assert text.startswith("History(2 epochs, best epoch") and "train_loss=" in text
    assert h.best("val_accuracy") == max(r["val_accuracy"] for r in h.records)
    with pytest.raises(ValueError, match="recorded columns"):
        h.best("val_auc")
    with pytest.raises(ValueError, match="missing keys"):
        History.from_json('{"records": []}')


def test_history_concat_renumbers_epochs() -> None:
    a = History(records=[{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.8}], best_epoch=2,
                meta={"lr": 1})
    b = History(records=[{"epoch": 1, "train_loss": 0.5}], best_epoch=1, stopped_early=True, meta={"lr": 2})
    h = History.concat([("one", a), ("two", b)], meta={"method": "x"})
    assert [(r["epoch"], r["phase"]) for r in h.records] == [(1, "one"), (2, "one"), (3, "two")]
    assert h.best_epoch == 3 and h.stopped_early
    assert h.meta == {"method": "x", "phases": [{"phase": "one", "lr": 1}, {"phase": "two", "lr": 2}]}
    assert History.from_json(h.to_json()) == h


# ---------------------------------------------------------------------------------------------- lr_find
def test_lr_find_restores_the_model_and_suggests_a_rate() -> None:
    model = mlp(bn=True)
    model.eval()
    before = snapshot(model)
    result = lr_find(model, blobs(), num_iter=30, batch_size=16, seed=0, **QUIET)
    assert isinstance(result, LRFinderResult)
    assert 3 <= len(result.lrs) == len(result.losses) <= 30
    assert all(b > a for a, b in zip(result.lrs, result.lrs[1:], strict=False))
    assert result.lrs[0] == pytest.approx(1e-7)
    assert 1e-7 <= result.suggestion <= 10
    assert result.suggestion in result.lrs
    assert same(before, model.state_dict())  # weights and BatchNorm buffers, exactly
    assert not model.training  # modes restored
    assert "suggestion" in repr(result)


def test_lr_find_stops_when_the_loss_explodes() -> None:
    result = lr_find(mlp(), loader(blobs(), shuffle=True), start_lr=1e-3, end_lr=1e4, num_iter=60, optimizer="sgd",
                     seed=0, **QUIET)
    assert len(result.lrs) < 60
    assert result.losses[-1] > 4 * min(result.losses)
    with pytest.raises(ValueError, match="start_lr"):
        lr_find(mlp(), blobs(), start_lr=1.0, end_lr=0.1, **QUIET)


# ------------------------------------------------------------------------------------ fine-tuning recipes
def test_fine_tune_trains_the_head_first_then_everything() -> None:
    model = mlp(bn=True)
    states = [snapshot(model)]
    lr, lr_mult = 1e-2, 100
    h = fine_tune(model, loader(blobs(), shuffle=True), loader(blobs(64, seed=1)), freeze_epochs=1, epochs=2,
                  lr=lr, lr_mult=lr_mult, seed=0, callbacks=[lambda hist: states.append(snapshot(model))],
                  **QUIET)
    assert [r["phase"] for r in h.records] == ["frozen", "unfrozen", "unfrozen"]
    assert [r["epoch"] for r in h.records] == [1, 2, 3]
    initial, after_frozen, final = states[0], states[1], states[-1]
    # frozen phase: body untouched, BatchNorm statistics included; the head trained
    assert same(initial, after_frozen, "0.") and same(initial, after_frozen, "1.")
    assert not same(initial, after_frozen, "2.")
    # unfrozen phase: earlier groups train too
    assert not same(after_frozen, final, "0.0.") and not same(after_frozen, final, "1.")
    assert not same(after_frozen, final, "0.1.running_mean")
    frozen_meta, unfrozen_meta = h.meta["phases"]
    assert frozen_meta["phase"] == "frozen" and frozen_meta["scheduler"] == "onecycle"
    assert [g["name"] for g in frozen_meta["param_groups"]] == ["all"]
    assert frozen_meta["param_groups"][0]["lr"] == lr
    assert frozen_meta["trainable_params"] == sum(p.numel() for p in model[2].parameters())
    group_lrs = [g["lr"] for g in unfrozen_meta["param_groups"]]
    assert [g["name"] for g in unfrozen_meta["param_groups"]] == ["0", "1", "head"]
    assert group_lrs == pytest.approx([lr / 2 / lr_mult, lr / 2 / math.sqrt(lr_mult), lr / 2])
    assert h.meta["method"] == "fine_tune" and h.meta["n_groups"] == 3 and h.meta["lr_mult"] == lr_mult
    assert History.from_json(h.to_json()) == h
    assert all(p.requires_grad for p in model.parameters())


def test_progressive_unfreeze_adds_one_group_per_stage() -> None:
    model = mlp()
    states = [snapshot(model)]
    h = progressive_unfreeze(model, loader(blobs(), shuffle=True), loader(blobs(64, seed=1)), lr=1e-2,
                             lr_mult=10, seed=0, callbacks=[lambda hist: states.append(snapshot(model))],
                             **QUIET)
    assert [r["phase"] for r in h.records] == ["stage1", "stage2", "stage3"]
    assert same(states[0], states[2], "0.") and not same(states[2], states[3], "0.")
    assert same(states[0], states[1], "1.") and not same(states[1], states[2], "1.")
    names = [[g["name"] for g in m["param_groups"]] for m in h.meta["phases"]]
    assert names == [["head"], ["1", "head"], ["0", "1", "head"]]
    assert [g["lr"] for g in h.meta["phases"][2]["param_groups"]] == pytest.approx([1e-3, 1e-2 / 10**0.5, 1e-2])
    with pytest.raises(ValueError, match="stages"):
        progressive_unfreeze(mlp(), blobs(), stages=4, **QUIET)


def test_plots_delegate_to_viz() -> None:
    import matplotlib.pyplot as plt

    h = History(records=[{"epoch": 1, "train_loss": 0.7, "val_loss": 0.6, "val_accuracy": 0.5},
                         {"epoch": 2, "train_loss": 0.5, "val_loss": 0.5, "val_accuracy": 0.7}])
    fig = h.plot()
    assert fig.axes and fig.axes[0].lines
    fig2 = LRFinderResult(lrs=[1e-4, 1e-3, 1e-2], losses=[1.0, 0.5, 2.0], suggestion=1e-3).plot()
    assert fig2.axes[0].get_xscale() == "log"
    plt.close("all")


def test_train_bn_false_keeps_running_statistics() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    ds = TensorDataset(torch.randn(64, 4) * 3 + 5, torch.randint(0, 2, (64,)))
    before = net[1].running_mean.clone()
    weight = net[1].weight.detach().clone()
    fit(net, ds, epochs=1, lr=0.05, batch_size=16, progress=False, device="cpu", train_bn=False)
    assert torch.equal(net[1].running_mean, before), "train_bn=False must not update the running statistics"
    assert not torch.equal(net[1].weight.detach(), weight), "its affine parameters still train"
    fit(net, ds, epochs=1, lr=0.05, batch_size=16, progress=False, device="cpu")
    assert not torch.equal(net[1].running_mean, before), "the default (train_bn=True) updates them"


# ------------------------------------------------------------------------------------------- channels-last
def _conv_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 2))


def _formats_seen(net: nn.Module) -> list[bool]:
    """Whether the first convolution's weight was channels-last at each call."""
    seen: list[bool] = []
    net[0].register_forward_pre_hook(
        lambda m, _x: seen.append(m.weight.is_contiguous(memory_format=torch.channels_last)
                                  and not m.weight.is_contiguous()))
    return seen


def test_fit_evaluate_lr_find_run_channels_last_and_give_the_format_back():
    ds = TensorDataset(torch.randn(16, 3, 6, 6), torch.randint(0, 2, (16,)))
    net = _conv_net()
    seen = _formats_seen(net)
    before = net[0].weight.detach().clone()
    fit(net, ds, ds, epochs=1, batch_size=8, progress=False, device="cpu")
    evaluate(net, ds, device="cpu")
    lr_find(net, ds, num_iter=3, progress=False, device="cpu", batch_size=8)
    assert seen and all(seen), "every forward pass ran with NHWC weights"
    weight = net[0].weight
    assert weight.is_contiguous() and not weight.is_inference(), "the model comes back NCHW and trainable"
    assert not torch.equal(weight.detach(), before), "fit trained the same parameters (not a copy)"


def test_channels_last_leaves_models_without_convolutions_alone():
    from tlcourse._plumbing import channels_last

    net = nn.Linear(3, 2)
    with channels_last(net, torch.device("cpu")):
        assert net.weight.is_contiguous()
    two_d = nn.Sequential(nn.Conv2d(1, 1, 1))
    with channels_last(two_d, torch.device("meta")):  # neither CPU nor CUDA: untouched
        assert two_d[0].weight.is_contiguous()


def test_fit_records_every_setting_it_was_given():
    """Regression: ``fit(..., penalty=...)`` and ``train_bn`` were missing from the history (settings went through a
    string-keyed dict). Every keyword of ``fit`` but the run-time ones is a ``FitSettings`` field, recorded whole."""
    import inspect

    from tlcourse.regularize import L2SP
    from tlcourse.train import FitSettings

    runtime = {"device", "progress", "callbacks"}
    keywords = {n for n, p in inspect.signature(fit).parameters.items() if p.kind is p.KEYWORD_ONLY} - runtime
    assert keywords == set(FitSettings.__dataclass_fields__)
    net = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    x = torch.randn(32, 2)
    data = TensorDataset(x, (x[:, 0] > 0).long())
    given = {"epochs": 2, "lr": 0.05, "optimizer": "sgd", "weight_decay": 0.5, "momentum": 0.5,
             "scheduler": "cosine", "early_stopping": "train_loss", "metrics": ("accuracy",),
             "class_weights": [1.0, 2.0], "grad_clip": 1.0, "amp": False, "batch_size": 8, "seed": 3,
             "train_bn": False, "penalty": L2SP(net), "loss_fn": None}
    assert set(given) == keywords  # a new keyword must be added here, and then it is checked below
    h = fit(net, data, data, progress=False, device="cpu", **given)
    recorded = h.meta["settings"]
    for name, value in given.items():
        if name == "early_stopping":
            assert recorded[name]["metric"] == value
        elif name == "penalty":
            assert recorded[name] == repr(value)
        elif name == "metrics":
            assert recorded[name] == list(value)
        else:
            assert recorded[name] == value, name
    assert h.meta["train_bn"] is False and h.meta["penalty"] == repr(given["penalty"])


def test_cycle_batches_restarts_reshuffles_and_refuses_an_empty_loader() -> None:
    """One loader cycler for fit's range test and adapt's loops: it starts the loader again (a shuffled loader
    draws a new order each pass) and fails loudly on a loader with no batches instead of waiting forever."""
    from itertools import islice

    from tlcourse._plumbing import BatchError, cycle_batches, labelled_batch

    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.arange(8.0)), batch_size=8, shuffle=True)
    passes = [b[0].tolist() for b in islice(cycle_batches(loader), 3)]
    assert all(sorted(p) == list(range(8)) for p in passes) and len({tuple(p) for p in passes}) > 1
    assert len(list(cycle_batches(loader, n=5))) == 5
    with pytest.raises(ValueError, match="no batches"):
        next(cycle_batches(DataLoader(TensorDataset(torch.zeros(0)), batch_size=2)))
    with pytest.raises(BatchError, match="needs labelled batches"):
        labelled_batch(torch.zeros(2, 3), torch.device("cpu"), "fit")
