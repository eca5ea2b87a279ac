"""Instructor reports of a graded batch: which tests the class fails most, and which answers look copied.

``tlcourse report --assignment NN`` reads what ``tlcourse grade`` left (nbgrader's gradebook and the autograded
notebooks) and writes, into ``<course>/reports/<assignment>/`` unless told otherwise:

* ``pass-rates.csv`` / ``pass-rates.png`` — per test cell: passed, failed (an assertion), errored (any other
  exception, or no grade), sorted by failure rate; ``failures.csv`` counts the failure messages (hidden tests
  included: this report is for instructors, never for students);
* ``similarity-flags.csv`` / ``similarity.png`` — pairs of students (and student vs. the published worked
  solution) whose *answer cells* look alike: code with copydetect (winnowed k-grams of tokens, names and strings
  abstracted, the released stub and the notebook's own code removed as boilerplate), written answers with
  rapidfuzz's ``token_sort_ratio``. A flag asks a human to look; it is never a penalty;
* ``report.md`` — a short summary linking them.

Student text is hostile: every CSV goes through :func:`tlcourse.grading.tables.write_csv`, every student string in
``report.md`` through :func:`md_text` (HTML escaped, Markdown punctuation backslash-escaped, length capped), every
plot label through :func:`plot_label`.

Example:
    >>> write_report("00_warmup", root=".")  # doctest: +SKIP
    PosixPath('.../course/reports/00_warmup/report.md')
"""

from __future__ import annotations

import html
import io
import itertools
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlcourse.grading.course import (
    CourseError,
    course_dir,
    load_nbgrader_config,
    open_gradebook,
    read_notebook,
    step_dir,
)
from tlcourse.grading.tables import write_csv

__all__ = ["CODE_FLAG", "TEXT_FLAG", "OUTCOMES", "SIMILARITY", "QuestionStats", "Pair", "failure_message",
           "outcome_of", "code_pairs", "written_pairs", "md_text", "plot_label", "write_report"]

#: copydetect's noise threshold k: the shortest run of *filtered* characters (``V=V("S",V=True)`` is 15) that
#: counts as shared. Answer cells are a few lines, so k is well below copydetect's default of 25.
CODE_K = 10
#: guarantee threshold = k: every k-gram is kept (window 1); the cells are small, so this costs nothing.
CODE_GUARANTEE = 10
#: a code pair is flagged at this token-weighted share of both students' own answer code in common.
CODE_FLAG = 0.8
#: ... and only when each side has at least this many filtered characters of its own (not stub, not template).
CODE_MIN_TOKENS = 40
#: a written pair is flagged at this rapidfuzz token_sort_ratio (0-100) ...
TEXT_FLAG = 85.0
#: ... between answers of at least this many characters (after lower-casing and dropping punctuation).
TEXT_MIN_CHARS = 40
#: the most characters of any student string that a report shows.
CAP = 160
SOLUTION = "(worked solution)"
NOTE = ("A flag asks a person to compare the two answers; it is never a penalty on its own. Short exercises "
        "have few sensible solutions, so honest answers can look alike, and a copy can be rewritten to avoid it.")
_SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.MULTILINE)


@dataclass
class QuestionStats:
    """How the class did on one test cell.

    Example:
        >>> s = QuestionStats("ex1_tests", 2.0, passed=3, failed=1, errored=1)
        >>> s.students, round(s.failure_rate, 2)
        (5, 0.4)
    """

    grade_id: str
    points: float
    passed: int = 0
    failed: int = 0
    errored: int = 0
    messages: Counter = field(default_factory=Counter)

    @property
    def students(self) -> int:
        """How many students this test was graded for."""
        return self.passed + self.failed + self.errored

    @property
    def failure_rate(self) -> float:
        """The share of students who did not pass (failed or errored)."""
        return (self.failed + self.errored) / self.students if self.students else 0.0


@dataclass
class Pair:
    """Two answers that look alike: ``kind`` is ``code`` or ``written``; ``b`` may be the worked solution.

    Example:
        >>> Pair("code", "ann", "bob", 0.93, ["ex1 (1.00)"]).flagged
        True
    """

    kind: str
    a: str
    b: str
    score: float  # 0-1
    cells: list[str]

    @property
    def flagged(self) -> bool:
        """Whether the score reaches the kind's threshold."""
        return self.score >= FLAGS[self.kind]


