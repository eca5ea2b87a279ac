"""The course website (``make site``): it builds offline, holds what a reader needs, and leaks nothing.

One module-scoped build of both sites in the grading profile (the lessons executed once, into a temporary cache;
``TLCOURSE_SITE_CACHE`` points it at a lasting one while developing), then: pages exist, executed outputs are
there (figures, claims), hidden tests appear nowhere, the class site quotes no worked solution, a rebuild reuses
the cache, every internal link resolves — and headless Chromium opens the home page, a lesson (figure, solution
toggle, quiz answered with feedback), the API page, with no request leaving the machine.
"""

from __future__ import annotations

import doctest
import functools
import html
import http.server
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from support.docs import load as load_docs

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow




site_build = load_docs("build")
pages = site_build.pages


@dataclass
class Built:
    """The two sites of one build, and what the build printed."""

    selfpaced: Path
    classsite: Path
    cache: Path
    log: list[str]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Both sites, grading profile, built once for this module."""
    base = tmp_path_factory.mktemp("site")
    cache = Path(os.environ.get("TLCOURSE_SITE_CACHE") or base / "nbcache")
    log: list[str] = []
    sites = {}
    for solutions in (True, False):
        out = base / ("html" if solutions else "html-class")
        site_build.build(site_build.Site("grading", solutions, out, cache, base / "work"), log=log.append)
        sites[solutions] = out
    return Built(sites[True], sites[False], cache, log)


def _lesson_html(site: Path) -> dict[str, str]:
    return {name: (site / "lessons" / f"{name}.html").read_text(encoding="utf-8")
            for name in site_build.lesson_names()}


# ------------------------------------------------------------------------------------------------- the build
def test_docs_examples_run() -> None:
    """The examples in docs/pages.py and docs/build.py (pytest's doctest run covers only tests/ and tlcourse/)."""
    for module in (pages, site_build):
        assert doctest.testmod(module).failed == 0


def test_cache_key_follows_its_inputs(tmp_path: Path) -> None:
    notebook = REPO / "solutions" / "00_warmup" / "00_warmup.ipynb"
    key = site_build.cache_key(notebook, "grading")
    assert key == site_build.cache_key(notebook, "grading")
    assert key != site_build.cache_key(notebook, "cpu")
    other = tmp_path / "solutions" / "00_warmup" / "00_warmup.ipynb"  # the same toolkit and lock, another notebook
    other.parent.mkdir(parents=True)
    other.write_bytes(notebook.read_bytes().replace(b"Warm-up", b"Warm up"))
    (tmp_path / "tlcourse").symlink_to(REPO / "tlcourse")
    (tmp_path / "requirements.txt").symlink_to(REPO / "requirements.txt")
    assert site_build.cache_key(other, "grading", root=tmp_path) != key
    other.write_bytes(notebook.read_bytes())
    assert site_build.cache_key(other, "grading", root=tmp_path) == key


def test_lesson_pages_link_to_the_class_hub_when_given_one(tmp_path: Path) -> None:
    """`--hub` and `--class-repo`: each lesson's banner opens the lesson on the class's JupyterHub (nbgitpuller);
    without them, no hub link (a public site does not know the class)."""
    from urllib.parse import parse_qs, urlsplit

    plain = site_build.Site("grading", False, tmp_path, tmp_path, tmp_path)
    assert "JupyterHub" not in site_build._banner("03_fine_tuning", plain)
    hub = site_build.Site("grading", False, tmp_path, tmp_path, tmp_path, hub="https://hub.example.edu",
                          class_repo="https://git.example.edu/class/tlcourse.git", branch="spring")
    banner = site_build._banner("03_fine_tuning", hub)
    (url,) = re.findall(r"\]\((https://hub\.example\.edu/[^)]+)\)", banner)
    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path == "/hub/user-redirect/git-pull"
    assert query["repo"] == ["https://git.example.edu/class/tlcourse.git"] and query["branch"] == ["spring"]
    assert query["urlpath"] == ["lab/tree/tlcourse/lessons/03_fine_tuning/03_fine_tuning.ipynb"]
    assert "Colab" not in banner, "no Colab link unless the class copy on GitHub is named"
    colab = site_build.Site("grading", False, tmp_path, tmp_path, tmp_path, colab="https://github.com/uni/tl-class",
                            branch="spring")
    (url,) = re.findall(r"\]\((https://colab\.research\.google\.com/[^)]+)\)", site_build._banner("03_fine_tuning", colab))
    assert url.endswith("/github/uni/tl-class/blob/spring/lessons/03_fine_tuning/03_fine_tuning.ipynb")
    with pytest.raises(SystemExit):  # Colab opens GitHub repositories only: refused before any build
        site_build.main(["--colab", "https://git.example.edu/class/tlcourse.git"])


def test_pages_exist(built: Built) -> None:
    for site in (built.selfpaced, built.classsite):
        expected = ["index.html", "benchmarks.html", "api/index.html", "search.html",
                    *(f"lessons/{n}.html" for n in site_build.lesson_names()),
                    *(f"api/{m}.html" for m in site_build.API_MODULES)]
        assert [p for p in expected if not (site / p).is_file()] == []
    home = (built.selfpaced / "index.html").read_text(encoding="utf-8")
    for words in ("self-paced learners", "instructors", "students", "Set-up"):
        assert words in home
    assert "Checked claims" in (built.selfpaced / "benchmarks.html").read_text(encoding="utf-8")
    assert "load_backbone" in (built.selfpaced / "api" / "models.html").read_text(encoding="utf-8")


def test_rebuild_reuses_the_executed_notebooks(built: Built) -> None:
    """The fixture's second build (the class site) is a rebuild: it runs no lesson again, it reads the cache."""
    starts = [i for i, line in enumerate(built.log) if line.startswith("[1/3] lessons")]
    assert len(starts) == 2, built.log
    first, second = built.log[starts[0]:starts[1]], built.log[starts[1]:]
    names = site_build.lesson_names()
    assert len([line for line in first if ": executed in" in line or ": cached" in line]) == len(names), first
    assert len([line for line in second if ": cached" in line]) == len(names), second
    assert not [line for line in second if ": executing" in line], second


def test_build_runs_lessons_side_by_side(tmp_path: Path) -> None:
    """``jobs`` kernels at once, each told its share of the CPUs (as the grader's workers), so two kernels do not
    each start a pool for the whole machine; one kernel sizes itself."""
    from tlcourse.threads import THREAD_VARS, allowed_cpus, explicit_threads

    alone = site_build.kernel_env("grading", jobs=1)
    shared = site_build.kernel_env("grading", jobs=2)
    expected = str(max(1, allowed_cpus() // 2))
    assert all(shared[v] == explicit_threads().get(v, expected) for v in THREAD_VARS), shared
    assert all(alone.get(v) == os.environ.get(v) for v in THREAD_VARS)
    assert site_build.parallel_jobs(site_build.Site("grading", True, tmp_path, tmp_path, tmp_path, jobs=0)) >= 1


def test_executed_outputs_are_shown(built: Built) -> None:
    for site in (built.selfpaced, built.classsite):
        lessons = _lesson_html(site)
        for name, page in lessons.items():  # every lesson has a picture a reader without a kernel can see
            figures = re.findall(r'<img[^>]+src="(\.\./_images/[^"]+)"', page)
            assert figures and all((site / "lessons" / f).resolve().is_file() for f in figures), name
        claims = "".join(lessons.values())
        verdicts = ("✓ held beyond noise", "≈ within noise", "✗ did not hold")
        assert "tlcourse-claim" in claims and any(v in claims for v in verdicts)


def _hidden_secrets() -> list[str]:
    from tlcourse.grading import hidden_secrets_of
    from tlcourse.grading.hidden import distinctive

    found: set[str] = set()
    for path in sorted(REPO.glob("solutions/*/*.ipynb")):
        found.update(distinctive(hidden_secrets_of(nbformat.read(path, as_version=4))))
    assert found, "the lessons have hidden tests: the search below must have something to look for"
    return sorted(found)


def _lesson_files(site: Path) -> list[Path]:
    """What holds lesson content: pages, page sources, downloads (the API pages quote the markers on purpose)."""
    return [*site.glob("lessons/*.html"), *site.rglob("_sources/**/*.ipynb*"), *site.rglob("_downloads/**/*")]


def test_no_hidden_test_anywhere(built: Built) -> None:
    secrets = _hidden_secrets()
    for site in (built.selfpaced, built.classsite):
        assert pages.leaks(site, secrets) == []
        marked = [p for p in _lesson_files(site) if p.is_file() and "BEGIN HIDDEN TESTS" in p.read_text("utf-8")]
        assert marked == []


def test_self_paced_site_folds_the_worked_solutions(built: Built) -> None:
    for name, text in _lesson_html(built.selfpaced).items():
        solution = nbformat.read(REPO / "solutions" / name / f"{name}.ipynb", as_version=4)
        answers = [c for c in solution.cells if pages.is_answer(c) and c.cell_type == "code"]
        assert text.count("Show solution") == len(answers), name
        assert "Show a model answer" in text, name
        first = pages._solution_lines(answers[0].source)[0]
        assert first in html.unescape(re.sub(r"<[^>]+>", "", text)), name  # the worked code is on the page


def test_class_site_shows_no_solution(built: Built) -> None:
    public = "\n".join(c.source for p in sorted(REPO.glob("lessons/*/*.ipynb"))
                       for c in nbformat.read(p, as_version=4).cells)
    public += "\n".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "tlcourse").rglob("*.py")))
    secrets: set[str] = set()
    for path in sorted(REPO.glob("solutions/*/*.ipynb")):
        secrets.update(pages.solution_secrets(nbformat.read(path, as_version=4), public))
    assert len(secrets) > 20  # the worked answers are many lines: the search has something to look for
    assert pages.leaks(built.classsite, sorted(secrets)) == []
    for name, text in _lesson_html(built.classsite).items():
        assert "Show solution" not in text and "NotImplementedError" in text, name
        assert "BEGIN SOLUTION" not in text, name
    assert "YOUR ANSWER HERE" in _lesson_html(built.classsite)["00_warmup"]


