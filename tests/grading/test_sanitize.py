"""``grading.sanitize``: hostile outputs, markdown, raw cells, attachments and metadata come out inert.

Each attack class has many variants; every variant is checked for the property (nothing active is left, in the
notebook and in nbconvert's rendering of it: the HTML that the formgrader and the feedback show), not for the
absence of one string. The honest notebook (plots, text, a DataFrame, math) stays as it was.
"""

from __future__ import annotations

import base64
import copy
import io
import re
from html.parser import HTMLParser
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from tlcourse.grading.sanitize import clean_html, neutralise_markdown, sanitize_notebook

# ------------------------------------------------------------------------------------------- the property
_ACTIVE_TAGS = {"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "form", "input",
                "button", "textarea", "select", "svg", "math", "link", "meta", "base", "template", "portal"}
_URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "background", "poster", "srcset",
              "lowsrc", "dynsrc", "cite", "ping"}
_SAFE_DATA = re.compile(r"data:image/(png|jpeg);base64,", re.I)


class _Audit(HTMLParser):
    """Everything in an HTML text that a browser could run, load or submit."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _ACTIVE_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            url = re.sub(r"[\x00-\x20]", "", value or "").lower()
            if name.startswith("on") or name in {"style", "srcdoc", "formaction"}:
                self.found.append(f"{tag}[{name}]")
            elif name in _URL_ATTRS and re.match(r"(javascript|vbscript|data):", url) and not (
                    tag == "img" and name == "src" and _SAFE_DATA.match(url)):
                self.found.append(f"{tag}[{name}={url[:30]}]")
            elif tag == "img" and name == "src" and re.match(r"(https?:)?//", url):
                self.found.append(f"img loads {url[:30]}")  # a beacon: the page would call out

    handle_startendtag = handle_starttag


def active(html_text: str) -> list[str]:
    audit = _Audit()
    audit.feed(html_text)
    audit.close()
    return audit.found


def rendered_cells(nb: Any) -> str:
    """The cells as nbconvert renders them (the formgrader's and the feedback's renderer), page chrome left out."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(copy.deepcopy(nb))
    return body[body.index("<main>"):body.rindex("</main>")]


def test_the_audit_sees_what_nbconvert_lets_through() -> None:
    """The audit is not blind: the unsanitised hostile notebook renders active."""
    nb = _hostile_notebook()
    nb.cells = [c for c in nb.cells if "attachment:" not in c.source]  # nbconvert fails on a missing one
    found = active(rendered_cells(nb))
    assert {"<script>", "<iframe>", "img[onerror]"} <= set(found), found


# ------------------------------------------------------------------------------------------------ fixtures
def _png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode() + "\n"


PNG = _png()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 16).decode()
GIF = base64.b64encode(b"GIF89a" + b"\0" * 16).decode()
SVG = base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>').decode()

HTML_ATTACKS = [
    "<script>window.__pwned=1</script>",
    "<SCRIPT SRC=//127.0.0.1:9/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=x OnErRoR='alert(1)'>",
    "<img src=\"x\" onerror=\"&#97;lert(1)\">",
    "<img src=`x` onerror=alert(1)//",
    "<img/src=x/onerror=alert(1)>",
    '<img src="javascript:alert(1)">',
    '<img src="http://127.0.0.1:9/beacon.png">',
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "<body onload=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    "<audio src=x onerror=alert(1)>",
    "<marquee onstart=alert(1)>x</marquee>",
    "<div onmouseover=alert(1)>hover</div>",
    "<input autofocus onfocus=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="&#x6A;&#x61;vascript&colon;alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href="java&#x09;script:alert(1)">x</a>',
    '<a href=" \x01javascript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="/formgrader/api/grade/1">relative</a>',
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>',
    '<object data="javascript:alert(1)"></object>',
    '<embed src="data:image/svg+xml;base64,' + SVG + '">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<link rel="stylesheet" href="http://127.0.0.1:9/x.css">',
    '<base href="http://127.0.0.1:9/">',
    '<form action="/formgrader/api/grade/1" method="post"><button>go</button></form>',
    '<button formaction="javascript:alert(1)">x</button>',
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<div style="width:expression(alert(1))">x</div>',
    "<style>@import 'http://127.0.0.1:9/x.css'; body{background:url(javascript:alert(1))}</style>",
    '<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">x</maction></math>',
    '<math><mi xlink:href="data:x,<script>alert(1)</script>">x</mi></math>',
    "<template><script>alert(1)</script></template>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
    "<textarea><script>alert(1)</script></textarea>",
    "<!--<img src=x onerror=alert(1)>-->",
    "<![CDATA[<script>alert(1)</script>]]>",
    '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
    '<img src="data:image/svg+xml;base64,' + SVG + '">',
    '<img src="data:image/png;base64,' + SVG + '">',  # claims PNG, is SVG
]


