"""``tlcourse grade``: autograde a folder of submissions, each in a sandboxed worker; this process alone grades.

For each student the parent (this process) reads and sanitises the submission with nbgrader (clear outputs,
de-duplicate and restore grade cells from the gradebook, fix the kernel), hands the sanitised notebooks to a worker
(:mod:`.worker`) in a sandbox (:mod:`.sandbox`), and waits at most ``timeout`` seconds. What the worker returns is
untrusted: the parent reads it as hostile data (:mod:`.readback`), checks that every cell it got back is the cell it
sent, fails every graded cell whose kernel reply was not ``ok`` (whatever its outputs show), removes active content
from everything the student's kernel produced (:mod:`.sanitize`), and only then lets nbgrader store the grades — the
worker never sees the gradebook.

A kernel can lie about its own results, so two checks decide whether the points may count: canary cells that must
fail (:mod:`.canary`) and a static review of the student's own code (:mod:`.review`). A submission that fails
either is **withheld**: graded and stored for the formgrader, but with no automatic points in the gradebook (every
test cell waits for an instructor's score) and no feedback, and its row says why. A broken or hostile submission
becomes a CSV row with ``status="error"``; any failure while handling one student is that student's row, and the
batch always finishes with a row for everyone.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from tlcourse.grading import canary
from tlcourse.grading.course import (
    CourseError,
    course_dir,
    course_files,
    load_nbgrader_config,
    log_errors,
    nbgrader_api,
    open_gradebook,
    parse_notebook,
    read_notebook,
    source_notebooks,
    step_dir,
    withheld_dir,
)
from tlcourse.grading.gradebook import (
    CellInfo,
    GradeRow,
    cell_info,
    cell_label,
    error_row,
    row_from_gradebook,
    write_grades_csv,
)
from tlcourse.grading.lateness import parse_time
from tlcourse.grading.readback import Malformed, plain, read_log_tail, read_progress, read_result
from tlcourse.grading.safefs import write_new
from tlcourse.grading.sandbox import (
    FILES,
    WORKDIR,
    Cgroup,
    Limits,
    SandboxSpec,
    bwrap_argv,
    make_cgroup,
    rlimits,
    sandbox_problem,
)
from tlcourse.grading.submissions import StudentSubmission, archive_submission, discover_submissions
from tlcourse.threads import THREAD_VARS, allowed_cpus, explicit_threads

__all__ = ["grade", "DEFAULT_TIMEOUT", "WITHHELD"]

DEFAULT_TIMEOUT = 600.0  # seconds per submission (all its notebooks)
WITHHELD = "withheld"  # a row's status when the points wait for an instructor's review


def apply_due_dates(cfg: Any, coursedir: Any, assignment: str) -> None:
    """Record the assignment's due date (``c.Tlcourse.due_dates``) in the gradebook, where nbgrader reads it."""
    due = dict(cfg.get("Tlcourse", {}).get("due_dates", {})).get(assignment)
    if not due:
        return
    utc = parse_time(str(due), f"c.Tlcourse.due_dates[{assignment!r}]").astimezone(UTC)
    with open_gradebook(coursedir) as gb:  # nbgrader keeps naive UTC times (its parse_utc misreads "+01:00" offsets)
        gb.update_or_create_assignment(assignment, duedate=utc.replace(tzinfo=None))



@dataclass
class _Job:
    """One submission on its way: what was sent, and the worker running it."""

    sub: StudentSubmission
    home: Path  # host folder of this job: result.json, progress.json, worker.log, files/
    notebooks: dict[str, Any] = field(default_factory=dict)  # sanitised notebooks with canaries, as sent
    canaries: dict[str, dict[int, canary.Canary]] = field(default_factory=dict)  # per notebook: index -> canary
    notes: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # why the points are withheld
    proc: subprocess.Popen | None = None
    cgroup: Cgroup | None = None
    started: float = 0.0


@dataclass
class _Batch:
    """What every job of one `grade` call shares."""

    assignment: str
    cfg: Any
    coursedir: Any
    infos: dict[str, CellInfo]
    trusted: dict[str, frozenset[str]]  # per notebook: the sources of the course's own cells
    names: dict[str, frozenset[str]]  # per notebook: the names its answer cells define (stood in for by mirrors)
    source_files: dict[str, Path]
    folder: Path  # the temporary batch folder
    profile: str
    jobs: int
    sandbox: bool
    limits: Limits
    execute: dict  # nbgrader Execute settings for the worker


