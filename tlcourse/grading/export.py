"""Grades out, roster in: the gradebook as the CSV an LMS imports (Canvas, Gradescope, or nbgrader's plain CSV).

Every student of the roster gets a row — one who handed nothing in scores 0 — with the submission time, the late
penalty nbgrader assigned (``AssignLatePenalties`` with the plugin and due dates of ``nbgrader_config.py``) and the
score after it. The roster comes from the LMS: :func:`import_roster` reads a Canvas gradebook export, a Gradescope
roster or nbgrader's own ``id,first_name,last_name,email`` file into nbgrader's student list.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tlcourse.grading.course import (
    CourseError,
    course_dir,
    load_nbgrader_config,
    open_gradebook,
    step_dir,
    withheld_dir,
)
from tlcourse.grading.lateness import (
    Extension,
    Rule,
    When,
    late_rule,
    parse_time,
    read_extensions,
    read_times,
    shown,
    submission_time,
)
from tlcourse.grading.lms import FILLERS, fill_roster
from tlcourse.grading.roster import ROSTER_FORMATS, import_roster
from tlcourse.grading.scores import EMPTY_STATES, Score
from tlcourse.grading.submissions import SAFE_ID, is_safe_id
from tlcourse.grading.tables import write_csv

# EMPTY_STATES, Score (.scores) and ROSTER_FORMATS, import_roster (.roster) stay importable from here
__all__ = ["EMPTY_STATES", "EXPORTERS", "LateWork", "ROSTER_FORMATS", "SAFE_ID", "export_grades", "import_roster",
           "is_safe_id", "Score", "scores"]


@dataclass
class LateWork:
    """What the export needs to decide late work: due dates, extensions, an LMS times file, the penalty, and
    the course folders (``submitted/`` for times, ``withheld/`` for submissions awaiting review)."""

    due_dates: dict[str, datetime] = field(default_factory=dict)
    extensions: dict[tuple[str, str], Extension] = field(default_factory=dict)
    times: dict[tuple[str, str], datetime] = field(default_factory=dict)
    percent: float = 10.0
    plugin: str = "tlcourse.grading.late.PercentPerDay"
    submitted: Path | None = None
    withheld: Path | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def _utc(value: Any) -> datetime | None:
    """A gradebook time (nbgrader stores naive UTC) with its zone."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def withheld_pending(gb: Any, folder: Path | None, assignment: str, student: str) -> bool:
    """Whether ``tlcourse grade`` withheld this submission and a test cell it names has no manual score yet."""
    record = folder / assignment / f"{student}.json" if folder else None
    if record is None or not record.is_file():
        return False
    try:
        claimed = json.loads(record.read_text(encoding="utf-8")).get("claimed") or {}
    except (OSError, ValueError, AttributeError):
        return True  # an unreadable record: keep the submission withheld
    from nbgrader.api import MissingEntry

    for key in claimed:
        notebook, _, cell = str(key).partition("/")
        try:
            if gb.find_grade(cell, notebook, assignment, student).manual_score is None:
                return True
        except MissingEntry:
            return True  # a test cell the gradebook no longer knows: an instructor must look
    return False


def _graded(gb: Any, sub: Any, student: Any, assignment: Any, late: LateWork) -> tuple[dict, Rule | None]:
    """The fields of a submission's :class:`Score` (state, time, rule) and the rule that applies."""
    due = late.due_dates.get(assignment.name) or _utc(assignment.duedate)
    folder = late.submitted / student.id / assignment.name if late.submitted else None
    keys = [("student", student.id), ("lms", str(student.lms_user_id or "")), ("email", str(student.email or ""))]
    when = submission_time(folder, keys, late.times) if folder else When(None, "none")
    if when.time is None and _utc(sub.timestamp) and not when.late_marker:
        when = When(_utc(sub.timestamp), "gradebook", when.late_marker, when.lms)
    rule = late_rule(when, due, late.extensions.get((assignment.name, student.id)), late.percent, late.plugin)
    state = "graded"
    if withheld_pending(gb, late.withheld, assignment.name, student.id):
        state = "withheld"
    elif sub.needs_manual_grade:
        state = "manual"
    elif rule.fraction is None:
        state = "unknown"
    return {"timestamp": when.time or "", "state": state, "time_source": when.source, "due": due}, rule


