"""Samplers that decide the order of a data set's items (a leaf of the data layer: used by ``tlcourse.text`` for
tokenised texts and by ``tlcourse.trunk`` for cached hidden states).

Example:
    >>> list(LengthGroupedSampler([3, 9, 5, 1], batch_size=2, shuffle=False))
    [1, 2, 0, 3]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

__all__ = ["LengthGroupedSampler"]


class LengthGroupedSampler(Sampler[int]):
    """Indices ordered so that each run of ``batch_size`` holds texts of similar length: less padding, less compute.

    ``shuffle=False``: longest first (a deterministic order for evaluation). ``shuffle=True``: a new seeded
    permutation each epoch, cut into chunks of ``chunk * batch_size``, each chunk sorted by length and cut into
    batches, and the batches shuffled (Hugging Face's ``group_by_length`` does the same).

    Example:
        >>> list(LengthGroupedSampler([3, 9, 5, 1], batch_size=2, shuffle=False))
        [1, 2, 0, 3]
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0,
                 chunk: int = 50) -> None:
        if batch_size < 1 or chunk < 1:
            raise ValueError(f"batch_size and chunk must be >= 1, got {batch_size}, {chunk}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size, self.shuffle, self.seed, self.chunk = int(batch_size), bool(shuffle), int(seed), int(chunk)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.lengths)

    def order(self, epoch: int = 0) -> np.ndarray:
        """The indices of one epoch (``epoch`` seeds the shuffle).

        Example:
            >>> sorted(LengthGroupedSampler([1, 2, 3], 2).order(0).tolist())
            [0, 1, 2]
        """
        if not self.shuffle:
            return np.argsort(-self.lengths, kind="stable")
        rng = np.random.default_rng(self.seed + epoch)
        perm = rng.permutation(len(self.lengths))
        size = self.batch_size * self.chunk
        batches: list[np.ndarray] = []
        for start in range(0, len(perm), size):
            part = perm[start:start + size]
            part = part[np.argsort(-self.lengths[part], kind="stable")]
            batches += [part[i:i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        if not batches:
            return perm
        return np.concatenate([batches[i] for i in rng.permutation(len(batches))])

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)
        self.epoch += 1
        return iter(order.tolist())