# ------------------------------------------------------------------------------------------------ preparing
def _submission_notes(nb: Any, info: CellInfo) -> list[str]:
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


def _sanitise(nb: Any, nb_id: str, student: str, batch: _Batch) -> Any:
    """nbgrader's autograde sanitising, done here (it reads the gradebook): outputs cleared, duplicated grade ids
    dropped, deleted grade cells restored, locked cells and the kernel reset to the source's; a Colab setup cell
    dropped."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        OverwriteCells,
        OverwriteKernelspec,
    )

    from tlcourse.launch import is_colab_setup_cell

    resources = {"nbgrader": {"notebook": nb_id, "assignment": batch.assignment, "student": student,
                              "db_url": batch.coursedir.db_url}}
    # the class copy's Colab setup cell (tlcourse publish --colab) does nothing off Colab: dropped, not reviewed
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and not c.metadata.get("nbgrader")
                                            and is_colab_setup_cell(c.source))]
    try:
        nb, resources = ClearOutput(config=batch.cfg)(nb, resources)
        nb, resources = DeduplicateIds(config=batch.cfg)(nb, resources)
        for cell in nb.cells:  # DeduplicateIds leaves `nbgrader: {}` on the extra copies, which nbgrader rejects
            if cell.metadata.get("nbgrader") == {}:
                del cell.metadata["nbgrader"]
        for pp in (OverwriteKernelspec, OverwriteCells, CheckCellMetadata):
            nb, resources = pp(config=batch.cfg)(nb, resources)
    except Exception as exc:
        raise CourseError(f"nbgrader could not read the grading cells of {nb_id}.ipynb ({type(exc).__name__}: "
                          f"{str(exc)[:160]}) — the cell metadata were edited; grade it by hand") from exc
    return nb


def _prepare(sub: StudentSubmission, batch: _Batch) -> _Job:
    """Parse and sanitise a submission's notebooks, slip the canaries in, stage the course's data files (nothing
    else of the submission: no file of it can shadow a module). Raises CourseError."""
    job = _Job(sub, batch.folder / "students" / sub.student, notes=list(sub.notes))
    rng = random.Random(secrets.randbits(64))  # per run: canaries cannot be recognised or precomputed
    for nb_id, data in sub.notebooks.items():
        nb = parse_notebook(data, f"{nb_id}.ipynb")
        job.notes += _submission_notes(nb, batch.infos[nb_id])
        job.notebooks[nb_id], job.canaries[nb_id] = canary.insert(_sanitise(nb, nb_id, sub.student, batch), rng,
                                                                  names=batch.names[nb_id])
    files = job.home / "files"
    files.mkdir(parents=True)
    for rel, path in batch.source_files.items():
        (files / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, files / rel)
    return job


# -------------------------------------------------------------------------------------------------- running
def _grading_env(batch: _Batch, workdir: Path) -> dict[str, str]:
    """The worker's environment: an allow-list under the sandbox (nothing of the grader's own variables)."""
    threads = str(max(1, allowed_cpus() // batch.jobs))  # the CPUs this grader may use, shared by its workers
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
           "HOME": str(workdir), "USER": "student", "LOGNAME": "student", "LANG": "C.UTF-8",
           "TMPDIR": "/tmp" if batch.sandbox else str(workdir / "tmp"), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONNOUSERSITE": "1", "PYTHONUNBUFFERED": "1", "NBGRADER_EXECUTION": "autograde",
           "TLCOURSE_PROFILE": batch.profile, "TLCOURSE_CACHE_DIR": str(workdir / ".cache" / "features"),
           "HF_HOME": str(workdir / ".cache" / "huggingface"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TORCH_HOME": str(workdir / ".cache" / "torch"), "MPLCONFIGDIR": str(workdir / ".config" / "matplotlib"),
           "IPYTHONDIR": str(workdir / ".ipython"), "JUPYTER_CONFIG_DIR": str(workdir / ".jupyter"),
           "JUPYTER_DATA_DIR": str(workdir / ".local" / "share" / "jupyter"),
           "JUPYTER_RUNTIME_DIR": str(workdir / ".local" / "share" / "jupyter" / "runtime"),
           **{var: explicit_threads().get(var, threads) for var in THREAD_VARS}}
    for var in ("TLCOURSE_DATA_MIRROR", "TLCOURSE_DATA_HOME", "TLCOURSE_DEVICE", "CUDA_VISIBLE_DEVICES"):
        if os.environ.get(var):
            env[var] = os.environ[var]
    return env


def _data_dirs() -> tuple[Path, ...]:
    """The read-only data a lesson may load: the mirror and the data home."""
    from tlcourse.data import data_home, mirror_dir

    dirs = [mirror_dir(), data_home()]
    return tuple(sorted({d.resolve() for d in dirs if d is not None and d.is_dir()}))


def _folders(job: _Job, batch: _Batch) -> tuple[Path, Path]:
    """(work folder, job files) as the worker sees them: in the sandbox a private tmpfs that it fills from the
    read-only files; without one, the job's files folder itself (nothing to copy)."""
    return (WORKDIR, FILES) if batch.sandbox else (job.home / "files", job.home / "files")


