"""What students handed in: a folder of submissions read into one record per student, in any supported layout."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tlcourse.grading.course import CourseError

__all__ = ["SUBMISSION_LAYOUTS"]


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
