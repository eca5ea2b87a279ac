"""Student content is hostile HTML: rebuild a graded notebook from allow-lists before any page renders it.

The graded notebook that nbgrader stores is rendered, as HTML, in the formgrader (logged in as the instructor)
and in the students' feedback pages. Its outputs come from the student's kernel and its markdown, raw cells,
attachments and metadata from the student's hands, so nothing of it is trusted. :func:`sanitize_notebook`
does not look for known attacks; it keeps only what is known to be inert and rebuilds everything else:

* **outputs** (of every code cell, course cells too: they ran in the student's kernel) are rebuilt from
  :data:`OUTPUT_TYPES`: ``stream``, ``error``, ``display_data`` / ``execute_result`` with the mime types of
  :data:`MIME_TYPES` (plain text, PNG / JPEG with valid base64, HTML through :func:`clean_html`); anything else
  (JavaScript, SVG, widget views, markdown, LaTeX, unknown types) is dropped, a plain-text fallback kept;
* **student markdown** goes through :func:`neutralise_markdown`: no ``<`` survives (so no raw HTML), character
  references cannot spell a URL scheme, ``javascript:`` / ``vbscript:`` / ``data:`` cannot start a link, and
  images only show attachments; **student raw cells** are inert text (no ``<``, no ``format`` metadata);
* **attachments** keep PNG / JPEG / GIF with valid base64; **cell metadata** keep :data:`CELL_METADATA`;
  **notebook metadata** keep ``kernelspec``, ``language_info`` (plain strings) and ``nbgrader``.

Example:
    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Hi <script>alert(1)</script>")])
    >>> sanitize_notebook(nb, trusted_sources=set())
    ['markdown: raw HTML escaped']
    >>> nb.cells[0].source
    'Hi &lt;script>alert(1)&lt;/script>'
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from typing import Any

import nh3
from nbformat import NotebookNode

__all__ = ["sanitize_notebook", "clean_html", "neutralise_markdown", "inert_text", "OUTPUT_TYPES", "MIME_TYPES",
           "CELL_METADATA"]

Notes = Counter  # what was removed, in words -> how many times

MAX_TEXT = 1_000_000  # characters of a stream / text/plain / text/html output
MAX_MARKDOWN = 200_000  # characters of a student's markdown or raw cell (a written answer is a few thousand)
MAX_TRACEBACK_LINES = 500
MAX_LINE = 20_000  # characters of an error's name, value, or traceback line
TRUNCATED = "\n… [truncated by the grader]"
_DROP = object()  # a metadata cleaner's "leave this key out"

# ------------------------------------------------------------------------------------------- plain values


def _text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """A string (nbformat's list-of-lines form joined), capped at ``limit`` characters; None for anything else.

    >>> _text(["a\\n", "b"]), _text(3), _text("x" * 5, limit=2)
    ('a\\nb', None, 'xx\\n… [truncated by the grader]')
    """
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "".join(value)
    if not isinstance(value, str):
        return None
    return value if len(value) <= limit else value[:limit] + TRUNCATED


def _bool(value: Any) -> Any:
    return value if isinstance(value, bool) else _DROP


def _number(value: Any) -> Any:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return value if ok else _DROP


def _integer(value: Any) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) else _DROP


def _matching(pattern: str) -> Callable[[Any], Any]:
    """A cleaner that keeps strings that match ``pattern`` in full."""
    regex = re.compile(pattern)
    return lambda value: value if isinstance(value, str) and regex.fullmatch(value) else _DROP


#: characters of a string that a template may print unescaped (names, versions, kernel names)
_plain = _matching(r"[\w .,+\-()/:@]{0,120}")


def _size(value: Any) -> Any:
    return value if _number(value) is not _DROP and value > 0 else _DROP


def _dict_of(cleaners: Mapping[str, Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """A cleaner of dicts: the keys of ``cleaners`` whose values survive their cleaner."""

    def clean(value: Any) -> Any:
        if not isinstance(value, Mapping):
            return _DROP
        kept = {key: cleaners[key](value[key]) for key in cleaners if key in value}
        return NotebookNode({key: v for key, v in kept.items() if v is not _DROP})

    return clean


def _requiring(keys: tuple[str, ...], clean: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A dict cleaner that drops the whole dict when one of ``keys`` (nbformat requires them) did not survive."""

    def cleaned(value: Any) -> Any:
        result = clean(value)
        return result if result is not _DROP and all(k in result for k in keys) else _DROP

    return cleaned


def _scalars(value: Any) -> Any:
    """A dict of plain keys to plain scalars (the notebook-level ``nbgrader`` metadata)."""
    if not isinstance(value, Mapping):
        return _DROP
    scalar = {bool: _bool, int: _number, float: _number, str: _plain}
    kept = {k: scalar.get(type(v), lambda _: _DROP)(v) for k, v in value.items() if _plain(k) is not _DROP}
    return NotebookNode({k: v for k, v in kept.items() if v is not _DROP})


# -------------------------------------------------------------------------------------------------- rasters
_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff", "image/gif": b"GIF8"}


def _raster(value: Any, mime: str) -> str | None:
    """The base64 text of a ``mime`` image, if it decodes strictly and starts with that format's magic bytes.

    >>> _raster("iVBORw0KGgo=", "image/png"), _raster("PHN2Zz4=", "image/png"), _raster("**", "image/png")
    ('iVBORw0KGgo=', None, None)
    """
    text = _text(value, limit=50 * MAX_TEXT)
    if text is None:
        return None
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return text if raw.startswith(_MAGIC[mime]) else None


# ---------------------------------------------------------------------------------------------------- HTML
_HTML_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "ol", "p", "pre", "q", "s",
    "samp", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u",
    "ul", "var",
}
_HTML_ATTRIBUTES = {
    "a": {"href", "title"}, "img": {"src", "alt", "width", "height"}, "table": {"border"},
    "td": {"colspan", "rowspan", "align"}, "th": {"colspan", "rowspan", "align"}, "col": {"span"},
    "colgroup": {"span"}, "ol": {"start"}, "abbr": {"title"},
}
_DATA_IMAGE = re.compile(r"data:(image/(?:png|jpeg));base64,([A-Za-z0-9+/=\s]+)", re.IGNORECASE)
_WEB_LINK = re.compile(r"https?://[^\s\\]+", re.IGNORECASE)


