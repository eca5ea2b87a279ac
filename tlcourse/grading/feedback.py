"""Feedback: nbgrader's HTML feedback of autograded submissions, hidden tests removed (see ``hidden``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tlcourse.grading.course import (
    CourseError,
    course_dir,
    load_nbgrader_config,
    log_errors,
    nbgrader_api,
    step_dir,
    withheld_dir,
)

__all__ = ["generate_feedback", "feedback_archive"]


def generate_feedback(assignment: str, students: Sequence[str] | None = None,
                      root: str | os.PathLike[str] | None = None) -> list[Path]:
    """(Re)generate the HTML feedback of autograded submissions (after manual grading, say); return the files.

    Hidden tests are stripped by :class:`HideHiddenTests`.

    Example:
        >>> generate_feedback("00_warmup", ["alice"])  # doctest: +SKIP
        [PosixPath('.../course/feedback/alice/00_warmup/00_warmup.html')]
    """
    cfg = load_nbgrader_config(root)
    coursedir = course_dir(cfg)
    autograded = step_dir(coursedir, "autograded_directory")
    names = list(students) if students else sorted(p.parent.name for p in autograded.glob(f"*/{assignment}")
                                                    if p.is_dir())
    if not names:
        raise CourseError(f"no autograded submissions of {assignment} in {autograded}: run `tlcourse grade` first")
    held = _withheld(coursedir, assignment, names)
    if held:
        print(f"no feedback for {', '.join(held)}: withheld for review until each test cell has a manual score",
              file=sys.stderr)
    api = nbgrader_api(cfg)
    written = []
    for student in (n for n in names if n not in held):
        res = api.generate_feedback(assignment, student, force=True)
        if not res["success"]:
            raise CourseError(f"feedback for {student} failed:\n{log_errors(res)}")
        folder = Path(coursedir.format_path(coursedir.feedback_directory, student, assignment))
        written += sorted(folder.glob("*.html"))
    return written


def _withheld(coursedir: object, assignment: str, names: Sequence[str]) -> list[str]:
    """The students whose submission ``tlcourse grade`` withheld and no instructor has graded by hand yet."""
    from tlcourse.grading.course import open_gradebook
    from tlcourse.grading.export import withheld_pending

    folder = withheld_dir(coursedir)
    if not (folder / assignment).is_dir():
        return []
    with open_gradebook(coursedir) as gb:
        return [n for n in names if withheld_pending(gb, folder, assignment, n)]


def feedback_archive(lms: str, out: str | os.PathLike[str], assignment: str,
                     root: str | os.PathLike[str] | None = None) -> tuple[Path, list[str]]:
    """The feedback of ``assignment`` zipped for ``lms``'s bulk upload (see :mod:`.lms`); (zip, students left
    out with why). Students withheld for review are left out.

    Example:
        >>> feedback_archive("moodle", "feedback-moodle.zip", "00_warmup")  # doctest: +SKIP
        (PosixPath('feedback-moodle.zip'), [])
    """
    from tlcourse.grading.course import open_gradebook
    from tlcourse.grading.lms import write_feedback_archive

    coursedir = course_dir(load_nbgrader_config(root))
    feedback = step_dir(coursedir, "feedback_directory")
    with open_gradebook(coursedir) as gb:
        students = [{"id": s.id, "first_name": s.first_name, "last_name": s.last_name,
                     "lms_user_id": s.lms_user_id} for s in gb.students]
    held = set(_withheld(coursedir, assignment, [s["id"] for s in students]))
    path, left_out = write_feedback_archive(lms, out, assignment, [s for s in students if s["id"] not in held],
                                            feedback, step_dir(coursedir, "submitted_directory"))
    return path, left_out + [f"{s}: withheld for review" for s in sorted(held)]
