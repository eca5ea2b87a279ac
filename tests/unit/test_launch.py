"""One-click lessons (tlcourse.launch): hub and Colab links, and a class copy that installs itself in Colab.

The hub link is opened for real on a JupyterHub in ``tests/deploy/test_hub.py``. Colab itself cannot be reached
from here; what it would run can: the published setup cell in a real kernel, once as on a laptop (nothing
happens) and once with ``google.colab`` imported as Colab does, pip told to dry-run against the class copy as a
git repository — the same ``%pip`` line, the repository URL swapped for a local one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nbformat
import pytest

from tlcourse.cli import main
from tlcourse.launch import colab_setup_cell, colab_url, gitpuller_url, lesson_links, pip_requirement

REPO = Path(__file__).resolve().parents[2]
CLASS = "https://github.com/uni/tl-class"


@pytest.mark.parametrize("bad", ["https://gitlab.com/uni/x", "http://github.com/uni/x", "https://github.com/uni",
                                 "https://github.com/u_ni/x", "https://github.com/uni/..", "https://github.com/uni/x/y",
                                 "https://github.com/uni/x?a=1", "github.com/uni/x", "https://github.com/uni/x y"])
def test_colab_links_only_for_github_repositories(bad: str) -> None:
    with pytest.raises(ValueError, match="GitHub"):
        colab_url(bad, "main", "lessons/00_warmup/00_warmup.ipynb")
    with pytest.raises(ValueError):
        colab_setup_cell(bad)


@pytest.mark.parametrize("branch", ["", "..", "a..b", "-x", "/main", "main branch", 'main"', "main;rm"])
def test_branch_names_are_checked(branch: str) -> None:
    with pytest.raises(ValueError, match="branch"):
        colab_url(CLASS, branch, "x.ipynb")
    with pytest.raises(ValueError, match="branch"):
        pip_requirement(CLASS, branch)


def test_nothing_from_the_repository_url_escapes_the_pip_line() -> None:
    """The setup cell runs ``%pip install "<requirement>"`` in the student's kernel: quotes, spaces or a second
    URL in the repository could add arguments to pip."""
    for bad in ['https://github.com/uni/x" --index-url https://evil.example', "https://evil.example/x @ y",
                "https://git.example/a'b", "https://user@git.example/x", "https://git.example/x#egg=other"]:
        with pytest.raises(ValueError):
            pip_requirement(bad, "main")
    assert colab_url(CLASS + ".git", "release/2026", "lessons/a b.ipynb") == (
        "https://colab.research.google.com/github/uni/tl-class/blob/release/2026/lessons/a%20b.ipynb")
    assert colab_setup_cell(CLASS).endswith(f'%pip install --quiet "tlcourse @ git+{CLASS}@main"')
    # what Colab opens is what pip installs, however the repository was written; a tag pins the installed code
    for written in (CLASS + ".git", CLASS + "/"):
        assert colab_setup_cell(written, "v2026.1").endswith(f'"tlcourse @ git+{CLASS}@v2026.1"')
    odd = "https://github.com/uni/x.git.git"
    assert "/github/uni/x.git/blob/" in colab_url(odd, "main", "a.ipynb")
    assert colab_setup_cell(odd).endswith('"tlcourse @ git+https://github.com/uni/x.git@main"')


def test_links_cli_for_the_hub_or_colab(capsys: pytest.CaptureFixture[str]) -> None:
    lessons = sorted(p.parent.name for p in REPO.glob("lessons/[0-9][0-9]_*/[0-9][0-9]_*.ipynb"))
    assert main(["links", "--colab", "--repo", CLASS, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == lessons
    assert all(r.split(",")[1] == colab_url(CLASS, "main", f"lessons/{n}/{n}.ipynb") for r, n in zip(rows, lessons, strict=True))
    assert main(["links", "--colab", "--repo", "https://gitlab.com/uni/x"]) == 2
    assert "GitHub" in capsys.readouterr().err
    assert main(["links", "--colab", "--repo", CLASS, "--target", "x"]) == 2, "--target is for hub links"
    assert "target" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one place to open the lessons, not both
        main(["links", "--colab", "--hub", "https://hub.example.edu", "--repo", CLASS])
    hub = lesson_links("https://hub.example.edu", CLASS)
    assert hub[0][1] == gitpuller_url("https://hub.example.edu", CLASS, "main", f"lessons/{lessons[0]}/"
                                      f"{lessons[0]}.ipynb")
    with pytest.raises(ValueError, match="unknown kind"):
        lesson_links(None, CLASS, kind="binder")


@pytest.fixture(scope="module")
def colab_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tlcourse publish --colab``, committed as the class repository would be."""
    out = tmp_path_factory.mktemp("colab") / "class"
    assert main(["publish", str(out), "--colab", CLASS]) == 0
    git = ["git", "-C", str(out), "-c", "user.name=course", "-c", "user.email=course@example.invalid"]
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "class copy"]):
        subprocess.run([*git, *cmd], check=True, capture_output=True)
    return out


