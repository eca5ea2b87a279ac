"""Round trips with an LMS: its own grade file filled in, and feedback files laid out for its bulk upload.

**Canvas** — the gradebook export (Grades → Export) is ``Student, ID, SIS User ID, SIS Login ID, Section``, one
column per assignment headed ``Title (id)``, other columns (scores, other assignments), and a ``Points Possible``
row under the header. Its import matches students by ID/SIS ids and assignments by that header, and applies the
cells that changed. :func:`fill_roster` writes that same file back with only our assignments' cells filled; a
nbgrader assignment is mapped to its column by ``c.Tlcourse.lms_columns`` (``{"00_warmup": "Warm-up (4401)"}``)
or else by title (``00_warmup`` ~ ``Warm-up`` ~ ``00 Warm-up``).

**Moodle** — the assignment's grading worksheet (View all submissions → Download grading worksheet; uploaded with
"Upload grading worksheet", which needs "Offline grading worksheet" feedback enabled). Its upload
(``mod/assign/feedback/offline/importgradeslib.php``) finds the columns "Identifier" (the string "Participant "
followed by the participant number), "Grade" and "Last modified (grade)" by their English names, plus each
feedback plugin's text column ("Feedback comments"); every other column is ignored. We fill "Grade" only.

**Feedback archives** — Moodle's "Upload multiple feedback files in a zip" (``assignfeedback_file``'s
``importziplib.php``) splits each path part at ``_`` and takes the second piece as the participant number and the
next two as the plugin (``Full Name_12345_assignsubmission_file_/report.html``, the download's own layout), so a
name must hold no ``_``. Canvas has no feedback-file upload by student; its "Re-Upload Submissions" (assignment
page) attaches each file of a zip as a submission *comment*, matching ``name_<user id>_<attachment id>_…`` (the
first two all-digit parts of the name, ``Assignment#infer_comment_context_from_filename``) where the attachment
must be one the student submitted: we can only name files for students collected from a Canvas download (the
attachment id is in ``.collect.json``'s ``source``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tlcourse.grading.course import CourseError
from tlcourse.grading.roster import ROSTER_FORMATS, points_row, roster_students
from tlcourse.grading.scores import Score

__all__ = ["FILLERS", "ARCHIVES", "MOODLE_COLUMNS", "fill_roster", "match_columns", "normalise_title",
           "write_feedback_archive"]

#: Moodle's grading worksheet, as "Download grading worksheet" writes it (English labels; "Online text" only when
#: online text submissions are on, "ID number"/other identity fields when the site shows them).
MOODLE_COLUMNS = ("Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                  "Grade can be changed", "Last modified (submission)", "Online text", "Last modified (grade)",
                  "Feedback comments")
_CANVAS_HEADER = re.compile(r"^(?P<title>.*\S)\s*\((?P<id>\d+)\)$")


def normalise_title(text: str) -> tuple[str, int | None]:
    """A title as compared with an assignment name: (letters and digits, lower case; its leading number).

    Example:
        >>> normalise_title("00_warmup"), normalise_title("Warm-up"), normalise_title("00 Warm-up")
        (('warmup', 0), ('warmup', None), ('warmup', 0))
    """
    lead = re.match(r"^\s*(\d+)[\s_.:-]*", text)
    rest = text[lead.end():] if lead else text
    return re.sub(r"[^a-z0-9]", "", rest.lower()), int(lead[1]) if lead else None


def _title_matches(assignment: str, title: str) -> bool:
    (name, number), (other, lead) = normalise_title(assignment), normalise_title(title)
    return bool(name) and name == other and (lead is None or number is None or lead == number)


def match_columns(header: Sequence[str], assignments: Sequence[str], explicit: dict[str, str],
                  owned: Sequence[str] = ()) -> dict[str, str]:
    """nbgrader assignment -> the roster column that holds its grades: ``explicit`` first, else one title match
    (a Canvas ``Title (id)`` header, or a header equal to the name); ambiguity is refused.

    Example:
        >>> match_columns(["Student", "Warm-up (4401)", "Quiz 1 (4402)"], ["00_warmup", "01_features"], {})
        {'00_warmup': 'Warm-up (4401)'}
    """
    taken = set(owned)
    out: dict[str, str] = {}
    for name in assignments:
        if name in explicit:
            if explicit[name] not in header:
                raise CourseError(f"c.Tlcourse.lms_columns maps {name} to {explicit[name]!r}, which is not a column "
                                  f"of the roster")
            out[name] = explicit[name]
            continue
        found = [h for h in header if h not in taken and h not in explicit.values() and (
            h == name or ((m := _CANVAS_HEADER.match(h)) is not None and _title_matches(name, m["title"])))]
        if len(found) > 1:
            raise CourseError(f"{name} matches several roster columns ({', '.join(found)}): name the right one in "
                              f"nbgrader_config.py, c.Tlcourse.lms_columns = {{{name!r}: {found[0]!r}}}")
        if found:
            out[name] = found[0]
    twice = {c for c in out.values() if list(out.values()).count(c) > 1}
    if twice:
        raise CourseError(f"two assignments map to one column: {sorted(twice)}")
    return out


def _read_table(path: str | os.PathLike[str]) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise CourseError(f"{path} is empty")
    return rows[0], rows[1:]


def _set(row: list[str], index: int, value: str) -> None:
    row.extend([""] * (index + 1 - len(row)))
    row[index] = value


def _student_of(kind: str, header: list[str], row: list[str]) -> str:
    fields = dict(zip(header, row + [""] * (len(header) - len(row)), strict=False))
    return ROSTER_FORMATS[kind][1](fields)["id"].strip()


def _fill(kind: str, header: list[str], body: list[list[str]], columns: dict[str, tuple[int, int | None]],
          table: dict[tuple[str, str], Score]) -> list[str]:
    """Fill ``columns`` (assignment -> (grade column, maximum column or None)) of the student rows in place."""
    warnings = []
    for row in body:
        if kind == "canvas" and points_row(row[0] if row else ""):
            continue
        student = _student_of(kind, header, row)
        for name, (index, _) in columns.items():
            score = table.get((student, name))
            if score is None:
                continue  # a row that is not in the gradebook (Canvas's test student): as it was
            old = row[index] if index < len(row) else ""
            if score.final is None and old.strip():
                warnings.append(f"{student}: {header[index]} had {old!r} in the roster, exported empty "
                                f"({score.state}); the LMS keeps its grade unless you clear it there")
            _set(row, index, score.cell)
    return warnings


def _maxima(kind: str, header: list[str], body: list[list[str]], columns: dict[str, tuple[int, int | None]],
            maxima: dict[str, float]) -> list[str]:
    """Warnings where the LMS's points possible differ from the gradebook's maximum (no score is rescaled)."""
    out = []
    for name, (index, max_index) in columns.items():
        rows = [r for r in body if r and points_row(r[0])] if kind == "canvas" else body
        where = index if kind == "canvas" else max_index
        seen = {r[where].strip() for r in rows if where is not None and where < len(r) and r[where].strip()}
        for text in seen:
            try:
                differs = abs(float(text) - maxima[name]) > 1e-9
            except ValueError:
                continue
            if differs:
                out.append(f"{header[index]}: the LMS counts {text} points, the gradebook {maxima[name]:g}; "
                           "scores are exported as points out of the gradebook's maximum, not rescaled")
    return out


def _canvas_columns(header: list[str], names: list[str], mapping: dict[str, str]) -> dict[str, tuple[int, None]]:
    owned = [h for h in header[:5]]
    found = match_columns(header, names, mapping, owned)
    return {name: (header.index(col), None) for name, col in found.items()}


def _moodle_columns(header: list[str], names: list[str], mapping: dict[str, str]) -> dict[str, tuple[int, int]]:
    missing = [c for c in ("Identifier", "Grade", "Last modified (grade)") if c not in header]
    if missing:
        raise CourseError(f"not Moodle's grading worksheet: no column {', '.join(missing)}")
    if len(names) != 1:
        raise CourseError(f"a Moodle grading worksheet holds one assignment; name it (e.g. tlcourse export --lms "
                          f"moodle ... {names[0] if names else '00_warmup'}); graded here: {', '.join(names)}")
    return {names[0]: (header.index("Grade"), header.index("Maximum Grade") if "Maximum Grade" in header else None)}


#: LMS files we fill: lms -> (roster kind, (header, assignments, explicit mapping) -> columns).
FILLERS: dict[str, tuple[str, Callable[[list[str], list[str], dict[str, str]], dict]]] = {
    "canvas": ("canvas", _canvas_columns),
    "moodle": ("moodle", _moodle_columns),
}


def fill_roster(lms: str, roster: str | os.PathLike[str], rows: list[Score], mapping: dict[str, str],
                assignments: Sequence[str] | None = None) -> tuple[list[str], list[list[str]], list[str]]:
    """The roster file with our cells filled: (header, rows, warnings). Every other cell, the column order and
    Canvas's Points Possible row stay as they were.

    Example:
        >>> header, body, warnings = fill_roster("canvas", "canvas_export.csv", rows, {})  # doctest: +SKIP
    """
    kind, columns_of = FILLERS[lms]
    roster_students(roster)  # refuses unsafe or repeated ids
    header, body = _read_table(roster)
    if not set(ROSTER_FORMATS[kind][0]) <= set(header):
        raise CourseError(f"{roster} is not {lms}'s file (it needs the columns {sorted(ROSTER_FORMATS[kind][0])})")
    graded = sorted({s.assignment for s in rows if s.state != "ungraded"})
    names = list(assignments) if assignments else graded
    columns = columns_of(header, names, mapping)
    missing = [n for n in (assignments or []) if n not in columns]
    if missing:
        raise CourseError(f"no roster column for {', '.join(missing)}: add it to c.Tlcourse.lms_columns")
    table = {(s.student_id, s.assignment): s for s in rows}
    maxima = {s.assignment: s.max_score for s in rows}
    warnings = _fill(kind, header, body, columns, table) + _maxima(kind, header, body, columns, maxima)
    warnings += [f"{n}: no column of the roster matches it (not exported)" for n in names if n not in columns]
    return header, body, warnings


# ------------------------------------------------------------------------------------------------ feedback archives
def _moodle_name(full_name: str) -> str:
    """A name Moodle's zip import can split: no ``_`` or ``/``, no control characters.

    Example:
        >>> _moodle_name("Jane_Doe/../x")
        'Jane Doe .. x'
    """
    return re.sub(r"\s+", " ", re.sub(r"[_/\\\x00-\x1f\x7f]", " ", full_name)).strip() or "student"


def _moodle_entry(student: dict, assignment: str, html: Path) -> str | None:
    participant = str(student.get("lms_user_id") or "")
    if not participant.isdigit():
        return None
    name = _moodle_name(f"{student.get('first_name') or ''} {student.get('last_name') or ''}")
    return f"{name}_{participant}_assignsubmission_file_/{html.name}"


_CANVAS_SOURCE = re.compile(r"^(?P<name>[^_/]+)_(?:LATE_)?(?P<user>\d+)_(?P<attachment>\d+)_")


def _canvas_entry(student: dict, assignment: str, html: Path) -> str | None:
    match = _CANVAS_SOURCE.match(str(student.get("source") or ""))
    if not match or match["user"] != str(student.get("lms_user_id") or match["user"]):
        return None
    return f"{match['name']}_{match['user']}_{match['attachment']}_feedback-{html.name}"


#: Bulk-upload layouts: lms -> (student fields, assignment, feedback file) -> name in the zip, or None when the
#: student cannot be named for that LMS (no participant number; not collected from a Canvas download).
ARCHIVES: dict[str, Callable[[dict, str, Path], str | None]] = {
    "moodle": _moodle_entry,
    "canvas": _canvas_entry,
}


def _source_of(submitted: Path, student: str, assignment: str) -> str:
    sidecar = submitted / student / assignment / ".collect.json"
    try:
        return str(json.loads(sidecar.read_text(encoding="utf-8")).get("source") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def write_feedback_archive(lms: str, out: str | os.PathLike[str], assignment: str, students: list[dict],
                           feedback: Path, submitted: Path) -> tuple[Path, list[str]]:
    """Zip ``feedback/<student>/<assignment>/*.html`` in ``lms``'s bulk-upload layout (:data:`ARCHIVES`);
    return the zip and the students left out, with why. ``students``: nbgrader fields (id, names, lms_user_id).

    Example:
        >>> write_feedback_archive("moodle", "fb.zip", "00_warmup", students, feedback, submitted)  # doctest: +SKIP
        (PosixPath('fb.zip'), [])
    """
    if lms not in ARCHIVES:
        raise CourseError(f"no feedback archive for {lms!r}; choose one of {sorted(ARCHIVES)}")
    buffer, left_out = io.BytesIO(), []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for student in students:
            files = sorted((feedback / student["id"] / assignment).glob("*.html"))
            if not files:
                continue
            info = {**student, "source": _source_of(submitted, student["id"], assignment)}
            names = [ARCHIVES[lms](info, assignment, f) for f in files]
            if None in names:
                left_out.append(f"{student['id']}: " + ("no Moodle participant number (import the grading "
                                "worksheet with --roster)" if lms == "moodle" else "not collected from a Canvas "
                                "download (no attachment id to attach the comment to)"))
                continue
            for name, path in zip(names, files, strict=True):
                zf.writestr(name, path.read_bytes())
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, target)
    return target, left_out
