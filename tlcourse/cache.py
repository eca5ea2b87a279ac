"""The on-disk cache of computed arrays — frozen image features (``tlcourse.features``) and sentence embeddings
(``tlcourse.text``): where it lives, how a file is named, atomic save and tolerant load, and clearing all of it.

A file is ``<readable name>-<key prefix>.npz`` in :func:`cache_dir`; the key is the caller's digest of everything
that decides the arrays. Files are written atomically (a temporary file, then a rename), so an interrupted run
leaves no half file under a final name; a file that cannot be read is deleted and ``None`` returned, so the caller
computes again. :func:`clear` removes everything this cache owns, whichever module wrote it (and the ``.npy``
files of the text cache's earlier format).

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> path = file_path("lite0/blocks.6", "ab12" * 8, folder=folder)
    >>> path.name
    'lite0-blocks-6-ab12ab12ab12ab12ab12ab12.npz'
    >>> save(path, features=np.ones((2, 3)))
    >>> load(path)["features"].shape
    (2, 3)
    >>> clear(folder)
    1
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "file_path", "save", "load", "clear", "OWNED"]

#: the files of the cache folder that this module owns: arrays, the text cache's old format, interrupted writes
OWNED = ("*.npz", "*.npy", "*.tmp")
KEY_CHARS = 24


def cache_dir() -> Path:
    """``TLCOURSE_CACHE_DIR``, else ``.cache/features`` in the data home (``tlcourse.data.data_home``); read from
    the environment at each call, created on first write.

    Example:
        >>> isinstance(cache_dir(), Path)
        True
    """
    env = os.environ.get("TLCOURSE_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    from tlcourse.data.store import data_home

    return data_home() / ".cache" / "features"


def file_path(name: str, key: str, folder: Path | None = None) -> Path:
    """The cache file for ``name`` (made file-name safe) and ``key`` (its first characters).

    Example:
        >>> file_path("text all-MiniLM/mean", "f" * 64, folder=Path("/c")).name
        'text-all-MiniLM-mean-ffffffffffffffffffffffff.npz'
    """
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
    return (folder or cache_dir()) / f"{safe}-{key[:KEY_CHARS]}.npz"


def save(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` atomically (temporary file + rename; nothing left behind on failure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of ``path``; ``None`` when it is missing, or unreadable (then it is deleted: compute again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as f:
            return {name: f[name] for name in f.files}
    except (OSError, ValueError, KeyError, EOFError):  # truncated or foreign
        path.unlink(missing_ok=True)
        return None


def clear(folder: Path | None = None) -> int:
    """Delete every file of the cache (:data:`OWNED` patterns) in ``folder`` (default :func:`cache_dir`); return
    how many were removed."""
    folder = folder or cache_dir()
    if not folder.is_dir():
        return 0
    removed = 0
    for pattern in OWNED:
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
