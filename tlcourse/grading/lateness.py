"""Late work, decided at export: when each student handed in, their own due date, and the rule that applies.

Nothing here imports nbgrader. The penalty is computed from the gradebook's *final* score (after manual grading)
when grades are exported, never taken from nbgrader's ``AssignLatePenalties`` at autograde time (which runs
before any manual points exist). Every time carries its zone; a time without one is refused.

* :func:`parse_time` — ``2027-01-15 23:59 Europe/Paris``, ``2027-01-15T22:59:00Z``, ``… +01:00``;
* :func:`read_extensions` — the instructor's one ``extensions.csv``: ``assignment,student_id,due``;
* :func:`read_times` — an LMS times CSV (``--times``): one id column, one submission-time column;
* :func:`submission_time` — a student's time: ``timestamp.txt``, else the times CSV, else ``.collect.json``;
* :func:`late_rule` — what applies: on time, *n* started days × *p* %, late by an unknown amount, no submission.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tlcourse.grading.course import CourseError, is_safe_id
from tlcourse.grading.safefs import Refused, read_regular

__all__ = ["Extension", "Rule", "When", "late_rule", "nbgrader_timestamp", "parse_time", "read_extensions",
           "read_times", "started_days", "submission_time", "TIME_ID_COLUMNS", "TIME_COLUMNS"]

SIDECAR = ".collect.json"  # written by ``tlcourse collect`` (collect.SIDECAR)
MAX_SIDECAR_BYTES = 64 * 1024
MAX_SMALL_BYTES = 4096
_ZONE_TAIL = re.compile(r"^(?P<time>.*?\d)\s*(?P<zone>Z|UTC|GMT|[A-Za-z]+/[A-Za-z_+\-/0-9]+|[+-]\d{2}:?\d{2})$")
#: Moodle writes "Friday, 15 January 2027, 11:59 PM" (no zone: the viewer's own) in its grading worksheet.
_LOCAL_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S",
                  "%Y-%m-%dT%H:%M", "%A, %d %B %Y, %I:%M %p", "%d %B %Y, %I:%M %p")


def _zone(name: str) -> tzinfo:
    if name in ("Z", "UTC", "GMT"):
        return UTC
    if re.fullmatch(r"[+-]\d{2}:?\d{2}", name):
        sign = -1 if name[0] == "-" else 1
        hours, minutes = int(name[1:3]), int(name[-2:])
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CourseError(f"unknown time zone {name!r} (use an IANA name like Europe/Paris, UTC, or +01:00)") \
            from None


def _local(text: str) -> datetime | None:
    for fmt in _LOCAL_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_time(text: str, where: str = "", zone: str | None = None) -> datetime:
    """A time with its zone; a time without one is refused unless ``zone`` names the zone to read it in.

    Example:
        >>> parse_time("2027-01-15 23:59 Europe/Paris").isoformat()
        '2027-01-15T23:59:00+01:00'
        >>> parse_time("2027-01-15T22:59:00Z").astimezone(UTC).isoformat()
        '2027-01-15T22:59:00+00:00'
        >>> parse_time("2027-01-15 23:59", "extensions.csv line 2")
        Traceback (most recent call last):
        ...
        tlcourse.grading.course.CourseError: extensions.csv line 2: '2027-01-15 23:59' has no time zone; write it with one (2027-01-15 23:59 Europe/Paris, 2027-01-15T22:59:00Z or ... +01:00)
    """
    raw = str(text).strip()
    found = _ZONE_TAIL.match(raw)
    when = _local(found["time"].strip()) if found else None
    if when is not None and found is not None:
        return when.replace(tzinfo=_zone(found["zone"])) if when.tzinfo is None else when
    when = _local(raw)
    prefix = f"{where}: " if where else ""
    if when is None:
        raise CourseError(f"{prefix}{raw!r} is not a time (write e.g. 2027-01-15 23:59 Europe/Paris)")
    if when.tzinfo is not None:
        return when
    if zone:
        return when.replace(tzinfo=_zone(zone))
    raise CourseError(f"{prefix}{raw!r} has no time zone; write it with one (2027-01-15 23:59 Europe/Paris, "
                      "2027-01-15T22:59:00Z or ... +01:00)")


def nbgrader_timestamp(when: datetime) -> str:
    """``when`` as nbgrader writes ``timestamp.txt`` (UTC, microseconds, zone name).

    Example:
        >>> nbgrader_timestamp(parse_time("2027-01-16 10:00 Europe/Paris"))
        '2027-01-16 09:00:00.000000 UTC'
    """
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def shown(when: datetime) -> str:
    """A time as the export writes it: ISO-like, minutes, with its zone.

    Example:
        >>> shown(parse_time("2027-01-15T22:59:00Z"))
        '2027-01-15 22:59 UTC'
    """
    zone = when.tzname() or when.strftime("%z")
    return when.strftime("%Y-%m-%d %H:%M ") + zone


def started_days(seconds: float) -> int:
    """Started days in ``seconds`` late (0 when on time).

    Example:
        >>> [started_days(s) for s in (0, 1, 86400, 34 * 3600)]
        [0, 1, 1, 2]
    """
    return max(0, math.ceil(seconds / 86400))


# ------------------------------------------------------------------------------------------------ extensions
@dataclass(frozen=True)
class Extension:
    """One row of ``extensions.csv``: a new due time, or hours added to the assignment's due date.

    Example:
        >>> Extension(None, 48).due_for(parse_time("2027-01-15 23:59 UTC")).isoformat()
        '2027-01-17T23:59:00+00:00'
    """

    due: datetime | None
    hours: float = 0.0

    def due_for(self, due: datetime | None) -> datetime | None:
        if self.due is not None:
            return self.due
        return None if due is None else due + timedelta(hours=self.hours)


def _extension(text: str, where: str) -> Extension:
    value = text.strip()
    plus = re.fullmatch(r"\+\s*(\d+(?:\.\d+)?)\s*h?", value)
    return Extension(None, float(plus[1])) if plus else Extension(parse_time(value, where))


def read_extensions(path: str | os.PathLike[str]) -> dict[tuple[str, str], Extension]:
    """``extensions.csv`` (``assignment,student_id,due``; ``due`` a time with its zone or ``+hours``) as
    (assignment, student) -> :class:`Extension`; a missing file is no extension.

    Example:
        >>> read_extensions("/nonexistent/extensions.csv")
        {}
    """
    if not Path(path).is_file():
        return {}
    out: dict[tuple[str, str], Extension] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"assignment", "student_id", "due"} - set(reader.fieldnames or [])
        if missing:
            raise CourseError(f"{path}: needs the columns assignment,student_id,due (missing {sorted(missing)})")
        for row in reader:
            where = f"{Path(path).name} line {reader.line_num}"
            key = ((row["assignment"] or "").strip(), (row["student_id"] or "").strip())
            if not all(key):
                continue
            if not is_safe_id(key[1]):
                raise CourseError(f"{where}: {key[1]!r} is not a student id")
            if key in out:
                raise CourseError(f"{where}: a second extension for {key[1]} on {key[0]} (keep one line)")
            out[key] = _extension(row["due"] or "", where)
    return out


# ------------------------------------------------------------------------------------------------ submission times
#: Columns of a times CSV that name a student: column -> what it holds (a key of :class:`Who`).
TIME_ID_COLUMNS: dict[str, str] = {
    "student_id": "student", "SIS Login ID": "student",  # nbgrader's id; Canvas's login (our id on import)
    "ID": "lms", "user_id": "lms",  # Canvas's user id (the lms_user_id imported from its gradebook)
    "Identifier": "lms",  # Moodle's "Participant 12345" (grading worksheet)
    "Email address": "email", "email": "email",
}
#: Columns of a times CSV that hold the submission time: Canvas's API/reports ``submitted_at``; Moodle's grading
#: worksheet "Last modified (submission)" (written without a zone: pass ``zone``).
TIME_COLUMNS = ("submitted_at", "Submitted At", "submission_time", "Last modified (submission)")
_NO_TIME = {"", "-", "—"}


def _lms_id(text: str) -> str:
    """``Participant 12345`` -> ``12345``; any other id as it is."""
    return re.sub(r"^Participant\s+", "", text.strip())


def read_times(path: str | os.PathLike[str], zone: str | None = None) -> dict[tuple[str, str], datetime]:
    """A times CSV as (kind, id) -> time, kind one of ``student``, ``lms``, ``email`` (:data:`TIME_ID_COLUMNS`).

    Example:
        >>> read_times("times.csv")  # doctest: +SKIP
        {('lms', '1002'): datetime.datetime(2027, 1, 17, 9, 59, tzinfo=datetime.timezone.utc)}
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        ids = [c for c in columns if c in TIME_ID_COLUMNS]
        times = [c for c in columns if c in TIME_COLUMNS]
        if not ids or not times:
            raise CourseError(f"{path}: a times file needs an id column ({', '.join(TIME_ID_COLUMNS)}) and a "
                              f"time column ({', '.join(TIME_COLUMNS)}); it has {columns}")
        out: dict[tuple[str, str], datetime] = {}
        for row in reader:
            text = (row.get(times[0]) or "").strip()
            if text in _NO_TIME:
                continue
            when = parse_time(text, f"{Path(path).name} line {reader.line_num}", zone)
            for column in ids:
                if (row.get(column) or "").strip():
                    out[(TIME_ID_COLUMNS[column], _lms_id(row[column]))] = when
    return out


