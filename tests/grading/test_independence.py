"""Each exercise is graded on its own, and every correct answer earns its points (real nbgrader, real kernels).

For every lesson (found at collection time) one ``tlcourse grade`` batch holds:

* ``only_<exercise>``: that exercise's answer from the worked solution and every *other* autograded answer broken
  (alternately left as the released stub and given a syntax error). The exercise must earn exactly the points of
  its own test cell(s) and nothing else: a test cell that reads a name only another answer defines, or a head an
  earlier test cell built, fails here (the "cascading zeros" of a student who skipped one exercise).
* ``alt<k>``: the k-th *alternative correct* answer of every exercise, from
  ``tests/submissions/alternatives/<lesson>.json`` (``{answer grade id: [source, source, …]}``, at least two per
  exercise): other ways a student may rightly solve it (a tensor instead of a float, a loop instead of a helper,
  floating-point arithmetic done differently). Each must earn every autograded point.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from support.course import (
    ASSIGNMENTS,
    REPO,
    SANDBOX_ARGS,
    fill,
    grade_id,
    make_course_root,
    read_csv,
    released_nb,
    run_tlcourse,
    solved,
    source_nb,
)

pytestmark = pytest.mark.slow
ALTERNATIVES = REPO / "tests" / "submissions" / "alternatives"
MIN_ALTERNATIVES = 2
BROKEN = ("raise NotImplementedError()  # skipped", "def broken(:\n    pass  # a syntax error")


@dataclass(frozen=True)
class Exercise:
    answer: str  # the answer cell's grade id
    tests: dict[str, float]  # its test cells: grade id -> points


def exercises(assignment: str) -> list[Exercise]:
    """The autograded exercises of a lesson: each answer cell with the test cells named after it."""
    nb = source_nb(assignment)
    metas = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    answers = [m["grade_id"] for m in metas if m.get("solution") and not m.get("grade")]
    tests = {m["grade_id"]: float(m.get("points", 0)) for m in metas if m.get("grade") and not m.get("solution")}
    return [Exercise(a, {t: p for t, p in tests.items() if t.startswith(f"{a}_test")}) for a in answers]


def alternatives(assignment: str) -> dict[str, list[str]]:
    path = ALTERNATIVES / f"{assignment}.json"
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {k: ["\n".join(s) if isinstance(s, list) else s for s in v] for k, v in raw.items() if not k.startswith("_")}


def _only(assignment: str, keep: str) -> Any:
    answers = [e.answer for e in exercises(assignment)]
    broken = {a: BROKEN[i % 2] for i, a in enumerate(a for a in answers if a != keep)}
    nb = solved(assignment)
    return fill(nb, broken)


@dataclass
class IndependenceBatch:
    rows: dict[str, dict[str, str]]
    root: Path
    stdout: str


@pytest.fixture(scope="module")
def independence(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cache: dict[str, IndependenceBatch] = {}

    def get(assignment: str) -> IndependenceBatch:
        if assignment in cache:
            return cache[assignment]
        base = tmp_path_factory.mktemp(f"independence-{assignment}")
        root = make_course_root(base / "course-root")
        subs = base / "submissions"
        notebooks = {f"only_{e.answer}": _only(assignment, e.answer) for e in exercises(assignment)}
        alts = alternatives(assignment)
        for k in range(min((len(v) for v in alts.values()), default=0)):
            notebooks[f"alt{k}"] = fill(solved(assignment), {a: sources[k] for a, sources in alts.items()})
        for name, nb in notebooks.items():
            (subs / name).mkdir(parents=True)
            nbformat.write(nb, subs / name / f"{assignment}.ipynb")
        out = base / "grades.csv"
        result = run_tlcourse("grade", str(subs), "--assignment", assignment, "--out", str(out), "--jobs", "2",
                              "--no-feedback", "--timeout", "600", "--root", str(root), *SANDBOX_ARGS, cwd=base)
        assert result.returncode == 0, result.stdout + result.stderr
        cache[assignment] = IndependenceBatch(read_csv(out)[1], root, result.stdout)
        return cache[assignment]

    return get


def _earned(batch: IndependenceBatch, assignment: str, student: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{batch.root / 'course' / 'gradebook.db'}") as gb:
        sub = gb.find_submission(assignment, student)
        return {g.name: float(g.auto_score or 0) for nb in sub.notebooks for g in nb.grades
                if g.auto_score is not None}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_exercise_is_graded_on_its_own(assignment: str, independence: Any) -> None:
    batch = independence(assignment)
    every_test = {t for e in exercises(assignment) for t in e.tests}
    for ex in exercises(assignment):
        assert ex.tests, f"{assignment}: no test cell named {ex.answer}_tests"
        row = batch.rows[f"only_{ex.answer}"]
        assert row["status"] == "ok", row
        earned = _earned(batch, assignment, f"only_{ex.answer}")
        mine = {t: earned.get(t, 0.0) for t in ex.tests}
        others = {t: earned.get(t, 0.0) for t in every_test - set(ex.tests) if earned.get(t, 0.0)}
        assert mine == ex.tests, (f"{assignment}: {ex.answer} is correct but lost points when the other answers "
                                  f"were skipped or broken (a test cell depends on another answer): {mine}; "
                                  f"{row['reason']}")
        assert not others, f"{assignment}: broken answers earned points: {others}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_alternative_correct_answers_earn_every_point(assignment: str, independence: Any) -> None:
    alts = alternatives(assignment)
    answers = {e.answer for e in exercises(assignment)}
    short = {a: len(alts.get(a, [])) for a in answers if len(alts.get(a, [])) < MIN_ALTERNATIVES}
    assert not short, (f"{assignment}: add at least {MIN_ALTERNATIVES} alternative correct answers per exercise to "
                       f"tests/submissions/alternatives/{assignment}.json (have {short})")
    batch = independence(assignment)
    for k in range(MIN_ALTERNATIVES):
        row = batch.rows[f"alt{k}"]
        assert row["status"] == "ok" and row["auto_score"] == row["auto_max_score"], (k, row)


def test_alternatives_name_real_answer_cells() -> None:
    for path in sorted(ALTERNATIVES.glob("*.json")):
        answers = {e.answer for e in exercises(path.stem)}
        assert set(alternatives(path.stem)) <= answers, f"{path.name}: unknown answer cells"


def test_released_stub_is_the_broken_skip() -> None:
    """The 'skipped' answer is what the released lesson holds (a student who never touched the exercise)."""
    for assignment in ASSIGNMENTS:
        stubs = {grade_id(c): c.source for c in released_nb(assignment).cells
                 if c.metadata.get("nbgrader", {}).get("solution")}
        assert any("raise NotImplementedError()" in s for s in stubs.values()), assignment