def _command(job: _Job, batch: _Batch, fds: dict[str, int]) -> tuple[list[str], dict[str, str] | None]:
    worker = [sys.executable, "-I", "-m", "tlcourse.grading.worker", "--job-fd", str(fds["job"]),
              "--result-fd", str(fds["result"]), "--progress-fd", str(fds["progress"])]
    workdir, _ = _folders(job, batch)
    if not batch.sandbox:
        (workdir / "tmp").mkdir(parents=True, exist_ok=True)
        return worker, {**os.environ, **_grading_env(batch, workdir)}
    spec = SandboxSpec(workdir, job.home / "files", _grading_env(batch, workdir), batch.limits, _data_dirs())
    return bwrap_argv(spec, worker), {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _start(job: _Job, batch: _Batch) -> None:
    """Start the worker of a prepared job (the job reaches it through a file descriptor, never a path)."""
    workdir, files = _folders(job, batch)
    spec = {"notebooks": job.notebooks, "execute": batch.execute, "files": str(files), "workdir": str(workdir)}
    (job.home / "job.json").write_text(json.dumps(spec), encoding="utf-8")
    new = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fds = {"job": os.open(job.home / "job.json", os.O_RDONLY),
           "result": os.open(job.home / "result.json", new, 0o600),
           "progress": os.open(job.home / "progress.json", new, 0o600)}
    (job.home / "job.json").unlink()  # the hidden tests exist only behind the descriptor the worker reads once
    argv, env = _command(job, batch, fds)
    job.cgroup = make_cgroup(f"{os.getpid()}-{job.sub.student}", batch.limits)
    try:
        with open(job.home / "worker.log", "wb") as log:
            job.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        env=env, cwd=job.home, pass_fds=tuple(fds.values()),
                                        preexec_fn=rlimits(batch.limits, job.cgroup), start_new_session=True)
    finally:
        for fd in fds.values():
            os.close(fd)
    job.started = time.monotonic()


def _stop(job: _Job, sandboxed: bool) -> None:
    """Kill a worker and everything it started: in the sandbox its PID namespace dies with it; without one, its
    kernel (in a session of its own) is stopped by the pid the worker reported — a pid that, from a sandbox, would
    name some other process of this machine."""
    if job.proc is not None and job.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.proc.pid, 9)
        job.proc.wait()
    if not sandboxed:
        _kill_unsandboxed_kernel(job)


def _release(job: _Job) -> None:
    """Empty and remove the job's cgroup (after its limits were read)."""
    if job.cgroup is not None:
        job.cgroup.remove()


def _kill_unsandboxed_kernel(job: _Job) -> None:
    """Without a sandbox the kernel runs in a session of its own: stop it by the pid the worker reported."""
    import psutil

    with contextlib.suppress(OSError, ValueError, psutil.Error):
        pid = read_progress(job.home / "progress.json").get("kernel_pid")
        if pid:
            kernel = psutil.Process(int(pid))
            if "ipykernel" in " ".join(kernel.cmdline()):  # the pid was not reused by someone else
                kernel.kill()


# ------------------------------------------------------------------------------------------------ outcomes
def _where(job: _Job) -> str:
    return read_progress(job.home / "progress.json").get("cell", "?")