FLAGS: dict[str, float] = {"code": CODE_FLAG, "written": TEXT_FLAG / 100}


# ------------------------------------------------------------------------------------------------ pass rates
def _first_error(cell: Any) -> dict | None:
    return next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None) if cell else None


def _failing_line(error: dict) -> str:
    """The ``---->`` line of a traceback (the assert that failed), ANSI colours removed; else ''."""
    for frame in error.get("traceback", []) or []:
        for line in re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(frame)).splitlines():
            if line.lstrip().startswith("---->"):
                return re.sub(r"^\s*---->\s*\d*\s*", "", line).strip()
    return ""


def failure_message(cell: Any) -> str:
    """What made a test cell fail: the assert's message, else the failing assert line, else the exception's name.

    Example:
        >>> failure_message({"outputs": [{"output_type": "error", "ename": "AssertionError",
        ...                               "evalue": "the head should have 2 outputs", "traceback": []}]})
        'the head should have 2 outputs'
        >>> failure_message({"outputs": [{"output_type": "error", "ename": "NameError", "evalue": "x"}]})
        'NameError'
        >>> failure_message({"outputs": []})
        'no error shown (partial credit)'
    """
    error = _first_error(cell)
    if error is None:
        return "no error shown (partial credit)"
    name, value = str(error.get("ename", "error")), str(error.get("evalue", "")).strip()
    if name == "AssertionError":
        line = _failing_line(error)
        text = value or (f"AssertionError at: {line}" if line else "AssertionError")
    else:
        text = name
    return " ".join(text.split())[:CAP]


def outcome_of(score: float | None, max_score: float, cell: Any) -> str:
    """``passed`` (full points), ``failed`` (an assertion or partial credit) or ``errored`` (anything else).

    Example:
        >>> outcome_of(2, 2, None), outcome_of(0, 2, {"outputs": [{"output_type": "error", "ename": "KeyError"}]})
        ('passed', 'errored')
        >>> outcome_of(0, 2, {"outputs": [{"output_type": "error", "ename": "AssertionError"}]}), outcome_of(None, 2, None)
        ('failed', 'errored')
    """
    if score is not None and float(score) >= float(max_score):
        return "passed"
    if score is None or cell is None:
        return "errored"
    error = _first_error(cell)
    return "failed" if error is None or error.get("ename") == "AssertionError" else "errored"


#: The outcomes of a test cell, in the plot's order, with their colours.
OUTCOMES: dict[str, str] = {"passed": "#4c9a4c", "failed": "#e39b2d", "errored": "#c8423b"}


def _cells_by_id(nb: Any, kind: str | None = None) -> dict[str, Any]:
    """A notebook's cells by nbgrader grade id (the first of a duplicated id wins), optionally of one type."""
    out: dict[str, Any] = {}
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if isinstance(gid, str) and gid not in out and (kind is None or cell.get("cell_type") == kind):
            out[gid] = cell
    return out


# ------------------------------------------------------------------------------------------------ the course
@dataclass
class Layout:
    """An assignment's graded cells, each under a label (its grade id; ``nb:grade_id`` with several notebooks)."""

    tests: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # label -> (nb, grade id, points)
    code: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # label -> (nb, id, worked solution)
    written: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # label -> (nb, id, model answer)
    stubs: dict[str, str] = field(default_factory=dict)  # label -> what students were given
    template: str = ""  # every code cell students were given: boilerplate for copydetect


def _strip_solution(source: str) -> str:
    """An answer cell without nbgrader's ``### BEGIN/END SOLUTION`` marker lines (the worked solution).

    Example:
        >>> _strip_solution("def f():\\n    ### BEGIN SOLUTION\\n    return 1\\n    ### END SOLUTION\\n")
        'def f():\\n    return 1\\n'
    """
    return _SOLUTION_MARKERS.sub("", source)


def _released_cells(coursedir: Any, assignment: str, nb_id: str, source: Any) -> dict[str, Any]:
    """The released notebook's cells by grade id (``lessons/``); without it, the source with solutions cut out."""
    from tlcourse.grading.hidden import strip_hidden_tests

    path = step_dir(coursedir, "release_directory") / assignment / f"{nb_id}.ipynb"
    if path.is_file():
        return {gid: c.source for gid, c in _cells_by_id(read_notebook(path, path.name)).items()}
    cut = re.compile(r"### BEGIN SOLUTION.*?### END SOLUTION[^\n]*", re.DOTALL)
    return {gid: strip_hidden_tests(cut.sub("# YOUR CODE HERE", c.source), note=None)
            for gid, c in _cells_by_id(source).items()}


