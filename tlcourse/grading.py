"""The course life cycle on top of nbgrader: ``release``, ``grade``, ``check``, ``feedback`` (DESIGN §2, §5).

nbgrader is the engine; this module wraps its sharp edges:

* ``release`` regenerates ``lessons/`` from every ``solutions/NN_*`` and, with ``--check``, fails when the committed
  lessons differ from a fresh generation (only changed files are written: no timestamp churn).
* ``grade`` autogrades a folder of submissions (as collected by nbgrader or downloaded from an LMS) in the grading
  profile. Each submission runs in its own process and temporary working folder, under a time limit, with
  ``--jobs`` of them in parallel; one process (this one) writes the gradebook. A broken submission — invalid
  JSON, a crashed kernel, an endless loop, deleted or duplicated grade cells, a syntax error, a foreign kernel
  name — gets a CSV row with ``status`` and a readable ``reason`` while the batch goes on. Re-grading is
  idempotent and keeps manual grades (nbgrader never overwrites them).
* hidden tests never reach students: nbgrader strips them from released notebooks, and :class:`HideHiddenTests`
  strips them — and the errors they raise — from feedback (``nbgrader_config.py`` registers it for
  ``nbgrader generate_feedback`` too).
* ``check`` runs a lesson for a self-paced learner with its visible tests and prints points per exercise; its
  exit code is non-zero when anything fails (unlike ``nbgrader validate``).

Written by hand because nbgrader runs submissions one after the other in one process, with the gradebook shared
by every kernel's working folder; the grading itself (sanitising, executing, saving grades, feedback) is nbgrader's.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tlcourse.config import environ

__all__ = [
    "CourseError",
    "GradeRow",
    "CheckResult",
    "CSV_COLUMNS",
    "find_course_root",
    "load_nbgrader_config",
    "list_assignments",
    "hidden_test_lines",
    "strip_hidden_tests",
    "release",
    "grade",
    "check_notebook",
    "find_source_notebook",
    "generate_feedback",
    "HideHiddenTests",  # noqa: F822 - built lazily by __getattr__ (no nbgrader import for other commands)
    "register_cli",
    "main",
]

#: The columns of the grades CSV, in order (the first six are the contract; the rest help instructors).
CSV_COLUMNS = ("student_id", "assignment", "score", "max_score", "status", "reason",
               "auto_score", "auto_max_score", "needs_manual_grade")

BEGIN_HIDDEN = "BEGIN HIDDEN TESTS"
END_HIDDEN = "END HIDDEN TESTS"
ASSIGNMENT_PATTERN = re.compile(r"^\d{2}_[A-Za-z0-9_]+$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_REF = re.compile(r"Cell In\[(\d+)\], line (\d+)")
DEFAULT_TIMEOUT = 600.0  # seconds per submission (all its notebooks)
HIDDEN_NOTE = "a hidden test failed. Hidden tests are not shown: re-read the task and try your code on other inputs."


class CourseError(RuntimeError):
    """A problem with the course set-up or the command's input; the message says what to do."""


# ---------------------------------------------------------------------------------------------- course & config
def find_course_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The course root: the nearest folder, from ``start`` (default: the current one) up, with ``nbgrader_config.py``.

    Falls back to the checkout this package lives in.

    Example:
        >>> (find_course_root() / "nbgrader_config.py").is_file()
        True
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file():
            return folder
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "nbgrader_config.py").is_file():
        return checkout
    raise CourseError(f"no nbgrader_config.py in {here} or above it; run the command in the course folder or "
                      "pass --root")


def load_nbgrader_config(root: str | os.PathLike[str] | None = None) -> Any:
    """nbgrader's configuration (a traitlets ``Config``) as ``nbgrader_config.py`` in the course root sets it.

    The feedback filter :class:`HideHiddenTests` is added when the file forgot it.

    Example:
        >>> load_nbgrader_config().CourseDirectory.source_directory
        'solutions'
    """
    from traitlets.config.loader import PyFileConfigLoader

    folder = find_course_root(root) if root is None else Path(root).resolve()
    if not (folder / "nbgrader_config.py").is_file():
        raise CourseError(f"{folder} holds no nbgrader_config.py (is it the course root?)")
    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(folder)).load_config()
    cfg.CourseDirectory.root = str(folder)
    pre = list(cfg.GenerateFeedback.get("preprocessors", [
        "nbgrader.preprocessors.GetGrades", "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"]))
    if not any("HideHiddenTests" in str(p) for p in pre):
        pre.insert(1 if pre else 0, "tlcourse.grading.HideHiddenTests")
    cfg.GenerateFeedback.preprocessors = pre
    return cfg


def _ensure_tools_on_path() -> None:
    """nbgrader spawns ``alembic`` by name when it creates a gradebook: put this Python's ``bin/`` first on PATH."""
    bindir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if parts[:1] != [bindir]:
        os.environ["PATH"] = os.pathsep.join([bindir, *parts])


def _coursedir(cfg: Any) -> Any:
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=cfg)


def _api(cfg: Any) -> Any:
    from nbgrader.apps import NbGraderAPI

    _ensure_tools_on_path()
    coursedir = _coursedir(cfg)
    Path(coursedir.format_path(coursedir.autograded_directory, ".", ".")).parent.mkdir(parents=True, exist_ok=True)
    db = _sqlite_path(coursedir.db_url)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return NbGraderAPI(coursedir=coursedir, config=cfg)


