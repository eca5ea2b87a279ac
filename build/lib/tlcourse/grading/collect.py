"""``tlcourse collect``: an LMS's bulk download (a zip, or a flat folder of ``name_id_file.ipynb``) sorted into
nbgrader's ``submitted/<student>/<assignment>/`` by nbgrader's own ``zip_collect`` and its file-name collector.

Each LMS names files its own way (:data:`COLLECT_PATTERNS`); the LMS's user id in a file name is mapped to the
nbgrader student whose ``lms_user_id`` it is (import the roster first: ``tlcourse export --roster``), so grades
go back to the right people.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tlcourse.grading.course import (
    CourseError,
    _coursedir,
    _ensure_tools_on_path,
    _gradebook,
    load_nbgrader_config,
)

__all__ = ["COLLECT_PATTERNS", "collect"]

#: How LMS bulk downloads name submitted files (nbgrader FileNameCollectorPlugin.named_regexp, matched against the
#: file's whole path: hence the optional folders in front).
COLLECT_PATTERNS: dict[str, str] = {
    # Canvas: smithjane_12345_67890_00_warmup.ipynb (LATE_ after the name; "-1" for a re-upload)
    "canvas": r"^(?:.*/)?(?P<name>[^_/]+)_(?:LATE_)?(?P<student_id>\d+)_\d+_(?P<file_id>.+?)(?:-\d+)?\.ipynb$",
    # Moodle: Jane Smith_12345_assignsubmission_file_00_warmup.ipynb
    "moodle": r"^(?:.*/)?(?P<name>[^/]+?)_(?P<student_id>\d+)_assignsubmission_file_(?P<file_id>.+)\.ipynb$",
    # Blackboard: 00_warmup_jsmith_attempt_2027-01-15-23-59-00_00_warmup.ipynb
    "blackboard": r"^(?:.*/)?[^/]+?_(?P<student_id>[^_/]+)_attempt_(?P<timestamp>[0-9\-]+)_(?P<file_id>.+)\.ipynb$",
}


def _lms_ids(coursedir: Any) -> dict[str, str]:
    """LMS user id -> nbgrader student id, from the roster in the gradebook."""
    with _gradebook(coursedir) as gb:
        return {str(s.lms_user_id): s.id for s in gb.students if s.lms_user_id}


def _apps(roster: dict[str, str]) -> tuple[type, type]:
    from nbgrader.apps import ZipCollectApp
    from nbgrader.plugins import FileNameCollectorPlugin

    class RosterCollector(FileNameCollectorPlugin):
        """nbgrader's file-name collector, with the LMS user id mapped to the student's course id."""

        def collect(self, submitted_file: str) -> dict | None:
            info = super().collect(submitted_file)
            if info:
                info["student_id"] = roster.get(info["student_id"], info["student_id"])
            return info

    class Collect(ZipCollectApp):
        collected: list[str] = []

        def _transfer_files(self, collected_data: dict) -> None:
            type(self).collected = sorted(collected_data or {})
            super()._transfer_files(collected_data)

    return RosterCollector, Collect


def collect(download: str | os.PathLike[str], assignment: str, lms: str = "canvas",
            root: str | os.PathLike[str] | None = None) -> list[str]:
    """Sort a bulk download into ``submitted/``; return the students collected.

    Example:
        >>> collect("submissions.zip", "00_warmup", lms="canvas")  # doctest: +SKIP
        ['alice', 'bob']
    """
    if lms not in COLLECT_PATTERNS:
        raise CourseError(f"unknown LMS naming {lms!r}; choose one of {sorted(COLLECT_PATTERNS)}")
    source = Path(download)
    if not source.exists():
        raise CourseError(f"{source} does not exist")
    cfg = copy.deepcopy(load_nbgrader_config(root))
    coursedir = _coursedir(cfg)
    collector, app_class = _apps(_lms_ids(coursedir))
    _ensure_tools_on_path()
    scratch = Path(coursedir.root) / "course"  # zip_collect's folders are relative to the course root
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".collect-", dir=scratch) as tmp:
        archive = Path(tmp) / "downloaded" / assignment / "archive"
        if source.is_dir():
            shutil.copytree(source, archive)
        else:
            archive.mkdir(parents=True)
            shutil.copy2(source, archive / source.name)
        cfg.ZipCollectApp.downloaded_directory = os.path.relpath(Path(tmp) / "downloaded", coursedir.root)
        cfg.ZipCollectApp.force = True
        cfg.ZipCollectApp.collector_plugin = collector
        cfg.FileNameCollectorPlugin.named_regexp = COLLECT_PATTERNS[lms]
        cfg.CourseDirectory.assignment_id = assignment
        app = app_class(config=cfg)
        app.coursedir = _coursedir(cfg)
        app.init_plugins()
        app.extract_archive_files()
        app.process_extracted_files()
    if not app_class.collected:
        raise CourseError(f"no file in {source} is named like a {lms} download ({COLLECT_PATTERNS[lms]})")
    return app_class.collected