def _img_src(value: str) -> str | None:
    match = _DATA_IMAGE.fullmatch(value)
    ok = match is not None and _raster(match.group(2), match.group(1).lower()) is not None
    return value if ok else None


#: per (tag, attribute): what a URL may be; an image never loads anything (only inline PNG / JPEG)
_URL_RULES: dict[tuple[str, str], Callable[[str], str | None]] = {
    ("img", "src"): _img_src,
    ("a", "href"): lambda value: value if _WEB_LINK.fullmatch(value) else None,
}


def _attribute(tag: str, name: str, value: str) -> str | None:
    rule = _URL_RULES.get((tag, name))
    return rule(value) if rule else value


_CLEANER = nh3.Cleaner(
    tags=_HTML_TAGS, attributes=_HTML_ATTRIBUTES, attribute_filter=_attribute, strip_comments=True,
    clean_content_tags={"script", "style", "template", "noscript", "textarea", "title", "xmp", "noembed",
                        "noframes", "iframe", "object", "embed", "svg", "math"},
    url_schemes={"http", "https", "data"}, url_relative="deny",
)


def clean_html(value: Any) -> str | None:
    """HTML with only inert markup (tables, text formatting, web links, inline PNG / JPEG images), by ``nh3``.

    No script, style, frame, form, SVG, MathML, ``<base>``, ``<meta>`` or ``<link>``; no event handler, no
    ``style`` / ``class`` / ``id`` attribute; links only ``http(s)``; images only ``data:image/png|jpeg``.

    >>> clean_html('<table border="1" class="dataframe"><tr><td onclick="x()">1</td></tr></table>')
    '<table border="1"><tbody><tr><td>1</td></tr></tbody></table>'
    >>> clean_html('<a href="javascript:alert(1)">x</a><script>alert(2)</script><img src=x onerror=y>')
    '<a rel="noopener noreferrer">x</a><img>'
    """
    text = _text(value)
    return None if text is None else _CLEANER.clean(text)


