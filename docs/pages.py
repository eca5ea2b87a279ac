"""Lesson pages for the website: an executed solution notebook → the page a reader sees.

Two sites come from the same executed notebooks (``docs/build.py`` runs them):

* the **self-paced** site (``solutions=True``): the worked solutions folded behind a "Show solution" toggle
  (MyST-NB's ``hide-input`` tag; written answers in a ``<details>`` block), hidden tests stripped with the
  package's own :class:`tlcourse.grading.HideHiddenTests` (sources *and* outputs that would quote them);
* the **class** site (``solutions=False``): the student notebook that ``tlcourse release`` wrote to
  ``lessons/`` — stubs and "YOUR ANSWER HERE" — with the executed outputs of the explanation and demo cells
  copied in by cell id; answer cells and test cells carry no output (an answer cell's output is the answer).

:func:`solution_secrets` and :func:`leaks` let the build (and the tests) prove that a class site quotes no worked
solution and no hidden test anywhere: pages, page sources, downloads, search index.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("<p class='tlcourse-widget-note'><i>An interactive widget is shown here when you run the "
               "notebook in Jupyter.</i></p>")
TEXT_FILES = (".html", ".js", ".txt", ".ipynb", ".json", ".md", ".py", ".inv")


def _nbgrader(cell: Any) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_answer(cell: Any) -> bool:
    """An nbgrader answer cell: code between the solution markers, or a written (markdown) answer."""
    return bool(_nbgrader(cell).get("solution"))


def is_test(cell: Any) -> bool:
    """An nbgrader autograded test cell (points, no solution)."""
    meta = _nbgrader(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


def _without_widgets(outputs: list[Any]) -> list[Any]:
    """Widget outputs need a live kernel: each becomes a short note (a static page cannot run them)."""
    kept = []
    for out in outputs:
        if WIDGET_MIME in out.get("data", {}):
            out = nbformat.v4.new_output("display_data", data={"text/html": WIDGET_NOTE})
        kept.append(out)
    return kept


def _clean(nb: Any) -> Any:
    """No widget state (MyST-NB would load the widget manager from a CDN) and widget outputs as notes."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = _without_widgets(cell.outputs)
    return nb


def _hide_hidden_tests(nb: Any) -> Any:
    from tlcourse.grading import HideHiddenTests

    return HideHiddenTests(keep_outputs=True).preprocess(nb, {})[0]  # the course's own run: its outputs are ours


def _fold_answer(cell: Any) -> None:
    """Fold a worked answer: code (without nbgrader's markers) behind MyST-NB's toggle, a written answer in
    ``<details>``."""
    if cell.cell_type == "code":
        cell.source = "\n".join(ln for ln in cell.source.splitlines()
                                 if ln.strip() not in (BEGIN_SOLUTION, END_SOLUTION))
        tags = cell.metadata.setdefault("tags", [])
        if "hide-input" not in tags:
            tags.append("hide-input")
        cell.metadata["mystnb"] = {"code_prompt_show": "Show solution", "code_prompt_hide": "Hide solution"}
    else:
        cell.source = (f'<details class="tlcourse-solution">\n<summary>Show a model answer</summary>\n\n'
                       f"{cell.source}\n\n</details>")


def solutions_page(executed: Any, banner: str) -> Any:
    """The self-paced page: hidden tests stripped (sources and outputs), worked answers folded.

    Example:
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        ...     "x = 1\\n### BEGIN HIDDEN TESTS\\nassert x == 1\\n### END HIDDEN TESTS")])
        >>> "assert" in solutions_page(nb, banner="").cells[-1].source
        False
    """
    page = _clean(_hide_hidden_tests(copy.deepcopy(executed)))
    for cell in page.cells:
        if is_answer(cell):
            _fold_answer(cell)
    return _with_banner(page, banner)


def class_page(executed: Any, student: Any, banner: str) -> Any:
    """The class page: the student notebook, with the executed outputs of every cell but answers and tests.

    Example:
        >>> solved = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)", id="demo")])
        >>> solved.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\\n")]
        >>> class_page(solved, copy.deepcopy(solved), banner="").cells[-1].outputs[0].text
        '1\\n'
    """
    outputs = {c.get("id"): c for c in _clean(_hide_hidden_tests(copy.deepcopy(executed))).cells}
    page = copy.deepcopy(student)
    page.metadata.pop("widgets", None)
    if [c.get("id") for c in page.cells] != list(outputs):
        raise ValueError("lessons/ is out of step with solutions/ (cell ids differ): run `tlcourse release`")
    for cell in page.cells:
        if cell.cell_type != "code":
            continue
        if is_answer(cell) or is_test(cell):
            cell.outputs, cell.execution_count = [], None
        else:
            cell.outputs = outputs[cell.get("id")].outputs
            cell.execution_count = outputs[cell.get("id")].execution_count
    return _with_banner(page, banner)