def _sqlite_path(db_url: str) -> Path | None:
    return Path(db_url[len("sqlite:///"):]) if db_url.startswith("sqlite:///") else None


def _step_dir(coursedir: Any, step: str) -> Path:
    """The folder of an nbgrader step (``release_directory``, ``autograded_directory``, …), absolute."""
    return Path(os.path.normpath(coursedir.format_path(getattr(coursedir, step), ".", ".")))


def list_assignments(root: str | os.PathLike[str] | None = None) -> list[str]:
    """The assignments: every ``solutions/NN_name`` folder that holds a notebook, in order.

    Example:
        >>> "00_warmup" in list_assignments()
        True
    """
    cfg = load_nbgrader_config(root)
    source = _step_dir(_coursedir(cfg), "source_directory")
    if not source.is_dir():
        return []
    return sorted(p.name for p in source.iterdir()
                  if p.is_dir() and ASSIGNMENT_PATTERN.match(p.name) and any(p.glob("*.ipynb")))


def _source_notebooks(cfg: Any, assignment: str) -> dict[str, Path]:
    folder = _step_dir(_coursedir(cfg), "source_directory") / assignment
    found = {p.stem: p for p in sorted(folder.glob("*.ipynb"))}
    if not found:
        known = ", ".join(list_assignments(cfg.CourseDirectory.root)) or "none"
        raise CourseError(f"no assignment {assignment!r}: {folder} holds no notebook (assignments: {known})")
    return found


# ------------------------------------------------------------------------------------------------ hidden tests
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
            visible = _visible_text(nb)
            secrets = sorted({ln for c in nb.cells for ln in hidden_test_lines(c.source)
                              if len(ln) >= 8 and ln not in visible})
            for cell in nb.cells:
                _hide_in_cell(cell, secrets)
            return nb, resources

    HideHiddenTests.__module__ = __name__
    HideHiddenTests.__qualname__ = "HideHiddenTests"
    return HideHiddenTests