# ------------------------------------------------------------------------------------------ HTML outputs
@pytest.mark.parametrize("attack", HTML_ATTACKS)
def test_html_output_is_inert(attack: str) -> None:
    cleaned = clean_html(attack)
    assert cleaned is not None and not active(cleaned), cleaned
    assert "javascript" not in cleaned.lower() and "127.0.0.1" not in cleaned and "formgrader" not in cleaned


@pytest.mark.parametrize("attack", HTML_ATTACKS)
def test_html_output_is_inert_in_the_rendered_page(attack: str) -> None:
    nb = new_notebook(cells=[new_code_cell("x", outputs=[
        new_output("display_data", data={"text/html": attack, "text/plain": "<HTML object>"}),
        new_output("execute_result", data={"text/html": attack}, execution_count=1)])])
    sanitize_notebook(nb, trusted_sources=set())
    assert not active(rendered_cells(nb))


def test_honest_html_keeps_tables_links_and_inline_png() -> None:
    html = (f'<p>see <a href="https://pytorch.org/docs">docs</a> <b>bold</b></p><img src="data:image/png;base64,'
            f'{PNG.strip()}" width="100"><table><tr><th colspan="2">h</th></tr></table>')
    cleaned = clean_html(html)
    assert 'href="https://pytorch.org/docs"' in cleaned and "<b>bold</b>" in cleaned
    assert f'src="data:image/png;base64,{PNG.strip()}"' in cleaned and 'colspan="2"' in cleaned


def test_dataframe_html_stays_a_table() -> None:
    pd = pytest.importorskip("pandas")
    html = pd.DataFrame({"model": ["resnet", "vit"], "acc": [0.91, 0.93]})._repr_html_()
    cleaned = clean_html(html)
    for text in ("<table", "<thead>", "<th>model</th>", "<td>resnet</td>", "<td>0.93</td>", "</table>"):
        assert text in cleaned, cleaned
    assert "<style" not in cleaned and "scoped" not in cleaned


# ----------------------------------------------------------------------------------------- other outputs
_DROPPED_TYPES = {
    "application/javascript": "window.__pwned = 1",
    "text/javascript": "alert(1)",
    "image/svg+xml": '<svg onload="alert(1)"/>',
    "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
    "text/markdown": "<img src=x onerror=alert(1)>",
    "text/latex": r"$\href{javascript:alert(1)}{x}$",
    "application/x-evil": "<script>alert(1)</script>",
    "text/html; charset=utf-8": "<script>alert(1)</script>",
}


@pytest.mark.parametrize("mime", sorted(_DROPPED_TYPES))
def test_active_mime_types_are_dropped_with_a_text_fallback(mime: str) -> None:
    nb = new_notebook(cells=[new_code_cell("x", outputs=[
        new_output("display_data", data={mime: _DROPPED_TYPES[mime]}),
        new_output("display_data", data={mime: _DROPPED_TYPES[mime], "text/plain": "IntSlider(value=3)"})])])
    notes = sanitize_notebook(nb, trusted_sources=set())
    first, second = nb.cells[0].outputs
    assert list(first.data) == ["text/plain"] and "removed by the grader" in first.data["text/plain"]
    assert dict(second.data) == {"text/plain": "IntSlider(value=3)"}
    assert any("dropped" in n for n in notes), notes
    assert not active(rendered_cells(nb))


