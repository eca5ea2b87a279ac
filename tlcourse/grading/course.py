"""The course on disk: its root, nbgrader's configuration, the assignments and their source notebooks."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["CourseError", "SAFE_ID", "is_safe_id", "find_course_root", "load_nbgrader_config", "list_assignments"]

ASSIGNMENT_PATTERN = re.compile(r"^\d{2}_[A-Za-z0-9_]+$")


#: A student id becomes a folder name in the course: a letter or digit, then up to 63 of letters, digits, ``._@+-``.
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


def is_safe_id(student_id: str) -> bool:
    """Whether ``student_id`` may name a student (and so a folder): the whole of it matches :data:`SAFE_ID` (no
    trailing newline slipping past a ``$``), and never ``.`` or ``..``. The one check of every id the course
    reads: submissions, LMS downloads, rosters, extensions.

    Example:
        >>> [is_safe_id(s) for s in ("jane", "j.doe@x.org", "S1001", "..", "=HYPERLINK(1)", "a/b", "-1", "jane\\n")]
        [True, True, True, False, False, False, False, False]
    """
    return student_id not in (".", "..") and SAFE_ID.fullmatch(student_id) is not None


class CourseError(RuntimeError):
    """A problem with the course set-up or the command's input; the message says what to do."""


def find_course_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The course root: the nearest folder, from ``start`` (default: the current one) up, with ``nbgrader_config.py``.

    Falls back to the checkout this package lives in.

    Example:
        >>> (find_course_root() / "nbgrader_config.py").is_file()
        True
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file():
            return folder
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "nbgrader_config.py").is_file():
        return checkout
    raise CourseError(f"no nbgrader_config.py in {here} or above it; run the command in the course folder or "
                      "pass --root")


def load_nbgrader_config(root: str | os.PathLike[str] | None = None) -> Any:
    """nbgrader's configuration (a traitlets ``Config``) as ``nbgrader_config.py`` in the course root sets it.

    The feedback filter :class:`HideHiddenTests` is added when the file forgot it.

    Example:
        >>> load_nbgrader_config().CourseDirectory.source_directory
        'solutions'
    """
    from traitlets.config.loader import PyFileConfigLoader

    folder = find_course_root(root) if root is None else Path(root).resolve()
    if not (folder / "nbgrader_config.py").is_file():
        raise CourseError(f"{folder} holds no nbgrader_config.py (is it the course root?)")
    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(folder)).load_config()
    cfg.CourseDirectory.root = str(folder)
    pre = list(cfg.GenerateFeedback.get("preprocessors", [
        "nbgrader.preprocessors.GetGrades", "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"]))
    if not any("HideHiddenTests" in str(p) for p in pre):
        pre.insert(1 if pre else 0, "tlcourse.grading.HideHiddenTests")
    cfg.GenerateFeedback.preprocessors = pre
    return cfg


def ensure_tools_on_path() -> None:
    """nbgrader spawns ``alembic`` by name when it creates a gradebook: put this Python's ``bin/`` first on PATH."""
    bindir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if parts[:1] != [bindir]:
        os.environ["PATH"] = os.pathsep.join([bindir, *parts])


def course_dir(cfg: Any) -> Any:
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=cfg)


def nbgrader_api(cfg: Any) -> Any:
    from nbgrader.apps import NbGraderAPI

    ensure_tools_on_path()
    coursedir = course_dir(cfg)
    Path(coursedir.format_path(coursedir.autograded_directory, ".", ".")).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite_path(coursedir.db_url)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return NbGraderAPI(coursedir=coursedir, config=cfg)


def open_gradebook(coursedir: Any) -> Any:
    """nbgrader's ``Gradebook`` of the course (its folder created first), to use in a ``with`` block."""
    from nbgrader.api import Gradebook

    db = sqlite_path(coursedir.db_url)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    ensure_tools_on_path()  # a new gradebook is migrated by `alembic`, spawned by name
    return Gradebook(coursedir.db_url, coursedir.course_id)