_LAZY: dict[str, Callable[[], Any]] = {"HideHiddenTests": _make_hide_hidden_tests}
_LAZY_CACHE: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """``HideHiddenTests`` is built on first use, so ``import tlcourse.grading`` does not import nbgrader."""
    if name in _LAZY:
        if name not in _LAZY_CACHE:
            _LAZY_CACHE[name] = _LAZY[name]()
        return _LAZY_CACHE[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------------------------------ release
def _files(folder: Path, ignore: Sequence[str]) -> dict[str, Path]:
    from fnmatch import fnmatch

    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(fnmatch(part, pat) for part in rel.parts for pat in ignore):
            out[rel.as_posix()] = path
    return out


def release(root: str | os.PathLike[str] | None = None, check: bool = False,
            assignments: Sequence[str] | None = None, out: Callable[[str], None] = print) -> list[str]:
    """Regenerate ``lessons/`` from ``solutions/`` with nbgrader; return the differences found.

    With ``check=True`` nothing is written (and the gradebook is not touched): the returned list says which
    lesson files are missing, stale or different from a fresh generation. Without it, only those files are
    written or removed, and the assignments are recorded in the gradebook.

    Example:
        >>> release(check=True, out=lambda s: None)  # in sync: no differences  # doctest: +SKIP
        []
    """
    cfg = load_nbgrader_config(root)
    coursedir = _coursedir(cfg)
    lessons = _step_dir(coursedir, "release_directory")
    names = list(assignments) if assignments else list_assignments(coursedir.root)
    for name in names:
        _source_notebooks(cfg, name)  # clear error for an unknown assignment
    ignore = list(coursedir.ignore)
    differences: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tlcourse-release-") as tmp:
        build = copy.deepcopy(cfg)
        build.CourseDirectory.release_directory = tmp
        if check:
            build.GenerateAssignment.no_database = True
            build.SaveCells.enabled = False
        api = _api(build)
        for name in names:
            result = api.generate_assignment(name, force=True, create=True)
            if not result["success"] and not check:  # e.g. grade cells added after submissions were graded
                out(f"  warning: {name} was not recorded in the gradebook ({_log_errors(result).strip()}); "
                    "lessons/ are generated anyway")
                pure = copy.deepcopy(build)
                pure.GenerateAssignment.no_database = True
                pure.SaveCells.enabled = False
                result = _api(pure).generate_assignment(name, force=True, create=True)
            if not result["success"]:
                raise CourseError(f"nbgrader could not generate {name}:\n{_log_errors(result)}")
            fresh, current = _files(Path(tmp) / name, ignore), _files(lessons / name, ignore)
            for rel in sorted(set(fresh) | set(current)):
                shown = f"{lessons.name}/{name}/{rel}"
                if rel not in current:
                    differences.append(f"{shown}: missing")
                elif rel not in fresh:
                    differences.append(f"{shown}: stale (no longer generated)")
                elif fresh[rel].read_bytes() != current[rel].read_bytes():
                    differences.append(f"{shown}: differs from a fresh generation")
                else:
                    continue
                if not check:
                    target = lessons / name / rel
                    if rel in fresh:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(fresh[rel], target)
                    else:
                        target.unlink()
        if not assignments:
            known = set(names)
            for stale in sorted(p for p in lessons.glob("*") if p.is_dir() and ASSIGNMENT_PATTERN.match(p.name)):
                if stale.name not in known:
                    differences.append(f"{lessons.name}/{stale.name}: stale (no solutions/{stale.name})")
                    if not check:
                        shutil.rmtree(stale)
    verb = "differ" if check else "updated"
    for line in differences:
        out(f"  {line}")
    out(f"{len(names)} assignment(s): " + (f"{len(differences)} file(s) {verb}" if differences else
                                             "lessons/ in sync with solutions/"))
    return differences


def _log_errors(result: dict) -> str:
    """The error lines of an nbgrader API result (or the last line of its traceback)."""
    lines = [ln for ln in (result.get("log") or "").splitlines() if ln.startswith(("[ERROR]", "[CRITICAL]"))]
    if lines:
        return "\n".join(lines[-8:])
    error = (result.get("error") or "").strip().splitlines()
    return error[-1] if error else "unknown error (nbgrader logged nothing)"


# -------------------------------------------------------------------------------------------------- submissions
@dataclass
class _Submission:
    student: str
    notebooks: dict[str, Path]  # notebook id -> submitted file
    folder: Path | None = None  # the student's folder (other files are copied from it)
    timestamp: Path | None = None
    notes: list[str] = field(default_factory=list)
    problem: str | None = None


def _match_notebooks(student: str, files: list[Path], expected: Sequence[str]) -> _Submission:
    by_stem = {p.stem: p for p in files}
    sub = _Submission(student, {})
    for nb_id in expected:
        if nb_id in by_stem:
            sub.notebooks[nb_id] = by_stem[nb_id]
    if not sub.notebooks and len(expected) == 1 and len(files) == 1:  # an LMS renamed the file
        sub.notebooks[expected[0]] = files[0]
        sub.notes.append(f"graded {files[0].name} as {expected[0]}.ipynb")
    if not sub.notebooks:
        names = ", ".join(p.name for p in files) or "no notebook"
        sub.problem = f"no submitted notebook: expected {', '.join(n + '.ipynb' for n in expected)}, found {names}"
    return sub


def _folder_submission(entry: Path, assignment: str, expected: Sequence[str]) -> _Submission:
    base = entry / assignment if (entry / assignment).is_dir() else entry  # nbgrader: <student>/<assignment>/
    files = sorted(p for p in base.glob("*.ipynb") if not p.name.startswith("."))
    sub = _match_notebooks(entry.name, files, expected)
    sub.folder = base
    stamp = base / "timestamp.txt"
    sub.timestamp = stamp if stamp.is_file() else None
    return sub


def _file_submission(entry: Path, assignment: str, expected: Sequence[str]) -> _Submission:
    if len(expected) != 1:
        return _Submission(entry.stem, {}, problem=f"{assignment} has {len(expected)} notebooks: put them in a "
                                                   f"folder {entry.stem}/")
    return _Submission(entry.stem, {expected[0]: entry})


#: How a submissions folder may be laid out: (test on an entry, reader) — the first that matches wins.
SUBMISSION_LAYOUTS: dict[str, tuple[Callable[[Path], bool], Callable[[Path, str, Sequence[str]], _Submission]]] = {
    "folder": (lambda p: p.is_dir(), _folder_submission),  # <student>/<nb>.ipynb or <student>/<assignment>/…
    "file": (lambda p: p.is_file() and p.suffix == ".ipynb", _file_submission),  # <student>.ipynb
}


def _discover(submissions: Path, assignment: str, expected: Sequence[str]) -> list[_Submission]:
    if not submissions.is_dir():
        raise CourseError(f"{submissions} is not a folder of submissions")
    found: dict[str, _Submission] = {}
    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        for test, read in SUBMISSION_LAYOUTS.values():
            if test(entry):
                sub = read(entry, assignment, expected)
                if sub.student in found:
                    sub = _Submission(sub.student, {}, problem=f"two submissions for {sub.student}: "
                                                               f"{entry.name} and another")
                found[sub.student] = sub
                break
    if not found:
        raise CourseError(f"{submissions} holds no submissions (<student>/<notebook>.ipynb or <student>.ipynb)")
    return [found[k] for k in sorted(found)]


# ----------------------------------------------------------------------------------------------- the CSV rows
@dataclass
class GradeRow:
    """One line of the grades CSV.

    Example:
        >>> GradeRow("alice", "00_warmup", 6, 8, "ok", "").as_csv()["score"]
        '6'
    """

    student_id: str
    assignment: str
    score: float
    max_score: float
    status: str  # "ok" or "error"
    reason: str
    auto_score: float = 0.0
    auto_max_score: float = 0.0
    needs_manual_grade: bool = False

    def as_csv(self) -> dict[str, str]:
        """The row as CSV strings (numbers without trailing zeros)."""
        row = asdict(self)
        for key in ("score", "max_score", "auto_score", "auto_max_score"):
            row[key] = f"{float(row[key]):g}"
        row["needs_manual_grade"] = "yes" if self.needs_manual_grade else "no"
        return {k: str(row[k]) for k in CSV_COLUMNS}


def _write_csv(rows: Sequence[GradeRow], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r.student_id):
        writer.writerow(row.as_csv())
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class _CellInfo:
    tests: dict[str, float]  # autograded test cells: grade id -> points
    written: dict[str, float]  # manually graded answers: grade id -> points
    answers: list[str]  # autograded answer cells (solution, not grade)
    kernel: str


def _cell_info(paths: dict[str, Path]) -> dict[str, _CellInfo]:
    import nbformat

    info = {}
    for nb_id, path in paths.items():
        nb = nbformat.read(path, as_version=4)
        tests, written, answers = {}, {}, []
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution"):
                tests[meta["grade_id"]] = float(meta.get("points", 0))
            elif meta.get("grade"):
                written[meta["grade_id"]] = float(meta.get("points", 0))
            elif meta.get("solution"):
                answers.append(meta["grade_id"])
        info[nb_id] = _CellInfo(tests, written, answers, nb.metadata.get("kernelspec", {}).get("name", "python3"))
    return info


# ----------------------------------------------------------------------------------------------- the worker
def _submission_notes(nb: Any, info: _CellInfo) -> list[str]:
    """What nbgrader is about to repair in a submission, in words (duplicated / deleted cells, kernel)."""
    ids = Counter(c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells
                  if c.metadata.get("nbgrader", {}).get("grade_id"))
    notes = [f"cell {gid} appears {n} times: only its last copy is graded" for gid, n in sorted(ids.items()) if n > 1]
    gone = [gid for gid in [*info.tests, *info.written] if gid not in ids]
    if gone:
        notes.append("deleted grade cell(s) restored from the source: " + ", ".join(gone))
    lost = [gid for gid in info.answers if gid not in ids]
    if lost:
        notes.append("deleted answer cell(s): " + ", ".join(lost))
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel and kernel != info.kernel:
        notes.append(f"kernel {kernel!r} replaced by {info.kernel!r}")
    return notes


def _cell_label(cell: Any, index: int) -> str:
    gid = cell.metadata.get("nbgrader", {}).get("grade_id")
    return gid or f"cell {index + 1}"


def _run_worker(job_file: str) -> int:
    """Sanitise and execute one student's notebooks (in a child process); write the executed notebooks."""
    import nbformat
    from nbclient.exceptions import DeadKernelError
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        Execute,
        OverwriteCells,
        OverwriteKernelspec,
    )

    job = json.loads(Path(job_file).read_text())
    cfg = load_nbgrader_config(job["root"])
    if job.get("cell_timeout"):
        cfg.Execute.timeout = int(job["cell_timeout"])
    progress = Path(job["progress"])
    started = time.monotonic()
    result: dict[str, Any] = {"status": "ok", "reason": "", "notes": []}

    kernel_pid = Path(job["kernel_pid"])

    class TrackedExecute(Execute):
        def preprocess_cell(self, cell: Any, resources: dict, index: int) -> Any:
            progress.write_text(_cell_label(cell, index))
            if not kernel_pid.exists():  # so the grader can stop the kernel even if this process dies
                with contextlib.suppress(AttributeError):
                    kernel_pid.write_text(str(self.km.provisioner.process.pid))
            return super().preprocess_cell(cell, resources, index)

    for nb_id, path in job["notebooks"].items():
        info = _CellInfo(**job["cells"][nb_id])
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as exc:  # invalid JSON or not a notebook at all
            msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            result.update(status="error", reason=f"{Path(path).name} is not a valid notebook file ({msg})")
            break
        result["notes"] += _submission_notes(nb, info)
        resources = {"nbgrader": {"notebook": nb_id, "assignment": job["assignment"], "student": job["student"],
                                  "db_url": job["db_url"]}, "metadata": {"path": job["workdir"]}}
        try:
            nb, resources = ClearOutput(config=cfg)(nb, resources)
            nb, resources = DeduplicateIds(config=cfg)(nb, resources)
            for cell in nb.cells:  # DeduplicateIds leaves `nbgrader: {}` on the extra copies, which nbgrader rejects
                if cell.metadata.get("nbgrader") == {}:
                    del cell.metadata["nbgrader"]
            for pp in (OverwriteKernelspec, OverwriteCells, CheckCellMetadata):
                nb, resources = pp(config=cfg)(nb, resources)
        except Exception as exc:
            result.update(status="error", reason=f"nbgrader could not read the grading cells of {nb_id}.ipynb "
                                                  f"({type(exc).__name__}: {str(exc)[:160]}) — the cell metadata "
                                                  "were edited; grade it by hand")
            break
        executor = TrackedExecute(config=cfg)
        try:
            nb, resources = executor(nb, resources)
        except DeadKernelError:
            where = progress.read_text() if progress.exists() else "?"
            result.update(status="error", reason=f"the kernel died while running {where} of {nb_id}.ipynb "
                                                  "(os._exit, a crash, or out of memory)")
            break
        except Exception as exc:
            result.update(status="error", reason=f"could not run {nb_id}.ipynb: {type(exc).__name__}: "
                                                  f"{str(exc).strip()[:200]}")
            break
        out = Path(job["staged"]) / f"{nb_id}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out)
    result["seconds"] = round(time.monotonic() - started, 2)
    Path(job["result"]).write_text(json.dumps(result))
    return 0


