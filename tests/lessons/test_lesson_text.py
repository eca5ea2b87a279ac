"""Words agree with numbers: no lesson hard-codes an outcome its own run produces (fast: reads the notebooks only).

One notebook runs in three profiles (grading, cpu, gpu), so a measured accuracy, AUC, gap or time written into its
prose or into a code literal is true of one run at most. The rule, for ``solutions/*`` (and so ``lessons/``):
an *outcome-like* number — a decimal with two or more places (0.915, 1.87; not a keyword argument such as
``lr=0.01``), a percentage, "N points" — must be
printed by code or shown by ``tlcourse.claim``, unless its line cites where it comes from (a year, "et al.", a
link) or is a design choice: an upper-case constant in code, an exercise's points in a heading, a test cell's
fixture, or one of the few facts the notebook lists in its metadata, ``tlcourse.fixed_facts`` (a property of
the data or the model that no run changes, each with its reason).

Prose is held to more: a probability-like one-decimal number ("above 0.9"), a count in thousands or millions
("22.7 M", "98 k") and a ratio ("20×", "3 times faster") are outcomes too unless the notebook lists them as facts —
"all 22.7 M parameters train" is the kind of sentence that stays true of the model and false of the run.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
LESSONS = sorted(p.name for p in (REPO / "solutions").iterdir() if re.match(r"^\d\d_", p.name))

OUTCOME = re.compile(
    r"(?<![\w.=])\d*\.\d{2,}(?!\d)(?!\s?(?:M|k|B|px|GB|MB)\b)"  # 0.915, 1.87 (not 4.65 M, not lr=0.01)
    r"|(?<![\w.])\d+(?:\.\d+)?\s?%"  # 92 %, 62.5%
    r"|(?<![\w.])\d+(?:\.\d+)?\s(?:percentage\s)?points?\b"  # 20 points
)
#: Prose only (markdown and written answers): values that read as measured unless they are listed facts.
PROSE_OUTCOME = re.compile(
    r"(?<![\w.=\[(-])0\.\d(?!\d)"  # 0.9, 0.5
    r"|(?<![\w.,-])\d+(?:\.\d+)?\s(?:M|k)\b|(?<![\w.,-])\d+\.\d+M\b"  # 22.7 M, 98 k
    r"|(?<![\w.,-])\d+(?:\.\d+)?\s?×(?!\s?\d)"  # 20×, 3.4× (not 3 × 3)
    r"|(?<![\w.,-])\d+\stimes\s(?:faster|slower|smaller|larger|more|fewer|less)\b"
)
CITED = re.compile(r"\b(?:19|20)\d{2}\b|et al\.|https?://|\]\(")
FORMAT_FIELD = re.compile(r"\{[^{}]*\}")
CONSTANT = re.compile(r"^\s*[A-Z][A-Z0-9_]*(?:\s*,\s*[A-Z][A-Z0-9_]*)*\s*(?::[^=]+)?=")
# a margin the lesson sets (a claim's threshold), not a result: "within 3 points", "by 10 points or more"
MARGIN_BEFORE = re.compile(r"(?:within|at least|by|≥|>=|more than|less than|under|over)\s*$")
MARGIN_AFTER = re.compile(r"^\s*(?:or more|or less)")

def fixed_facts(nb: nbformat.NotebookNode) -> dict[str, str]:
    """The facts a notebook lists (``metadata.tlcourse.fixed_facts``: text -> why no run changes it)."""
    facts = nb.metadata.get("tlcourse", {}).get("fixed_facts", {})
    assert all(isinstance(v, str) and len(v) > 10 for v in facts.values()), f"each fact needs its reason: {facts}"
    return dict(facts)


def _cell_kind(cell: nbformat.NotebookNode) -> str:
    meta = cell.metadata.get("nbgrader", {})
    if meta.get("grade") and not meta.get("solution"):
        return "test"
    if meta.get("solution") and cell.cell_type == "code":
        return "answer"
    if meta.get("solution"):
        return "written"
    return cell.cell_type


def hard_coded_outcomes(nb: nbformat.NotebookNode, allowed: dict[str, str]) -> list[str]:
    """Lines of a notebook that state an outcome-like number without computing or citing it."""
    found = []
    for index, cell in enumerate(nb.cells):
        kind = _cell_kind(cell)
        if kind in ("test", "answer"):
            continue  # fixtures and exercise code: the numbers are inputs, not outcomes
        for line in cell.source.splitlines():
            if kind == "code":
                if CONSTANT.match(line):
                    continue
                line = FORMAT_FIELD.sub("{}", line)  # f"{acc:.3f}": what is computed is not written by hand
            if kind != "code" and line.lstrip().startswith(("#", "**Rubric (")):
                continue  # headings: "Exercise 2 (3 points)"; a written question's "**Rubric (2 points)**"
            if CITED.search(line):
                continue
            patterns = (OUTCOME,) if kind == "code" else (OUTCOME, PROSE_OUTCOME)
            for match in (m for pattern in patterns for m in pattern.finditer(line)):
                if match.group(0).strip() in allowed:
                    continue
                if MARGIN_BEFORE.search(line[:match.start()]) or MARGIN_AFTER.match(line[match.end():]):
                    continue
                found.append(f"cell {index} ({cell.get('id', '?')}): …{line.strip()[:140]}…  [{match.group(0)}]")
    return found


@pytest.mark.parametrize("lesson", LESSONS)
def test_no_hard_coded_outcomes(lesson: str) -> None:
    nb = nbformat.read(REPO / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    found = hard_coded_outcomes(nb, fixed_facts(nb))
    assert not found, ("numbers a run produces, written by hand — print them from code, show them with "
                       "tlcourse.claim, or cite their source:\n" + "\n".join(found))


def test_the_rule_catches_hard_coded_results() -> None:
    """The check is not vacuous: the review's examples fail it, cited and computed numbers pass."""
    def nb_of(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
        return nbformat.v4.new_notebook(cells=list(cells))

    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    bad = [md("with ten labels per class the probe reaches 0.821"), md("scratch stays about 20 points behind"),
           md("CORAL helped (+2 points)"),
           md("LoRA keeps 98.5 % of the accuracy"), code('rows = [("Lite0 frozen", 128, 0.915, "course authors")]'),
           md("the network says cat with a probability above 0.9"), md("fine-tuning trains all 22.7 M parameters"),
           md("LoRA is 3 times faster"), md("the frozen probe is 12× cheaper"), md("Lite0 has 4.65 M parameters")]
    for cell in bad:
        assert hard_coded_outcomes(nb_of(cell), {}), cell.source
    good = [md("ResNet-18 reaches 0.9477 (Chilamkurthy, 2017)"), md("### Exercise 2 (3 points)"),
            code("PUBLISHED = {'breast': (0.863, 0.901)}"), code('print(f"accuracy {acc:.3f}")'),
            md("Write `train_head(features, labels, lr=0.01)`"),
            md("BatchNorm moves 10 % of the way"),
            md("the claim: transfer wins by 10 points or more"), md("within 3 points of the published number"),
            md("a 3 × 3 convolution on 224 × 224 images"), md("ImageNet-1k"), code("ax.set_ylim(0.4, 1.0)"),
            md("the encoder has 22.7 M parameters")]
    for cell in good:
        assert not hard_coded_outcomes(nb_of(cell), {"10 %": "momentum", "22.7 M": "size"}), cell.source


@pytest.mark.parametrize("lesson", LESSONS)
def test_questionnaires_say_they_are_not_graded(lesson: str) -> None:
    """A questionnaire without answer cells tells the student it is for thinking only (not handed in)."""
    nb = nbformat.read(REPO / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("## Questionnaire"):
            answered = any(c.metadata.get("nbgrader", {}).get("solution") for c in nb.cells[i + 1:])
            assert answered or "not graded" in cell.source, f"{lesson}: say the questionnaire is not graded"
