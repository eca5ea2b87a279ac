"""The backbone registry: real pretrained weights, loaded offline from the pip packages."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from skimage import data as skdata

from tlcourse.models import (
    BACKBONES,
    WeightsUnavailableError,
    build_classifier,
    count_parameters,
    get_head,
    imagenet_labels,
    load_backbone,
    load_text_classifier,
    load_tokenizer,
    preprocess,
    replace_head,
)


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return load_backbone("efficientnet_lite0").eval()


def _top(model: torch.nn.Module, photo: str, name: str = "efficientnet_lite0", k: int = 5) -> list[str]:
    x = preprocess(name)(Image.fromarray(getattr(skdata, photo)())).unsqueeze(0)
    with torch.no_grad():
        idx = model(x).topk(k).indices[0].tolist()
    labels = imagenet_labels()
    return [labels[i] for i in idx]


def test_lite0_predicts_espresso_for_coffee(lite0: torch.nn.Module) -> None:
    assert _top(lite0, "coffee")[0] == "espresso"


def test_lite0_predicts_a_cat_for_chelsea(lite0: torch.nn.Module) -> None:
    assert _top(lite0, "chelsea")[0] in {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}


def test_random_weights_do_not_predict_espresso() -> None:
    torch.manual_seed(0)
    random_model = load_backbone("efficientnet_lite0", pretrained=False).eval()
    assert random_model.tlcourse_weights == "random-init"
    assert _top(random_model, "coffee", k=1) != ["espresso"]


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_lite2_load_strictly_and_match_registry(name: str) -> None:
    model = load_backbone(name).eval()
    assert count_parameters(model) == BACKBONES[name].num_params
    assert _top(model, "coffee", name=name)[0] == "espresso"


def test_registry_entries_are_complete() -> None:
    for name, spec in BACKBONES.items():
        assert spec.name == name
        assert spec.kind in {"vision", "text"}
        assert spec.licence and spec.citation and spec.head and spec.feature_dim > 0
        if spec.offline:
            assert spec.pip_package


def test_build_classifier_replaces_only_the_head(lite0: torch.nn.Module) -> None:
    model = build_classifier("efficientnet_lite0", num_classes=3)
    assert get_head(model).out_features == 3
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)
    assert torch.equal(model.conv_stem.weight, lite0.conv_stem.weight)


def test_replace_head_validates() -> None:
    with pytest.raises(ValueError):
        replace_head(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)), 2)
    with pytest.raises(ValueError):
        build_classifier("efficientnet_lite0", 0)
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("no_such_net")


def test_torchvision_backbone_loads_a_local_weights_file(tmp_path) -> None:
    import torchvision

    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = load_backbone("resnet18", weights_path=path)
    for (k, a), b in zip(reference.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert model.tlcourse_weights == str(path)
    assert get_head(replace_head(model, 5)).out_features == 5


def test_missing_weights_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        load_backbone("resnet18", weights_path=tmp_path / "nope.pth")


def test_offline_torchvision_download_fails_with_instructions(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache: it must try the network, which is closed
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(WeightsUnavailableError) as info:
        load_backbone("resnet18")
    msg = str(info.value)
    assert "resnet18-f37072fd.pth" in msg and "weights_path" in msg


def test_preprocess_sizes_and_normalisation() -> None:
    img = Image.new("L", (300, 200), color=255)  # greyscale in, 3 channels out
    x = preprocess("efficientnet_lite0", image_size=96)(img)
    assert x.shape == (3, 96, 96)
    assert torch.allclose(x, torch.ones_like(x))  # white → (1 - 0.5) / 0.5
    xt = preprocess("efficientnet_lite0", train=True, image_size=64)(Image.new("RGB", (100, 80)))
    assert xt.shape == (3, 64, 64)
    with pytest.raises(ValueError):
        preprocess("minilm")


def test_imagenet_labels_offline() -> None:
    labels = imagenet_labels()
    assert len(labels) == 1000 and labels[967] == "espresso" and labels[281] == "tabby"


def test_minilm_text_classifier_offline() -> None:
    tok, model = load_text_classifier("minilm", num_labels=2)
    batch = tok(["a gripping, beautiful film", "dull and lifeless"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    assert out.logits.shape == (2, 2)
    assert count_parameters(model.bert) == BACKBONES["minilm"].num_params
    # the encoder is the pretrained one: its embeddings equal the package's safetensors
    encoder = load_backbone("minilm")
    assert torch.equal(encoder.embeddings.word_embeddings.weight, model.bert.embeddings.word_embeddings.weight)
    assert load_tokenizer("minilm").vocab_size == 30522
