"""One vector per example from a layer's output: the package's one pooling registry.

A layer gives 4-D maps ``(N, C, H, W)`` (CNNs), 3-D token vectors ``(N, T, C)`` (transformers) or 2-D vectors
``(N, C)``. :data:`POOLINGS` maps a name to ``fn(output, attention_mask=None) -> (N, C)``:

* ``"mean"`` (alias ``"avg"``): the mean over H×W, or over the *real* tokens (``attention_mask`` 1) — padding never
  counts, so a padded batch gives the same vectors as each text alone;
* ``"max"``: the per-channel maximum over H×W, or over the real tokens;
* ``"cls"``: the first token (``[CLS]`` for BERT models); tokens only;
* ``"flat"``: the whole output flattened (``tlcourse.dense`` keeps the map).

A 2-D output is already one vector per example: :func:`pool` passes it through.
``tlcourse.features`` (hooked layers, Hugging Face encoders) and ``tlcourse.text`` (the sentence classifier,
sentence embeddings) both pool through :func:`pool`.

Example:
    >>> import torch
    >>> h = torch.tensor([[[1.0], [3.0], [100.0]]])
    >>> pool("mean", h, torch.tensor([[1, 1, 0]])).tolist(), pool("max", torch.ones(2, 3, 4, 4)).shape
    ([[2.0]], torch.Size([2, 3]))
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["POOLINGS", "pool", "get_pooling", "mean_pool", "max_pool", "cls_pool", "flat_pool"]

Pooling = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _token_mask(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """``(N, T, 1)`` weights: the attention mask (1 real, 0 padding), or all ones without one."""
    if attention_mask is None:
        return torch.ones((*hidden.shape[:2], 1), dtype=hidden.dtype, device=hidden.device)
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"attention_mask {tuple(attention_mask.shape)} does not match tokens {tuple(hidden.shape[:2])}")
    return attention_mask.to(device=hidden.device, dtype=hidden.dtype).unsqueeze(-1)


def _spatial(t: torch.Tensor) -> bool:
    return t.dim() == 4


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over H×W (maps) or over each text's real tokens (``attention_mask`` 1), ignoring padding.

    Example:
        >>> h = torch.tensor([[[1.0], [3.0], [100.0]]])
        >>> mean_pool(h, torch.tensor([[1, 1, 0]])).tolist()
        [[2.0]]
    """
    if _spatial(hidden):
        return hidden.mean(dim=(2, 3))
    m = _token_mask(hidden, attention_mask)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def max_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-channel maximum over H×W (maps) or over the real tokens.

    Example:
        >>> max_pool(torch.tensor([[[1.0], [3.0], [100.0]]]), torch.tensor([[1, 1, 0]])).tolist()
        [[3.0]]
    """
    if _spatial(hidden):
        return hidden.amax(dim=(2, 3))
    m = _token_mask(hidden, attention_mask)
    return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).amax(dim=1)


def cls_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The first token's vector (``[CLS]`` for BERT models); token outputs only.

    Example:
        >>> cls_pool(torch.tensor([[[1.0], [3.0]]])).tolist()
        [[1.0]]
    """
    if hidden.dim() != 3:
        raise ValueError(f"'cls' pooling takes the first token of a (N, tokens, C) output; got shape "
                         f"{tuple(hidden.shape)}")
    return hidden[:, 0]


def flat_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The whole output, flattened per example (no pooling: ``tlcourse.dense`` keeps the map).

    Example:
        >>> flat_pool(torch.zeros(2, 3, 4, 4)).shape
        torch.Size([2, 48])
    """
    return hidden.flatten(1)


#: Pooling name → ``fn(output, attention_mask=None) -> (N, C)``.
POOLINGS: dict[str, Pooling] = {
    "mean": mean_pool,
    "avg": mean_pool,
    "max": max_pool,
    "cls": cls_pool,
    "flat": flat_pool,
}


def get_pooling(name: str) -> Pooling:
    """The registered pooling ``name``; a clear error listing the choices otherwise.

    Example:
        >>> get_pooling("avg") is get_pooling("mean")
        True
    """
    if name not in POOLINGS:
        raise ValueError(f"unknown pooling {name!r}; choose one of {sorted(POOLINGS)}")
    return POOLINGS[name]


def pool(name: str, output: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``output`` pooled by ``name`` into ``(N, C)``: 2-D outputs pass through, 3-D token and
    4-D map outputs are pooled; any other shape is an error.

    Example:
        >>> pool("cls", torch.ones(4, 7)).shape
        torch.Size([4, 7])
    """
    fn = get_pooling(name)
    if output.dim() == 2:
        return output
    if output.dim() not in (2, 3, 4):
        raise ValueError(f"cannot pool a layer output of shape {tuple(output.shape)}: expected 2-, 3- or 4-D")
    return fn(output, attention_mask if output.dim() == 3 else None)
