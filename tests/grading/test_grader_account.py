"""Grading as a grader account, not root: the minimum rights, and the sandbox still holds.

The grader is a Unix account of its own — no root, no sudo, in no course group — that owns only the course copy
it grades and the submissions handed to it. It runs ``tlcourse grade`` with the same sandbox (bubblewrap makes an
unprivileged user namespace); with no cgroup delegated to it, memory is capped by an address-space limit and
processes by the sandbox's PID namespace (INSTRUCTORS.md §4, "Grading without root"). One small batch: an honest
submission, a wrong one, and the attacks that test what root's batch (test_sandbox.py) tests with more rights at
hand — reading the hidden tests and the grader's secrets, writing the gradebook, a memory bomb, killing the grader.

Needs root to make the account (CI runs as root); elsewhere it is skipped.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from support.course import (
    KILL_EVERY_PROCESS,
    WARMUP,
    fill,
    make_course_root,
    need_sandbox,
    read_csv,
    solved,
    wrong_sources,
)

from tlcourse.launch import colab_setup_cell

REPO = Path(__file__).resolve().parents[2]
GRADER = "tlcgrader"
SECRET = "grader-account-secret-77d1"  # in the grader's environment
MEMORY_MB = 1536

pytestmark = pytest.mark.slow

_REPORT = """
def _attack():
    leaks = []
{body}
    print("ATTACK {name}:", "SUCCEEDED " + repr(leaks) if leaks else "blocked")
_attack()
del _attack
"""

ATTACKS = {
    "read_hidden": """
    import os
    for path in ({solutions!r}, {course_solutions!r}, {home!r}):
        try:
            open(path).read(50) if os.path.isfile(path) else os.listdir(path)
            leaks.append(path)  # reading it at all is the leak, empty or not
        except OSError:
            pass
    if {secret!r} in repr(dict(os.environ)):
        leaks.append("the grader's environment")
""",
    "write_gradebook": """
    import sqlite3
    try:
        db = sqlite3.connect({gradebook!r})
        db.execute("UPDATE grade SET manual_score = 99")
        db.commit()
        leaks.append("gradebook updated")
    except Exception:
        pass
    for path in ({gradebook!r}, {config!r}):
        try:
            open(path, "r+b").close()
            leaks.append(path)
        except OSError:
            pass
