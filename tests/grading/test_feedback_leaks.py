"""Feedback never carries a hidden test in any form: a student's code that runs inside a test cell (their
``__repr__``, their function) can read the cell's source and print it encoded; test cells' own outputs are dropped,
their errors rebuilt from vetted parts."""

from __future__ import annotations

import base64
import codecs
import zlib
from collections.abc import Callable
from typing import Any

import nbformat
import pytest

from tlcourse.grading import HideHiddenTests
from tlcourse.grading.hidden import HIDDEN_NOTE, Guard, hidden_secrets_of

SECRET = 'assert add(40, 2) == 42, "zebra: large numbers overflow"'
VISIBLE = 'assert add(1, 1) == 2, "1 + 1 should be 2"'
TEST_SOURCE = f"{VISIBLE}\n### BEGIN HIDDEN TESTS\n{SECRET}\n### END HIDDEN TESTS"
ANSWER_SOURCE = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"

#: How a student may dress the hidden line: name -> encoder.
ENCODINGS: dict[str, Callable[[str], str]] = {
    "plain": lambda s: s,
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64-prefixed": lambda s: "x" + base64.b64encode(s.encode()).decode(),
    "urlsafe-base64": lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    "base32": lambda s: base64.b32encode(s.encode()).decode(),
    "hex": lambda s: s.encode().hex(),
    "reversed": lambda s: s[::-1],
    "rot13": lambda s: codecs.encode(s, "rot13"),
    "zlib-base64": lambda s: base64.b64encode(zlib.compress(s.encode())).decode(),
    "reversed-base64": lambda s: base64.b64encode(s.encode()).decode()[::-1],
    "one-char-per-line": lambda s: "\n".join(s),
    "upper": lambda s: s.upper(),
}


def _cell(kind: str, source: str, gid: str, outputs: list[Any], count: int) -> Any:
    meta = {"grade": kind == "test", "solution": kind == "answer", "grade_id": gid, "locked": kind == "test",
            "schema_version": 3, "task": False, **({"points": 2} if kind == "test" else {})}
    cell = nbformat.v4.new_code_cell(source, metadata={"nbgrader": meta}, execution_count=count)
    cell.outputs = outputs
    return cell


def _error(evalue: str, line: int, ename: str = "AssertionError", count: int = 2) -> Any:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[
        "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
        f"Cell \x1b[0;32mIn[{count}], line {line}\x1b[0m\n----> {line} {TEST_SOURCE.splitlines()[line - 1]}",
        f"{ename}: {evalue}"])


def _notebook(test_outputs: list[Any], answer_outputs: list[Any] | None = None) -> Any:
    return nbformat.v4.new_notebook(cells=[
        _cell("answer", ANSWER_SOURCE, "ex1_add", answer_outputs or [], 1),
        _cell("test", TEST_SOURCE, "ex1_add_tests", test_outputs, 2)])


def _leaky_outputs(payload: str) -> list[Any]:
    """The payload in every kind of output a test cell can have."""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + payload.encode()).decode()
    return [
        nbformat.v4.new_output("stream", name="stdout", text=payload + "\n"),
        nbformat.v4.new_output("stream", name="stderr", text=payload),
        nbformat.v4.new_output("display_data", data={"text/html": f"<p>{payload}</p>", "text/plain": payload}),
        nbformat.v4.new_output("display_data", data={"image/png": png, "text/html": f'<img alt="{payload}">'}),
        nbformat.v4.new_output("execute_result", data={"text/plain": repr(payload)}, execution_count=2),
        _error(payload, 1)]


def _shown(nb: Any) -> str:
    """Every string of the feedback notebook a student sees (sources and outputs)."""
    parts = []
    for cell in nb.cells:
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            parts += [out.get("text", ""), out.get("ename", ""), out.get("evalue", ""), *out.get("traceback", [])]
            parts += [v for v in out.get("data", {}).values() if isinstance(v, str)]
    return "\n".join(parts)


def _feedback(nb: Any) -> Any:
    return HideHiddenTests().preprocess(nb, {})[0]


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_test_cell_outputs_never_carry_the_hidden_test(encoding: str) -> None:
    payload = ENCODINGS[encoding](SECRET)
    shown = _shown(_feedback(_notebook(_leaky_outputs(payload))))
    assert payload not in shown and SECRET not in shown
    assert "zebra" not in shown.lower() and "large numbers" not in shown
    assert not Guard([SECRET], VISIBLE).reveals(shown), "nothing decodes to the hidden line"


def test_test_cell_keeps_only_its_error() -> None:
    nb = _feedback(_notebook(_leaky_outputs("hello")))
    outputs = nb.cells[1].outputs
    assert [o.output_type for o in outputs] == ["error"]


def test_visible_failure_message_reaches_the_student() -> None:
    nb = _feedback(_notebook([nbformat.v4.new_output("stream", name="stdout", text="debug\n"),
                              _error("1 + 1 should be 2", 1)]))
    (error,) = nb.cells[1].outputs
    assert (error.ename, error.evalue) == ("AssertionError", "1 + 1 should be 2")
    assert any(VISIBLE in line for line in error.traceback), error.traceback
    assert error.traceback[-1] == "AssertionError: 1 + 1 should be 2"


def test_visible_failure_message_is_capped() -> None:
    (error,) = _feedback(_notebook([_error("got " + "7" * 5000, 1)])).cells[1].outputs
    assert len(error.evalue) <= 500 and error.evalue.startswith("got 777")


def test_hidden_failure_shows_the_note() -> None:
    (error,) = _feedback(_notebook([_error("zebra: large numbers overflow", 3)])).cells[1].outputs
    assert error.traceback == [f"AssertionError: {HIDDEN_NOTE}"]
    assert "zebra" not in _shown(_feedback(_notebook([_error("zebra: large numbers overflow", 3)])))


def test_student_exception_names_are_not_a_channel() -> None:
    name = base64.b32encode(SECRET.encode()).decode().rstrip("=")
    (error,) = _feedback(_notebook([_error("x", 1, ename=name)])).cells[1].outputs
    assert error.ename == "Exception" and name not in _shown(_feedback(_notebook([_error("x", 1, ename=name)])))


def test_answer_cells_show_no_output_in_feedback_but_do_on_the_site() -> None:
    """A student's code ran beside the hidden tests (it could record what they passed it, or print them in an
    encoding no filter knows): feedback shows none of its output; the course's own run (the site) keeps it."""
    from tlcourse.grading import HideHiddenTests

    answer = [nbformat.v4.new_output("stream", name="stdout", text="my model has 2 outputs\n"),
              nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1)]
    nb = _feedback(_notebook([], answer))
    assert [o.get("text", "") for o in nb.cells[0].outputs] == [
        "(outputs are not shown in feedback: your own notebook has them)\n"]
    assert "BEGIN HIDDEN" not in nb.cells[1].source and SECRET not in nb.cells[1].source
    site = HideHiddenTests(keep_outputs=True).preprocess(_notebook([], answer), {})[0]
    assert site.cells[0].outputs[0].text == "my model has 2 outputs\n"
    assert site.cells[0].outputs[1].data["text/plain"] == "42"


def test_secrets_are_what_the_guard_looks_for() -> None:
    assert hidden_secrets_of(_notebook([])) == [SECRET]
