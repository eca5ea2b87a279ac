"""``release`` regenerates the student lessons from the sources; ``publish`` writes the student-facing course."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tlcourse.grading.course import (
    ASSIGNMENT_PATTERN,
    CourseError,
    course_dir,
    course_files,
    find_course_root,
    list_assignments,
    load_nbgrader_config,
    log_errors,
    nbgrader_api,
    source_notebooks,
    step_dir,
)
from tlcourse.grading.hidden import BEGIN_HIDDEN, distinctive, hidden_secrets_of

__all__ = ["release", "publish", "PUBLISHED"]


def release(root: str | os.PathLike[str] | None = None, check: bool = False,
            assignments: Sequence[str] | None = None, out: Callable[[str], None] = print) -> list[str]:
    """Regenerate ``lessons/`` from ``solutions/`` with nbgrader; return the differences found.

    With ``check=True`` nothing is written (and the gradebook is not touched): the returned list says which
    lesson files are missing, stale or different from a fresh generation. Without it, only those files are
    written or removed, and the assignments are recorded in the gradebook.

    Example:
        >>> release(check=True, out=lambda s: None)  # in sync: no differences  # doctest: +SKIP
        []
    """
    cfg = load_nbgrader_config(root)
    coursedir = course_dir(cfg)
    lessons = step_dir(coursedir, "release_directory")
    names = list(assignments) if assignments else list_assignments(coursedir.root)
    for name in names:
        source_notebooks(cfg, name)  # clear error for an unknown assignment
    ignore = list(coursedir.ignore)
    differences: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tlcourse-release-") as tmp:
        build = copy.deepcopy(cfg)
        build.CourseDirectory.release_directory = tmp
        if check:
            build.GenerateAssignment.no_database = True
            build.SaveCells.enabled = False
        api = nbgrader_api(build)
        for name in names:
            result = api.generate_assignment(name, force=True, create=True)
            if not result["success"] and not check:  # e.g. grade cells added after submissions were graded
                out(f"  warning: {name} was not recorded in the gradebook ({log_errors(result).strip()}); "
                    "lessons/ are generated anyway")
                pure = copy.deepcopy(build)
                pure.GenerateAssignment.no_database = True
                pure.SaveCells.enabled = False
                result = nbgrader_api(pure).generate_assignment(name, force=True, create=True)
            if not result["success"]:
                raise CourseError(f"nbgrader could not generate {name}:\n{log_errors(result)}")
            fresh, current = course_files(Path(tmp) / name, ignore), course_files(lessons / name, ignore)
            for rel in sorted(set(fresh) | set(current)):
                shown = f"{lessons.name}/{name}/{rel}"
                if rel not in current:
                    differences.append(f"{shown}: missing")
                elif rel not in fresh:
                    differences.append(f"{shown}: stale (no longer generated)")
                elif fresh[rel].read_bytes() != current[rel].read_bytes():
                    differences.append(f"{shown}: differs from a fresh generation")
                else:
                    continue
                if not check:
                    target = lessons / name / rel
                    if rel in fresh:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(fresh[rel], target)
                    else:
                        target.unlink()
        if not assignments:
            known = set(names)
            for stale in sorted(p for p in lessons.glob("*") if p.is_dir() and ASSIGNMENT_PATTERN.match(p.name)):
                if stale.name not in known:
                    differences.append(f"{lessons.name}/{stale.name}: stale (no solutions/{stale.name})")
                    if not check:
                        shutil.rmtree(stale)
    verb = "differ" if check else "updated"
    for line in differences:
        out(f"  {line}")
    out(f"{len(names)} assignment(s): " + (f"{len(differences)} file(s) {verb}" if differences else
                                             "lessons/ in sync with solutions/"))
    return differences



#: What a graded class gets (``tlcourse publish``): the package, the lessons, the data registry and how to set up.
#: Never ``solutions/`` (hidden tests and worked answers), ``tests/`` (wrong submissions), benchmarks or CI.
PUBLISHED: tuple[str, ...] = (
    "LICENSE", "pyproject.toml", "requirements.txt", "constraints.txt", "environment.yml",
    "nbgrader_config.py", "datasets/README.md", "lessons", "tlcourse",
)
_NEVER = ("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")


def _secrets(root: Path) -> list[str]:
    """The distinctive hidden-test lines of every assignment, minus those the package's own code holds (a test
    may use ordinary code such as ``with warnings.catch_warnings():``, which is no secret)."""
    import nbformat

    found: set[str] = set()
    for nb_path in sorted((root / "solutions").glob("*/*.ipynb")):
        found.update(hidden_secrets_of(nbformat.read(nb_path, as_version=4)))
    package = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted((root / "tlcourse").rglob("*.py")))
    return distinctive(sorted(s for s in found if s not in package))


def _leaked(folder: Path, secrets: Sequence[str]) -> list[str]:
    """Files under ``folder`` that quote a hidden test (or hold a lesson with a hidden-test region)."""
    bad = []
    for rel, path in course_files(folder, []).items():
        text = path.read_text(encoding="utf-8", errors="replace")
        if any(s in text for s in secrets) or (rel.endswith(".ipynb") and BEGIN_HIDDEN in text):
            bad.append(rel)
    return bad


DEFAULT_HAND_IN = ("Hand in through your course's learning platform (its assignment page names the deadline), or, "
                   "on the course's JupyterHub, with *Assignments → Submit* in JupyterLab. Ask your instructor if "
                   "you are unsure.")


def _lesson_table(course: Path) -> str:
    """The lessons table of the course README (its rows only name lessons, data and models)."""
    text = (course / "README.md").read_text(encoding="utf-8") if (course / "README.md").is_file() else ""
    part = text.split("## Lessons", 1)[-1].split("\n## ", 1)[0] if "## Lessons" in text else ""
    rows = [line for line in part.splitlines() if line.startswith("|")]
    return "\n".join(rows) or "See `lessons/`: one folder per lesson, in order."


def student_readme(course: Path) -> str:
    """The README of the published copy: set-up, checking yourself (visible vs hidden tests), handing in.

    ``c.Tlcourse.course_title`` and ``c.Tlcourse.hand_in`` in ``nbgrader_config.py`` fill it in.

    Example:
        >>> text = student_readme(find_course_root())
        >>> "hidden tests" in text and "make " not in text and "solutions/" not in text
        True
    """
    from importlib import resources

    settings = dict(load_nbgrader_config(course).get("Tlcourse", {}))
    template = resources.files("tlcourse.grading").joinpath("templates/STUDENT_README.md").read_text("utf-8")
    return template.format(course_title=settings.get("course_title") or "Transfer learning, hands-on",
                           lesson_table=_lesson_table(course), hand_in=settings.get("hand_in") or DEFAULT_HAND_IN,
                           revision=_revision(course))


def _revision(root: Path) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def _colab_cell(repo: str, branch: str) -> str:
    from tlcourse.launch import colab_setup_cell

    try:
        return colab_setup_cell(repo, branch)
    except ValueError as exc:
        raise CourseError(f"--colab: {exc}") from None


def _for_colab(dest: Path, setup: str, repo: str, branch: str) -> None:
    """Put ``setup`` (:func:`tlcourse.launch.colab_setup_cell` for ``repo`` at ``branch``) before the first code
    cell of every lesson in ``dest``, and the lessons' Colab links into its README."""
    import nbformat

    from tlcourse.launch import lesson_links, lesson_names, write_links

    links = write_links(lesson_links(None, repo, branch, root=dest, kind="colab"))
    for path in (dest / "lessons" / name / f"{name}.ipynb" for name in lesson_names(dest)):
        nb = nbformat.read(path, as_version=4)
        first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(first, nbformat.v4.new_code_cell(setup, id="colab-setup"))
        nbformat.write(nb, path)
    with (dest / "README.md").open("a", encoding="utf-8") as readme:
        readme.write("\n## Open a lesson in Google Colab\n\nNo installation: each lesson installs the course's "
                     "package in its first cell there (about a minute, once a session). Save your copy to your "
                     "Drive before you work in it.\n\n" + links)