def _limit_reason(job: _Job, batch: _Batch) -> str:
    if job.cgroup is not None and job.cgroup.out_of_memory():
        return f" — the memory limit of {batch.limits.memory_mb} MB was reached"
    if job.cgroup is not None and job.cgroup.hit_process_limit():
        return f" — the limit of {batch.limits.processes} processes was reached"
    return ""


def _failed_reply(cell: Any, status: str | None) -> None:
    """A graded cell whose kernel reply was not ``ok`` earns nothing, whatever its outputs show."""
    if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
        return
    from nbformat import NotebookNode

    said = "did not run" if status is None else f"the kernel replied {status!r}"
    cell.setdefault("outputs", []).append(NotebookNode(output_type="error", ename="CellFailed", evalue=said,
                                                       traceback=[f"CellFailed: {said} (outputs hidden or lost)"]))


def _verified(sent: Any, returned: dict) -> tuple[Any, dict[int, str]]:
    """(the executed notebook, {cell index: reply}) if it holds exactly the cells that were sent; graded cells
    failed by their reply."""
    import nbformat

    try:
        nb = nbformat.from_dict(returned["notebook"])
        replies = {int(k): v for k, v in returned.get("replies", {}).items()}
        shape = [(c.get("cell_type"), c.get("source"), c.get("metadata", {}).get("nbgrader")) for c in nb.cells]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CourseError("the worker returned no readable notebook: grade by hand") from exc
    if shape != [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in sent.cells]:
        raise CourseError("the executed notebook does not match the one sent for grading (tampering?): grade by hand")
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and replies.get(index) != "ok":
            _failed_reply(cell, replies.get(index))
    return nb, replies


def _lies(nb_id: str, clean: Any, replies: dict[int, str], batch: _Batch) -> list[str]:
    """Why the points of one executed notebook (canaries stripped) may not count: the static review's findings
    on the student's own cells. A cell the review could not parse counts only when the kernel ran it anyway."""
    from tlcourse.grading.review import review_notebook

    labels = {cell_label(c, i): i for i, c in enumerate(clean.cells)}
    found = []
    for f in review_notebook(clean, batch.trusted[nb_id]):
        if f.rule == "unparsable" and replies.get(labels.get(f.cell, -1)) != "ok":
            continue
        found.append(f"{nb_id}.ipynb {f.cell} line {f.line}: {f.rule} ({plain(f.evidence, 80)!r})")
    return found


def _checked(job: _Job, nb_id: str, returned: dict, batch: _Batch) -> Any:
    """One returned notebook verified, canaries read and stripped, the student's code reviewed, active content
    removed: what nbgrader may store. Evidence against the submission lands in ``job.evidence``."""
    from tlcourse.grading.sanitize import sanitize_notebook

    nb, replies = _verified(job.notebooks[nb_id], returned)
    marks = job.canaries.get(nb_id, {})
    job.evidence += canary.verdict(marks, replies)
    keep = [i for i in range(len(nb.cells)) if i not in marks]
    clean = canary.strip(nb, marks)
    clean_replies = {new: replies[old] for new, old in enumerate(keep) if old in replies}
    job.evidence += _lies(nb_id, clean, clean_replies, batch)
    job.notes += _timeouts(clean, clean_replies, batch.execute["timeout"])
    removed = sanitize_notebook(clean, batch.trusted[nb_id])
    job.notes += [n for n in removed if "widget" not in n]  # the lessons' own widgets: not worth a word per row
    return clean


def _timeouts(nb: Any, replies: dict[int, str], limit: int) -> list[str]:
    """Cells interrupted at the limit per cell: their KeyboardInterrupt becomes a plain "timed out" error."""
    said = f"timed out after {limit} s (the limit per cell)"
    notes = []
    for index, cell in enumerate(nb.cells):
        if replies.get(index) != "timeout":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                out.ename, out.evalue, out.traceback = "TimeoutError", said, [f"TimeoutError: {said}"]
        notes.append(f"{cell_label(cell, index)} {said}")
    return notes


