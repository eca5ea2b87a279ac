"""tlcourse.trunk (cached frozen part, trainable top) and tlcourse.regularize (L2-SP through fit's penalty)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import TensorDataset

from tlcourse.freeze import freeze, unfreeze
from tlcourse.models import build_classifier
from tlcourse.regularize import L2SP
from tlcourse.train import evaluate, fit
from tlcourse.trunk import cache_trunk, stages


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(12, 3, 64, 64, generator=g), torch.tensor([0, 1] * 6))


@pytest.mark.parametrize("last", [1, 3, 5])
def test_cached_top_equals_the_whole_model(images, last):
    model = unfreeze(build_classifier("efficientnet_lite0", 2, pretrained=False), last=last)
    cached = cache_trunk(model, images, last=last, progress=False, device="cpu")
    with torch.no_grad():
        assert torch.allclose(cached.top.eval()(cached.data.tensors[0]), model.eval()(images.tensors[0]), atol=1e-4)
    assert [p for p in cached.top.parameters()] and all(p.requires_grad for p in cached.top.parameters())


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu"), None])
def test_every_device_form_is_accepted(images, device):
    """Regression: ``device=torch.device("cpu")`` raised AttributeError ('strip') while "cpu" worked."""
    model = unfreeze(build_classifier("efficientnet_lite0", 2, pretrained=False), last=1)
    cached = cache_trunk(model, images, last=1, progress=False, device=device)
    assert cached.data.tensors[0].device.type in ("cpu", "cuda", "mps")
    history = fit(cached.top, cached.data, epochs=1, lr=1e-3, batch_size=4, progress=False, seed=0, device=device)
    assert len(history.to_frame()) == 1


def test_training_the_top_trains_the_model_and_leaves_the_frozen_part(images):
    model = unfreeze(freeze(build_classifier("efficientnet_lite0", 2, pretrained=False)), last=3)
    stem_before = model.conv_stem.weight.detach().clone()
    top_before = model.blocks[6][0].conv_pwl.weight.detach().clone()
    cached = cache_trunk(model, images, last=3, progress=False, device="cpu")
    fit(cached.top, cached.data, epochs=2, lr=1e-2, batch_size=4, progress=False, seed=0, device="cpu")
    assert torch.equal(model.conv_stem.weight, stem_before), "the frozen part must not change"
    assert not torch.equal(model.blocks[6][0].conv_pwl.weight, top_before), "the top is the model's own top"
    on_images = evaluate(model, images, device="cpu")["accuracy"]
    on_cache = evaluate(cached.top, cached.data, device="cpu")["accuracy"]
    assert on_images == on_cache


def test_views_repeat_a_random_transform(images):
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            x, y = images[i]
            return x + 0.1 * torch.randn_like(x), y

    model = build_classifier("efficientnet_lite0", 2, pretrained=False)
    cached = cache_trunk(model, Noisy(), last=2, views=3, progress=False, device="cpu")
    maps = cached.data.tensors[0]
    assert len(cached.data) == 3 * len(images) and cached.views == 3
    assert not torch.allclose(maps[: len(images)], maps[len(images): 2 * len(images)]), "each view is a new draw"


def test_bad_split_and_unknown_architectures_are_explained(images):
    model = build_classifier("efficientnet_lite0", 2, pretrained=False)
    n = len(stages(model))
    with pytest.raises(ValueError, match="last must be between 1 and"):
        cache_trunk(model, images, last=n, progress=False, device="cpu")
    with pytest.raises(TypeError, match="STAGERS"):
        cache_trunk(torch.nn.Linear(2, 2), images, last=1, progress=False, device="cpu")


@pytest.mark.slow
def test_text_states_are_cached_trimmed_and_padded_back():
    from tlcourse.text import load_sentence_classifier, text_loader

    tok, model = load_sentence_classifier("minilm", 2)
    texts = [("a fine film", 1), ("dull , long and badly acted from start to finish", 0), ("ok", 1)]
    loader = text_loader(texts, tok, max_length=16, batch_size=3, shuffle=False)
    cached = cache_trunk(model.eval(), loader, last=3, store=torch.float16, progress=False, device="cpu")
    lengths = sorted(h.shape[0] for h, _ in (cached.data[i] for i in range(3)))
    assert lengths == sorted(int(m.sum()) for m in next(iter(loader))["attention_mask"])
    batch = next(iter(cached.loader(batch_size=3)))
    full = next(iter(loader))
    with torch.no_grad():
        top = cached.top.eval()(hidden_states=batch["hidden_states"], attention_mask=batch["attention_mask"])
        whole = model(**{k: v for k, v in full.items() if k != "labels"})
    assert torch.allclose(top, whole, atol=5e-2), "float16 storage changes the logits only slightly"
    assert batch["labels"].tolist() == full["labels"].tolist()


def test_l2sp_pulls_towards_the_start_and_fit_adds_it(images):
    model = unfreeze(build_classifier("efficientnet_lite0", 2, pretrained=False), last=2)
    free, held = copy.deepcopy(model), copy.deepcopy(model)
    sp = L2SP(held, alpha=10.0)
    assert "classifier.weight" not in sp.anchor and sp.distance(held) == 0.0
    for net, penalty in ((free, None), (held, sp)):
        fit(net, images, epochs=3, lr=3e-2, batch_size=4, progress=False, seed=0, device="cpu", penalty=penalty)
    assert L2SP(model, exclude=("classifier",)).distance(held) < L2SP(model).distance(free)
    with pytest.raises(ValueError, match="no trainable parameter"):
        L2SP(freeze(copy.deepcopy(model)), exclude=("classifier",))


def test_stages_are_the_layer_groups() -> None:
    """Architecture knowledge in one place per family: a model's stages are its layer groups (names and modules
    from tlcourse.freeze), with only how each runs added (they once had to agree by hand)."""
    from tlcourse.freeze import layer_groups
    from tlcourse.models import build_classifier
    from tlcourse.text import load_sentence_classifier
    from tlcourse.trunk import stages

    for model in (build_classifier("efficientnet_lite0", 2, pretrained=False), load_sentence_classifier()[1]):
        got = [(s.name, [id(m) for m in s.modules]) for s in stages(model)]
        assert got == [(g.name, [id(m) for m in g.modules]) for g in layer_groups(model)], type(model).__name__
