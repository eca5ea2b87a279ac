"""Regularised fine-tuning: keep the trainable weights close to where pretraining left them (lesson 03).

Weight decay pulls every weight towards **zero** — for a pretrained body that means away from what it learned.
**L2-SP** (Li, Grandvalet & Davoine, *Explicit Inductive Bias for Transfer Learning with Convolutional Networks*,
ICML 2018) pulls each pretrained weight towards its **starting point** instead: the penalty
``alpha / 2 * sum ||w - w0||^2`` is added to the loss (``fit(..., penalty=L2SP(model))``). New layers (the head)
have no meaningful starting point, so they are left out (``exclude``) and keep ordinary weight decay.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    >>> sp = L2SP(net, alpha=1.0, exclude=("1.",))
    >>> float(sp(net).detach())
    0.0
    >>> with torch.no_grad():
    ...     net[0].weight += 1.0
    >>> float(sp(net).detach())  # 4 weights moved by 1: 1/2 * 4
    2.0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["L2SP"]


class L2SP:
    """``alpha / 2 * sum ||w - w0||^2`` over the trainable parameters of ``model`` (``w0``: their values now).

    ``exclude``: name prefixes left out (default: ``classifier``, the new head of the course's models).
    Call it with the model being trained; ``fit(model, ..., penalty=L2SP(model, alpha))`` adds it to the loss.
    """

    def __init__(self, model: nn.Module, alpha: float = 0.01, exclude: Sequence[str] = ("classifier",)) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.exclude = tuple(exclude)
        self.anchor = {name: p.detach().clone() for name, p in model.named_parameters()
                       if p.requires_grad and not name.startswith(self.exclude)}
        if not self.anchor:
            raise ValueError("L2SP: no trainable parameter outside `exclude` — unfreeze part of the body first")

    def __call__(self, model: nn.Module) -> torch.Tensor:
        terms = [((p - self.anchor[name].to(p.device)) ** 2).sum()
                 for name, p in model.named_parameters() if name in self.anchor]
        return 0.5 * self.alpha * torch.stack(terms).sum()

    def distance(self, model: nn.Module) -> float:
        """How far the anchored weights moved: ``||w - w0|| / ||w0||`` over all of them.

        Example:
            >>> net = nn.Linear(2, 2); L2SP(net, exclude=()).distance(net)
            0.0
        """
        moved = sum(float(((p.detach() - self.anchor[n].to(p.device)) ** 2).sum())
                    for n, p in model.named_parameters() if n in self.anchor)
        size = sum(float((w ** 2).sum()) for w in self.anchor.values())
        return (moved / size) ** 0.5 if size else 0.0

    def __repr__(self) -> str:
        n = sum(w.numel() for w in self.anchor.values())
        return f"L2SP(alpha={self.alpha:g}, {n:,} anchored weights, excluding {list(self.exclude)})"
