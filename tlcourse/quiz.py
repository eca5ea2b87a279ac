"""Ungraded quick questions with instant feedback (lessons 01–06), rendered by ``jupyterquiz``.

``quiz(questions)`` checks the questions and shows them. In a notebook or on the course website (jupyterquiz
writes HTML and JavaScript outputs, which a static page keeps) the student clicks an answer and sees its
feedback at once; in a plain terminal the questions print as text. Nothing is recorded or graded.

A question is a dict in jupyterquiz's format, three types:

* ``multiple_choice`` (one right answer) and ``many_choice`` (several): ``answers`` is a list of
  ``{"answer": str, "correct": bool, "feedback": str}``;
* ``numeric``: ``answers`` is a list of ``{"type": "value", "value": x, ...}``, ``{"type": "range",
  "range": [lo, hi], ...}`` and at most one ``{"type": "default", "feedback": ...}``; ``precision`` (significant
  digits shown) is optional.

Example:
    >>> q = {"question": "Which layers of an ImageNet CNN are the most general?", "type": "multiple_choice",
    ...      "answers": [{"answer": "the first ones", "correct": True, "feedback": "Edges and colours."},
    ...                  {"answer": "the last ones", "correct": False, "feedback": "Those are task-specific."}]}
    >>> check_questions([q])
    1
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["quiz", "check_questions", "QUESTION_CHECKS"]


class QuizError(ValueError):
    """A question is malformed; the message says which one and why."""


def _need(cond: bool, where: str, why: str) -> None:
    if not cond:
        raise QuizError(f"{where}: {why}")


def _check_choice(q: Mapping[str, Any], where: str) -> None:
    answers = q.get("answers")
    _need(isinstance(answers, list) and len(answers) >= 2, where, "a choice question needs at least 2 answers")
    for i, a in enumerate(answers):
        _need(isinstance(a, Mapping) and isinstance(a.get("answer"), str), f"{where}, answer {i}",
              "each answer is a dict with an 'answer' string")
        _need(isinstance(a.get("correct"), bool), f"{where}, answer {i}", "'correct' must be True or False")
        _need(bool(a.get("feedback")), f"{where}, answer {i}", "give every answer a 'feedback' (why)")
    right = sum(a["correct"] for a in answers)
    if q["type"] == "multiple_choice":
        _need(right == 1, where, f"a multiple_choice question has exactly one correct answer, not {right}")
    else:
        _need(right >= 1, where, "a many_choice question needs at least one correct answer")


def _check_numeric(q: Mapping[str, Any], where: str) -> None:
    answers = q.get("answers")
    _need(isinstance(answers, list) and answers, where, "a numeric question needs answers")
    kinds = [a.get("type") for a in answers]
    _need(set(kinds) <= {"value", "range", "default"}, where, f"answer types are value/range/default, got {kinds}")
    _need(kinds.count("default") <= 1, where, "at most one 'default' answer")
    _need(any(a.get("correct") for a in answers if a.get("type") != "default"), where, "mark a correct answer")
    for i, a in enumerate(answers):
        if a["type"] == "range":
            lo, hi = a.get("range", (None, None))
            _need(isinstance(lo, int | float) and isinstance(hi, int | float) and lo <= hi, f"{where}, answer {i}",
                  "'range' is [low, high]")
        if a["type"] == "value":
            _need(isinstance(a.get("value"), int | float), f"{where}, answer {i}", "'value' must be a number")


#: How each question type is checked before it is shown (jupyterquiz itself fails silently in the browser).
QUESTION_CHECKS: dict[str, Callable[[Mapping[str, Any], str], None]] = {
    "multiple_choice": _check_choice,
    "many_choice": _check_choice,
    "numeric": _check_numeric,
}


def check_questions(questions: Sequence[Mapping[str, Any]]) -> int:
    """Raise :class:`QuizError` naming the first malformed question; return how many there are.

    Example:
        >>> check_questions([{"question": "2 + 2?", "type": "numeric",
        ...                   "answers": [{"type": "value", "value": 4, "correct": True, "feedback": "Yes."}]}])
        1
    """
    _need(isinstance(questions, Sequence) and len(questions) > 0, "quiz", "give a non-empty list of questions")
    for n, q in enumerate(questions, 1):
        where = f"question {n}"
        _need(isinstance(q, Mapping) and isinstance(q.get("question"), str), where, "needs a 'question' string")
        _need(q.get("type") in QUESTION_CHECKS, where, f"type must be one of {sorted(QUESTION_CHECKS)}")
        QUESTION_CHECKS[q["type"]](q, where)
    return len(questions)


def _as_text(questions: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for n, q in enumerate(questions, 1):
        lines.append(f"Q{n}. {q['question']}")
        lines += [f"   ({chr(97 + i)}) {a['answer']}" for i, a in enumerate(q["answers"]) if "answer" in a]
    return "\n".join(lines)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def quiz(questions: Sequence[Mapping[str, Any]], shuffle_answers: bool = False) -> None:
    """Show ungraded questions with instant feedback (jupyterquiz in a notebook, text elsewhere).

    Example:
        >>> quiz([{"question": "Is a frozen layer updated by the optimiser?", "type": "multiple_choice",
        ...        "answers": [{"answer": "no", "correct": True, "feedback": "requires_grad is False."},
        ...                    {"answer": "yes", "correct": False, "feedback": "It gets no gradient."}]}])
        Q1. Is a frozen layer updated by the optimiser?
           (a) no
           (b) yes
    """
    check_questions(questions)
    if not _in_notebook():
        print(_as_text(questions))
        return
    import random

    from jupyterquiz import display_quiz

    # jupyterquiz names the quiz's HTML element with Python's global `random`: after a lesson seeds it, two quizzes
    # would get the same id (and the second one breaks, in a notebook and on the website). Fresh ids from the OS,
    # and the lesson's random sequence left as it was.
    state = random.getstate()
    random.seed()
    try:
        display_quiz([dict(q) for q in questions], shuffle_answers=shuffle_answers)
    finally:
        random.setstate(state)
