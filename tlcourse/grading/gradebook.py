"""The gradebook side of grading: the CSV row of a student, read from nbgrader's gradebook, and error rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tlcourse.grading.tables import write_csv

__all__ = ["GradeRow", "CSV_COLUMNS"]

#: The columns of the grades CSV, in order (the first six are the contract; the rest help instructors).
CSV_COLUMNS = ("student_id", "assignment", "score", "max_score", "status", "reason",
               "auto_score", "auto_max_score", "needs_manual_grade")


@dataclass
class GradeRow:
    """One line of the grades CSV.

    Example:
        >>> GradeRow("alice", "00_warmup", 6, 8, "ok", "").as_csv()["score"]
        '6'
    """

    student_id: str
    assignment: str
    score: float
    max_score: float
    status: str  # "ok" or "error"
    reason: str
    auto_score: float = 0.0
    auto_max_score: float = 0.0
    needs_manual_grade: bool = False

    def as_csv(self) -> dict[str, str]:
        """The row as CSV strings (numbers without trailing zeros)."""
        row = asdict(self)
        for key in ("score", "max_score", "auto_score", "auto_max_score"):
            row[key] = f"{float(row[key]):g}"
        row["needs_manual_grade"] = "yes" if self.needs_manual_grade else "no"
        return {k: str(row[k]) for k in CSV_COLUMNS}


def write_grades_csv(rows: Sequence[GradeRow], path: Path) -> None:
    """The grades CSV, sorted by student, written atomically with spreadsheet-safe cells (:mod:`.tables`)."""
    ordered = sorted(rows, key=lambda r: r.student_id)
    write_csv(path, CSV_COLUMNS, ([r.as_csv()[k] for k in CSV_COLUMNS] for r in ordered))


@dataclass
class CellInfo:
    tests: dict[str, float]  # autograded test cells: grade id -> points
    written: dict[str, float]  # manually graded answers: grade id -> points
    answers: list[str]  # autograded answer cells (solution, not grade)
    kernel: str


def cell_info(paths: dict[str, Path]) -> dict[str, CellInfo]:
    import nbformat

    info = {}
    for nb_id, path in paths.items():
        nb = nbformat.read(path, as_version=4)
        tests, written, answers = {}, {}, []
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution"):
                tests[meta["grade_id"]] = float(meta.get("points", 0))
            elif meta.get("grade"):
                written[meta["grade_id"]] = float(meta.get("points", 0))
            elif meta.get("solution"):
                answers.append(meta["grade_id"])
        info[nb_id] = CellInfo(tests, written, answers, nb.metadata.get("kernelspec", {}).get("name", "python3"))
    return info




def cell_label(cell: Any, index: int) -> str:
    """How a cell is named in reasons and progress: its grade id, else its position."""
    gid = cell.metadata.get("nbgrader", {}).get("grade_id")
    return gid or f"cell {index + 1}"


def failure_name(cell: Any) -> str:
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            return out.ename
        if out.output_type == "stream" and out.name == "stderr":
            return "output on stderr"
    return "partial credit"


def row_from_gradebook(coursedir: Any, assignment: str, student: str, infos: dict[str, CellInfo],
                        notes: list[str]) -> GradeRow:
    import nbformat
    from nbgrader.api import Gradebook

    total = sum(sum(i.tests.values()) + sum(i.written.values()) for i in infos.values())
    auto_max = sum(sum(i.tests.values()) for i in infos.values())
    failed: list[str] = []
    pending: list[str] = []
    broken: list[str] = []
    score = auto = 0.0
    needs_manual = False
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        for nb_id, info in infos.items():
            sub_nb = gb.find_submission_notebook(nb_id, assignment, student)
            graded = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment)) / f"{nb_id}.ipynb"
            cells = {}
            if graded.is_file():
                cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nbformat.read(graded, 4).cells}
            else:
                notes.append(f"{nb_id}.ipynb was not submitted (0 points)")
            for g in sub_nb.grades:
                score += float(g.score or 0)
                needs_manual = needs_manual or bool(g.needs_manual_grade)
                if g.name in info.tests:
                    auto += float(g.auto_score or 0)
                    if (g.auto_score or 0) < info.tests[g.name] and g.name in cells:
                        failed.append(f"{g.name} {float(g.auto_score or 0):g}/{info.tests[g.name]:g} "
                                      f"({failure_name(cells[g.name])})")
                elif g.name in info.written and g.manual_score is None:
                    pending.append(g.name if g.auto_score is None else f"{g.name} (no answer)")
            broken += [f"{gid} ({failure_name(cells[gid])})" for gid in info.answers
                       if gid in cells and any(o.output_type == "error" for o in cells[gid].get("outputs", []))]
    parts = list(notes)
    if broken:
        parts.append("errors in answer cells: " + ", ".join(broken))
    if failed:
        parts.append(f"failed {len(failed)} test(s): " + ", ".join(failed))
    if pending:
        parts.append("to grade by hand: " + ", ".join(pending))
    return GradeRow(student, assignment, score, total, "ok", "; ".join(parts), auto, auto_max, needs_manual)


def error_row(student: str, assignment: str, infos: dict[str, CellInfo], reason: str) -> GradeRow:
    total = sum(sum(i.tests.values()) + sum(i.written.values()) for i in infos.values())
    auto_max = sum(sum(i.tests.values()) for i in infos.values())
    return GradeRow(student, assignment, 0.0, total, "error", reason, 0.0, auto_max, True)