# ------------------------------------------------------------------------------------------------- links
class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("href", "src") and value:
                self.links.append(value)
            elif key in ("id", "name") and value:
                self.ids.add(value)


@functools.cache
def _parsed(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def site_pages(site: Path) -> list[Path]:
    """The built pages (not the theme's templates that Sphinx copies into ``_static``)."""
    return sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)


def broken_links(site: Path) -> list[str]:
    """Every internal href/src of every page that names a missing file, or an anchor its page lacks."""
    broken = []
    for page in site_pages(site):
        for link in _parsed(page).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("javascript:", "data:", "mailto:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {link} (no file)")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _parsed(target).ids:
                broken.append(f"{page.relative_to(site)}: {link} (no anchor)")
    return broken


def test_every_internal_link_resolves(built: Built) -> None:
    for site in (built.selfpaced, built.classsite):
        assert len(site_pages(site)) > 20
        assert broken_links(site) == []


def test_no_page_loads_from_the_network(built: Built) -> None:
    """Scripts, styles and images come from the site itself (links to papers are fine: they are not loaded)."""
    for site in (built.selfpaced, built.classsite):
        remote = sorted({f"{p.relative_to(site)}: {m}" for p in site_pages(site)
                         for m in re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"',
                                             p.read_text(encoding="utf-8"))
                         if "mathjax" not in m.lower() or _local_mathjax(site)})
        assert remote == []