def _outcome(job: _Job, batch: _Batch, timeout: float, timed_out: bool) -> tuple[str, str, float]:
    """(status, reason, seconds); on "ok" or "withheld" the checked notebooks are staged for nbgrader."""
    import nbformat

    seconds = round(time.monotonic() - job.started, 1)
    if timed_out:
        return "error", (f"timed out after {timeout:g} s (the limit per submission) while running {_where(job)}: "
                         "an endless loop? Re-grade with a larger --timeout if the work is just slow"), seconds
    try:
        result = read_result(job.home / "result.json", batch.limits.output_mb * 1024 * 1024)
    except Malformed as exc:
        return "error", f"the grading process handed back no usable result: {exc}", seconds
    if not result:
        return "error", (f"the grading process ended without a result while running {_where(job)} (killed from "
                         f"inside?){_limit_reason(job, batch)}"), seconds
    if result.get("reason"):
        return "error", plain(result["reason"]), seconds
    staged = batch.folder / "staged" / job.sub.student / batch.assignment
    for nb_id in job.notebooks:
        returned = result.get("notebooks", {}).get(nb_id)
        if returned is None:
            break
        if result.get("failed") == nb_id:
            if result.get("problem") == "kernel died":
                return "error", (f"the kernel died while running {_where(job)} of {nb_id}.ipynb (os._exit, a crash, "
                                 f"or out of memory){_limit_reason(job, batch)}"), seconds
            return "error", f"{plain(result.get('problem', ''))} ({nb_id}.ipynb)", seconds
        try:
            nb = _checked(job, nb_id, returned, batch)
        except CourseError as exc:
            return "error", str(exc), seconds
        staged.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, staged / f"{nb_id}.ipynb")
    return (WITHHELD if job.evidence else "ok"), "", seconds


# ------------------------------------------------------------------------------------------------- grading
def _writer(cfg: Any, batch_folder: Path) -> Any:
    """nbgrader's autograde minus clearing outputs and executing (the parent sanitised, the worker executed)."""
    from nbgrader.converters import Autograde

    writer_cfg = copy.deepcopy(cfg)
    writer_cfg.CourseDirectory.submitted_directory = str(batch_folder / "staged")
    traits = Autograde.class_traits()
    sanitize = cfg.Autograde.get("sanitize_preprocessors", traits["sanitize_preprocessors"].default())
    execute = cfg.Autograde.get("autograde_preprocessors", traits["autograde_preprocessors"].default())
    writer_cfg.Autograde.sanitize_preprocessors = [p for p in sanitize if _pp_name(p) != "ClearOutput"]
    writer_cfg.Autograde.autograde_preprocessors = [p for p in execute if _pp_name(p) != "Execute"]
    return nbgrader_api(writer_cfg)


def _pp_name(preprocessor: Any) -> str:
    """A preprocessor's class name, whether it is given as a class or as a dotted string."""
    return getattr(preprocessor, "__name__", str(preprocessor).rsplit(".", 1)[-1])


def _record(job: _Job, batch: _Batch, writer: Any, status: str, reason: str, feedback: bool) -> GradeRow:
    """Store the grades of a finished job (or its error row); this process is the gradebook's only writer."""
    sub, coursedir = job.sub, batch.coursedir
    archive_submission(sub, step_dir(coursedir, "submitted_directory"), batch.assignment)
    withheld = _withheld_file(batch, sub.student)
    withheld.unlink(missing_ok=True)
    if status != "ok":
        stale = Path(coursedir.format_path(coursedir.feedback_directory, sub.student, batch.assignment))
        shutil.rmtree(stale, ignore_errors=True)  # never release feedback of an earlier run (or of a withheld one)
    if status not in ("ok", WITHHELD):
        return error_row(sub.student, batch.assignment, batch.infos, "; ".join([*job.notes, reason]))
    staged = batch.folder / "staged" / sub.student / batch.assignment
    if sub.timestamp is not None:
        write_new(staged / "timestamp.txt", sub.timestamp.encode())
    if sub.secret is not None:  # the exchange's key: release_feedback matches feedback with it
        write_new(staged / "submission_secret.txt", sub.secret)
    res = writer.autograde(batch.assignment, sub.student, force=True, create=True)
    if not res["success"]:
        return error_row(sub.student, batch.assignment, batch.infos, "nbgrader autograde failed: " + log_errors(res))
    if status == WITHHELD:
        return _withhold(job, batch, withheld)
    row = row_from_gradebook(coursedir, batch.assignment, sub.student, batch.infos, job.notes)
    if feedback:
        fb = writer.generate_feedback(batch.assignment, sub.student, force=True)
        if not fb["success"]:
            row.reason = "; ".join(filter(None, [row.reason, "feedback failed: " + log_errors(fb)]))
    return row


