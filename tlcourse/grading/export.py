"""Grades out, roster in: the gradebook as the CSV an LMS imports (Canvas, Gradescope, or nbgrader's plain CSV).

Every student of the roster gets a row — one who handed nothing in scores 0 — with the submission time, the late
penalty nbgrader assigned (``AssignLatePenalties`` with the plugin and due dates of ``nbgrader_config.py``) and the
score after it. The roster comes from the LMS: :func:`import_roster` reads a Canvas gradebook export, a Gradescope
roster or nbgrader's own ``id,first_name,last_name,email`` file into nbgrader's student list.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlcourse.grading.course import CourseError, _coursedir, _gradebook, load_nbgrader_config
from tlcourse.grading.tables import write_csv

__all__ = ["EXPORTERS", "ROSTER_FORMATS", "SAFE_ID", "export_grades", "import_roster", "is_safe_id", "Score", "scores"]


@dataclass(frozen=True)
class Score:
    """One student's result on one assignment, as an LMS wants it.

    Example:
        >>> Score("alice", "A", "Alice", "a@x.org", "", "00_warmup", 8.0, None, "", 6.0, 1.0).final
        5.0
    """

    student_id: str
    last_name: str
    first_name: str
    email: str
    lms_user_id: str
    assignment: str
    max_score: float
    due: Any  # datetime or None
    timestamp: Any  # datetime or "" (no submission)
    raw: float
    penalty: float

    @property
    def final(self) -> float:
        """The score after the late penalty (never below 0)."""
        return max(0.0, self.raw - self.penalty)

    @property
    def submitted(self) -> bool:
        return self.timestamp != ""

    @property
    def lateness(self) -> str:
        """How late, as Gradescope writes it (H:M:S), "0:00:00" when on time or not submitted."""
        if not self.submitted or self.due is None or self.timestamp is None or self.timestamp <= self.due:
            return "0:00:00"
        seconds = int((self.timestamp - self.due).total_seconds())
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def scores(gradebook: Any, assignments: Sequence[str] | None = None) -> Iterator[Score]:
    """Every (roster student, assignment) pair of an open nbgrader ``Gradebook``; no submission scores 0."""
    from nbgrader.api import MissingEntry

    for assignment in gradebook.assignments:
        if assignments and assignment.name not in assignments:
            continue
        for student in gradebook.students:
            try:
                sub = gradebook.find_submission(assignment.name, student.id)
                when, raw, penalty = sub.timestamp, float(sub.score or 0), float(sub.late_submission_penalty or 0)
            except MissingEntry:
                when, raw, penalty = "", 0.0, 0.0
            yield Score(student.id, student.last_name or "", student.first_name or "", student.email or "",
                        str(student.lms_user_id or ""), assignment.name, float(assignment.max_score or 0),
                        assignment.duedate, when, raw, penalty)


def _plain(rows: list[Score]) -> tuple[list[str], list[list[Any]]]:
    header = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email", "raw_score",
              "late_submission_penalty", "score", "max_score"]
    body = [[s.assignment, s.due or "", s.timestamp or "", s.student_id, s.last_name, s.first_name, s.email,
             f"{s.raw:g}", f"{s.penalty:g}", f"{s.final:g}", f"{s.max_score:g}"] for s in rows]
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
                     "", *[f"{by_name[n].final:g}" if n in by_name else "" for n in names]])
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
            cells += [f"{s.final:g}", f"{s.max_score:g}", "Graded" if s.submitted else "Missing",
                      s.timestamp or "", s.lateness]
        body.append(cells)
    return header, body


#: LMS formats: name -> rows -> (header, body).
EXPORTERS: dict[str, Callable[[list[Score]], tuple[list[str], list[list[Any]]]]] = {
    "csv": _plain,
    "canvas": _canvas,
    "gradescope": _gradescope,
}


# ------------------------------------------------------------------------------------------------- roster
def _split_canvas_name(name: str) -> tuple[str, str]:
    last, _, first = name.partition(",")
    return (first.strip(), last.strip()) if first else ("", name.strip())


#: Roster files: (columns that identify the format, row -> nbgrader student fields).
ROSTER_FORMATS: dict[str, tuple[set[str], Callable[[dict[str, str]], dict[str, str]]]] = {
    "nbgrader": ({"id"}, lambda r: {"id": r["id"], "first_name": r.get("first_name", ""),
                                    "last_name": r.get("last_name", ""), "email": r.get("email", ""),
                                    "lms_user_id": r.get("lms_user_id", "")}),
    "canvas": ({"Student", "ID", "SIS Login ID"}, lambda r: {
        "id": r["SIS Login ID"] or r.get("SIS User ID") or r["ID"], "first_name": _split_canvas_name(r["Student"])[0],
        "last_name": _split_canvas_name(r["Student"])[1], "email": "", "lms_user_id": r["ID"]}),
    "gradescope": ({"First Name", "Last Name", "Email"}, lambda r: {
        "id": r.get("SID") or r["Email"].split("@")[0], "first_name": r["First Name"], "last_name": r["Last Name"],
        "email": r["Email"], "lms_user_id": r.get("SID", "")}),
}


#: A student id becomes a folder name in the course: a letter or digit, then up to 63 of letters, digits, ``._@+-``.
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


def is_safe_id(student_id: str) -> bool:
    """Whether ``student_id`` may name a student (and so a folder): :data:`SAFE_ID`, and never ``.`` or ``..``.

    Example:
        >>> [is_safe_id(s) for s in ("jane", "j.doe@x.org", "S1001", "..", "=HYPERLINK(1)", "a/b", "-1")]
        [True, True, True, False, False, False, False]
    """
    return student_id not in (".", "..") and SAFE_ID.fullmatch(student_id) is not None


def _read_roster(path: str | os.PathLike[str]) -> list[tuple[int, dict[str, str]]]:
    """The students of a roster file as (line number, nbgrader fields), in the file's order."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        kind = next((k for k, (needs, _) in ROSTER_FORMATS.items() if needs <= columns), None)
        if kind is None:
            raise CourseError(f"{path}: not a roster I know (columns {sorted(columns)}); expected one of "
                              + "; ".join(f"{k}: {sorted(n)}" for k, (n, _) in ROSTER_FORMATS.items()))
        read = ROSTER_FORMATS[kind][1]
        return [(reader.line_num, read(row)) for row in reader
                if not str(row.get("Student", "")).strip().startswith("Points")]


