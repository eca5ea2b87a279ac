"""The course life cycle on top of nbgrader, one module per step (see ``ARCHITECTURE.md``).

* :mod:`.course` — the course root, nbgrader's configuration, the assignments;
* :mod:`.hidden` — hidden tests: found, stripped for students, kept out of feedback (:class:`HideHiddenTests`);
* :mod:`.release` — ``release`` (lessons from solutions) and ``publish`` (the student-facing copy, for a class);
* :mod:`.safefs` — the one reader of student files (regular files only, no link followed, sizes capped first);
* :mod:`.collect` — an LMS bulk download into ``submitted/`` (its own capped reader; a report of every student);
* :mod:`.submissions` — a folder of submissions read into one record per student;
* :mod:`.sandbox` + :mod:`.worker` — where student code runs: bubblewrap, limits, an isolated worker and kernel;
* :mod:`.canary`, :mod:`.review`, :mod:`.sanitize`, :mod:`.readback` — the trust boundary: canaries a lying kernel
  passes, a static review of the student's cells, outputs rebuilt from allow-lists, results read as hostile data;
* :mod:`.grade` — ``grade``: sanitise, execute in the sandbox, verify, store grades (this process alone);
* :mod:`.gradebook` — CSV rows read from nbgrader's gradebook; :mod:`.late`, :mod:`.lateness` — late work decided
  on the final score (times with zones, extensions, the rule in words);
* :mod:`.check` — ``check`` for students and self-paced learners; :mod:`.feedback` — HTML feedback;
* :mod:`.export` — grades to Canvas / Gradescope / Moodle / CSV, rosters in (:mod:`.lms`: round trips and feedback
  archives; :mod:`.tables`: the one CSV writer); :mod:`.gradescope` — Gradescope's autograder zip and run;
  :mod:`.report` — pass rates and similarity for instructors;
  :mod:`.cli` — the subcommands.

Example:
    >>> from tlcourse.grading import strip_hidden_tests
    >>> strip_hidden_tests("a = 1\\n### BEGIN HIDDEN TESTS\\nassert a\\n### END HIDDEN TESTS", note=None)
    'a = 1'
"""

from __future__ import annotations

from typing import Any

from tlcourse.grading.check import CheckResult, check_notebook, find_source_notebook
from tlcourse.grading.cli import COMMANDS, main, register_cli
from tlcourse.grading.collect import collect
from tlcourse.grading.course import CourseError, find_course_root, list_assignments, load_nbgrader_config
from tlcourse.grading.export import export_grades, import_roster
from tlcourse.grading.feedback import generate_feedback
from tlcourse.grading.grade import DEFAULT_TIMEOUT, grade
from tlcourse.grading.gradebook import CSV_COLUMNS, GradeRow
from tlcourse.grading.hidden import (
    hidden_secrets_of,
    hidden_test_lines,
    make_hide_hidden_tests,
    strip_hidden_tests,
)
from tlcourse.grading.release import publish, release
from tlcourse.grading.sandbox import Limits

__all__ = [
    "CourseError", "GradeRow", "CheckResult", "CSV_COLUMNS", "DEFAULT_TIMEOUT", "Limits", "COMMANDS",
    "find_course_root", "load_nbgrader_config", "list_assignments", "hidden_test_lines", "strip_hidden_tests",
    "hidden_secrets_of", "release", "publish", "collect", "grade", "check_notebook", "find_source_notebook",
    "generate_feedback", "export_grades", "import_roster",
    "HideHiddenTests",  # noqa: F822 - built lazily by __getattr__ (no nbgrader import for other commands)
    "register_cli", "main",
]

_LAZY_CACHE: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """``HideHiddenTests`` is built on first use (``nbgrader_config.py`` names it for feedback)."""
    if name == "HideHiddenTests":
        if name not in _LAZY_CACHE:
            _LAZY_CACHE[name] = make_hide_hidden_tests()
        return _LAZY_CACHE[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
