"""A student's view: JupyterLab on 127.0.0.1, driven by Debian's Chromium through Playwright.

Opens the warm-up lesson (answers filled in, as a student who solved it would have it), runs every cell, and
checks: no cell raised, the ipywidgets slider rendered and reacts, nbgrader's Validate button is in the toolbar.
A screenshot lands in ``test-artifacts/browser/`` (git-ignored). Chromium comes from apt (``chromium``), never from
``playwright install``. Without it the test is skipped, unless ``TLCOURSE_REQUIRE_BROWSER=1`` (CI) makes it fail.
"""

from __future__ import annotations

import csv
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, need_browser, running_lab
from support.course import WARMUP, make_course_root, solved

RUN_TIMEOUT_MS = 240_000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab serving a course root that holds the solved warm-up lesson; yields the notebook's URL."""
    need_browser()
    base = tmp_path_factory.mktemp("lab")
    root = make_course_root(base / "course")
    (root / "lessons").unlink()  # a private copy: running cells must not touch the repository
    lesson = root / "lessons" / WARMUP / f"{WARMUP}.ipynb"
    lesson.parent.mkdir(parents=True)
    nbformat.write(solved(WARMUP), lesson)
    (base / "lab-settings").mkdir()  # no user settings: what a student sees is the course's overrides (tlcourse.lab)
    env = {"TLCOURSE_PROFILE": "grading", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "JUPYTERLAB_SETTINGS_DIR": str(base / "lab-settings"), "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces")}
    with running_lab(root, base, env) as (base_url, token):
        yield f"{base_url}/lab/tree/lessons/{WARMUP}/{WARMUP}.ipynb?token={token}"


_OUTPUT_TYPES = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.model.cells;
  const found = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    for (let j = 0; j < cell.outputs.length; j++) {
      const out = cell.outputs.get(j).toJSON();
      found.push({cell: i, type: out.output_type, ename: out.ename || '', count: cell.executionCount});
    }
    if (cell.outputs.length === 0) found.push({cell: i, type: 'none', ename: '', count: cell.executionCount});
  }
  return found;
}"""


def test_course_lab_settings_are_installed() -> None:
    """`make setup` (`tlcourse lab-settings`) wrote the overrides JupyterLab reads from this environment."""
    import json

    from tlcourse.lab import LAB_OVERRIDES, overrides_path

    path = overrides_path(sys.prefix)
    assert path.is_file(), f"{path} is missing: run `tlcourse lab-settings` (make setup does)"
    found = json.loads(path.read_text())
    assert all(found.get(plugin, {}).get(k) == v for plugin, d in LAB_OVERRIDES.items() for k, v in d.items())


def test_lesson_runs_in_jupyterlab(lab: str, tmp_path: Path) -> None:
    """The lesson runs, its widget reacts, and the first minutes are calm: no news prompt over the lesson, and no
    request leaves the machine (a quiz, MathJax or a font fetched from a CDN fails offline)."""
    from urllib.parse import urlsplit

    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{WARMUP}.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            remote: list[str] = []
            browser.on("request", lambda r: remote.append(r.url) if urlsplit(r.url).scheme in ("http", "https")
                       and urlsplit(r.url).hostname not in ("127.0.0.1", "localhost") else None)
            page.goto(lab, wait_until="domcontentloaded", timeout=120_000)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                                   timeout=120_000)
            expect(page.locator(".validate-button").first).to_be_visible(timeout=60_000)  # nbgrader's toolbar

            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(
                f"() => {{ const r = ({_OUTPUT_TYPES})(); return r.length > 0 && r.every(o => o.count !== null) "
                "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'; }",
                timeout=RUN_TIMEOUT_MS, polling=1000)
            outputs = page.evaluate(_OUTPUT_TYPES)
            errors = [o for o in outputs if o["type"] == "error"]
            assert not errors, f"cells raised: {errors}"

            slider = page.locator(".widget-slider").first  # the IntSlider of section 3
            expect(slider).to_be_visible(timeout=60_000)
            table = page.locator(".widget-output table").first
            expect(table).to_be_visible(timeout=60_000)
            before = table.inner_text()
            slider.locator(".noUi-handle, .ui-slider-handle, [role=slider]").first.focus()
            page.keyboard.press("ArrowRight")
            expect(table).not_to_have_text(before, timeout=30_000)  # the widget's kernel callback ran

            page.screenshot(path=str(shot), full_page=False)
            assert page.get_by_text(NEWS_PROMPT).count() == 0, "the news prompt covers the lesson"
        finally:
            browser.close()
    assert not remote, f"requests that fail offline: {sorted(set(remote))[:5]}"
    assert shot.stat().st_size > 10_000, "the screenshot is empty"
    shutil.copyfile(shot, tmp_path / shot.name)


NEWS_PROMPT = "official Jupyter news"


def test_the_news_check_sees_the_prompt_without_the_course_overrides(tmp_path: Path) -> None:
    """The calm-start check above can fail: the same JupyterLab, with an empty settings folder instead of the
    course's overrides, shows the news prompt that the check looks for."""
    from playwright.sync_api import sync_playwright

    need_browser()
    root, empty = tmp_path / "root", tmp_path / "no-overrides"
    root.mkdir()
    empty.mkdir()
    (tmp_path / "lab-settings").mkdir()
    env = {"JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    with running_lab(root, tmp_path, env, (f"--LabApp.app_settings_dir={empty}",)) as (base_url, token), \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{base_url}/lab?token={token}", wait_until="domcontentloaded", timeout=120_000)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=120_000)
            page.get_by_text(NEWS_PROMPT).first.wait_for(timeout=60_000)  # raises if it never shows
        finally:
            browser.close()


