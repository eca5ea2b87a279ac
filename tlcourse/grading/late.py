"""Late work: a per-day late penalty for nbgrader (the due dates reach the gradebook through
``course.apply_due_dates``, so that importing ``tlcourse.grading`` does not import nbgrader).

``nbgrader_config.py`` names both: ``c.Tlcourse.due_dates = {"00_warmup": "2027-01-15 23:59 Europe/Paris"}`` and
``c.AssignLatePenalties.plugin_class = "tlcourse.grading.late.PercentPerDay"`` with
``c.PercentPerDay.percent_per_day``. nbgrader compares each submission's ``timestamp.txt`` (written by the exchange
on submit, or by ``tlcourse collect``) with the due date and subtracts the penalty; ``tlcourse export`` shows the
time, the penalty and the score after it.
"""

from __future__ import annotations

import math

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float

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
        days = math.ceil(total_seconds_late / 86400)
        return round(min(score, score * self.percent_per_day / 100 * days), 6)
