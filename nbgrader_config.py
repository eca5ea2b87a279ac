"""nbgrader configuration of the tlcourse course (ARCHITECTURE.md §5; INSTRUCTORS.md explains the life cycle).

nbgrader reads this file from the folder it runs in (the repository root); ``tlcourse release / grade / check /
feedback`` load it from the course root. Paths are absolute, so nbgrader works from any current folder once it has
found this file.

Environment variables (all optional):

* ``TLCOURSE_COURSE_DIR`` — where the gradebook and the submitted / autograded / feedback folders live
  (default: ``course/`` next to this file, git-ignored). On a shared JupyterHub point it at a private, writable
  instructor folder.
* ``TLCOURSE_EXCHANGE_ROOT`` — the nbgrader exchange folder on JupyterHub (default ``/srv/nbgrader/exchange``).
* ``TLCOURSE_CELL_TIMEOUT`` — seconds one cell may run while autograding / validating (default 120).
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 - injected by traitlets when it loads this file

ROOT = Path(__file__).resolve().parent
COURSE = Path(os.environ.get("TLCOURSE_COURSE_DIR") or ROOT / "course").expanduser().resolve()

# ------------------------------------------------------------------------------------------------ the course
c.CourseDirectory.course_id = "tlcourse"
c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = "solutions"  # full solutions + visible and hidden tests (instructors)
c.CourseDirectory.release_directory = "lessons"  # generated student versions, committed
# nbgrader joins these to the root; absolute paths are kept as they are, so they can live outside the checkout
c.CourseDirectory.submitted_directory = str(COURSE / "submitted")
c.CourseDirectory.autograded_directory = str(COURSE / "autograded")
c.CourseDirectory.feedback_directory = str(COURSE / "feedback")
c.CourseDirectory.solution_directory = str(COURSE / "solution")
c.CourseDirectory.db_url = f"sqlite:///{COURSE / 'gradebook.db'}"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".tlcourse_cache"]

# -------------------------------------------------------------------------------------------- the exchange
# JupyterHub: students `fetch` and `submit` through this shared folder (see INSTRUCTORS.md)
c.Exchange.root = os.environ.get("TLCOURSE_EXCHANGE_ROOT", "/srv/nbgrader/exchange")

# --------------------------------------------------------------------------------------- executing notebooks
# Autograde and validate run notebooks with NBGRADER_EXECUTION set, which selects the `grading` profile
# (tiny subsets, one epoch, small images): a whole lesson takes <= 60 s on 2 CPU cores, so one cell never
# needs more than that. 120 s leaves room for a slow, busy machine; nbgrader's own default (30 s) is too tight.
c.Execute.timeout = int(os.environ.get("TLCOURSE_CELL_TIMEOUT", "120"))
c.Execute.kernel_name = "python3"  # whatever kernelspec a submission names (no NoSuchKernel errors)
c.Execute.interrupt_on_timeout = True  # a cell that runs too long fails; the rest of the notebook still runs

# ------------------------------------------------------------------------------------------------ grading
# a submission that deleted a test cell gets it back (with its hidden tests), so deleting tests earns nothing
c.OverwriteCells.add_missing_cells = True
# long outputs (a print in a loop) are cut in autograded notebooks and feedback
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 40

# --------------------------------------------------------------------------------------- the students' copy
# `tlcourse publish` writes a README for students: the course's name and where they hand in (your LMS's words).
c.Tlcourse.course_title = "Transfer learning, hands-on"
c.Tlcourse.hand_in = ("Hand in through your course's learning platform (its assignment page names the deadline), "
                      "or, on the course's JupyterHub, with *Assignments → Submit* in JupyterLab.")

# ------------------------------------------------------------------------------------------------ late work
# Due dates (a time with its zone; a time without one is refused); `tlcourse grade` records them in the gradebook.
# `tlcourse export` decides late work on the FINAL score (manual points included): a submission's time is its
# timestamp.txt (the exchange writes it on submit), else `--times FILE` (the LMS's submission times), else the file
# time `tlcourse collect` kept in .collect.json. The export's "late rule" column says what applied.
c.Tlcourse.due_dates = {
    # "00_warmup": "2027-01-15 23:59:00 Europe/Paris",
}
# per-student extensions, one file the instructor edits: assignment,student_id,due (a time with its zone, or +hours)
c.Tlcourse.extensions_file = "extensions.csv"  # relative to the course root
# late work loses 10 % of its score per started day (PercentPerDay.percent_per_day), at most the whole score;
# nbgrader applies the plugin at autograde time too (an early estimate the formgrader shows, before manual points)
c.AssignLatePenalties.plugin_class = "tlcourse.grading.late.PercentPerDay"
c.PercentPerDay.percent_per_day = 10.0

# ------------------------------------------------------------------------------------------------ LMS columns
# `tlcourse export --lms canvas --roster canvas_export.csv` fills the roster's own assignment columns. Name a column
# here when its title does not match the assignment (titles are compared without numbers, case and punctuation:
# 00_warmup ~ "Warm-up" ~ "00 Warm-up"); an ambiguous match is refused.
c.Tlcourse.lms_columns = {
    # "00_warmup": "Warm-up (4401)",
}

# ----------------------------------------------------------------------------------------------- feedback
# Autograding restores the hidden tests into each submission (nbgrader grades with them), so the autograded
# notebook holds them. HideHiddenTests removes the hidden regions from the feedback and replaces any error that
# a hidden line raised with a short note (the failing line and its message would give the test away).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "tlcourse.grading.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
