"""The nbgrader round trip of every assignment, with real nbgrader and real kernels (no mocks).

For each ``solutions/NN_*`` (found at collection time, so new lessons are picked up): the committed lessons match a
fresh generation; hidden tests appear neither in ``lessons/`` nor in feedback; one ``tlcourse grade`` batch per
assignment grades the solution (all autograded points), the untouched release (0) and a plausible wrong
submission built from ``tests/submissions/<assignment>.json`` (partial credit). The warm-up's batch also holds the
broken-submission zoo (deleted / duplicated grade cell, syntax error, endless loop, crashed kernel, foreign kernel,
invalid JSON), each graded with its reason while the batch goes on.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from support.course import (
    ASSIGNMENTS,
    REPO,
    SANDBOX_ARGS,
    SUBMISSION_DEFS,
    WARMUP,
    answer_ids,
    fill,
    grade_id,
    hidden_secrets,
    make_course_root,
    notebook_text,
    read_csv,
    released_nb,
    run_tlcourse,
    solved,
    source_nb,
    wrong_sources,
)

from tlcourse.grading import CSV_COLUMNS, strip_hidden_tests

ZOO_TIMEOUT = 240  # s per warm-up submission; CI once needed >90 s to reach cell 14 of a correct one
LOOP_TIMEOUT = 60  # s for the endless loop, graded alone: it must reach the first exercise (~10 s alone) in time
LESSON_TIMEOUT = 600

pytestmark = pytest.mark.slow



# ------------------------------------------------------------------------------------------- the broken zoo
def _without(nb: Any, gid: str) -> Any:
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells if grade_id(c) != gid]
    return out


def _duplicated(nb: Any, gid: str) -> Any:
    out = copy.deepcopy(nb)
    i = [grade_id(c) for c in out.cells].index(gid)
    twin = copy.deepcopy(out.cells[i])
    twin.id = "duplicated-cell"
    out.cells.insert(i + 1, twin)
    return out


def _kernel(nb: Any, name: str) -> Any:
    out = copy.deepcopy(nb)
    out.metadata.kernelspec = {"name": name, "display_name": name, "language": "julia"}
    return out


@dataclass
class Broken:
    build: Callable[[Any], Any | str]  # solved notebook -> broken notebook (or raw file text)
    status: str
    reason: str  # regular expression the CSV reason must match
    auto_score: float | None  # expected autograded points (None: not checked)
    timeout: int | None = None  # graded in a batch of its own with this limit per submission (None: the zoo's)


ZOO: dict[str, Broken] = {
    "deleted_grade_cell": Broken(lambda nb: _without(nb, "ex2_freeze_body_tests"), "ok",
                                 r"deleted grade cell\(s\) restored.*ex2_freeze_body_tests", 6),
    "duplicated_grade_cell": Broken(lambda nb: _duplicated(nb, "ex1_replace_head_tests"), "ok",
                                    r"ex1_replace_head_tests appears 2 times", 6),
    "syntax_error": Broken(lambda nb: fill(nb, {"ex1_replace_head": "def make_classifier(n):\n    return (n"}),
                           "ok", r"ex1_replace_head \(SyntaxError\)", 4),
    "infinite_loop": Broken(lambda nb: fill(nb, {"ex1_replace_head": "while True:\n    pass"}), "error",
                            rf"timed out after {LOOP_TIMEOUT} s \(the limit per submission\).*ex1_replace_head", None,
                            timeout=LOOP_TIMEOUT),
    "crashed_kernel": Broken(lambda nb: fill(nb, {"ex2_freeze_body": "import os\nos._exit(1)"}), "error",
                             r"kernel died while running ex2_freeze_body", None),
    "wrong_kernel": Broken(lambda nb: _kernel(nb, "julia-1.9"), "ok", r"kernel 'julia-1\.9' replaced by 'python3'", 6),
    "invalid_json": Broken(lambda nb: nbformat.writes(nb)[:400], "error", r"not a valid notebook file", None),
}


# --------------------------------------------------------------------------------------------- the batches
@dataclass
class Batch:
    assignment: str
    root: Path  # the course root the batch graded in
    submissions: Path
    rows: dict[str, dict[str, str]]
    header: list[str]
    result: subprocess.CompletedProcess





@pytest.fixture(scope="session")
def batches(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Batch]:
    """Grade an assignment's submissions once per session (one `tlcourse grade --jobs 2` batch each)."""
    cache: dict[str, Batch] = {}

    def grade(assignment: str, subs: Path, out: Path, root: Path, timeout: int) -> subprocess.CompletedProcess:
        # the endless loop must meet the per-submission limit, not nbgrader's per-cell timeout (120 s by default,
        # which would interrupt just that cell): cells may run longer than the whole submission
        limits = ["--cell-timeout", str(2 * timeout)] if assignment == WARMUP else []
        result = run_tlcourse("grade", str(subs), "--assignment", assignment, "--out", str(out), "--jobs", "2",
                              "--timeout", str(timeout), *limits, "--root", str(root), *SANDBOX_ARGS, cwd=out.parent)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def get(assignment: str) -> Batch:
        if assignment in cache:
            return cache[assignment]
        base = tmp_path_factory.mktemp(f"grade-{assignment}")
        root = make_course_root(base / "course-root")
        subs = base / "submissions"
        nb_name = f"{assignment}.ipynb"
        # three layouts: nbgrader's <student>/<assignment>/, an LMS's <student>/, a bare <student>.ipynb
        targets = {"solution": subs / "solution" / assignment / nb_name, "wrong": subs / "wrong" / nb_name,
                   "untouched": subs / "untouched.ipynb"}
        notebooks = {"solution": solved(assignment), "untouched": released_nb(assignment),
                     "wrong": fill(released_nb(assignment), wrong_sources(assignment))}
        timeout, alone = LESSON_TIMEOUT, {}
        if assignment == WARMUP:
            # a zoo entry with a limit of its own is graded alone after the batch (same course, same gradebook)
            timeout = ZOO_TIMEOUT
            for name, broken in ZOO.items():
                folder = subs if broken.timeout is None else base / f"alone-{name}"
                alone.update({} if broken.timeout is None else {name: (folder, broken.timeout)})
                targets[name] = folder / name / nb_name
                notebooks[name] = broken.build(solved(assignment))
        for name, target in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            nb = notebooks[name]
            target.write_text(nb if isinstance(nb, str) else nbformat.writes(nb), encoding="utf-8")
        out = base / "grades.csv"
        result = grade(assignment, subs, out, root, timeout)
        header, rows = read_csv(out)
        for name, (folder, limit) in alone.items():
            grade(assignment, folder, base / f"grades-{name}.csv", root, limit)
            rows[name] = read_csv(base / f"grades-{name}.csv")[1][name]
        cache[assignment] = Batch(assignment, root, subs, rows, header, result)
        return cache[assignment]

    return get


