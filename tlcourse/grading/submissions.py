"""What students handed in: a folder of submissions read into one record per student, in any supported layout.

Everything here is hostile data. Files are listed and read through :mod:`.safefs` (no link followed, regular files
only, sizes capped before reading), and a submission carries the *bytes* it was read as: nothing downstream opens
a student's path again. Only notebooks (and nbgrader's ``timestamp.txt`` / ``submission_secret.txt``) are read;
any other file a student handed in is listed in the row and never staged for grading, so it can shadow no module.
A student folder that cannot be read becomes that student's ``problem``; the batch always goes on.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tlcourse.grading.course import SAFE_ID, CourseError, is_safe_id
from tlcourse.grading.safefs import Refused, read_regular, scan, write_new

__all__ = ["SUBMISSION_LAYOUTS", "SAFE_ID", "is_safe_id", "MAX_NOTEBOOK_MB"]

MAX_NOTEBOOK_MB = 20  # a submitted notebook larger than this is refused unread
MAX_SMALL_BYTES = 4096  # timestamp.txt, submission_secret.txt

_NBGRADER_FILES = ("timestamp.txt", "submission_secret.txt")


@dataclass
class StudentSubmission:
    student: str
    notebooks: dict[str, bytes]  # notebook id -> the submitted file's bytes
    timestamp: str | None = None  # nbgrader's timestamp.txt, as text
    secret: bytes | None = None  # nbgrader's submission_secret.txt (the exchange's feedback key)
    notes: list[str] = field(default_factory=list)
    problem: str | None = None


def _read(path: Path, limit: int, sub: StudentSubmission, root: Path | None = None) -> bytes | None:
    """A file's bytes (``path`` relative to ``root`` when given: no link followed on the way), or ``None`` with
    the reason noted."""
    try:
        return read_regular(path, limit, root=root)
    except Refused as exc:
        sub.notes.append(f"refused {exc}")
        return None


def _match_notebooks(sub: StudentSubmission, root: Path, prefix: str, names: list[str], expected: Sequence[str]) -> None:
    by_stem = {Path(n).stem: n for n in names if "/" not in n and n.endswith(".ipynb")}
    chosen = {nb_id: by_stem[nb_id] for nb_id in expected if nb_id in by_stem}
    if not chosen and len(expected) == 1 and len(by_stem) == 1:  # an LMS renamed the file
        chosen = {expected[0]: next(iter(by_stem.values()))}
        sub.notes.append(f"graded {chosen[expected[0]]} as {expected[0]}.ipynb")
    for nb_id, name in chosen.items():
        data = _read(Path(prefix + name), MAX_NOTEBOOK_MB * 1024 * 1024, sub, root)
        if data is not None:
            sub.notebooks[nb_id] = data
    if not sub.notebooks:
        found = ", ".join(sorted(by_stem.values())) or "no notebook"
        sub.problem = (f"no submitted notebook: expected {', '.join(n + '.ipynb' for n in expected)}, found "
                       f"{found}" + (f" ({'; '.join(sub.notes)})" if sub.notes else ""))


def _folder_submission(entry: Path, assignment: str, expected: Sequence[str]) -> StudentSubmission:
    sub = StudentSubmission(entry.name, {})
    found = scan(entry, skip_hidden=True)
    nested = any(rel.startswith(f"{assignment}/") for rel in found.files)
    prefix = f"{assignment}/" if nested else ""  # nbgrader: <student>/<assignment>/
    names = [rel[len(prefix):] for rel in found.files if rel.startswith(prefix)]
    sub.notes += [f"refused {rel}: {why}" for rel, why in found.refused if rel.startswith(prefix) or not nested]
    _match_notebooks(sub, entry, prefix, names, expected)
    if "timestamp.txt" in names:
        raw = _read(Path(prefix + "timestamp.txt"), MAX_SMALL_BYTES, sub, entry)
        sub.timestamp = raw.decode("utf-8", "replace").strip() if raw is not None else None
    if sub.timestamp is None and (entry / prefix / ".collect.json").is_file():  # tlcourse collect's file time
        from tlcourse.grading.lateness import collect_timestamp

        raw = _read(Path(prefix + ".collect.json"), 64 * 1024, sub, entry)
        sub.timestamp = collect_timestamp(raw, sub.notes) if raw is not None else None
    if "submission_secret.txt" in names:
        sub.secret = _read(Path(prefix + "submission_secret.txt"), MAX_SMALL_BYTES, sub, entry)
    ignored = sorted(n for n in names if not n.endswith(".ipynb") and n not in _NBGRADER_FILES)
    if ignored:
        sub.notes.append(f"not used for grading: {', '.join(ignored[:5])}" + (" …" if len(ignored) > 5 else ""))
    return sub


def _file_submission(entry: Path, assignment: str, expected: Sequence[str]) -> StudentSubmission:
    sub = StudentSubmission(entry.stem, {})
    if len(expected) != 1:
        sub.problem = f"{assignment} has {len(expected)} notebooks: put them in a folder {entry.stem}/"
        return sub
    data = _read(entry, MAX_NOTEBOOK_MB * 1024 * 1024, sub)
    if data is None:
        sub.problem = "; ".join(sub.notes)
    else:
        sub.notebooks[expected[0]] = data
    return sub


#: How a submissions folder may be laid out: (test on an entry's lstat mode and name, reader) — first match wins.
SUBMISSION_LAYOUTS: dict[str, tuple[Callable[[int, str], bool], Callable[[Path, str, Sequence[str]], StudentSubmission]]] = {
    "folder": (lambda mode, name: stat.S_ISDIR(mode), _folder_submission),  # <student>/… or <student>/<assignment>/…
    "file": (lambda mode, name: stat.S_ISREG(mode) and name.endswith(".ipynb"), _file_submission),  # <student>.ipynb
}


def _entry(path: Path, assignment: str, expected: Sequence[str]) -> StudentSubmission | None:
    """One top-level entry as a submission; an entry that is neither a folder nor a notebook (a link, a FIFO, …)
    is that student's refused submission, never followed."""
    from tlcourse.grading.safefs import kind_of

    student = path.stem if path.name.endswith(".ipynb") else path.name
    try:
        mode = path.lstat().st_mode
    except OSError as exc:
        return StudentSubmission(student, {}, problem=f"unreadable ({exc.strerror})")
    for test, read in SUBMISSION_LAYOUTS.values():
        if test(mode, path.name):
            return read(path, assignment, expected)
    if stat.S_ISREG(mode):
        return None  # a stray regular file (a CSV, a README) is not a submission
    return StudentSubmission(student, {}, problem=f"refused: {path.name} is {kind_of(mode)}, not a folder or a notebook")