def test_images_must_be_valid_base64_of_their_type() -> None:
    nb = new_notebook(cells=[new_code_cell("x", outputs=[
        new_output("display_data", data={"image/png": PNG}, metadata={"image/png": {"width": 120, "height": 80}}),
        new_output("display_data", data={"image/png": SVG}),  # an SVG that claims to be a PNG
        new_output("display_data", data={"image/jpeg": "not base64 <script>"}),
        new_output("display_data", data={"image/jpeg": JPEG},
                   metadata={"image/jpeg": {"width": "100\" onload=\"alert(1)", "height": True}, "isolated": True})])])
    sanitize_notebook(nb, trusted_sources=set())
    png, svg, bad, jpeg = nb.cells[0].outputs
    assert png.data == {"image/png": PNG} and png.metadata == {"image/png": {"width": 120, "height": 80}}
    assert list(svg.data) == list(bad.data) == ["text/plain"]
    assert jpeg.data == {"image/jpeg": JPEG} and jpeg.metadata == {}


def test_streams_errors_and_counts_are_rebuilt() -> None:
    outputs = [
        {"output_type": "stream", "name": "stdout", "text": ["a\n", "b\n"]},
        {"output_type": "stream", "name": "<script>", "text": "x"},
        {"output_type": "error", "ename": "E" * 1000, "evalue": {"not": "a string"},
         "traceback": ["line"] * 2000 + [{"x": 1}], "extra": "<script>"},
        {"output_type": "execute_result", "data": {"text/plain": "1"}, "execution_count": "1<script>",
         "metadata": {}, "transient": {"display_id": "x"}},
        {"output_type": "update_display_data", "data": {"text/html": "<script>alert(1)</script>"}},
        "not an output",
    ]
    nb = nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": "c1", "source": "x", "metadata": {}, "execution_count": True,
         "outputs": outputs}]})
    sanitize_notebook(nb, trusted_sources=set())
    cell = nb.cells[0]
    assert cell.execution_count is None
    stream, error, result = cell.outputs
    assert stream == {"output_type": "stream", "name": "stdout", "text": "a\nb\n"}
    assert len(error.ename) < 300 and error.evalue == "" and len(error.traceback) == 500
    assert set(error) == {"output_type", "ename", "evalue", "traceback"}
    assert result.execution_count is None and "transient" not in result
    nbformat.validate(nb)


def test_trusted_cells_keep_their_source_but_not_their_outputs() -> None:
    test_source = "assert answer == 42  # <b>locked test</b>"
    nb = new_notebook(cells=[new_code_cell(test_source, outputs=[
        new_output("display_data", data={"text/html": "<img src=x onerror=alert(1)>", "text/plain": "x"})])])
    sanitize_notebook(nb, trusted_sources={test_source})
    assert nb.cells[0].source == test_source
    assert nb.cells[0].outputs[0].data["text/html"] == "<img>"


# ----------------------------------------------------------------------------------------------- markdown
MARKDOWN_ATTACKS = [
    "<script>window.__pwned=1</script>",
    "Answer <img src=x onerror=alert(1)>",
    "<svg/onload=alert(1)>",
    "<details open ontoggle=alert(1)>x</details>",
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="http://127.0.0.1:9/">',
    "<style>body{background:url(javascript:alert(1))}</style>",
    '<form action="/formgrader/api/grade/1"><input type=submit></form>',
    "<math><mtext><img src=x onerror=alert(1)></mtext></math>",
    "< script>alert(1)</script>",
    "<!-- x --><img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JAVASCRIPT:alert(1))",
    "[click]( javascript:alert(1) )",
    "[click](javascript\\:alert(1))",
    "[click](javascript\\\\:alert(1))",
    "[click](java\\script:alert(1))",
    "[click](java\tscript:alert(1))",
    "[click](<java\nscript:alert(1)>)",
    "[click](&amp;#106;avascript:alert(1))",
    "[click](&amp;amp;#106;avascript:alert(1))",
    "[click](&#38;#106;avascript:alert(1))",
    "[click](&AMP;#106;avascript:alert(1))",
    "![a](attachment:missing.png)",
    "[click](&#106;avascript:alert(1))",
    "[click](&#x6A;avascript&colon;alert(1))",
    "[click](javascript&#58;alert(1))",
    "[click](<javascript:alert(1)>)",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click][r]\n\n[r]: javascript:alert(1)",
    "[click][r]\n\n[r]:\n  &#106;avascript:alert(1)",
    "<javascript:alert(1)>",
    "<http://127.0.0.1:9/x>",
    "![x](javascript:alert(1))",
    "![x](http://127.0.0.1:9/beacon.png)",
    "![x][img]\n\n[img]: http://127.0.0.1:9/beacon.png",
    "![x](data:image/svg+xml;base64," + SVG + ")",
    "$x$ <img src=x onerror=alert(1)> $y$",
    "$<img src=x onerror=alert(1)>$",
    "$$\n<script>alert(1)</script>\n$$",
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
    "    <script>alert(1)</script>",
    "\\<script>alert(1)</script>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    "| a | b |\n|---|---|\n| <img src=x onerror=alert(1)> | [x](javascript:alert(1)) |",
    "[^1]\n\n[^1]: <img src=x onerror=alert(1)>",
]


