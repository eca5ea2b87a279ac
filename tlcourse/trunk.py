"""Fine-tuning the top of a network on cached activations of its frozen lower part (lessons 03, 05, 06).

When only the last ``k`` layer groups of a model train (``tlcourse.freeze.unfreeze(model, last=k)``), the frozen
groups below compute the same thing for an image at every epoch. :func:`cache_trunk` runs them **once** over a
data set and keeps their output; :attr:`CachedTrunk.top` is the rest of the network as a module that *shares*
its parameters with ``model``, so ``fit(cached.top, cached.data, ...)`` trains ``model`` itself, and at each
epoch pays only for the top. Augmentation still works: ``views=n`` stores ``n`` augmented passes of a data
set whose transform is random (each epoch of the cached set then sees ``n`` versions of every image).

A model is cut into *stages*: its layer groups (:func:`tlcourse.freeze.layer_groups`, the one place that knows a
family's groups), each with how it runs from :data:`STAGERS` (timm EfficientNet here; the course's
``SentenceClassifier`` registered by ``tlcourse.text``). BatchNorm layers in the frozen part run in eval mode, as ``fit`` would keep them.

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from tlcourse.models import build_classifier
    >>> model = build_classifier("efficientnet_lite0", 2, pretrained=False)
    >>> ds = TensorDataset(torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 0, 1]))
    >>> cached = cache_trunk(model, ds, last=3, progress=False, device="cpu")
    >>> cached.first_trainable, tuple(cached.data.tensors[0].shape)
    ('blocks.6', (4, 192, 2, 2))
    >>> torch.allclose(cached.top.eval()(cached.data.tensors[0]), model.eval()(ds.tensors[0]), atol=1e-4)
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from tlcourse._plumbing import as_loader, channels_last, make_loader, read_batch
from tlcourse.config import profile
from tlcourse.device import offset_seed

__all__ = ["Stage", "STAGERS", "stages", "Top", "top_of", "CachedTrunk", "cache_trunk"]

Run = Callable[..., Any]


@dataclass
class Stage:
    """One step of a model's forward pass: ``run(state) -> state``; ``modules`` own its parameters."""

    name: str
    modules: list[nn.Module]
    run: Run


# ------------------------------------------------------------------------------------ architecture registry
def _runs_timm_efficientnet(m: nn.Module) -> dict[str, Run]:
    """How timm's EfficientNet runs the groups that are more than one module (each block runs as itself)."""
    return {"stem": lambda x: m.bn1(m.conv_stem(x)), "conv_head": lambda x: m.bn2(m.conv_head(x)),
            "head": lambda x: m.forward_head(x)}


#: How each architecture (by class name) runs its layer groups: group name → ``run(state) -> state``. The groups
#: themselves — names and modules — come from ``tlcourse.freeze.layer_groups`` (one place per family); a group of
#: one module without an entry runs as that module. ``tlcourse.text`` registers its ``SentenceClassifier`` here,
#: next to its layer groups.
STAGERS: dict[str, Callable[[nn.Module], dict[str, Run]]] = {
    "EfficientNet": _runs_timm_efficientnet,
}


def _stage(group: Any, runs: dict[str, Run]) -> Stage:
    run = runs.get(group.name)
    if run is None and len(group.modules) == 1:
        run = group.modules[0]
    if run is None:
        raise TypeError(f"layer group {group.name!r} has {len(group.modules)} modules and no run in STAGERS")
    return Stage(group.name, list(group.modules), run)


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside a peft wrapper (LoRA adapters are injected in place, so its stages carry them)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def stages(model: nn.Module) -> list[Stage]:
    """The forward pass of ``model`` as a list of :class:`Stage` (see :data:`STAGERS`).

    Example:
        >>> from tlcourse.models import build_classifier
        >>> [s.name for s in stages(build_classifier("efficientnet_lite0", 2, pretrained=False))][-3:]
        ['blocks.6', 'conv_head', 'head']
    """
    from tlcourse.freeze import layer_groups

    inner = _unwrap(model)
    stager = STAGERS.get(type(inner).__name__)
    if stager is None:
        raise TypeError(f"no stages known for {type(inner).__name__}: register a function in "
                        f"tlcourse.trunk.STAGERS (known: {sorted(STAGERS)})")
    runs = stager(inner)
    return [_stage(group, runs) for group in layer_groups(inner)]