# ------------------------------------------------------------------------------------------- the formgrader
def test_manual_grade_in_the_formgrader_reaches_the_export(tmp_path: Path) -> None:
    """An instructor opens a graded submission in nbgrader's formgrader, reads the written answer, gives 1.5 of
    2 points; the gradebook and `tlcourse export` show them."""
    from nbgrader.api import Gradebook
    from playwright.sync_api import expect, sync_playwright
    from support.course import read_csv, run_tlcourse

    from tlcourse.grading.sandbox import sandbox_problem

    need_browser()
    root = make_course_root(tmp_path / "course")
    subs = tmp_path / "subs" / "alice"
    subs.mkdir(parents=True)
    nbformat.write(solved(WARMUP), subs / f"{WARMUP}.ipynb")
    graded = run_tlcourse("grade", str(tmp_path / "subs"), "--assignment", WARMUP, "--out", str(tmp_path / "g.csv"),
                          "--root", str(root), *(["--no-sandbox"] if sandbox_problem() else []))
    assert graded.returncode == 0, graded.stdout + graded.stderr
    db = f"sqlite:///{root / 'course' / 'gradebook.db'}"
    with Gradebook(db) as gb:
        notebook_id = gb.find_submission_notebook(WARMUP, WARMUP, "alice").id
    answer = next(c.source for c in solved(WARMUP).cells
                  if c.metadata.get("nbgrader", {}).get("grade_id") == "ex4_why_freeze_first")
    with running_lab(root, tmp_path, {"TLCOURSE_PROFILE": "grading"}) as (base_url, token), sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()  # log in through the lab (sets the cookie the formgrader's API needs)
            page.goto(f"{base_url}/lab?token={token}", wait_until="domcontentloaded", timeout=120_000)
            page.wait_for_function("() => window.jupyterapp !== undefined || document.readyState === 'complete'",
                                   timeout=120_000)
            page.goto(f"{base_url}/formgrader/submissions/{notebook_id}/", wait_until="domcontentloaded",
                      timeout=120_000)
            expect(page.get_by_text(answer.split(".")[0][:40]).first).to_be_visible(timeout=60_000)
            score = page.locator("input#ex4_why_freeze_first")
            expect(score).to_be_visible(timeout=60_000)
            score.fill("1.5")
            score.press("Tab")  # "change" saves the grade through the formgrader's API
            expect(page.locator(".score-saved").first).to_be_attached(timeout=30_000)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "formgrader.png"))
            deadline = time.monotonic() + 30
            while True:
                with Gradebook(db) as gb:
                    manual = gb.find_grade("ex4_why_freeze_first", WARMUP, WARMUP, "alice").manual_score
                if manual is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        finally:
            browser.close()
    assert manual == 1.5, "the formgrader did not store the manual grade"
    out = tmp_path / "export.csv"
    exported = run_tlcourse("export", "--lms", "csv", "--out", str(out), "--root", str(root))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    with open(out, newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["student_id"] == "alice")
    assert (row["score"], row["max_score"]) == ("7.5", "8"), row
    assert read_csv(tmp_path / "g.csv")[1]["alice"]["needs_manual_grade"] == "yes"
