"""The course map and the exercise plan, generated from the solution notebooks (read-only) so they never go stale.

    python docs/coursemap.py                 # the course map (markdown) on stdout
    python docs/coursemap.py --plan          # the teaching guide's exercise plan: points, use, common mistakes

``docs/build.py`` calls :func:`write` for every site build: ``course-map.md`` (per lesson: title, learning
objectives, prerequisites, an estimated study time, the exercises with their points) and
``generated/exercise-plan.md``, which ``docs/pages/teaching.md`` includes (per exercise: points, credit or
practice, and the common mistake that ``tests/submissions/mistakes/NN_name.json`` hands in).

Where each number comes from:

* **objectives** — the numbered list under "Learning objectives" in the notebook's first markdown cell;
* **exercises and points** — nbgrader's cell metadata: every graded cell (``grade`` or ``task``) with its
  ``points``, under the nearest "Exercise …" or "Question …" heading above it;
* **study time** — an estimate, not a measurement: the words of markdown a student reads (model answers, which
  students never see, are left out) at :data:`READING_WPM` words a minute, plus the lesson's run time in the cpu
  profile from ``benchmarks/RESULTS.json`` (when recorded), plus :data:`MINUTES_PER_POINT` per exercise point;
* **prerequisites** — :data:`PREREQUISITES`, kept by hand here;
* **credit or practice** — :data:`PRACTICE`, kept by hand here (every other exercise is recommended for credit).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

#: silent reading of English non-fiction by adults, words a minute: M. Brysbaert, "How many words do we read per
#: minute? A review and meta-analysis of reading rate", Journal of Memory and Language 109, 104047 (2019)
BRYSBAERT_NONFICTION_WPM = 238
#: our assumption, not a measurement: studying technical text with formulas, tables and code takes 1.5 times as
#: long as reading plain non-fiction
TECHNICAL_SLOWDOWN = 1.5
READING_WPM = BRYSBAERT_NONFICTION_WPM / TECHNICAL_SLOWDOWN
#: a planning allowance, not a measurement: minutes per exercise point to read the task, write, test and fix
MINUTES_PER_POINT = 10


@dataclass(frozen=True)
class Prerequisites:
    """What a lesson builds on: earlier lessons (names) and knowledge from outside the course."""

    lessons: tuple[str, ...]
    outside: str


#: per lesson: the earlier lessons it builds on, and what it assumes from outside the course
PREREQUISITES: dict[str, Prerequisites] = {
    "00_warmup": Prerequisites(
        (), "Python; PyTorch tensors and `nn.Module` at the level of an introductory tutorial; what a classifier "
            "and its parameters are"),
    "01_pretrained_models": Prerequisites(
        ("00_warmup",), "convolutional networks (kernels, strides, channels); softmax and probabilities"),
    "02_feature_extraction": Prerequisites(
        ("00_warmup", "01_pretrained_models"), "logistic regression; training and validation splits; a PyTorch "
                                               "training loop (optimizer, cross-entropy, backward, step)"),
    "03_fine_tuning": Prerequisites(
        ("00_warmup", "02_feature_extraction"), "gradient descent with Adam or AdamW and learning-rate schedules; "
                                                "over-fitting and weight decay"),
    "04_domain_adaptation": Prerequisites(
        ("01_pretrained_models", "02_feature_extraction", "03_fine_tuning"),
        "probability distributions, means and covariance matrices; PyTorch autograd (the lesson writes a custom "
        "`torch.autograd.Function`)"),
    "05_case_medical": Prerequisites(
        ("01_pretrained_models", "02_feature_extraction", "03_fine_tuning"),
        "the confusion matrix; class imbalance; lesson 04's idea of domain shift helps with §8"),
    "06_case_sentiment": Prerequisites(
        ("02_feature_extraction", "03_fine_tuning", "04_domain_adaptation"),
        "what a transformer layer and attention do, at the level of a diagram; Hugging Face `transformers` "
        "helps but is not required"),
    "07_capstone": Prerequisites(
        ("02_feature_extraction", "03_fine_tuning", "05_case_medical"),
        "a data set of your own is welcome (an image folder or a CSV of texts), not required; confidence intervals "
        "at the level of lesson 05's tables; lesson 06 for the text path"),
}

#: exercises (by number) recommended as practice rather than for credit; every other exercise is for credit
PRACTICE: dict[str, frozenset[int]] = {
    "00_warmup": frozenset({1, 2, 3}),  # the set-up check: every later lesson repeats these steps
    "01_pretrained_models": frozenset({2, 3}),  # shapes and receptive fields: the arithmetic of CNNs
    "02_feature_extraction": frozenset({3}),  # an accuracy: a few lines
    "03_fine_tuning": frozenset(),
    "04_domain_adaptation": frozenset({1}),  # the gap: the same accuracy as before, twice
    "05_case_medical": frozenset({2}),  # the weights: a formula given in the task
    "06_case_sentiment": frozenset({1}),  # tokenizer arguments
    "07_capstone": frozenset({1}),  # preprocessing: a contract spelled out in the task
}

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
_EXERCISE = re.compile(r"^(Exercise|Question)\b")
_POINTS = re.compile(r"(\d+(?:\.\d+)?)\s+points?\b")
_NUMBERED = re.compile(r"^\s*\d+\.\s+(.*)$")
_GRADE_NUMBER = re.compile(r"^ex(\d+)_")
_LESSON_LINK = re.compile(r"\]\(\.\./\.\./lessons/(\d\d_\w+)/\1\.ipynb(?:#([\w-]+))?")


@dataclass(frozen=True)
class Exercise:
    """One exercise or written question: its heading, its graded cells and their points."""

    title: str  # the heading's text, e.g. "Exercise 1 — a new head (2 points)"
    anchor: str  # the heading's anchor on the lesson's page
    grade_ids: tuple[str, ...]
    points: float
    written: bool  # graded by hand (a written answer or an nbgrader task)

    @property
    def number(self) -> int | None:
        """The ``N`` of its grade ids ``exN_…`` (the mistakes files count exercises that way)."""
        found = {int(m.group(1)) for m in map(_GRADE_NUMBER.match, self.grade_ids) if m}
        return found.pop() if len(found) == 1 else None

    @property
    def stated_points(self) -> float | None:
        """The points its heading states, e.g. 2 for "… (written, 2 points)"; ``None`` when it states none."""
        found = _POINTS.search(self.title)
        return float(found.group(1)) if found else None


@dataclass(frozen=True)
class Lesson:
    """What the course map says about one lesson."""

    name: str
    title: str
    objectives: tuple[str, ...]
    exercises: tuple[Exercise, ...]
    total_points: float  # every graded cell of the notebook
    words: int  # markdown a student reads
    run_seconds: float | None  # the cpu profile's run time, when recorded
    anchors: frozenset[str]  # every heading anchor of the notebook

    @property
    def reading_minutes(self) -> float:
        return self.words / READING_WPM

    @property
    def exercise_minutes(self) -> float:
        return self.total_points * MINUTES_PER_POINT

    @property
    def study_minutes(self) -> float:
        """Reading + running (cpu profile) + the allowance per exercise point: an estimate."""
        return self.reading_minutes + (self.run_seconds or 0) / 60 + self.exercise_minutes


@dataclass(frozen=True)
class Mistake:
    """One common mistake of ``tests/submissions/mistakes/NN_name.json``: which exercise, and what goes wrong."""

    lesson: str
    number: int  # the exercise's N (grade ids ``exN_…``)
    answer_id: str | None  # the answer cell the file replaces
    text: str


# ----------------------------------------------------------------------------------------------------- reading
def lesson_names(root: Path = ROOT) -> list[str]:
    """The lessons, in order: every ``solutions/NN_name/NN_name.ipynb``.

    Example:
        >>> lesson_names()[0]
        '00_warmup'
    """
    return sorted(p.parent.name for p in root.glob("solutions/[0-9][0-9]_*/[0-9][0-9]_*.ipynb")
                  if p.stem == p.parent.name)


def heading_anchor(title: str) -> str:
    """The anchor MyST gives a heading (GitHub's rule, on the text without markup, math or link targets).

    Example:
        >>> heading_anchor("Exercise 1 — top-*k* predictions (3 points)")
        'exercise-1--top-k-predictions-3-points'
        >>> heading_anchor("3. The BatchNorm pitfall")
        '3-the-batchnorm-pitfall'
    """
    text = re.sub(r"\$[^$]*\$", "", title)  # inline math is not text
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link: its text
    text = re.sub(r"[*`]|(?<!\w)_|_(?!\w)", "", text)  # emphasis and code markers
    return re.sub(r"[^\w\u4e00-\u9fff\- ]", "", text.lower().replace(" ", "-"))


def _headings(source: str) -> list[str]:
    """The headings of a markdown cell, outside fenced code."""
    unfenced = re.sub(r"^(```|~~~).*?^\1", "", source, flags=re.MULTILINE | re.DOTALL)
    return [m.group(2) for m in _HEADING.finditer(unfenced)]


def notebook_anchors(nb: Any) -> list[tuple[str, str]]:
    """``(anchor, heading)`` for every heading of a notebook's markdown, made unique as MyST does (``-1``, …).

    Example:
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A\\n## Summary\\n## Summary")])
        >>> [a for a, _ in notebook_anchors(nb)]
        ['a', 'summary', 'summary-1']
    """
    seen: set[str] = set()
    out = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for heading in _headings(cell.source):
            base = anchor = heading_anchor(heading)
            count = 0
            while anchor in seen:
                count += 1
                anchor = f"{base}-{count}"
            seen.add(anchor)
            out.append((anchor, heading))
    return out


def objectives(source: str) -> list[str]:
    """The numbered learning objectives of a title cell (continuation lines joined).

    Example:
        >>> objectives("# T\\n\\n**Learning objectives** — you can\\n\\n1. load a model;\\n2. freeze\\n   it.\\n\\nMore.")
        ['load a model;', 'freeze it.']
    """
    _, found, rest = source.partition("Learning objectives")
    if not found:
        return []
    items: list[str] = []
    for line in rest.splitlines()[1:]:
        item = _NUMBERED.match(line)
        if item:
            items.append(item.group(1).strip())
        elif line.strip() and items and line.startswith((" ", "\t")):
            items[-1] += " " + line.strip()
        elif items:
            break
    return items


def count_words(markdown: str) -> int:
    """Words a reader reads: a formula or a link counts once, a URL or an HTML tag not at all.

    Example:
        >>> count_words("The **softmax** $p_i = e^{z_i} / \\\\sum_j e^{z_j}$ of the [logits](https://x.org/a-b).")
        6
    """
    text = re.sub(r"\$\$.*?\$\$|\$[^$\n]+\$", " formula ", markdown, flags=re.DOTALL)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"<[^>]+>", " ", text)
    return len(re.findall(r"[^\W_]+(?:['’_.-][^\W_]+)*", text))


def _grading(cell: Any) -> dict[str, Any]:
    meta = cell.metadata.get("nbgrader", {})
    return meta if meta.get("grade") or meta.get("task") else {}


def exercises(nb: Any) -> list[Exercise]:
    """The exercises of a notebook: each "Exercise …" / "Question …" heading with the graded cells below it
    (points summed). A graded cell above every such heading becomes an exercise named by its grade id.

    Example:
        >>> md = nbformat.v4.new_markdown_cell("### Exercise 1 — a head (2 points)")
        >>> test = nbformat.v4.new_code_cell("assert True", metadata={"nbgrader": {
        ...     "grade": True, "grade_id": "ex1_head_tests", "points": 2, "solution": False}})
        >>> [(e.title, e.points, e.number) for e in exercises(nbformat.v4.new_notebook(cells=[md, test]))]
        [('Exercise 1 — a head (2 points)', 2.0, 1)]
    """
    anchors = iter(notebook_anchors(nb))
    found: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for heading in _headings(cell.source):
                anchor, _ = next(anchors)
                if _EXERCISE.match(heading.strip("*_ ")):
                    current = anchor
                    found.setdefault(anchor, {"title": heading, "anchor": anchor, "ids": [], "points": 0.0,
                                              "written": False})
        meta = _grading(cell)
        if not meta:
            continue
        key = current or meta.get("grade_id", "?")
        entry = found.setdefault(key, {"title": meta.get("grade_id", "?"), "anchor": "", "ids": [], "points": 0.0,
                                       "written": False})
        entry["ids"].append(meta.get("grade_id", "?"))
        entry["points"] += float(meta.get("points", 0) or 0)
        entry["written"] |= bool(meta.get("task") or (meta.get("grade") and meta.get("solution")))
    return [Exercise(e["title"], e["anchor"], tuple(e["ids"]), e["points"], e["written"]) for e in found.values()
            if e["ids"] or e["anchor"]]


def total_points(nb: Any) -> float:
    """The points of every graded cell of a notebook (autograded tests, written answers, tasks)."""
    return sum(float(_grading(c).get("points", 0) or 0) for c in nb.cells)


def cpu_seconds(root: Path = ROOT) -> tuple[dict[str, float], str]:
    """The cpu profile's run time per lesson from ``benchmarks/RESULTS.json`` (runs that ended ``ok``), and a
    line naming the machine and the date; empty when nothing is recorded."""
    path = root / "benchmarks" / "RESULTS.json"
    try:
        run = json.loads(path.read_text(encoding="utf-8"))["runs"]["cpu"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}, ""
    seconds = {name: float(rec["seconds"]) for name, rec in run.get("notebooks", {}).items()
               if isinstance(rec, dict) and rec.get("status") == "ok" and rec.get("seconds") is not None}
    machine = run.get("machine") or {}
    where = f"{machine.get('cores', '?')}-core {machine.get('cpu', 'CPU')}, {str(run.get('time', ''))[:10]}"
    return seconds, where


def read_lesson(name: str, root: Path = ROOT, seconds: dict[str, float] | None = None) -> Lesson:
    """Read one solution notebook (never written) into a :class:`Lesson`.

    Example:
        >>> lesson = read_lesson("00_warmup")
        >>> lesson.title.startswith("00"), len(lesson.objectives) > 0, lesson.study_minutes > 0
        (True, True, True)
    """
    nb = nbformat.read(root / "solutions" / name / f"{name}.ipynb", as_version=4)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    title_cell = next((s for s in markdown if _headings(s)), "")
    read = [c.source for c in nb.cells if c.cell_type == "markdown"
            and not c.metadata.get("nbgrader", {}).get("solution")]  # model answers: students never see them
    return Lesson(name=name, title=(_headings(title_cell) or [name])[0], objectives=tuple(objectives(title_cell)),
                  exercises=tuple(exercises(nb)), total_points=total_points(nb),
                  words=sum(count_words(s) for s in read), run_seconds=(seconds or {}).get(name),
                  anchors=frozenset(a for a, _ in notebook_anchors(nb)))


def read_lessons(root: Path = ROOT) -> list[Lesson]:
    """Every lesson, in order, with the cpu profile's run times."""
    seconds, _ = cpu_seconds(root)
    return [read_lesson(name, root, seconds) for name in lesson_names(root)]


def _split_about(about: str) -> list[tuple[int, str]]:
    """``"…: ex1 does A; ex2 does B."`` → ``[(1, "does A"), (2, "does B")]``.

    Example:
        >>> _split_about("Mistakes, one per exercise: ex1 forgets eval mode; ex2 returns (a; b).")
        [(1, 'forgets eval mode'), (2, 'returns (a; b)')]
    """
    parts = re.split(r"(?:^|[:;]\s+)ex(\d+)\s+", about.strip())
    return [(int(parts[i]), parts[i + 1].strip().rstrip(".").strip()) for i in range(1, len(parts) - 1, 2)]


def mistakes(root: Path = ROOT) -> dict[str, list[Mistake]]:
    """The common mistakes per lesson, from the ``_about`` line of ``tests/submissions/mistakes/NN_name.json``.

    Example:
        >>> [m.answer_id for m in mistakes()["00_warmup"]][:1]
        ['ex1_replace_head']
    """
    out: dict[str, list[Mistake]] = {}
    for path in sorted((root / "tests" / "submissions" / "mistakes").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        answers = [k for k in data if not k.startswith("_")]
        out[path.stem] = [Mistake(path.stem, number, next((a for a in answers if a.startswith(f"ex{number}_")), None),
                                  text) for number, text in _split_about(str(data.get("_about", "")))]
    return out


# ----------------------------------------------------------------------------------------------------- writing
def _md(text: str) -> str:
    """Text from a JSON file, safe inside a markdown table cell."""
    return re.sub(r"([*|$<\\])", r"\\\1", text)


def _duration(minutes: float, step: int = 5) -> str:
    """Rounded up to ``step`` minutes: ``'1 h 25 min'``, ``'40 min'``.

    Example:
        >>> _duration(84.1), _duration(12), _duration(0.1, step=1)
        ('1 h 25 min', '15 min', '1 min')
    """
    rounded = step * math.ceil(minutes / step - 1e-9)
    hours, rest = divmod(rounded, 60)
    return f"{hours} h {rest} min" if hours and rest else f"{hours} h" if hours else f"{rest} min"


def _clock(minutes: float, step: int = 5) -> str:
    """Rounded up to ``step`` minutes, as ``h:mm`` (the compact form of the table at a glance).

    Example:
        >>> _clock(84.1), _clock(4.2, step=1)
        ('1:25', '0:05')
    """
    hours, rest = divmod(step * math.ceil(minutes / step - 1e-9), 60)
    return f"{hours}:{rest:02d}"


def _points(value: float) -> str:
    return f"{value:g}"


def _lesson_link(name: str, anchor: str = "") -> str:
    return f"lessons/{name}.ipynb" + (f"#{anchor}" if anchor else "")


def _short(lesson: Lesson) -> str:
    """``'00 · Warm-up'`` from ``'00 · Warm-up: a new head on a pretrained body'``; a case study keeps its subject
    (``'05 · Case study: medical images'``)."""
    head, _, rest = lesson.title.partition(":")
    if head.strip().lower().endswith("case study") and rest:
        head += ": " + re.split(r"\s+(?:—|with|when)\s+", rest.strip())[0]
    return head.strip()


def _exercise_cell(lesson: Lesson, ex: Exercise) -> str:
    label = re.sub(r"\s*\([^()]*points?[^()]*\)\s*$", "", ex.title)
    return f"[{label}]({_lesson_link(lesson.name, ex.anchor)})" if ex.anchor else f"`{label}`"


def _study_line(lesson: Lesson) -> str:
    run = (f"running it in the cpu profile {_duration(lesson.run_seconds / 60, step=1)}"
           if lesson.run_seconds is not None else "running it: not measured yet")
    return (f"**Study time (an estimate)** — about **{_duration(lesson.study_minutes)}**: reading "
            f"{_duration(lesson.reading_minutes, step=1)} ({lesson.words:,} words), {run}, exercises "
            f"{_duration(lesson.exercise_minutes)} ({_points(lesson.total_points)} points).")


def _prerequisites_line(lesson: Lesson, titles: dict[str, str]) -> str:
    pre = PREREQUISITES.get(lesson.name)
    if pre is None:
        return "**Prerequisites** — not recorded yet (`PREREQUISITES` in `docs/coursemap.py`)."
    earlier = ", ".join(f"[{titles.get(n, n)}]({_lesson_link(n)})" for n in pre.lessons) or "none"
    return f"**Prerequisites** — lessons: {earlier}. From outside the course: {pre.outside}."


def lesson_section(lesson: Lesson, titles: dict[str, str]) -> str:
    """One lesson's part of the course map."""
    rows = [f"| {_exercise_cell(lesson, ex)} | {_points(ex.points)} | "
            f"{'by hand (written)' if ex.written else 'automatically'} |" for ex in lesson.exercises]
    return "\n".join([
        f"## {lesson.title}", "",
        f"[Open the lesson]({_lesson_link(lesson.name)}) · `lessons/{lesson.name}/{lesson.name}.ipynb`", "",
        "**Learning objectives** — after this lesson you can", "",
        *(f"{i}. {text}" for i, text in enumerate(lesson.objectives, 1)), "",
        _prerequisites_line(lesson, titles), "",
        _study_line(lesson), "",
        "| exercise | points | graded |", "|---|---:|---|", *rows,
        f"| **total** | **{_points(lesson.total_points)}** | |", "",
    ])


def _builds_on(name: str) -> str:
    pre = PREREQUISITES.get(name)
    return "?" if pre is None else ", ".join(n[:2] for n in pre.lessons) or "—"


def _glance(lessons: list[Lesson]) -> list[str]:
    rows = [f"| [{_short(les)}](#{heading_anchor(les.title)}) | {_builds_on(les.name)} | {len(les.exercises)} | "
            f"{_points(les.total_points)} | {_clock(les.reading_minutes, step=1)} | "
            f"{_clock(les.run_seconds / 60, step=1) if les.run_seconds is not None else '—'} | "
            f"{_clock(les.exercise_minutes)} | **{_clock(les.study_minutes)}** |" for les in lessons]
    total = sum(les.study_minutes for les in lessons)
    return ["Times in hours and minutes (h:mm), estimated as described below the table.", "",
            "| lesson | builds on | exercises | points | reading | running | exercise work | total |",
            "|---|---|---:|---:|---:|---:|---:|---:|", *rows,
            f"| **the course** | | {sum(len(les.exercises) for les in lessons)} | "
            f"{_points(sum(les.total_points for les in lessons))} | | | | **{_clock(total)}** |"]


def course_map(root: Path = ROOT) -> str:
    """The course map page (markdown): every lesson's objectives, prerequisites, study time and exercises.

    Example:
        >>> text = course_map()
        >>> "# Course map" in text and "[decision checklist](checklist.md)" in text
        True
    """
    lessons = read_lessons(root)
    _, machine = cpu_seconds(root)
    titles = {les.name: _short(les) for les in lessons}
    run_source = (f"the lesson's run time in the cpu profile, measured once on the reference machine ({machine}; "
                  "`benchmarks/RESULTS.json`) — your laptop may be faster or slower"
                  if machine else "the cpu profile's run time, once `python -m benchmarks.run --profile cpu` has recorded it")
    return "\n".join([
        "# Course map", "",
        "What each lesson teaches, what it builds on, how long it takes and what it grades. This page is generated "
        "from the lesson notebooks each time the site is built, so it always matches them. To decide how to "
        "transfer on a problem of your own, use the [decision checklist](checklist.md); for a word you do not "
        "know, the [glossary](glossary.md). Instructors: the [teaching guide](teaching.md).", "",
        "## The course at a glance", "",
        *_glance(lessons), "",
        "### How the study time is estimated", "",
        "These are **estimates for planning, not measurements of students**. Each lesson's time is the sum of:", "",
        f"* **reading** — the words of the lesson's explanations (model answers left out) at "
        f"{READING_WPM:.0f} words a minute. Brysbaert (2019) found that adults read English non-fiction silently "
        f"at about {BRYSBAERT_NONFICTION_WPM} words a minute (M. Brysbaert, \"How many words do we read per "
        "minute? A review and meta-analysis of reading rate\", *Journal of Memory and Language* 109, 104047); "
        f"we assume that studying technical text with formulas, tables and code takes {TECHNICAL_SLOWDOWN:g} times "
        "as long — our assumption, not his finding;",
        f"* **running** — {run_source};",
        f"* **exercises** — a planning allowance of {MINUTES_PER_POINT} minutes per exercise point (reading the "
        "task, writing, running the tests, fixing), written questions included. It is ours, not a measurement: "
        "replace it with your own class's times once you have them.", "",
        *(lesson_section(les, titles) for les in lessons),
        "## Next", "",
        "Apply the course to a problem of your own with the [decision checklist](checklist.md): it asks the "
        "questions of these lessons in order and points to the section that shows each strategy.", "",
    ])


def exercise_plan(root: Path = ROOT) -> str:
    """The teaching guide's table per lesson: every exercise with its points, credit or practice, and the common
    mistake that the test suite hands in for it (``tests/submissions/mistakes/``; a visible test catches each).

    Example:
        >>> "puts the new head on a randomly initialised body" in exercise_plan()
        True
    """
    found = mistakes(root)
    parts = []
    for lesson in read_lessons(root):
        by_number = {m.number: m for m in found.get(lesson.name, [])}
        rows = []
        for ex in lesson.exercises:
            use = ("credit" if ex.written or ex.number not in PRACTICE.get(lesson.name, frozenset())
                   else "practice")
            mistake = by_number.get(ex.number) if ex.number is not None else None
            rows.append(f"| {_exercise_cell(lesson, ex)} | {_points(ex.points)} | {use} | "
                        f"{_md(mistake.text) if mistake else '—'} |")
        source = (f"`tests/submissions/mistakes/{lesson.name}.json`" if lesson.name in found
                  else "no mistakes file yet")
        parts += [f"### {lesson.title}", "", f"Common mistakes from {source}.", "",
                  "| exercise | points | use | common mistake (a visible test catches it) |",
                  "|---|---:|---|---|", *rows, ""]
    return "\n".join(parts)


def lesson_anchors(root: Path = ROOT) -> dict[str, frozenset[str]]:
    """Every heading anchor of every lesson (from ``solutions/``, whose headings ``lessons/`` repeats)."""
    return {name: read_lesson(name, root).anchors for name in lesson_names(root)}


def resolve_anchor(anchor: str, anchors: frozenset[str] | set[str]) -> str | None:
    """The lesson's anchor that ``anchor`` names: itself, or the one anchor that reads the same once its section
    number is dropped (so ``#the-batchnorm-pitfall`` survives a renumbering of ``3. The BatchNorm pitfall``);
    ``None`` when there is no such anchor, or more than one.

    Example:
        >>> resolve_anchor("the-batchnorm-pitfall", {"3-the-batchnorm-pitfall", "summary"})
        '3-the-batchnorm-pitfall'
        >>> resolve_anchor("lost", {"summary"}) is None
        True
    """
    if anchor in anchors:
        return anchor
    found = [a for a in anchors if re.sub(r"^\d+-", "", a) == anchor]
    return found[0] if len(found) == 1 else None


def lesson_links(text: str) -> list[tuple[str, str]]:
    """``(lesson, anchor)`` of every link of a hand-written page to a lesson (repository form, see
    :func:`site_links`); the anchor is ``""`` for a link to the whole lesson.

    Example:
        >>> lesson_links("[x](../../lessons/00_warmup/00_warmup.ipynb#freezing-the-body), [y](checklist.md)")
        [('00_warmup', 'freezing-the-body')]
    """
    return [(m.group(1), m.group(2) or "") for m in _LESSON_LINK.finditer(text)]


def site_links(text: str, anchors: dict[str, frozenset[str]] | None = None) -> str:
    """A hand-written page's links to lessons, from the repository's form (``../../lessons/NN_name/NN_name.ipynb``
    and an anchor without its section number, which JupyterLab and GitHub follow from ``docs/pages/``) into the
    site's (``lessons/NN_name.ipynb`` and the heading's anchor). Raises ``ValueError`` naming every link whose
    lesson or heading does not exist.

    Example:
        >>> site_links("[BatchNorm](../../lessons/03_fine_tuning/03_fine_tuning.ipynb#the-batchnorm-pitfall)")
        '[BatchNorm](lessons/03_fine_tuning.ipynb#3-the-batchnorm-pitfall)'
    """
    anchors = lesson_anchors() if anchors is None else anchors
    broken: list[str] = []

    def one(match: re.Match[str]) -> str:
        name, anchor = match.group(1), match.group(2)
        target = resolve_anchor(anchor, anchors.get(name, frozenset())) if anchor else ""
        if name not in anchors or target is None:
            broken.append(match.group(0))
        return f"](lessons/{name}.ipynb" + (f"#{target}" if target else "")

    out = _LESSON_LINK.sub(one, text)
    if broken:
        raise ValueError("links to a lesson or heading that does not exist: " + ", ".join(broken))
    return out


def write(src: Path, root: Path = ROOT) -> list[Path]:
    """Write ``course-map.md`` and ``generated/exercise-plan.md`` into the site source ``src`` (only where the
    text changed, so Sphinx rebuilds only what changed); return their paths."""
    pages = {src / "course-map.md": course_map(root), src / "generated" / "exercise-plan.md": exercise_plan(root)}
    for path, text in pages.items():
        if not (path.exists() and path.read_text(encoding="utf-8") == text):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return list(pages)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python docs/coursemap.py [--plan] [--out FILE]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", action="store_true", help="the exercise plan of the teaching guide instead")
    parser.add_argument("--out", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    text = exercise_plan() if args.plan else course_map()
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
