"""Grades an instructor can sign: late work decided on the final score, and real round trips with Canvas and Moodle.

No notebook is executed: grades are written straight into nbgrader's gradebook (auto and manual scores, as
autograde and the formgrader leave them), submission times into ``submitted/`` as nbgrader, ``tlcourse collect``
or the instructor leave them. The LMS files are built from the documented column sets (Canvas's gradebook export,
Moodle's grading worksheet) and must come back with only our cells changed.
"""

from __future__ import annotations

import csv
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from support.course import make_course_root, run_tlcourse

from tlcourse.grading.course import CourseError, course_dir, load_nbgrader_config, open_gradebook
from tlcourse.grading.export import export_grades, import_roster
from tlcourse.grading.feedback import feedback_archive
from tlcourse.grading.lateness import parse_time, read_times
from tlcourse.grading.lms import match_columns
from tlcourse.grading.submissions import _folder_submission
from tlcourse.grading.tables import cell

pytestmark = pytest.mark.filterwarnings("ignore:Object of type:Warning")  # nbgrader's add_submission, not ours
WARMUP, FEATURES = "00_warmup", "01_features"
DUE = "2026-11-15 23:59:00 UTC"
NOW = datetime(2026, 12, 4, tzinfo=UTC)
# Canvas's gradebook export: identity columns, assignments as "Title (id)", computed columns, Points Possible row
CANVAS = [
    ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Warm-up (4401)", "Features (4402)",
     "Quiz 1 (4403)", "Current Score", "Final Score"],
    ["    Points Possible", "", "", "", "", "8", "10", "5", "(read only)", "(read only)"],
    ["Smith, Jane", "1001", "S1001", "jane", "Section A", "", "", "4", "80", "80"],
    ["Doe, John", "1002", "S1002", "john", "Section A", "", "", "3", "60", "60"],
    ["Absent, Ann", "1003", "S1003", "ann", "Section B", "", "", "5", "100", "100"],
    ["Bell, Ben", "1004", "S1004", "ben", "Section B", "", "", "", "", ""],
    ["Cole, Cora", "1005", "S1005", "cora", "Section A", "", "", "2", "40", "40"],
    ["Dunn, Dan", "1006", "S1006", "dan", "Section B", "", "", "", "", ""],
    ['=HYPERLINK("http://evil"), Eve', "1007", "S1007", "eve", "Section A", "", "", "1", "20", "20"],
    ["Fox, Fay", "1008", "S1008", "fay", "Section B", "", "", "", "", ""],
]
# Moodle's grading worksheet ("Download grading worksheet"), with "-" where nothing was submitted or graded
MOODLE = [
    ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade", "Grade can be changed",
     "Last modified (submission)", "Online text", "Last modified (grade)", "Feedback comments"],
    ["Participant 12345", "Jane Smith", "jane@uni.example", "Submitted for grading", "", "8.00", "Yes",
     "Sunday, 15 November 2026, 8:00 PM", "", "-", ""],
    ["Participant 12346", "John Doe", "john@uni.example", "Submitted for grading", "", "8.00", "Yes",
     "Tuesday, 17 November 2026, 9:59 AM", "", "-", ""],
    ["Participant 12347", "Ann Absent", "ann@uni.example", "No submission", "", "8.00", "Yes", "-", "", "-", ""],
]


def _write(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _root(base: Path, extra: str = "") -> Path:
    root = make_course_root(base / "root")
    config = root / "nbgrader_config.py"
    config.write_text(config.read_text() + f'\nc.Tlcourse.due_dates = {{"{WARMUP}": "{DUE}", "{FEATURES}": "{DUE}"}}\n'
                      + extra)
    return root


def _grade(root: Path, results: dict[str, tuple[float, float | None]]) -> None:
    """Write warm-up grades as autograde + formgrader leave them: (auto points of 6, manual points of 2 or None)."""
    coursedir = course_dir(load_nbgrader_config(root))
    with open_gradebook(coursedir) as gb:
        gb.update_or_create_assignment(WARMUP, duedate=datetime(2026, 11, 15, 23, 59))
        gb.update_or_create_assignment(FEATURES, duedate=datetime(2026, 11, 15, 23, 59))  # nobody graded yet
        gb.add_notebook(WARMUP, WARMUP)
        gb.add_grade_cell("tests", WARMUP, WARMUP, max_score=6, cell_type="code")
        gb.add_grade_cell("written", WARMUP, WARMUP, max_score=2, cell_type="markdown")
        gb.add_solution_cell("written", WARMUP, WARMUP)
        for student, (auto, manual) in results.items():
            gb.add_submission(WARMUP, student)
            tests = gb.find_grade("tests", WARMUP, WARMUP, student)
            tests.auto_score, tests.needs_manual_grade = auto, False
            written = gb.find_grade("written", WARMUP, WARMUP, student)
            written.manual_score, written.needs_manual_grade = manual, manual is None
        gb.db.commit()


def _submitted(root: Path, student: str, **files: str) -> Path:
    folder = root / "course" / "submitted" / student / WARMUP
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("collect", ".collect.json")).write_text(text)
    return folder


