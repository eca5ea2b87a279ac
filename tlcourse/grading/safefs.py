"""Reading what students hand in: regular files only, sizes capped before reading, never a link followed.

Everything under a submissions folder, a bulk download or a sandbox's output is hostile data. A name may be a
symbolic link (to the gradebook, ``/dev/zero``, ``/proc/self/mem``), a FIFO (a read that never returns), a device,
a hard link to a file the grader can read, or a file far larger than any notebook. This module is the one place
that opens such files: :func:`scan` lists a folder without following links (and says why each odd entry was
refused), :func:`read_regular` opens one file with ``O_NOFOLLOW | O_NONBLOCK`` and checks *the opened file*
(``fstat``) before reading at most ``max_bytes``. Every problem is a :class:`Refused` with a reason a grader can
read; no ``OSError`` escapes.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.ipynb").write_text("{}")
    >>> (folder / "link").symlink_to("/etc/passwd")
    >>> found = scan(folder)
    >>> sorted(found.files), found.refused
    (['a.ipynb'], [('link', 'a symbolic link')])
    >>> read_regular(folder / "a.ipynb", 100)
    b'{}'
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Refused", "Scan", "scan", "read_regular", "write_new", "kind_of", "MAX_ENTRIES"]

MAX_ENTRIES = 10_000  # entries a scan looks at before it gives up (a submission is a handful of files)
MAX_DEPTH = 12  # folder levels a scan descends

_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


class Refused(Exception):  # noqa: N818 - it reads as "the file was refused"
    """A file that is not read: the message says why (a link, a FIFO, too large, …)."""


def kind_of(mode: int) -> str:
    """What a file is, in words, from its ``st_mode``; ``"a regular file"`` for one.

    Example:
        >>> kind_of(os.lstat("/dev/null").st_mode)
        'a character device'
    """
    return next((name for test, name in _KINDS if test(mode)), "a regular file" if stat.S_ISREG(mode) else "unknown")


def _problem(st: os.stat_result, max_bytes: int | None) -> str | None:
    """Why a file of this ``stat`` is refused, or ``None``."""
    if not stat.S_ISREG(st.st_mode):
        return kind_of(st.st_mode)
    if st.st_nlink > 1:
        return f"a hard link ({st.st_nlink} names for one file)"
    if max_bytes is not None and st.st_size > max_bytes:
        return f"{st.st_size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit"
    return None


@dataclass
class Scan:
    """What :func:`scan` found: regular files (relative POSIX path -> size) and refused entries (path, why)."""

    files: dict[str, int] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)
    truncated: bool = False  # more than MAX_ENTRIES entries or deeper than MAX_DEPTH


def scan(folder: Path, max_bytes: int | None = None, skip_hidden: bool = False) -> Scan:
    """Every regular file under ``folder`` (links are listed as refused, never followed).

    A file over ``max_bytes`` is refused; ``skip_hidden`` leaves out names starting with a dot. The folder
    itself must be a real folder (not a link to one).

    Example:
        >>> scan(Path("/nonexistent")).refused
        [('.', 'not a folder')]
    """
    out = Scan()
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            out.refused.append((".", "not a folder"))
            return out
    except OSError:
        out.refused.append((".", "not a folder"))
        return out
    stack: list[tuple[Path, str, int]] = [(folder, "", 0)]
    seen = 0
    while stack:
        path, prefix, depth = stack.pop()
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            out.refused.append((prefix or ".", f"unreadable folder ({exc.strerror})"))
            continue
        for entry in entries:
            seen += 1
            if seen > MAX_ENTRIES:
                out.truncated = True
                return out
            rel = f"{prefix}{entry.name}"
            if skip_hidden and entry.name.startswith("."):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                out.refused.append((rel, f"unreadable ({exc.strerror})"))
                continue
            if stat.S_ISDIR(st.st_mode):
                if depth + 1 > MAX_DEPTH:
                    out.truncated = True
                else:
                    stack.append((Path(entry.path), rel + "/", depth + 1))
                continue
            problem = _problem(st, max_bytes)
            if problem:
                out.refused.append((rel, problem))
            else:
                out.files[rel] = st.st_size
    out.refused.sort()
    return out


_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def _open_under(root: Path, rel: str) -> int:
    """Open ``root/rel`` for reading, following no link on the way (each folder opened with ``O_NOFOLLOW``)."""
    parts = [p for p in Path(rel).parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise Refused(f"{rel!r} is not a plain relative path")
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        return os.open(parts[-1], _FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def read_regular(path: Path, max_bytes: int, root: Path | None = None) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; else :class:`Refused` (never an ``OSError``).

    With ``root``, ``path`` is relative to it and no folder on the way may be a link either.

    Example:
        >>> read_regular(Path("/dev/zero"), 10)
        Traceback (most recent call last):
        ...
        tlcourse.grading.safefs.Refused: zero: a symbolic link or not a regular file (a character device)
    """
    shown = Path(path).name
    try:
        fd = _open_under(root, str(path)) if root is not None else os.open(path, _FLAGS)
    except Refused:
        raise
    except OSError as exc:
        reason = "a symbolic link" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror
        raise Refused(f"{shown}: {reason}") from None
    try:
        st = os.fstat(fd)
        problem = _problem(st, max_bytes)
        if problem:
            raise Refused(f"{shown}: a symbolic link or not a regular file ({problem})"
                          if not stat.S_ISREG(st.st_mode) else f"{shown}: {problem}")
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise Refused(f"{shown}: grew past the {max_bytes / 1e6:g} MB limit while being read")
        return data
    except OSError as exc:
        raise Refused(f"{shown}: unreadable ({exc.strerror})") from None
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through no link: an existing name (a link someone planted) is replaced.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "out.txt"
        >>> write_new(target, b"hi"); target.read_bytes()
        b'hi'
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")  # fresh: O_EXCL never meets one
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
