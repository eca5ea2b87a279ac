"""What trains and at which rate: layer groups, freezing, discriminative learning rates (ARCHITECTURE.md §2).

A model is cut into *layer groups* from the input to the output: stem → blocks → head. The last group is the
head, the part a new task replaces. ``freeze`` trains only the head, ``unfreeze(last=k)`` the last k groups,
``freeze_to(n)`` everything from group n on. BatchNorm layers whose parameters are frozen keep their running
statistics: a forward pre-hook puts them in eval mode even while the model trains (the "BatchNorm pitfall").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd
from torch import nn

__all__ = [
    "LayerGroup",
    "layer_groups",
    "freeze",
    "unfreeze",
    "freeze_to",
    "trainable_summary",
    "discriminative_lrs",
    "apply_bn_eval",
    "group_of",
]

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@dataclass
class LayerGroup:
    """A named slice of a model: some modules and, rarely, bare parameters (ViT's class token).

    Example:
        >>> g = LayerGroup("head", [nn.Linear(4, 2)])
        >>> sum(p.numel() for p in g.parameters())
        10
    """

    name: str
    modules: list[nn.Module]
    extra_params: list[nn.Parameter] = field(default_factory=list)

    def parameters(self) -> list[nn.Parameter]:
        """Every parameter of the group, each once.

        Example:
            >>> len(LayerGroup("g", [nn.Linear(2, 2)]).parameters())
            2
        """
        seen: set[int] = set()
        out: list[nn.Parameter] = []
        for p in [*(q for m in self.modules for q in m.parameters()), *self.extra_params]:
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return f"LayerGroup({self.name!r}, {len(self.modules)} modules, {n:,} params)"


# ------------------------------------------------------------------------------------ architecture registry
def _sub(model: nn.Module, *paths: str) -> list[nn.Module]:
    return [model.get_submodule(p) for p in paths]


def _groups_timm_efficientnet(m: nn.Module) -> list[LayerGroup]:
    groups = [LayerGroup("stem", _sub(m, "conv_stem", "bn1"))]
    groups += [LayerGroup(f"blocks.{i}", [b]) for i, b in enumerate(m.blocks)]
    groups.append(LayerGroup("conv_head", _sub(m, "conv_head", "bn2")))
    groups.append(LayerGroup("head", _sub(m, "classifier")))
    return groups


def _groups_resnet(m: nn.Module) -> list[LayerGroup]:
    groups = [LayerGroup("stem", _sub(m, "conv1", "bn1"))]
    groups += [LayerGroup(f"layer{i}", _sub(m, f"layer{i}")) for i in range(1, 5)]
    groups.append(LayerGroup("head", _sub(m, "fc")))
    return groups


def _groups_features_classifier(m: nn.Module) -> list[LayerGroup]:
    """torchvision MobileNetV3 / ConvNeXt: ``features[0]`` stem, ``features[i]`` stages, ``classifier`` head."""
    feats = list(m.features)
    groups = [LayerGroup("stem", [feats[0]])]
    groups += [LayerGroup(f"features.{i}", [f]) for i, f in enumerate(feats[1:], start=1)]
    # ConvNeXt's classifier starts with a LayerNorm that belongs to the pretrained body
    cls = list(m.classifier)
    linear_idx = max(i for i, c in enumerate(cls) if isinstance(c, nn.Linear))
    pre = [c for c in cls[:linear_idx] if any(True for _ in c.parameters())]
    if pre:
        groups.append(LayerGroup("classifier.pre", pre))
    groups.append(LayerGroup("head", [cls[linear_idx]]))
    return groups


def _groups_vit(m: nn.Module) -> list[LayerGroup]:
    groups = [LayerGroup("stem", [m.conv_proj], [m.class_token, m.encoder.pos_embedding])]
    groups += [LayerGroup(f"encoder.{i}", [layer]) for i, layer in enumerate(m.encoder.layers)]
    groups[-1].modules.append(m.encoder.ln)
    groups.append(LayerGroup("head", [m.heads]))
    return groups


def _bert_body(m: nn.Module) -> nn.Module:
    return m.bert if hasattr(m, "bert") else m


def _groups_bert(m: nn.Module) -> list[LayerGroup]:
    body = _bert_body(m)
    groups = [LayerGroup("embeddings", [body.embeddings])]
    groups += [LayerGroup(f"encoder.{i}", [layer]) for i, layer in enumerate(body.encoder.layer)]
    head = [x for x in (getattr(body, "pooler", None), getattr(m, "classifier", None)) if x is not None]
    groups.append(LayerGroup("head", head))
    return groups


def _groups_children(m: nn.Module) -> list[LayerGroup]:
    """Fallback: one group per top-level child that has parameters (fits an ``nn.Sequential``)."""
    kids = [(n, c) for n, c in m.named_children() if any(True for _ in c.parameters())]
    if not kids:
        raise ValueError(f"{type(m).__name__} has no child modules with parameters to group")
    groups = [LayerGroup(n, [c]) for n, c in kids]
    groups[-1].name = "head"
    return groups


LAYER_GROUPERS: dict[str, Callable[[nn.Module], list[LayerGroup]]] = {
    "EfficientNet": _groups_timm_efficientnet,
    "ResNet": _groups_resnet,
    "MobileNetV3": _groups_features_classifier,
    "ConvNeXt": _groups_features_classifier,
    "VisionTransformer": _groups_vit,
    "BertModel": _groups_bert,
    "BertForSequenceClassification": _groups_bert,
}


def layer_groups(model: nn.Module) -> list[LayerGroup]:
    """The model's layer groups, input → output; the last one is the head.

    Every registered architecture has its own rule (stem → blocks → head; BERT: embeddings, each encoder layer,
    head); any other model gets one group per top-level child.

    Example:
        >>> [g.name for g in layer_groups(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))]
        ['0', 'head']
    """
    grouper = LAYER_GROUPERS.get(type(model).__name__, _groups_children)
    return grouper(model)


def group_of(model: nn.Module, module_name: str) -> str:
    """Name of the layer group that holds the module called ``module_name`` (as in ``named_modules()``).

    Example:
        >>> group_of(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2)), "1")
        'head'
    """
    target = dict(model.named_modules()).get(module_name)
    if target is None:
        raise ValueError(f"no module named {module_name!r} in {type(model).__name__}")
    target_params = {id(p) for p in target.parameters()}
    for g in layer_groups(model):
        if any(target is m or target in list(m.modules()) for m in g.modules):
            return g.name
        if target_params and target_params <= {id(p) for p in g.parameters()}:
            return g.name
    raise ValueError(f"module {module_name!r} is in no layer group (it has no parameters?)")


# ------------------------------------------------------------------------------------------- BatchNorm guard
def _bn_frozen(module: nn.Module) -> bool:
    params = list(module.parameters(recurse=False))
    return bool(params) and not any(p.requires_grad for p in params)


def _bn_eval_hook(module: nn.Module, _inputs: object) -> None:
    """Forward pre-hook: a BatchNorm whose affine parameters are frozen runs in eval mode (stats frozen)."""
    if module.training and _bn_frozen(module):
        module.training = False


def _install_bn_guard(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, _BN_TYPES) and not getattr(m, "_tlcourse_bn_guard", False):
            m.register_forward_pre_hook(_bn_eval_hook)
            m._tlcourse_bn_guard = True  # type: ignore[attr-defined]


def apply_bn_eval(model: nn.Module) -> nn.Module:
    """Put every BatchNorm whose parameters are all frozen in eval mode; call after ``model.train()``.

    Example:
        >>> m = freeze(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)))
        >>> apply_bn_eval(m.train())[1].training
        False
    """
    for m in model.modules():
        if isinstance(m, _BN_TYPES) and _bn_frozen(m):
            m.eval()
    return model


# -------------------------------------------------------------------------------------------- freeze verbs
def _set_trainable(groups: Iterable[LayerGroup], flag: bool) -> None:
    for g in groups:
        for p in g.parameters():
            p.requires_grad_(flag)


def freeze_to(model: nn.Module, n: int) -> nn.Module:
    """Freeze groups ``[:n]``, make groups ``[n:]`` trainable (negative ``n`` counts from the end).

    Example:
        >>> m = freeze_to(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2)), 1)
        >>> [p.requires_grad for p in m[0].parameters()], m[1].weight.requires_grad
        ([False, False], True)
    """
    groups = layer_groups(model)
    if not -len(groups) <= n <= len(groups):
        raise ValueError(f"n={n} is out of range for a model with {len(groups)} layer groups")
    _set_trainable(groups[:n], False)
    _set_trainable(groups[n:], True)
    _install_bn_guard(model)
    return model


def freeze(model: nn.Module) -> nn.Module:
    """Freeze every group but the head (feature extraction / the first fine-tuning phase).

    Example:
        >>> m = freeze(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2)))
        >>> m[0].weight.requires_grad, m[1].weight.requires_grad
        (False, True)
    """
    return freeze_to(model, -1)


def unfreeze(model: nn.Module, last: int | None = None) -> nn.Module:
    """Make the last ``last`` groups trainable (all of them when ``None``); earlier groups are frozen.

    Example:
        >>> m = unfreeze(freeze(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2))), last=2)
        >>> m[0].weight.requires_grad, m[1].weight.requires_grad
        (False, True)
    """
    if last is None:
        return freeze_to(model, 0)
    n_groups = len(layer_groups(model))
    if not 1 <= last <= n_groups:
        raise ValueError(f"last={last} must be between 1 and the number of layer groups ({n_groups})")
    return freeze_to(model, n_groups - last)


def trainable_summary(model: nn.Module) -> pd.DataFrame:
    """A table of layer groups: parameters, trainable parameters, and whether the group trains.

    Example:
        >>> trainable_summary(freeze(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))))["trainable"].tolist()
        [0, 18, 18]
    """
    rows = []
    for g in layer_groups(model):
        params = g.parameters()
        total = sum(p.numel() for p in params)
        trainable = sum(p.numel() for p in params if p.requires_grad)
        state = "trainable" if trainable == total else ("frozen" if trainable == 0 else "partly")
        rows.append({"group": g.name, "parameters": total, "trainable": trainable, "state": state})
    total = sum(r["parameters"] for r in rows)
    trainable = sum(r["trainable"] for r in rows)
    rows.append({"group": "TOTAL", "parameters": total, "trainable": trainable,
                 "state": f"{100 * trainable / max(total, 1):.1f}% trainable"})
    return pd.DataFrame(rows)


def discriminative_lrs(model: nn.Module, lr: float, factor: float = 2.6) -> list[dict]:
    """Optimizer parameter groups with smaller rates for earlier layers (Howard & Ruder, ULMFiT, 2018).

    The head gets ``lr``; each earlier group gets the rate of the next one divided by ``factor``. Only trainable
    parameters are included, and groups without any are skipped.

    Example:
        >>> groups = discriminative_lrs(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2)), 1e-3, factor=10)
        >>> [round(g["lr"], 6) for g in groups]
        [0.0001, 0.001]
    """
    if lr <= 0 or factor <= 0:
        raise ValueError(f"lr and factor must be positive, got lr={lr}, factor={factor}")
    groups = layer_groups(model)
    out = []
    for depth, g in enumerate(reversed(groups)):
        params = [p for p in g.parameters() if p.requires_grad]
        if params:
            out.append({"params": params, "lr": lr / factor**depth, "name": g.name})
    return list(reversed(out))
