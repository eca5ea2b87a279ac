"""Feedback: nbgrader's HTML feedback of autograded submissions, hidden tests removed (see ``hidden``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tlcourse.grading.course import (
    CourseError,
    _api,
    _coursedir,
    _log_errors,
    _step_dir,
    load_nbgrader_config,
)

__all__ = ["generate_feedback"]


def generate_feedback(assignment: str, students: Sequence[str] | None = None,
                      root: str | os.PathLike[str] | None = None) -> list[Path]:
    """(Re)generate the HTML feedback of autograded submissions (after manual grading, say); return the files.

    Hidden tests are stripped by :class:`HideHiddenTests`.

    Example:
        >>> generate_feedback("00_warmup", ["alice"])  # doctest: +SKIP
        [PosixPath('.../course/feedback/alice/00_warmup/00_warmup.html')]
    """
    cfg = load_nbgrader_config(root)
    coursedir = _coursedir(cfg)
    autograded = _step_dir(coursedir, "autograded_directory")
    names = list(students) if students else sorted(p.parent.name for p in autograded.glob(f"*/{assignment}")
                                                    if p.is_dir())
    if not names:
        raise CourseError(f"no autograded submissions of {assignment} in {autograded}: run `tlcourse grade` first")
    api = _api(cfg)
    written = []
    for student in names:
        res = api.generate_feedback(assignment, student, force=True)
        if not res["success"]:
            raise CourseError(f"feedback for {student} failed:\n{_log_errors(res)}")
        folder = Path(coursedir.format_path(coursedir.feedback_directory, student, assignment))
        written += sorted(folder.glob("*.html"))
    return written