def _kill_tree(proc: subprocess.Popen, kernel_pid: Path | None = None) -> None:
    """Kill a worker and everything it started (its kernel runs in a session of its own, so it is named too)."""
    import psutil

    family = []
    with contextlib.suppress(psutil.NoSuchProcess):
        family = psutil.Process(proc.pid).children(recursive=True)
    if kernel_pid is not None and kernel_pid.is_file():
        with contextlib.suppress(psutil.NoSuchProcess, ValueError):
            kernel = psutil.Process(int(kernel_pid.read_text()))
            if "ipykernel" in " ".join(kernel.cmdline()):  # the pid was not reused by someone else
                family.append(kernel)
    for p in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


@dataclass
class _Running:
    sub: _Submission
    proc: subprocess.Popen
    started: float
    job: dict


def _worker_env(profile: str, jobs: int, workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(NBGRADER_EXECUTION="autograde", TLCOURSE_PROFILE=profile, TMPDIR=str(workdir / "tmp"),
               IPYTHONDIR=str(workdir / ".ipython"), JUPYTER_RUNTIME_DIR=str(workdir / ".runtime"),
               PYTHONUNBUFFERED="1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if jobs > 1:  # share the cores instead of oversubscribing them
        threads = str(max(1, (os.cpu_count() or 1) // jobs))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, threads)
    return env


def _start_worker(sub: _Submission, batch: Path, base_job: dict, env_for: Callable[[Path], dict]) -> _Running:
    home = batch / "students" / sub.student
    workdir = home / "work"
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    if sub.folder is not None:  # the student's other files, then the course's (as nbgrader autograde does)
        for rel, path in _files(sub.folder, ["*.ipynb", ".*", "timestamp.txt", "submission_secret.txt"]).items():
            (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, workdir / rel)
    for rel, path in base_job["source_files"].items():
        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, workdir / rel)
    job = {**base_job, "student": sub.student, "workdir": str(workdir),
           "notebooks": {k: str(v) for k, v in sub.notebooks.items()},
           "staged": str(batch / "staged" / sub.student / base_job["assignment"]),
           "result": str(home / "result.json"), "progress": str(home / "progress.txt"),
           "kernel_pid": str(home / "kernel.pid")}
    job_file = home / "job.json"
    job_file.write_text(json.dumps(job))
    log = open(home / "worker.log", "w")  # noqa: SIM115 - closed when the worker ends
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from tlcourse.grading import _run_worker; sys.exit(_run_worker(sys.argv[1]))",
         str(job_file)], cwd=workdir, env=env_for(workdir), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    log.close()
    return _Running(sub, proc, time.monotonic(), job)


def _worker_outcome(run: _Running, timed_out: bool, timeout: float) -> dict:
    home = Path(run.job["result"]).parent
    if timed_out:
        where = (home / "progress.txt").read_text() if (home / "progress.txt").exists() else "?"
        return {"status": "error", "notes": [], "seconds": round(time.monotonic() - run.started, 1),
                "reason": f"stopped after the {timeout:g} s limit per submission while running {where} "
                          "(an endless loop?); re-grade with a larger --timeout if the work is just slow"}
    result_file = Path(run.job["result"])
    if result_file.is_file():
        return json.loads(result_file.read_text())
    tail = (home / "worker.log").read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return {"status": "error", "notes": [], "reason": f"the grading process failed: {tail[0][:200]}"}


# ------------------------------------------------------------------------------------------ gradebook & reasons
def _failure_name(cell: Any) -> str:
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            return out.ename
        if out.output_type == "stream" and out.name == "stderr":
            return "output on stderr"
    return "partial credit"


def _row_from_gradebook(coursedir: Any, assignment: str, student: str, infos: dict[str, _CellInfo],
                        notes: list[str]) -> GradeRow:
    import nbformat
    from nbgrader.api import Gradebook

    total = sum(sum(i.tests.values()) + sum(i.written.values()) for i in infos.values())
    auto_max = sum(sum(i.tests.values()) for i in infos.values())
    failed: list[str] = []
    pending: list[str] = []
    broken: list[str] = []
    score = auto = 0.0
    needs_manual = False
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        for nb_id, info in infos.items():
            sub_nb = gb.find_submission_notebook(nb_id, assignment, student)
            graded = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment)) / f"{nb_id}.ipynb"
            cells = {}
            if graded.is_file():
                cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nbformat.read(graded, 4).cells}
            else:
                notes.append(f"{nb_id}.ipynb was not submitted (0 points)")
            for g in sub_nb.grades:
                score += float(g.score or 0)
                needs_manual = needs_manual or bool(g.needs_manual_grade)
                if g.name in info.tests:
                    auto += float(g.auto_score or 0)
                    if (g.auto_score or 0) < info.tests[g.name] and g.name in cells:
                        failed.append(f"{g.name} {float(g.auto_score or 0):g}/{info.tests[g.name]:g} "
                                      f"({_failure_name(cells[g.name])})")
                elif g.name in info.written and g.manual_score is None:
                    pending.append(g.name if g.auto_score is None else f"{g.name} (no answer)")
            broken += [f"{gid} ({_failure_name(cells[gid])})" for gid in info.answers
                       if gid in cells and any(o.output_type == "error" for o in cells[gid].get("outputs", []))]
    parts = list(notes)
    if broken:
        parts.append("errors in answer cells: " + ", ".join(broken))
    if failed:
        parts.append(f"failed {len(failed)} test(s): " + ", ".join(failed))
    if pending:
        parts.append("to grade by hand: " + ", ".join(pending))
    return GradeRow(student, assignment, score, total, "ok", "; ".join(parts), auto, auto_max, needs_manual)


