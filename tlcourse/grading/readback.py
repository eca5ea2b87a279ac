"""What comes back from a sandbox — the result, the progress note, the log — read as hostile data.

The worker is grader code, but it runs beside the student's kernel, and a broken or subverted one may write
anything: a file of the wrong shape, a link, a FIFO, gigabytes. Each file is read through :mod:`.safefs` (regular
file, size cap before reading) and checked against a schema; what does not fit is a :class:`Malformed`, which the
grader turns into that student's error row. Text that reaches a row (reasons, cell labels) is shortened and
stripped of control characters.

Example:
    >>> check_result({"status": "ok", "reason": "", "notebooks": {"a": {"notebook": {}, "replies": {"0": "ok"}}}})["status"]
    'ok'
    >>> check_result({"status": "ok", "notebooks": []})
    Traceback (most recent call last):
    ...
    tlcourse.grading.readback.Malformed: notebooks: expected an object, got list
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from tlcourse.grading.safefs import Refused, read_regular

__all__ = ["Malformed", "check_result", "read_result", "read_progress", "read_log_tail", "plain"]

MAX_PROGRESS_BYTES = 64 * 1024
MAX_LOG_BYTES = 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Malformed(ValueError):
    """What the sandbox handed back does not have the expected shape (the message says where)."""


def plain(text: Any, limit: int = 300) -> str:
    """``text`` as one short line of printable characters (for a grade row).

    Example:
        >>> plain("a\\x1b[31mb\\nc" + "x" * 400, 12)
        'a[31mb cxxx…'
    """
    flat = _CONTROL.sub("", str(text)).replace("\n", " ")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        names = {"dict": "an object", "str": "a string", "list": "a list"}.get(names, names)
        raise Malformed(f"{where}: expected {names}, got {type(value).__name__}")
    return value


def check_result(result: Any) -> dict:
    """The worker's result if it has the worker's shape; else :class:`Malformed`."""
    _expect(result, dict, "result")
    _expect(result.get("status", ""), str, "status")
    _expect(result.get("reason", ""), str, "reason")
    for key in ("failed", "problem"):
        if result.get(key) is not None:
            _expect(result[key], str, key)
    for nb_id, entry in _expect(result.get("notebooks", {}), dict, "notebooks").items():
        _expect(entry, dict, f"notebooks.{plain(nb_id, 40)}")
        _expect(entry.get("notebook"), dict, f"notebooks.{plain(nb_id, 40)}.notebook")
        replies = _expect(entry.get("replies", {}), dict, f"notebooks.{plain(nb_id, 40)}.replies")
        for index, status in replies.items():
            if not (isinstance(index, str) and index.isdigit() and isinstance(status, str)):
                raise Malformed(f"notebooks.{plain(nb_id, 40)}.replies: not a map of cell index to status")
    return result


def read_result(path: Path, max_bytes: int) -> dict:
    """The worker's result file: ``{}`` when it wrote nothing; :class:`Malformed` when it is not a result."""
    if not os.path.lexists(path):
        return {}
    try:
        data = read_regular(path, max_bytes)
    except Refused as exc:
        if "MB limit" in str(exc):
            raise Malformed(f"the graded notebook is over {max_bytes // 2**20} MB (outputs too large: print "
                            "less)") from None
        raise Malformed(f"the result file was refused ({exc})") from None
    if not data:
        return {}
    try:
        return check_result(json.loads(data.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise Malformed(f"the result file is not JSON ({type(exc).__name__})") from None


def read_progress(path: Path) -> dict:
    """The worker's progress note ({"cell": label, "kernel_pid": int}); ``{}`` when unreadable or odd."""
    try:
        note = json.loads(read_regular(path, MAX_PROGRESS_BYTES).decode("utf-8") or "{}")
    except (Refused, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return {}
    if not isinstance(note, dict):
        return {}
    pid = note.get("kernel_pid")
    return {"cell": plain(note.get("cell") or "?", 80), "kernel_pid": pid if isinstance(pid, int) else None}


def read_log_tail(path: Path) -> bytes:
    """The last ``MAX_LOG_BYTES`` of a worker's log (its head when the file is larger is dropped); ``b""`` if
    unreadable."""
    try:
        return read_regular(path, 64 * MAX_LOG_BYTES)[-MAX_LOG_BYTES:]
    except Refused:
        return b""
