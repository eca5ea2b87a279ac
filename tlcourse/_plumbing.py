"""Private plumbing shared by ``train``, ``features``, ``viz``, ``adapt`` and ``data``: batches onto a device,
model outputs into tensors, datasets into loaders, names into registry entries. One copy of each, so the modules
that move data cannot drift apart (see ``ARCHITECTURE.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from tlcourse.config import profile
from tlcourse.device import get_device

__all__ = ["Batch", "BatchError", "BATCH_ADAPTERS", "read_batch", "labelled_batch", "call_model", "to_device", "logits_of", "first_tensor",
           "make_loader", "as_loader", "cycle_batches", "grad_scaler", "choose", "is_channels_last", "channels_last"]


def is_channels_last(model: nn.Module) -> bool:
    """Whether the model's 4-D parameters are stored channels-last (NHWC): the first unambiguous one tells.

    Example:
        >>> is_channels_last(nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last))
        True
    """
    for p in model.parameters():
        if p.dim() == 4:
            nchw, nhwc = p.is_contiguous(), p.is_contiguous(memory_format=torch.channels_last)
            if nchw != nhwc:
                return nhwc
    return False


@contextmanager
def channels_last(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Inside the block, a convolutional model on a CPU or CUDA device keeps its weights channels-last (NHWC),
    which oneDNN and cuDNN convolve faster (``fit`` on Lite0: see ``benchmarks/SPEEDUPS.md``); on leaving, the
    format it had comes back. The convolutions then return NHWC activations for NCHW inputs too, so batches need
    no conversion. Other models pass through untouched.

    Example:
        >>> net = nn.Conv2d(3, 4, 3)
        >>> with channels_last(net, torch.device("cpu")):
        ...     inside = is_channels_last(net)
        >>> inside, is_channels_last(net)
        (True, False)
        >>> with torch.inference_mode(), channels_last(net, torch.device("cpu")):
        ...     _ = net(torch.zeros(1, 3, 5, 5))
        >>> net.weight.is_inference()  # still trainable
        False
    """
    convert = (device.type in ("cpu", "cuda") and not is_channels_last(model)
               and any(isinstance(m, nn.Conv2d) for m in model.modules()))
    if convert:
        _reformat(model, torch.channels_last)
    try:
        yield
    finally:
        if convert:
            _reformat(model, torch.contiguous_format)


def _reformat(model: nn.Module, memory_format: torch.memory_format) -> None:
    """Re-store the weights in ``memory_format``: as normal tensors even inside ``torch.inference_mode()``
    (inference tensors as weights could not be trained afterwards)."""
    with torch.inference_mode(False):
        model.to(memory_format=memory_format)