def _error_row(student: str, assignment: str, infos: dict[str, _CellInfo], reason: str) -> GradeRow:
    total = sum(sum(i.tests.values()) + sum(i.written.values()) for i in infos.values())
    auto_max = sum(sum(i.tests.values()) for i in infos.values())
    return GradeRow(student, assignment, 0.0, total, "error", reason, 0.0, auto_max, True)


# ------------------------------------------------------------------------------------------------------ grade
def _say(message: str) -> None:
    print(message, flush=True)


def grade(submissions: str | os.PathLike[str], assignment: str, out: str | os.PathLike[str] | None = None,
          jobs: int = 1, timeout: float = DEFAULT_TIMEOUT, cell_timeout: int | None = None,
          profile: str = "grading", feedback: bool = True, root: str | os.PathLike[str] | None = None,
          log: Callable[[str], None] = _say) -> list[GradeRow]:
    """Autograde every submission in a folder; write the grades CSV and the feedback; return the rows.

    ``submissions`` holds ``<student>/<notebook>.ipynb``, ``<student>/<assignment>/<notebook>.ipynb`` (nbgrader's
    ``submitted/`` folder) or ``<student>.ipynb``. Each runs in a child process with its own working folder and
    at most ``timeout`` seconds; ``jobs`` of them run at once. A failure is a row with ``status="error"``.

    Example:
        >>> rows = grade("course/submitted", "00_warmup", out="grades.csv", jobs=2)  # doctest: +SKIP
        >>> rows[0].status  # doctest: +SKIP
        'ok'
    """
    import warnings

    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings(), _terminate_as_exit():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader 0.9 + SQLAlchemy 2 warn about its sessions
        return _grade(submissions, assignment, out, jobs, timeout, cell_timeout, profile, feedback, root, log)


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit, so the workers and their kernels are stopped on the way out."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _grade(submissions: str | os.PathLike[str], assignment: str, out: str | os.PathLike[str] | None, jobs: int,
           timeout: float, cell_timeout: int | None, profile: str, feedback: bool,
           root: str | os.PathLike[str] | None, log: Callable[[str], None]) -> list[GradeRow]:
    from tlcourse.config import PROFILES

    if profile not in PROFILES:
        raise CourseError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    if jobs < 1 or timeout <= 0:
        raise CourseError(f"--jobs must be >= 1 and --timeout > 0 (got {jobs}, {timeout})")
    cfg = load_nbgrader_config(root)
    coursedir = _coursedir(cfg)
    source_nbs = _source_notebooks(cfg, assignment)
    infos = _cell_info(source_nbs)
    subs = _discover(Path(submissions).resolve(), assignment, list(source_nbs))
    started = time.monotonic()
    rows: list[GradeRow] = []

    with tempfile.TemporaryDirectory(prefix="tlcourse-grade-") as tmp:
        batch = Path(tmp)
        # 1. the assignment in the gradebook (points changed in solutions/ are picked up here)
        build = copy.deepcopy(cfg)
        build.CourseDirectory.release_directory = str(batch / "release")
        result = _api(build).generate_assignment(assignment, force=True, create=True)
        if not result["success"]:
            raise CourseError(f"nbgrader could not record {assignment} in the gradebook:\n{_log_errors(result)}")
        db = _sqlite_path(coursedir.db_url)
        db_url = coursedir.db_url
        if db is not None:  # workers read a snapshot: no student process touches the real gradebook
            shutil.copyfile(db, batch / "gradebook.db")
            db_url = f"sqlite:///{batch / 'gradebook.db'}"
        # 2. the single writer: nbgrader's autograde minus clearing outputs and executing (the workers did both)
        writer_cfg = copy.deepcopy(cfg)
        writer_cfg.CourseDirectory.submitted_directory = str(batch / "staged")
        from nbgrader.converters import Autograde

        traits = Autograde.class_traits()
        sanitize = cfg.Autograde.get("sanitize_preprocessors", traits["sanitize_preprocessors"].default())
        execute = cfg.Autograde.get("autograde_preprocessors", traits["autograde_preprocessors"].default())
        writer_cfg.Autograde.sanitize_preprocessors = [p for p in sanitize if _pp_name(p) != "ClearOutput"]
        writer_cfg.Autograde.autograde_preprocessors = [p for p in execute if _pp_name(p) != "Execute"]
        writer = _api(writer_cfg)
        source_dir = _step_dir(coursedir, "source_directory") / assignment
        base_job = {"root": str(coursedir.root), "assignment": assignment, "db_url": db_url,
                    "cell_timeout": cell_timeout, "cells": {k: asdict(v) for k, v in infos.items()},
                    "source_files": {k: str(v) for k, v in _files(source_dir, [*coursedir.ignore, "*.ipynb"]).items()}}
        submitted_root = _step_dir(coursedir, "submitted_directory")
        log(f"grading {len(subs)} submission(s) of {assignment} in the {profile} profile, {jobs} at a time, "
            f"at most {timeout:g} s each")

        def finish(sub: _Submission, outcome: dict) -> None:
            notes = sub.notes + outcome.get("notes", [])
            _archive_submission(sub, submitted_root, assignment)
            if outcome["status"] == "ok":
                staged = batch / "staged" / sub.student / assignment
                if sub.timestamp is not None:
                    shutil.copyfile(sub.timestamp, staged / "timestamp.txt")
                res = writer.autograde(assignment, sub.student, force=True, create=True)
                if res["success"]:
                    row = _row_from_gradebook(coursedir, assignment, sub.student, infos, notes)
                    if feedback:
                        fb = writer.generate_feedback(assignment, sub.student, force=True)
                        if not fb["success"]:
                            row.reason = "; ".join(filter(None, [row.reason, "feedback failed: " + _log_errors(fb)]))
                else:
                    row = _error_row(sub.student, assignment, infos, "nbgrader autograde failed: " + _log_errors(res))
            else:
                reason = "; ".join([*notes, outcome["reason"]])
                row = _error_row(sub.student, assignment, infos, reason)
                stale = Path(coursedir.format_path(coursedir.feedback_directory, sub.student, assignment))
                shutil.rmtree(stale, ignore_errors=True)  # never release feedback of an earlier run
            rows.append(row)
            took = f"{outcome.get('seconds', time.monotonic() - started):.1f} s"
            log(f"  [{len(rows)}/{len(subs)}] {sub.student:<20} {row.status:<5} "
                f"{row.score:g}/{row.max_score:g}  {took}" + (f"  {row.reason}" if row.reason else ""))

        # workers execute; this process writes the gradebook. A finished worker's slot is refilled before its
        # grades are written, so execution never waits for the gradebook.
        pending = list(subs)
        running: list[_Running] = []
        finished: list[tuple[_Submission, dict]] = []
        try:
            while pending or running or finished:
                for run in list(running):
                    done = run.proc.poll() is not None
                    late = not done and time.monotonic() - run.started > timeout
                    if done or late:  # stop the kernel too: left behind by a crashed worker, or still looping
                        _kill_tree(run.proc, Path(run.job["kernel_pid"]))
                        running.remove(run)
                        finished.append((run.sub, _worker_outcome(run, late, timeout)))
                while pending and len(running) < jobs:
                    sub = pending.pop(0)
                    if sub.problem:
                        finished.append((sub, {"status": "error", "reason": sub.problem}))
                    else:
                        running.append(_start_worker(sub, batch, base_job, lambda w: _worker_env(profile, jobs, w)))
                if finished:
                    finish(*finished.pop(0))
                else:
                    time.sleep(0.1)
        finally:
            for run in running:
                _kill_tree(run.proc, Path(run.job["kernel_pid"]))
            _copy_logs(batch, coursedir, assignment)

    if out is not None:
        _write_csv(rows, Path(out))
    ok = sum(r.status == "ok" for r in rows)
    log(f"{ok} graded, {len(rows) - ok} error(s) in {time.monotonic() - started:.1f} s"
        + (f"; grades in {out}" if out is not None else ""))
    return sorted(rows, key=lambda r: r.student_id)