# ------------------------------------------------------------------------------------------------ release
def test_every_assignment_is_discovered() -> None:
    assert WARMUP in ASSIGNMENTS
    folders = sorted(p.name for p in (REPO / "solutions").iterdir() if re.match(r"^\d\d_", p.name))
    assert ASSIGNMENTS == folders


def test_lessons_in_sync_with_solutions() -> None:
    result = run_tlcourse("release", "--check")
    assert result.returncode == 0, f"run `tlcourse release` and commit lessons/:\n{result.stdout}{result.stderr}"
    assert "in sync" in result.stdout


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_notebooks_stripped_and_well_formed(assignment: str) -> None:
    for nb in (source_nb(assignment), released_nb(assignment)):
        assert (nb.nbformat, nb.nbformat_minor) >= (4, 5)
        assert nb.metadata.kernelspec.name == "python3"
        assert all(c.get("id") for c in nb.cells), "every cell needs an id (nbformat 4.5)"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), "outputs must be stripped"
    ids = [grade_id(c) for c in source_nb(assignment).cells if grade_id(c)]
    assert len(ids) == len(set(ids)), "grade ids must be unique"
    assert all(re.fullmatch(r"ex\d+_[a-z0-9_]+", gid) for gid in ids), f"grade ids are exN_short_name: {ids}"