def load_layout(cfg: Any, assignment: str) -> Layout:
    """The graded cells of ``assignment`` from its source notebooks (``solutions/``) and released copies.

    Example:
        >>> layout = load_layout(load_nbgrader_config(), "00_warmup")
        >>> sorted(layout.written), layout.tests["ex1_replace_head_tests"][2]
        (['ex4_why_freeze_first'], 2.0)
    """
    from tlcourse.grading.course import source_notebooks

    coursedir, layout = course_dir(cfg), Layout()
    notebooks = source_notebooks(cfg, assignment)
    for nb_id, path in notebooks.items():
        source = read_notebook(path, path.name)
        released = _released_cells(coursedir, assignment, nb_id, source)
        for gid, cell in _cells_by_id(source).items():
            meta, label = cell.metadata.get("nbgrader", {}), gid if len(notebooks) == 1 else f"{nb_id}:{gid}"
            if meta.get("grade") and not meta.get("solution") and cell.cell_type == "code":
                layout.tests[label] = (nb_id, gid, float(meta.get("points", 0)))
            elif meta.get("solution"):
                kind = layout.code if cell.cell_type == "code" else layout.written
                kind[label] = (nb_id, gid, _strip_solution(cell.source))
                layout.stubs[label] = released.get(gid, "")
        layout.template += "\n".join(s for g, s in released.items() if _cells_by_id(source).get(g, {})
                                     .get("cell_type") == "code") + "\n"
    return layout


def _safe_id(student: str) -> bool:
    return bool(student) and student not in {".", ".."} and not any(c in student for c in "/\\\0")