def sqlite_path(db_url: str) -> Path | None:
    return Path(db_url[len("sqlite:///"):]) if db_url.startswith("sqlite:///") else None


def step_dir(coursedir: Any, step: str) -> Path:
    """The folder of an nbgrader step (``release_directory``, ``autograded_directory``, …), absolute."""
    return Path(os.path.normpath(coursedir.format_path(getattr(coursedir, step), ".", ".")))


def withheld_dir(coursedir: Any) -> Path:
    """Where ``tlcourse grade`` keeps the record of each withheld submission: ``<assignment>/<student>.json`` in
    ``withheld/`` beside the autograded folder (read by the export and the feedback).

    Example:
        >>> withheld_dir(course_dir(load_nbgrader_config())).name
        'withheld'
    """
    return step_dir(coursedir, "autograded_directory").parent / "withheld"


def list_assignments(root: str | os.PathLike[str] | None = None) -> list[str]:
    """The assignments: every ``solutions/NN_name`` folder that holds a notebook, in order.

    Example:
        >>> "00_warmup" in list_assignments()
        True
    """
    cfg = load_nbgrader_config(root)
    source = step_dir(course_dir(cfg), "source_directory")
    if not source.is_dir():
        return []
    return sorted(p.name for p in source.iterdir()
                  if p.is_dir() and ASSIGNMENT_PATTERN.match(p.name) and any(p.glob("*.ipynb")))


def source_notebooks(cfg: Any, assignment: str) -> dict[str, Path]:
    folder = step_dir(course_dir(cfg), "source_directory") / assignment
    found = {p.stem: p for p in sorted(folder.glob("*.ipynb"))}
    if not found:
        known = ", ".join(list_assignments(cfg.CourseDirectory.root)) or "none"
        raise CourseError(f"no assignment {assignment!r}: {folder} holds no notebook (assignments: {known})")
    return found




def course_files(folder: Path, ignore: Sequence[str]) -> dict[str, Path]:
    """Every file under ``folder`` (relative POSIX path -> path), minus those matching an ``ignore`` pattern."""
    from fnmatch import fnmatch

    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(fnmatch(part, pat) for part in rel.parts for pat in ignore):
            out[rel.as_posix()] = path
    return out


def log_errors(result: dict) -> str:
    """The error lines of an nbgrader API result (or the last line of its traceback)."""
    lines = [ln for ln in (result.get("log") or "").splitlines() if ln.startswith(("[ERROR]", "[CRITICAL]"))]
    if lines:
        return "\n".join(lines[-8:])
    error = (result.get("error") or "").strip().splitlines()
    return error[-1] if error else "unknown error (nbgrader logged nothing)"


def read_notebook(path: Path, shown: str, max_mb: float | None = None) -> Any:
    """A notebook read from an untrusted file (a regular file, size-capped before reading); else a ``CourseError``.

    Example:
        >>> read_notebook(Path("/dev/zero"), "zero.ipynb")
        Traceback (most recent call last):
        ...
        tlcourse.grading.course.CourseError: zero.ipynb: refused (zero: a symbolic link or not a regular file (a character device))
    """
    from tlcourse.grading.safefs import Refused, read_regular

    try:
        data = read_regular(Path(path), int((max_mb or 64) * 1024 * 1024))
    except Refused as exc:
        raise CourseError(f"{shown}: refused ({exc})") from None
    return parse_notebook(data, shown)


def parse_notebook(data: bytes, shown: str) -> Any:
    """A notebook parsed from untrusted bytes (nbformat, upgraded to v4); else a ``CourseError``.

    Example:
        >>> parse_notebook(b"{not json", "x.ipynb")
        Traceback (most recent call last):
        ...
        tlcourse.grading.course.CourseError: x.ipynb is not a valid notebook file (Notebook does not appear to be JSON: '{not json')
    """
    import nbformat

    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError("no list of cells")
        return nb
    except Exception as exc:  # invalid UTF-8 or JSON, or not a notebook at all
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CourseError(f"{shown} is not a valid notebook file ({msg})") from None
