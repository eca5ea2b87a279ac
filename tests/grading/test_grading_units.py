"""Fast unit tests of the grading helpers (no kernel, no nbgrader run): the parent's checks of what a worker
returns, the sandbox's command line and limits, hidden-test handling, submission layouts and CSV rows."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import nbformat
import pytest

from tlcourse.grading.course import CourseError
from tlcourse.grading.grade import _verified
from tlcourse.grading.gradebook import GradeRow
from tlcourse.grading.hidden import distinctive, hidden_secrets_of, hidden_test_lines, strip_hidden_tests
from tlcourse.grading.sandbox import WORKDIR, Limits, SandboxSpec, bwrap_argv, make_cgroup
from tlcourse.grading.submissions import discover_submissions


def _graded_nb() -> nbformat.NotebookNode:
    test_meta = {"nbgrader": {"grade": True, "grade_id": "ex1_tests", "locked": True, "points": 2, "solution": False,
                              "schema_version": 3, "task": False}}
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("answer = 41", id="a"),
        nbformat.v4.new_code_cell("assert answer == 42", id="t", metadata=test_meta),
    ])


def _returned(nb: nbformat.NotebookNode, replies: dict[int, str]) -> dict:
    return {"notebook": dict(copy.deepcopy(nb)), "replies": {str(k): v for k, v in replies.items()}}


def test_a_graded_cell_whose_reply_failed_earns_nothing_even_without_error_output() -> None:
    """A submission that hides its traceback still fails: the parent trusts the reply status, not the outputs."""
    sent = _graded_nb()
    nb, replies = _verified(sent, _returned(sent, {0: "ok", 1: "error"}))
    assert replies == {0: "ok", 1: "error"}
    assert [o.output_type for o in nb.cells[1].outputs] == ["error"]
    assert "CellFailed" in nb.cells[1].outputs[0].ename
    missing, _ = _verified(sent, _returned(sent, {0: "ok"}))  # never executed: no reply at all
    assert missing.cells[1].outputs[0].evalue == "did not run"
    fine, _ = _verified(sent, _returned(sent, {0: "ok", 1: "ok"}))
    assert fine.cells[1].outputs == []


def test_a_tampered_notebook_is_refused() -> None:
    sent = _graded_nb()
    forged = copy.deepcopy(sent)
    forged.cells[1].source = "pass  # the test, rewritten"
    with pytest.raises(CourseError, match="does not match"):
        _verified(sent, _returned(forged, {0: "ok", 1: "ok"}))
    extra = copy.deepcopy(sent)
    extra.cells.append(nbformat.v4.new_code_cell("print('hi')"))
    with pytest.raises(CourseError, match="does not match"):
        _verified(sent, _returned(extra, {0: "ok", 1: "ok", 2: "ok"}))
    with pytest.raises(CourseError, match="no readable notebook"):
        _verified(sent, {"replies": {}})


def test_sandbox_command_line() -> None:
    argv = bwrap_argv(SandboxSpec(WORKDIR, Path("/tmp/files"), {"HOME": str(WORKDIR)}, Limits(disk_mb=10)),
                      ["python", "-V"])
    for flag in ("--unshare-all", "--unshare-user", "--cap-drop", "--die-with-parent", "--clearenv", "--new-session"):
        assert flag in argv
    binds = {argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind"}
    assert "/etc" not in binds and "/home" not in binds and "/root" not in binds, "never whole /etc or homes"
    assert not any(b.rstrip("/").endswith("solutions") for b in binds)
    tmpfs = [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"]
    assert tmpfs == ["/tmp", str(WORKDIR)] and argv[argv.index("--size") + 1] == str(10 * 1024 * 1024)
    assert argv.index("--tmpfs") < argv.index("--ro-bind"), "private folders first, read-only binds on top"
    assert argv[-3:] == ["--", "python", "-V"] and argv[-6:-3] == ["--setenv", "HOME", str(WORKDIR)]


def test_no_cgroup_where_none_can_be_made(tmp_path: Path) -> None:
    assert make_cgroup("x", Limits(), root=tmp_path) is None


def test_hidden_test_helpers() -> None:
    src = "x = 1\nassert x\n### BEGIN HIDDEN TESTS\nassert x == 1, 'secret'\n### END HIDDEN TESTS"
    assert hidden_test_lines(src) == ["assert x == 1, 'secret'"]
    assert "secret" not in strip_hidden_tests(src) and "hidden tests run here" in strip_hidden_tests(src)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src)])
    assert hidden_secrets_of(nb) == ["assert x == 1, 'secret'"]
    assert distinctive(["super().__init__()", "assert x == 1, 'secret'"]) == ["assert x == 1, 'secret'"]


def test_submission_layouts(tmp_path: Path) -> None:
    (tmp_path / "alice" / "00_a").mkdir(parents=True)
    (tmp_path / "alice" / "00_a" / "00_a.ipynb").write_text("{}")
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "00_a (1).ipynb").write_text("{}")  # an LMS renamed it
    (tmp_path / "carol.ipynb").write_text("{}")
    (tmp_path / "dave").mkdir()
    subs = {s.student: s for s in discover_submissions(tmp_path, "00_a", ["00_a"])}
    assert set(subs) == {"alice", "bob", "carol", "dave"}
    assert subs["bob"].notes == ["graded 00_a (1).ipynb as 00_a.ipynb"]
    assert subs["dave"].problem.startswith("no submitted notebook")
    with pytest.raises(CourseError, match="not a folder"):
        discover_submissions(tmp_path / "missing", "00_a", ["00_a"])


def test_grade_row_as_csv() -> None:
    row = GradeRow("alice", "00_a", 6.0, 8.0, "ok", "", 6.0, 6.0, True).as_csv()
    assert (row["score"], row["max_score"], row["needs_manual_grade"]) == ("6", "8", "yes")


def _fake_v2(tmp_path: Path, own: str) -> Path:
    """A cgroup v2 tree as files: the root, and the grader's own (delegated) cgroup."""
    root = tmp_path / "cgroup"
    (root / own).mkdir(parents=True)
    for folder in (root, root / own):
        (folder / "cgroup.controllers").write_text("memory pids")
        (folder / "cgroup.procs").write_text("")
        (folder / "cgroup.subtree_control").write_text("")
    return root


def test_a_delegated_cgroup_serves_a_grader_without_root(tmp_path: Path) -> None:
    """v2 delegation (systemd-run --user --scope -p Delegate=yes): the grader moves into a leaf of its own cgroup
    and makes one child per submission beside it, with the limits."""
    from tlcourse.grading.sandbox import _own_cgroup, _v2

    own = "user.slice/user-1000.slice/run-grade.scope"
    root = _fake_v2(tmp_path, own)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(f"0::/{own}\n")
    assert _own_cgroup(root, proc) == root / own
    assert (root / own / "grader" / "cgroup.procs").read_text() == str(os.getpid()), "moved into its own leaf"
    proc.write_text("0::/\n")
    assert _own_cgroup(root, proc) is None, "the root cgroup is never 'delegated'"
    group = _v2("alice", Limits(memory_mb=100, processes=7), root)  # as root in this test: the course-wide group
    assert group is not None and (group.paths[0] / "pids.max").read_text() == "7"
    assert (group.paths[0] / "memory.max").read_text() == str(100 * 1024 * 1024)