def load_autograded(coursedir: Any, assignment: str, students: Iterable[str], notebooks: Iterable[str],
                    max_mb: float = 16) -> dict[str, dict[str, dict[str, Any]]]:
    """student -> notebook -> grade id -> cell of the autograded notebooks (read size-capped; missing: empty)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for student in students:
        out[student] = {}
        folder = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment))
        for nb_id in sorted(set(notebooks)):
            path = folder / f"{nb_id}.ipynb"
            try:
                ok = _safe_id(student) and path.exists()
                out[student][nb_id] = _cells_by_id(read_notebook(path, f"{student}/{nb_id}.ipynb", max_mb)) if ok else {}
            except CourseError:
                out[student][nb_id] = {}
    return out


def answers_of(graded: dict[str, dict[str, dict[str, Any]]], layout: Layout) -> dict[str, dict[str, str]]:
    """Each student's answer cells (label -> source), of the type the source notebook gave them.

    Example:
        >>> lay = Layout(code={"ex1": ("nb", "ex1", "x = 1")})
        >>> answers_of({"ann": {"nb": {"ex1": {"cell_type": "code", "source": "y = 2"}}}}, lay)
        {'ann': {'ex1': 'y = 2'}}
    """
    wanted = {**{k: (*v[:2], "code") for k, v in layout.code.items()},
              **{k: (*v[:2], "markdown") for k, v in layout.written.items()}}
    out: dict[str, dict[str, str]] = {}
    for student, notebooks in graded.items():
        out[student] = {}
        for label, (nb_id, gid, kind) in wanted.items():
            cell = notebooks.get(nb_id, {}).get(gid)
            if cell is not None and cell.get("cell_type") == kind:
                out[student][label] = str(cell.get("source", ""))
    return out


def pass_rates(coursedir: Any, assignment: str, layout: Layout,
               graded: dict[str, dict[str, dict[str, Any]]]) -> list[QuestionStats]:
    """Per test cell, the class's outcomes and failure messages (gradebook scores, autograded outputs), the most
    failed first."""
    stats = {label: QuestionStats(label, points) for label, (_, _, points) in layout.tests.items()}
    with open_gradebook(coursedir) as gb:
        for sub in gb.find_assignment(assignment).submissions:
            for nb in sub.notebooks:
                scores = {g.name: g.auto_score for g in nb.grades}
                for label, (nb_id, gid, points) in layout.tests.items():
                    if nb_id != nb.name or gid not in scores:
                        continue
                    cell = graded.get(sub.student_id, {}).get(nb_id, {}).get(gid)
                    result = outcome_of(scores[gid], points, cell)
                    setattr(stats[label], result, getattr(stats[label], result) + 1)
                    if result != "passed":
                        stats[label].messages[failure_message(cell) if cell else "no autograded cell"] += 1
    return sorted(stats.values(), key=lambda s: (-s.failure_rate, s.grade_id))


def students_of(coursedir: Any, assignment: str) -> list[str]:
    """The students with a submission of ``assignment`` in the gradebook, sorted."""
    from nbgrader.api import MissingEntry

    from tlcourse.grading.course import sqlite_path

    db = sqlite_path(coursedir.db_url)
    if db is not None and not db.is_file():  # a report never creates an empty gradebook
        raise CourseError(f"no gradebook at {db}: grade {assignment} first (tlcourse grade)")
    with open_gradebook(coursedir) as gb:
        try:
            return sorted(s.student_id for s in gb.find_assignment(assignment).submissions)
        except MissingEntry:
            raise CourseError(f"the gradebook holds no {assignment!r}: grade it first (tlcourse grade)") from None


# ------------------------------------------------------------------------------------------------ similarity
def _fingerprint(code: str, boilerplate: Any) -> Any:
    """copydetect's fingerprint of a piece of Python (names -> V/F/O, strings -> S, comments and blanks dropped),
    boilerplate k-grams removed; ``None`` when too short to fingerprint."""
    from copydetect import CodeFingerprint

    try:
        fp = CodeFingerprint("answer.py", CODE_K, CODE_GUARANTEE - CODE_K + 1, boilerplate=boilerplate,
                             language="python", fp=io.StringIO(code))
    except (ValueError, IndexError):
        return None
    return fp if fp.token_coverage > 0 else None


def boilerplate_hashes(layout: Layout) -> Any:
    """The k-gram hashes of everything students were given (stubs, template and visible test code).

    Example:
        >>> len(boilerplate_hashes(Layout(template="model = load_backbone('x', pretrained=True)\\n"))) > 0
        True
    """
    import numpy as np
    from copydetect import CodeFingerprint

    text = layout.template + "\n".join(layout.stubs.get(k, "") for k in layout.code)
    hashes = CodeFingerprint("template.py", CODE_K, 1, language="python", fp=io.StringIO(text)).hashes
    return np.unique(np.array(sorted(hashes), dtype=np.int64))


def code_pairs(answers: dict[str, dict[str, str]], layout: Layout) -> list[Pair]:
    """Every pair of students (and each student vs. the worked solution) scored on their code answers.

    The score is the share of both sides' own answer code (filtered characters, boilerplate removed) that the
    other side has too, weighted by length over all code cells; ``cells`` names those at or above the flag.

    Example:
        >>> mine = "def top(xs, k):\\n    out = sorted(set(xs), reverse=True)\\n    return [x * 2 for x in out[:k] if x > 0]\\n"
        >>> lay = Layout(code={"ex1": ("nb", "ex1", mine)})
        >>> ans = {"ann": {"ex1": mine.replace("out", "best").replace("x", "v")}}  # names renamed: still a copy
        >>> [(p.a, p.b, round(p.score, 2)) for p in code_pairs(ans, lay)]
        [('ann', '(worked solution)', 1.0)]
    """
    from copydetect import compare_files

    boiler = boilerplate_hashes(layout)
    sources = {SOLUTION: {k: v[2] for k, v in layout.code.items()}, **answers}
    prints = {s: {k: _fingerprint(cells.get(k, ""), boiler) for k in layout.code} for s, cells in sources.items()}
    pairs = []
    for a, b in itertools.combinations(sorted(answers) + [SOLUTION], 2):
        shared = own_a = own_b = 0.0
        cells = []
        for label in layout.code:
            fa, fb = prints[a][label], prints[b][label]
            own_a += fa.token_coverage if fa else 0
            own_b += fb.token_coverage if fb else 0
            if fa is None or fb is None:
                continue
            _, (sa, sb), _ = compare_files(fa, fb)
            shared += sa * fa.token_coverage + sb * fb.token_coverage
            if min(sa, sb) >= CODE_FLAG:
                cells.append(f"{label} ({min(sa, sb):.2f})")
        total = own_a + own_b
        enough = min(own_a, own_b) >= CODE_MIN_TOKENS
        pairs.append(Pair("code", a, b, float(shared / total) if total and enough else 0.0, cells))
    return pairs


def _text(text: str) -> str:
    from rapidfuzz import utils

    return utils.default_process(text)


def written_pairs(answers: dict[str, dict[str, str]], layout: Layout) -> list[Pair]:
    """Every pair of students (and each student vs. the model answer) scored on their written answers: the best
    rapidfuzz ``token_sort_ratio`` / 100 over the written cells both answered (the stub text is no answer).

    Example:
        >>> lay = Layout(written={"q": ("nb", "q", "Freezing protects the pretrained features from the noisy head.")},
        ...              stubs={"q": "YOUR ANSWER HERE"})
        >>> ans = {"ann": {"q": "freezing protects the pretrained features from the noisy head!"},
        ...        "bob": {"q": "YOUR ANSWER HERE"}}
        >>> [(p.a, p.b, p.score) for p in written_pairs(ans, lay)]
        [('ann', 'bob', 0.0), ('ann', '(worked solution)', 1.0), ('bob', '(worked solution)', 0.0)]
    """
    from rapidfuzz import fuzz

    texts: dict[str, dict[str, str]] = {}
    for who, cells in {SOLUTION: {k: v[2] for k, v in layout.written.items()}, **answers}.items():
        texts[who] = {}
        for label in layout.written:
            text, stub = _text(cells.get(label, "")), _text(layout.stubs.get(label, ""))
            if len(text) >= TEXT_MIN_CHARS and (not stub or fuzz.ratio(text, stub) < 90):
                texts[who][label] = text
    pairs = []
    for a, b in itertools.combinations(sorted(answers) + [SOLUTION], 2):
        scores = {label: fuzz.token_sort_ratio(texts[a][label], texts[b][label]) / 100
                  for label in layout.written if label in texts[a] and label in texts[b]}
        best = max(scores.values(), default=0.0)
        pairs.append(Pair("written", a, b, best, [f"{k} ({v:.2f})" for k, v in scores.items() if v >= TEXT_FLAG / 100]))
    return pairs


#: How each kind of answer is compared: kind -> (answers, layout) -> scored pairs.
SIMILARITY: dict[str, Callable[[dict[str, dict[str, str]], Layout], list[Pair]]] = {
    "code": code_pairs,
    "written": written_pairs,
}


# ------------------------------------------------------------------------------------------------ hostile text
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_MD_PUNCT = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:<>\"'=$^@])")


def _plain(text: Any, cap: int) -> str:
    """One line of at most ``cap`` characters: controls and bidi overrides removed, blanks collapsed."""
    flat = " ".join(_CONTROL.sub(" ", str(text)).split())
    return flat if len(flat) <= cap else flat[: cap - 1] + "…"


def md_text(text: Any, cap: int = CAP) -> str:
    """Student text made inert in Markdown: one line, capped, HTML escaped, Markdown punctuation backslash-escaped.

    Example:
        >>> md_text("<img src=x onerror=alert(1)> | **bold** [l](http://x)")
        '&lt;img src\\\\=x onerror\\\\=alert\\\\(1\\\\)&gt; \\\\| \\\\*\\\\*bold\\\\*\\\\* \\\\[l\\\\]\\\\(http\\\\://x\\\\)'
        >>> md_text("x" * 500, cap=5)
        'xxxx…'
    """
    return _MD_PUNCT.sub(r"\\\1", html.escape(_plain(text, cap), quote=False))


def plot_label(text: Any, cap: int = 24) -> str:
    """Student text made safe as a matplotlib label: one line, capped, no mathtext (``$`` escaped).

    Example:
        >>> plot_label("$\\\\frac{1}{0}$ eve\\n")
        '\\\\$\\\\frac{1}{0}\\\\$ eve'
    """
    return _plain(text, cap).replace("$", r"\$")


# ------------------------------------------------------------------------------------------------ plots
def _figure(width: float, height: float) -> Any:
    """A matplotlib figure drawn by the Agg canvas (no pyplot: the caller's backend is left alone)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_pass_rates(stats: Sequence[QuestionStats], path: Path) -> Path:
    """A horizontal stacked bar per test cell (passed / failed / errored), the most failed at the top."""
    fig = _figure(8, 1.2 + 0.45 * max(1, len(stats)))
    ax = fig.add_subplot()
    rows = list(reversed(stats))  # barh draws bottom-up
    left = [0.0] * len(rows)
    for name, colour in OUTCOMES.items():
        counts = [getattr(s, name) for s in rows]
        ax.barh(range(len(rows)), counts, left=left, color=colour, label=name)
        left = [a + b for a, b in zip(left, counts, strict=True)]
    ax.set_yticks(range(len(rows)), [plot_label(s.grade_id, 40) for s in rows])
    ax.set_xlabel("students")
    ax.set_title("Test cells, most failed first")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.savefig(path, dpi=110)
    return path


def _heatmap(students: Sequence[str], pairs: Sequence[Pair], path: Path) -> Path:
    import numpy as np

    names = [*students, SOLUTION]
    where = {s: i for i, s in enumerate(names)}
    grid = np.full((len(names), len(names)), np.nan)
    for p in pairs:
        i, j = where[p.a], where[p.b]
        grid[i, j] = grid[j, i] = np.nanmax([grid[i, j], p.score])
    fig = _figure(2.5 + 0.45 * len(names), 2 + 0.4 * len(names))
    ax = fig.add_subplot()
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="magma_r")
    labels = [plot_label(n) for n in names]
    ax.set_xticks(range(len(names)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), labels)
    flagged = {(where[p.a], where[p.b]) for p in pairs if p.flagged}
    for (i, j) in flagged | {(j, i) for i, j in flagged}:
        ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="white", fontsize=7)
    fig.colorbar(image, ax=ax, label="max similarity (code or written)")
    ax.set_title("Similarity of answer cells (numbers: flagged pairs)\na flag for a human, never a penalty",
                 fontsize="medium")
    fig.savefig(path, dpi=110)
    return path


