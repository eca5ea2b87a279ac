"""A lesson's headline numbers and checked claims, collected for the benchmark table (``benchmarks/``).

``claim(name, evidence, statement=...)`` is how a lesson states an outcome without hard-coding it. The evidence is
an interval (``tlcourse.stats``: a paired bootstrap, a seed spread, a binomial interval), so a claim has three
outcomes: **held** (beyond noise), **within noise** (the interval straddles the line the claim draws), **did not
hold** (beyond noise, the other way). The notebook shows a coloured box with this run's numbers and interval, and
``claim_<name>`` is recorded with the outcome and the interval. A comparison without its uncertainty is refused;
a fact no noise touches (a parameter count) passes a bool with ``exact=`` saying why.

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

__all__ = ["record", "claim", "decide", "load_records", "RESULTS_ENV", "HELD", "WITHIN_NOISE", "NOT_HELD"]

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


def record(name: str, value: float | int | str, *, lesson: str | None = None,
           _fields: dict[str, Any] | None = None) -> None:
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

    _append({"name": name, "value": checked, "lesson": lesson, **(_fields or {})}, Path(target).expanduser())
    return None


def _append(entry: dict[str, Any], path: Path) -> None:
    """Add ``entry`` (stamped with the profile and the time) to the results file, atomically and under a lock."""
    from tlcourse.config import profile_name

    entry = {**entry, "profile": profile_name(), "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
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


HELD, WITHIN_NOISE, NOT_HELD = "held", "within noise", "did not hold"

#: How each outcome looks: the verdict's words, the box's background and its accent colour.
OUTCOME_STYLE: dict[str, tuple[str, str, str]] = {
    HELD: ("✓ held beyond noise", "#e8f5e9", "#2e7d32"),
    WITHIN_NOISE: ("≈ within noise", "#efebe9", "#8d6e63"),
    NOT_HELD: ("✗ did not hold", "#fff3e0", "#e65100"),
}


def _greater(low: float, high: float, margin: float) -> str:
    return HELD if low > margin else NOT_HELD if high < margin else WITHIN_NOISE


def _less(low: float, high: float, margin: float) -> str:
    return HELD if high < -margin else NOT_HELD if low > -margin else WITHIN_NOISE


def _close(low: float, high: float, margin: float) -> str:
    if margin <= 0:
        raise ValueError("expect='close' needs margin > 0: the largest difference that still counts as close")
    return HELD if -margin <= low and high <= margin else NOT_HELD if low > margin or high < -margin else WITHIN_NOISE


#: What a claim expects of the difference ``a - b`` (registry: name -> rule on the interval and the margin).
#: greater: a beats b by more than ``margin``; less: a is below b by more than ``margin``; close: |a - b| <= margin.
EXPECTATIONS = {"greater": _greater, "less": _less, "close": _close}


def decide(evidence: Any, expect: str = "greater", margin: float = 0.0) -> str:
    """The outcome of a claim about an interval: ``"held"``, ``"within noise"`` or ``"did not hold"``.

    Example:
        >>> from tlcourse.stats import seed_difference
        >>> decide(seed_difference([0.95, 0.96, 0.94], [0.94, 0.96, 0.93]))
        'within noise'
        >>> decide(seed_difference([0.95, 0.96, 0.94], [0.80, 0.82, 0.79]))
        'held'
    """
    if expect not in EXPECTATIONS:
        raise ValueError(f"expect must be one of {sorted(EXPECTATIONS)}, got {expect!r}")
    low, high = float(evidence.low), float(evidence.high)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"the interval must be finite with low <= high, got [{low}, {high}]")
    return EXPECTATIONS[expect](low, high, float(margin))


def _interval_words(evidence: Any) -> str:
    return (f"difference {evidence.difference:+.3f}, {evidence.confidence:.0%} interval {evidence.low:+.3f} to "
            f"{evidence.high:+.3f} ({evidence.method})")


def _claim_lines(outcome: str, statement: str, detail: str, evidence: Any, if_not: str) -> list[str]:
    verdict = OUTCOME_STYLE[outcome][0]
    lines = [f"{verdict}: {statement}" if statement else verdict]
    lines += [detail] if detail else []
    lines += [_interval_words(evidence)] if evidence is not None else []
    if outcome == WITHIN_NOISE:
        lines.append("the interval includes the line the claim draws: this run cannot tell the two apart")
    if outcome != HELD and if_not:
        lines.append(f"why this can happen: {if_not}")
    return lines


def _claim_html(outcome: str, lines: list[str]) -> str:
    from html import escape

    _, background, colour = OUTCOME_STYLE[outcome]
    head, *rest = lines
    verdict, _, statement = head.partition(": ")
    title = f"<b style='color:{colour}'>{escape(verdict)}</b>" + (f" — {escape(statement)}" if statement else "")
    body = "".join(f"<div>{escape(line)}</div>" for line in rest)
    return (f"<div class='tlcourse-claim tlcourse-claim-{outcome.replace(' ', '-')}' style='border-left:4px solid "
            f"{colour};background:{background};padding:6px 10px;margin:4px 0'>{title}{body}</div>")


def _outcome_of(name: str, evidence: Any, expect: str, margin: float, exact: str) -> str:
    if hasattr(evidence, "low") and hasattr(evidence, "high"):
        return decide(evidence, expect, margin)
    if hasattr(evidence, "item"):
        evidence = evidence.item()
    if not isinstance(evidence, bool):
        raise TypeError(f"claim({name!r}, ...): evidence must be an interval from tlcourse.stats (or a bool with "
                        f"exact=...), got {type(evidence).__name__}")
    if not exact.strip():
        raise TypeError(f"claim({name!r}, ...): a comparison claim needs its uncertainty — pass an interval "
                        "(tlcourse.stats.paired_bootstrap, seed_difference, proportion_interval); a bool is "
                        "accepted only with exact='why no noise can change this outcome'")
    return HELD if evidence else NOT_HELD


def claim(name: str, evidence: Any, *, statement: str, detail: str = "", expect: str = "greater",
          margin: float = 0.0, if_not: str = "", exact: str = "", lesson: str | None = None) -> str:
    """Show whether a lesson's claim held in this run — held, within noise or did not hold — and record it.

    ``evidence`` is an interval of the difference the claim is about (``tlcourse.stats``); ``expect`` says what
    the claim expects of it (``"greater"`` than ``margin``, ``"less"``, or ``"close"``: within ``±margin``).
    ``statement`` is the claim in words, ``detail`` the numbers compared, ``if_not`` why it can fail on another
    run (shown unless it held). A deterministic fact passes a bool and ``exact=`` (why no noise applies). In a
    notebook the outcome is a coloured box, elsewhere plain text; ``claim_<name>`` is recorded with the outcome
    and the interval. Returns the outcome, so prose can be rendered from it.

    Example:
        >>> from tlcourse.stats import seed_difference
        >>> claim("finetune_beats_frozen", seed_difference([0.95, 0.96, 0.94], [0.94, 0.96, 0.93]),
        ...       statement="fine-tuning beats frozen features", detail="3 seeds")
        ≈ within noise: fine-tuning beats frozen features
            3 seeds
            difference +0.007, 95% interval -0.008 to +0.021 (t interval over 3 seeds)
            the interval includes the line the claim draws: this run cannot tell the two apart
        'within noise'
    """
    if not isinstance(statement, str) or not statement.strip():
        raise ValueError(f"claim({name!r}, ...): statement must say the claim in words")
    outcome = _outcome_of(name, evidence, expect, margin, exact)
    interval = evidence if hasattr(evidence, "low") else None
    lines = _claim_lines(outcome, statement, detail, interval, if_not)
    _record_claim(name, outcome, interval, expect, margin, lesson)
    text = "\n    ".join(lines)
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover - IPython comes with the course
        get_ipython = None  # type: ignore[assignment]
    if get_ipython is not None and get_ipython() is not None:
        display(HTML(_claim_html(outcome, lines)), metadata={"tlcourse_claim": text})
    else:
        print(text)
    return outcome


def _record_claim(name: str, outcome: str, interval: Any, expect: str, margin: float, lesson: str | None) -> None:
    fields: dict[str, Any] = {}
    if interval is not None:
        fields = {"difference": float(interval.difference), "low": float(interval.low),
                  "high": float(interval.high), "method": str(interval.method), "expect": expect,
                  "margin": float(margin)}
    record(f"claim_{name}", outcome, lesson=lesson, _fields=fields)