# ------------------------------------------------------------------------------------------------- outputs
_ACTIVE_HTML = re.compile(r"<\s*/?\s*(script|iframe|object|embed|form|svg|math|link|meta|base|frame)\b|"
                          r"\son\w+\s*=|javascript:|vbscript:", re.IGNORECASE)


def _html(value: Any, notes: Notes) -> str | None:
    text = _text(value)
    if text is not None and _ACTIVE_HTML.search(text):  # for the note only (pandas' <style> is no news)
        notes["outputs: active HTML removed"] += 1
    return clean_html(text)


#: the mime types an output keeps, each with its cleaner (``None``: drop the type)
MIME_TYPES: dict[str, Callable[[Any, Notes], str | None]] = {
    "text/plain": lambda value, notes: _text(value),
    "image/png": lambda value, notes: _raster(value, "image/png"),
    "image/jpeg": lambda value, notes: _raster(value, "image/jpeg"),
    "text/html": _html,
}
_NAMED_DROPS = {"application/javascript", "text/javascript", "image/svg+xml", "text/markdown", "text/latex",
                "application/vnd.jupyter.widget-view+json", "application/json", "application/pdf"}


def _output_metadata(meta: Any, data: Mapping[str, str]) -> NotebookNode:
    """Only numeric width / height of the images kept."""
    size = _dict_of({"width": _size, "height": _size})
    meta = meta if isinstance(meta, Mapping) else {}
    kept = {mime: size(meta.get(mime)) for mime in ("image/png", "image/jpeg") if mime in data}
    return NotebookNode({mime: v for mime, v in kept.items() if v is not _DROP and v})


def _mime_data(data: Any, notes: Notes) -> dict[str, str]:
    """The kept mime types of an output's data; a plain-text fallback when nothing else is left."""
    data = data if isinstance(data, Mapping) else {}
    kept, dropped = {}, []
    for mime, value in data.items():
        cleaned = MIME_TYPES[mime](value, notes) if mime in MIME_TYPES else None
        if cleaned is None:
            name = mime if mime in _NAMED_DROPS or mime in MIME_TYPES else "an unknown type"
            notes[f"outputs: {name} dropped"] += 1
            dropped.append(name)
        else:
            kept[mime] = cleaned
    if not kept:
        kept["text/plain"] = f"[output removed by the grader: {', '.join(dropped) or 'nothing displayable'}]"
    return kept


def _count(value: Any) -> int | None:
    return value if _integer(value) is not _DROP else None


def _display(out: Mapping[str, Any], notes: Notes) -> NotebookNode:
    data = _mime_data(out.get("data"), notes)
    node = NotebookNode(output_type=out["output_type"], data=data,
                        metadata=_output_metadata(out.get("metadata"), data))
    if out["output_type"] == "execute_result":
        node.execution_count = _count(out.get("execution_count"))
    return node


def _stream(out: Mapping[str, Any], notes: Notes) -> NotebookNode | None:
    name, text = out.get("name"), _text(out.get("text"))
    if name not in ("stdout", "stderr") or text is None:
        notes["outputs: malformed stream dropped"] += 1
        return None
    return NotebookNode(output_type="stream", name=name, text=text)


def _error(out: Mapping[str, Any], notes: Notes) -> NotebookNode:
    lines = out.get("traceback") if isinstance(out.get("traceback"), list) else []
    if len(lines) > MAX_TRACEBACK_LINES:
        notes["outputs: long traceback cut"] += 1
    traceback = [t for t in (_text(line, MAX_LINE) for line in lines[:MAX_TRACEBACK_LINES]) if t is not None]
    return NotebookNode(output_type="error", ename=_text(out.get("ename"), 200) or "Error",
                        evalue=_text(out.get("evalue"), MAX_LINE) or "", traceback=traceback)


