"""The course guides: the generated course map and exercise plan (``docs/coursemap.py``) and the hand-written
checklist, glossary and teaching guide (``docs/pages/``). Fast: notebooks are read, never executed.

The map is checked against the notebooks by :func:`map_problems`, written here independently of the generator
(it reads the nbgrader metadata itself), and the checker is shown to fail on a broken map (a lesson left out,
points changed), so a wrong generator cannot pass.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from support.docs import load as load_docs

REPO = Path(__file__).resolve().parents[2]
PAGES = REPO / "docs" / "pages"
GUIDES = ("checklist.md", "glossary.md", "teaching.md", "history.md")
GENERATED_PAGES = {"course-map.md"}  # written into the site's source by the build, not kept in docs/pages/




coursemap = load_docs("coursemap")
LESSONS = sorted(p.parent.name for p in REPO.glob("solutions/[0-9][0-9]_*/*.ipynb") if p.stem == p.parent.name)


def _solution(name: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "solutions" / name / f"{name}.ipynb", as_version=4)


def _graded(nb: nbformat.NotebookNode) -> list[dict]:
    return [c.metadata["nbgrader"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade") or c.metadata.get("nbgrader", {}).get("task")]


def _minutes(text: str) -> float:
    """``'1 h 25 min'`` → 85."""
    hours = re.search(r"(\d+) h", text)
    mins = re.search(r"(\d+) min", text)
    return 60 * int(hours.group(1) if hours else 0) + int(mins.group(1) if mins else 0)


# ------------------------------------------------------------------------------------- an independent checker
def map_problems(text: str) -> list[str]:
    """What the course map ``text`` gets wrong about the notebooks: a lesson, objective, exercise or total
    missing, a wrong total, no positive study time."""
    problems = []
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    for name in LESSONS:
        nb = _solution(name)
        title = re.search(r"^# (.+)$", nb.cells[0].source, flags=re.MULTILINE).group(1).strip()
        section = next((s for s in sections if s.startswith(title + "\n")), None)
        if section is None:
            problems.append(f"{name}: no section '## {title}'")
            continue
        head = nb.cells[0].source.split("Learning objectives", 1)[-1]
        for objective in re.findall(r"^\d+\.\s+(.+)$", head, flags=re.MULTILINE):
            if objective.strip() not in section:
                problems.append(f"{name}: objective missing: {objective[:40]}")
        points = sum(float(m.get("points", 0)) for m in _graded(nb))
        if f"| **total** | **{points:g}** |" not in section:
            problems.append(f"{name}: total {points:g} points not stated")
        headings = [h for c in nb.cells if c.cell_type == "markdown"
                    for h in re.findall(r"^#{2,4} ((?:Exercise|Question)\b.*)$", c.source, flags=re.MULTILINE)]
        for heading in headings:
            label = re.sub(r"\s*\([^()]*points?[^()]*\)\s*$", "", heading)
            if label not in section:
                problems.append(f"{name}: exercise missing: {label}")
        listed = [float(p) for p in re.findall(r"^\| \[?(?:Exercise|Question).*? \| ([\d.]+) \|", section,
                                                 flags=re.MULTILINE)]
        if sum(listed) != points:
            problems.append(f"{name}: the exercises' points sum to {sum(listed):g}, the notebook has {points:g}")
        study = re.search(r"\*\*Study time \(an estimate\)\*\* — about \*\*([^*]+)\*\*", section)
        if not study or _minutes(study.group(1)) <= 0:
            problems.append(f"{name}: no positive study time")
    if "(checklist.md)" not in text:
        problems.append("no link to the checklist")
    return problems


def test_the_map_lists_every_lesson_with_objectives_exercises_and_study_time() -> None:
    assert len(LESSONS) >= 7
    assert [les.name for les in coursemap.read_lessons()] == LESSONS
    assert map_problems(coursemap.course_map()) == []


def test_the_checker_fails_on_a_wrong_map() -> None:
    text = coursemap.course_map()
    title = coursemap.read_lesson("03_fine_tuning").title
    start = text.index(f"## {title}\n")
    without = text[:start] + text[text.index("\n## ", start + 1) + 1:]
    assert any(p.startswith("03_fine_tuning: no section") for p in map_problems(without))
    total = re.search(r"\| \*\*total\*\* \| \*\*(\d+)\*\* \|", text[start:])
    changed = text[:start] + text[start:].replace(total.group(0), "| **total** | **99** |", 1)
    assert any("total" in p for p in map_problems(changed))
    row = re.search(r"^(\| \[Exercise 1 [^\n]*? \| )(\d+)( \|)", text[start:], flags=re.MULTILINE)
    wrong_points = text[:start] + text[start:].replace(row.group(0), row.group(1) + "7" + row.group(3), 1)
    assert any("sum to" in p for p in map_problems(wrong_points))
    assert "no link to the checklist" in map_problems(text.replace("(checklist.md)", "(elsewhere.md)"))


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_facts(name: str) -> None:
    """Per lesson: objectives, a positive study time, exercise points summing to the notebook's total, the
    points a heading states equal to its cells' points, one written question, no graded cell outside an exercise."""
    lesson = coursemap.read_lesson(name)
    nb = _solution(name)
    assert lesson.objectives and lesson.words > 0 and lesson.study_minutes > 0
    total = sum(float(m.get("points", 0)) for m in _graded(nb))
    assert total > 0 and lesson.total_points == total
    assert sum(ex.points for ex in lesson.exercises) == total
    assert {g for ex in lesson.exercises for g in ex.grade_ids} == {m["grade_id"] for m in _graded(nb)}
    for ex in lesson.exercises:
        assert ex.anchor and ex.anchor in lesson.anchors, f"{ex.title}: a graded cell without its heading"
        assert ex.points > 0, f"{ex.title}: a heading without a graded cell"
        assert ex.stated_points in (None, ex.points), f"{ex.title}: the heading says {ex.stated_points} points"
    assert sum(ex.written for ex in lesson.exercises) == 1, "one written question per lesson (DESIGN §5)"