def import_roster(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[str]:
    """Add (or update) the students of an LMS roster file in nbgrader's gradebook; return their ids.

    A row without an id is skipped; a file with any id that is not :func:`is_safe_id` is refused whole (nothing
    imported), naming each such row.

    Example:
        >>> import_roster("canvas_gradebook_export.csv")  # doctest: +SKIP
        ['alice', 'bob']
    """
    students = [(line, fields.pop("id").strip(), fields) for line, fields in _read_roster(path)]
    unsafe = [f"line {line}: {sid!r}" for line, sid, _ in students if sid and not is_safe_id(sid)]
    if unsafe:
        raise CourseError(f"{path}: student ids must be 1-64 letters, digits or ._@+- starting with a letter or "
                          f"digit (they name folders); refused {len(unsafe)}: " + "; ".join(unsafe[:10])
                          + (" ..." if len(unsafe) > 10 else ""))
    coursedir = _coursedir(load_nbgrader_config(root))
    added = []
    with _gradebook(coursedir) as gb:
        for _, student_id, fields in students:
            if student_id:
                gb.update_or_create_student(student_id, **{k: v or None for k, v in fields.items()})
                added.append(student_id)
    return added


def export_grades(lms: str, out: str | os.PathLike[str], assignments: Sequence[str] | None = None,
                  root: str | os.PathLike[str] | None = None, roster: str | os.PathLike[str] | None = None) -> Path:
    """Write the gradebook as ``lms``'s import CSV (see :data:`EXPORTERS`); return the file.

    The file is written atomically and every cell is safe to open in a spreadsheet (see :func:`tables.cell`).

    Example:
        >>> export_grades("canvas", "grades-canvas.csv")  # doctest: +SKIP
        PosixPath('grades-canvas.csv')
    """
    if lms not in EXPORTERS:
        raise CourseError(f"unknown LMS format {lms!r}; choose one of {sorted(EXPORTERS)}")
    if roster is not None:
        import_roster(roster, root)
    coursedir = _coursedir(load_nbgrader_config(root))
    with _gradebook(coursedir) as gb:
        rows = list(scores(gb, assignments))
    if not rows:
        raise CourseError("nothing to export: no student or no assignment in the gradebook (import a roster with "
                          "--roster, grade first)")
    header, body = EXPORTERS[lms](rows)
    return write_csv(out, header, body)