def _local_mathjax(site: Path) -> bool:
    return (site / "_static" / "mathjax" / "MathJax.js").is_file()


# ------------------------------------------------------------------------------------------------- browser
@pytest.fixture(scope="module")
def served(built: Built) -> Iterator[str]:
    """The self-paced site on http://127.0.0.1:<port>/, as a static host would serve it."""
    handler = functools.partial(_QuietHandler, directory=str(built.selfpaced))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def _quiz_lesson(site: Path) -> str | None:
    """The first lesson whose page holds a jupyterquiz quiz (its script declares ``var questions…``)."""
    for name, text in _lesson_html(site).items():
        if re.search(r"<script[^>]*>\s*var questions", text):
            return name
    return None


def test_site_in_chromium(built: Built, served: str, tmp_path: Path) -> None:
    from support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, need_browser

    need_browser()
    from playwright.sync_api import sync_playwright

    shots = ARTIFACTS.parent / "site"
    shots.mkdir(parents=True, exist_ok=True)
    local_math = _local_mathjax(built.selfpaced)
    quiz = _quiz_lesson(built.selfpaced)
    remote: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1300, "height": 1000})
        try:
            browser.route("**/*", lambda route: (route.continue_() if route.request.url.startswith(served)
                                                 else (remote.append(route.request.url), route.abort())))
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                    if r.status >= 400 and "/_static/mathjax/fonts/" not in r.url else None)  # MathJax probes fonts
            check_home(page, served, shots)
            check_lesson(page, served, shots, local_math)
            check_api(page, served, shots)
            if quiz is not None:
                check_quiz(page, f"{served}/lessons/{quiz}.html", shots)
            assert errors == [], errors
        finally:
            browser.close()
    outside = [u for u in remote if "mathjax" not in u.lower() or local_math]
    assert outside == [], f"the site asked the network for {outside}"
    if quiz is None:
        pytest.skip("no lesson page holds a quiz yet (tlcourse.quiz / jupyterquiz): the quiz check did not run")