#: the output types kept, each rebuilt by its builder (which may return None: drop the output)
OUTPUT_TYPES: dict[str, Callable[[Mapping[str, Any], Notes], NotebookNode | None]] = {
    "stream": _stream, "error": _error, "display_data": _display, "execute_result": _display,
}


def _outputs(outputs: Any, notes: Notes) -> list[NotebookNode]:
    rebuilt = []
    for out in outputs if isinstance(outputs, list) else []:
        kind = out.get("output_type") if isinstance(out, Mapping) else None
        node = OUTPUT_TYPES[kind](out, notes) if kind in OUTPUT_TYPES else None
        if node is None and kind not in OUTPUT_TYPES:
            notes["outputs: unknown output type dropped"] += 1
        if node is not None:
            rebuilt.append(node)
    return rebuilt


# ------------------------------------------------------------------------------------------------ markdown
#: math spans (for readability only: ``<`` becomes ``\lt`` there); bounded, so no input makes matching quadratic
_MATH = (r"\$\$.{1,2000}?\$\$|\$[^$\n]{1,500}?\$|\\\(.{1,500}?\\\)|\\\[.{1,2000}?\\\]|"
         r"\\begin\{(?P<env>[A-Za-z]{1,20}\*?)\}.{1,2000}?\\end\{(?P=env)\}")
_LT = re.compile(rf"(?P<math>{_MATH})|<", re.DOTALL)
#: a character reference, except ``&lt; &gt; &quot;`` (``&amp;`` too: mistune decodes a link's URL twice, so
#: ``&amp;#106;`` is a ``j`` there); broken by a zero-width space after the ``&`` (it could spell a URL scheme)
_REFERENCE = re.compile(r"&(?!(?:lt|gt|quot);)(?=#[0-9]{1,8};|#[xX][0-9a-fA-F]{1,8};|[A-Za-z][A-Za-z0-9]{0,40};)")
ZWSP = "\u200b"


def _spelled(*words: str) -> str:
    """A regex of ``words`` as a URL parser may read them: any case, tabs, line breaks or backslashes between the
    letters (browsers drop tabs and newlines from URLs; a renderer may unescape backslashes more than once)."""
    return "|".join(r"[\t\n\r\\]{0,8}".join(re.escape(ch) for ch in word) for word in words)


#: a script-capable URL scheme just before its colon (a zero-width space after it leaves a relative URL)
_SCHEME = re.compile(rf"(?<![A-Za-z0-9+.\-])({_spelled('javascript', 'vbscript', 'data')})(?=[\t\n\r\\]{{0,8}}:)",
                     re.IGNORECASE)


def _images_except(attachments: Collection[str]) -> re.Pattern:
    """``![`` of an image that does not show one of ``attachments`` (an image URL is fetched unasked)."""
    names = "|".join(re.escape(name) for name in sorted(attachments)) or "(?!)"
    return re.compile(rf"!\[(?![^\]\n]{{0,500}}\]\(\s{{0,8}}attachment:(?:{names})[\s)])")


def _escape_lt(match: re.Match) -> str:
    return match.group("math").replace("<", r"\lt ") if match.group("math") else "&lt;"


def _substitute(pattern: re.Pattern, replace: Callable[[re.Match], str], source: str) -> tuple[str, int]:
    return pattern.subn(replace, source)


#: (what is neutralised, how: source -> (new source, how many)), in order; each step is idempotent and none
#: brings back what an earlier one removed
_MARKDOWN_STEPS: tuple[tuple[str, Callable[[str], tuple[str, int]]], ...] = (
    ("character references broken", functools.partial(_substitute, _REFERENCE, lambda m: "&" + ZWSP)),
    ("raw HTML escaped", lambda source: (_LT.sub(_escape_lt, source), source.count("<"))),
    ("script URL schemes broken", functools.partial(_substitute, _SCHEME, lambda m: m.group(1) + ZWSP)),
)