def test_release_writes_lessons_without_churn(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copyfile(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    (root / "solutions").symlink_to(REPO / "solutions", target_is_directory=True)
    (root / "lessons" / "99_stale").mkdir(parents=True)  # a lesson whose solution is gone
    (root / "lessons" / "99_stale" / "99_stale.ipynb").write_text("{}")

    first = run_tlcourse("release", "--root", str(root))
    assert first.returncode == 0, first.stdout + first.stderr
    assert not (root / "lessons" / "99_stale").exists()
    for assignment in ASSIGNMENTS:
        made = root / "lessons" / assignment / f"{assignment}.ipynb"
        assert made.read_bytes() == (REPO / "lessons" / assignment / f"{assignment}.ipynb").read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in (root / "lessons").rglob("*.ipynb")}

    again = run_tlcourse("release", "--root", str(root))
    assert again.returncode == 0 and "in sync" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in (root / "lessons").rglob("*.ipynb")} == stamps, "timestamp churn"

    edited = root / "lessons" / WARMUP / f"{WARMUP}.ipynb"
    edited.write_text(edited.read_text().replace("Warm-up", "Warm up"))
    check = run_tlcourse("release", "--check", "--root", str(root))
    assert check.returncode == 1
    assert f"lessons/{WARMUP}/{WARMUP}.ipynb: differs" in check.stdout


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_hidden_tests_absent_from_lessons(assignment: str) -> None:
    secrets = hidden_secrets(assignment)
    assert secrets, f"{assignment} has no hidden tests (every exercise has some)"
    source_text = notebook_text(REPO / "solutions" / assignment / f"{assignment}.ipynb")
    lesson_text = "\n".join(notebook_text(p) for p in (REPO / "lessons" / assignment).rglob("*") if p.is_file())
    for secret in secrets:
        assert secret in source_text  # the search finds a secret where it is
        assert secret not in lesson_text, f"hidden test leaked into lessons/: {secret}"
    assert "BEGIN HIDDEN TESTS" not in lesson_text


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_wrong_submission_is_defined(assignment: str) -> None:
    sources = wrong_sources(assignment)
    unknown = set(sources) - answer_ids(source_nb(assignment))
    assert sources and not unknown, f"tests/submissions/{assignment}.json names no answer cells {sorted(unknown)}"


# ------------------------------------------------------------------------------------------------- grading
def _points(row: dict[str, str]) -> tuple[float, float]:
    return float(row["auto_score"]), float(row["auto_max_score"])


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_round_trip_scores(assignment: str, batches: Callable[[str], Batch]) -> None:
    batch = batches(assignment)
    assert batch.header[:6] == ["student_id", "assignment", "score", "max_score", "status", "reason"]
    assert tuple(batch.header) == CSV_COLUMNS
    solution, untouched, wrong = batch.rows["solution"], batch.rows["untouched"], batch.rows["wrong"]
    for row in (solution, untouched, wrong):
        assert row["status"] == "ok" and row["assignment"] == assignment, row
    got, most = _points(solution)
    assert most > 0 and got == most, f"the solution must earn every autograded point: {solution}"
    assert float(untouched["score"]) == 0 and _points(untouched)[0] == 0, untouched
    got, most = _points(wrong)
    assert 0 < got < most, f"the wrong submission should earn partial credit: {wrong}"
    assert "failed" in wrong["reason"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_never_shows_hidden_tests(assignment: str, batches: Callable[[str], Batch]) -> None:
    batch = batches(assignment)
    secrets = hidden_secrets(assignment)
    course = batch.root / "course"
    for student in ("solution", "untouched", "wrong"):
        graded = course / "autograded" / student / assignment / f"{assignment}.ipynb"
        assert all(s in notebook_text(graded) for s in secrets), \
            "nbgrader grades with the hidden tests restored (the leak this test guards against)"
        page = course / "feedback" / student / assignment / f"{assignment}.html"
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"hidden tests in {student}'s feedback: {leaked}"
        assert "BEGIN HIDDEN TESTS" not in text


def test_warmup_feedback_explains_hidden_failures(batches: Callable[[str], Batch]) -> None:
    batch = batches(WARMUP)
    page = batch.root / "course" / "feedback" / "wrong" / WARMUP / f"{WARMUP}.html"
    text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))
    assert text.count("a hidden test failed") >= 2  # ex2 and ex3 fail only hidden tests
    assert "count, do not hard-code" not in text and "earlier groups must be frozen" not in text


