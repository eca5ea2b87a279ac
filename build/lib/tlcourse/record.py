"""A lesson's headline numbers and checked claims, collected for the benchmark table (``benchmarks/``).

``claim(name, held, evidence, statement=...)`` is how a lesson states an outcome without hard-coding it: the
notebook shows a ✓ / ✗ box with this run's numbers, and ``claim_<name>`` (1 held, 0 did not) is recorded.

A lesson calls ``record("finetune_val_acc", acc, lesson="03_fine_tuning")`` next to the number it reports. When
the environment variable ``TLCOURSE_RESULTS`` names a JSON file, the entry ``{name, value, lesson, profile, time}``
is appended to the list in that file (created if missing, written atomically, guarded by a lock file so that
notebooks run in parallel do not lose entries). Without the variable it does nothing and prints nothing, so
students never see it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import numbers
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["record", "claim", "load_records", "RESULTS_ENV"]

#: The environment variable naming the results file.
RESULTS_ENV = "TLCOURSE_RESULTS"

_NAME = re.compile(r"[a-z0-9_]+")


def _check_value(name: str, value: Any) -> float | int | str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError(f"record({name!r}, ...): value must be a number or a string, not a bool — use 0/1")
    if not isinstance(value, numbers.Real) and hasattr(value, "item"):  # a 0-d torch tensor / numpy array
        try:
            value = value.item()
        except (ValueError, RuntimeError) as err:
            raise TypeError(f"record({name!r}, ...): value must be a single number, got {type(value)}") from err
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"record({name!r}, ...): value must be finite, got {number}")
        return number
    raise TypeError(f"record({name!r}, ...): value must be a number or a string, got {type(value).__name__}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``<path>.lock`` where the OS offers ``fcntl`` (elsewhere: no lock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_records(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The entries in a results file (default: the one ``TLCOURSE_RESULTS`` names); ``[]`` if it is missing.

    Example:
        >>> import tempfile, os
        >>> load_records(os.path.join(tempfile.mkdtemp(), "none.json"))
        []
    """
    if path is None:
        path = os.environ.get(RESULTS_ENV)
        if not path:
            raise ValueError(f"no path given and {RESULTS_ENV} is not set")
    file = Path(path)
    if not file.exists():
        return []
    try:
        data = json.loads(file.read_text(encoding="utf-8") or "[]")
    except json.JSONDecodeError as err:
        raise ValueError(f"{file} is not valid JSON ({err}); fix or delete it") from err
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ValueError(f"{file} should hold a JSON list of objects, found {type(data).__name__}")
    return data


def record(name: str, value: float | int | str, *, lesson: str | None = None) -> None:
    """Record a lesson's headline number in the ``TLCOURSE_RESULTS`` file; a silent no-op when it is unset.

    ``name`` is lower-case letters, digits and underscores; numbers must be finite (tensors and NumPy scalars
    are read with ``.item()``).

    Example:
        >>> record("frozen_val_acc", 0.93, lesson="02_feature_extraction")  # no-op unless TLCOURSE_RESULTS is set
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"record name {name!r} must be lower-case letters, digits and underscores, e.g. 'finetune_val_acc'"
        )
    if lesson is not None and not isinstance(lesson, str):
        raise TypeError(f"lesson must be a string or None, got {type(lesson).__name__}")
    checked = _check_value(name, value)
    target = os.environ.get(RESULTS_ENV, "").strip()
    if not target:
        return None

    from tlcourse.config import profile_name

    entry = {
        "name": name,
        "value": checked,
        "lesson": lesson,
        "profile": profile_name(),
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    path = Path(target).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        entries = load_records(path)
        entries.append(entry)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entries, handle, indent=1)
                handle.write("\n")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return None


_CLAIM_STYLE = {
    True: ("✓ held in this run", "#e8f5e9", "#2e7d32"),
    False: ("✗ did not hold in this run", "#fff3e0", "#e65100"),
}


def _claim_text(held: bool, statement: str, evidence: str, if_not: str) -> str:
    verdict = _CLAIM_STYLE[held][0]
    lines = [f"{verdict}: {statement}" if statement else verdict, f"    {evidence}"]
    if not held and if_not:
        lines.append(f"    why this can happen: {if_not}")
    return "\n".join(lines)


def _claim_html(held: bool, statement: str, evidence: str, if_not: str) -> str:
    from html import escape

    verdict, background, colour = _CLAIM_STYLE[held]
    parts = [f"<b style='color:{colour}'>{verdict}</b>"]
    if statement:
        parts[0] += f" — {escape(statement)}"
    parts.append(f"<div>{escape(evidence)}</div>")
    if not held and if_not:
        parts.append(f"<div><i>Why this can happen:</i> {escape(if_not)}</div>")
    return (f"<div class='tlcourse-claim' style='border-left:4px solid {colour};background:{background};"
            f"padding:6px 10px;margin:4px 0'>{''.join(parts)}</div>")


def claim(name: str, held: Any, evidence: str, *, statement: str = "", if_not: str = "",
          lesson: str | None = None) -> None:
    """Show whether a lesson's claim held in this run, with the numbers, and record ``claim_<name>`` (1 or 0).

    ``held`` is the test (a bool, or a NumPy/torch bool); ``evidence`` the numbers it compared; ``statement`` the
    claim in words; ``if_not`` why it can fail on another run or machine (shown only when it failed). In a notebook
    the result is a coloured box, elsewhere plain text.

    Example:
        >>> claim("transfer_beats_scratch", 0.92 > 0.71, "frozen 0.920 vs scratch 0.710",
        ...       statement="frozen features beat a network trained from scratch")
        ✓ held in this run: frozen features beat a network trained from scratch
            frozen 0.920 vs scratch 0.710
    """
    if hasattr(held, "item"):
        held = held.item()
    if not isinstance(held, bool):
        raise TypeError(f"claim({name!r}, ...): held must be a bool (the outcome of a comparison), "
                        f"got {type(held).__name__}")
    if not isinstance(evidence, str) or not evidence.strip():
        raise ValueError(f"claim({name!r}, ...): evidence must say which numbers were compared")
    record(f"claim_{name}", int(held), lesson=lesson)
    text = _claim_text(held, statement, evidence, if_not)
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover - IPython comes with the course
        get_ipython = None  # type: ignore[assignment]
    if get_ipython is not None and get_ipython() is not None:
        display(HTML(_claim_html(held, statement, evidence, if_not)), metadata={"tlcourse_claim": text})
    else:
        print(text)
