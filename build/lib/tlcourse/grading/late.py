"""Late work: due dates from ``nbgrader_config.py`` into the gradebook, and a per-day late penalty for nbgrader.

``nbgrader_config.py`` names both: ``c.Tlcourse.due_dates = {"00_warmup": "2027-01-15 23:59 Europe/Paris"}`` and
``c.AssignLatePenalties.plugin_class = "tlcourse.grading.late.PercentPerDay"`` with
``c.PercentPerDay.percent_per_day``. nbgrader compares each submission's ``timestamp.txt`` (written by the exchange
on submit, or by ``tlcourse collect``) with the due date and subtracts the penalty; ``tlcourse export`` shows the
time, the penalty and the score after it.
"""

from __future__ import annotations

import math
from typing import Any

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float

__all__ = ["PercentPerDay", "apply_due_dates"]


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


def apply_due_dates(cfg: Any, coursedir: Any, assignment: str) -> None:
    """Record the assignment's due date (``c.Tlcourse.due_dates``) in the gradebook, where nbgrader reads it."""
    from nbgrader.utils import parse_utc

    from tlcourse.grading.course import _gradebook

    due = dict(cfg.get("Tlcourse", {}).get("due_dates", {})).get(assignment)
    if not due:
        return
    with _gradebook(coursedir) as gb:
        gb.update_or_create_assignment(assignment, duedate=parse_utc(due))
