"""The grader's trust boundary, piece by piece and fast (no kernel): what it reads from a submission and from a
sandbox, and the canaries it slips among the tests. The end-to-end attacks are in ``test_sandbox.py``.

Each class of attack has several variants: links of every kind, special files, hard links, oversized files, unsafe
names; results of every wrong shape; canaries that an honest kernel fails and a lying one passes.
"""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tlcourse.grading import canary
from tlcourse.grading.readback import Malformed, check_result, read_progress, read_result
from tlcourse.grading.safefs import Refused, read_regular, scan
from tlcourse.grading.submissions import archive_submission, discover_submissions

NB = nbformat.writes(nbformat.v4.new_notebook()).encode()


# ------------------------------------------------------------------------------------------ special files
def _odd_files(folder: Path, secret: Path) -> dict[str, str]:
    """Plant every kind of non-regular file in ``folder``: name -> what the refusal must say."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "link_to_secret.ipynb").symlink_to(secret)
    (folder / "link_to_zero.ipynb").symlink_to("/dev/zero")
    (folder / "link_to_mem.ipynb").symlink_to("/proc/self/mem")
    (folder / "dangling.ipynb").symlink_to(folder / "nowhere")
    os.mkfifo(folder / "fifo.ipynb")
    hard = folder / "hard.ipynb"
    os.link(secret, hard)
    return {"link_to_secret.ipynb": "symbolic link", "link_to_zero.ipynb": "symbolic link",
            "link_to_mem.ipynb": "symbolic link", "dangling.ipynb": "symbolic link", "fifo.ipynb": "FIFO",
            "hard.ipynb": "hard link"}


def test_scan_refuses_every_special_file_with_its_reason(tmp_path: Path) -> None:
    secret = tmp_path / "gradebook.db"
    secret.write_text("hidden tests and grades")
    expected = _odd_files(tmp_path / "sub", secret)
    (tmp_path / "sub" / "real.ipynb").write_bytes(NB)
    (tmp_path / "sub" / "linked_dir").symlink_to(tmp_path, target_is_directory=True)
    found = scan(tmp_path / "sub")
    assert list(found.files) == ["real.ipynb"]
    refused = dict(found.refused)
    for name, why in expected.items():
        assert why in refused[name], (name, refused[name])
    assert "symbolic link" in refused["linked_dir"]  # never descended into


@pytest.mark.parametrize("target", ["/dev/zero", "/proc/self/mem", "/dev/urandom"])
def test_read_regular_never_follows_or_blocks(tmp_path: Path, target: str) -> None:
    link = tmp_path / "x.ipynb"
    link.symlink_to(target)
    with pytest.raises(Refused, match="symbolic link"):
        read_regular(link, 1024)
    with pytest.raises(Refused):
        read_regular(Path(target), 1024)


def test_read_regular_refuses_fifo_without_blocking_and_caps_sizes(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(Refused, match="FIFO"):
        read_regular(tmp_path / "fifo", 1024)  # O_NONBLOCK: returns at once even with no writer
    big = tmp_path / "big.ipynb"
    with open(big, "wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # sparse: 50 MB that cost nothing
    with pytest.raises(Refused, match="over the"):
        read_regular(big, 20 * 1024 * 1024)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "ok.ipynb").write_bytes(NB)
    (tmp_path / "hop").symlink_to(tmp_path / "d", target_is_directory=True)
    assert read_regular(Path("d/ok.ipynb"), 1024, root=tmp_path) == NB
    with pytest.raises(Refused, match="symbolic link"):  # a linked folder on the way is refused too
        read_regular(Path("hop/ok.ipynb"), 1024, root=tmp_path)
    with pytest.raises(Refused, match="plain relative"):
        read_regular(Path("../etc/passwd"), 1024, root=tmp_path)


def test_discovery_turns_every_odd_entry_into_that_students_row(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the gradebook")
    subs = tmp_path / "subs"
    (subs / "honest").mkdir(parents=True)
    (subs / "honest" / "00_a.ipynb").write_bytes(NB)
    _odd_files(subs / "links", secret)  # a folder of nothing but odd files
    (subs / "dirlink").symlink_to(tmp_path, target_is_directory=True)  # a student folder that is a link
    (subs / "filelink.ipynb").symlink_to(secret)
    os.mkfifo(subs / "pipe.ipynb")
    (subs / "nested" / "00_a").mkdir(parents=True)
    (subs / "nested" / "00_a" / "00_a.ipynb").symlink_to(secret)
    (subs / "extra").mkdir()
    (subs / "extra" / "00_a.ipynb").write_bytes(NB)
    (subs / "extra" / "ipykernel_launcher.py").write_text("raise SystemExit")  # would shadow the kernel
    (subs / "extra" / "timestamp.txt").symlink_to("/dev/zero")
    (subs / "-=HYPERLINK(1)").mkdir()
    (subs / "-=HYPERLINK(1)" / "00_a.ipynb").write_bytes(NB)
    found = {s.student: s for s in discover_submissions(subs, "00_a", ["00_a"])}
    assert found["honest"].notebooks == {"00_a": NB} and found["honest"].problem is None
    for student in ("links", "dirlink", "filelink", "pipe", "nested"):
        assert found[student].problem and not found[student].notebooks, (student, found[student])
    assert "symbolic link" in found["dirlink"].problem and "FIFO" in found["pipe"].problem
    assert found["extra"].notebooks == {"00_a": NB} and found["extra"].timestamp is None
    assert any("not used for grading: ipykernel_launcher.py" in n for n in found["extra"].notes)
    assert any("refused timestamp.txt" in n for n in found["extra"].notes)
    unsafe = [s for s in found if s.startswith("unsafe-")]
    assert unsafe and "not a safe student id" in found[unsafe[0]].problem


def test_archive_writes_the_graded_bytes_through_no_link(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    (subs / "alice").mkdir(parents=True)
    (subs / "alice" / "00_a.ipynb").write_bytes(NB)
    sub = discover_submissions(subs, "00_a", ["00_a"])[0]
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    target = tmp_path / "submitted" / "alice" / "00_a"
    target.mkdir(parents=True)
    (target / "00_a.ipynb").symlink_to(victim)  # planted: archiving must replace the link, not write through it
    archive_submission(sub, tmp_path / "submitted", "00_a")
    assert victim.read_text() == "keep me"
    assert not (target / "00_a.ipynb").is_symlink() and (target / "00_a.ipynb").read_bytes() == NB


# ------------------------------------------------------------------------------------------- read-back
BAD_RESULTS = {
    "a list": [],
    "notebooks a list": {"status": "ok", "notebooks": []},
    "reason a list": {"status": "error", "reason": ["x"]},
    "entry a string": {"notebooks": {"a": "x"}},
    "notebook missing": {"notebooks": {"a": {"replies": {}}}},
    "replies a list": {"notebooks": {"a": {"notebook": {}, "replies": ["ok"]}}},
    "reply index not a number": {"notebooks": {"a": {"notebook": {}, "replies": {"x": "ok"}}}},
    "reply status a number": {"notebooks": {"a": {"notebook": {}, "replies": {"0": 1}}}},
    "failed a dict": {"failed": {}, "notebooks": {}},
}


@pytest.mark.parametrize("name", sorted(BAD_RESULTS))
def test_results_of_the_wrong_shape_are_malformed(name: str) -> None:
    with pytest.raises(Malformed):
        check_result(BAD_RESULTS[name])


def test_result_files_are_read_as_hostile(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    assert read_result(tmp_path / "missing.json", 1024) == {}  # the worker never started
    path.write_text("")
    assert read_result(path, 1024) == {}
    path.write_text("[" * 100_000)  # deep nesting: no RecursionError escapes
    with pytest.raises(Malformed, match="not JSON"):
        read_result(path, 10**6)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(Malformed, match="not JSON"):
        read_result(path, 1024)
    path.write_text(json.dumps({"status": "ok", "notebooks": {}, "pad": "x" * 5000}))
    with pytest.raises(Malformed, match="over"):
        read_result(path, 1024)
    path.unlink()
    path.symlink_to("/dev/zero")
    with pytest.raises(Malformed, match="refused"):
        read_result(path, 1024)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(Malformed, match="refused"):
        read_result(path, 1024)


def test_progress_notes_are_shortened_and_typed(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    path.write_text(json.dumps({"cell": "=cmd|' /C calc'!A0\n" + "x" * 500, "kernel_pid": "1; rm -rf /"}))
    note = read_progress(path)
    assert note["kernel_pid"] is None and "\n" not in note["cell"] and len(note["cell"]) <= 80
    path.write_text("[1, 2]")
    assert read_progress(path) == {}
    path.unlink()
    path.symlink_to("/dev/zero")
    assert read_progress(path) == {}


# --------------------------------------------------------------------------------------------- canaries
def _test_nb() -> nbformat.NotebookNode:
    meta = {"nbgrader": {"grade": True, "solution": False, "grade_id": "t1", "points": 1, "locked": True}}
    test = nbformat.v4.new_code_cell("import torch\nassert torch.equal(double(torch.ones(1)), 2 * torch.ones(1))",
                                     metadata=meta)
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def double(x):\n    return 2 * x"), test])


def _run_cells(nb: nbformat.NotebookNode, prelude: str = "") -> dict[int, str]:
    """Execute the code cells in one Python process, as a kernel would (a cell stops at its first error);
    ``prelude`` runs first (the student's lie). Returns {index: "ok" | "error"}."""
    script = ("import json, sys\nns = {}\nexec(compile(sys.argv[1], '<prelude>', 'exec'), ns)\nreplies = {}\n"
              "for i, src in enumerate(json.loads(sys.argv[2])):\n"
              "    try:\n        exec(ns.get('_compile', compile)(src, f'<cell {i}>', 'exec'), ns)\n"
              "        replies[i] = 'ok'\n    except BaseException:\n"
              "        replies[i] = ns.get('_status', lambda: 'error')()\nprint(json.dumps(replies))\n")
    sources = [c.source for c in nb.cells]
    out = subprocess.run([sys.executable, "-c", script, prelude, json.dumps(sources)], capture_output=True,
                         text=True, timeout=120, check=True)
    return {int(k): v for k, v in json.loads(out.stdout).items()}


def test_an_honest_kernel_fails_every_canary() -> None:
    for seed in range(5):
        sent, marks = canary.insert(_test_nb(), random.Random(seed), names=NAMES)
        replies = _run_cells(sent)
        assert canary.verdict(marks, replies) == [], seed
        assert replies[1] == "ok", "the real test passes"


NAMES = canary.answer_names(["def double(x):\n    return 2 * x"])
LIES = {  # a student's lie, as a prelude: each makes the real test pass for a wrong `double`
    "swallow every error": "_status = lambda: 'ok'",
    "strip asserts at compile": ("import ast\n_orig = compile\n"
                                 "def _compile(src, name, mode):\n"
                                 "    tree = ast.parse(src)\n"
                                 "    tree.body = [n for n in tree.body if not isinstance(n, ast.Assert)]\n"
                                 "    return _orig(tree, name, mode)\n"),
    "torch.equal patched": "import torch\ntorch.equal = lambda *a, **k: True",
    "assert turned off through the library check it calls": (
        "import torch\n_eq = torch.equal\ntorch.equal = lambda a, b: True if a.numel() == 1 else _eq(a, b)"),
}


@pytest.mark.parametrize("lie", sorted(LIES))
def test_a_lying_kernel_passes_a_canary(lie: str) -> None:
    nb = _test_nb()
    nb.cells[0].source = "def double(x):\n    return x  # wrong"
    caught = 0
    for seed in range(3):
        sent, marks = canary.insert(nb, random.Random(seed), names=NAMES)
        caught += bool(canary.verdict(marks, _run_cells(sent, LIES[lie])))
    assert caught == 3, f"the lie {lie!r} went unnoticed in {3 - caught} of 3 runs"


def test_canaries_are_fresh_per_run_and_stripped_exactly() -> None:
    nb = _test_nb()
    first, marks1 = canary.insert(nb, random.Random(1), names=NAMES)
    second, marks2 = canary.insert(nb, random.Random(2), names=NAMES)
    assert [c.source for c in marks1.values()] != [c.source for c in marks2.values()]
    assert canary.strip(first, marks1).cells == nb.cells
    assert all(c.kind in {*canary.CANARIES, canary.SETUP} for c in marks1.values())
    test_source = nb.cells[1].source
    assert any(c.kind == "mirror" and c.source == test_source for c in marks1.values()), "a mirror is the test itself"


# ---------------------------------------------------------------------------------------- worker isolation
def test_worker_and_kernel_start_isolated(tmp_path: Path) -> None:
    """A file in the working folder named like a module the worker or the kernel imports is never imported."""
    from tlcourse.grading.worker import KERNEL_ARGV

    for name in ("ipykernel_launcher.py", "nbformat.py", "json.py", "tlcourse.py"):
        (tmp_path / name).write_text("raise SystemExit('shadowed')\n")
    worker = subprocess.run([sys.executable, "-I", "-c", "import tlcourse.grading.worker, json, nbformat; print('ok')"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert worker.stdout.strip() == "ok", worker.stderr
    assert KERNEL_ARGV[1:4] == ("-I", "-m", "tlcourse.grading.kernel_boot")
    kernel = subprocess.run([*KERNEL_ARGV[:4], "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "shadowed" not in kernel.stdout + kernel.stderr and kernel.returncode == 0, kernel.stderr[-500:]
    plain = subprocess.run([sys.executable, "-m", "ipykernel_launcher", "--help"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert "shadowed" in plain.stderr, "without -I the file would have been imported (the test can fail)"


# ------------------------------------------------------------------------------------------------ feedback
def test_an_answer_cell_cannot_carry_a_hidden_test_into_feedback() -> None:
    """Code a student wrote may read a test cell while it runs and print it, encoded, from a later answer cell."""
    import base64
    import codecs

    from tlcourse.grading import HideHiddenTests

    hidden = "assert freeze_body(build(5)) == 1280 * 5 + 5, 'count, do not hard-code'"
    meta = {"nbgrader": {"grade": True, "solution": False, "grade_id": "t1", "points": 1, "locked": True}}
    test = nbformat.v4.new_code_cell(f"assert ok\n### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS",
                                     metadata=meta)
    answer_meta = {"nbgrader": {"grade": False, "solution": True, "grade_id": "a2", "locked": False}}
    leaks = [base64.b64encode(hidden.encode()).decode(), codecs.encode(hidden, "rot13"), hidden[::-1],
             hidden.encode().hex()]
    answers = [nbformat.v4.new_code_cell("print(x)", metadata=answer_meta,
                                         outputs=[nbformat.v4.new_output("stream", name="stdout", text=leak)])
               for leak in leaks]
    honest = nbformat.v4.new_code_cell("print(3)", metadata=answer_meta,
                                       outputs=[nbformat.v4.new_output("stream", name="stdout", text="3 trainable\n")])
    separated = nbformat.v4.new_code_cell("print(x)", metadata=answer_meta, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="|".join(hidden))])  # an encoding no filter lists
    nb = nbformat.v4.new_notebook(cells=[test, *answers, separated, honest])
    out, _ = HideHiddenTests().preprocess(copy.deepcopy(nb), {})
    texts = [o.get("text", "") for c in out.cells[1:] for o in c.outputs]
    assert all("not shown in feedback" in t for t in texts), texts
    site, _ = HideHiddenTests(keep_outputs=True).preprocess(copy.deepcopy(nb), {})
    kept = [o.get("text", "") for c in site.cells[1:] for o in c.outputs]
    assert all("output hidden by the grader" in t for t in kept[:4]), "the site still guards known encodings"
    assert kept[-1] == "3 trainable\n", "an honest print stays on the site"


def test_the_worker_notices_a_dead_kernel_at_once(tmp_path: Path) -> None:
    """The isolated kernel manager must be nbclient's asynchronous kind: with a blocking one, a kernel killed by
    the memory limit (or os._exit) left the worker waiting until the submission's time limit."""
    import io
    import time

    from tlcourse.grading.worker import run_job

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os\nos._exit(1)"),
                                         nbformat.v4.new_code_cell("1 + 1")])
    job = {"notebooks": {"a": dict(nb)}, "execute": {"timeout": 60, "kernel_name": "python3"}, "files": "",
           "workdir": str(tmp_path)}
    started = time.monotonic()
    result = run_job(job, io.StringIO())
    assert (result["status"], result.get("problem")) == ("error", "kernel died"), result
    assert time.monotonic() - started < 45, "the dead kernel was noticed only by a timeout"


PICKLE_RCE = b"cposix\nsystem\n(S'echo PICKLE-RCE'\ntR."


@pytest.mark.parametrize("load", [
    "import pickle; pickle.loads(PAYLOAD)",
    "import pandas, io; pandas.read_pickle(io.BytesIO(PAYLOAD))",
    "import torch, io; torch.load(io.BytesIO(PAYLOAD), weights_only=False)",
    "import sys; sys.settrace(lambda *a: None)",
    "import threading; threading.settrace(lambda *a: None); t = threading.Thread(target=print); t.start(); "
    "t.join(); raise SystemExit('traced thread ran') if threading.gettrace() is None else None",
])
def test_the_grading_kernel_refuses_code_in_pickles_and_tracing(load: str, tmp_path: Path) -> None:
    """The audit hook of the grading kernel holds whatever route the code took (the review sees only spelling)."""
    code = f"import tlcourse.grading.kernel_boot as k; k.arm(); PAYLOAD = {PICKLE_RCE!r}\n{load}"
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert "PICKLE-RCE" not in done.stdout, done.stdout
    assert done.returncode != 0 and "not allowed while grading" in done.stderr, done.stderr[-800:]


def test_the_grading_kernel_still_unpickles_data(tmp_path: Path) -> None:
    code = ("import tlcourse.grading.kernel_boot as k; k.arm(); import io, pickle, collections, torch, numpy\n"
            "buf = io.BytesIO(); torch.save({'w': torch.ones(2), 'a': numpy.arange(3)}, buf); buf.seek(0)\n"
            "d = torch.load(buf, weights_only=False); assert d['w'].sum() == 2 and d['a'].sum() == 3\n"
            "assert pickle.loads(pickle.dumps(collections.OrderedDict(a=1)))['a'] == 1; print('ok')")
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.stdout.strip() == "ok", done.stderr[-800:]