def test_publish_for_colab_puts_the_setup_cell_first_and_nothing_else(colab_copy: Path) -> None:
    lessons = sorted(REPO.glob("lessons/[0-9][0-9]_*/[0-9][0-9]_*.ipynb"))
    assert lessons
    for lesson in lessons:
        ours = nbformat.read(lesson, as_version=4)
        theirs = nbformat.read(colab_copy / lesson.relative_to(REPO), as_version=4)
        setup = next(c for c in theirs.cells if c.cell_type == "code")
        assert setup.source == colab_setup_cell(CLASS) and setup.id == "colab-setup", lesson.name
        rest = [c for c in theirs.cells if c is not setup]
        assert [(c.cell_type, c.source, c.metadata) for c in rest] == [
            (c.cell_type, c.source, c.metadata) for c in ours.cells], f"{lesson.name}: only the setup cell is new"
    readme = (colab_copy / "README.md").read_text(encoding="utf-8")
    for lesson in lessons:
        link = colab_url(CLASS, "main", lesson.relative_to(REPO).as_posix())
        assert link in readme and (colab_copy / link.split("/blob/main/")[1]).is_file()


def test_publish_refuses_a_repository_colab_cannot_open(tmp_path: Path) -> None:
    assert main(["publish", str(tmp_path / "class"), "--colab", "https://gitlab.com/uni/x"]) == 2
    assert not (tmp_path / "class").exists(), "refused before anything was written"


def _run_cell(source: str, prelude: str, env: dict[str, str]) -> str:
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(prelude), nbformat.v4.new_code_cell(source)])
    NotebookClient(nb, kernel_name="python3", timeout=300).execute(env=env)
    return "".join(o.get("text", "") + json.dumps(o.get("data", "")) for o in nb.cells[1].outputs)


@pytest.mark.slow
def test_the_setup_cell_installs_only_on_colab(colab_copy: Path, tmp_path: Path) -> None:
    import os

    lesson = nbformat.read(colab_copy / "lessons" / "00_warmup" / "00_warmup.ipynb", as_version=4)
    cell = next(c for c in lesson.cells if c.cell_type == "code").source
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    assert _run_cell(cell, "", env) == "", "on a laptop, a hub or the grader the cell does nothing"

    stub = tmp_path / "stub" / "google" / "colab"  # Colab imports google.colab before any cell runs
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    local = cell.replace(f"git+{CLASS}@main", f"git+file://localhost{colab_copy}@main")
    assert local != cell
    colab_env = dict(env, PYTHONPATH=str(tmp_path / "stub"), PIP_DRY_RUN="1", PIP_NO_DEPS="1", PIP_NO_INDEX="1",
                     PIP_NO_BUILD_ISOLATION="0")  # pip's spelling of "no isolation" (nothing to download)
    printed = _run_cell(local.replace("--quiet ", ""), "import google.colab", colab_env)
    assert "Would install tlcourse-" in printed, printed[-3000:]