class Top(nn.Module):
    """The stages from the first trainable one to the output, as one module sharing ``model``'s parameters.

    Inputs: a tensor (images: the cached feature maps), or keyword tensors (text: ``hidden_states`` and
    ``attention_mask``), exactly as the frozen part left them.
    """

    def __init__(self, parts: Sequence[Stage]) -> None:
        super().__init__()
        self.parts = nn.ModuleList([nn.ModuleList(s.modules) for s in parts])
        self.names = [s.name for s in parts]
        self._runs = [s.run for s in parts]

    def forward(self, x: Any = None, **state: torch.Tensor) -> Any:
        out: Any = x if x is not None else state
        for run in self._runs:
            out = run(out)
        return out

    def extra_repr(self) -> str:
        return "stages: " + ", ".join(self.names)


def top_of(model: nn.Module, last: int) -> Top:
    """The ``last`` stages of ``model`` as a :class:`Top` — e.g. a fresh copy's top, to train on maps cached once.

    The cached maps fit any copy of the model whose frozen part is the same (same weights below the top).

    Example:
        >>> from tlcourse.models import build_classifier
        >>> top_of(build_classifier("efficientnet_lite0", 2, pretrained=False), last=2).names
        ['conv_head', 'head']
    """
    return Top(_split(model, last)[1])


def _bn_eval(modules: Sequence[nn.Module]) -> None:
    for module in modules:
        module.eval()


def _split(model: nn.Module, last: int) -> tuple[list[Stage], list[Stage]]:
    parts = stages(model)
    if not 1 <= last < len(parts):
        raise ValueError(f"last must be between 1 and {len(parts) - 1} (the model has {len(parts)} stages "
                         f"{[s.name for s in parts]}), got {last}")
    return parts[:-last], parts[-last:]


def _lower_outputs(lower: Sequence[Stage], loader: Any, device: torch.device, desc: str | None) -> tuple[Any, Any]:
    """Run the frozen stages over every batch; returns (outputs, labels) concatenated on the CPU."""
    outs, labels = [], []
    batches = tqdm(loader, desc=desc, leave=False) if desc else loader
    with torch.inference_mode():
        for raw in batches:
            batch = read_batch(raw, device)
            state: Any = batch.inputs
            for stage in lower:
                state = stage.run(state)
            outs.append(_to_cpu(state))
            labels.append(batch.targets.cpu())
    return outs, torch.cat(labels)


class _PaddedStates(Dataset):
    """Cached text states, one item per sentence, trimmed to its real tokens (padding is re-made per batch)."""

    def __init__(self, hidden: list[torch.Tensor], labels: torch.Tensor) -> None:
        self.hidden, self.labels = hidden, labels
        self.in_memory = True

    def __len__(self) -> int:
        return len(self.hidden)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.hidden[i], int(self.labels[i])


def pad_states(items: Sequence[tuple[torch.Tensor, int]]) -> dict[str, torch.Tensor]:
    """``collate_fn`` for cached text states: pad to the longest sentence, rebuild the attention mask."""
    longest = max(h.shape[0] for h, _ in items)
    hidden = torch.zeros(len(items), longest, items[0][0].shape[1])
    mask = torch.zeros(len(items), longest, dtype=torch.long)
    for row, (h, _) in enumerate(items):
        hidden[row, : h.shape[0]] = h.float()
        mask[row, : h.shape[0]] = 1
    return {"hidden_states": hidden, "attention_mask": mask,
            "labels": torch.tensor([y for _, y in items], dtype=torch.long)}