def to_device(obj: Any, device: torch.device) -> Any:
    """Tensors (alone, in dicts, lists or tuples) moved to ``device``; anything else as it is.

    Example:
        >>> to_device({"x": torch.zeros(1), "n": 3}, torch.device("cpu"))["n"]
        3
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def call_model(model: nn.Module, inputs: Any) -> Any:
    """The model on a batch's inputs: keyword arguments for a dict (Hugging Face), one argument otherwise.

    Example:
        >>> call_model(nn.Identity(), torch.ones(2)).shape
        torch.Size([2])
    """
    return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)


class Batch(NamedTuple):
    """One batch on the device: model ``inputs``, ``targets`` (None when unlabelled) and ``forward(model)``.

    Example:
        >>> b = BATCH_ADAPTERS[tuple]((torch.zeros(2, 3), torch.tensor([0, 1])), torch.device("cpu"))
        >>> b.forward(nn.Linear(3, 2)).shape
        torch.Size([2, 2])
    """

    inputs: Any
    targets: torch.Tensor | None
    forward: Callable[[nn.Module], Any]


def _sequence_batch(batch: Sequence[Any], device: torch.device) -> Batch:
    """Vision layout: ``(x, y)`` (extra items such as a domain label are ignored) or ``(x,)``."""
    if len(batch) == 0:
        raise ValueError("empty batch: expected (inputs, targets)")
    x = to_device(batch[0], device)
    y = to_device(batch[1], device) if len(batch) > 1 else None
    return Batch(x, y, lambda model: model(x))


def _mapping_batch(batch: Mapping[str, Any], device: torch.device) -> Batch:
    """Hugging Face layout: a dict of model inputs plus ``labels`` (or ``label``)."""
    label_key = next((k for k in ("labels", "label") if k in batch), None)
    inputs = {k: to_device(v, device) for k, v in batch.items() if k != label_key}
    y = to_device(batch[label_key], device) if label_key else None
    return Batch(inputs, y, lambda model: call_model(model, inputs))


def _tensor_batch(batch: torch.Tensor, device: torch.device) -> Batch:
    """Unlabelled layout: a bare input tensor (for ``predict``)."""
    x = batch.to(device, non_blocking=True)
    return Batch(x, None, lambda model: model(x))


#: Batch layouts, checked in order with ``isinstance``; each maps (batch, device) to a :class:`Batch`.
BATCH_ADAPTERS: dict[type, Callable[[Any, torch.device], Batch]] = {
    Mapping: _mapping_batch,
    tuple: _sequence_batch,
    list: _sequence_batch,
    torch.Tensor: _tensor_batch,
}


def read_batch(batch: Any, device: torch.device) -> Batch:
    """A loader's batch as a :class:`Batch` on ``device`` (the first matching layout of ``BATCH_ADAPTERS``).

    Example:
        >>> read_batch(torch.zeros(2, 3), torch.device("cpu")).targets is None
        True
    """
    for kind, adapter in BATCH_ADAPTERS.items():
        if isinstance(batch, kind):
            return adapter(batch, device)
    raise BatchError(
        f"cannot read a batch of type {type(batch).__name__}: expected an (inputs, targets) tuple, a dict with "
        f"'labels' (Hugging Face), or a tensor; register a new layout in tlcourse.train.BATCH_ADAPTERS"
    )


class BatchError(TypeError, ValueError):
    """A batch the package cannot read, or one without the labels a step needs. Both a ``TypeError`` (the
    feature tools raised one) and a ``ValueError`` (the adaptation loops did), so callers of either keep working."""


def labelled_batch(batch: Any, device: torch.device, what: str) -> Batch:
    """:func:`read_batch`, refusing a batch without targets with a message that names ``what`` needed them.

    Example:
        >>> labelled_batch((torch.zeros(2, 3), torch.tensor([0, 1])), torch.device("cpu"), "fit").targets
        tensor([0, 1])
    """
    read = read_batch(batch, device)
    if read.targets is None:
        raise BatchError(f"{what} needs labelled batches — (inputs, labels) pairs, e.g. a Dataset of (x, y) or "
                        f"DataLoader(TensorDataset(X, y)), or dicts with 'labels'; got a batch of type "
                        f"{type(batch).__name__} without labels")
    return read


def cycle_batches(loader: Iterable[Any], n: int | None = None) -> Iterator[Any]:
    """The loader's batches, starting it again when it runs out (a shuffled loader reshuffles each pass): ``n``
    of them, or forever when ``n`` is None. A loader that yields nothing is an error, not an endless wait.

    Example:
        >>> list(cycle_batches([1, 2], n=5))
        [1, 2, 1, 2, 1]
    """
    count = 0
    while n is None or count < n:
        empty = True
        for batch in loader:
            if n is not None and count >= n:
                return
            empty = False
            count += 1
            yield batch
        if empty:
            raise ValueError("a loader yielded no batches; is the dataset empty (or drop_last with a tiny set)?")


def grad_scaler(device: torch.device, amp: bool = True) -> torch.amp.GradScaler:
    """The loss scaler of a mixed-precision step: on for float16 autocast on CUDA, off otherwise (bfloat16 and
    float32 need none) — so every training loop calls ``scaler.scale(loss).backward()`` the same way.

    Example:
        >>> grad_scaler(torch.device("cpu")).is_enabled()
        False
    """
    fp16 = amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
    return torch.amp.GradScaler("cuda", enabled=fp16)


def _tensor_in(output: Any, attribute: str) -> torch.Tensor | None:
    """The tensor a model or layer returned: the output itself, its ``attribute``, or the first item of a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    inside = getattr(output, attribute, None)
    if isinstance(inside, torch.Tensor):
        return inside
    if isinstance(output, list | tuple) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def logits_of(output: Any) -> torch.Tensor:
    """Logits from a model output: a tensor, an object with ``.logits`` (Hugging Face), or a tuple.

    Example:
        >>> logits_of((torch.ones(1, 2), None)).shape
        torch.Size([1, 2])
    """
    logits = _tensor_in(output, "logits")
    if logits is None:
        raise TypeError(
            f"the model returned {type(output).__name__}; expected logits (a tensor) or an object with .logits"
        )
    return logits


