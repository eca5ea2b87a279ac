"""One student's result on one assignment, as an LMS wants it (:class:`Score`), and why a cell stays empty.

Written by :mod:`.export` (from the gradebook, late work decided), read by :mod:`.lms` (an LMS's own file filled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["EMPTY_STATES", "Score"]


#: Why a cell stays empty: state -> words. A student with one of these states has no score to export yet.
EMPTY_STATES: dict[str, str] = {
    "ungraded": "not graded yet",
    "withheld": "withheld for review: grade its test cells in the formgrader",
    "manual": "awaiting manual grading",
    "unknown": "lateness unknown",
    "not due": "no submission yet (not due)",
}


@dataclass(frozen=True)
class Score:
    """One student's result on one assignment, as an LMS wants it; ``final`` is ``None`` when there is nothing
    to export yet (see :data:`EMPTY_STATES`).

    Example:
        >>> Score("alice", "A", "Alice", "a@x.org", "", "00_warmup", 8.0, None, "", 6.0, 1.0).final
        5.0
        >>> Score("bob", "B", "Bob", "", "", "00_warmup", 8.0, None, "", 6.0, 0.0, state="manual").final is None
        True
    """

    student_id: str
    last_name: str
    first_name: str
    email: str
    lms_user_id: str
    assignment: str
    max_score: float
    due: Any  # datetime or None
    timestamp: Any  # datetime or "" (no submission)
    raw: float
    penalty: float
    rule: str = ""
    state: str = "graded"  # graded | no submission | a key of EMPTY_STATES
    time_source: str = ""

    @property
    def final(self) -> float | None:
        """The score after the late penalty (never below 0); ``None`` when the cell stays empty."""
        if self.state in EMPTY_STATES:
            return None
        return round(max(0.0, self.raw - self.penalty), 4)

    @property
    def cell(self) -> str:
        """The score as an LMS cell: ``4.8``, or empty."""
        return "" if self.final is None else f"{self.final:g}"

    @property
    def submitted(self) -> bool:
        return self.timestamp != ""

    @property
    def lateness(self) -> str:
        """How late, as Gradescope writes it (H:M:S), "0:00:00" when on time or not submitted."""
        if not self.submitted or self.due is None or self.timestamp is None or self.timestamp <= self.due:
            return "0:00:00"
        seconds = int((self.timestamp - self.due).total_seconds())
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
