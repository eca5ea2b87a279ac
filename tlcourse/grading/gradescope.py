"""Gradescope's autograder: the zip an instructor uploads, and what runs in it for every submission.

``tlcourse export --gradescope-autograder NN --out autograder.zip`` writes the zip Gradescope's autograder
specification asks for (https://gradescope-autograders.readthedocs.io/en/latest/specs/): ``setup.sh`` (installs the
course, bubblewrap and the lesson's data into the image, once) and ``run_autograder`` (runs for each submission),
beside the course files it needs — the package, ``solutions/NN`` (hidden tests included: the zip is for instructors
only), ``lessons/NN`` and the lock. Gradescope unpacks it into ``/autograder/source`` and puts each student's upload
in ``/autograder/submission``.

``run_autograder`` calls :func:`run_autograder`: it takes the submitted notebook (read as hostile data: regular
files only, size capped), grades it with :func:`tlcourse.grading.grade` — the same sandboxed worker as a class batch
— in a private course folder, and writes ``/autograder/results/results.json``: one test per graded cell with its
points. A test cell that holds hidden tests is shown to the student after the instructor publishes the grades
(``after_published``); one with visible tests only is ``visible`` at once. Outputs are plain text (a student's
exception text is never rendered as HTML or Markdown), carry the failing assertion's message and never a line of
a hidden test. Written answers are graded by hand on Gradescope; the summary says how many points wait for that. A
submission the grader withholds for review (it tried what no answer needs) gets no automatic points and says so.

Example:
    >>> SCHEMA["properties"]["tests"]["items"]["properties"]["visibility"]["enum"][:2]
    ['hidden', 'after_due_date']
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import stat
import tempfile
import time
import traceback
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlcourse.grading.course import (
    CourseError,
    course_dir,
    find_course_root,
    load_nbgrader_config,
    open_gradebook,
)
from tlcourse.grading.gradebook import cell_info, failure_name
from tlcourse.grading.hidden import (
    Guard,
    failed_line,
    hidden_secrets_of,
    hidden_spans,
    strip_hidden_tests,
    vetted_test_error,
)
from tlcourse.grading.readback import plain
from tlcourse.grading.safefs import Refused, read_regular, scan
from tlcourse.grading.submissions import MAX_NOTEBOOK_MB

__all__ = ["SCHEMA", "STUDENT", "build_autograder", "run_autograder", "results_from_gradebook", "main"]

#: results.json as Gradescope documents it (the fields this module writes, with their documented values)
_VISIBILITY = ["hidden", "after_due_date", "after_published", "visible"]
_FORMATS = ["text", "html", "simple_format", "md", "ansi"]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": {"enum": _FORMATS},
        "test_output_format": {"enum": _FORMATS},
        "test_name_format": {"enum": _FORMATS},
        "visibility": {"enum": _VISIBILITY},
        "stdout_visibility": {"enum": _VISIBILITY},
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "score": {"type": "number"}, "max_score": {"type": "number", "minimum": 0},
                "status": {"enum": ["passed", "failed"]}, "name": {"type": "string"},
                "name_format": {"enum": _FORMATS}, "number": {"type": "string"}, "output": {"type": "string"},
                "output_format": {"enum": _FORMATS}, "tags": {"type": "array", "items": {"type": "string"}},
                "visibility": {"enum": _VISIBILITY}, "extra_data": {"type": "object"},
            },
            "required": ["name", "score", "max_score"],
            "additionalProperties": False,
        }},
    },
    "anyOf": [{"required": ["score"]}, {"required": ["tests"]}],
    "additionalProperties": False,
}
#: the one student of a Gradescope run (Gradescope knows who submitted; the grader need not)
STUDENT = "submission"
#: what the zip carries besides the assignment's folders (paths relative to the course root)
PAYLOAD = ("tlcourse", "pyproject.toml", "README.md", "requirements.txt", "constraints.txt", "nbgrader_config.py", "LICENSE",
           "benchmarks/RESULTS.json")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", ".tlcourse_cache")
MESSAGE_CHARS = 300
RUN_TIMEOUT = 480.0  # seconds for one upload: under the 10 minutes Gradescope assignments often allow

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu).
set -euo pipefail
cd /autograder/source
apt-get install -y -qq bubblewrap python3.11 python3.11-venv >/dev/null
python3.11 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --quiet -r requirements.txt
/autograder/venv/bin/python -m pip install --quiet --no-deps -e .
/autograder/venv/bin/tlcourse data fetch --quiet {datasets}
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: the upload is in $AUTOGRADER/submission, results.json goes to
# $AUTOGRADER/results. AUTOGRADER and TLCOURSE_AUTOGRADER_PYTHON only change for a rehearsal outside Gradescope.
set -euo pipefail
AUTOGRADER="${{AUTOGRADER:-/autograder}}"
PYTHON="${{TLCOURSE_AUTOGRADER_PYTHON:-$AUTOGRADER/venv/bin/python}}"
mkdir -p "$AUTOGRADER/results"
exec "$PYTHON" -I -m tlcourse.grading.gradescope --assignment {assignment} --root "$AUTOGRADER/source" \\
    --submission "$AUTOGRADER/submission" --results "$AUTOGRADER/results/results.json"
"""


