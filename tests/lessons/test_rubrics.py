"""Lessons that teach better: every written answer has a rubric; lessons 01–06 have quick checks and a closing
questionnaire (fast: reads the notebooks only).

* **Rubrics.** Each manually graded written answer (a markdown cell with nbgrader ``solution`` and ``grade``) is
  preceded by its prompt cell, which is released to students and shown to graders. The prompt holds a block
  ``**Rubric (N points)** — …`` followed by bullets ``- **k pt(s)** — criterion``: N equals the cell's nbgrader
  points, the bullets' points sum to N, and there are 2–3 criteria.
* **Quick checks.** Lessons 01–06 hold at least ``MIN_QUESTIONS`` ungraded questions in code cells that call
  ``tlcourse.quiz([...])`` with a literal list (parsed with ``ast``, never run), each valid per
  ``tlcourse.quiz.check_questions``, in cells without nbgrader grading metadata.
* **Closing.** Lessons 01–06 have a markdown cell with ``## Questionnaire`` (at least ``MIN_QUESTIONNAIRE``
  numbered questions) and ``## Further research``.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import nbformat
import pytest

from tlcourse.quiz import QuizError, check_questions

REPO = Path(__file__).resolve().parents[2]
LESSONS = sorted(p.name for p in (REPO / "solutions").iterdir() if re.match(r"^\d\d_", p.name))
QUIZ_LESSONS = [name for name in LESSONS if int(name[:2]) >= 1]
MIN_QUESTIONS = 3
MIN_QUESTIONNAIRE = 6

RUBRIC_HEAD = re.compile(r"^\*\*Rubric \((\d+) points?\)\*\*")
RUBRIC_ITEM = re.compile(r"^[-*]\s+\*\*(\d+) pts?\*\*\s+—\s+\S")
QUESTIONNAIRE = re.compile(r"^##\s+Questionnaire\s*$", re.MULTILINE | re.IGNORECASE)
FURTHER = re.compile(r"^##\s+Further research\s*$", re.MULTILINE | re.IGNORECASE)
NUMBERED = re.compile(r"^\d+\.\s+\S", re.MULTILINE)


def read(lesson: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)


def _nbgrader(cell: nbformat.NotebookNode) -> dict:
    return cell.metadata.get("nbgrader", {})


def written_answers(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of the manually graded written answers (markdown cells with solution and grade)."""
    return [i for i, c in enumerate(nb.cells)
            if c.cell_type == "markdown" and _nbgrader(c).get("solution") and _nbgrader(c).get("grade")]


def rubric_points(text: str) -> tuple[int, list[int]] | None:
    """(points in the header, points of each criterion) of the rubric block in `text`, or None without one."""
    lines = text.split("\n")
    heads = [(i, RUBRIC_HEAD.match(line.strip())) for i, line in enumerate(lines)]
    heads = [(i, m) for i, m in heads if m]
    if not heads:
        return None
    start, head = heads[0]
    items = []
    for line in lines[start + 1:]:
        if not line.strip():
            if items:
                break
            continue  # a blank line between the header and the list
        item = RUBRIC_ITEM.match(line.strip())
        if item:
            items.append(int(item.group(1)))
        elif items and line.startswith((" ", "\t")):
            continue  # a criterion wrapped over several lines
        else:
            break
    return int(head.group(1)), items


