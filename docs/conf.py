"""Sphinx configuration of the course website (``make site``; ``docs/build.py`` prepares the source folder).

Offline by design: MyST-NB renders notebooks that ``docs/build.py`` already executed (``nb_execution_mode =
"off"``), sphinx-book-theme ships its own assets, no intersphinx inventory is fetched, no widget manager is loaded
from a CDN, and MathJax is served from a local copy when one is installed (see :func:`_mathjax`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PROFILE = os.environ.get("TLCOURSE_SITE_PROFILE", "grading")
SOLUTIONS = os.environ.get("TLCOURSE_SITE_SOLUTIONS", "1") == "1"

project = "tlcourse — transfer learning, hands-on"
author = "the tlcourse authors"
copyright = "the tlcourse authors (code: MIT)"
html_title = "tlcourse" if SOLUTIONS else "tlcourse (class edition)"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx_copybutton"]
exclude_patterns = ["notebooks/**", "_mathjax/**", "**.ipynb_checkpoints", "benchmarks/*.md", "generated/**"]
templates_path: list[str] = []
html_static_path = [str(DOCS / "_static")]
html_css_files = ["tlcourse.css"]

# --- notebooks: executed by docs/build.py (cached), rendered as they are
nb_execution_mode = "off"
nb_ipywidgets_js: dict[str, dict[str, str]] = {}  # the default loads require.js and the widget manager from CDNs
nb_merge_streams = True
nb_code_prompt_show = "Show code cell {type}"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_update_mathjax = False  # MathJax 2 is configured below (_mathjax): no MathJax 3/4 config object on the page
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@2.7.9/MathJax.js?config=TeX-AMS-MML_HTMLorMML"
# widget views need a live kernel (docs/pages.py turns them into a note); the quizzes (jupyterquiz) are an HTML
# output then an application/javascript one, which MyST-NB renders as a <script> by default
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
suppress_warnings = ["mystnb.unknown_mime_type"]

# --- the API reference, from the docstrings (no network: no intersphinx)
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_inherit_docstrings = False  # torch's docstrings (e.g. Function.forward) cite labels of their own docs
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# --- the theme: everything it needs ships in the package
html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": True,  # the page's source: the executed notebook as shown
    "use_fullscreen_button": False,
    "use_repository_button": bool(os.environ.get("TLCOURSE_SITE_REPOSITORY")),
    "repository_url": os.environ.get("TLCOURSE_SITE_REPOSITORY", ""),
    "announcement": "" if SOLUTIONS else "Class edition: the exercises without their solutions.",
    "extra_footer": f"Lessons executed in the <b>{PROFILE}</b> profile.",
}
html_last_updated_fmt = ""
html_show_sourcelink = False
html_copy_source = True  # the download button offers the page's notebook


def _mathjax_source() -> Path | None:
    """A local MathJax 2 (folder holding ``MathJax.js``): ``TLCOURSE_MATHJAX``, the ``jupyter-server-mathjax``
    package, or Debian's ``libjs-mathjax``; ``None`` when none is installed."""
    candidates = [os.environ.get("TLCOURSE_MATHJAX", "")]
    spec = importlib.util.find_spec("jupyter_server_mathjax")
    if spec and spec.origin:
        candidates.append(str(Path(spec.origin).parent / "static"))
    candidates.append("/usr/share/javascript/mathjax")
    return next((Path(c) for c in candidates if c and (Path(c) / "MathJax.js").is_file()), None)


def _mathjax(app) -> None:  # noqa: ANN001 - a sphinx.application.Sphinx
    """MathJax 2, served from the site (``_static/mathjax``) when a local copy is installed, else from its CDN
    (math then renders only online). Version 2 either way, configured by ``mathjax2_config`` alone: the quizzes
    (jupyterquiz) typeset with MathJax 2, and read ``MathJax.version`` whenever a ``MathJax`` object exists, so none
    may exist before MathJax has loaded (an offline page would throw)."""
    tex2jax = {"processClass": "math|output_area", "processEscapes": True, "ignoreClass": "document"}
    app.config.mathjax2_config = {"tex2jax": tex2jax}
    source = _mathjax_source()
    if source is None:
        print("note: no local MathJax (pip install jupyter-server-mathjax): math renders only online")
        app.config.mathjax_path = MATHJAX_CDN
        return
    target = Path(app.srcdir) / "_mathjax" / "mathjax"
    if not (target / "MathJax.js").exists():
        shutil.copytree(source, target, dirs_exist_ok=True)
    app.config.html_static_path.append(str(target.parent))
    app.config.mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
    fonts = target / "jax" / "output" / "HTML-CSS" / "fonts"
    web_font = "TeX" if (fonts / "TeX").is_dir() else "STIX-Web"  # jupyter-server-mathjax ships STIX-Web only
    app.config.mathjax2_config.update({
        "HTML-CSS": {"availableFonts": [], "preferredFont": None, "imageFont": None, "webFont": web_font},
        "fast-preview": {"disabled": True},  # its CommonHTML preview asks for TeX web fonts
    })


def setup(app) -> None:  # noqa: ANN001 - a sphinx.application.Sphinx
    """Hooks of this site: MathJax 2, local when installed."""
    app.connect("builder-inited", _mathjax)