""",
    "memory_bomb": f"""
    hoard = []
    try:
        # without a cgroup the cap is on address space, 4x the limit (sandbox.rlimits: it counts reservations);
        # bounded at 5x the limit, 64 MB at a time
        for _ in range({5 * MEMORY_MB // 64}):
            hoard.append(bytearray(64 * 1024**2))
        leaks.append(str(len(hoard) * 64) + " MB")
    except MemoryError:
        pass
    del hoard
""",
}



def _run(*cmd: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(list(cmd), capture_output=True, text=True, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


@contextlib.contextmanager
def _grader_account(home: Path) -> Iterator[pwd.struct_passwd]:
    """The account, and the test environment's interpreter reachable by it: folders above it that others cannot
    traverse (``/root`` for a Python under ``~/.pyenv``) get the traverse bit — not read — until the end."""
    _run("userdel", "-f", GRADER, check=False)
    _run("useradd", "--system", "--home-dir", str(home), "--shell", "/usr/sbin/nologin", GRADER)
    opened: list[tuple[Path, int]] = []
    try:
        for top in {Path(sys.base_prefix).resolve(), Path(sys.prefix), REPO}:
            for folder in [top, *top.parents]:
                mode = stat.S_IMODE(folder.stat().st_mode)
                if not mode & stat.S_IXOTH and folder not in dict(opened):
                    opened.append((folder, mode))
                    os.chmod(folder, mode | stat.S_IXOTH)
        yield pwd.getpwnam(GRADER)
    finally:
        for folder, mode in reversed(opened):
            os.chmod(folder, mode)
        _run("pkill", "-KILL", "-u", GRADER, check=False)
        _run("userdel", "-f", GRADER, check=False)


@dataclass
class Batch:
    rows: dict[str, dict[str, str]]
    course: Path
    stdout: str


def _notebooks(course: Path, home: Path) -> dict[str, nbformat.NotebookNode]:
    values = {"solutions": str(REPO / "solutions" / WARMUP / f"{WARMUP}.ipynb"),
              "course_solutions": str(course / "solutions"), "home": str(home), "secret": SECRET,
              "gradebook": str(course / "course" / "gradebook.db"), "config": str(course / "nbgrader_config.py")}
    colab = solved(WARMUP)  # handed in from the Colab class copy: its setup cell first (tlcourse publish --colab)
    first_code = next(i for i, c in enumerate(colab.cells) if c.cell_type == "code")
    colab.cells.insert(first_code, nbformat.v4.new_code_cell(colab_setup_cell("https://github.com/uni/tl-class")))
    notebooks = {"honest": solved(WARMUP), "wrong": fill(solved(WARMUP), wrong_sources(WARMUP)), "colab": colab}
    for name, body in [*ATTACKS.items(), ("kill_grader", None)]:
        nb = solved(WARMUP)
        code = KILL_EVERY_PROCESS if body is None else _REPORT.format(body=body.format(**values), name=name)
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "ex1_replace_head":
                cell.source = code + cell.source
        notebooks[name] = nb
    return notebooks


@pytest.fixture(scope="module")
def batch() -> Iterator[Batch]:
    need_sandbox()
    if os.geteuid() != 0:
        pytest.skip("making the grader account needs root")
    base = Path(tempfile.mkdtemp(prefix="grader-", dir="/var/tmp"))  # reachable by the account, unlike pytest's
    os.chmod(base, 0o755)
    try:
        with _grader_account(base / "home") as account:
            course = make_course_root(base / "course-root")
            subs = base / "submissions"
            for name, nb in _notebooks(course, base / "home").items():
                (subs / name).mkdir(parents=True)
                nbformat.write(nb, subs / name / f"{WARMUP}.ipynb")
            for path in (base / "home", base / "data", base / "cache"):
                path.mkdir(mode=0o700)
            for path in (base / "home", base / "data", base / "cache", course, subs):
                _run("chown", "-R", f"{account.pw_uid}:{account.pw_gid}", str(path))
            env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(base / "home"),
                   "TLCOURSE_DATA_MIRROR": os.environ.get("TLCOURSE_DATA_MIRROR", ""), "HF_HUB_OFFLINE": "1",
                   "TLCOURSE_DATA_HOME": str(base / "data"), "TLCOURSE_TEST_SECRET": SECRET,
                   "TLCOURSE_CACHE_DIR": str(base / "cache"), "LANG": "C.UTF-8"}  # both bound into the sandbox
            done = _run(shutil.which("runuser") or "/usr/sbin/runuser", "-u", GRADER, "--", str(Path(sys.executable).parent / "tlcourse"), "grade",
                        str(subs), "--assignment", WARMUP, "--out", str(base / "home" / "grades.csv"), "--jobs", "2",
                        "--timeout", "240", "--memory", str(MEMORY_MB), "--root", str(course), cwd=base,
                        env=env, timeout=1800, check=False)
            assert done.returncode == 0, done.stdout + done.stderr
            _, rows = read_csv(base / "home" / "grades.csv")
            yield Batch(rows, course, done.stdout)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _printed(batch: Batch, student: str) -> str:
    path = batch.course / "course" / "autograded" / student / WARMUP / f"{WARMUP}.ipynb"
    nb = nbformat.read(path, as_version=4)
    return "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


def test_the_grader_account_grades_right(batch: Batch) -> None:
    assert set(batch.rows) == {"honest", "wrong", "colab", *ATTACKS, "kill_grader"}, batch.stdout
    honest, wrong = batch.rows["honest"], batch.rows["wrong"]
    assert honest["status"] == "ok" and (honest["auto_score"], honest["auto_max_score"]) == ("6", "6"), honest
    assert wrong["status"] == "ok" and wrong["auto_score"] == "2", wrong
    colab = batch.rows["colab"]  # the setup cell (a %pip and an import sys) is dropped, not held against it
    assert colab["status"] == "ok" and colab["auto_score"] == "6", colab
    owner = (batch.course / "course" / "gradebook.db").stat().st_uid
    assert owner == pwd.getpwnam(GRADER).pw_uid, "the gradebook is the grader's, not root's"


#: what each blocked attack's row says: withheld when the static review also flags its code (the file and
#: database probes), else graded with the correct answers' points (the memory bomb)
EXPECTED = {"read_hidden": ("withheld", "0"), "write_gradebook": ("withheld", "0"), "memory_bomb": ("ok", "6")}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_are_blocked_without_root(name: str, batch: Batch) -> None:
    printed = _printed(batch, name)
    assert f"ATTACK {name}: blocked" in printed and "SUCCEEDED" not in printed, printed[-2000:]
    row = batch.rows[name]
    assert (row["status"], row["auto_score"]) == EXPECTED[name], row


def test_killing_the_grader_stops_only_that_submission(batch: Batch) -> None:
    row = batch.rows["kill_grader"]
    assert row["status"] == "error" and row["auto_score"] in ("", "0"), row
    assert batch.rows["honest"]["auto_score"] == "6", "the others were graded"