def rubric_problems(nb: nbformat.NotebookNode) -> list[str]:
    problems = []
    answers = written_answers(nb)
    if not answers:
        problems.append("no manually graded written answer")
    for i in answers:
        cell, gid = nb.cells[i], _nbgrader(nb.cells[i]).get("grade_id", f"cell {i}")
        points = _nbgrader(cell).get("points")
        if i == 0:
            problems.append(f"{gid}: no prompt cell before the answer")
            continue
        prompt = nb.cells[i - 1]
        if prompt.cell_type != "markdown" or _nbgrader(prompt).get("solution"):
            problems.append(f"{gid}: the cell before the answer must be a released markdown prompt")
            continue
        found = rubric_points(prompt.source)
        if found is None:
            problems.append(f"{gid}: its prompt has no '**Rubric (N points)**' block")
            continue
        header, items = found
        if not 2 <= len(items) <= 3:
            problems.append(f"{gid}: the rubric should have 2–3 criteria '- **k pt** — …', found {len(items)}")
        if header != points:
            problems.append(f"{gid}: rubric header says {header} points, the cell is worth {points}")
        if sum(items) != points:
            problems.append(f"{gid}: rubric criteria sum to {sum(items)} points, the cell is worth {points}")
    return problems


def _is_quiz_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Attribute) and f.attr == "quiz" and isinstance(f.value, ast.Name)
            and f.value.id == "tlcourse") or (isinstance(f, ast.Name) and f.id == "quiz")


def quiz_questions(nb: nbformat.NotebookNode) -> tuple[list[dict], list[str]]:
    """All questions of the notebook's tlcourse.quiz([...]) cells, and the problems met while reading them."""
    questions, problems = [], []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "quiz(" not in cell.source:
            continue
        where = f"cell {i} ({cell.get('id', '?')})"
        try:
            tree = ast.parse(cell.source)
        except SyntaxError as err:
            problems.append(f"{where}: cannot parse: {err}")
            continue
        calls = [node for node in ast.walk(tree) if _is_quiz_call(node)]
        if calls and (_nbgrader(cell).get("grade") or _nbgrader(cell).get("solution")):
            problems.append(f"{where}: a quiz cell must not be graded or a solution cell")
        for call in calls:
            try:
                found = ast.literal_eval(call.args[0])
            except (ValueError, SyntaxError, IndexError, TypeError):
                problems.append(f"{where}: tlcourse.quiz needs a literal list of questions")
                continue
            try:
                check_questions(found)
            except QuizError as err:
                problems.append(f"{where}: {err}")
                continue
            questions.extend(found)
    return questions, problems


def quiz_problems(nb: nbformat.NotebookNode) -> list[str]:
    questions, problems = quiz_questions(nb)
    if len(questions) < MIN_QUESTIONS:
        problems.append(f"{len(questions)} quick-check questions, at least {MIN_QUESTIONS} wanted")
    return problems


def closing_problems(nb: nbformat.NotebookNode) -> list[str]:
    text = [c.source for c in nb.cells if c.cell_type == "markdown"]
    problems = []
    questionnaire = [t for t in text if QUESTIONNAIRE.search(t)]
    if not questionnaire:
        problems.append("no '## Questionnaire' heading")
    else:
        body = QUESTIONNAIRE.split(questionnaire[0], maxsplit=1)[1]
        body = FURTHER.split(body, maxsplit=1)[0]
        if len(NUMBERED.findall(body)) < MIN_QUESTIONNAIRE:
            problems.append(f"the questionnaire has fewer than {MIN_QUESTIONNAIRE} numbered questions")
    if not any(FURTHER.search(t) for t in text):
        problems.append("no '## Further research' heading")
    return problems


@pytest.mark.parametrize("lesson", LESSONS)
def test_written_answers_have_rubrics(lesson: str) -> None:
    problems = rubric_problems(read(lesson))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lesson", QUIZ_LESSONS)
def test_quick_checks(lesson: str) -> None:
    problems = quiz_problems(read(lesson))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lesson", QUIZ_LESSONS)
def test_questionnaire_and_further_research(lesson: str) -> None:
    problems = closing_problems(read(lesson))
    assert not problems, "\n".join(problems)