def _histogram(students: Sequence[str], pairs: Sequence[Pair], path: Path) -> Path:
    fig = _figure(8, 4)
    ax = fig.add_subplot()
    for kind in SIMILARITY:
        scores = [p.score for p in pairs if p.kind == kind and p.b != SOLUTION]
        ax.hist(scores, bins=40, range=(0, 1), alpha=0.6, label=f"{kind} ({len(scores)} pairs)")
        ax.axvline(FLAGS[kind], linestyle="--", color="black" if kind == "code" else "grey",
                   label=f"{kind} flag at {FLAGS[kind]:.2f}")
    ax.set_yscale("log")
    ax.set_xlabel("pair similarity")
    ax.set_ylabel("pairs of students")
    ax.set_title(f"{len(students)} students: pair similarity (a flag for a human, never a penalty)")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)
    return path


#: Similarity plots: a heatmap up to HEATMAP_MAX students, else a histogram of pair scores with the thresholds.
SIMILARITY_PLOTS: dict[str, Callable[[Sequence[str], Sequence[Pair], Path], Path]] = {
    "heatmap": _heatmap,
    "histogram": _histogram,
}
HEATMAP_MAX = 40


# ------------------------------------------------------------------------------------------------ files
def _write_pass_rates(stats: Sequence[QuestionStats], out: Path) -> list[Path]:
    rates = write_csv(out / "pass-rates.csv",
                      ["test", "points", "students", "passed", "failed", "errored", "failure_rate", "top_failure",
                       "top_failure_count"],
                      ([s.grade_id, f"{s.points:g}", s.students, s.passed, s.failed, s.errored,
                        f"{s.failure_rate:.3f}", *(s.messages.most_common(1) or [("", 0)])[0]] for s in stats))
    failures = write_csv(out / "failures.csv", ["test", "message", "students"],
                         ([s.grade_id, _plain(m, CAP), n] for s in stats for m, n in s.messages.most_common()))
    return [rates, failures, plot_pass_rates(stats, out / "pass-rates.png")]


