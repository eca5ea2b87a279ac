"""Hidden tests: find them in a cell, strip them for students, and keep them out of feedback."""

from __future__ import annotations

import base64
import binascii
import builtins
import codecs
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["hidden_test_lines", "strip_hidden_tests", "hidden_secrets_of", "distinctive", "is_test_cell", "Guard"]

BEGIN_HIDDEN = "BEGIN HIDDEN TESTS"
END_HIDDEN = "END HIDDEN TESTS"
HIDDEN_NOTE = "a hidden test failed. Hidden tests are not shown: re-read the task and try your code on other inputs."
ANSI_ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_REF = re.compile(r"Cell In\[(\d+)\], line (\d+)")
#: The most of a visible test's error message that feedback shows.
EVALUE_CAP = 500
#: Exception names feedback shows as they are (a student's own class could be named with encoded text).
BUILTIN_EXCEPTIONS = frozenset(n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException))


def hidden_spans(source: str) -> list[tuple[int, int]]:
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
    for start, end in hidden_spans(source):
        out += [ln.strip() for ln in lines[start - 1:end] if ln.strip() and BEGIN_HIDDEN not in ln
                and END_HIDDEN not in ln]
    return out


def strip_hidden_tests(source: str, note: str | None = "# (hidden tests run here when your work is graded)") -> str:
    """The source without its hidden-test regions; each region becomes ``note`` (or nothing when ``None``).

    Example:
        >>> strip_hidden_tests("a = 1\\n### BEGIN HIDDEN TESTS\\nassert a == 1\\n### END HIDDEN TESTS", note=None)
        'a = 1'
    """
    spans = hidden_spans(source)
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

# ------------------------------------------------------------------------------------ encoded leaks
_WINDOW = 12  # a hidden line is found by any 12 non-blank characters of it (case folded) that no visible text has
_MAX_DECODED = 1 << 16


def _squash(text: str) -> str:
    return "".join(text.split()).lower()


def _inflate(data: bytes) -> list[bytes]:
    """``data`` and, where it is zlib / gzip / raw deflate, its first 64 KiB inflated."""
    out = [data]
    for wbits in (47, -15):  # 47: zlib or gzip header; -15: raw deflate
        try:
            out.append(zlib.decompressobj(wbits).decompress(data, _MAX_DECODED))
        except zlib.error:
            pass
    return out