def neutralise_markdown(source: str, notes: Notes | None = None, attachments: Collection[str] = ()) -> str:
    """Student markdown that renders as text and links only: no ``<`` at all (``&lt;`` outside math, ``\\lt``
    inside ``$…$``), character references other than ``&lt; &gt; &amp; &quot;`` escaped (they could spell
    a scheme in a URL), ``javascript:`` / ``vbscript:`` / ``data:`` broken by a zero-width space, and images
    that do not show one of the cell's ``attachments`` turned into links (no request leaves the page, and
    nbconvert, which fails on a missing attachment, can render it).

    >>> neutralise_markdown('<img src=x onerror=alert(1)> so $a<b$, [x](&#106;avascript:alert(1))')
    '&lt;img src=x onerror=alert(1)> so $a\\\\lt b$, [x](&\\u200b#106;avascript:alert(1))'
    >>> neutralise_markdown("[x](JavaScript:alert(1)) ![p](http://evil/p.png) ![a](attachment:a.png)", None, ["a.png"])
    '[x](JavaScript\\u200b:alert(1)) !\\\\[p](http://evil/p.png) ![a](attachment:a.png)'
    """
    notes = Notes() if notes is None else notes
    images = ("images made links", functools.partial(_substitute, _images_except(attachments), lambda m: "!\\["))
    for what, step in (*_MARKDOWN_STEPS, images):
        source, n = step(source)
        if n:
            notes[f"markdown: {what}"] += 1
    return source


def inert_text(source: str) -> str:
    """A raw cell's text that no HTML page can read as markup (nbconvert copies raw cells into its HTML).

    >>> inert_text('<script>alert(1)</script> a & b')
    '&lt;script>alert(1)&lt;/script> a & b'
    """
    return source.replace("<", "&lt;")


# ----------------------------------------------------------------------------------------------- metadata
_safe_tag = _matching(r"[A-Za-z0-9_\-.:]{1,64}")


def _tags(value: Any) -> Any:
    if not isinstance(value, list):
        return _DROP
    return [tag for tag in value if _safe_tag(tag) is not _DROP]


#: nbgrader's cell metadata, each key with the one shape nbgrader writes (the formgrader prints grade_id raw)
NBGRADER_CELL_METADATA: dict[str, Callable[[Any], Any]] = {
    "grade": _bool, "solution": _bool, "locked": _bool, "task": _bool, "points": _number,
    "grade_id": _matching(r"[A-Za-z0-9_\-]{1,100}"), "schema_version": _integer,
    "cell_type": _matching(r"code|markdown|raw"), "checksum": _matching(r"[0-9a-fA-F]{1,128}"),
}
#: the cell metadata kept, each with its cleaner
CELL_METADATA: dict[str, Callable[[Any], Any]] = {
    "nbgrader": _dict_of(NBGRADER_CELL_METADATA), "tags": _tags, "deletable": _bool, "editable": _bool,
    "collapsed": _bool, "scrolled": lambda v: v if isinstance(v, bool) or v == "auto" else _DROP,
    "jupyter": _dict_of({"source_hidden": _bool, "outputs_hidden": _bool}),
}
#: the notebook metadata kept, each with its cleaner
NOTEBOOK_METADATA: dict[str, Callable[[Any], Any]] = {
    "kernelspec": _requiring(("name", "display_name"),
                             _dict_of({"name": _plain, "display_name": _plain, "language": _plain})),
    "language_info": _requiring(("name",), _dict_of({
        "name": _plain, "version": _plain, "mimetype": _plain, "file_extension": _plain, "pygments_lexer": _plain,
        "nbconvert_exporter": _plain, "codemirror_mode": lambda v: _plain(v) if isinstance(v, str) else
        _dict_of({"name": _plain, "version": _integer})(v)})),
    "nbgrader": _scalars,
}


def _metadata(meta: Any, cleaners: Mapping[str, Callable[[Any], Any]], notes: Notes, where: str) -> NotebookNode:
    meta = meta if isinstance(meta, Mapping) else {}
    cleaned = _dict_of(cleaners)(meta)
    if cleaned != {k: meta[k] for k in cleaners if k in meta}:
        notes[f"{where} metadata: values cleaned"] += 1
    return cleaned


