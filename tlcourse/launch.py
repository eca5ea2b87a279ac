"""One-click lessons: nbgitpuller links that open a lesson on a JupyterHub, for an LMS page or the website.

A link (nbgitpuller's ``/hub/user-redirect/git-pull``) logs the student in, clones the class repository into their
home on the first click — or merges the course's updates on later clicks without overwriting their work — and
opens the lesson in JupyterLab (https://nbgitpuller.readthedocs.io/en/latest/link.html). The repository is the
class copy students may see (``tlcourse publish``), never the one with solutions.

Example:
    >>> url = gitpuller_url("https://hub.example.edu", "https://git.example.edu/class/tlcourse.git", "main",
    ...                     "lessons/00_warmup/00_warmup.ipynb", target="tlcourse")
    >>> url.split("?")[0]
    'https://hub.example.edu/hub/user-redirect/git-pull'
    >>> gitpuller_url("https://uni.edu/jupyter/hub/", "https://g.edu/r", "main", "x.ipynb").split("?")[0]
    'https://uni.edu/jupyter/hub/user-redirect/git-pull'
    >>> "urlpath=lab%2Ftree%2Ftlcourse%2Flessons%2F00_warmup%2F00_warmup.ipynb" in url
    True
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

__all__ = ["gitpuller_url", "lesson_links", "FORMATS", "write_links"]


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


def lesson_links(hub: str, repo: str, branch: str = "main", target: str | None = None,
                 root: str | os.PathLike[str] | None = None) -> list[tuple[str, str]]:
    """(lesson, link) for every lesson under ``lessons/`` of the course ``root`` (default: this checkout).

    Example:
        >>> links = lesson_links("https://hub.example.edu", "https://git.example.edu/class/tlcourse")
        >>> links[0][0]
        '00_warmup'
    """
    base = Path(root) if root else Path(__file__).resolve().parents[1]
    lessons = sorted(p.parent.name for p in (base / "lessons").glob("[0-9][0-9]_*/*.ipynb") if p.stem == p.parent.name)
    if not lessons:
        raise ValueError(f"no lessons under {base / 'lessons'}")
    return [(name, gitpuller_url(hub, repo, branch, f"lessons/{name}/{name}.ipynb", target)) for name in lessons]


def _markdown(links: Sequence[tuple[str, str]]) -> str:
    return "| lesson | open on the hub |\n|---|---|\n" + "".join(f"| {n} | [open {n}]({u}) |\n" for n, u in links)


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
