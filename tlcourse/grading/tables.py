"""Every CSV the grader writes goes through here: cells safe to open in a spreadsheet, files replaced atomically.

Student names, ids and e-mails reach the exports, and a spreadsheet runs a cell that starts with ``=``, ``+``,
``-`` or ``@`` as a formula (``=HYPERLINK(...)``, DDE ``-2+3+cmd|...``). :func:`cell` applies OWASP's rule for
CSV injection: such a text cell gets a leading single quote, which spreadsheets show as text. A cell that is a
plain decimal number (``6``, ``4.2``, ``-0.5``, ``1e-05``) is left alone: it holds no formula, and our scores and
penalties must stay numbers for the LMS that imports them.

Example:
    >>> [cell(v) for v in ("=HYPERLINK(\\"http://x\\")", "-2+3", "alice", "-0.5", 6)]
    ['\\'=HYPERLINK("http://x")', "'-2+3", 'alice', '-0.5', '6']
"""

from __future__ import annotations

import csv
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["FORMULA_STARTS", "cell", "row", "write_csv"]

#: First characters that make a spreadsheet read a cell as a formula: OWASP's list (``= + - @``, tab, CR), a line
#: feed, and their full-width forms (some spreadsheets fold them to ASCII on import).
FORMULA_STARTS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def cell(value: Any) -> str:
    """``value`` as a CSV cell a spreadsheet shows as text: a formula-like start gets a leading ``'``.

    Leading blanks do not hide a formula (some importers trim them), and ``None`` is an empty cell. A carriage
    return becomes a line feed: Python 3.11's CSV writer quotes a cell only for the line terminator's own
    characters (``\\n`` here), so a bare CR would end the row early and start a new, unchecked one.

    Example:
        >>> cell("@SUM(A1)"), cell("  =1+1"), cell("\\t=1"), cell(None), cell(4.2), cell("Smith, Jane")
        ("'@SUM(A1)", "'  =1+1", "'\\t=1", '', '4.2', 'Smith, Jane')
        >>> cell("Eve\\r=1+1"), cell("\\r\\n=1")
        ('Eve\\n=1+1', "'\\n=1")
    """
    text = "" if value is None else str(value).replace("\r\n", "\n").replace("\r", "\n")
    first = text.lstrip(" \u00a0\u3000")[:1] or text[:1]
    if first in FORMULA_STARTS and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def row(values: Iterable[Any]) -> list[str]:
    """Every cell of a row made safe (see :func:`cell`).

    Example:
        >>> row(["=1", 2, None])
        ["'=1", '2', '']
    """
    return [cell(v) for v in values]


def write_csv(path: str | os.PathLike[str], header: Sequence[Any], rows: Iterable[Iterable[Any]]) -> Path:
    """Write ``header`` and ``rows`` (every cell through :func:`cell`) to ``path`` atomically; return the path.

    The table goes to a fresh temporary file beside ``path`` (mode from the umask, as ``open`` would make it),
    is flushed to disk, then replaces ``path`` in one step: a reader sees the old file or the new one, never half.

    Example:
        >>> import tempfile
        >>> out = write_csv(Path(tempfile.mkdtemp()) / "g.csv", ["id", "score"], [["=cmd", 6], ["bob", "4.2"]])
        >>> out.read_text()
        "id,score\\n'=cmd,6\\nbob,4.2\\n"
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(row(header))
            writer.writerows(row(r) for r in rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
