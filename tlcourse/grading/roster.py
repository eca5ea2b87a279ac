"""Who is in the class: an LMS's roster file (Canvas, Moodle, Gradescope or nbgrader's own) read into students,
unsafe or repeated ids refused, and imported into nbgrader's gradebook.

Read by :mod:`.export` (``--roster``), :mod:`.lms` (its file filled back) and :mod:`.collect` (who is missing).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable

from tlcourse.grading.course import CourseError, course_dir, load_nbgrader_config, open_gradebook
from tlcourse.grading.submissions import is_safe_id

__all__ = ["ROSTER_FORMATS", "import_roster", "points_row", "roster_students"]


def _split_canvas_name(name: str) -> tuple[str, str]:
    last, _, first = name.partition(",")
    return (first.strip(), last.strip()) if first else ("", name.strip())


def _moodle_student(r: dict[str, str]) -> dict[str, str]:
    """A row of Moodle's grading worksheet: the id is the "ID number" when the worksheet shows it, else the
    e-mail's local part; the participant number (``Participant 12345``) is the LMS id ``collect`` matches."""
    first, _, last = (r.get("Full name") or "").strip().rpartition(" ")
    email = (r.get("Email address") or "").strip()
    return {"id": (r.get("ID number") or "").strip() or email.split("@")[0], "first_name": first or last,
            "last_name": last if first else "", "email": email,
            "lms_user_id": re.sub(r"^Participant\s+", "", (r.get("Identifier") or "").strip())}


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
    # Moodle's assignment grading worksheet (see tlcourse.grading.lms.MOODLE_COLUMNS)
    "moodle": ({"Identifier", "Full name", "Email address"}, _moodle_student),
}


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
        return [(reader.line_num, read(row)) for row in reader if not points_row(row.get("Student"))]


def points_row(student: str | None) -> bool:
    """Canvas's row under the header ("    Points Possible") is no student.

    Example:
        >>> points_row("    Points Possible"), points_row("Smith, Jane")
        (True, False)
    """
    return str(student or "").strip().startswith("Points Possible")


def roster_students(path: str | os.PathLike[str]) -> list[tuple[int, dict[str, str]]]:
    """A roster's students as (line, fields with ``id``), unsafe or repeated ids refused (naming their lines).

    Example:
        >>> roster_students("canvas_gradebook_export.csv")  # doctest: +SKIP
        [(3, {'id': 'jane', 'first_name': 'Jane', ...}), ...]
    """
    students = [(line, {**fields, "id": fields["id"].strip()}) for line, fields in _read_roster(path)]
    unsafe = [f"line {line}: {f['id']!r}" for line, f in students if f["id"] and not is_safe_id(f["id"])]
    if unsafe:
        raise CourseError(f"{path}: student ids must be 1-64 letters, digits or ._@+- starting with a letter or "
                          f"digit (they name folders); refused {len(unsafe)}: " + "; ".join(unsafe[:10])
                          + (" ..." if len(unsafe) > 10 else ""))
    seen: dict[str, int] = {}
    for line, f in students:
        if f["id"] and f["id"] in seen:
            raise CourseError(f"{path}: line {line} and line {seen[f['id']]} are both {f['id']!r}")
        seen[f["id"]] = line
    return students


def import_roster(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[str]:
    """Add (or update) the students of an LMS roster file in nbgrader's gradebook; return their ids.

    A row without an id is skipped; a file with any id that is not :func:`is_safe_id` is refused whole (nothing
    imported), naming each such row.

    Example:
        >>> import_roster("canvas_gradebook_export.csv")  # doctest: +SKIP
        ['alice', 'bob']
    """
    students = [(line, f.pop("id"), f) for line, f in roster_students(path)]
    coursedir = course_dir(load_nbgrader_config(root))
    added = []
    with open_gradebook(coursedir) as gb:
        for _, student_id, fields in students:
            if student_id:
                gb.update_or_create_student(student_id, **{k: v or None for k, v in fields.items()})
                added.append(student_id)
    return added