def build_autograder(assignment: str, out: str | os.PathLike[str], root: str | os.PathLike[str] | None = None,
                     datasets: Sequence[str] = ()) -> Path:
    """Write Gradescope's autograder zip for ``assignment`` (``setup.sh`` and ``run_autograder`` at its root).

    ``datasets`` are fetched into the image by ``setup.sh`` (default: every registered dataset).

    Example:
        >>> build_autograder("00_warmup", "autograder-00.zip")  # doctest: +SKIP
        PosixPath('autograder-00.zip')
    """
    course = find_course_root(root)
    cfg = load_nbgrader_config(course)
    source = Path(cfg.CourseDirectory.root) / cfg.CourseDirectory.source_directory / assignment
    release = Path(cfg.CourseDirectory.root) / cfg.CourseDirectory.release_directory / assignment
    if not source.is_dir():
        raise CourseError(f"no assignment {assignment!r} in {source.parent}")
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="tlcourse-gradescope-") as tmp:
        stage = Path(tmp)
        for rel in PAYLOAD:
            src = course / rel
            if src.is_dir():
                shutil.copytree(src, stage / rel, ignore=_IGNORED)
            elif src.is_file():
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, stage / rel)
        shutil.copytree(source, stage / cfg.CourseDirectory.source_directory / assignment, ignore=_IGNORED)
        if release.is_dir():
            shutil.copytree(release, stage / cfg.CourseDirectory.release_directory / assignment, ignore=_IGNORED)
        (stage / "setup.sh").write_text(SETUP_SH.format(datasets=" ".join(map(shlex.quote, datasets)) or "--all"), encoding="utf-8")
        (stage / "run_autograder").write_text(RUN_AUTOGRADER.format(assignment=shlex.quote(assignment)), encoding="utf-8")
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(p for p in stage.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo.from_file(path, path.relative_to(stage).as_posix())
                info.external_attr = (stat.S_IFREG | (0o755 if path.name in ("setup.sh", "run_autograder") else 0o644)) << 16
                zf.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return out


def _pick_notebook(submission: Path, notebooks: Sequence[str]) -> tuple[str | None, str]:
    """The uploaded notebook to grade (relative path) and a note: the assignment's own name first, else the only
    notebook uploaded; ``None`` with the reason when there is no such file."""
    found = scan(submission, max_bytes=MAX_NOTEBOOK_MB * 1024 * 1024, skip_hidden=True)
    refused = "; ".join(f"{plain(name, 80)}: {why}" for name, why in found.refused[:5])
    candidates = sorted(f for f in found.files if f.endswith(".ipynb"))
    named = [f for f in candidates if Path(f).name in {f"{nb}.ipynb" for nb in notebooks}]
    if named:
        return named[0], refused
    if len(candidates) == 1:
        return candidates[0], refused
    why = ("no notebook was uploaded" if not candidates else
           f"{len(candidates)} notebooks were uploaded and none is named {notebooks[0]}.ipynb")
    return None, "; ".join(filter(None, [why, refused]))


@dataclass(frozen=True)
class _Vetting:
    """What decides how much of a test cell's failure a student may see: the notebook's hidden tests (and the
    guard that finds them however encoded), as the feedback's :class:`HideHiddenTests` uses them."""

    secrets: list[str]
    guard: Guard

    @classmethod
    def of(cls, source_nb: Any) -> _Vetting:
        secrets = hidden_secrets_of(source_nb)
        return cls(secrets, Guard(secrets, "\n".join(strip_hidden_tests(c.source, note=None) for c in source_nb.cells)))


def _failure(cell: Any, source: str, vetting: _Vetting) -> tuple[str, bool | None]:
    """Why a test cell lost points, as the feedback would show it (rebuilt from vetted parts by
    :func:`tlcourse.grading.hidden.vetted_test_error`: a hidden test's failure says only that), and where it failed:
    ``True`` in a hidden region, ``False`` in the visible tests, ``None`` when the traceback does not say."""
    errors = [o for o in (cell or {}).get("outputs", []) if o.get("output_type") == "error"]
    if cell is None:
        return "the cell did not run", None
    if not errors:
        return f"no error, but {failure_name(cell)}: that earns no points", None
    shown = vetted_test_error(cell, source, errors[0], vetting.secrets, vetting.guard)
    line = failed_line(cell, errors[0])
    where = None if line is None else any(a <= line <= b for a, b in hidden_spans(source))
    return plain(f"{shown.ename}: {shown.evalue}", MESSAGE_CHARS), where


def _tests_of(name: str, cell: Any, source: str, score: float, points: float, vetting: _Vetting) -> list[dict]:
    """Gradescope tests of one test cell: its points (``after_published`` when it holds hidden tests, else
    ``visible``), and for a cell with hidden tests also a 0-point ``visible`` entry for its visible tests when the
    outcome of those is known (from the traceback: informational only, the points never depend on it)."""
    hidden = bool(hidden_spans(source))
    passed = score >= points
    main = {"name": name, "score": score, "max_score": points, "status": "passed" if passed else "failed",
            "visibility": "after_published" if hidden else "visible", "output_format": "text"}
    message, in_hidden = ("", None) if passed else _failure(cell, source, vetting)
    if message:
        main["output"] = message
    if not hidden:
        return [main]
    if not passed and in_hidden is None:
        return [main]  # where it failed is unknown: say nothing early rather than guess
    shown = {"name": f"{name} (visible tests)", "score": 0.0, "max_score": 0.0, "visibility": "visible",
             "output_format": "text", "status": "failed" if in_hidden is False else "passed",
             "output": message if in_hidden is False else "passed"}
    return [shown, main]


def results_from_gradebook(assignment: str, coursedir: Any, sources: dict[str, Path], note: str = "",
                           seconds: float = 0.0) -> dict[str, Any]:
    """results.json for the one student of a graded Gradescope run, read from nbgrader's gradebook and the
    autograded notebook (see the module's description)."""
    import nbformat

    tests: list[dict[str, Any]] = []
    manual = 0.0
    with open_gradebook(coursedir) as gb:
        for nb_id, path in sources.items():
            info = cell_info({nb_id: path})[nb_id]
            source_nb = nbformat.read(path, 4)
            source_cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in source_nb.cells}
            graded = Path(coursedir.format_path(coursedir.autograded_directory, STUDENT, assignment)) / f"{nb_id}.ipynb"
            cells = ({c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nbformat.read(graded, 4).cells}
                     if graded.is_file() else {})
            scores = {g.name: float(g.auto_score or 0) for g in gb.find_submission_notebook(nb_id, assignment,
                                                                                              STUDENT).grades}
            manual += sum(info.written.values())
            vetting = _Vetting.of(source_nb)
            for gid, points in info.tests.items():
                tests += _tests_of(f"{nb_id}: {gid}", cells.get(gid), source_cells[gid].source,
                                   min(scores.get(gid, 0.0), points), points, vetting)
    for number, test in enumerate(tests, start=1):
        test["number"] = str(number)
    auto = sum(t["score"] for t in tests)
    shown = [t for t in tests if t["visibility"] == "visible"]  # the summary is seen at once: it tells no more
    summary = [f"Visible tests: {sum(t['status'] == 'passed' for t in shown)} of {len(shown)} passed."]
    if manual:
        summary.append(f"Written answers ({manual:g} points) are graded by hand.")
    if any(t["visibility"] == "after_published" for t in tests):
        summary.append("Tests with hidden parts show their result once your instructor publishes the grades.")
    if note:
        summary.append(note)
    return {"score": auto, "execution_time": round(seconds, 1), "output": " ".join(summary), "output_format": "text",
            "test_output_format": "text", "test_name_format": "text", "stdout_visibility": "hidden",
            "tests": tests}


