"""Each of lessons 02–06 has a graded exercise whose reference answer is written with the field's own tools
(PyTorch, timm, transformers, peft, scikit-learn) and calls no ``tlcourse`` helper: what a student practises there
works outside this course. The check reads the answer's code (IPython-aware, as the grader's review does) and
follows every name the notebook binds to ``tlcourse`` (imports anywhere in the notebook, simple aliases)."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from tlcourse.grading.review import _import_bindings, _parse, _root

REPO = Path(__file__).resolve().parents[2]

#: lesson -> the graded exercise solved without the course's helpers (the skill the exercise teaches)
FIELD_EXERCISES = {
    "02_feature_extraction": "ex2_train_head",   # a linear head trained on stored features in plain PyTorch
    "03_fine_tuning": "ex1_fine_tune",           # the fine-tuning loop: modes, parameter groups, early stopping
    "04_domain_adaptation": "ex2_grad_reverse",  # a gradient reversal layer as a torch.autograd.Function
    "05_case_medical": "ex3_threshold",          # an operating point chosen on validation scores
    "06_case_sentiment": "ex3_add_lora",         # LoRA set up with peft
}


def _trees(source: str) -> list[ast.Module]:
    try:
        return _parse(source)
    except (SyntaxError, ValueError):
        return []


def course_names(cells: list[str]) -> set[str]:
    """Names the cells bind to ``tlcourse`` or anything imported from it, aliases (``f = freeze``) followed."""
    trees = [t for source in cells for t in _trees(source)]
    names = {name for t in trees for name, dotted in _import_bindings(t) if dotted.split(".")[0] == "tlcourse"}
    while True:
        aliases = {target.id for node in (n for t in trees for n in ast.walk(t)) if isinstance(node, ast.Assign)
                   for target in node.targets if isinstance(target, ast.Name)
                   and isinstance(_root(node.value), ast.Name) and _root(node.value).id in names}
        if aliases <= names:
            return names
        names |= aliases


def helpers_used(answer: str, notebook_cells: list[str]) -> list[str]:
    """The ``tlcourse`` names an answer reads (sorted; empty when it uses only the field's tools).

    A name the answer itself binds first (a local ``def predict``) is its own, not the course's.
    """
    names = course_names(notebook_cells)
    trees = _trees(answer)
    own = {n.name for t in trees for n in ast.walk(t) if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    own |= {a.arg for t in trees for n in ast.walk(t) if isinstance(n, ast.arguments)
            for a in [*n.posonlyargs, *n.args, *n.kwonlyargs]}
    used = {n.id for t in trees for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return sorted((used & names) - own)


def _notebook(lesson: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)


def _nbgrader(cell: nbformat.NotebookNode) -> dict:
    return cell.metadata.get("nbgrader", {})


@pytest.mark.parametrize("lesson", sorted(FIELD_EXERCISES))
def test_the_field_exercise_calls_no_course_helper(lesson: str) -> None:
    nb = _notebook(lesson)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    answers = {_nbgrader(c).get("grade_id"): c.source for c in nb.cells
               if c.cell_type == "code" and _nbgrader(c).get("solution")}
    grade_id = FIELD_EXERCISES[lesson]
    assert grade_id in answers, f"{lesson} has no code answer {grade_id}"
    assert helpers_used(answers[grade_id], code) == [], f"{lesson} {grade_id}: the reference answer uses tlcourse"


@pytest.mark.parametrize("lesson", sorted(FIELD_EXERCISES))
def test_the_field_exercise_is_graded(lesson: str) -> None:
    points = {_nbgrader(c).get("grade_id"): _nbgrader(c).get("points", 0) for c in _notebook(lesson).cells
              if _nbgrader(c).get("grade")}
    assert points.get(f"{FIELD_EXERCISES[lesson]}_tests", 0) > 0


def test_every_lesson_from_02_to_06_has_one() -> None:
    lessons = sorted(p.name for p in (REPO / "solutions").iterdir() if p.name[:2] in {"02", "03", "04", "05", "06"})
    assert lessons == sorted(FIELD_EXERCISES)


@pytest.mark.parametrize(("answer", "expected"), [
    ("def f(m):\n    return freeze(m)", ["freeze"]),                      # a helper imported in the setup
    ("def f(m):\n    return tlcourse.freeze.unfreeze(m)", ["tlcourse"]),  # reached through the package
    ("def f(m):\n    return fr(m)", ["fr"]),                              # an alias bound in another cell
    ("from tlcourse.train import fit\ndef f(m, d):\n    return fit(m, d)", ["fit"]),  # imported in the answer
    ("def f(m):\n    return torch.optim.AdamW(m.parameters())", []),
    ("def predict(x):\n    return x\ndef f(x):\n    return predict(x)", []),  # its own function, not the helper
])
def test_the_check_sees_helpers(answer: str, expected: list[str]) -> None:
    setup = ["import tlcourse\nimport torch\nfrom tlcourse.freeze import freeze\nfrom tlcourse.train import predict",
             "fr = freeze"]
    assert helpers_used(answer, [*setup, answer]) == expected