def _write_similarity(students: Sequence[str], pairs: Sequence[Pair], out: Path) -> list[Path]:
    ranked = sorted(pairs, key=lambda p: (-p.score, p.kind, p.a, p.b))
    flags = write_csv(out / "similarity-flags.csv",
                      ["kind", "student_a", "student_b", "score", "threshold", "cells", "note"],
                      ([p.kind, p.a, p.b, f"{p.score:.3f}", f"{FLAGS[p.kind]:.2f}", "; ".join(p.cells),
                        "flag for a human to review, not a penalty"] for p in ranked if p.flagged))
    every = write_csv(out / "similarity-pairs.csv", ["kind", "student_a", "student_b", "score", "flagged"],
                      ([p.kind, p.a, p.b, f"{p.score:.3f}", "yes" if p.flagged else "no"] for p in ranked))
    plot = SIMILARITY_PLOTS["heatmap" if len(students) <= HEATMAP_MAX else "histogram"]
    return [flags, every, plot(students, pairs, out / "similarity.png")]


def _markdown(assignment: str, students: Sequence[str], stats: Sequence[QuestionStats], pairs: Sequence[Pair],
              top: int = 30) -> str:
    """The summary page: pass rates, the flagged pairs (student text escaped), links to the files."""
    lines = [f"# Report of {md_text(assignment, 60)}: {len(students)} graded submission(s)", "",
             "For instructors only: failure messages include hidden tests.", "",
             "## Test cells, most failed first", "", "![pass rates](pass-rates.png)", "",
             "| test | points | passed | failed | errored | failure rate | most common failures (students) |",
             "|---|---|---|---|---|---|---|"]
    for s in stats:
        common = "; ".join(f"{md_text(m, 100)} ({n})" for m, n in s.messages.most_common(3))
        lines.append(f"| {md_text(s.grade_id, 60)} | {s.points:g} | {s.passed} | {s.failed} | {s.errored} | "
                     f"{s.failure_rate:.0%} | {common} |")
    flagged = sorted((p for p in pairs if p.flagged), key=lambda p: (-p.score, p.kind, p.a, p.b))
    lines += ["", "Every failure message, counted: [failures.csv](failures.csv); the table: "
              "[pass-rates.csv](pass-rates.csv).", "", "## Similar answers", "", f"**{NOTE}**", "",
              f"Only answer cells are compared, never the notebook around them. Code: copydetect (k = {CODE_K}; "
              f"the released stub and the notebook's own code removed), flagged at {CODE_FLAG:.2f} of both "
              f"sides' own code (at least {CODE_MIN_TOKENS} characters each). Written: rapidfuzz token_sort_ratio, "
              f"flagged at {TEXT_FLAG:g}/100 (answers of {TEXT_MIN_CHARS}+ characters).", "",
              "![similarity](similarity.png)", "",
              f"{len(flagged)} flagged pair(s) of {len(pairs)} compared: [similarity-flags.csv](similarity-flags.csv)"
              " (all scores: [similarity-pairs.csv](similarity-pairs.csv)).", ""]
    if flagged:
        lines += ["| kind | student | student | score | cells |", "|---|---|---|---|---|"]
        lines += [f"| {p.kind} | {md_text(p.a, 40)} | {md_text(p.b, 40)} | {p.score:.2f} | "
                  f"{md_text('; '.join(p.cells), 120)} |" for p in flagged[:top]]
        if len(flagged) > top:
            lines.append(f"\n{len(flagged) - top} more in similarity-flags.csv.")
    return "\n".join(lines) + "\n"


