"""Grades reach the LMS: roster in, Canvas / Gradescope / plain CSV out, late penalties, LMS bulk downloads in.

Real nbgrader, real gradebook: one late submission and one on time are graded (in the sandbox where there is one),
a roster with a student who handed nothing in is imported, and every export format is read back.
"""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest
from support.course import WARMUP, make_course_root, run_tlcourse, solved

from tlcourse.grading.export import EXPORTERS
from tlcourse.grading.late import PercentPerDay
from tlcourse.grading.lms import FILLERS
from tlcourse.grading.sandbox import sandbox_problem

DUE = "2026-11-15 23:59:00 UTC"  # passed: a student without a submission scores 0
CANVAS_ROSTER = """Student,ID,SIS User ID,SIS Login ID,Section,00_warmup
    Points Possible,,,,,8
"Smith, Jane",1001,S1001,jane,Section A,
"Doe, John",1002,S1002,john,Section A,
"Absent, Ann",1003,S1003,ann,Section B,
"""


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course root whose warm-up has a due date; jane submits on time, john two and a half days late."""
    base = tmp_path_factory.mktemp("lms")
    root = make_course_root(base / "root")
    config = root / "nbgrader_config.py"
    config.write_text(config.read_text() + f'\nc.Tlcourse.due_dates = {{"{WARMUP}": "{DUE}"}}\n')
    (base / "roster.csv").write_text(CANVAS_ROSTER)
    imported = run_tlcourse("export", "--lms", "csv", "--out", str(base / "before.csv"), "--roster",
                            str(base / "roster.csv"), "--root", str(root), cwd=base)
    assert "nothing to export" in imported.stderr  # the roster is in, but nothing is graded yet
    subs = base / "subs"
    for student, when in (("jane", "2026-11-15 20:00:00 UTC"), ("john", "2026-11-18 11:00:00 UTC")):
        (subs / student).mkdir(parents=True)
        nbformat.write(solved(WARMUP), subs / student / f"{WARMUP}.ipynb")
        (subs / student / "timestamp.txt").write_text(when)
    args = ["grade", str(subs), "--assignment", WARMUP, "--out", str(base / "grades.csv"), "--root", str(root),
            "--no-feedback", *(["--no-sandbox"] if sandbox_problem() else [])]
    result = run_tlcourse(*args, cwd=base)
    assert result.returncode == 0, result.stdout + result.stderr
    pending = run_tlcourse("export", "--lms", "csv", "--out", str(base / "pending.csv"), "--root", str(root))
    assert pending.returncode == 0, pending.stderr
    header, *rows = _read(base / "pending.csv")
    jane = next(dict(zip(header, r, strict=True)) for r in rows if r[header.index("student_id")] == "jane")
    assert (jane["score"], jane["state"]) == ("", "awaiting manual grading"), "the written answer is not graded yet"
    _grade_by_hand(root, {"jane": 2.0, "john": 1.0})
    return root


def _grade_by_hand(root: Path, points: dict[str, float]) -> None:
    """What the formgrader does: a manual score for the written answer (ex4_why_freeze_first, 2 points)."""
    from tlcourse.grading.course import course_dir, load_nbgrader_config, open_gradebook

    with open_gradebook(course_dir(load_nbgrader_config(root))) as gb:
        for student, score in points.items():
            grade = gb.find_grade("ex4_why_freeze_first", WARMUP, WARMUP, student)
            grade.manual_score, grade.needs_manual_grade = score, False
        gb.db.commit()


@pytest.mark.slow
def test_plain_csv_shows_time_penalty_and_score(graded: Path, tmp_path: Path) -> None:
    out = tmp_path / "plain.csv"
    assert run_tlcourse("export", "--lms", "csv", "--out", str(out), "--root", str(graded)).returncode == 0
    header, *rows = _read(out)
    by_id = {r[header.index("student_id")]: dict(zip(header, r, strict=True)) for r in rows}
    assert set(by_id) == {"jane", "john", "ann"}, "every roster student gets a row"
    assert (by_id["jane"]["raw_score"], by_id["jane"]["late_submission_penalty"], by_id["jane"]["score"]) == \
        ("8", "0", "8")
    # john: 2 days 11 h late -> 3 started days -> 30 % of his final 7 points (6 automatic + 1 by hand)
    assert by_id["john"]["late_submission_penalty"] == "2.1" and by_id["john"]["score"] == "4.9", by_id["john"]
    assert "3 started days × 10 % = −30 %" in by_id["john"]["late rule"]
    assert by_id["john"]["timestamp"].startswith("2026-11-18 11:00")
    assert (by_id["ann"]["timestamp"], by_id["ann"]["score"]) == ("", "0")


@pytest.mark.slow
def test_canvas_import_file(graded: Path, tmp_path: Path) -> None:
    out = tmp_path / "canvas.csv"
    assert run_tlcourse("export", "--lms", "canvas", "--out", str(out), "--root", str(graded)).returncode == 0
    header, points, *rows = _read(out)
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", WARMUP]
    assert points[0].strip() == "Points Possible" and points[-1] == "8"
    table = {r[3]: r for r in rows}
    assert table["jane"][:2] == ["Smith, Jane", "1001"] and table["jane"][-1] == "8"
    assert table["john"][-1] == "4.9" and table["ann"][-1] == "0"


@pytest.mark.slow
def test_gradescope_file(graded: Path, tmp_path: Path) -> None:
    out = tmp_path / "gradescope.csv"
    assert run_tlcourse("export", "--lms", "gradescope", "--out", str(out), "--root", str(graded)).returncode == 0
    header, *rows = _read(out)
    assert header == ["First Name", "Last Name", "SID", "Email", "Total Score", "Max Points", "Status",
                      "Submission Time", "Lateness (H:M:S)"]
    table = {r[2]: r for r in rows}
    assert table["john"][4:7] == ["4.9", "8", "Graded"] and table["john"][8] == "59:01:00"
    assert table["ann"][4:7] == ["0", "8", "Missing"] and table["jane"][8] == "0:00:00"


@pytest.mark.slow
def test_collect_sorts_a_canvas_download(graded: Path, tmp_path: Path) -> None:
    """Canvas names files name_userid_submissionid_file.ipynb; the roster maps user ids to students."""
    flat = tmp_path / "download"
    flat.mkdir()
    nb = nbformat.writes(solved(WARMUP))
    (flat / f"smithjane_1001_5001_{WARMUP}.ipynb").write_text(nb)
    (flat / f"doejohn_LATE_1002_5002_{WARMUP}-1.ipynb").write_text(nb)
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in flat.iterdir():
            zf.write(path, path.name)
    shutil.rmtree(graded / "course" / "submitted", ignore_errors=True)
    result = run_tlcourse("collect", str(archive), "--assignment", WARMUP, "--lms", "canvas", "--root", str(graded))
    assert result.returncode == 1 and "ann" in result.stdout, "ann, on the roster, handed nothing in"
    result = run_tlcourse("collect", str(archive), "--assignment", WARMUP, "--lms", "canvas", "--root", str(graded),
                          "--excuse", "ann")
    assert result.returncode == 0, result.stdout + result.stderr
    for student in ("jane", "john"):
        assert (graded / "course" / "submitted" / student / WARMUP / f"{WARMUP}.ipynb").is_file(), result.stdout
    wrong = run_tlcourse("collect", str(flat), "--assignment", WARMUP, "--lms", "moodle", "--root", str(graded))
    assert wrong.returncode == 2 and "no file" in wrong.stderr


def test_late_penalty_per_started_day() -> None:
    plugin = PercentPerDay(percent_per_day=10)
    assert plugin.late_submission_penalty("a", 6.0, 0) is None
    assert plugin.late_submission_penalty("a", 6.0, 1) == pytest.approx(0.6)
    assert plugin.late_submission_penalty("a", 6.0, 86400 * 2 + 1) == pytest.approx(1.8)
    assert plugin.late_submission_penalty("a", 6.0, 86400 * 30) == 6.0, "never more than the score"


def test_every_lms_format_is_registered() -> None:
    assert set(EXPORTERS) == {"csv", "canvas", "gradescope"}
    assert set(FILLERS) == {"canvas", "moodle"}, "the LMS files we fill in (--roster)"