#: a lesson's links to repository pages (``../../benchmarks/SEEDS.md``, ``../../docs/pages/checklist.md``, the form
#: JupyterLab and GitHub follow from ``lessons/NN_name/``) and the site page that holds each, from ``lessons/``
_REPO_LINK = re.compile(r"\]\(\.\./\.\./(benchmarks/[A-Z]+\.md|docs/pages/[\w-]+\.md)(#[^)\s]*)?\)")
_SITE_PAGE = {"benchmarks": "../benchmarks", "docs": "../{stem}"}


def site_links(text: str, suffix: str = ".md") -> str:
    """A lesson's links to repository pages, turned into the site's (benchmark tables live on one page). Markdown
    cells keep ``.md`` (Sphinx resolves them); markdown *outputs* are rendered as they are, so they need ``.html``.

    Example:
        >>> site_links("[seeds](../../benchmarks/SEEDS.md) and [list](../../docs/pages/checklist.md#always)")
        '[seeds](../benchmarks.md) and [list](../checklist.md#always)'
        >>> site_links("[seeds](../../benchmarks/SEEDS.md)", suffix=".html")
        '[seeds](../benchmarks.html)'
    """
    def one(match: re.Match[str]) -> str:
        path, anchor = match.group(1), match.group(2) or ""
        page = _SITE_PAGE[path.split("/")[0]].format(stem=Path(path).stem)
        return f"]({page}{suffix}{anchor if path.startswith('docs/') else ''})"

    return _REPO_LINK.sub(one, text)


def _linked(page: Any) -> Any:
    """Every markdown cell and markdown output of ``page`` with :func:`site_links` applied."""
    for cell in page.cells:
        if cell.cell_type == "markdown":
            cell.source = site_links(cell.source)
        for out in cell.get("outputs", []):
            if isinstance(out.get("data", {}).get("text/markdown"), str):
                out["data"]["text/markdown"] = site_links(out["data"]["text/markdown"], suffix=".html")
    return page


def _with_banner(page: Any, banner: str) -> Any:
    """Put ``banner`` (MyST markdown) right after the title cell; links to repository pages as the site's."""
    page = _linked(page)
    if banner:
        cell = nbformat.v4.new_markdown_cell(banner, id="tlcourse-site-banner")
        page.cells.insert(1 if page.cells and page.cells[0].cell_type == "markdown" else 0, cell)
    return page


def _solution_lines(source: str) -> list[str]:
    inside, found = False, []
    for line in source.splitlines():
        if BEGIN_SOLUTION in line:
            inside = True
        elif END_SOLUTION in line:
            inside = False
        elif inside and line.strip():
            found.append(line.strip())
    return found


def solution_secrets(solution: Any, public: str) -> list[str]:
    """Lines of the worked answers (code and written) that the ``public`` text (the student notebooks, the
    toolkit's sources: what a class gets anyway) does not hold, and that identify an answer wherever they appear
    (12 characters or more: not ``return x``).

    Example:
        >>> sol = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        ...     "def f():\\n    ### BEGIN SOLUTION\\n    return compute_the_answer()\\n    ### END SOLUTION",
        ...     metadata={"nbgrader": {"solution": True}})])
        >>> solution_secrets(sol, public="def f():\\n    raise NotImplementedError()")
        ['return compute_the_answer()']
    """
    found: set[str] = set()
    for cell in solution.cells:
        if not is_answer(cell):
            continue
        lines = _solution_lines(cell.source) if cell.cell_type == "code" else [
            ln.strip() for ln in cell.source.splitlines() if ln.strip()]
        found.update(ln for ln in lines if len(ln) >= 12 and ln not in public)
    return sorted(found)


def _variants(secret: str) -> set[str]:
    """How a line may look in a built file: as written, HTML-escaped, JSON-escaped."""
    import html
    import json

    escaped = html.escape(secret, quote=True)
    return {secret, escaped, html.escape(secret, quote=False), json.dumps(secret)[1:-1],
            escaped.replace("&#x27;", "&#39;")}


_TAGS = re.compile(r"<[^>]+>")


def leaks(folder: Path, secrets: Iterable[str]) -> list[str]:
    """Files under ``folder`` (pages, sources, downloads, search index) that quote one of ``secrets``.

    Highlighted code splits a line into ``<span>`` tokens, so HTML is also searched with its tags removed.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "a.html").write_text("<span>x</span> <span>=</span> 42")
        >>> leaks(d, ["x = 42"])
        ['a.html: x = 42']
    """
    import html

    wanted = {s: _variants(s) for s in secrets}
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in TEXT_FILES):
        text = path.read_text(encoding="utf-8", errors="replace")
        plain = html.unescape(_TAGS.sub("", text)) if path.suffix == ".html" else ""
        for secret, forms in wanted.items():
            if any(f in text for f in forms) or (plain and secret in plain):
                found.append(f"{path.relative_to(folder)}: {secret}")
    return found
