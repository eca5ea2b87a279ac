"""Shared helpers of the grading, browser and hub tests: the repository's lessons, the submissions built from
them, and the ``tlcourse`` command run as an instructor would (real nbgrader, real kernels)."""

from __future__ import annotations

import copy
import csv
import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tlcourse.grading import hidden_test_lines, list_assignments, strip_hidden_tests
from tlcourse.grading.sandbox import sandbox_problem

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENTS = list_assignments(REPO)
WARMUP = "00_warmup"
SUBMISSION_DEFS = REPO / "tests" / "submissions"

#: a cell that kills every process it can see, then its parent (the kernel's): in a sandbox, only itself
KILL_EVERY_PROCESS = """
import os, signal
for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
os.kill(os.getppid(), signal.SIGKILL)


"""

#: grading runs in the bubblewrap sandbox where there is one (CI: always); elsewhere the suite grades without it
SANDBOX_ARGS: list[str] = [] if sandbox_problem() is None else ["--no-sandbox"]


def need_sandbox() -> None:
    """Skip where bubblewrap cannot run, unless TLCOURSE_REQUIRE_SANDBOX=1 (CI) makes that a failure."""
    problem = sandbox_problem()
    if problem is not None:
        if os.environ.get("TLCOURSE_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"no grading sandbox: {problem}")
        pytest.skip(f"no grading sandbox: {problem}")


def _tlcourse() -> list[str]:
    script = Path(sys.executable).parent / "tlcourse"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tlcourse.cli"]


def run_tlcourse(*args: str, cwd: Path = REPO, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run the ``tlcourse`` console script with the venv's bin/ first on PATH (nbgrader spawns alembic)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run([*_tlcourse(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------------------------------ notebooks
def grade_id(cell: Any) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def source_nb(assignment: str) -> Any:
    return nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)


def released_nb(assignment: str) -> Any:
    path = REPO / "lessons" / assignment / f"{assignment}.ipynb"
    if not path.is_file():
        pytest.fail(f"{path.relative_to(REPO)} is missing: run `tlcourse release` and commit lessons/")
    return nbformat.read(path, as_version=4)


def answer_ids(nb: Any) -> set[str]:
    return {grade_id(c) for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")}


def hidden_secrets(assignment: str) -> list[str]:
    """Hidden-test lines of an assignment that appear nowhere else in it (the text that must never leak)."""
    nb = source_nb(assignment)
    visible = "\n".join(strip_hidden_tests(c.source, note=None) for c in nb.cells)
    return sorted({ln for c in nb.cells for ln in hidden_test_lines(c.source) if len(ln) >= 8 and ln not in visible})


def notebook_text(path: Path) -> str:
    """Every cell source and text output of a notebook (any other file: its text)."""
    if path.suffix != ".ipynb":
        return path.read_text(encoding="utf-8", errors="replace")
    parts = []
    for cell in nbformat.read(path, as_version=4).cells:
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            parts += [out.get("text", ""), out.get("evalue", ""), *out.get("traceback", [])]
            parts += [v for v in out.get("data", {}).values() if isinstance(v, str)]
    return "\n".join(parts)


def fill(nb: Any, sources: dict[str, str]) -> Any:
    """A copy of ``nb`` whose cells with these grade ids get these sources."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if grade_id(cell) in sources:
            cell.source = sources[grade_id(cell)]
    return out


def solved(assignment: str) -> Any:
    """The released notebook with every answer cell taken from the solution (what a perfect student hands in)."""
    src = source_nb(assignment)
    return fill(released_nb(assignment), {grade_id(c): c.source for c in src.cells
                                          if c.metadata.get("nbgrader", {}).get("solution")})


def wrong_sources(assignment: str) -> dict[str, str]:
    """The wrong submission's answers: ``tests/submissions/<assignment>.json`` (or ``.py`` defining ``CELLS``)."""
    as_json, as_py = SUBMISSION_DEFS / f"{assignment}.json", SUBMISSION_DEFS / f"{assignment}.py"
    if as_json.is_file():
        raw = json.loads(as_json.read_text(encoding="utf-8"))
    elif as_py.is_file():
        raw = runpy.run_path(str(as_py))["CELLS"]
    else:
        pytest.fail(f"{assignment} has no wrong submission: add tests/submissions/{assignment}.json mapping answer "
                    "grade ids to plausible wrong code (see 00_warmup.json)")
    return {k: "\n".join(v) if isinstance(v, list) else v for k, v in raw.items() if not k.startswith("_")}


def make_course_root(base: Path) -> Path:
    """A private course root: this repository's nbgrader_config.py, solutions/ and lessons/; its own course/."""
    base.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "nbgrader_config.py", base / "nbgrader_config.py")
    for name in ("solutions", "lessons"):
        (base / name).symlink_to(REPO / name, target_is_directory=True)
    return base


def read_csv(path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), {row["student_id"]: row for row in reader}