def _missing(assignment: Any, student_id: str, late: LateWork, any_graded: bool) -> dict:
    """The fields of a :class:`Score` without a submission."""
    if not any_graded:
        return {"state": "ungraded", "rule": ""}
    ext = late.extensions.get((assignment.name, student_id))
    due = late.due_dates.get(assignment.name) or _utc(assignment.duedate)
    deadline = ext.due_for(due) if ext else due
    if deadline is not None and late.now < deadline:
        return {"state": "not due", "rule": f"no submission yet (due {shown(deadline)})"}
    return {"state": "no submission", "rule": "no submission"}


def scores(gradebook: Any, assignments: Sequence[str] | None = None, late: LateWork | None = None) -> Iterator[Score]:
    """Every (roster student, assignment) pair of an open nbgrader ``Gradebook``.

    The late penalty is computed here from the final score (manual points included) and the lateness decided by
    ``late`` (:mod:`.lateness`); nbgrader's stored ``late_submission_penalty`` is not used. No submission scores
    0 once the (extended) due date has passed; an assignment nobody was graded on stays empty.
    """
    from nbgrader.api import MissingEntry

    late = late or LateWork()
    for assignment in gradebook.assignments:
        if assignments and assignment.name not in assignments:
            continue
        any_graded = bool(assignment.submissions)
        for student in gradebook.students:
            base = (student.id, student.last_name or "", student.first_name or "", student.email or "",
                    str(student.lms_user_id or ""), assignment.name, float(assignment.max_score or 0))
            try:
                sub = gradebook.find_submission(assignment.name, student.id)
            except MissingEntry:
                extra = _missing(assignment, student.id, late, any_graded)
                due = late.due_dates.get(assignment.name) or _utc(assignment.duedate)
                yield Score(*base, due, "", 0.0, 0.0, **extra)
                continue
            fields, rule = _graded(gradebook, sub, student, assignment, late)
            raw = float(sub.score or 0)
            penalty = round(raw * (rule.fraction or 0.0), 6)
            yield Score(*base, fields.pop("due"), fields.pop("timestamp"), raw, penalty, rule=rule.text, **fields)


def _plain(rows: list[Score]) -> tuple[list[str], list[list[Any]]]:
    header = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email", "raw_score",
              "late_submission_penalty", "score", "max_score", "state", "late rule", "time source"]
    body = [[s.assignment, shown(s.due) if s.due else "", shown(s.timestamp) if s.timestamp else "", s.student_id,
             s.last_name, s.first_name, s.email, f"{s.raw:g}", f"{s.penalty:g}", s.cell, f"{s.max_score:g}",
             EMPTY_STATES.get(s.state, s.state), s.rule, s.time_source] for s in rows]
    return header, body


def _by_student(rows: list[Score]) -> tuple[list[str], dict[str, dict[str, Score]]]:
    names = sorted({s.assignment for s in rows})
    table: dict[str, dict[str, Score]] = {}
    for s in rows:
        table.setdefault(s.student_id, {})[s.assignment] = s
    return names, table


def _canvas(rows: list[Score]) -> tuple[list[str], list[list[Any]]]:
    """Canvas's gradebook import: Student, ID, SIS User ID, SIS Login ID, Section, one column per assignment,
    and the "Points Possible" row Canvas writes under the header."""
    names, table = _by_student(rows)
    header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *names]
    maxima = {s.assignment: s.max_score for s in rows}
    body: list[list[Any]] = [["    Points Possible", "", "", "", "", *[f"{maxima[n]:g}" for n in names]]]
    for student_id, by_name in sorted(table.items()):
        first = next(iter(by_name.values()))
        body.append([f"{first.last_name}, {first.first_name}".strip(", "), first.lms_user_id, student_id, student_id,
                     "", *[by_name[n].cell if n in by_name else "" for n in names]])
    return header, body


def _gradescope(rows: list[Score]) -> tuple[list[str], list[list[Any]]]:
    """Gradescope's score columns (First Name, Last Name, SID, Email, then per assignment: Total Score, Max Points,
    Status, Submission Time, Lateness (H:M:S)); with several assignments each column starts with its name."""
    names, table = _by_student(rows)
    fields = ["Total Score", "Max Points", "Status", "Submission Time", "Lateness (H:M:S)"]
    prefix = (lambda n: f"{n} - ") if len(names) > 1 else (lambda n: "")
    header = ["First Name", "Last Name", "SID", "Email", *[prefix(n) + f for n in names for f in fields]]
    body = []
    for student_id, by_name in sorted(table.items()):
        first = next(iter(by_name.values()))
        cells: list[Any] = [first.first_name, first.last_name, student_id, first.email]
        for n in names:
            s = by_name[n]
        cells += [s.cell, f"{s.max_score:g}", "Graded" if s.submitted else "Missing",
                  shown(s.timestamp) if s.timestamp else "", s.lateness]
        body.append(cells)
    return header, body