@pytest.mark.parametrize("attack", MARKDOWN_ATTACKS)
def test_student_markdown_renders_inert(attack: str) -> None:
    nb = new_notebook(cells=[new_markdown_cell(attack)])
    sanitize_notebook(nb, trusted_sources=set())
    source = nb.cells[0].source
    assert "<" not in source
    assert not re.search(r"(?i)(javascript|vbscript|data)[\\\t\n]*:", source)
    page = rendered_cells(nb)
    assert not active(page), (source, page)
    assert "javascript:" not in page.lower().replace("%e2%80%8b", "\u200b") and "vbscript:" not in page.lower()


@pytest.mark.parametrize("attack", MARKDOWN_ATTACKS)
def test_markdown_neutralising_is_idempotent(attack: str) -> None:
    once = neutralise_markdown(attack)
    assert neutralise_markdown(once) == once


def test_course_markdown_is_kept() -> None:
    course = "Read <b>this</b> carefully: $a<b$"
    nb = new_notebook(cells=[new_markdown_cell(course), new_markdown_cell("<b>mine</b>")])
    sanitize_notebook(nb, trusted_sources={course})
    assert nb.cells[0].source == course and nb.cells[1].source == "&lt;b>mine&lt;/b>"


def test_honest_markdown_stays_readable() -> None:
    answer = ("## Why freeze first?\n\nThe head is random at first, so its **gradients** are noise: if $a<b$ "
              "and $$\\frac{1}{n}\\sum_i x_i < 1$$ then R&D says [see](https://arxiv.org/abs/1411.1792) and "
              "![plot](attachment:plot.png).\n\n* one\n* two > one\n")
    nb = new_notebook(cells=[new_markdown_cell(answer, attachments={"plot.png": {"image/png": PNG}})])
    assert sanitize_notebook(nb, trusted_sources=set()) == ["markdown: raw HTML escaped"]
    assert nb.cells[0].source.replace("\\lt ", "<") == answer
    page = rendered_cells(nb)
    assert "<strong>gradients</strong>" in page and 'href="https://arxiv.org/abs/1411.1792"' in page
    assert "$a\\lt b$" in page and "R&amp;D" in page and "<li>two &gt; one</li>" in page
    assert '<img alt="plot" src="data:image/png;base64,' in page


def test_honest_markdown_without_special_characters_is_unchanged() -> None:
    text = "Freezing keeps the pretrained features; only the new head learns. Accuracy: 0.91 (seed 0)."
    assert neutralise_markdown(text) == text


def test_markdown_attachments_keep_only_raster_images() -> None:
    cell = new_markdown_cell("![a](attachment:plot.png) ![b](attachment:evil.svg)", attachments={
        "plot.png": {"image/png": PNG}, "photo.jpg": {"image/jpeg": JPEG}, "anim.gif": {"image/gif": GIF},
        "evil.svg": {"image/svg+xml": SVG}, "page.html": {"text/html": "<script>alert(1)</script>"},
        "fake.png": {"image/png": SVG}, 'x" onerror="alert(1).png': {"image/png": PNG},
        "mixed.png": {"image/png": PNG, "image/svg+xml": SVG}})
    nb = new_notebook(cells=[cell])
    notes = sanitize_notebook(nb, trusted_sources=set())
    kept = nb.cells[0].attachments
    assert set(kept) == {"plot.png", "photo.jpg", "anim.gif", "mixed.png"}
    assert dict(kept["mixed.png"]) == {"image/png": PNG}
    assert any("attachments" in n for n in notes)
    assert not active(rendered_cells(nb))


