"""The grading worker: executes one student's (already sanitised) notebooks and hands back what the kernel did.

Started by :mod:`.grade` as ``python -I -m tlcourse.grading.worker --job-fd J --result-fd R --progress-fd P``,
inside the sandbox: isolated mode (``-I``), so neither its working folder nor any ``PYTHON*`` variable is on its
import path, and everything it imports is imported before any file is copied into that folder. The kernel it starts
is isolated the same way, with a fixed command (:class:`IsolatedKernelManager`): no kernel spec, working folder or
file in it decides what runs as the kernel. It receives the job (notebooks with their hidden tests, nbgrader's execution settings) on file
descriptor ``J`` and closes it before any student code runs; it makes itself non-dumpable, so the student's kernel
(a child process) cannot read its memory or file descriptors through ``/proc``. For every cell it records the
status of the kernel's own execution reply; the parent checks the returned notebook against what it sent and fails
any graded cell whose reply was not ``ok``, whatever its outputs show.

The worker never sees the gradebook, the course folder or other submissions: the parent alone writes grades.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import DeadKernelError
from nbgrader.preprocessors import Execute
from traitlets.config import Config

from tlcourse.grading.gradebook import cell_label

__all__ = ["main", "run_job", "IsolatedKernelManager", "KERNEL_ARGV"]

PR_SET_DUMPABLE = 4
#: The kernel's command: this Python, isolated (no working folder or PYTHON* variable on its path), ipykernel behind
#: an audit hook (:mod:`.kernel_boot`: no unpickling of code, no tracing) and without its history database (a later
#: cell could read the test cells' sources back from it).
KERNEL_ARGV = (sys.executable, "-I", "-m", "tlcourse.grading.kernel_boot", "--HistoryManager.enabled=False", "-f")


class IsolatedKernelManager(AsyncKernelManager):
    """jupyter_client's (asynchronous, as nbclient expects: a blocking one never notices a dead kernel) kernel
    manager with one fixed, isolated command line, whatever kernel spec is found.

    Example:
        >>> km = IsolatedKernelManager(connection_file="/tmp/kernel-x.json")
        >>> km.format_kernel_cmd()[1:4]
        ['-I', '-m', 'tlcourse.grading.kernel_boot']
    """

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return [*KERNEL_ARGV, os.path.realpath(self.connection_file)]


def _not_dumpable() -> None:
    """Linux: no ptrace, no /proc/<pid>/{mem,fd,environ} for processes without CAP_SYS_PTRACE (the kernel)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def _read_fd(fd: int) -> dict:
    with os.fdopen(fd, "r", encoding="utf-8") as handle:
        return json.load(handle)


def _copy_files(source: Path, target: Path) -> None:
    """The course's data files (nothing of the submission but its notebooks, sent in the job), into the working
    folder."""
    if source.is_dir() and source.resolve() != target.resolve():
        shutil.copytree(source, target, dirs_exist_ok=True)


def _executor(settings: dict, progress: Any, replies: dict[int, str]) -> Any:
    cfg = Config()
    for key, value in settings.items():
        setattr(cfg.Execute, key, value)

    limit = float(settings.get("timeout") or 0)

    class TrackedExecute(Execute):
        """nbgrader's executor, also recording each cell's execution reply (``"timeout"`` for a cell interrupted
        at the limit per cell) and the cell being run."""

        started = 0.0

        def preprocess_cell(self, cell: Any, resources: dict, index: int) -> Any:
            self.started = time.monotonic()
            label = cell_label(cell, index)
            pid = getattr(getattr(getattr(self, "km", None), "provisioner", None), "process", None)
            progress.seek(0)
            progress.write(json.dumps({"cell": label, "kernel_pid": getattr(pid, "pid", None)}))
            progress.truncate()
            progress.flush()
            return super().preprocess_cell(cell, resources, index)

        def on_cell_executed(self, **kwargs: Any) -> None:
            status = kwargs["execute_reply"]["content"].get("status", "missing")
            if status != "ok" and limit and time.monotonic() - self.started >= limit - 0.5:
                status = "timeout"
            replies[kwargs["cell_index"]] = status
            super().on_cell_executed(**kwargs)

    return TrackedExecute(config=cfg, kernel_manager_class=IsolatedKernelManager)


def _execute(nb_json: dict, settings: dict, workdir: Path, progress: Any) -> tuple[dict, dict, str]:
    """Run one notebook; return (executed notebook, {cell index: reply status}, problem or "")."""
    nb = nbformat.from_dict(nb_json)
    replies: dict[int, str] = {}
    problem = ""
    try:
        nb, _ = _executor(settings, progress, replies)(nb, {"metadata": {"path": str(workdir)}})
    except DeadKernelError:
        problem = "kernel died"
    except Exception as exc:  # an executor failure (not a failing cell: those are recorded as outputs)
        problem = f"could not run: {type(exc).__name__}: {str(exc).strip()[:200]}"
    return dict(nb), {str(k): v for k, v in replies.items()}, problem


def run_job(job: dict, progress: Any) -> dict:
    """Execute the job's notebooks in order; stop at the first that cannot finish.

    Example:
        >>> import io, nbformat
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
        >>> job = {"notebooks": {"a": dict(nb)}, "execute": {"timeout": 60}, "files": "", "workdir": "."}
        >>> run_job(job, io.StringIO())["notebooks"]["a"]["replies"]  # doctest: +SKIP
        {'0': 'ok'}
    """
    started = time.monotonic()
    workdir = Path(job["workdir"])
    if job.get("files"):
        _copy_files(Path(job["files"]), workdir)
    result: dict[str, Any] = {"status": "ok", "reason": "", "notebooks": {}}
    for nb_id, nb_json in job["notebooks"].items():
        executed, replies, problem = _execute(nb_json, job["execute"], workdir, progress)
        result["notebooks"][nb_id] = {"notebook": executed, "replies": replies}
        if problem:
            result.update(status="error", failed=nb_id, problem=problem)
            break
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tlcourse.grading.worker``."""
    parser = argparse.ArgumentParser(description="tlcourse grading worker (started by `tlcourse grade`)")
    parser.add_argument("--job-fd", type=int, required=True)
    parser.add_argument("--result-fd", type=int, required=True)
    parser.add_argument("--progress-fd", type=int, required=True)
    args = parser.parse_args(argv)
    _not_dumpable()
    job = _read_fd(args.job_fd)  # read and closed before any student code runs
    for fd in (args.result_fd, args.progress_fd):
        os.set_inheritable(fd, False)  # the kernel (a child) gets neither
    with os.fdopen(args.progress_fd, "w", encoding="utf-8") as progress:
        result = run_job(job, progress)
    with os.fdopen(args.result_fd, "w", encoding="utf-8") as out:
        json.dump(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