#: LMS formats: name -> rows -> (header, body).
EXPORTERS: dict[str, Callable[[list[Score]], tuple[list[str], list[list[Any]]]]] = {
    "csv": _plain,
    "canvas": _canvas,
    "gradescope": _gradescope,
}


def late_work(cfg: Any, coursedir: Any, times: str | os.PathLike[str] | None = None, zone: str | None = None,
              extensions: str | os.PathLike[str] | None = None, now: datetime | None = None) -> LateWork:
    """The course's :class:`LateWork`: due dates (``c.Tlcourse.due_dates``), ``extensions.csv`` (the course root's,
    or ``c.Tlcourse.extensions_file``), a times CSV, the penalty (``c.PercentPerDay.percent_per_day``)."""
    tl = cfg.get("Tlcourse", {})
    dues = {name: parse_time(text, f"c.Tlcourse.due_dates[{name!r}]")
            for name, text in dict(tl.get("due_dates", {})).items() if text}
    root = Path(cfg.CourseDirectory.root)
    ext = Path(extensions) if extensions else root / str(tl.get("extensions_file", "extensions.csv"))
    plugin = str(cfg.get("AssignLatePenalties", {}).get("plugin_class", "nbgrader.plugins.LateSubmissionPlugin"))
    return LateWork(dues, read_extensions(ext), read_times(times, zone) if times else {},
                    float(cfg.get("PercentPerDay", {}).get("percent_per_day", 10.0)), plugin,
                    step_dir(coursedir, "submitted_directory"), withheld_dir(coursedir),
                    now or datetime.now(UTC))


def _warn(lines: Sequence[str]) -> None:
    for line in lines:
        print(f"tlcourse export: {line}", file=sys.stderr)


def export_grades(lms: str, out: str | os.PathLike[str], assignments: Sequence[str] | None = None,
                  root: str | os.PathLike[str] | None = None, roster: str | os.PathLike[str] | None = None,
                  times: str | os.PathLike[str] | None = None, zone: str | None = None,
                  extensions: str | os.PathLike[str] | None = None, now: datetime | None = None) -> Path:
    """Write the gradebook as ``lms``'s import CSV; return the file.

    With a ``roster`` in Canvas's or Moodle's own format and ``lms`` "canvas" / "moodle", the file written is that
    roster with our cells filled (:mod:`.lms`); else one of :data:`EXPORTERS`. Late penalties are decided here
    (:class:`LateWork`); warnings (cells emptied, points that differ) go to stderr. Written atomically, every cell
    safe to open in a spreadsheet (:func:`tables.cell`).

    Example:
        >>> export_grades("canvas", "grades-canvas.csv", roster="canvas_export.csv")  # doctest: +SKIP
        PosixPath('grades-canvas.csv')
    """
    if lms not in EXPORTERS and lms not in FILLERS:
        raise CourseError(f"unknown LMS format {lms!r}; choose one of {sorted(set(EXPORTERS) | set(FILLERS))}")
    if lms not in EXPORTERS and roster is None:
        raise CourseError(f"--lms {lms} fills the LMS's own file: pass it with --roster (see INSTRUCTORS.md)")
    if roster is not None:
        import_roster(roster, root)
    cfg = load_nbgrader_config(root)
    coursedir = course_dir(cfg)
    late = late_work(cfg, coursedir, times, zone, extensions, now)
    with open_gradebook(coursedir) as gb:
        rows = list(scores(gb, assignments, late))
    if not rows:
        raise CourseError("nothing to export: no student or no assignment in the gradebook (import a roster with "
                          "--roster, grade first)")
    if roster is not None and lms in FILLERS:
        mapping = dict(cfg.get("Tlcourse", {}).get("lms_columns", {}))
        header, body, warnings = fill_roster(lms, roster, rows, mapping, assignments)
        _warn(warnings)
    else:
        header, body = EXPORTERS[lms](rows)
        if lms == "canvas":
            _warn(["no --roster: the file is built from the gradebook (no SIS ids or Section, nbgrader's names as "
                   "headers; Canvas would add new assignments): pass Canvas's own gradebook export for a round trip"])
    return write_csv(out, header, body)
