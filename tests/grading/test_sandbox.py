"""Hostile submissions against the grading sandbox, with real bubblewrap, real nbgrader and real kernels.

Four classes of attack share one batch:

* **escapes** (read hidden tests, write the gradebook, read a classmate, network, environment, disk, processes,
  memory, killing the grader): each sits at the top of the warm-up's first answer cell, in front of the correct
  answer, so a submission whose attack fails still earns every point;
* **lies** (wrong answers made to pass by a kernel that lies: input and AST transformers reached through obfuscated
  names, ``builtins.compile`` patched, ``torch.equal`` replaced directly or through ``unittest.mock``, objects that
  equal anything, a hostile cell whose metadata claims it is locked): each must be *withheld* — no automatic
  point in the gradebook — while the kernel claimed points for it;
* **shadows** (files handed in beside an untouched notebook, named like what the worker or the kernel imports or
  reads at start): the notebook earns exactly its own 0 points;
* **files** (a student folder or notebook that is a link to the gradebook, ``/dev/zero`` or a hidden test, a FIFO):
  a refused row for that student, and a row for everyone.

Each escape attack sits at the top of the warm-up's first answer cell, in front of the correct answer, so a
submission whose attack fails still earns every point. Every attack is bounded (a file size, a number of processes, a memory
ceiling, a time-out) so that a broken sandbox makes a test fail without harming the machine. What must hold: each
attack reports ``blocked``, never ``SUCCEEDED``; the batch finishes with a row for every student; the honest
student's grade is exact; the gradebook holds no trace of the attacks.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
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
    released_nb,
    run_tlcourse,
    solved,
    source_nb,
)

REPO = Path(__file__).resolve().parents[2]
SECRET = "tlcourse-test-secret-5f3a9"  # in the grader's environment during the hostile batch
HONEST_MARKER = "honest-student-marker-81c2"  # in the honest student's notebook only
MEMORY_MB = 2048  # the hostile batch's memory limit; the memory bomb stops at twice that

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _need_sandbox() -> None:
    need_sandbox()


def _report(name: str, body: str) -> str:
    """An attack: ``body`` sets ``leaks`` (a list); the cell prints whether anything leaked."""
    return (f"def _attack():\n    leaks = []\n{textwrap.indent(textwrap.dedent(body).strip(), '    ')}\n"
            f"    return leaks\n\n\n_leaks = _attack()\n"
            f"print('ATTACK {name}: ' + ('SUCCEEDED ' + repr(_leaks)[:300] if _leaks else 'blocked'))\n\n\n")


# a bounded walk of what the sandbox shows (defined in the attack cells that search the file system)
WALK = """
def _walk(*tops):
    import os
    seen = 0
    for top in tops:
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if os.path.join(root, d) not in ("/proc", "/sys", "/dev", "/usr")]
            for name in files:
                seen += 1
                if seen > 20000:
                    return
                yield os.path.join(root, name)