def _held(reason: str, seconds: float) -> dict[str, Any]:
    """A submission the grader withheld for review (it tried what no answer needs): no automatic points; the
    student is told it waits for the instructor, the why goes to ``extra_data`` (stored, not shown to students)."""
    return {"score": 0.0, "execution_time": round(seconds, 1), "output_format": "text", "stdout_visibility": "hidden",
            "output": "Held for your instructor's review: this submission gets no automatic points until they have "
                      "looked at it.", "extra_data": {"withheld": plain(reason, 2000)}, "tests": []}


def _failed_run(reason: str, seconds: float) -> dict[str, Any]:
    return {"score": 0.0, "execution_time": round(seconds, 1), "output": plain(f"Not graded: {reason}", 600),
            "output_format": "text", "stdout_visibility": "hidden", "tests": []}


@contextlib.contextmanager
def _course_dir(folder: Path) -> Iterator[None]:
    """``TLCOURSE_COURSE_DIR`` (read by ``nbgrader_config.py``) set to ``folder`` for the block, then restored."""
    before = os.environ.get("TLCOURSE_COURSE_DIR")
    os.environ["TLCOURSE_COURSE_DIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TLCOURSE_COURSE_DIR", None)
        else:
            os.environ["TLCOURSE_COURSE_DIR"] = before


