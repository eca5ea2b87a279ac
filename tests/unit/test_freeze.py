"""Freeze helpers: which parameters train, at which rate, and BatchNorm statistics in frozen groups."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from tlcourse.freeze import (
    apply_bn_eval,
    discriminative_lrs,
    freeze,
    freeze_to,
    group_of,
    layer_groups,
    trainable_summary,
    unfreeze,
)
from tlcourse.models import build_classifier, load_backbone


def _trainable(groups) -> list[int]:
    return [sum(p.numel() for p in g.parameters() if p.requires_grad) for g in groups]


@pytest.fixture(scope="module")
def lite0_cls() -> nn.Module:
    return build_classifier("efficientnet_lite0", num_classes=2)


def test_lite0_groups_cover_every_parameter_once(lite0_cls: nn.Module) -> None:
    groups = layer_groups(lite0_cls)
    assert [g.name for g in groups] == ["stem", *[f"blocks.{i}" for i in range(7)], "conv_head", "head"]
    ids = [id(p) for g in groups for p in g.parameters()]
    assert len(ids) == len(set(ids)) == len(list(lite0_cls.parameters()))


def test_trainable_counts_after_each_call(lite0_cls: nn.Module) -> None:
    groups = layer_groups(lite0_cls)
    sizes = [sum(p.numel() for p in g.parameters()) for g in groups]
    freeze(lite0_cls)
    assert _trainable(groups) == [0] * 9 + [1280 * 2 + 2]
    unfreeze(lite0_cls, last=3)
    assert _trainable(groups) == [0] * 7 + sizes[7:]
    freeze_to(lite0_cls, 2)
    assert _trainable(groups) == [0, 0] + sizes[2:]
    unfreeze(lite0_cls)
    assert _trainable(groups) == sizes
    table = trainable_summary(freeze(lite0_cls))
    assert table["trainable"].iloc[-1] == 2562 and table["group"].iloc[-1] == "TOTAL"
    assert list(table["state"][:-1]) == ["frozen"] * 9 + ["trainable"]


def test_bad_arguments(lite0_cls: nn.Module) -> None:
    with pytest.raises(ValueError):
        unfreeze(lite0_cls, last=0)
    with pytest.raises(ValueError):
        freeze_to(lite0_cls, 99)
    with pytest.raises(ValueError):
        discriminative_lrs(lite0_cls, -1.0)


def test_frozen_batchnorm_statistics_do_not_move() -> None:
    torch.manual_seed(0)
    model = build_classifier("efficientnet_lite0", num_classes=2)
    unfreeze(model, last=2)  # conv_head + head train; the blocks are frozen
    before = {n: b.clone() for n, b in model.named_buffers() if "running" in n}
    model.train()  # a student's plain model.train(): the guard must still hold
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        loss = model(torch.randn(4, 3, 64, 64) * 3 + 1).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = dict(model.named_buffers())
    frozen = [n for n in before if n.startswith(("bn1", "blocks"))]
    trained = [n for n in before if n.startswith("bn2")]
    assert frozen and trained
    for n in frozen:
        assert torch.equal(before[n], after[n]), f"{n} moved although its group is frozen"
    assert any(not torch.equal(before[n], after[n]) for n in trained), "trainable BN stats should update"


def test_apply_bn_eval_sets_flags() -> None:
    model = freeze(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)))
    model.train()
    apply_bn_eval(model)
    assert model[1].training is False and model[3].training is True
    unfreeze(model)
    model.train()
    apply_bn_eval(model)
    assert model[1].training is True


def test_discriminative_lrs_are_geometric(lite0_cls: nn.Module) -> None:
    unfreeze(lite0_cls, last=3)
    groups = discriminative_lrs(lite0_cls, 1e-3, factor=10)
    assert [g["name"] for g in groups] == ["blocks.6", "conv_head", "head"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-5, 1e-4, 1e-3])
    assert all(p.requires_grad for g in groups for p in g["params"])
    torch.optim.AdamW(groups)  # a valid optimizer spec


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_large", "convnext_tiny", "vit_b_16"])
def test_torchvision_architectures_have_groups(name: str) -> None:
    model = torchvision.models.get_model(name, weights=None)
    groups = layer_groups(model)
    assert groups[0].name == "stem" and groups[-1].name == "head"
    ids = [id(p) for g in groups for p in g.parameters()]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    freeze(model)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == sum(
        p.numel() for p in groups[-1].parameters()
    )


def test_bert_groups() -> None:
    model = load_backbone("minilm")
    names = [g.name for g in layer_groups(model)]
    assert names == ["embeddings", *[f"encoder.{i}" for i in range(6)], "head"]
    unfreeze(model, last=2)
    assert not model.encoder.layer[4].attention.self.query.weight.requires_grad
    assert model.encoder.layer[5].attention.self.query.weight.requires_grad


def test_group_of() -> None:
    model = build_classifier("efficientnet_lite0", 2)
    assert group_of(model, "blocks.3.0.conv_dw") == "blocks.3"
    assert group_of(model, "classifier") == "head"
    with pytest.raises(ValueError):
        group_of(model, "nope")
