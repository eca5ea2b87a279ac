"""Hidden tests: find them in a cell, strip them for students, and keep them out of feedback."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["hidden_test_lines", "strip_hidden_tests", "hidden_secrets_of", "distinctive"]

BEGIN_HIDDEN = "BEGIN HIDDEN TESTS"
END_HIDDEN = "END HIDDEN TESTS"
HIDDEN_NOTE = "a hidden test failed. Hidden tests are not shown: re-read the task and try your code on other inputs."
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_REF = re.compile(r"Cell In\[(\d+)\], line (\d+)")


def _hidden_spans(source: str) -> list[tuple[int, int]]:
    """1-based, inclusive line spans of the hidden regions (markers included)."""
    spans, start = [], None
    for number, line in enumerate(source.splitlines(), start=1):
        if BEGIN_HIDDEN in line and start is None:
            start = number
        elif END_HIDDEN in line and start is not None:
            spans.append((start, number))
            start = None
    if start is not None:  # an unterminated region hides everything after it (nbgrader refuses such cells)
        spans.append((start, len(source.splitlines())))
    return spans


def hidden_test_lines(source: str) -> list[str]:
    """The non-empty lines inside the hidden-test regions of a cell's source, stripped (markers excluded).

    Example:
        >>> hidden_test_lines("assert f(1) == 2\\n### BEGIN HIDDEN TESTS\\nassert f(5) == 6\\n### END HIDDEN TESTS")
        ['assert f(5) == 6']
    """
    lines = source.splitlines()
    out = []
    for start, end in _hidden_spans(source):
        out += [ln.strip() for ln in lines[start - 1:end] if ln.strip() and BEGIN_HIDDEN not in ln
                and END_HIDDEN not in ln]
    return out


def strip_hidden_tests(source: str, note: str | None = "# (hidden tests run here when your work is graded)") -> str:
    """The source without its hidden-test regions; each region becomes ``note`` (or nothing when ``None``).

    Example:
        >>> strip_hidden_tests("a = 1\\n### BEGIN HIDDEN TESTS\\nassert a == 1\\n### END HIDDEN TESTS", note=None)
        'a = 1'
    """
    spans = _hidden_spans(source)
    if not spans:
        return source
    lines = source.splitlines()
    keep: list[str] = []
    for number, line in enumerate(lines, start=1):
        span = next((s for s in spans if s[0] <= number <= s[1]), None)
        if span is None:
            keep.append(line)
        elif number == span[0] and note is not None:
            keep.append(line[: len(line) - len(line.lstrip())] + note)
    return "\n".join(keep).rstrip("\n")


def _visible_text(nb: Any) -> str:
    return "\n".join(strip_hidden_tests(c.source, note=None) for c in nb.cells)


def _leaks(text: str, secrets: Sequence[str]) -> bool:
    return any(s in text for s in secrets)


def _scrub_lines(text: str, secrets: Sequence[str]) -> str:
    return "\n".join(ln for ln in text.split("\n") if not _leaks(_ANSI.sub("", ln), secrets))


def _hide_in_cell(cell: Any, secrets: Sequence[str]) -> None:
    """Remove a cell's hidden regions and any output that would reveal them (see :class:`HideHiddenTests`)."""
    spans = _hidden_spans(cell.source)
    hidden_numbers = {n for a, b in spans for n in range(a, b + 1)}
    if spans:
        cell.source = strip_hidden_tests(cell.source)
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            plain = [_ANSI.sub("", ln) for ln in out.get("traceback", [])]
            refs = [int(line) for tb in plain for count, line in _CELL_REF.findall(tb)
                    if cell.get("execution_count") in (None, int(count))]
            failed_hidden = any(n in hidden_numbers for n in refs) or (
                not refs and bool(spans) and any(_leaks(ln, secrets) for ln in plain))
            if failed_hidden:
                out.evalue = "a hidden test failed"
                out.traceback = [f"{out.ename}: {HIDDEN_NOTE}"]
            else:  # a visible test failed: keep its traceback, minus any context line quoting a hidden one
                out.traceback = [_scrub_lines(entry, [*secrets, BEGIN_HIDDEN, END_HIDDEN])
                                 for entry in out.get("traceback", [])]
                if _leaks(out.get("evalue", ""), secrets):
                    out.evalue = "(message hidden: it quotes a hidden test)"
        elif out.output_type == "stream":
            out.text = _scrub_lines(out.text, secrets)
        elif "data" in out:
            for mime, value in list(out.data.items()):
                if isinstance(value, str) and mime.startswith("text/"):
                    out.data[mime] = _scrub_lines(value, secrets)


def _make_hide_hidden_tests() -> type:
    from nbgrader.preprocessors import NbGraderPreprocessor

    class HideHiddenTests(NbGraderPreprocessor):
        """Feedback filter: drops hidden-test regions and every output that would reveal them.

        nbgrader grades with the hidden tests restored, so an autograded notebook holds them, and a failed hidden
        assert prints its own line in the traceback. This preprocessor (registered in ``nbgrader_config.py``
        after ``GetGrades`` in ``GenerateFeedback.preprocessors``) removes the regions from the source, replaces
        an error raised on a hidden line with a short note, and drops any other output line quoting a hidden line.

        Example:
            >>> import nbformat
            >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            ...     "### BEGIN HIDDEN TESTS\\nassert secret()\\n### END HIDDEN TESTS")])
            >>> "secret" in HideHiddenTests().preprocess(nb, {})[0].cells[0].source
            False
        """

        def preprocess(self, nb: Any, resources: dict) -> tuple[Any, dict]:
            secrets = hidden_secrets_of(nb)
            for cell in nb.cells:
                _hide_in_cell(cell, secrets)
            return nb, resources

    HideHiddenTests.__module__ = "tlcourse.grading"
    HideHiddenTests.__qualname__ = "HideHiddenTests"
    return HideHiddenTests




def hidden_secrets_of(nb: Any) -> list[str]:
    """The hidden-test lines of a notebook that appear nowhere in its visible text (what must never leak).

    Example:
        >>> import nbformat
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        ...     "x = 1\\n### BEGIN HIDDEN TESTS\\nassert x == 1, 'secret'\\n### END HIDDEN TESTS")])
        >>> hidden_secrets_of(nb)
        ["assert x == 1, 'secret'"]
    """
    visible = _visible_text(nb)
    return sorted({ln for c in nb.cells for ln in hidden_test_lines(c.source) if len(ln) >= 8 and ln not in visible})


def distinctive(secrets: list[str]) -> list[str]:
    """The hidden lines that identify a test wherever they appear (an assert, or a long line), not generic code
    such as ``super().__init__()`` that any Python file may hold.

    Example:
        >>> distinctive(["except ValueError:", "assert f(5) == 6", "x = load_backbone('efficientnet_lite0')"])
        ['assert f(5) == 6', "x = load_backbone('efficientnet_lite0')"]
    """
    return [s for s in secrets if "assert" in s or len(s) >= 30]