def first_tensor(output: Any) -> torch.Tensor:
    """The tensor inside a layer's output: a tensor, a Hugging Face output (``last_hidden_state``), or a tuple.

    Example:
        >>> first_tensor([torch.zeros(3)]).shape
        torch.Size([3])
    """
    tensor = _tensor_in(output, "last_hidden_state")
    if tensor is None:
        raise TypeError(f"cannot find a tensor in a layer output of type {type(output).__name__}")
    return tensor


def _in_memory(data: Any) -> bool:
    while isinstance(data, Subset):
        data = data.dataset
    return isinstance(data, TensorDataset) or bool(getattr(data, "in_memory", False))


def make_loader(
    data: Dataset,
    *,
    batch_size: int | None = None,
    shuffle: bool = False,
    device: torch.device | str | None = None,
    num_workers: int | None = None,
    **kwargs: Any,
) -> DataLoader:
    """A DataLoader with the profile's batch size and workers, set up for ``device`` (every tlcourse verb uses it).

    * workers: ``num_workers``, else the profile's — but none for data already in memory (a ``TensorDataset``, a
      ``Subset`` of one, or a dataset whose class sets ``in_memory = True``): there a worker process adds nothing but
      its start-up time, which is long in a notebook holding a CUDA context;
    * ``persistent_workers`` when there are workers: they start once per loader, not at every epoch;
    * ``pin_memory`` on CUDA. Other keyword arguments go to ``DataLoader``.

    Example:
        >>> dl = make_loader(TensorDataset(torch.zeros(10, 3)), batch_size=4)
        >>> len(dl), dl.num_workers
        (3, 0)
    """
    prof = profile()
    workers = prof.num_workers if num_workers is None else int(num_workers)
    if num_workers is None and _in_memory(data):
        workers = 0
    pin = device is not None and get_device(device).type == "cuda"
    return DataLoader(data, batch_size=int(batch_size or prof.batch_size), shuffle=shuffle, num_workers=workers,
                      persistent_workers=workers > 0, pin_memory=pin, **kwargs)


def as_loader(data: Any, batch_size: int | None, device: torch.device, shuffle: bool = False) -> DataLoader:
    """A DataLoader as it is, or a Dataset batched by :func:`make_loader` for ``device``.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> as_loader(TensorDataset(torch.zeros(5, 2)), 2, torch.device("cpu")).batch_size
        2
    """
    if isinstance(data, DataLoader):
        if batch_size is not None and data.batch_size not in (None, batch_size):
            import warnings

            warnings.warn(f"batch_size={batch_size} ignored: the DataLoader given already batches by "
                          f"{data.batch_size}", stacklevel=3)
        return data
    if not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise TypeError(f"expected a DataLoader or a Dataset (with __getitem__ and __len__), got {type(data)}")
    return make_loader(data, batch_size=batch_size, shuffle=shuffle, device=device)


def choose(registry: Mapping[str, Any] | Sequence[str], name: str, what: str) -> Any:
    """The entry of a registry (a mapping) named ``name`` — or ``name`` itself for a list of choices — else a
    clear error listing the choices. Names are matched as given, then in lower case.

    Example:
        >>> choose({"adamw": 1, "sgd": 2}, "AdamW", "optimizer")
        1
    """
    for key in (name, str(name).lower()):
        if key in registry:
            return registry[key] if isinstance(registry, Mapping) else key
    raise ValueError(f"unknown {what} {name!r}; choose one of {sorted(registry)}")