@pytest.mark.parametrize("name", list(ZOO))
def test_broken_submission_graded_with_reason(name: str, batches: Callable[[str], Batch]) -> None:
    batch = batches(WARMUP)
    row, broken = batch.rows[name], ZOO[name]
    assert row["status"] == broken.status, row
    assert re.search(broken.reason, row["reason"]), row["reason"]
    if broken.auto_score is not None:
        assert float(row["auto_score"]) == broken.auto_score, row
    if broken.status == "error":
        assert float(row["score"]) == 0 and float(row["max_score"]) > 0


def test_zoo_batch_keeps_good_grades(batches: Callable[[str], Batch]) -> None:
    batch = batches(WARMUP)
    assert set(batch.rows) == {"solution", "untouched", "wrong", *ZOO}
    assert _points(batch.rows["solution"]) == (6, 6)
    assert _points(batch.rows["wrong"]) == (2, 6)
    together = {n: b for n, b in ZOO.items() if b.timeout is None}
    errors = sum(b.status == "error" for b in together.values())
    assert f"{3 + len(together) - errors} graded, 0 withheld for review, {errors} error(s)" in batch.result.stdout


def test_regrade_is_idempotent_and_keeps_manual_grades(batches: Callable[[str], Batch], tmp_path: Path) -> None:
    from nbgrader.api import Gradebook

    batch = batches(WARMUP)
    db = f"sqlite:///{batch.root / 'course' / 'gradebook.db'}"
    with Gradebook(db) as gb:
        written = gb.find_grade("ex4_why_freeze_first", WARMUP, WARMUP, "solution")
        written.manual_score = 1.5
        gb.db.commit()
        wrong_before = gb.find_submission(WARMUP, "wrong").score
    again = tmp_path / "again"
    shutil.copytree(batch.submissions / "solution", again / "solution")
    out = tmp_path / "regrade.csv"
    result = run_tlcourse("grade", str(again), "--assignment", WARMUP, "--out", str(out), "--root", str(batch.root),
                          *SANDBOX_ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    _, rows = read_csv(out)
    first, second = batch.rows["solution"], rows["solution"]
    assert float(second["score"]) == float(first["score"]) + 1.5, "the manual grade was lost"
    assert {k: second[k] for k in ("auto_score", "auto_max_score", "max_score", "status")} == \
        {k: first[k] for k in ("auto_score", "auto_max_score", "max_score", "status")}
    with Gradebook(db) as gb:
        assert gb.find_grade("ex4_why_freeze_first", WARMUP, WARMUP, "solution").manual_score == 1.5
        assert gb.find_submission(WARMUP, "wrong").score == wrong_before, "another student's grade changed"


# ---------------------------------------------------------------------------------------------------- check
def _check_notebook(path: Path, failing: bool) -> None:
    cells = [
        nbformat.v4.new_markdown_cell("# a tiny lesson", id="title"),
        nbformat.v4.new_code_cell("import tlcourse\nanswer = 42", id="setup"),
        nbformat.v4.new_code_cell(
            "assert tlcourse.profile().name == 'grading'\nassert answer == 42\n### BEGIN HIDDEN TESTS\n"
            "raise AssertionError('hidden-secret-xyz')\n### END HIDDEN TESTS", id="t1",
            metadata={"nbgrader": {"grade": True, "grade_id": "ex1_profile", "locked": True, "points": 1,
                                   "schema_version": 3, "solution": False, "task": False}}),
    ]
    if failing:
        cells.append(nbformat.v4.new_code_cell(
            "assert answer == 43, 'not the answer'", id="t2",
            metadata={"nbgrader": {"grade": True, "grade_id": "ex2_wrong", "locked": True, "points": 2,
                                   "schema_version": 3, "solution": False, "task": False}}))
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                         "display_name": "Python 3"}})
    nbformat.write(nb, path)