# --- the checks are not vacuous ----------------------------------------------------------------------------------
GOOD_QUIZ = ('tlcourse.quiz([\n'
             '    {"question": "Frozen?", "type": "multiple_choice",\n'
             '     "answers": [{"answer": "yes", "correct": True, "feedback": "no gradient"},\n'
             '                 {"answer": "no", "correct": False, "feedback": "requires_grad is False"}]},\n'
             '    {"question": "Classes of ImageNet-1k?", "type": "numeric",\n'
             '     "answers": [{"type": "value", "value": 1000, "correct": True, "feedback": "one per class"}]},\n'
             '])')


def _toy_notebook() -> nbformat.NotebookNode:
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    answer = md("My answer.", id="ex9_written")
    answer.metadata["nbgrader"] = {"grade": True, "solution": True, "points": 3, "grade_id": "ex9_written",
                                   "locked": False, "task": False}
    cells = [
        md("# toy", id="title"),
        code("import tlcourse", id="setup"),
        md("**Check yourself** (ungraded):", id="q1_md"),
        code(GOOD_QUIZ, id="q1"),
        code(GOOD_QUIZ.replace("Frozen?", "Trained?"), id="q2"),
        md("### Question (written, 3 points)\n\nWhy?\n\n**Rubric (3 points)** — used by the grader; use it as a "
           "self-check:\n- **2 pts** — one thing\n  that wraps.\n- **1 pt** — another thing", id="ex9_task"),
        answer,
        md("## Questionnaire\n\n" + "\n".join(f"{n}. Why {n}?" for n in range(1, 7))
           + "\n\n## Further research\n\n* Try it.", id="questionnaire"),
    ]
    return nbformat.v4.new_notebook(cells=cells)


def _edit(nb: nbformat.NotebookNode, cell_id: str, old: str, new: str) -> nbformat.NotebookNode:
    out = copy.deepcopy(nb)
    cell = next(c for c in out.cells if c.id == cell_id)
    assert old in cell.source, old
    cell.source = cell.source.replace(old, new)
    return out


def test_the_checks_catch_what_is_missing() -> None:
    good = _toy_notebook()
    assert not rubric_problems(good) and not quiz_problems(good) and not closing_problems(good)
    assert len(quiz_questions(good)[0]) == 4

    bad_rubrics = [
        _edit(good, "ex9_task", "**Rubric (3 points)**", "**Marking**"),  # no rubric
        _edit(good, "ex9_task", "**2 pts**", "**1 pt**"),  # criteria sum to 2, not 3
        _edit(good, "ex9_task", "Rubric (3 points)", "Rubric (2 points)"),  # header disagrees with nbgrader
        _edit(good, "ex9_task", "- **1 pt** — another thing", ""),  # criteria sum to 2, one criterion
    ]
    for nb in bad_rubrics:
        assert rubric_problems(nb), nb.cells[5].source
    moved = copy.deepcopy(good)
    moved.cells.insert(6, nbformat.v4.new_markdown_cell("A figure caption.", id="caption"))  # rubric not adjacent
    assert rubric_problems(moved)

    few = copy.deepcopy(good)
    few.cells = [c for c in few.cells if c.id != "q2"]  # 2 questions left
    assert quiz_problems(few)
    assert quiz_problems(_edit(good, "q1", '"feedback": "no gradient"', '"feedback": ""'))  # no feedback
    assert quiz_problems(_edit(good, "q1", '"correct": False', '"correct": True'))  # two right answers
    assert quiz_problems(_edit(good, "q2", "tlcourse.quiz([", "tlcourse.quiz(QUESTIONS + ["))  # not a literal
    graded = copy.deepcopy(good)
    graded.cells[3].metadata["nbgrader"] = {"grade": True, "solution": False, "points": 1, "grade_id": "q1"}
    assert quiz_problems(graded)

    assert closing_problems(_edit(good, "questionnaire", "## Questionnaire", "## Questions"))
    assert closing_problems(_edit(good, "questionnaire", "## Further research", "## More"))
    assert closing_problems(_edit(good, "questionnaire", "6. Why 6?", ""))  # five questions