def run_autograder(assignment: str, submission: str | os.PathLike[str], results: str | os.PathLike[str],
                   root: str | os.PathLike[str] | None = None, sandbox: bool = True,
                   timeout: float | None = None) -> dict[str, Any]:
    """Grade the one notebook in ``submission`` and write Gradescope's ``results.json`` to ``results``; return it.

    A private course folder (gradebook, submitted, autograded) lives in a temporary folder for the run, so nothing
    of one student's run is left for the next.

    Example:
        >>> run_autograder("00_warmup", "/autograder/submission", "/autograder/results/results.json")  # doctest: +SKIP
        {'score': 8.0, ...}
    """
    from tlcourse.grading.grade import DEFAULT_TIMEOUT, WITHHELD, grade

    started = time.monotonic()
    course = find_course_root(root)
    out = Path(results)
    with tempfile.TemporaryDirectory(prefix="tlcourse-gradescope-run-") as tmp, _course_dir(Path(tmp) / "course"):
        cfg = load_nbgrader_config(course)
        coursedir = course_dir(cfg)
        source = Path(cfg.CourseDirectory.root) / cfg.CourseDirectory.source_directory / assignment
        sources = {p.stem: p for p in sorted(source.glob("*.ipynb"))}
        if not sources:
            raise CourseError(f"no assignment {assignment!r} in {source.parent}")
        picked, note = _pick_notebook(Path(submission), list(sources))
        if picked is None:
            result = _failed_run(note, time.monotonic() - started)
        else:
            data = read_regular(Path(submission) / picked, MAX_NOTEBOOK_MB * 1024 * 1024, root=Path(submission))
            target = Path(tmp) / "submitted" / STUDENT / assignment / f"{next(iter(sources))}.ipynb"
            target.parent.mkdir(parents=True)
            target.write_bytes(data)
            rows = grade(Path(tmp) / "submitted", assignment, root=course, feedback=False, sandbox=sandbox,
                         timeout=timeout or DEFAULT_TIMEOUT, log=lambda line: print(line, flush=True))
            if rows and rows[0].status == "error":
                result = _failed_run(rows[0].reason, time.monotonic() - started)
            elif rows and rows[0].status == WITHHELD:
                result = _held(rows[0].reason, time.monotonic() - started)
            else:
                result = results_from_gradebook(assignment, coursedir, sources, note, time.monotonic() - started)
    _write(out, result)
    return result


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tlcourse.grading.gradescope --assignment NN --submission DIR --results FILE [--root DIR]``
    (what ``run_autograder`` calls). A results.json exists whatever happens: a provisional one is written first
    (it stays if the run is killed), replaced by the grade or by the reason there is none."""
    parser = argparse.ArgumentParser(prog="python -m tlcourse.grading.gradescope", description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", required=True)
    parser.add_argument("--submission", required=True, help="the folder Gradescope put the upload in")
    parser.add_argument("--results", required=True, help="where results.json goes")
    parser.add_argument("--root", default=None, help="the course root (the unpacked zip)")
    parser.add_argument("--timeout", type=float, default=RUN_TIMEOUT,
                        help="seconds the notebook may run (keep it under the assignment's autograder timeout)")
    args = parser.parse_args(argv)
    results = Path(args.results)
    _write(results, _failed_run("the grader stopped before it finished (a time limit, or it crashed): ask your "
                                "instructor", 0.0))
    try:
        result = run_autograder(args.assignment, args.submission, results, root=args.root, timeout=args.timeout)
    except Exception as exc:  # the run is over, but Gradescope must still get a results.json
        reason = str(exc) if isinstance(exc, CourseError | Refused) else f"the grader failed ({type(exc).__name__})"
        _write(results, _failed_run(reason, 0.0))
        traceback.print_exc()  # for the instructor: Gradescope keeps stdout/stderr, hidden from students
        return 1
    print(f"score {result['score']:g}; results in {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