def discover_submissions(submissions: Path, assignment: str, expected: Sequence[str]) -> list[StudentSubmission]:
    """One record per student of a submissions folder (sorted by id); odd entries become refused records.

    Example:
        >>> discover_submissions(Path("/nonexistent"), "00_warmup", ["00_warmup"])
        Traceback (most recent call last):
        ...
        tlcourse.grading.course.CourseError: /nonexistent is not a folder of submissions
    """
    try:
        entries = sorted(submissions.iterdir()) if stat.S_ISDIR(submissions.lstat().st_mode) else None
    except OSError:
        entries = None
    if entries is None:
        raise CourseError(f"{submissions} is not a folder of submissions")
    found: dict[str, StudentSubmission] = {}
    for path in entries:
        if path.name.startswith((".", "_")):
            continue
        sub = _entry(path, assignment, expected)
        if sub is None:
            continue
        if not is_safe_id(sub.student):
            sub = StudentSubmission(_shown_id(sub.student), {}, problem="refused: the folder name is not a safe student "
                                                                  "id (letters, digits, . _ @ + -)")
        if sub.student in found:
            sub = StudentSubmission(sub.student, {}, problem=f"two submissions for {sub.student}: {path.name} and another")
        found[sub.student] = sub
    if not found:
        raise CourseError(f"{submissions} holds no submissions (<student>/<notebook>.ipynb or <student>.ipynb)")
    return [found[k] for k in sorted(found)]


def _shown_id(name: str) -> str:
    """An unsafe folder name as a harmless row id (it never names a folder)."""
    return "unsafe-" + re.sub(r"[^A-Za-z0-9._-]", "_", name)[:40]


def archive_submission(sub: StudentSubmission, submitted_root: Path, assignment: str) -> None:
    """Keep what the student handed in under nbgrader's ``submitted/`` folder (the bytes that were graded)."""
    if not is_safe_id(sub.student):
        return
    target = submitted_root / sub.student / assignment
    for nb_id, data in sub.notebooks.items():
        dest = target / f"{nb_id}.ipynb"
        if not (dest.is_file() and not dest.is_symlink() and dest.read_bytes() == data):
            write_new(dest, data)
    if sub.timestamp is not None:
        write_new(target / "timestamp.txt", sub.timestamp.encode())
