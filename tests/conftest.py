"""Shared test fixtures: keep Jupyter, IPython and matplotlib out of ``~``; the repository root."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Jupyter, IPython and matplotlib write under ~ unless these point elsewhere
_ISOLATED_DIRS = ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR")


@pytest.fixture(scope="session", autouse=True)
def isolated_home_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Session-wide: fresh Jupyter / IPython / matplotlib folders, headless matplotlib, no course-dir override."""
    base = tmp_path_factory.mktemp("home-dirs")
    with pytest.MonkeyPatch.context() as mp:
        for var in _ISOLATED_DIRS:
            folder = base / var.lower()
            folder.mkdir()
            mp.setenv(var, str(folder))
        mp.setenv("MPLBACKEND", os.environ.get("MPLBACKEND", "Agg"))
        mp.delenv("TLCOURSE_COURSE_DIR", raising=False)  # tests pick their own course folders
        yield base


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the folder with ``pyproject.toml`` and ``nbgrader_config.py``)."""
    return REPO_ROOT
