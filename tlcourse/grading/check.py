"""``tlcourse check``: a lesson run with its tests, each exercise scored, for students and self-paced learners.

Visible and hidden tests run when the lesson's source notebook is in the course root (a self-paced learner's
checkout), visible tests only in a class or with ``visible_only``. Each test cell's hidden part runs as a cell of
its own, so one run tells a visible failure from a hidden one; failures show the exception and its message, never
the hidden code.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlcourse.config import environ
from tlcourse.grading.course import (
    CourseError,
    ensure_tools_on_path,
    find_course_root,
    load_nbgrader_config,
    read_notebook,
)
from tlcourse.grading.gradebook import cell_label
from tlcourse.grading.hidden import ANSI_ESCAPES, BEGIN_HIDDEN, END_HIDDEN, hidden_spans, strip_hidden_tests

__all__ = ["CheckResult", "check_notebook", "find_source_notebook"]


_HIDDEN_PART = "tlcourse_hidden_of"  # metadata of the cell ``check`` adds to run an exercise's hidden tests


@dataclass
class CheckResult:
    """What ``tlcourse check`` found: per exercise ``(grade id, points, max points, status)``, and other errors.

    Example:
        >>> CheckResult("x.ipynb", [("ex1_a", 0.0, 2.0, "FAIL: NotImplementedError")], [], "").passed
        False
    """

    notebook: str
    exercises: list[tuple[str, float, float, str]]
    errors: list[str]  # errors outside the test cells
    problem: str  # the notebook could not run at all ("" when it ran)
    seconds: float = 0.0
    tests: str = "visible tests"  # which tests ran: "visible and hidden tests" when the source was found
    source: str = ""  # the source notebook the hidden tests came from

    @property
    def passed(self) -> bool:
        """True when the notebook ran, every test that ran passed and no other cell failed."""
        return not self.problem and not self.errors and not any(s.startswith("FAIL") for *_, s in self.exercises)

    def report(self) -> str:
        """A readable table of the result."""
        lines = [f"{self.notebook} — grading profile, {self.tests}, {self.seconds:.1f} s"]
        if self.source:
            lines.append(f"  hidden tests from {self.source} (their code is not shown)")
        width = max([len(e[0]) for e in self.exercises] + [10])
        for gid, got, most, status in self.exercises:
            shown = f"{got:g}/{most:g}" if not status.startswith("written") else f"-/{most:g}"
            lines.append(f"  {gid:<{width}}  {shown:>7}  {status}")
        lines += [f"  error in {e}" for e in self.errors]
        if self.problem:
            lines.append(f"  could not finish: {self.problem}")
        tests = [e for e in self.exercises if not e[3].startswith("written")]
        got = sum(e[1] for e in tests)
        most = sum(e[2] for e in tests)
        verdict = "PASS" if self.passed else "FAIL"
        tail = "" if self.source else "; hidden tests run only when your instructor grades"
        lines.append(f"{verdict}: {self.tests} {got:g}/{most:g} points "
                     f"({sum(e[3] == 'pass' for e in tests)}/{len(tests)} exercises pass){tail}")
        return "\n".join(lines)


def find_source_notebook(name: str, root: str | os.PathLike[str] | None = None,
                         near: str | os.PathLike[str] | None = None) -> Path | None:
    """The source notebook (with hidden tests) named ``name`` in the course root, or ``None`` (e.g. in a class).

    The root is ``root``, else the nearest course folder above ``near``, the current folder, or this checkout.

    Example:
        >>> find_source_notebook("00_warmup.ipynb").parent.name
        '00_warmup'
    """
    starts = [root] if root else [near, None]
    for start in starts:
        try:
            course = find_course_root(start)
        except CourseError:
            continue
        folder = load_nbgrader_config(course).CourseDirectory.source_directory or "solutions"
        found = sorted((course / folder).glob(f"*/{Path(name).name}"))
        if found:
            return found[0]
    return None


def _hidden_part(source: str) -> str:
    """The code inside a cell's hidden-test regions, markers excluded, dedented (runnable on its own)."""
    import textwrap

    lines = source.splitlines()
    body = [ln for start, end in hidden_spans(source) for ln in lines[start - 1:end]
            if BEGIN_HIDDEN not in ln and END_HIDDEN not in ln]
    return textwrap.dedent("\n".join(body)).strip()