def _runs(pattern: str, block: int, decode: Callable[[str], bytes]) -> Callable[[str], Iterator[bytes]]:
    """A decoder of every run of ``pattern`` in a text, tried at each offset within a ``block`` (a prefix must
    not hide an encoded text) and cut to whole blocks."""
    runs = re.compile(pattern, re.IGNORECASE)

    def decoder(text: str) -> Iterator[bytes]:
        for run in runs.findall(text):
            run = run.rstrip("=")
            for offset in range(min(block, len(run))):
                part = run[offset:]
                try:
                    yield decode(part[: len(part) // block * block])
                except (binascii.Error, ValueError):
                    continue
    return decoder


#: Byte encodings a leak may use: name -> text -> decoded byte strings (of runs long enough to hide a test).
DECODERS: dict[str, Callable[[str], Iterator[bytes]]] = {
    "hex": _runs(r"[0-9a-f]{16,}", 2, bytes.fromhex),
    "base64": _runs(r"[a-z0-9+/]{16,}=*", 4, base64.b64decode),
    "base64url": _runs(r"[a-z0-9_-]{16,}=*", 4, base64.urlsafe_b64decode),
    "base32": _runs(r"[a-z2-7]{16,}=*", 8, lambda r: base64.b32decode(r.upper())),
    "base85": _runs(r"\S{20,}", 5, base64.b85decode),
}
#: Text transforms a leak may use, before and after a byte encoding.
TRANSFORMS: dict[str, Callable[[str], str]] = {
    "plain": lambda t: t,
    "reversed": lambda t: t[::-1],
    "rot13": lambda t: codecs.encode(t, "rot13"),
}


class Guard:
    """Finds a hidden test in text however it is dressed: quoted, reversed, rot13, split over lines, hex, base64
    (standard, url-safe), base32 or base85, each maybe zlib / gzip compressed, and these combined two deep.

    Case is folded and blanks ignored before matching (so ``one character per line`` is found); a hidden line is
    found by any 12-character piece of it that no visible text holds, a shorter one whole. A piece under 12
    characters, or an encoding not listed, is not found: :class:`HideHiddenTests` therefore never shows test
    cells' own outputs, and uses this only on the capped message of a visible test's failure.

    Example:
        >>> guard = Guard(["assert f(5) == 6, 'hidden'"], "assert f(1) == 2")
        >>> guard.reveals(base64.b64encode(b"assert f(5) == 6, 'hidden'").decode()[::-1])
        True
        >>> guard.reveals("expected 2, got 3")
        False
    """

    def __init__(self, secrets: Sequence[str], visible: str) -> None:
        seen = _squash(visible)
        pieces = set()
        self.short: list[str] = []
        for secret in map(_squash, secrets):
            if len(secret) < _WINDOW:
                self.short += [secret] if secret not in seen else []
            pieces |= {secret[i:i + _WINDOW] for i in range(len(secret) - _WINDOW + 1)} - {""}
        self.pieces = frozenset(p for p in pieces if p not in seen)

    def _found(self, text: str) -> bool:
        text = _squash(text)
        return any(s in text for s in self.short) or any(
            text[i:i + _WINDOW] in self.pieces for i in range(len(text) - _WINDOW + 1))

    def _decoded(self, text: str) -> Iterator[str]:
        squashed = "".join(text.split())
        for data in (b for decode in DECODERS.values() for b in decode(squashed)):
            for raw in _inflate(data):
                yield raw[:_MAX_DECODED].decode("latin-1")

    def reveals(self, text: str) -> bool:
        """Whether ``text`` holds a hidden test, in the clear or in one of the encodings above."""
        if not (self.pieces or self.short):
            return False
        for outer in TRANSFORMS.values():
            for middle in (outer(text), *self._decoded(outer(text))):
                if any(self._found(inner(middle)) for inner in TRANSFORMS.values()):
                    return True
        return False


def _visible_text(nb: Any) -> str:
    return "\n".join(strip_hidden_tests(c.source, note=None) for c in nb.cells)


def _leaks(text: str, secrets: Sequence[str]) -> bool:
    return any(s in text for s in secrets)


def _scrub_lines(text: str, secrets: Sequence[str]) -> str:
    return "\n".join(ln for ln in text.split("\n") if not _leaks(ANSI_ESCAPES.sub("", ln), secrets))


def is_test_cell(cell: Any) -> bool:
    """An autograded test cell (``grade`` without ``solution``), or any cell holding a hidden-test region.

    Example:
        >>> import nbformat
        >>> is_test_cell(nbformat.v4.new_code_cell("assert f()", metadata={"nbgrader": {"grade": True}}))
        True
    """
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution") or bool(hidden_spans(cell.get("source", "")))


def _exception_name(ename: str) -> str:
    """A built-in exception's name as is; any other (a student's class may be named with encoded text): Exception.

    Example:
        >>> _exception_name("AssertionError"), _exception_name("QVNTRVJUIGYoNSk")
        ('AssertionError', 'Exception')
    """
    return ename if ename in BUILTIN_EXCEPTIONS else "Exception"


def failed_line(cell: Any, out: Any) -> int | None:
    """The line of ``cell`` (1-based, in its graded source) where ``out``'s error was raised, if the traceback
    names it (its first frame in this cell's execution)."""
    plain = [ANSI_ESCAPES.sub("", ln) for ln in out.get("traceback", [])]
    refs = [int(line) for tb in plain for count, line in _CELL_REF.findall(tb)
            if cell.get("execution_count") in (None, int(count))]
    return refs[0] if refs else None


def vetted_test_error(cell: Any, source: str, out: Any, secrets: Sequence[str], guard: Guard) -> Any:
    """A test cell's error as feedback shows it, rebuilt from vetted parts only (see :class:`HideHiddenTests`)."""
    spans = hidden_spans(source)
    line = failed_line(cell, out)
    plain = "\n".join(ANSI_ESCAPES.sub("", ln) for ln in out.get("traceback", []))
    ename = _exception_name(str(out.get("ename", "")))
    hidden = any(a <= line <= b for a, b in spans) if line is not None else bool(spans) and _leaks(plain, secrets)
    if hidden:
        return _error_output(ename, "a hidden test failed", [f"{ename}: {HIDDEN_NOTE}"])
    evalue = ANSI_ESCAPES.sub("", str(out.get("evalue", "")))[:EVALUE_CAP]
    if _leaks(evalue, [*secrets, BEGIN_HIDDEN, END_HIDDEN]) or guard.reveals(evalue):
        evalue = "(message hidden: it would reveal a hidden test)"
    lines = source.splitlines()
    where = [f"in the test line: {lines[line - 1].strip()}"] if line is not None and line <= len(lines) else []
    return _error_output(ename, evalue, [*where, f"{ename}: {evalue}"])


def _error_output(ename: str, evalue: str, traceback: list[str]) -> Any:
    """A fresh nbformat error output.

    Example:
        >>> _error_output("AssertionError", "no", ["AssertionError: no"]).output_type
        'error'
    """
    import nbformat

    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=traceback)


def _hide_in_cell(cell: Any, secrets: Sequence[str], guard: Guard) -> None:
    """Remove a cell's hidden regions and any output that would reveal them (see :class:`HideHiddenTests`)."""
    source = cell.source
    test = is_test_cell(cell)
    if hidden_spans(source):
        cell.source = strip_hidden_tests(source)
    if test and cell.get("cell_type") == "code":
        cell.outputs = [vetted_test_error(cell, source, out, secrets, guard) for out in cell.get("outputs", [])
                        if out.output_type == "error"]
        return
    cell.outputs = [_guarded(out, guard) for out in cell.get("outputs", [])]
    for out in cell.outputs:
        if out.output_type == "error":
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


GUARDED_CHARS = 200_000  # of one output, checked for an encoded hidden test (a longer output is checked in part)


def _output_text(out: Any) -> str:
    parts = [out.get("text", ""), out.get("evalue", ""), *out.get("traceback", [])]
    parts += [v for v in out.get("data", {}).values() if isinstance(v, str)]
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def _guarded(out: Any, guard: Guard) -> Any:
    """An output of a student's own cell, or a note in its place when it holds a hidden test in any form (code
    the student wrote could have read a test cell while it ran and printed it encoded in a later answer)."""
    if not guard.reveals(_output_text(out)[:GUARDED_CHARS]):
        return out
    from nbformat import NotebookNode

    return NotebookNode(output_type="stream", name="stdout",
                        text="(output hidden by the grader: it holds a hidden test)\n")


def _not_shown() -> Any:
    from nbformat import NotebookNode

    return NotebookNode(output_type="stream", name="stdout",
                        text="(outputs are not shown in feedback: your own notebook has them)\n")


def make_hide_hidden_tests() -> type:
    from nbgrader.preprocessors import NbGraderPreprocessor
    from traitlets import Bool

    class HideHiddenTests(NbGraderPreprocessor):
        """Feedback filter: drops hidden-test regions and every output that could reveal them.

        nbgrader grades with the hidden tests restored, so an autograded notebook holds them, a failed hidden
        assert prints its own line in the traceback, and a student's code called by a test (a ``__repr__``, their
        function) runs in the test cell, where it can read the cell's source and print it in any encoding. This
        preprocessor (registered in ``nbgrader_config.py`` after ``GetGrades`` in ``GenerateFeedback.preprocessors``)
        removes the regions from the source and, in a test cell (:func:`is_test_cell`), keeps no output but its
        error, rebuilt: an error raised on a hidden line becomes a short note; a visible test's failure keeps a
        built-in exception's name (others read ``Exception``), its message capped at :data:`EVALUE_CAP` characters
        (replaced when it quotes a hidden test, in the clear or encoded: :class:`Guard`) and the failing visible
        line. Pass or fail is nbgrader's grade, not an output. Every other code cell (answers, the lesson's own
        code) keeps **no output** in a notebook that holds hidden tests: all of it came from a kernel that also ran
        the hidden tests, where the student's code could record what a test passed it, read the test's source or
        rewrite an earlier output (a display handle), in ways no filter can list. The student has those outputs
        in their own notebook. ``keep_outputs=True`` (the self-paced site, executed by the course itself) keeps
        them, minus anything quoting a hidden test.

        Example:
            >>> import nbformat
            >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            ...     "### BEGIN HIDDEN TESTS\\nassert secret()\\n### END HIDDEN TESTS")])
            >>> "secret" in HideHiddenTests().preprocess(nb, {})[0].cells[0].source
            False
        """

        keep_outputs = Bool(False, help="keep the outputs of cells other than tests (only for trusted runs)").tag(
            config=True)

        def preprocess(self, nb: Any, resources: dict) -> tuple[Any, dict]:
            secrets = hidden_secrets_of(nb)
            guard = Guard(secrets, _visible_text(nb))
            drop = bool(secrets) and not self.keep_outputs
            for cell in nb.cells:
                if drop and cell.get("cell_type") == "code" and not is_test_cell(cell) and cell.get("outputs"):
                    cell.outputs = [_not_shown()]
                _hide_in_cell(cell, secrets, guard)
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