def write_report(assignment: str, out: str | os.PathLike[str] | None = None,
                 root: str | os.PathLike[str] | None = None) -> Path:
    """Write the instructor report of a graded assignment into ``out`` (default ``<course>/reports/<assignment>``);
    return the path of its ``report.md``.

    Example:
        >>> write_report("00_warmup", out="/tmp/r")  # doctest: +SKIP
        PosixPath('/tmp/r/report.md')
    """
    cfg = load_nbgrader_config(root)
    coursedir = course_dir(cfg)
    layout = load_layout(cfg, assignment)
    students = students_of(coursedir, assignment)
    notebooks = {v[0] for v in (*layout.tests.values(), *layout.code.values(), *layout.written.values())}
    graded = load_autograded(coursedir, assignment, students, notebooks)
    folder = Path(out) if out is not None else step_dir(coursedir, "autograded_directory").parent / "reports" / assignment
    folder.mkdir(parents=True, exist_ok=True)
    stats = pass_rates(coursedir, assignment, layout, graded)
    answers = answers_of(graded, layout)
    pairs = [p for kind in SIMILARITY.values() for p in kind(answers, layout)]
    _write_pass_rates(stats, folder)
    _write_similarity(students, pairs, folder)
    report = folder / "report.md"
    report.write_text(_markdown(assignment, students, stats, pairs), encoding="utf-8")
    return report