def publish(target: str | os.PathLike[str], root: str | os.PathLike[str] | None = None,
            out: Callable[[str], None] = print, colab: str | None = None, branch: str = "main") -> list[str]:
    """Write the student-facing course to ``target`` — no solutions, no hidden tests — and return its files.

    For a graded class: keep this repository private and give students the published copy (a repository of its
    own, or nbgitpuller). The copy is checked after writing: a file quoting a hidden test is an error. With
    ``colab`` (the GitHub repository the copy will be pushed to, at ``branch``) every lesson opens and installs
    itself in Google Colab (:func:`tlcourse.launch.colab_setup_cell`).

    Example:
        >>> files = publish("/tmp/class-copy", out=lambda s: None)  # doctest: +SKIP
        >>> "solutions" in {f.split("/")[0] for f in files}  # doctest: +SKIP
        False
    """
    course = find_course_root(root)
    dest = Path(target).resolve()
    setup = _colab_cell(colab, branch) if colab else None  # refused before anything is written
    if dest == course or course in dest.parents:
        raise CourseError(f"publish into a folder outside the course, not {dest}")
    if dest.exists() and any(dest.iterdir()):
        raise CourseError(f"{dest} is not empty: publish into a new folder (old copies may hold stale files)")
    for name in PUBLISHED:
        source = course / name
        if source.is_dir():
            for rel, path in course_files(source, _NEVER).items():
                (dest / name / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest / name / rel)
        elif source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / "README.md").write_text(student_readme(course), encoding="utf-8")
    if setup is not None:
        _for_colab(dest, setup, colab, branch)
    leaked = _leaked(dest, _secrets(course))
    if leaked:
        shutil.rmtree(dest)
        raise CourseError("the published copy quoted hidden tests (removed it): " + ", ".join(leaked))
    files = sorted(course_files(dest, []))
    out(f"published {len(files)} files to {dest} (no solutions, no hidden tests)")
    return files