def _attachments(value: Any, notes: Notes) -> NotebookNode:
    """Attachments as nbformat keeps them (name -> {mime: base64}): PNG / JPEG / GIF with valid base64."""
    kept = NotebookNode()
    for name, bundle in (value.items() if isinstance(value, Mapping) else []):
        images = {m: _raster(v, m) for m, v in bundle.items() if m in _MAGIC} if isinstance(bundle, Mapping) else {}
        images = {m: v for m, v in images.items() if v is not None}
        if _matching(r"[A-Za-z0-9_.\-]{1,100}")(name) is _DROP or not images:
            notes["attachments: non-image dropped"] += 1
            continue
        kept[name] = NotebookNode(images)
    return kept


# --------------------------------------------------------------------------------------------------- cells
_CELL_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def _student_raw(source: str, notes: Notes, attachments: Collection[str]) -> str:
    if "<" in source:
        notes["raw cells: markup escaped"] += 1
    return inert_text(source)


#: how a student's cell source becomes inert, per cell type (code is printed escaped by every template)
_STUDENT_SOURCE: dict[str, Callable[[str, Notes, Collection[str]], str]] = {
    "markdown": neutralise_markdown, "raw": _student_raw, "code": lambda source, notes, attachments: source,
}


def _cell_id(value: Any) -> str:
    return value if isinstance(value, str) and _CELL_ID.fullmatch(value) else uuid.uuid4().hex[:8]


def _cell(cell: Mapping[str, Any], trusted: Collection[str], notes: Notes) -> NotebookNode:
    kind = cell.get("cell_type") if cell.get("cell_type") in _STUDENT_SOURCE else "raw"
    source = _text(cell.get("source"), limit=MAX_TEXT if kind == "code" else MAX_MARKDOWN) or ""
    node = NotebookNode(cell_type=kind, metadata=_metadata(cell.get("metadata"), CELL_METADATA, notes, "cell"))
    attachments = _attachments(cell.get("attachments"), notes) if kind != "code" else None
    if attachments:
        node.attachments = attachments
    node.source = source if source in trusted else _STUDENT_SOURCE[kind](source, notes, attachments or ())
    if "id" in cell:
        node.id = _cell_id(cell["id"])
    if kind == "code":
        node.execution_count = _count(cell.get("execution_count"))
        node.outputs = _outputs(cell.get("outputs"), notes)
    return node


def sanitize_notebook(nb: NotebookNode, trusted_sources: Collection[str]) -> list[str]:
    """Rebuild ``nb`` (nbformat v4, changed in place) so that no part of it is active in an HTML page; return
    short notes of what was removed (for the grade row).

    A cell whose source is in ``trusted_sources`` is course content (a locked cell or a test restored from the
    source notebook): its source is kept; every other cell is the student's. Outputs and metadata of every
    cell are rebuilt from the allow-lists (:data:`OUTPUT_TYPES`, :data:`MIME_TYPES`, :data:`CELL_METADATA`).

    >>> import nbformat
    >>> cell = nbformat.v4.new_code_cell("print(1)", outputs=[
    ...     nbformat.v4.new_output("stream", name="stdout", text="1\\n"),
    ...     nbformat.v4.new_output("display_data", data={"application/javascript": "alert(1)"})])
    >>> nb = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {}})
    >>> sanitize_notebook(nb, trusted_sources={"print(1)"})
    ['outputs: application/javascript dropped', 'notebook metadata: widgets dropped']
    >>> [o.output_type for o in nb.cells[0].outputs], dict(nb.metadata)
    (['stream', 'display_data'], {})
    """
    notes = Notes()
    trusted = frozenset(trusted_sources)
    cells = nb.get("cells") if isinstance(nb.get("cells"), list) else []
    nb.cells = [_cell(cell, trusted, notes) for cell in cells if isinstance(cell, Mapping)]
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), Mapping) else {}
    dropped = sorted(set(meta) - set(NOTEBOOK_METADATA))
    if dropped:
        notes["notebook metadata: " + ", ".join(k for k in dropped if _plain(k) is not _DROP)[:200] + " dropped"] += 1
    nb.metadata = _dict_of(NOTEBOOK_METADATA)(meta)
    return [what if n == 1 else f"{what} ({n}x)" for what, n in notes.items()]