def _pp_name(preprocessor: Any) -> str:
    """A preprocessor's class name, whether it is given as a class or as a dotted string."""
    return getattr(preprocessor, "__name__", str(preprocessor).rsplit(".", 1)[-1])


def _archive_submission(sub: _Submission, submitted_root: Path, assignment: str) -> None:
    """Keep what the student handed in under nbgrader's ``submitted/`` folder (unless it already is there)."""
    target = submitted_root / sub.student / assignment
    for nb_id, path in sub.notebooks.items():
        dest = target / f"{nb_id}.ipynb"
        if dest.resolve() == path.resolve():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    if sub.timestamp is not None and (target / "timestamp.txt").resolve() != sub.timestamp.resolve():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sub.timestamp, target / "timestamp.txt")


def _copy_logs(batch: Path, coursedir: Any, assignment: str) -> None:
    logs = _step_dir(coursedir, "autograded_directory").parent / "logs" / assignment
    for log_file in (batch / "students").glob("*/worker.log"):
        logs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_file, logs / f"{log_file.parent.name}.log")


# ---------------------------------------------------------------------------------------------------- feedback
def generate_feedback(assignment: str, students: Sequence[str] | None = None,
                      root: str | os.PathLike[str] | None = None) -> list[Path]:
    """(Re)generate the HTML feedback of autograded submissions (after manual grading, say); return the files.

    Hidden tests are stripped by :class:`HideHiddenTests`.

    Example:
        >>> generate_feedback("00_warmup", ["alice"])  # doctest: +SKIP
        [PosixPath('.../course/feedback/alice/00_warmup/00_warmup.html')]
    """
    cfg = load_nbgrader_config(root)
    coursedir = _coursedir(cfg)
    autograded = _step_dir(coursedir, "autograded_directory")
    names = list(students) if students else sorted(p.parent.name for p in autograded.glob(f"*/{assignment}")
                                                    if p.is_dir())
    if not names:
        raise CourseError(f"no autograded submissions of {assignment} in {autograded}: run `tlcourse grade` first")
    api = _api(cfg)
    written = []
    for student in names:
        res = api.generate_feedback(assignment, student, force=True)
        if not res["success"]:
            raise CourseError(f"feedback for {student} failed:\n{_log_errors(res)}")
        folder = Path(coursedir.format_path(coursedir.feedback_directory, student, assignment))
        written += sorted(folder.glob("*.html"))
    return written