"""


@dataclass
class Attack:
    code: str  # placed before the correct answer of ex1
    status: str  # the row's expected status
    reason: str = ""  # a regular expression the reason must match
    blocked_marker: bool = True  # the executed notebook says "blocked"


def _attacks(subs: Path, course: Path, server_port: int) -> dict[str, Attack]:
    hidden_line = "count, do not hard-code"  # a hidden assertion message of 00_warmup
    return {
        "read_hidden": Attack(WALK + _report("read_hidden", f"""
            import glob, os
            for path in ({str(REPO / 'solutions' / WARMUP / (WARMUP + '.ipynb'))!r}, {str(course / 'solutions')!r}):
                try:
                    found = open(path).read(50) if os.path.isfile(path) else os.listdir(path)
                    leaks.append(path) if found else None
                except OSError:
                    pass
            for path in glob.glob("/proc/*/fd/*") + glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline"):
                try:  # regular files only: a pipe or a socket would block the read
                    if (path.endswith(("environ", "cmdline")) or os.path.isfile(path)) and \\
                            {hidden_line!r} in open(path, errors="replace").read(10_000_000):
                        leaks.append(path)
                except OSError:
                    pass
            for path in _walk("/", {str(REPO)!r}):
                try:
                    if path.endswith((".ipynb", ".json", ".py")) and {hidden_line!r} in open(path, errors="replace").read():
                        leaks.append(path)
                except OSError:
                    pass
        """), "ok"),
        "write_gradebook": Attack(_report("write_gradebook", f"""
            import sqlite3
            for path in ({str(course / 'course' / 'gradebook.db')!r}, {str(REPO / 'nbgrader_config.py')!r},
                         {str(REPO / 'solutions' / WARMUP / (WARMUP + '.ipynb'))!r}):
                try:
                    with open(path, "r+b") as handle:
                        handle.read(1)
                    leaks.append(path)
                except OSError:
                    pass
            try:
                db = sqlite3.connect({str(course / 'course' / 'gradebook.db')!r})
                db.execute("UPDATE grade SET manual_score = 99")
                db.commit()
                leaks.append("gradebook updated")
            except Exception:
                pass
        """), "ok"),
        "read_other_student": Attack(WALK + _report("read_other_student", f"""
            target = {str(subs / 'honest' / (WARMUP + '.ipynb'))!r}
            try:
                if {HONEST_MARKER!r} in open(target).read():
                    leaks.append(target)
            except OSError:
                pass
            for path in _walk("/", {str(subs)!r}):
                try:
                    if {HONEST_MARKER!r} in open(path, errors="replace").read(1_000_000):
                        leaks.append(path)
                except OSError:
                    pass
        """), "ok"),
        "network": Attack(_report("network", f"""
            import socket
            for host, port in (("127.0.0.1", {server_port}), ("pypi.org", 443), ("1.1.1.1", 53)):
                try:
                    socket.create_connection((host, port), timeout=3).close()
                    leaks.append(f"{{host}}:{{port}}")
                except OSError:
                    pass
        """), "ok"),
        "env_secret": Attack(_report("env_secret", f"""
            import glob, os
            if any({SECRET!r} in v for v in os.environ.values()):
                leaks.append("os.environ")
            for path in glob.glob("/proc/*/environ"):
                try:
                    if {SECRET!r} in open(path, errors="replace").read():
                        leaks.append(path)
                except OSError:
                    pass
        """), "ok"),
        "disk_filler": Attack(_report("disk_filler", """
            import os
            written = 0
            try:
                with open("filler.bin", "wb") as handle:
                    while written < 4 * 1024**3:  # bounded: 4 GB
                        handle.write(b"x" * 32 * 1024**2)
                        handle.flush()
                        written += 32 * 1024**2
                leaks.append(f"wrote {written >> 20} MB")
            except OSError:
                pass
            finally:
                if os.path.exists("filler.bin"):
                    os.remove("filler.bin")
        """), "ok"),
        "process_bomb": Attack(_report("process_bomb", """
            import os, signal, time
            children = []
            try:
                for _ in range(1000):  # bounded: 1,000 processes
                    pid = os.fork()
                    if pid == 0:
                        time.sleep(20)
                        os._exit(0)
                    children.append(pid)
                leaks.append(f"{len(children)} processes")
            except OSError:
                pass
            finally:
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
        """), "ok"),
        "memory_bomb": Attack(_report("memory_bomb", f"""
            hoard = []
            for _ in range({2 * MEMORY_MB // 64}):  # bounded: twice the limit, 64 MB at a time
                hoard.append(bytearray(64 * 1024**2))
            leaks.append(f"{{len(hoard) * 64}} MB")
        """), "error", r"kernel died.*memory limit of \d+ MB", blocked_marker=False),
        "kill_grader": Attack(KILL_EVERY_PROCESS, "error", r"(ended without a result|kernel died)", blocked_marker=False),
    }


# ------------------------------------------------------------------------------------------------- lies
_OBFUSCATED_IP = "_ip = getattr(__import__('IPy' + 'thon'), 'get_' + 'ipython')()\n"
_WRONG = {  # plausible wrong answers that run without error
    "ex1_replace_head": "def make_classifier(num_classes):\n    from tlcourse.models import load_backbone\n"
                        "    return replace_head(load_backbone('efficientnet_lite0', pretrained=False), num_classes)\n",
    "ex2_freeze_body": "def freeze_body(model):\n    return 0\n",
    "ex3_unfreeze_top": "def unfreeze_top(model, k):\n    return []\n",
}
LIES: dict[str, str] = {  # code put in front of the wrong ex1 answer
    "input_transformer": _OBFUSCATED_IP + (
        "getattr(_ip, 'input_transformers_' + 'post').append(\n"
        "    lambda lines: ['pass\\n'] if any('assert' in line for line in lines) else lines)\n"),
    "ast_transformer": (
        "import ast as _a\n\nclass _Strip(_a.NodeTransformer):\n    def visit_Assert(self, node):\n"
        "        return None\n\n" + _OBFUSCATED_IP + "_ip.ast_transformers.append(_Strip())\n"),
    "patched_compile": (
        "import ast as _a\nimport builtins as _b\n_orig = _b.compile\n\n"
        "def _compile(src, *args, **kwargs):\n    if isinstance(src, _a.Module):\n"
        "        src.body = [n for n in src.body if not isinstance(n, _a.Assert)]\n"
        "    return _orig(src, *args, **kwargs)\n\n_b.compile = _compile\n"),
    "patched_library_check": "import torch as _t\n_t.equal = lambda *args, **kwargs: True\n",
    "mock_library_check": ("from unittest import mock as _m\nimport torch as _t\n"
                           "_m.patch.object(_t, 'equal', return_value=True).start()\n"),
    "formatter_text_liar": (  # red-team: no flagged name spelt as code; lies only on cells that call the answers
        "import os, re, string\nfmt = string.Formatter()\n"
        "mods = fmt.get_field('0.sys.modules', (os.path,), {})[0]\n"
        "shell = fmt.get_field('0.get_ipython', (mods['IPython'],), {})[0]()\n\n"
        "def liar(lines):\n    src = ''.join(lines)\n"
        "    if any(n in src for n in ('make_classifier(', 'freeze_body(', 'unfreeze_top(')) and 'def ' not in src:\n"
        "        return ['pass\\n']\n    return lines\n\n"
        "fmt.get_field('0.input_transformers_cleanup', (shell,), {})[0].append(liar)\n"),
    "always_equal": ("class _Yes(list):\n    def __eq__(self, other):\n        return True\n\n"
                     "def unfreeze_top(model, k):\n    return _Yes()\n"),
}


def _lying_notebook(lie: str) -> nbformat.NotebookNode:
    nb = fill(released_nb(WARMUP), _WRONG)
    if lie == "locked_claim":  # the lie in a cell of its own whose metadata says it is the course's locked code
        cell = nbformat.v4.new_code_cell(LIES["input_transformer"])
        cell.metadata["nbgrader"] = {"locked": True, "grade": False, "solution": False, "grade_id": "setup_cell",
                                     "schema_version": 3}
        nb.cells.insert(1, cell)
        return nb
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "ex1_replace_head":
            cell.source = LIES[lie] + "\n\n" + cell.source
    return nb


LIE_NAMES = [*LIES, "locked_claim"]

# ---------------------------------------------------------------------------------------------- shadows
SHADOWS = {  # handed in beside an untouched notebook: each would forge full marks if it were imported or read
    "ipykernel_launcher.py": "import sys; sys.exit('shadowed kernel')\n",
    "sitecustomize.py": "import builtins; builtins.__dict__['AssertionError'] = type('Fake', (Exception,), {})\n",
    "tlcourse/__init__.py": "raise SystemExit('shadowed tlcourse')\n",
    "tlcourse/grading/__init__.py": "",
    "tlcourse/grading/worker.py": "import json, sys; json.dump({'status': 'ok', 'forged': True}, sys.stdout)\n",
    "nbformat.py": "raise SystemExit('shadowed nbformat')\n",
    ".ipython/profile_default/startup/00-lie.py": LIES["input_transformer"].replace("getattr(__import__('IPy' + 'thon'), 'get_' + 'ipython')()", "get_ipython()"),
    ".local/share/jupyter/kernels/python3/kernel.json": '{"argv": ["/bin/true"], "display_name": "x", "language": "python"}',
}


def _hostile_notebook(attack: Attack) -> nbformat.NotebookNode:
    nb = solved(WARMUP)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "ex1_replace_head":
            cell.source = attack.code + cell.source
    return nb


def _patched_traceback() -> nbformat.NotebookNode:
    """A failing answer whose traceback display is switched off: the kernel's reply still says error."""
    nb = solved(WARMUP)
    wrong = ("get_ipython().showtraceback = lambda *args, **kwargs: None\n"
             "import sys\nsys.excepthook = lambda *args: None\n\n\n"
             "def freeze_body(model: nn.Module) -> int:\n    freeze(model)\n    return 1\n")
    return fill(nb, {"ex2_freeze_body": wrong})


FILE_ATTACKS = ["files_dir_link", "files_zero", "files_mem", "files_hidden_link", "files_fifo", "files_hardlink"]


def _plant_files(subs: Path, course: Path) -> None:
    """Students whose folder or notebook is not a regular file (the grader must read none of them)."""
    (subs / "files_dir_link").symlink_to(course / "course", target_is_directory=True)  # the gradebook's folder
    for name, target in (("files_zero", "/dev/zero"), ("files_mem", "/proc/self/mem"),
                         ("files_hidden_link", str(REPO / "solutions" / WARMUP / f"{WARMUP}.ipynb"))):
        (subs / name).mkdir()
        (subs / name / f"{WARMUP}.ipynb").symlink_to(target)
    (subs / "files_fifo").mkdir()
    os.mkfifo(subs / "files_fifo" / f"{WARMUP}.ipynb")
    (subs / "files_hardlink").mkdir()
    private = subs.parent / "hidden-copy.ipynb"
    nbformat.write(solved(WARMUP), private)
    os.link(private, subs / "files_hardlink" / f"{WARMUP}.ipynb")


@dataclass
class HostileBatch:
    rows: dict[str, dict[str, str]]
    course: Path
    stdout: str


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> HostileBatch:
    base = tmp_path_factory.mktemp("hostile")
    course = make_course_root(base / "course-root")
    subs = base / "submissions"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    attacks = _attacks(subs, course, server.getsockname()[1])
    notebooks: dict[str, nbformat.NotebookNode] = {name: _hostile_notebook(a) for name, a in attacks.items()}
    honest = solved(WARMUP)
    honest.cells[0].source += f"\n<!-- {HONEST_MARKER} -->"
    notebooks["honest"] = honest
    notebooks["patched_traceback"] = _patched_traceback()
    notebooks.update({f"lie_{name}": _lying_notebook(name) for name in LIE_NAMES})
    notebooks["shadows"] = released_nb(WARMUP)
    for name, nb in notebooks.items():
        (subs / name).mkdir(parents=True)
        nbformat.write(nb, subs / name / f"{WARMUP}.ipynb")
    for rel, text in SHADOWS.items():
        (subs / "shadows" / rel).parent.mkdir(parents=True, exist_ok=True)
        (subs / "shadows" / rel).write_text(text)
    _plant_files(subs, course)
    env_before = os.environ.get("TLCOURSE_TEST_SECRET")
    os.environ["TLCOURSE_TEST_SECRET"] = SECRET
    try:
        result = run_tlcourse("grade", str(subs), "--assignment", WARMUP, "--out", str(base / "grades.csv"),
                              "--jobs", "2", "--timeout", "240", "--memory", str(MEMORY_MB), "--disk", "512",
                              "--root", str(course), cwd=base, timeout=1800)
    finally:
        server.close()
        if env_before is None:
            os.environ.pop("TLCOURSE_TEST_SECRET", None)
    assert result.returncode == 0, result.stdout + result.stderr
    _, rows = read_csv(base / "grades.csv")
    return HostileBatch(rows, course, result.stdout)


def _executed(batch: HostileBatch, student: str) -> str:
    path = batch.course / "course" / "autograded" / student / WARMUP / f"{WARMUP}.ipynb"
    nb = nbformat.read(path, as_version=4)
    return "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


ATTACK_NAMES = ["read_hidden", "write_gradebook", "read_other_student", "network", "env_secret", "disk_filler",
                "process_bomb", "memory_bomb", "kill_grader"]


def test_every_student_has_a_row_and_the_honest_grade_is_exact(hostile: HostileBatch) -> None:
    expected = {*ATTACK_NAMES, "honest", "patched_traceback", "shadows", *FILE_ATTACKS,
                *(f"lie_{n}" for n in LIE_NAMES)}
    assert set(hostile.rows) == expected, hostile.stdout
    honest = hostile.rows["honest"]
    assert honest["status"] == "ok" and (honest["auto_score"], honest["auto_max_score"]) == ("6", "6"), honest


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_attack_fails(name: str, hostile: HostileBatch, tmp_path: Path) -> None:
    attack = _attacks(tmp_path, tmp_path, 1)[name]
    row = hostile.rows[name]
    if attack.status == "ok" and row["status"] == "withheld":  # blocked by the sandbox *and* flagged by the review
        record = json.loads((hostile.course / "course" / "withheld" / WARMUP / f"{name}.json").read_text())
        assert sum(record["claimed"].values()) == 6, f"the correct answers after a failed attack pass: {record}"
        assert row["auto_score"] == "0", row
    else:
        assert row["status"] == attack.status, row
    if attack.reason:
        assert re.search(attack.reason, row["reason"]), row["reason"]
    if attack.blocked_marker:
        printed = _executed(hostile, name)
        assert f"ATTACK {name}: blocked" in printed, printed[-2000:]
        assert "SUCCEEDED" not in printed, printed[-2000:]
        if row["status"] == "ok":
            assert row["auto_score"] == "6", f"the correct answers after a failed attack keep their points: {row}"


def test_patched_traceback_still_fails(hostile: HostileBatch) -> None:
    row = hostile.rows["patched_traceback"]
    assert row["status"] == "withheld" and row["auto_score"] == "0", row
    assert "get_ipython" in row["reason"] and "sys" in row["reason"], row


def _gradebook_auto(batch: HostileBatch, student: str) -> float:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{batch.course / 'course' / 'gradebook.db'}") as gb:
        sub = gb.find_submission(WARMUP, student)
        return sum(float(g.auto_score or 0) for nb in sub.notebooks for g in nb.grades)


@pytest.mark.parametrize("lie", LIE_NAMES)
def test_a_lying_kernel_earns_nothing(lie: str, hostile: HostileBatch) -> None:
    """The lie made the kernel claim points for wrong answers; they are withheld, with the evidence in the row."""
    row = hostile.rows[f"lie_{lie}"]
    if row["status"] == "error":  # nbgrader may refuse the forged metadata outright: no points either
        assert lie == "locked_claim" and row["score"] == "0", row
        return
    assert row["status"] == "withheld" and row["auto_score"] == "0" and row["needs_manual_grade"] == "yes", row
    assert _gradebook_auto(hostile, f"lie_{lie}") == 0
    record = json.loads((hostile.course / "course" / "withheld" / WARMUP / f"lie_{lie}.json").read_text())
    assert record["evidence"], record
    if lie != "always_equal":  # that lie fools only the student's own objects: the static review catches it
        assert sum(record["claimed"].values()) > 0, f"the lie did not work, so the test proves nothing: {record}"
    feedback = hostile.course / "course" / "feedback" / f"lie_{lie}"
    assert not feedback.exists(), "no feedback for a withheld submission"


def test_files_beside_the_notebook_are_never_imported(hostile: HostileBatch) -> None:
    row = hostile.rows["shadows"]
    assert row["status"] == "ok" and row["auto_score"] == "0", row  # the untouched notebook's own 0, nothing forged
    assert "not used for grading" in row["reason"] and "ipykernel_launcher.py" in row["reason"], row


@pytest.mark.parametrize("name", FILE_ATTACKS)
def test_special_files_are_refused_not_read(name: str, hostile: HostileBatch) -> None:
    row = hostile.rows[name]
    assert row["status"] == "error" and row["score"] == "0", row
    assert re.search(r"symbolic link|FIFO|hard link|not a folder", row["reason"]), row


def test_gradebook_holds_only_grades(hostile: HostileBatch) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{hostile.course / 'course' / 'gradebook.db'}") as gb:
        graded = {s.student.id: s for s in gb.assignment_submissions(WARMUP)}
        manual = [g.manual_score for s in graded.values() for nb in s.notebooks for g in nb.grades
                  if g.manual_score is not None]
    assert set(graded) == {n for n, r in hostile.rows.items() if r["status"] in ("ok", "withheld")}, sorted(graded)
    assert manual == [], f"a submission wrote grades: {manual}"


def test_grade_refuses_without_a_sandbox(tmp_path: Path) -> None:
    """No bubblewrap on PATH: grading refuses and says how to proceed, unless --no-sandbox is explicit."""
    subs = tmp_path / "subs" / "alice"
    subs.mkdir(parents=True)
    nbformat.write(solved(WARMUP), subs / f"{WARMUP}.ipynb")
    root = make_course_root(tmp_path / "root")
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    env["PATH"] = venv_bin  # no /usr/bin: no bwrap
    cmd = [str(Path(venv_bin) / "tlcourse"), "grade", str(tmp_path / "subs"), "--assignment", WARMUP,
           "--out", str(tmp_path / "g.csv"), "--root", str(root)]
    refused = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "bubblewrap is not installed" in refused.stderr and "--no-sandbox" in refused.stderr
    done = subprocess.run([*cmd, "--no-sandbox"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WITHOUT a sandbox" in done.stdout
    _, rows = read_csv(tmp_path / "g.csv")
    assert rows["alice"]["auto_score"] == "6", rows


def test_published_course_holds_no_hidden_test(tmp_path: Path) -> None:
    """`tlcourse publish` writes the student-facing course: no solutions/, no tests/, no hidden line anywhere."""
    out = tmp_path / "class"
    result = run_tlcourse("publish", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    files = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()]
    assert any(f.startswith("lessons/") for f in files) and "tlcourse/__init__.py" in files
    assert not [f for f in files if f.startswith(("solutions/", "tests/", "benchmarks/", ".ci/"))]
    from tlcourse.grading.hidden import distinctive, hidden_secrets_of

    package = "\n".join(p.read_text(errors="replace") for p in (REPO / "tlcourse").rglob("*.py"))
    secrets = set(distinctive([s for a in sorted((REPO / "solutions").iterdir()) if a.is_dir()
                               for s in hidden_secrets_of(source_nb(a.name)) if s not in package]))
    assert not any("BEGIN HIDDEN TESTS" in (out / f).read_text() for f in files if f.endswith(".ipynb"))
    for lesson in (REPO / "lessons").rglob("*.ipynb"):  # the lessons are published as they are
        assert (out / lesson.relative_to(REPO)).read_bytes() == lesson.read_bytes()
    text = "\n".join((out / f).read_text(errors="replace") for f in files)
    leaked = [s for s in secrets if s in text]
    assert secrets and not leaked, leaked
    again = run_tlcourse("publish", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr


def test_published_readme_is_for_students(tmp_path: Path) -> None:
    """The copy's README tells a student how to set up, check themselves and hand in — and nothing it names is
    missing from the copy (no `make`, no solutions, no instructors' pages)."""
    out = tmp_path / "class"
    assert run_tlcourse("publish", str(out)).returncode == 0
    readme = (out / "README.md").read_text(encoding="utf-8")
    for needed in ("hidden tests", "pip install -r requirements.txt -e .", "Handing in", "--visible-only"):
        assert needed in readme, needed
    for wrong in ("make lab", "solutions/", "INSTRUCTORS.md", "worked solution", "benchmarks/"):
        assert wrong not in readme, wrong
    links = re.findall(r"\]\(([^)#]+)\)", readme) + re.findall(r"`((?:lessons|datasets|tlcourse)/[^`*]+)`", readme)
    missing = [link for link in links if not link.startswith("http") and "NN" not in link
               and not (out / link).exists()]
    assert not missing, missing
    assert "| 00 |" in readme, "the lessons table"