@dataclass(frozen=True)
class When:
    """A submission's time, where it came from, and the LMS's own late marker.

    Example:
        >>> When(None, "", True).unknown
        True
    """

    time: datetime | None
    source: str
    late_marker: bool = False
    lms: str = ""

    @property
    def unknown(self) -> bool:
        return self.time is None


def _small(folder: Path, name: str, limit: int) -> bytes | None:
    if not os.path.lexists(folder / name):
        return None
    try:
        return read_regular(Path(name), limit, root=folder)
    except Refused as exc:
        raise CourseError(f"{folder / name}: refused ({exc})") from None


def _sidecar(folder: Path) -> dict:
    raw = _small(folder, SIDECAR, MAX_SIDECAR_BYTES)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        raise CourseError(f"{folder / SIDECAR} is not JSON (written by tlcourse collect)") from None
    return data if isinstance(data, dict) else {}


def _file_time(meta: dict, where: str) -> datetime | None:
    text, source = str(meta.get("file_time") or ""), str(meta.get("file_time_source") or "")
    return parse_time(text, where) if text and "invalid" not in source else None


def collect_timestamp(raw: bytes, notes: list[str]) -> str | None:
    """``.collect.json``'s file time as nbgrader's ``timestamp.txt`` text (``tlcourse grade`` stores it), or
    ``None`` with a note when there is none to trust.

    Example:
        >>> collect_timestamp(b'{"file_time": "2027-01-17T10:59:00+01:00"}', [])
        '2027-01-17 09:59:00.000000 UTC'
        >>> notes = []; collect_timestamp(b'{"file_time": "2027-01-17 10:59"}', notes), notes
        (None, [".collect.json: '2027-01-17 10:59' has no time zone; write it with one (2027-01-15 23:59 Europe/Paris, 2027-01-15T22:59:00Z or ... +01:00)"])
    """
    try:
        meta = json.loads(raw)
        when = _file_time(meta if isinstance(meta, dict) else {}, SIDECAR)
    except (ValueError, CourseError) as exc:
        notes.append(str(exc) if isinstance(exc, CourseError) else f"{SIDECAR} is not JSON")
        return None
    return nbgrader_timestamp(when) if when else None