# ---------------------------------------------------------------------------------------------- raw cells
@pytest.mark.parametrize("meta", [{"raw_mimetype": "text/html"}, {"format": "text/html"}, {}])
@pytest.mark.parametrize("attack", ["<script>window.__pwned=1</script>", "<img src=x onerror=alert(1)>",
                                    "<iframe src=javascript:alert(1)>", "<svg onload=alert(1)>"])
def test_raw_cells_are_inert_text(attack: str, meta: dict) -> None:
    nb = new_notebook(cells=[new_raw_cell(attack, metadata=meta)])
    sanitize_notebook(nb, trusted_sources=set())
    cell = nb.cells[0]
    assert "<" not in cell.source and "raw_mimetype" not in cell.metadata and "format" not in cell.metadata
    assert not active(rendered_cells(nb))


# ----------------------------------------------------------------------------------------------- metadata
def test_cell_metadata_keeps_the_allow_list() -> None:
    meta = {"nbgrader": {"grade": True, "grade_id": "ex1", "points": 2, "solution": False, "locked": True,
                         "schema_version": 3, "task": False, "checksum": "ab12", "cell_type": "code",
                         "evil": "<script>"},
            "tags": ["ok-tag", 'x" onmouseover="alert(1)', "<script>", "a>b", 3, "fine_2"],
            "deletable": False, "editable": "<b>", "collapsed": True, "scrolled": "auto",
            "jupyter": {"source_hidden": True, "outputs_hidden": "yes", "x": 1},
            "widgets": {"x": 1}, "execution": {"iopub.status.busy": "2026"}, "raw_mimetype": "text/html",
            "format": "text/html", "trusted": True, "attachments": {}}
    nb = nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": "c", "source": "x", "metadata": meta, "outputs": [], "execution_count": None}]})
    sanitize_notebook(nb, trusted_sources=set())
    assert nb.cells[0].metadata == {
        "nbgrader": {"grade": True, "grade_id": "ex1", "points": 2, "solution": False, "locked": True,
                     "schema_version": 3, "task": False, "checksum": "ab12", "cell_type": "code"},
        "tags": ["ok-tag", "fine_2"], "deletable": False, "collapsed": True, "scrolled": "auto",
        "jupyter": {"source_hidden": True}}


@pytest.mark.parametrize("grade_id", ['x"><script>alert(1)</script>', "a b", "", "é", 3])
def test_unsafe_grade_ids_do_not_reach_the_formgrader(grade_id: Any) -> None:
    nb = new_notebook(cells=[new_code_cell("x", metadata={"nbgrader": {"grade": True, "grade_id": grade_id,
                                                                       "points": "1<script>"}})])
    sanitize_notebook(nb, trusted_sources=set())
    assert nb.cells[0].metadata.nbgrader == {"grade": True}


def test_cell_ids_and_unknown_cell_types_are_made_safe() -> None:
    nb = nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "id": 'x"><img src=x onerror=alert(1)>', "source": "hi", "metadata": {}},
        {"cell_type": "<script>", "id": "ok-id", "source": ["<b>", "x</b>"], "metadata": {}, "junk": 1}]})
    sanitize_notebook(nb, trusted_sources=set())
    first, second = nb.cells
    assert re.fullmatch(r"[0-9a-f]{8}", first.id) and second.id == "ok-id"
    assert second.cell_type == "raw" and second.source == "&lt;b>x&lt;/b>" and "junk" not in second
    nbformat.validate(nb)