def _with_tests(nb: Any, source_nb: Any | None) -> Any:
    """The notebook to run: each test cell's visible part (from the source when there is one), then, as a cell of
    its own, its hidden part — so one run tells visible from hidden failures."""
    import nbformat

    tests = {c.metadata["nbgrader"]["grade_id"]: c.source for c in (source_nb.cells if source_nb else [])
             if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")}
    cells = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        full = tests.get(meta.get("grade_id"), cell.source) if meta.get("grade") else cell.source
        cell.source = strip_hidden_tests(full)
        cells.append(cell)
        hidden = _hidden_part(full) if source_nb is not None and meta.get("grade") else ""
        if hidden:
            cells.append(nbformat.v4.new_code_cell(hidden, metadata={_HIDDEN_PART: meta["grade_id"]}))
    nb.cells = cells
    return nb


def _error_text(cell: Any) -> str:
    """``AssertionError: message`` of a failed cell (never its traceback, which would quote hidden code)."""
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            message = ANSI_ESCAPES.sub("", str(out.get("evalue", ""))).strip().splitlines()
            return f"{out.ename}: {message[0][:200]}" if message else out.ename
        if out.output_type == "stream" and out.name == "stderr":
            return "output on stderr"
    return "partial credit"


def _exercise_status(cell: Any, hidden: Any | None) -> tuple[float, float, str]:
    from nbgrader.utils import determine_grade

    most = float(cell.metadata["nbgrader"].get("points", 0))
    if cell.get("execution_count") is None:
        return 0.0, most, "FAIL: did not run"
    got, _ = determine_grade(cell)
    if float(got or 0) < most:
        return float(got or 0), most, f"FAIL: {_error_text(cell)}"
    if hidden is not None and (hidden.get("execution_count") is None or _failed(hidden)):
        return 0.0, most, f"FAIL (hidden test): {_error_text(hidden) if _failed(hidden) else 'did not run'}"
    return most, most, "pass"


def _failed(cell: Any) -> bool:
    return any(o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr")
               for o in cell.get("outputs", []))


def _check_config(root: str | os.PathLike[str] | None, cell_timeout: int | None) -> Any:
    try:
        cfg = load_nbgrader_config(root)
    except CourseError:
        from traitlets.config import Config

        cfg = Config()
        cfg.Execute.timeout, cfg.Execute.kernel_name = 120, "python3"
    if cell_timeout:
        cfg.Execute.timeout = int(cell_timeout)
    return cfg


def _run_for_check(nb: Any, folder: Path, cfg: Any, profile: str) -> str:
    """Execute in place; return "" or why the run stopped."""
    from nbclient.exceptions import DeadKernelError
    from nbgrader.preprocessors import Execute

    ensure_tools_on_path()
    with environ(NBGRADER_EXECUTION="validate", TLCOURSE_PROFILE=profile):
        try:
            Execute(config=cfg).preprocess(nb, {"metadata": {"path": str(folder.resolve())}})
        except DeadKernelError:
            return "the kernel died (os._exit, a crash, or out of memory)"
        except Exception as exc:
            return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
    return ""


def check_notebook(path: str | os.PathLike[str], profile: str = "grading", cell_timeout: int | None = None,
                   root: str | os.PathLike[str] | None = None, visible_only: bool = False) -> CheckResult:
    """Run a lesson and score each exercise: visible *and* hidden tests when the lesson's source notebook is in the
    course root (a self-paced learner's checkout), visible tests only otherwise or with ``visible_only``.

    Failures report the exception and its message, never the hidden tests' code.

    Example:
        >>> check_notebook("lessons/00_warmup/00_warmup.ipynb").passed   # untouched: the stubs fail  # doctest: +SKIP
        False
    """
    import nbformat
    from nbgrader.utils import is_grade, is_solution

    file = Path(path)
    if not file.is_file():
        raise CourseError(f"{file} does not exist")
    nb = read_notebook(file, str(file))
    source = None if visible_only else find_source_notebook(file.name, root, near=file.parent)
    nb = _with_tests(nb, nbformat.read(source, as_version=4) if source else None)
    started = time.monotonic()
    problem = _run_for_check(nb, file.parent, _check_config(root, cell_timeout), profile)
    hidden = {c.metadata[_HIDDEN_PART]: c for c in nb.cells if _HIDDEN_PART in c.metadata}
    exercises, errors = [], []
    for index, cell in enumerate(nb.cells):
        if _HIDDEN_PART in cell.metadata:
            continue
        if is_grade(cell):
            meta = cell.metadata["nbgrader"]
            if is_solution(cell):
                exercises.append((meta["grade_id"], 0.0, float(meta.get("points", 0)),
                                  "written answer: graded by your instructor"))
                continue
            exercises.append((meta["grade_id"], *_exercise_status(cell, hidden.get(meta["grade_id"]))))
        elif cell.cell_type == "code":
            names = [o.ename for o in cell.get("outputs", []) if o.output_type == "error"]
            if names:
                errors.append(f"{cell_label(cell, index)}: {names[0]}")
    tests = "visible and hidden tests" if source else "visible tests"
    return CheckResult(str(file), exercises, errors, problem, time.monotonic() - started, tests,
                       str(source) if source else "")
