"""Several nbgrader courses on one hub: which LMS course is which nbgrader course, the hub groups that tell
nbgrader who is in which, and the exchange folders made for them.

nbgrader's ``JupyterHubAuthPlugin`` reads a user's courses from their JupyterHub groups: ``nbgrader-<course>``
for students, ``formgrade-<course>`` for instructors and graders (nbgrader's ``nbgrader/auth/jupyterhub.py``). The
hub's LTI login (:mod:`tlcourse.hublti`) puts each user in the groups of every course they launched from, with the
role of their latest launch from each LMS course; :func:`course_groups` is that rule. The LMS course (the launch's *context*) maps
to an nbgrader course id through :func:`parse_courses` (``TLCOURSE_LTI_CONTEXTS="8841=ml101,9012=ml202"``).

nbgrader makes a course's exchange folder on the instructor's first release, in a root every user may write: a
student who makes ``<root>/<course>`` first would own it, and with ``groupshared`` nbgrader would release into it
without a word. :func:`prepare_exchange` makes every course's folders beforehand, owned by root and the
instructors' group (nbgrader's ``groupshared`` layout), the root and the students' inbound sticky (nobody renames
a course folder away or removes another's submission), the inbound writable but not readable; it refuses a course
folder someone else made, or a link, and never follows one. :func:`check_exchange` is the hub's start-up check
that they are still so. ``deploy/hub/setup.sh`` runs :func:`prepare_exchange` as ``python -m tlcourse.hubcourses``.

This keeps students out of each other's work and the courses' folders; it does not separate the courses' staff
(one instructors' group, hub admins) — INSTRUCTORS.md, "Several courses on one hub".

Example:
    >>> parse_courses("8841=ml101, 9012")
    {'8841': 'ml101', '9012': 'tlcourse'}
    >>> course_groups([("ml101", "student"), ("ml202", "instructor")])
    ['formgrade-ml202', 'nbgrader-ml101']
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["COURSE_ID", "DEFAULT_COURSE", "ROLE_GROUPS", "check_exchange", "course_groups", "parse_course_ids",
           "parse_courses", "prepare_exchange"]

#: An nbgrader course id: a folder in the exchange and part of a hub group name.
COURSE_ID = re.compile(r"[a-z][a-z0-9_-]{0,39}")
DEFAULT_COURSE = "tlcourse"

#: role -> the hub group nbgrader's JupyterHubAuthPlugin reads for it
ROLE_GROUPS = {"student": "nbgrader-{}", "instructor": "formgrade-{}"}

#: the exchange root: everyone writes (nbgrader), nobody renames or removes another's entry
ROOT_MODE = stat.S_ISVTX | 0o777

#: the exchange's folders under ``<root>/<course>`` and their modes, as nbgrader's groupshared layout makes them;
#: the inbound also sticky (files there are only ever added)
_SETGID = stat.S_ISGID
COURSE_FOLDERS = {"": _SETGID | 0o775, "outbound": _SETGID | 0o775,
                  "inbound": _SETGID | stat.S_ISVTX | 0o773, "feedback": _SETGID | 0o771}


def _course_id(text: str) -> str:
    if not COURSE_ID.fullmatch(text):
        raise ValueError(f"course id {text!r}: use lower-case letters, digits, '_' and '-' (a letter first, "
                         "at most 40)")
    return text


def parse_course_ids(text: str) -> list[str]:
    """``"ml101, ml202"`` -> the course ids, each checked (``TLCOURSE_HUB_COURSES``).

    Example:
        >>> parse_course_ids(" ml101 ,ml202,")
        ['ml101', 'ml202']
    """
    return [_course_id(part.strip()) for part in text.split(",") if part.strip()]


def parse_courses(text: str, default: str = DEFAULT_COURSE) -> dict[str, str]:
    """``"ctx=course, ctx2"`` -> {LMS context id: nbgrader course id}; a bare context is ``default``'s.

    Example:
        >>> parse_courses("8841=ml101, 9012", default="ml202")
        {'8841': 'ml101', '9012': 'ml202'}
    """
    courses: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        context, _, course = item.partition("=")
        if not context.strip():
            raise ValueError(f"{item!r}: an LMS course id is missing before '='")
        courses[context.strip()] = _course_id(course.strip() or default)
    return courses


def course_groups(roles: Iterable[tuple[str, str]]) -> list[str]:
    """The hub groups of a user with ``roles``: (course id, ``student`` | ``instructor``) pairs, one per LMS
    course they launched from (two LMS sections of one course may give both groups).

    Example:
        >>> course_groups([("ml101", "instructor"), ("ml101", "student")])
        ['formgrade-ml101', 'nbgrader-ml101']
    """
    return sorted({ROLE_GROUPS[role].format(_course_id(course)) for course, role in roles})


def _prepare(path: Path, mode: int, gid: int) -> None:
    """Make ``path`` (or take it as it is) and set its group and mode through a descriptor that refuses links."""
    with contextlib.suppress(FileExistsError):
        path.mkdir()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        raise ValueError(f"{path} is not a folder (a link or a file): move it away and run again") from None
    try:
        owner = os.fstat(fd).st_uid
        if owner != os.geteuid():
            raise ValueError(f"{path} belongs to uid {owner}, not to whoever prepares the exchange (a student may "
                             "have made it first): move it away and run again")
        os.fchown(fd, -1, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def prepare_exchange(root: str | os.PathLike[str], courses: Iterable[str], group: str) -> list[Path]:
    """Make ``root`` (nbgrader wants it 0777) and each course's folders, group ``group``; the folders made.

    Example:
        >>> import grp, os, stat, tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> made = prepare_exchange(root, ["ml101"], grp.getgrgid(os.getegid()).gr_name)
        >>> oct(stat.S_IMODE((root / "ml101" / "inbound").stat().st_mode))
        '0o3773'
    """
    root, gid = Path(root), grp.getgrnam(group).gr_gid
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, ROOT_MODE)  # nbgrader checks only the 0777 part; the sticky bit keeps course folders in place
    made = []
    for course in map(_course_id, courses):
        for name, mode in COURSE_FOLDERS.items():
            _prepare(root / course / name, mode, gid)
            made.append(root / course / name)
    return made


def check_exchange(root: str | os.PathLike[str], courses: Iterable[str]) -> None:
    """Refuse to serve ``courses`` unless each one's folders are as :func:`prepare_exchange` left them: real
    folders, not links, owned by root (or whoever runs the check), with the modes of :data:`COURSE_FOLDERS`, in a
    sticky root.

    Example:
        >>> check_exchange("/nonexistent", ["ml101"])
        Traceback (most recent call last):
        ...
        ValueError: the exchange /nonexistent is not prepared: run deploy/hub/setup.sh with TLCOURSE_HUB_COURSES
    """
    root = Path(root)
    if not root.is_dir() or root.is_symlink() or stat.S_IMODE(root.lstat().st_mode) != ROOT_MODE:
        raise ValueError(f"the exchange {root} is not prepared: run deploy/hub/setup.sh with TLCOURSE_HUB_COURSES")
    for course in map(_course_id, courses):
        for name, mode in COURSE_FOLDERS.items():
            info = (root / course / name).lstat() if (root / course / name).is_dir() else None
            if info is None or not stat.S_ISDIR(info.st_mode) or info.st_uid not in (0, os.geteuid()) or \
                    stat.S_IMODE(info.st_mode) != mode:
                raise ValueError(f"{root / course / name} is missing or not as setup.sh made it (a link, another "
                                 "owner or another mode): run deploy/hub/setup.sh with TLCOURSE_HUB_COURSES")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m tlcourse.hubcourses ROOT GROUP COURSE…``: :func:`prepare_exchange`, printing each folder (what
    ``deploy/hub/setup.sh`` runs as root)."""
    parser = argparse.ArgumentParser(prog="python -m tlcourse.hubcourses",
                                     description="make the nbgrader exchange folders of the hub's courses")
    parser.add_argument("root", help="the exchange root (TLCOURSE_EXCHANGE_ROOT)")
    parser.add_argument("group", help="the instructors' Unix group")
    parser.add_argument("courses", nargs="+", help="nbgrader course ids")
    args = parser.parse_args(argv)
    for path in prepare_exchange(args.root, args.courses, args.group):
        print(path)


if __name__ == "__main__":
    main()