def _sidecar(file_time: str, late: bool = False, source: str = "zip extended timestamp (UTC)",
             entry: str = "") -> str:
    return json.dumps({"lms": "canvas", "late_marker": late, "file_time": file_time, "file_time_source": source,
                       "source": entry})


@pytest.fixture(scope="module")
def canvas_course(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Eight Canvas students: on time, 34 h late, absent, late with an extension, withheld, LATE without a time,
    a formula for a name, manual grading pending."""
    base = tmp_path_factory.mktemp("canvas")
    root = _root(base)
    roster = _write(base / "canvas_export.csv", CANVAS)
    import_roster(roster, root)
    _grade(root, {"jane": (6, 2), "john": (4, 2), "ben": (4, 2), "cora": (0, None), "dan": (6, 2), "eve": (3, 1),
                  "fay": (6, None)})
    _submitted(root, "jane", **{"timestamp.txt": "2026-11-15 20:00:00.000000 UTC"})
    _submitted(root, "john", **{"timestamp.txt": "2026-11-17 09:59:00.000000 UTC"})  # 34 h late
    _submitted(root, "ben", **{"timestamp.txt": "2026-11-17 09:59:00.000000 UTC"})
    _submitted(root, "dan", collect=_sidecar("1970-01-01T00:00:00+00:00", True, "zip DOS time (invalid)",
                                             f"dunndan_LATE_1006_5006_{WARMUP}.ipynb"))
    _submitted(root, "eve", collect=_sidecar("2026-11-15T10:00:00+00:00", False,
                                             entry=f"evil_1007_5007_{WARMUP}.ipynb"))
    (root / "extensions.csv").write_text(f"assignment,student_id,due\n{WARMUP},ben,+48\n")
    withheld = root / "course" / "withheld" / WARMUP
    withheld.mkdir(parents=True)
    (withheld / "cora.json").write_text(json.dumps({"student": "cora", "claimed": {f"{WARMUP}/tests": 6}}))
    return root, roster


def _export(root: Path, roster: Path, out: Path, lms: str = "canvas", **kw: object) -> list[list[str]]:
    export_grades(lms, out, root=root, roster=roster, now=NOW, **kw)
    return _read(out)


def test_canvas_round_trip_changes_only_our_cells(canvas_course: tuple[Path, Path], tmp_path: Path) -> None:
    root, roster = canvas_course
    got = _export(root, roster, tmp_path / "canvas.csv")
    assert got[:2] == CANVAS[:2], "header (Canvas's own titles, in order) and Points Possible row unchanged"
    ours = CANVAS[0].index("Warm-up (4401)")
    for before, after in zip(CANVAS[2:], got[2:], strict=True):
        assert [c for i, c in enumerate(after) if i != ours] == [cell(c) for i, c in enumerate(before) if i != ours]
    warm = {row[3]: row[ours] for row in got[2:]}
    assert warm == {"jane": "8", "john": "4.8", "ann": "0", "ben": "6", "cora": "", "dan": "", "eve": "4",
                    "fay": ""}, warm
    assert all(row[CANVAS[0].index("Features (4402)")] == "" for row in got[2:]), "an ungraded lesson stays empty"
    assert got[8][0].startswith("'="), "a formula-looking name is neutralised"


def test_plain_export_says_which_rule_applied(canvas_course: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = canvas_course
    export_grades("csv", tmp_path / "plain.csv", root=root, now=NOW)
    header, *rows = _read(tmp_path / "plain.csv")
    by = {(r[0], r[3]): dict(zip(header, r, strict=True)) for r in rows}
    john = by[(WARMUP, "john")]
    assert (john["raw_score"], john["score"]) == ("6", "4.8"), "the penalty applies to auto + manual points"
    assert "2 started days × 10 % = −20 %" in john["late rule"] and john["time source"] == "timestamp.txt"
    assert by[(WARMUP, "ben")]["late rule"].startswith("on time (extension to 2026-11-17 23:59")
    assert by[(WARMUP, "jane")]["late rule"] == "on time"
    assert by[(WARMUP, "ann")]["late rule"] == "no submission" and by[(WARMUP, "ann")]["score"] == "0"
    dan = by[(WARMUP, "dan")]
    assert dan["score"] == "" and "LATE by an unknown amount" in dan["late rule"], dan
    assert by[(WARMUP, "cora")]["state"].startswith("withheld") and by[(WARMUP, "fay")]["state"] == \
        "awaiting manual grading"
    assert by[(WARMUP, "eve")]["time source"].startswith("file time"), "collect's file time when nothing better"
    assert by[(FEATURES, "jane")]["score"] == "" and by[(FEATURES, "jane")]["state"] == "not graded yet"


def test_withheld_exports_once_its_tests_are_graded_by_hand(tmp_path: Path) -> None:
    root = _root(tmp_path)
    roster = _write(tmp_path / "roster.csv", CANVAS[:3] + CANVAS[6:7])
    import_roster(roster, root)
    _grade(root, {"jane": (6, 2), "cora": (0, 2)})
    withheld = root / "course" / "withheld" / WARMUP
    withheld.mkdir(parents=True)
    (withheld / "cora.json").write_text(json.dumps({"student": "cora", "claimed": {f"{WARMUP}/tests": 6}}))
    ours = CANVAS[0].index("Warm-up (4401)")
    assert _export(root, roster, tmp_path / "a.csv")[3][ours] == ""
    with open_gradebook(course_dir(load_nbgrader_config(root))) as gb:
        gb.find_grade("tests", WARMUP, WARMUP, "cora").manual_score = 5
        gb.db.commit()
    assert _export(root, roster, tmp_path / "b.csv")[3][ours] == "7"


def test_times_csv_beats_the_file_time_and_naive_times_are_refused(canvas_course: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    root, roster = canvas_course
    times = _write(tmp_path / "times.csv", [["ID", "submitted_at"], ["1007", "2026-11-16T12:00:00Z"]])
    got = _export(root, roster, tmp_path / "t.csv", times=times)
    assert got[8][CANVAS[0].index("Warm-up (4401)")] == "3.6", "eve: 13 h late by Canvas's time -> -10 %"
    naive = _write(tmp_path / "naive.csv", [["ID", "submitted_at"], ["1007", "2026-11-16 12:00"]])
    with pytest.raises(CourseError, match="has no time zone"):
        _export(root, roster, tmp_path / "n.csv", times=naive)
    assert read_times(naive, zone="Europe/Paris")[("lms", "1007")] == parse_time("2026-11-16 11:00 UTC")


def test_naive_due_dates_and_extensions_are_refused(tmp_path: Path) -> None:
    root = _root(tmp_path, f'c.Tlcourse.due_dates["{WARMUP}"] = "2026-11-15 23:59"\n')
    with pytest.raises(CourseError, match="has no time zone"):
        export_grades("csv", tmp_path / "x.csv", root=root)
    root = _root(tmp_path / "b")
    (root / "extensions.csv").write_text(f"assignment,student_id,due\n{WARMUP},jane,2026-11-20 12:00\n")
    with pytest.raises(CourseError, match="extensions.csv line 2: .* has no time zone"):
        export_grades("csv", tmp_path / "y.csv", root=root)


def test_unsafe_roster_ids_are_refused(tmp_path: Path) -> None:
    root = _root(tmp_path)
    bad = _write(tmp_path / "bad.csv", CANVAS[:3] + [["Evil, E", "1009", "S1009", "../../etc", "A", "", "", "",
                                                      "", ""]])
    with pytest.raises(CourseError, match="refused 1: line 4: '../../etc'"):
        export_grades("canvas", tmp_path / "x.csv", root=root, roster=bad)


def test_column_mapping_explicit_title_and_ambiguous() -> None:
    header = ["Student", "ID", "Warm-up (4401)", "00 Warm-up (4409)", "Features (4402)"]
    assert match_columns(header, [FEATURES], {}) == {FEATURES: "Features (4402)"}
    assert match_columns(header, [WARMUP], {WARMUP: "Warm-up (4401)"}) == {WARMUP: "Warm-up (4401)"}
    with pytest.raises(CourseError, match="several roster columns.*lms_columns"):
        match_columns(header, [WARMUP], {})
    with pytest.raises(CourseError, match="not a column"):
        match_columns(header, [WARMUP], {WARMUP: "Warm-up (9999)"})


def test_moodle_worksheet_round_trip(tmp_path: Path) -> None:
    root = _root(tmp_path)
    sheet = _write(tmp_path / "worksheet.csv", MOODLE)
    assert import_roster(sheet, root) == ["jane", "john", "ann"]
    _grade(root, {"jane": (6, 2), "john": (4, 2)})
    _submitted(root, "jane", **{"timestamp.txt": "2026-11-15 20:00:00.000000 UTC"})
    _submitted(root, "john", **{"timestamp.txt": "2026-11-17 09:59:00.000000 UTC"})
    got = _export(root, sheet, tmp_path / "moodle.csv", lms="moodle", assignments=[WARMUP])
    grade = MOODLE[0].index("Grade")
    assert got[0] == MOODLE[0]
    assert [r[grade] for r in got[1:]] == ["8", "4.8", "0"]
    for before, after in zip(MOODLE[1:], got[1:], strict=True):
        assert [c for i, c in enumerate(after) if i != grade] == [cell(c) for i, c in enumerate(before) if i != grade]
    with pytest.raises(CourseError, match="one assignment"):
        export_grades("moodle", tmp_path / "x.csv", [WARMUP, FEATURES], root=root, roster=sheet, now=NOW)
    _feedback(root, "jane", "john")
    path, left = feedback_archive("moodle", tmp_path / "moodle.zip", WARMUP, root=root)
    assert sorted(zipfile.ZipFile(path).namelist()) == [f"Jane Smith_12345_assignsubmission_file_/{WARMUP}.html",
                                                        f"John Doe_12346_assignsubmission_file_/{WARMUP}.html"]
    assert left == []


def _feedback(root: Path, *students: str) -> None:
    for student in students:
        folder = root / "course" / "feedback" / student / WARMUP
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{WARMUP}.html").write_text(f"<p>{student}</p>")


def test_canvas_feedback_archive(canvas_course: tuple[Path, Path], tmp_path: Path) -> None:
    """Canvas's Re-Upload Submissions needs the user id and the submitted attachment's id: collected students only."""
    root, _ = canvas_course
    _feedback(root, "eve", "jane", "cora")
    path, left = feedback_archive("canvas", tmp_path / "canvas.zip", WARMUP, root=root)
    assert zipfile.ZipFile(path).namelist() == [f"evil_1007_5007_feedback-{WARMUP}.html"]
    assert any(line.startswith("jane: not collected from a Canvas download") for line in left)
    assert "cora: withheld for review" in left


def test_grade_reads_collects_file_time(tmp_path: Path) -> None:
    folder = tmp_path / "sub" / "dan" / WARMUP
    folder.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), folder / f"{WARMUP}.ipynb")
    (folder / ".collect.json").write_text(_sidecar("2026-11-17T10:59:00+01:00"))
    sub = _folder_submission(tmp_path / "sub" / "dan", WARMUP, [WARMUP])
    assert sub.timestamp == "2026-11-17 09:59:00.000000 UTC", sub.notes
    (folder / "timestamp.txt").write_text("2026-11-15 20:00:00 UTC")
    assert _folder_submission(tmp_path / "sub" / "dan", WARMUP, [WARMUP]).timestamp == "2026-11-15 20:00:00 UTC"


def test_cli_canvas_export(canvas_course: tuple[Path, Path], tmp_path: Path) -> None:
    root, roster = canvas_course
    out = tmp_path / "cli.csv"
    result = run_tlcourse("export", "--lms", "canvas", "--roster", str(roster), "--out", str(out), "--root",
                          str(root))
    assert result.returncode == 0, result.stderr
    assert _read(out)[3][CANVAS[0].index("Warm-up (4401)")] == "4.8"
