"""Dataset registry: resolve → verify → load (ARCHITECTURE.md §6).

One registry, :data:`DATASETS`, names every dataset the course uses: where its files live (``folder``), the
files the loaders read with their sha256 (or, for an image folder, a digest of the sorted ``relpath sha256``
list), the canonical download URL(s), licence and citation.

:func:`fetch` resolves a dataset in three steps and returns the first *verified* copy:

1. the **data home** (``TLCOURSE_DATA_HOME``; default ``datasets/`` in the checkout);
2. a read-only **mirror** folder with the same layout (``TLCOURSE_DATA_MIRROR``), never written to; then the
   folder an OS package installs, for datasets that name one (Debian's ``dataset-fashion-mnist``);
3. a **download** with ``pooch.retrieve`` from the canonical URL(s): a progress bar, the sha256 of each file the
   registry knows checked by pooch, archives unpacked by pooch's processors into a temporary folder in the data
   home, every listed file verified, then the folder renamed into place.

A checksum mismatch raises :class:`ChecksumError` and the bad file is removed; no network (or ``download=False``)
raises :class:`DatasetUnavailableError` naming the three ways to get the data.

The loaders (``load_hymenoptera``, ``load_medmnist``, ``load_mnist_test``, ``load_usps``, ``load_fashion_mnist``,
``load_rt_polarity``, ``load_amazon_reviews``, ``load_sst2``; for your own data ``load_image_folder`` and
``load_text_csv``) return ``torch.utils.data.Dataset`` objects with ``classes``, ``targets``
and a ``fingerprint`` string (dataset, split, chosen indices, transform) that feature caches key on.

Modules: ``catalog`` (the registry as data), ``store`` (resolve, verify, download), ``datasets`` (the dataset
classes), ``loaders`` (the ``load_*`` functions, ``select_indices``, ``make_loader``). Every name below is
importable from ``tlcourse.data``.

Example:
    >>> from tlcourse.data import DATASETS, select_indices
    >>> DATASETS["usps"].folder, select_indices([0, 1, 1], per_class=1).tolist()
    ('usps', [0, 2])
"""

from __future__ import annotations

from tlcourse.data import catalog, datasets, loaders, store
from tlcourse.data.catalog import *  # noqa: F403
from tlcourse.data.datasets import *  # noqa: F403
from tlcourse.data.loaders import *  # noqa: F403
from tlcourse.data.store import *  # noqa: F403

#: every public name of the four modules, once (loaders re-exports two of datasets')
__all__ = list(dict.fromkeys([*catalog.__all__, *datasets.__all__, *store.__all__, *loaders.__all__]))