def test_study_time_is_reading_running_and_an_allowance_per_point() -> None:
    seconds, machine = coursemap.cpu_seconds()
    results = json.loads((REPO / "benchmarks" / "RESULTS.json").read_text(encoding="utf-8"))
    recorded = {n for n, r in results["runs"]["cpu"]["notebooks"].items() if r.get("status") == "ok"}
    assert set(seconds) == recorded and machine
    for lesson in coursemap.read_lessons():
        expected = (lesson.words / coursemap.READING_WPM + seconds.get(lesson.name, 0) / 60
                    + lesson.total_points * coursemap.MINUTES_PER_POINT)
        assert lesson.study_minutes == pytest.approx(expected)
    assert coursemap.READING_WPM == pytest.approx(238 / 1.5)
    text = coursemap.course_map()
    assert "Brysbaert" in text and "104047" in text and "estimate" in text


def test_the_exercise_plan_lists_every_mistake_on_its_exercise_row() -> None:
    plan = coursemap.exercise_plan()
    files = sorted((REPO / "tests" / "submissions" / "mistakes").glob("*.json"))
    assert [f.stem for f in files] == LESSONS
    lessons = {les.name: les for les in coursemap.read_lessons()}
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        answers = sorted(k for k in data if not k.startswith("_"))
        found = coursemap.mistakes()[path.stem]
        assert sorted(m.answer_id for m in found) == answers, f"{path.name}: one mistake per answer it replaces"
        for mistake in found:
            assert mistake.text and mistake.text in data["_about"]
            rows = [line for line in plan.splitlines() if coursemap._md(mistake.text) in line]
            assert len(rows) == 1, f"{path.name}: ex{mistake.number} not listed once"
            exercise = next(ex for ex in lessons[path.stem].exercises if ex.number == mistake.number)
            assert f"#{exercise.anchor})" in rows[0], f"{path.name}: ex{mistake.number} on the wrong row"


def test_the_checker_of_mistakes_would_see_one_missing(tmp_path: Path) -> None:
    (tmp_path / "tests" / "submissions" / "mistakes").mkdir(parents=True)
    (tmp_path / "tests" / "submissions" / "mistakes" / "00_warmup.json").write_text(json.dumps(
        {"_about": "Mistakes: ex1 forgets a thing; ex2 forgets another", "ex1_a": [], "ex2_b": []}))
    found = coursemap.mistakes(tmp_path)["00_warmup"]
    assert [(m.number, m.answer_id, m.text) for m in found] == [(1, "ex1_a", "forgets a thing"),
                                                                  (2, "ex2_b", "forgets another")]


def test_registries_name_real_lessons_and_exercises() -> None:
    lessons = {les.name: les for les in coursemap.read_lessons()}
    assert set(coursemap.PREREQUISITES) == set(LESSONS)
    for name, pre in coursemap.PREREQUISITES.items():
        assert pre.outside and all(p in LESSONS and p < name for p in pre.lessons), name
    assert set(coursemap.PRACTICE) == set(LESSONS)
    for name, numbers in coursemap.PRACTICE.items():
        autograded = {ex.number for ex in lessons[name].exercises if not ex.written}
        assert numbers <= autograded, f"{name}: practice names exercises {sorted(numbers - autograded)}"


# ---------------------------------------------------------------------------------------- hand-written pages
def _links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text)


def _page_anchors(path: Path) -> set[str]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(path.read_text(encoding="utf-8"))])
    return {a for a, _ in coursemap.notebook_anchors(nb)}


