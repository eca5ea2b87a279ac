"""``tlcourse.models.small_cnn``: the from-scratch baseline of lessons 02, 03 and 05."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tlcourse.features import extract_features
from tlcourse.freeze import layer_groups
from tlcourse.models import count_parameters, get_head, replace_head, small_cnn


@pytest.mark.parametrize(("size", "channels", "classes"), [(28, 1, 2), (64, 3, 2), (128, 3, 5)])
def test_small_cnn_shapes(size: int, channels: int, classes: int) -> None:
    net = small_cnn(classes, in_channels=channels).eval()
    assert net(torch.zeros(3, channels, size, size)).shape == (3, classes)


def test_small_cnn_is_small_random_and_fresh_each_call() -> None:
    a, b = small_cnn(2), small_cnn(2)
    assert count_parameters(a) == 97_938
    assert count_parameters(a, trainable_only=True) == count_parameters(a), "everything trains from scratch"
    assert not torch.equal(a.block1[0].weight, b.block1[0].weight), "each call draws new random weights"
    assert count_parameters(small_cnn(2, width=8)) < count_parameters(a) < count_parameters(small_cnn(2, depth=5))
    assert a.tlcourse_weights == "random-init"


def test_small_cnn_works_with_the_toolkit() -> None:
    net = small_cnn(2)
    assert isinstance(get_head(net), nn.Linear) and get_head(net).in_features == 128
    assert [g.name for g in layer_groups(net)] == ["block1", "block2", "block3", "block4", "head"]
    assert replace_head(net, 4)(torch.zeros(2, 3, 32, 32)).shape == (2, 4)
    ds = torch.utils.data.TensorDataset(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]))
    feats, labels = extract_features(net, ds, cache=False, progress=False, device="cpu")
    assert feats.shape == (4, 128) and labels.tolist() == [0, 1, 0, 1]


def test_small_cnn_learns_a_toy_task() -> None:
    torch.manual_seed(0)
    x = torch.rand(64, 3, 32, 32)
    y = (torch.arange(64) % 2).long()
    x[y == 1, 0] += 1.0  # class 1 is redder
    net = small_cnn(2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize("bad", [{"num_classes": 0}, {"num_classes": 2, "width": 0}, {"num_classes": 2, "depth": 0}])
def test_small_cnn_rejects_bad_sizes(bad: dict) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        small_cnn(**bad)