def submission_time(folder: Path, keys: list[tuple[str, str]],
                    times: dict[tuple[str, str], datetime]) -> When:
    """The time of the submission in ``folder`` (``submitted/<student>/<assignment>/``): nbgrader's
    ``timestamp.txt``, else the times CSV (looked up under ``keys``), else ``.collect.json``'s ``file_time``.

    A ``timestamp.txt`` equal to the sidecar's file time was copied there by ``tlcourse grade``: it counts as the
    file time (so ``--times`` still wins over it).

    Example:
        >>> submission_time(Path("/nonexistent"), [], {}).source
        'none'
    """
    meta = _sidecar(folder)
    marker, lms = bool(meta.get("late_marker")), str(meta.get("lms") or "")
    file_time = _file_time(meta, str(folder / SIDECAR))
    raw = _small(folder, "timestamp.txt", MAX_SMALL_BYTES)
    stamp = parse_time(raw.decode("utf-8", "replace"), str(folder / "timestamp.txt")) if raw else None
    if stamp is not None and stamp != file_time:
        return When(stamp, "timestamp.txt", marker, lms)
    listed = next((times[k] for k in keys if k in times), None)
    if listed is not None:
        return When(listed, "times CSV", marker, lms)
    if file_time is not None:
        return When(file_time, f"file time ({meta.get('file_time_source') or 'collect'})", marker, lms)
    return When(None, "none", marker, lms)