@pytest.mark.parametrize("page", GUIDES)
def test_guides_link_only_to_existing_lessons_headings_and_pages(page: str) -> None:
    text = (PAGES / page).read_text(encoding="utf-8")
    anchors = {n: {a for a, _ in coursemap.notebook_anchors(nbformat.read(REPO / folder / n / f"{n}.ipynb", 4))}
               for folder in ("lessons",) for n in LESSONS}
    solution_anchors = coursemap.lesson_anchors()
    links = _links(text)
    assert links
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        path, _, anchor = link.partition("#")
        if "/lessons/" in path:
            assert (PAGES / path).resolve().is_file(), f"{page}: {link} (no such lesson)"
            name = Path(path).stem
            for found in (anchors[name], solution_anchors[name]):  # the class page and the self-paced page
                assert not anchor or coursemap.resolve_anchor(anchor, found), f"{page}: {link} (no such heading)"
        elif path in GENERATED_PAGES:
            assert not anchor
        else:
            assert path == "" or (PAGES / path).is_file(), f"{page}: {link} (no such page)"
            target = PAGES / path if path else PAGES / page
            assert not anchor or anchor in _page_anchors(target), f"{page}: {link} (no such heading)"
    coursemap.site_links(text)  # raises on a link the site could not resolve


def test_the_checklist_points_to_every_lesson_that_shows_a_strategy() -> None:
    text = (PAGES / "checklist.md").read_text(encoding="utf-8")
    linked = {name for name, _ in coursemap.lesson_links(text)}
    assert linked == set(LESSONS)
    for strategy in ("frozen features + a linear probe", "discriminative", "full fine-tuning", "from scratch",
                     "domain adaptation", "LoRA", "smaller backbone"):
        assert strategy in text, strategy
    for always in ("baselines", "validation data, never on the test set", "intervals", "within noise",
                   "negative transfer", "what the model looks at"):
        assert always in text, always
    assert coursemap.count_words(text) < 700, "one printed page"


def test_every_glossary_term_points_to_a_lesson() -> None:
    text = (PAGES / "glossary.md").read_text(encoding="utf-8")
    entries = re.split(r"^- (?=\*\*)", text, flags=re.MULTILINE)[1:]
    assert len(entries) >= 35
    terms = [re.match(r"\*\*(.+?)\*\*", e).group(1) for e in entries]
    assert terms == sorted(terms, key=str.lower), "alphabetical"
    for term, entry in zip(terms, entries, strict=True):
        lessons = [name for name, _ in coursemap.lesson_links(entry)]
        assert lessons and set(lessons) <= set(LESSONS), f"{term}: no lesson"


def test_the_teaching_guide_covers_every_written_question() -> None:
    text = (PAGES / "teaching.md").read_text(encoding="utf-8")
    written = {g for les in coursemap.read_lessons() for ex in les.exercises if ex.written for g in ex.grade_ids}
    every = {m["grade_id"] for n in LESSONS for m in _graded(_solution(n))}
    mentioned = set(re.findall(r"`(ex\d+_\w+)`", text))
    assert written <= mentioned, f"written questions the guide does not discuss: {sorted(written - mentioned)}"
    assert mentioned <= every, f"the guide names exercises that do not exist: {sorted(mentioned - every)}"
    assert "```{include} generated/exercise-plan.md" in text
    assert all(f"| {week} |" in text for week in range(1, 9))


def test_readme_and_instructors_link_the_guides() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    student_row = next(line for line in readme.splitlines() if line.startswith("| **students** |"))
    assert "(docs/pages/glossary.md)" in student_row
    assert "(docs/pages/teaching.md)" in (REPO / "INSTRUCTORS.md").read_text(encoding="utf-8")


def test_the_guides_quote_no_hidden_test_or_worked_solution() -> None:
    from tlcourse.grading import hidden_secrets_of
    from tlcourse.grading.hidden import distinctive

    pages = load_docs("pages")
    public = "\n".join([*(p.read_text(encoding="utf-8") for p in sorted((REPO / "tlcourse").rglob("*.py"))),
                        *(c.source for p in sorted(REPO.glob("lessons/*/*.ipynb"))
                          for c in nbformat.read(p, as_version=4).cells)])
    secrets = set()
    for name in LESSONS:
        secrets.update(distinctive(hidden_secrets_of(_solution(name))))
        secrets.update(pages.solution_secrets(_solution(name), public))
    texts = [coursemap.course_map(), coursemap.exercise_plan(), *((PAGES / p).read_text("utf-8") for p in GUIDES)]
    assert secrets and not [s for s in secrets if any(s in t for t in texts)]