def _withheld_file(batch: _Batch, student: str) -> Path:
    return withheld_dir(batch.coursedir) / batch.assignment / f"{student}.json"


def _withhold(job: _Job, batch: _Batch, record: Path) -> GradeRow:
    """Keep a stored submission's automatic points out of the gradebook: every test cell's automatic score is set
    to 0 and marked for manual grading (the formgrader shows it), the points the kernel claimed and the evidence
    are kept in ``course/withheld/<assignment>/<student>.json``, and no feedback is written."""
    from nbgrader.api import Gradebook

    claimed: dict[str, float] = {}
    with Gradebook(batch.coursedir.db_url, batch.coursedir.course_id) as gb:
        for nb in gb.find_submission(batch.assignment, job.sub.student).notebooks:
            for g in nb.grades:
                if g.name in batch.infos[nb.name].tests:
                    claimed[f"{nb.name}/{g.name}"] = float(g.auto_score or 0)
                    g.auto_score, g.needs_manual_grade = 0.0, True
        gb.db.commit()
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"student": job.sub.student, "evidence": job.evidence, "claimed": claimed},
                                 indent=1), encoding="utf-8")
    row = row_from_gradebook(batch.coursedir, batch.assignment, job.sub.student, batch.infos, job.notes)
    row.status, row.needs_manual_grade = WITHHELD, True
    row.reason = "; ".join(["withheld for review (no automatic points until an instructor grades each test cell "
                            f"in the formgrader; claimed {sum(claimed.values()):g} points)", *job.evidence[:6],
                            *job.notes])
    return row


def _say(message: str) -> None:
    print(message, flush=True)


def grade(submissions: str | os.PathLike[str], assignment: str, out: str | os.PathLike[str] | None = None,
          jobs: int = 1, timeout: float = DEFAULT_TIMEOUT, cell_timeout: int | None = None,
          profile: str = "grading", feedback: bool = True, root: str | os.PathLike[str] | None = None,
          log: Callable[[str], None] = _say, sandbox: bool = True, limits: Limits | None = None) -> list[GradeRow]:
    """Autograde every submission in a folder; write the grades CSV and the feedback; return the rows.

    ``submissions`` holds ``<student>/<notebook>.ipynb``, ``<student>/<assignment>/<notebook>.ipynb`` (nbgrader's
    ``submitted/`` folder) or ``<student>.ipynb``. Each runs in a sandboxed worker (``sandbox=False`` only for
    trusted code on a machine without bubblewrap) with ``limits`` and at most ``timeout`` seconds; ``jobs`` run at
    once. A failure is a row with ``status="error"``.

    Example:
        >>> rows = grade("course/submitted", "00_warmup", out="grades.csv", jobs=2)  # doctest: +SKIP
        >>> rows[0].status  # doctest: +SKIP
        'ok'
    """
    import warnings

    from sqlalchemy.exc import SAWarning

    from tlcourse.config import PROFILES

    if profile not in PROFILES:
        raise CourseError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    if jobs < 1 or timeout <= 0:
        raise CourseError(f"--jobs must be >= 1 and --timeout > 0 (got {jobs}, {timeout})")
    problem = sandbox_problem() if sandbox else None
    if problem:
        raise CourseError(f"no sandbox for student code on this machine: {problem}. Submissions are hostile until "
                          "proven otherwise; to grade trusted code without one, pass --no-sandbox")
    with warnings.catch_warnings(), _terminate_as_exit():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader 0.9 + SQLAlchemy 2 warn about its sessions
        rows = _grade_all(Path(submissions).resolve(), assignment, jobs, timeout, cell_timeout, profile, feedback,
                          root, log, sandbox, limits or Limits())
    if out is not None:
        write_grades_csv(rows, Path(out))
    counts = Counter(r.status for r in rows)
    log(f"{counts['ok']} graded, {counts[WITHHELD]} withheld for review, {counts['error']} error(s)"
        + (f"; grades in {out}" if out is not None else ""))
    return sorted(rows, key=lambda r: r.student_id)


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


