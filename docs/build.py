"""Build the course website offline: execute the lessons (cached), write the pages, run Sphinx + MyST-NB.

    python docs/build.py --profile grading                 # the self-paced site → _build/html
    python docs/build.py --profile cpu --no-solutions      # the class site (no solutions) → _build/html-class

1. **Execute** each ``solutions/NN_name/NN_name.ipynb`` with nbclient in the chosen profile — only when its cache
   key changed: sha256 of the notebook, every ``tlcourse/**/*.py``, the students' lock, the profile name and
   this script's execution settings. Executed notebooks live in ``_build/.nbcache/<profile>/``.
2. **Pages** (``docs/pages.py``): the self-paced page folds the worked answers and strips the hidden tests; the
   class page is the student version from ``lessons/`` with the demo outputs. Written into a Sphinx source folder
   (``_build/src/<site>-<profile>``) together with ``docs/pages/*.md``, the course map and the teaching guide's
   exercise plan (``docs/coursemap.py``, generated from the notebooks), the API pages and the benchmark tables,
   only where they changed, so Sphinx rebuilds only what changed.
3. **Sphinx** (``docs/conf.py``, MyST-NB with execution off) writes the HTML; the built site is then searched
   for hidden tests (both sites) and worked solutions (the class site): any hit fails the build.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(ROOT))

import coursemap  # noqa: E402  (docs/coursemap.py, beside this script)
import pages  # noqa: E402  (docs/pages.py, beside this script)

PROFILES = ("grading", "cpu", "gpu")
#: bump when the way lessons are executed changes: every cached notebook is then re-run
EXECUTION_VERSION = "1"
#: the toolkit's public modules, one API page each (``tlcourse.grading`` is the instructors' life cycle)
API_MODULES = ("config", "device", "threads", "models", "freeze", "data", "cache", "pooling", "features", "activations", "trunk", "history", "train", "stats",
               "regularize", "adapt", "dense", "text", "viz", "record", "quiz", "launch", "grading")
API_INTRO = """# The `tlcourse` toolkit