def check_home(page, served: str, shots: Path) -> None:  # noqa: ANN001 - a playwright Page
    """The home page: the course's title, the lessons in the navigation."""
    from playwright.sync_api import expect

    page.goto(f"{served}/index.html")
    expect(page.locator("h1").first).to_contain_text("transfer learning")
    expect(page.locator("nav a[href*='lessons/00_warmup']").first).to_be_attached()
    page.screenshot(path=str(shots / "home.png"))


def check_lesson(page, served: str, shots: Path, local_math: bool) -> None:  # noqa: ANN001
    """Lesson 01: an executed figure loads; a worked solution opens from its toggle; formulas are typeset."""
    from playwright.sync_api import expect

    page.goto(f"{served}/lessons/01_pretrained_models.html")
    figure = page.locator(".cell_output img").first
    expect(figure).to_be_visible()
    assert figure.evaluate("(img) => img.complete && img.naturalWidth > 0")
    toggle = page.locator("details.hide.above-input").first
    code = toggle.locator(".cell_input")
    expect(code).to_be_hidden()
    toggle.locator("summary").click()
    expect(code).to_be_visible()
    if local_math:
        page.wait_for_function("() => document.querySelectorAll('.MathJax, .MathJax_CHTML, mjx-container').length",
                               timeout=30_000)
    page.screenshot(path=str(shots / "lesson.png"))


def check_api(page, served: str, shots: Path) -> None:  # noqa: ANN001
    """The API reference: ``tlcourse.models.load_backbone`` documented."""
    from playwright.sync_api import expect

    page.goto(f"{served}/api/models.html")
    expect(page.locator("dt[id='tlcourse.models.load_backbone']")).to_be_visible()
    page.screenshot(path=str(shots / "api.png"))


def check_quiz(page, url: str, shots: Path) -> None:  # noqa: ANN001
    """A quiz renders, and an answer gets its feedback at once (the quiz's script ran on the static page)."""
    from playwright.sync_api import expect

    page.goto(url)
    quiz = page.locator(".Quiz").first
    expect(quiz).to_be_visible(timeout=15_000)
    quiz.scroll_into_view_if_needed()
    quiz.locator(".MCButton").first.click()
    feedback = quiz.locator(".Feedback.correct, .Feedback.incorrect").first
    expect(feedback).to_be_visible(timeout=5_000)
    assert feedback.inner_text().strip()
    page.screenshot(path=str(shots / "quiz.png"))
