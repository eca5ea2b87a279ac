"""Late work: a per-day late penalty for nbgrader (the due dates reach the gradebook through
``grade.apply_due_dates``, so that importing ``tlcourse.grading`` does not import nbgrader).

``nbgrader_config.py`` names both: ``c.Tlcourse.due_dates = {"00_warmup": "2027-01-15 23:59 Europe/Paris"}`` and
``c.AssignLatePenalties.plugin_class = "tlcourse.grading.late.PercentPerDay"`` with
``c.PercentPerDay.percent_per_day``. nbgrader runs this plugin at autograde time, *before* any manual points exist,
so the penalty it stores is only an early estimate (the formgrader shows it). ``tlcourse export`` decides late
work itself (:mod:`.lateness`): the same rate applied to the final score, with per-student extensions
(``extensions.csv``), LMS submission times (``--times``) and the rule written in the export.
"""

from __future__ import annotations

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float

from tlcourse.grading.lateness import started_days

__all__ = ["PercentPerDay"]


class PercentPerDay(LateSubmissionPlugin):
    """A penalty of ``percent_per_day`` % of the score for every started day late, at most the whole score.

    Example:
        >>> PercentPerDay(percent_per_day=10).late_submission_penalty("alice", 8.0, 3600)  # one hour late
        0.8
    """

    percent_per_day = Float(10.0, help="percent of the score lost per started day late").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float | None:
        if total_seconds_late <= 0:
            return None
        days = started_days(total_seconds_late)
        return round(min(score, score * self.percent_per_day / 100 * days), 6)