def _open_batch(assignment: str, folder: Path, root: Any, cell_timeout: int | None, profile: str, jobs: int,
                sandbox: bool, limits: Limits) -> _Batch:
    cfg = load_nbgrader_config(root)
    coursedir = course_dir(cfg)
    source_nbs = source_notebooks(cfg, assignment)
    build = copy.deepcopy(cfg)  # the assignment in the gradebook (points changed in solutions/ are picked up)
    build.CourseDirectory.release_directory = str(folder / "release")
    result = nbgrader_api(build).generate_assignment(assignment, force=True, create=True)
    if not result["success"]:
        raise CourseError(f"nbgrader could not record {assignment} in the gradebook:\n{log_errors(result)}")
    apply_due_dates(cfg, coursedir, assignment)
    source_dir = step_dir(coursedir, "source_directory") / assignment
    execute = {"timeout": int(cell_timeout or cell_timeout_for(cfg, assignment)),
               "kernel_name": cfg.Execute.get("kernel_name", "python3"),
               "interrupt_on_timeout": bool(cfg.Execute.get("interrupt_on_timeout", True))}
    sources = {nb_id: read_notebook(path, path.name) for nb_id, path in source_nbs.items()}  # the course's own
    return _Batch(assignment, cfg, coursedir, cell_info(source_nbs), _trusted(sources, folder / "release"),
                  _answer_names(sources), course_files(source_dir, [*coursedir.ignore, "*.ipynb"]), folder, profile, jobs, sandbox, limits, execute)


CELL_TIMEOUT_FACTOR = 5  # a cell may take this many times the whole lesson's measured grading time …
MIN_CELL_TIMEOUT = 30  # … and at least this many seconds (kernel start and imports on a busy machine)


def cell_timeout_for(cfg: Any, assignment: str) -> int:
    """Seconds a cell of ``assignment`` may run when graded: ``TLCOURSE_CELL_TIMEOUT``, else
    ``c.Tlcourse.cell_timeouts[assignment]``, else derived from the lesson's measured grading time
    (``benchmarks/RESULTS.json``: factor and floor above), else ``c.Execute.timeout``.

    Example:
        >>> from tlcourse.grading.course import load_nbgrader_config
        >>> 30 <= cell_timeout_for(load_nbgrader_config(), "00_warmup") <= 120
        True
    """
    if os.environ.get("TLCOURSE_CELL_TIMEOUT"):
        return int(os.environ["TLCOURSE_CELL_TIMEOUT"])
    explicit = dict(cfg.get("Tlcourse", {}).get("cell_timeouts", {})).get(assignment)
    if explicit:
        return int(explicit)
    measured = _measured_seconds(Path(cfg.CourseDirectory.root), assignment)
    if measured:
        return max(MIN_CELL_TIMEOUT, int(CELL_TIMEOUT_FACTOR * measured + 0.999))
    return int(cfg.Execute.get("timeout", 120))


def _measured_seconds(root: Path, assignment: str) -> float | None:
    """The lesson's whole grading-profile run time recorded by ``benchmarks/run.py``, if the course has it."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        runs = json.loads((root / "benchmarks" / "RESULTS.json").read_text(encoding="utf-8"))["runs"]
        return float(runs["grading"]["notebooks"][assignment]["seconds"])
    return None


def _answer_names(sources: dict[str, Any]) -> dict[str, frozenset[str]]:
    """Per notebook, the names the worked solutions' answer cells define."""
    return {nb_id: canary.answer_names([c.source for c in nb.cells if c.cell_type == "code"
                                        and c.metadata.get("nbgrader", {}).get("solution")])
            for nb_id, nb in sources.items()}


def _trusted(sources: dict[str, Any], release: Path) -> dict[str, frozenset[str]]:
    """Per notebook, the sources of the course's own cells: locked cells and tests of the source (hidden tests
    included) and every cell of the released notebook as students receive it (answer cells there are stubs)."""
    import nbformat

    out = {}
    for nb_id, nb in sources.items():
        cells = [c for c in nb.cells
                 if c.metadata.get("nbgrader", {}).get("locked") or (c.metadata.get("nbgrader", {}).get("grade")
                                                                     and not c.metadata.get("nbgrader", {}).get("solution"))]
        released = next(release.rglob(f"{nb_id}.ipynb"), None)
        if released is not None:
            cells += nbformat.read(released, as_version=4).cells
        out[nb_id] = frozenset(v for c in cells for v in (c.source, c.source.strip()))  # nbgrader may trim
    return out