def test_notebook_metadata_keeps_kernel_language_and_nbgrader() -> None:
    nb = new_notebook(cells=[], metadata={
        "kernelspec": {"name": "python3", "display_name": "<img src=x onerror=alert(1)>", "language": "python"},
        "language_info": {"name": "python", "version": "3.11.7", "pygments_lexer": "ipython3",
                          "codemirror_mode": {"name": "ipython", "version": 3}, "mimetype": "<script>"},
        "nbgrader": {"__altered": False, "<x>": 1, "y": {"nested": "<script>"}},
        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}, "title": "<script>"})
    notes = sanitize_notebook(nb, trusted_sources=set())
    assert nb.metadata == {
        "language_info": {"name": "python", "version": "3.11.7", "pygments_lexer": "ipython3",
                          "codemirror_mode": {"name": "ipython", "version": 3}},
        "nbgrader": {"__altered": False}}
    assert "notebook metadata: title, widgets dropped" in notes


# ----------------------------------------------------------------------------------------- whole notebook
def _hostile_notebook() -> Any:
    outputs = [new_output("display_data", data={"text/html": a, "text/plain": "x"}) for a in HTML_ATTACKS]
    outputs += [new_output("display_data", data={m: v}) for m, v in _DROPPED_TYPES.items()]
    cells = [new_code_cell("print(1)", outputs=outputs)]
    cells += [new_markdown_cell(a) for a in MARKDOWN_ATTACKS]
    cells += [new_raw_cell("<script>alert(1)</script>", metadata={"raw_mimetype": "text/html"})]
    return new_notebook(cells=cells, metadata={"widgets": {"application/vnd.jupyter.widget-state+json": {
        "state": {}, "version_major": 2, "version_minor": 0}}})


def test_the_whole_hostile_notebook_renders_inert_and_valid() -> None:
    nb = _hostile_notebook()
    notes = sanitize_notebook(nb, trusted_sources=set())
    nbformat.validate(nb)
    assert not active(rendered_cells(nb))
    assert 0 < len(notes) < 30 and all(len(n) < 120 for n in notes), notes


def test_the_honest_notebook_is_unchanged() -> None:
    pd = pytest.importorskip("pandas")
    table = pd.DataFrame({"acc": [0.9]})._repr_html_()
    meta = {"nbgrader": {"grade": False, "grade_id": "ex1", "locked": False, "schema_version": 3,
                         "solution": True, "task": False, "checksum": "1256ee42f164b39d68a89707c6d52d19",
                         "cell_type": "code"}, "deletable": False, "editable": True}
    nb = new_notebook(cells=[
        new_markdown_cell("# Warm-up\n\nFreeze the body, train the head."),
        new_code_cell("plt.plot([0, 1])\nprint('loss 0.31')\ndf", metadata=meta, execution_count=3, outputs=[
            new_output("stream", name="stdout", text="loss 0.31\n"),
            new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure size 200x200 with 1 Axes>"},
                       metadata={}),
            new_output("execute_result", data={"text/plain": "   acc\n0  0.9", "text/html": table},
                       execution_count=3)]),
        new_markdown_cell("Freezing first keeps the pretrained features intact.", metadata={
            "nbgrader": {**meta["nbgrader"], "grade": True, "points": 2, "cell_type": "markdown"}})],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
                  "language_info": {"name": "python", "pygments_lexer": "ipython3"}})
    before = copy.deepcopy(nb)
    notes = sanitize_notebook(nb, trusted_sources={before.cells[0].source})
    after = copy.deepcopy(nb)
    html_before = before.cells[1].outputs[2].data.pop("text/html")
    html_after = after.cells[1].outputs[2].data.pop("text/html")
    assert after == before and notes == []
    assert "<table" in html_after and "<td>0.9</td>" in html_after and "<style" in html_before


@pytest.mark.parametrize("unit", ["$$", "$<", "\\begin{a}<", "![", "javascript\\", "&#1", "\\(", "\\[<"])
def test_pathological_markdown_stays_fast(unit: str) -> None:
    """The math / image / scheme patterns are bounded: a cell built to make them backtrack is no denial of
    service (a student's markdown is also cut at MAX_MARKDOWN characters)."""
    import time

    from tlcourse.grading.sanitize import MAX_MARKDOWN

    nb = new_notebook(cells=[new_markdown_cell(unit * (2 * MAX_MARKDOWN // len(unit)))])
    started = time.perf_counter()
    sanitize_notebook(nb, trusted_sources=set())
    assert time.perf_counter() - started < 10
    assert nb.cells[0].source.endswith("[truncated by the grader]") and "<" not in nb.cells[0].source