# ------------------------------------------------------------------------------------------------ the rule
@dataclass(frozen=True)
class Rule:
    """What applies to one submission: the fraction of the score lost (``None``: unknown) and why, in words."""

    fraction: float | None
    text: str


def _percent_rule(seconds: float, percent: float) -> tuple[float, str]:
    days = started_days(seconds)
    fraction = min(1.0, days * percent / 100)
    hours = seconds / 3600
    late = f"{hours:.0f} h late" if hours >= 1 else f"{seconds / 60:.0f} min late"
    unit = "started day" if days == 1 else "started days"
    return fraction, f"{late}: {days} {unit} × {percent:g} % = −{fraction * 100:g} %"


#: Late-penalty rules by nbgrader plugin class (``c.AssignLatePenalties.plugin_class``): (seconds late, percent)
#: -> (fraction lost, words).
PENALTY_RULES: dict[str, Callable[[float, float], tuple[float, str]]] = {
    "tlcourse.grading.late.PercentPerDay": _percent_rule,
    "nbgrader.plugins.LateSubmissionPlugin": lambda s, p: (0.0, f"{s / 3600:.0f} h late (no late penalty set)"),
}


def late_rule(when: When, due: datetime | None, extension: Extension | None, percent: float,
              plugin: str = "tlcourse.grading.late.PercentPerDay") -> Rule:
    """The rule for one submission handed in ``when``, due ``due`` (before any ``extension``).

    Example:
        >>> due = parse_time("2027-01-15 23:59 UTC")
        >>> late_rule(When(parse_time("2027-01-17 09:59 UTC"), "timestamp.txt"), due, None, 10).text
        '34 h late: 2 started days × 10 % = −20 %'
        >>> late_rule(When(parse_time("2027-01-17 09:59 UTC"), "x"), due, Extension(None, 48), 10).text
        'on time (extension to 2027-01-17 23:59 UTC)'
        >>> late_rule(When(None, "none", True, "canvas"), due, None, 10).fraction is None
        True
    """
    deadline = extension.due_for(due) if extension else due
    extended = f" (extension to {shown(deadline)})" if extension and deadline else ""
    marker = " [LMS marked it LATE]" if when.late_marker else ""
    if deadline is None:
        return Rule(0.0, "no due date" + marker)
    if when.time is None:
        if when.late_marker:
            return Rule(None, "LATE by an unknown amount (the LMS's late marker, no submission time): pass "
                              "--times or add an extension" + extended)
        return Rule(0.0, "on time (no submission time known)" + extended)
    seconds = (when.time - deadline).total_seconds()
    file_only = when.source.startswith("file time")
    if file_only and when.lms == "canvas" and (seconds > 0) != when.late_marker:
        return Rule(None, f"lateness unknown: the file time says {'late' if seconds > 0 else 'on time'}, Canvas's "
                          "LATE marker says otherwise (pass --times with Canvas's submitted_at)" + extended)
    if seconds <= 0:
        return Rule(0.0, "on time" + extended + marker)
    fraction, text = PENALTY_RULES.get(plugin, _percent_rule)(seconds, percent)
    return Rule(fraction, text + extended)