def _as_dataset(outs: list[Any], labels: torch.Tensor, store: torch.dtype) -> Dataset:
    if isinstance(outs[0], torch.Tensor):
        return TensorDataset(torch.cat(outs).to(store), labels)
    trimmed = [h[m.bool()].to(store).clone() for o in outs for h, m in zip(o["hidden_states"], o["attention_mask"],
                                                                          strict=True)]
    return _PaddedStates(trimmed, labels)


@dataclass
class CachedTrunk:
    """What :func:`cache_trunk` returns: the cached data set, the trainable top, and what it cost."""

    data: Dataset  # (activation, label) items: train / evaluate ``top`` on it
    top: Top  # the trainable stages; shares parameters with the model
    first_trainable: str  # the name of the first trainable stage (a layer group name)
    seconds: float  # time spent running the frozen part
    views: int

    def loader(self, batch_size: int | None = None, shuffle: bool = False, seed: int = 0) -> DataLoader:
        """A DataLoader over :attr:`data`, seeded when shuffled; text states come in batches of similar length
        (less padding), padded per batch.

        Example:
            >>> c = CachedTrunk(TensorDataset(torch.zeros(4, 2), torch.zeros(4)), Top([]), "head", 0.0, 1)
            >>> len(c.loader(batch_size=2))
            2
        """
        if isinstance(self.data, _PaddedStates):  # texts: batches of similar length, as text_loader makes them
            from tlcourse.data.samplers import LengthGroupedSampler

            size = int(batch_size or profile().batch_size)
            lengths = [h.shape[0] for h in self.data.hidden]
            sampler = LengthGroupedSampler(lengths, size, shuffle=shuffle, seed=offset_seed(seed))
            return make_loader(self.data, batch_size=size, sampler=sampler, collate_fn=pad_states)
        generator = torch.Generator().manual_seed(offset_seed(seed)) if shuffle else None
        return make_loader(self.data, batch_size=batch_size, shuffle=shuffle, generator=generator)

    def __repr__(self) -> str:
        return (f"CachedTrunk({len(self.data)} items = {self.views} view(s), top from {self.first_trainable!r}, "
                f"frozen part ran in {self.seconds:.1f} s)")


def cache_trunk(model: nn.Module, data: Any, *, last: int, views: int = 1, batch_size: int | None = None,
                device: torch.device | str | None = None, store: torch.dtype = torch.float32,
                progress: bool = True) -> CachedTrunk:
    """Run the frozen stages of ``model`` (all but the ``last`` ones) once over ``data`` and keep their outputs.

    * ``views``: passes over ``data``; with a random (augmenting) transform each pass is a new view.
    * ``store``: dtype of the stored outputs (``torch.float16`` halves the memory of long text sets).
    * The ``last`` stages must be the trainable ones: train ``result.top`` on ``result.data`` with ``fit``.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> from tlcourse.models import build_classifier
        >>> m = build_classifier("efficientnet_lite0", 2, pretrained=False)
        >>> c = cache_trunk(m, TensorDataset(torch.randn(2, 3, 32, 32), torch.tensor([0, 1])), last=1,
        ...                 views=2, progress=False, device="cpu")
        >>> len(c.data), c.first_trainable
        (4, 'head')
    """
    from tlcourse.device import get_device

    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    dev = get_device(device)
    lower, upper = _split(model, last)
    model.to(dev)
    frozen = nn.ModuleList(m for s in lower for m in s.modules)
    _bn_eval(frozen)
    start = time.perf_counter()
    outs, labels = [], []
    with channels_last(frozen, dev):  # NHWC once for every view
        for view in range(views):
            desc = f"frozen part, view {view + 1}/{views}" if progress else None
            o, y = _lower_outputs(lower, as_loader(data, batch_size, dev), dev, desc)
            outs += o
            labels.append(y)
    return CachedTrunk(_as_dataset(outs, torch.cat(labels), store), Top(upper), upper[0].name,
                       time.perf_counter() - start, views)


def _to_cpu(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.cpu()
    return {k: v.cpu() for k, v in state.items()}