def _grade_all(submissions: Path, assignment: str, jobs: int, timeout: float, cell_timeout: int | None,
               profile: str, feedback: bool, root: Any, log: Callable[[str], None], sandbox: bool,
               limits: Limits) -> list[GradeRow]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tlcourse-grade-") as tmp:
        batch = _open_batch(assignment, Path(tmp), root, cell_timeout, profile, jobs, sandbox, limits)
        subs = discover_submissions(submissions, assignment, list(batch.infos))
        writer = _writer(batch.cfg, batch.folder)
        log(f"grading {len(subs)} submission(s) of {assignment} in the {profile} profile, {jobs} at a time, at most "
            f"{timeout:g} s each and {batch.execute['timeout']} s a cell, "
            + ("in a sandbox" if sandbox else "WITHOUT a sandbox (--no-sandbox)"))
        rows: list[GradeRow] = []

        def finish(job: _Job, status: str, reason: str, seconds: float) -> None:
            try:
                rows.append(_record(job, batch, writer, status, reason, feedback))
            except Exception as exc:  # one student's failure is that student's row; the batch goes on
                rows.append(error_row(job.sub.student, batch.assignment, batch.infos,
                                       "; ".join([*job.notes, _internal(exc, "storing the grades")])))
            row = rows[-1]
            log(f"  [{len(rows)}/{len(subs)}] {job.sub.student:<20} {row.status:<5} {row.score:g}/{row.max_score:g}  "
                f"{seconds:.1f} s" + (f"  {row.reason}" if row.reason else ""))

        _run_all(subs, batch, timeout, finish)
        _copy_logs(batch)
    log(f"{len(rows)} submission(s) in {time.monotonic() - started:.1f} s")
    return rows


def _run_all(subs: list[StudentSubmission], batch: _Batch, timeout: float,
             finish: Callable[[_Job, str, str, float], None]) -> None:
    """Workers execute, ``batch.jobs`` at a time; a finished worker's slot is refilled before its grades are
    written, so execution never waits for the gradebook."""
    pending, running, done = list(subs), [], []
    try:
        while pending or running or done:
            for job in list(running):
                exited = job.proc.poll() is not None
                late = not exited and time.monotonic() - job.started > timeout
                if exited or late:
                    _stop(job, batch.sandbox)
                    running.remove(job)
                    done.append((job, *_safe_outcome(job, batch, timeout, late)))
                    _release(job)
            while pending and len(running) < batch.jobs:
                job, problem = _launch(pending.pop(0), batch)
                if problem:
                    done.append((job, "error", problem, 0.0))
                else:
                    running.append(job)
            if done:
                finish(*done.pop(0))
            else:
                time.sleep(0.1)
    finally:
        for job in running:
            _stop(job, batch.sandbox)
            _release(job)


def _internal(exc: BaseException, doing: str) -> str:
    return f"grader error while {doing} ({type(exc).__name__}: {plain(exc, 160)}): grade this submission by hand"


def _safe_outcome(job: _Job, batch: _Batch, timeout: float, late: bool) -> tuple[str, str, float]:
    try:
        return _outcome(job, batch, timeout, late)
    except Exception as exc:  # whatever came back, it is this student's error row
        return "error", _internal(exc, "reading the result"), round(time.monotonic() - job.started, 1)


def _launch(sub: StudentSubmission, batch: _Batch) -> tuple[_Job, str]:
    """Prepare and start one submission: (the job, "") — or (the job, why it cannot run)."""
    if sub.problem:
        return _Job(sub, batch.folder, notes=list(sub.notes)), sub.problem
    try:
        job = _prepare(sub, batch)
    except CourseError as exc:
        return _Job(sub, batch.folder, notes=list(sub.notes)), str(exc)
    except Exception as exc:
        return _Job(sub, batch.folder, notes=list(sub.notes)), _internal(exc, "preparing it")
    try:
        _start(job, batch)
    except Exception as exc:
        return job, _internal(exc, "starting its sandbox")
    return job, ""


def _copy_logs(batch: _Batch) -> None:
    """Each worker's log (its last MB) into ``course/logs/<assignment>/<student>.log``."""
    logs = step_dir(batch.coursedir, "autograded_directory").parent / "logs" / batch.assignment
    for log_file in (batch.folder / "students").glob("*/worker.log"):
        write_new(logs / f"{log_file.parent.name}.log", read_log_tail(log_file))
