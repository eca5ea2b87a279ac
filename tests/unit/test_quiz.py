"""tlcourse.quiz: malformed questions fail loudly (jupyterquiz would fail silently in the browser)."""

from __future__ import annotations

import copy

import pytest

from tlcourse.quiz import QuizError, check_questions, quiz

CHOICE = {"question": "Which layers are most general?", "type": "multiple_choice",
          "answers": [{"answer": "early", "correct": True, "feedback": "edges"},
                      {"answer": "late", "correct": False, "feedback": "task-specific"}]}
NUMERIC = {"question": "How many outputs has an ImageNet head?", "type": "numeric",
           "answers": [{"type": "value", "value": 1000, "correct": True, "feedback": "one per class"},
                       {"type": "default", "feedback": "count the classes"}]}


def broken(change):
    q = copy.deepcopy(CHOICE)
    change(q)
    return q


@pytest.mark.parametrize("question, message", [
    (broken(lambda q: q.pop("question")), "'question' string"),
    (broken(lambda q: q.update(type="essay")), "type must be one of"),
    (broken(lambda q: q["answers"][1].update(correct=True)), "exactly one correct"),
    (broken(lambda q: q["answers"][0].pop("feedback")), "feedback"),
    (broken(lambda q: q.update(answers=q["answers"][:1])), "at least 2 answers"),
    ({**NUMERIC, "answers": [{"type": "value", "value": 3, "correct": False, "feedback": "x"}]}, "mark a correct"),
    ({**NUMERIC, "answers": [{"type": "range", "range": [5, 1], "correct": True, "feedback": "x"}]}, "[low, high]"),
])
def test_malformed_questions_are_named(question, message):
    with pytest.raises(QuizError, match=message):
        check_questions([CHOICE, question])
    with pytest.raises(QuizError, match="question 2"):
        check_questions([CHOICE, question])


def test_empty_quiz_is_an_error():
    with pytest.raises(QuizError):
        check_questions([])


def test_many_choice_allows_several_right_answers():
    q = broken(lambda q: (q.update(type="many_choice"), q["answers"][1].update(correct=True)))
    assert check_questions([q, NUMERIC]) == 2


def test_outside_a_notebook_the_questions_print(capsys):
    quiz([CHOICE, NUMERIC])
    out = capsys.readouterr().out
    assert "Q1. Which layers are most general?" in out and "(b) late" in out and "Q2." in out


def test_quizzes_after_a_seed_get_their_own_ids_and_leave_random_alone(monkeypatch):
    """jupyterquiz draws the element id from the global `random`: a lesson that seeds it (seed_everything) must not
    get the same id twice (the second quiz would not render), nor see its random sequence moved."""
    import random
    import sys

    import jupyterquiz.dynamic.display as display

    ids = []
    monkeypatch.setattr(display, "render_div", lambda div_id, *a, **k: ids.append(div_id) or "")
    monkeypatch.setattr(display, "display", lambda *a, **k: None)
    monkeypatch.setattr(sys.modules["tlcourse.quiz"], "_in_notebook", lambda: True)
    draws = []
    for _ in range(2):
        random.seed(0)
        quiz([CHOICE])
        draws.append(random.random())
    assert ids[0] != ids[1]
    assert draws[0] == draws[1]