@pytest.mark.parametrize("failing", [False, True])
def test_check_reports_points_and_exit_code(tmp_path: Path, failing: bool) -> None:
    lesson = tmp_path / "lesson.ipynb"
    _check_notebook(lesson, failing)
    result = run_tlcourse("check", str(lesson))
    assert result.returncode == (1 if failing else 0), result.stdout + result.stderr
    assert re.search(r"ex1_profile\s+1/1\s+pass", result.stdout), result.stdout
    assert "hidden-secret-xyz" not in result.stdout + result.stderr
    if failing:
        assert re.search(r"ex2_wrong\s+0/2\s+FAIL: AssertionError", result.stdout), result.stdout
        assert result.stdout.strip().splitlines()[-1].startswith("FAIL: visible tests 1/3 points")
    else:
        assert result.stdout.strip().splitlines()[-1].startswith("PASS: visible tests 1/1 points")


def test_check_runs_hidden_tests_from_the_source(tmp_path: Path) -> None:
    """With the lesson's source in the course root, `check` runs its hidden tests too (never showing their code);
    `--visible-only` runs only what Validate runs. The source is found by file name, wherever the copy lies."""
    root = tmp_path / "course"
    (root / "solutions" / "99_tiny").mkdir(parents=True)
    shutil.copyfile(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    _check_notebook(root / "solutions" / "99_tiny" / "99_tiny.ipynb", failing=False)
    copy_ = tmp_path / "downloads" / "99_tiny.ipynb"
    copy_.parent.mkdir()
    student = nbformat.read(root / "solutions" / "99_tiny" / "99_tiny.ipynb", as_version=4)
    for cell in student.cells:
        cell.source = strip_hidden_tests(cell.source)
    nbformat.write(student, copy_)

    full = run_tlcourse("check", str(copy_), "--root", str(root))
    assert full.returncode == 1, full.stdout + full.stderr
    assert re.search(r"ex1_profile\s+0/1\s+FAIL \(hidden test\): AssertionError: hidden-secret-xyz", full.stdout)
    assert "raise AssertionError" not in full.stdout + full.stderr, "hidden test code must never be shown"
    assert "visible and hidden tests" in full.stdout
    visible = run_tlcourse("check", str(copy_), "--root", str(root), "--visible-only")
    assert visible.returncode == 0, visible.stdout + visible.stderr
    assert re.search(r"ex1_profile\s+1/1\s+pass", visible.stdout)


def _check_rows(stdout: str) -> dict[str, str]:
    """``{grade id: status}`` from a ``tlcourse check`` report."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^\s+(ex\d+_\w+)\s+\S+\s+(.+)$", stdout, re.M)}


def _write_submission(assignment: str, sources: dict[str, str], folder: Path) -> Path:
    path = folder / f"{assignment}.ipynb"  # not under lessons/: check finds the source by the file name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(fill(released_nb(assignment), sources), path)
    return path


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_self_check_catches_what_only_hidden_tests_see(assignment: str, tmp_path: Path) -> None:
    """The wrong submission passes every visible test (Validate says "passed") and fails hidden ones, which a
    self-paced learner's `tlcourse check` reports — the proof that hidden tests matter."""
    path = _write_submission(assignment, wrong_sources(assignment), tmp_path / "student")
    result = run_tlcourse("check", str(path), timeout=LESSON_TIMEOUT)
    rows = _check_rows(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    visible_failures = {g: s for g, s in rows.items() if s.startswith("FAIL:")}
    assert not visible_failures, f"the wrong submission should pass the visible tests: {visible_failures}"
    assert any(s.startswith("FAIL (hidden test)") for s in rows.values()), result.stdout
    leaked = [s for s in hidden_secrets(assignment) if s in result.stdout + result.stderr]
    assert not leaked, f"check showed hidden test code: {leaked}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_visible_tests_catch_the_common_mistake(assignment: str, tmp_path: Path) -> None:
    """One common mistake per lesson (``tests/submissions/mistakes/``) fails a *visible* test: Validate catches it."""
    raw = json.loads((SUBMISSION_DEFS / "mistakes" / f"{assignment}.json").read_text(encoding="utf-8"))
    sources = {k: "\n".join(v) for k, v in raw.items() if not k.startswith("_")}
    assert sources and set(sources) <= answer_ids(source_nb(assignment))
    path = _write_submission(assignment, sources, tmp_path / "student")
    result = run_tlcourse("check", str(path), "--visible-only", timeout=LESSON_TIMEOUT)
    rows = _check_rows(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    for gid in raw["_caught_by"]:
        assert rows.get(gid, "").startswith("FAIL:"), f"{gid} should fail visibly: {rows.get(gid)}\n{result.stdout}"


# ------------------------------------------------------------------------------------------------ benchmarks
def test_benchmark_records_numbers_beside_anchors(tmp_path: Path) -> None:
    lesson = tmp_path / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import tlcourse\ntlcourse.record('breast_test_auc', 0.5, lesson='tiny')\n"
        "tlcourse.record('tiny_profile_is', tlcourse.profile().name)\n"
        "from tlcourse.stats import proportion_interval\n"
        "tlcourse.claim('half_is_small', proportion_interval(45, 100, against=0.9), expect='less',"
        " statement='a coin is below 0.9', lesson='tiny')\n"
        "tlcourse.claim('coin_beats_chance', proportion_interval(52, 100, against=0.5), statement='beats chance',"
        " lesson='tiny')")]), lesson)
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    result = subprocess.run([sys.executable, "-m", "benchmarks.run", "--profile", "cpu", str(lesson),
                             "--out-dir", str(tmp_path / "out")], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((tmp_path / "out" / "RESULTS.json").read_text())
    run = data["runs"]["cpu"]
    assert run["machine"]["cpu"] and run["machine"]["cores"] >= 1
    assert run["notebooks"]["tiny"]["status"] == "ok" and run["notebooks"]["tiny"]["seconds"] > 0
    values = {r["name"]: r["value"] for r in run["records"]}
    assert values == {"breast_test_auc": 0.5, "tiny_profile_is": "cpu", "claim_half_is_small": "held",
                      "claim_coin_beats_chance": "within noise"}
    page = (tmp_path / "out" / "RESULTS.md").read_text()
    assert re.search(r"\| breast_test_auc \| tiny \| 0\.5 \| 0\.901 \| MedMNIST", page), page
    assert re.search(r"\| tiny \| half_is_small \| ✓ held -0\.450 \[-0\.5\d\d, -0\.3\d\d\] <small>Wilson", page), page
    assert re.search(r"\| tiny \| coin_beats_chance \| ≈ within noise \+0\.020 \[-0\.", page), page