# ------------------------------------------------------------------------------------------------------- check
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
    body = [ln for start, end in _hidden_spans(source) for ln in lines[start - 1:end]
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
            message = _ANSI.sub("", str(out.get("evalue", ""))).strip().splitlines()
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

    _ensure_tools_on_path()
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
    try:
        nb = nbformat.read(file, as_version=4)
    except Exception as exc:
        raise CourseError(f"{file} is not a valid notebook ({str(exc).splitlines()[0][:160]})") from exc
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
                errors.append(f"{_cell_label(cell, index)}: {names[0]}")
    tests = "visible and hidden tests" if source else "visible tests"
    return CheckResult(str(file), exercises, errors, problem, time.monotonic() - started, tests,
                       str(source) if source else "")


# ------------------------------------------------------------------------------------------------------- CLI
def _cmd_release(args: argparse.Namespace) -> int:
    try:
        differences = release(args.root, check=args.check, assignments=args.assignments or None)
    except CourseError as exc:
        print(f"tlcourse release: {exc}", file=sys.stderr)
        return 2
    if args.check and differences:
        print("lessons/ is out of date: run `tlcourse release` and commit the result", file=sys.stderr)
        return 1
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    try:
        rows = grade(args.submissions, args.assignment, out=args.out, jobs=args.jobs, timeout=args.timeout,
                     cell_timeout=args.cell_timeout, profile=args.profile, feedback=not args.no_feedback,
                     root=args.root)
    except CourseError as exc:
        print(f"tlcourse grade: {exc}", file=sys.stderr)
        return 2
    return 0 if rows else 1


def _cmd_check(args: argparse.Namespace) -> int:
    status = 0
    for notebook in args.notebooks:
        try:
            result = check_notebook(notebook, profile=args.profile, cell_timeout=args.cell_timeout, root=args.root,
                                    visible_only=args.visible_only)
        except CourseError as exc:
            print(f"tlcourse check: {exc}", file=sys.stderr)
            return 2
        print(result.report())
        status = status or (0 if result.passed else 1)
    return status


def _cmd_feedback(args: argparse.Namespace) -> int:
    try:
        files = generate_feedback(args.assignment, args.students or None, root=args.root)
    except CourseError as exc:
        print(f"tlcourse feedback: {exc}", file=sys.stderr)
        return 2
    for f in files:
        print(f)
    return 0


def _profiles() -> list[str]:
    from tlcourse.config import PROFILES

    return sorted(PROFILES)


def _add_release(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("release", help="regenerate lessons/ from solutions/ with nbgrader",
                       description="Regenerate the student notebooks in lessons/ from solutions/NN_*.")
    p.add_argument("assignments", nargs="*", help="only these assignments (default: all)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when lessons/ differ")
    p.set_defaults(func=_cmd_release)
    return p


def _add_grade(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("grade", help="autograde a folder of submissions; write a CSV and feedback",
                       description="Autograde <student>/<notebook>.ipynb (or <student>.ipynb) submissions.")
    p.add_argument("submissions", help="folder of submissions (e.g. course/submitted or an LMS download)")
    p.add_argument("--assignment", required=True, help="e.g. 00_warmup")
    p.add_argument("--out", default="grades.csv", help="the grades CSV (default: grades.csv)")
    p.add_argument("--jobs", type=int, default=1, help="submissions executed at once (default 1)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds one submission may run in all (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--cell-timeout", type=int, default=None, help="seconds per cell (default: nbgrader_config.py)")
    p.add_argument("--profile", default="grading", choices=_profiles(), help="run profile (default grading)")
    p.add_argument("--no-feedback", action="store_true", help="skip the HTML feedback")
    p.set_defaults(func=_cmd_grade)
    return p


def _add_check(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("check", help="run a lesson with its tests and print your points",
                       description="Run notebooks in the grading profile and report each exercise: visible and "
                                   "hidden tests when the lesson's source notebook is in the course folder, "
                                   "visible tests only otherwise.")
    p.add_argument("notebooks", nargs="+", help="e.g. lessons/00_warmup/00_warmup.ipynb")
    p.add_argument("--visible-only", action="store_true",
                   help="run only the visible tests (what Validate runs), even when the source is here")
    p.add_argument("--profile", default="grading", choices=_profiles(), help="run profile (default grading)")
    p.add_argument("--cell-timeout", type=int, default=None, help="seconds per cell (default: nbgrader_config.py)")
    p.set_defaults(func=_cmd_check)
    return p


def _add_feedback(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("feedback", help="regenerate HTML feedback (e.g. after manual grading)",
                       description="Regenerate the feedback of autograded submissions, hidden tests removed.")
    p.add_argument("--assignment", required=True)
    p.add_argument("students", nargs="*", help="only these students (default: every autograded one)")
    p.set_defaults(func=_cmd_feedback)
    return p


#: The grading subcommands: name -> function adding its parser.
COMMANDS: dict[str, Callable[[argparse._SubParsersAction], argparse.ArgumentParser]] = {
    "release": _add_release,
    "grade": _add_grade,
    "check": _add_check,
    "feedback": _add_feedback,
}


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``release``, ``grade``, ``check`` and ``feedback`` subcommands to a ``tlcourse`` parser.

    Example:
        >>> parser = argparse.ArgumentParser(); register_cli(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["grade", "subs", "--assignment", "00_warmup"]).jobs
        1
    """
    for add in COMMANDS.values():
        p = add(subparsers)
        p.add_argument("--root", default=None, help="course root (folder with nbgrader_config.py; default: found "
                                                    "from the current folder up)")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tlcourse.grading release|grade|check|feedback …`` (the same as ``tlcourse …``).

    Example:
        >>> main(["release", "--check"])  # doctest: +SKIP
        0
    """
    parser = argparse.ArgumentParser(prog="python -m tlcourse.grading", description=__doc__.splitlines()[0])
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