# --------------------------------------------------------------------------------------------------- the site
def test_the_build_writes_the_guides_into_the_site_source(tmp_path: Path) -> None:
    build = load_docs("build")
    build.static_pages(tmp_path)
    assert map_problems((tmp_path / "course-map.md").read_text(encoding="utf-8")) == []
    assert "| common mistake" in (tmp_path / "generated" / "exercise-plan.md").read_text(encoding="utf-8")
    for page in GUIDES:
        text = (tmp_path / page).read_text(encoding="utf-8")
        assert "../../lessons/" not in text and "](lessons/" in text
    index = (PAGES / "index.md").read_text(encoding="utf-8")
    toctree = re.search(r":caption: Guides\n\n(.*?)```", index, flags=re.DOTALL).group(1).split()
    assert toctree == ["course-map", "checklist", "glossary", "teaching", "history"]
    assert '"generated/**"' in (REPO / "docs" / "conf.py").read_text(encoding="utf-8")


def test_site_links_refuse_a_heading_that_does_not_exist() -> None:
    with pytest.raises(ValueError, match="no-such-heading"):
        coursemap.site_links("[x](../../lessons/00_warmup/00_warmup.ipynb#no-such-heading)")
    with pytest.raises(ValueError, match="99_nothing"):
        coursemap.site_links("[x](../../lessons/99_nothing/99_nothing.ipynb)")


def test_heading_anchors_are_mysts() -> None:
    """Our anchors are the ones MyST gives the lesson pages' headings (when the site's tools are installed)."""
    slugs = pytest.importorskip("myst_parser.slugs")
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    md = MarkdownIt("commonmark").use(dollarmath_plugin)
    for name in LESSONS:
        for cell in (c for c in _solution(name).cells if c.cell_type == "markdown"):
            tokens = md.parse(cell.source)
            for i, token in enumerate(tokens):
                if token.type == "heading_open":
                    inline = tokens[i + 1]
                    title = "".join(c.content for c in inline.children if c.type in ("text", "code_inline"))
                    assert coursemap.heading_anchor(inline.content) == slugs.github_slugify(title), inline.content


def test_docstring_examples_run() -> None:
    assert doctest.testmod(coursemap).failed == 0


# ------------------------------------------------------------------------------ lesson 01's arc and its reading page
ARC_WORDS = 4200  # "one arc within ~4k words" (issue 28)


def arc_words(nb: nbformat.NotebookNode) -> int:
    """Words a student reads before the first ``## Optional`` section (model answers left out: never shown)."""
    words = 0
    for cell in nb.cells:
        if cell.cell_type != "markdown" or cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        if re.match(r"##\s+Optional\b", cell.source):
            break
        words += coursemap.count_words(cell.source)
    return words


def test_lesson_01_keeps_one_arc_within_the_word_budget() -> None:
    nb = _solution("01_pretrained_models")
    assert arc_words(nb) <= ARC_WORDS
    headings = [h for c in nb.cells if c.cell_type == "markdown" for h in re.findall(r"^## (.+)$", c.source, re.M)]
    numbered = [h for h in headings if re.match(r"\d+\.", h)]
    assert [h.split(".")[0] for h in numbered] == ["1", "2", "3", "4", "5"], numbered
    # the optional section comes after the lesson's end (summary, questionnaire), and says it is not graded
    assert headings.index("Summary") < next(i for i, h in enumerate(headings) if h.startswith("Optional"))
    optional = next(c.source for c in nb.cells if c.source.startswith("## Optional"))
    assert "Not graded" in optional
    start = next(i for i, c in enumerate(nb.cells) if c.source.startswith("## Optional"))
    assert not any(c.metadata.get("nbgrader", {}).get("grade") for c in nb.cells[start:])


def test_the_word_budget_check_can_fail() -> None:
    nb = _solution("01_pretrained_models")
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("word " * 300))
    assert arc_words(nb) > arc_words(_solution("01_pretrained_models"))
    optional_moved_up = _solution("01_pretrained_models")
    start = next(i for i, c in enumerate(optional_moved_up.cells) if c.source.startswith("## Optional"))
    optional_moved_up.cells[start].source = optional_moved_up.cells[start].source.replace("## Optional ·", "## 6.")
    assert arc_words(optional_moved_up) > ARC_WORDS  # the dense section back in the arc breaks the budget


def test_the_history_page_and_its_timeline_list_the_same_years() -> None:
    readings = load_docs("readings")
    text = (PAGES / "history.md").read_text(encoding="utf-8")
    table_years = [int(y) for y in re.findall(r"^\| (\d{4}) \|", text, flags=re.M)]
    assert table_years == [year for year, _ in readings.TIMELINE]
    assert "(img/history-timeline.png)" in text and readings.FIGURE.is_file()
    lesson = "\n".join(c.source for c in _solution("01_pretrained_models").cells)
    assert "../../docs/pages/history.md" in lesson  # the lesson points to its reading page