The support package of the course: one module per job (registries of backbones and datasets, freezing, features,
training, adaptation, figures, records, grading). Generated from the docstrings, whose examples run in the test
suite; the map of the code is `ARCHITECTURE.md` in the repository.
"""
BENCHMARK_TABLES = ("RESULTS.md", "SPEEDUPS.md", "SEEDS.md", "TOOLKIT.md", "GRADING.md", "HUB.md", "LOAD.md")


@dataclass(frozen=True)
class Site:
    """What to build: the profile the lessons run in, with or without solutions, and where."""

    profile: str
    solutions: bool
    out: Path
    cache: Path
    work: Path  # Sphinx source and doctree folders
    cell_timeout: int = 1800
    hub: str | None = None  # a class's JupyterHub: each lesson page gets an nbgitpuller link to open it there
    class_repo: str | None = None  # ... cloning this class repository (tlcourse publish), at ``branch``
    branch: str = "main"
    colab: str | None = None  # the class copy on GitHub (tlcourse publish --colab): each lesson page opens it in Colab
    jobs: int = 0  # lessons executed at once (0: one per CPU this build may use, at most 4)

    @property
    def name(self) -> str:
        return f"{'self-paced' if self.solutions else 'class'}-{self.profile}"


def lesson_names() -> list[str]:
    """The lessons, in order: every ``solutions/NN_name/NN_name.ipynb``."""
    return sorted(p.parent.name for p in ROOT.glob("solutions/[0-9][0-9]_*/[0-9][0-9]_*.ipynb")
                  if p.stem == p.parent.name)


def cache_key(notebook: Path, profile: str, root: Path = ROOT) -> str:
    """sha256 of what an executed lesson depends on: its source, the toolkit, the lock, the profile.

    Example:
        >>> len(cache_key(ROOT / "solutions/00_warmup/00_warmup.ipynb", "grading"))
        64
    """
    digest = hashlib.sha256(f"profile={profile}\nexecution={EXECUTION_VERSION}\n".encode())
    inputs = [notebook, root / "requirements.txt", *sorted((root / "tlcourse").rglob("*.py"))]
    for path in inputs:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"(missing)")
    return digest.hexdigest()


def parallel_jobs(site: Site) -> int:
    """How many lessons run at once: ``site.jobs``, or one per CPU this build may use (affinity, quota), at most 4.

    Example:
        >>> parallel_jobs(Site("grading", True, ROOT, ROOT, ROOT, jobs=3))
        3
    """
    from tlcourse.threads import allowed_cpus

    return site.jobs if site.jobs > 0 else max(1, min(4, allowed_cpus()))


def kernel_env(profile: str, jobs: int = 1) -> dict[str, str]:
    """The kernel's environment: this checkout's ``tlcourse`` first, the profile, inline figures, no tqdm bars;
    with ``jobs`` kernels at once, each sizes its thread pools to its share of the CPUs (as the grader's workers).

    Example:
        >>> kernel_env("grading", jobs=1)["TLCOURSE_PROFILE"]
        'grading'
    """
    from tlcourse.threads import THREAD_VARS, allowed_cpus, explicit_threads

    env = dict(os.environ)
    for unset in ("NBGRADER_EXECUTION", "TLCOURSE_RESULTS"):  # the first forces the grading profile
        env.pop(unset, None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(TLCOURSE_PROFILE=profile, MPLBACKEND="module://matplotlib_inline.backend_inline",
               TQDM_DISABLE="1")  # progress bars are widgets: noise on a static page
    if jobs > 1:
        share = str(max(1, allowed_cpus() // jobs))
        env.update({var: explicit_threads().get(var, share) for var in THREAD_VARS})
    return env


def execute(notebook: Path, profile: str, cell_timeout: int, kernel_log: Path, jobs: int = 1) -> Any:
    """Run a lesson top to bottom in a scratch copy of its folder; return the executed notebook (the kernel's
    own messages go to ``kernel_log``)."""
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory(prefix=f"site-{notebook.stem}-") as tmp, open(kernel_log, "w") as log:
        work = Path(tmp) / notebook.parent.name
        shutil.copytree(notebook.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        nb = nbformat.read(work / notebook.name, as_version=4)
        client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(work)}})
        client.execute(env=kernel_env(profile, jobs), cwd=str(work), stdout=log, stderr=log)
    return nb


def executed(name: str, site: Site, log: Any = print, jobs: int = 1) -> Any:
    """The executed lesson, from the cache when its key still matches, else run now (one of ``jobs`` at once)
    and cached."""
    notebook = ROOT / "solutions" / name / f"{name}.ipynb"
    key = cache_key(notebook, site.profile)
    folder = site.cache / site.profile
    cached, stamp = folder / f"{name}.ipynb", folder / f"{name}.key"
    if cached.exists() and stamp.exists() and stamp.read_text().strip() == key:
        log(f"  {name}: cached ({key[:12]})")
        return nbformat.read(cached, as_version=4)
    log(f"  {name}: executing in the {site.profile} profile …")
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    nb = execute(notebook, site.profile, site.cell_timeout, folder / f"{name}.kernel.log", jobs)
    nbformat.write(nb, cached)
    stamp.write_text(key + "\n")
    log(f"  {name}: executed in {time.perf_counter() - started:.1f} s ({key[:12]})")
    return nb


def executed_all(site: Site, log: Any = print) -> dict[str, Any]:
    """Every executed lesson, by name: the stale ones run :func:`parallel_jobs` at a time."""
    jobs = parallel_jobs(site)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        runs = {name: pool.submit(executed, name, site, log, jobs) for name in lesson_names()}
        return {name: run.result() for name, run in runs.items()}


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it (Sphinx rebuilds a page when its file's time changes)."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _banner(name: str, site: Site) -> str:
    kind = "with the worked solutions folded" if site.solutions else "as students get it"
    return (f"```{{admonition}} On this page\n:class: tip\nThis lesson's notebook ({kind}), executed in the "
            f"**{site.profile}** profile: figures, tables and the checked claims (✓ held beyond noise, ≈ within "
            f"noise, ✗ did not hold) are from that run, so numbers differ from run to run and machine to machine. "
            f"Run it yourself: download "
            f"{{download}}`the exercise notebook <../notebooks/{name}.ipynb>` and follow the "
            f"[set-up](../index.md#set-up).{_hub_link(name, site)}{_colab_link(name, site)}\n```")


def _hub_link(name: str, site: Site) -> str:
    """A sentence with the nbgitpuller link that opens the lesson on the class's hub (none without a hub)."""
    if not (site.hub and site.class_repo):
        return ""
    from tlcourse.launch import gitpuller_url

    url = gitpuller_url(site.hub, site.class_repo, site.branch, f"lessons/{name}/{name}.ipynb")
    return f" Or [open it on your class's JupyterHub]({url}): one click logs you in and opens this lesson."


def _colab_link(name: str, site: Site) -> str:
    """A sentence with the link that opens the lesson in Google Colab (none without ``site.colab``)."""
    if not site.colab:
        return ""
    from tlcourse.launch import colab_url

    url = colab_url(site.colab, site.branch, f"lessons/{name}/{name}.ipynb")
    return f" Or [open it in Google Colab]({url}): nothing to install, its first cell sets the course up there."


def lesson_pages(site: Site, src: Path, log: Any = print) -> list[str]:
    """Write one page per lesson (and the student notebook to download); return the secrets the site must not
    quote: hidden tests always, worked solutions on the class site."""
    from tlcourse.grading import hidden_secrets_of
    from tlcourse.grading.hidden import distinctive

    secrets: set[str] = set()
    public = "\n".join([*(p.read_text(encoding="utf-8") for p in sorted((ROOT / "tlcourse").rglob("*.py"))),
                        *(c.source for p in sorted(ROOT.glob("lessons/*/*.ipynb"))
                          for c in nbformat.read(p, as_version=4).cells)])
    for name, run in executed_all(site, log).items():
        solution = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
        student_path = ROOT / "lessons" / name / f"{name}.ipynb"
        student = nbformat.read(student_path, as_version=4)
        page = (pages.solutions_page(run, _banner(name, site)) if site.solutions
                else pages.class_page(run, student, _banner(name, site)))
        write_if_changed(src / "lessons" / f"{name}.ipynb", nbformat.writes(page) + "\n")
        write_if_changed(src / "notebooks" / f"{name}.ipynb", student_path.read_text(encoding="utf-8"))
        secrets.update(distinctive(hidden_secrets_of(solution)))
        if not site.solutions:
            secrets.update(pages.solution_secrets(solution, public))
    return sorted(secrets)


def static_pages(src: Path) -> None:
    """The hand-written pages (``docs/pages/``, their links to lessons turned into the site's), the generated course
    map and exercise plan (``docs/coursemap.py``), one API page per module, the benchmark tables."""
    anchors = coursemap.lesson_anchors()
    for page in sorted((DOCS / "pages").rglob("*")):
        target = src / page.relative_to(DOCS / "pages")
        if page.is_file() and page.suffix in (".md", ".txt", ".css", ".rst"):
            text = page.read_text(encoding="utf-8")
            write_if_changed(target, coursemap.site_links(text, anchors) if page.suffix == ".md" else text)
        elif page.is_file() and not (target.exists() and target.read_bytes() == page.read_bytes()):
            target.parent.mkdir(parents=True, exist_ok=True)  # figures (PNG) as they are
            target.write_bytes(page.read_bytes())
    write_if_changed(src / "api" / "index.md", API_INTRO + "\n```{toctree}\n:maxdepth: 1\n\n"
                     + "".join(f"{module}\n" for module in API_MODULES) + "```\n")
    for module in API_MODULES:
        write_if_changed(src / "api" / f"{module}.md",
                         f"# `tlcourse.{module}`\n\n```{{eval-rst}}\n.. automodule:: tlcourse.{module}\n```\n")
    for table in BENCHMARK_TABLES:
        if (ROOT / "benchmarks" / table).exists():
            write_if_changed(src / "benchmarks" / table, (ROOT / "benchmarks" / table).read_text(encoding="utf-8"))
    coursemap.write(src)


def sphinx(site: Site, src: Path) -> None:
    """Run sphinx-build (``docs/conf.py``) from ``src`` into ``site.out``; the toolkit imported from this checkout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
               TLCOURSE_SITE_PROFILE=site.profile, TLCOURSE_SITE_SOLUTIONS="1" if site.solutions else "0")
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", "-c", str(DOCS),
               "-d", str(site.work / "doctrees" / site.name), "-t", "solutions" if site.solutions else "classsite",
               str(src), str(site.out)]
    subprocess.run(command, check=True, env=env, cwd=ROOT)


def _fresh_out(site: Site) -> None:
    """Empty the output folder of an earlier build (no stale page may survive, e.g. a solution page in a class
    site); refuse a non-empty folder that no build of this script wrote."""
    stamp = site.out / ".tlcourse-site"
    if site.out.exists() and any(site.out.iterdir()):
        if not stamp.exists():
            raise SystemExit(f"{site.out} is not empty and was not written by docs/build.py: choose another --out")
        shutil.rmtree(site.out)
    site.out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(site.name + "\n")


def build(site: Site, log: Any = print) -> Path:
    """Build one site; return the folder that holds ``index.html``. Raises when the site quotes a secret."""
    started = time.perf_counter()
    src = site.work / "src" / site.name
    log(f"[1/3] lessons ({site.profile} profile; cache {site.cache / site.profile})")
    secrets = lesson_pages(site, src, log)
    static_pages(src)
    log(f"[2/3] sphinx → {site.out}")
    _fresh_out(site)
    sphinx(site, src)
    log("[3/3] checking that no hidden test" + ("" if site.solutions else " or worked solution") + " leaked")
    found = pages.leaks(site.out, secrets)
    if found:
        raise SystemExit("the site quotes what it must not (fix the page code, then rebuild):\n  "
                         + "\n  ".join(found[:20]))
    log(f"site built in {time.perf_counter() - started:.0f} s: {site.out / 'index.html'}")
    return site.out


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python docs/build.py [--profile P] [--no-solutions] [--out DIR] [--cache DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=PROFILES, default="grading", help="the lessons' run profile")
    parser.add_argument("--no-solutions", dest="solutions", action="store_false",
                        help="the class site: student notebooks, no worked solutions")
    parser.add_argument("--out", type=Path, help="default _build/html (class site: _build/html-class)")
    parser.add_argument("--cache", type=Path, default=ROOT / "_build" / ".nbcache", help="executed notebooks")
    parser.add_argument("--work", type=Path, default=ROOT / "_build", help="Sphinx source and doctree folders")
    parser.add_argument("--cell-timeout", type=int, default=1800, help="seconds one cell may run")
    parser.add_argument("--jobs", type=int, default=0, help="lessons executed at once (default: one per CPU, ≤ 4)")
    parser.add_argument("--hub", default=None, help="a class JupyterHub's URL: lesson pages link to it (nbgitpuller)")
    parser.add_argument("--class-repo", default=None, help="the class repository the hub links clone")
    parser.add_argument("--colab", default=None, metavar="GITHUB_REPO",
                        help="the class copy on GitHub (tlcourse publish --colab): lesson pages open it in Colab")
    parser.add_argument("--branch", default="main", help="the class repository's branch")
    args = parser.parse_args(argv)
    if bool(args.hub) != bool(args.class_repo):
        parser.error("--hub and --class-repo go together")
    from tlcourse.launch import colab_url, gitpuller_url

    try:  # a bad URL is an error now, not in the middle of the build
        if args.hub:
            gitpuller_url(args.hub, args.class_repo, args.branch, "lessons")
        if args.colab:
            colab_url(args.colab, args.branch, "lessons")
    except ValueError as exc:
        parser.error(str(exc))
    out = args.out or ROOT / "_build" / ("html" if args.solutions else "html-class")
    build(Site(args.profile, args.solutions, out.resolve(), args.cache.resolve(), args.work.resolve(),
               args.cell_timeout, args.hub, args.class_repo, args.branch, args.colab, args.jobs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
