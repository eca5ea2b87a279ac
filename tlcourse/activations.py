"""What a network computes inside, for one input: the activations of named layers and Grad-CAM class evidence.

Compute only — no figures (``tlcourse.viz`` draws them: ``plot_feature_maps``, ``show_cam``,
``feature_map_explorer``), so that other modules (``tlcourse.dense``) use the same code without the plotting
layer. Layers are named as in ``dict(model.named_modules())``.

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ...                     nn.Linear(4, 2))
    >>> tuple(feature_maps(net, torch.rand(3, 8, 8), "1")["1"].shape), grad_cam(net, torch.rand(3, 8, 8), "1").shape
    ((1, 4, 8, 8), (8, 8))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tlcourse._plumbing import first_tensor

__all__ = ["feature_maps", "grad_cam", "resolve_module"]


def _as_batch(image: Any) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise TypeError(
            f"expected a preprocessed image tensor (C, H, W) or (1, C, H, W), got {type(image).__name__}; "
            "apply the model's preprocessing (e.g. tlcourse.models.preprocess) first"
        )
    if image.ndim == 3:
        return image[None]
    if image.ndim == 4:
        return image
    raise ValueError(f"expected an image (C, H, W) or a batch (N, C, H, W), got shape {tuple(image.shape)}")


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def resolve_module(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """``(name, module)`` for a layer given by name or as the module itself; a clear error listing names otherwise.

    Example:
        >>> resolve_module(nn.Sequential(nn.ReLU()), "0")
        ('0', ReLU())
    """
    modules = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, module in modules.items():
            if module is layer:
                return name, module
        raise ValueError(f"the given {type(layer).__name__} is not a sub-module of {type(model).__name__}")
    if layer not in modules:
        names = [n for n in modules if n]
        shown = ", ".join(repr(n) for n in names[:20]) + (" …" if len(names) > 20 else "")
        raise KeyError(
            f"no module named {layer!r} in {type(model).__name__}; names come from "
            f"dict(model.named_modules()), e.g. {shown}"
        )
    return layer, modules[layer]


def feature_maps(model: nn.Module, image: torch.Tensor, layers: str | Sequence[str]) -> dict[str, torch.Tensor]:
    """Activations of the named modules for one image or a batch (forward hooks, eval mode, no grad).

    Names are those of ``dict(model.named_modules())`` (e.g. ``"blocks.2"``). The returned tensors keep the
    batch dimension, are copies on the CPU (safe from later in-place ops) and are ordered as ``layers``.
    The hooks are removed and the model's train/eval mode restored even when the forward pass fails.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        >>> {k: tuple(v.shape) for k, v in feature_maps(net, torch.rand(3, 8, 8), ["0", "2"]).items()}
        {'0': (1, 4, 8, 8), '2': (1, 4, 4, 4)}
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("layers is empty: name at least one module, e.g. feature_maps(model, x, ['layer1'])")
    modules = {name: resolve_module(model, name)[1] for name in names}
    x = _as_batch(image).to(_model_device(model))
    captured: dict[str, torch.Tensor] = {}

    def make_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            captured[name] = first_tensor(output).detach().to("cpu", copy=True)

        return hook

    handles = []
    was_training = model.training
    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(make_hook(name)))
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    missing = [n for n in names if n not in captured]
    if missing:
        raise RuntimeError(f"modules {missing} were not called in the forward pass of {type(model).__name__}")
    return {name: captured[name] for name in names}


def grad_cam(
    model: nn.Module,
    image: torch.Tensor,
    target_layer: str | nn.Module,
    class_idx: int | None = None,
) -> np.ndarray:
    """Grad-CAM heat map (H×W, in [0, 1], at the input size) for one image.

    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization",
    ICCV 2017 (arXiv:1610.02391): weight each channel ``k`` of the target layer's activation ``A`` by the
    spatial mean of d(score)/dA_k, sum, ReLU, upsample, scale to [0, 1].

    Written by hand on purpose: these ~30 lines *are* what lesson 05 shows; the test suite checks them against
    captum's ``LayerGradCam`` (the field's reference implementation). A forward hook captures ``A`` (made a grad-requiring leaf when the
    model is frozen, and cloned so later in-place ops cannot touch it); its gradient comes from
    ``torch.autograd.grad`` — the backward half of the hook pair — which leaves the parameters' ``.grad``
    untouched. The hook is removed and the train/eval mode restored in ``finally``.

    ``target_layer``: the module or its name in ``dict(model.named_modules())`` (usually the last conv block).
    ``class_idx``: the class to explain; ``None`` → the predicted class.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> cam = grad_cam(net, torch.rand(3, 16, 16), "1")
        >>> cam.shape, bool(cam.min() >= 0 and cam.max() <= 1)
        ((16, 16), True)
    """
    _, layer = resolve_module(model, target_layer)
    x = _as_batch(image)
    if x.shape[0] != 1:
        raise ValueError(f"grad_cam explains one image; got a batch of {x.shape[0]}")
    x = x.to(_model_device(model))
    store: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, inputs: Any, output: Any) -> torch.Tensor:
        act = first_tensor(output)
        if not act.requires_grad:  # frozen model: make A a leaf so d(score)/dA exists
            act = act.detach().requires_grad_(True)
        store["act"] = act
        return act.clone()  # downstream in-place ops (ReLU(inplace=True)) modify the clone, not A

    was_training = model.training
    handle = layer.register_forward_hook(hook)
    try:
        model.eval()
        with torch.enable_grad():
            logits = model(x)
            if "act" not in store:
                raise RuntimeError(f"target layer {target_layer!r} was not called in the forward pass")
            if logits.ndim != 2:
                raise ValueError(f"the model must return class scores (1, num_classes), got {tuple(logits.shape)}")
            idx = int(logits[0].argmax()) if class_idx is None else int(class_idx)
            if not 0 <= idx < logits.shape[1]:
                raise IndexError(f"class_idx {idx} out of range for {logits.shape[1]} classes")
            (grads,) = torch.autograd.grad(logits[0, idx], store["act"])
    finally:
        handle.remove()
        model.train(was_training)
    act = store["act"].detach()[0]
    if act.ndim != 3:
        raise ValueError(f"target layer outputs shape {tuple(store['act'].shape)}; pick a conv layer (N, C, H, W)")
    weights = grads[0].mean(dim=(1, 2))  # alpha_k: global-average-pooled gradients
    cam = torch.relu((weights[:, None, None] * act).sum(dim=0))
    cam = F.interpolate(cam[None, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0, 0]
    cam = cam - cam.min()
    top = cam.max()
    cam = cam / top if top > 0 else torch.zeros_like(cam)
    return cam.float().cpu().numpy()


