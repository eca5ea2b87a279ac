"""The locks agree with pyproject.toml, hold no developer tool for students, and install on every platform.

The offline tests read the files only. The ``network`` test asks the registry (PyPI) whether the students' lock
resolves for Linux, macOS (Apple silicon) and Windows, as ``make lock`` promises.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]

# the environments the lock must serve: (sys_platform, platform_system, platform_machine, os_name)
PLATFORMS = {
    "linux-x86_64": ("linux", "Linux", "x86_64", "posix"),
    "macos-arm64": ("darwin", "Darwin", "arm64", "posix"),
    "windows-amd64": ("win32", "Windows", "AMD64", "nt"),
}
PYTHONS = ("3.11.7", "3.12.3")
DEV_TOOLS = {"pytest", "ruff", "playwright", "uv", "jupyterhub", "sphinx", "myst-nb", "sphinx-book-theme",
             "jupyter-server-mathjax"}


def _env(platform: str, python: str) -> dict[str, str]:
    sys_platform, system, machine, os_name = PLATFORMS[platform]
    return {
        "sys_platform": sys_platform, "platform_system": system, "platform_machine": machine,
        "os_name": os_name, "python_version": ".".join(python.split(".")[:2]),
        "python_full_version": python, "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


def _pins(path: Path) -> list[tuple[str, str, Marker | None]]:
    """(name, version, marker) for every ``name==version [; marker]`` line of a lock file."""
    pins = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{path.name}: {line!r} is not an exact pin"
        pins.append((canonicalize_name(req.name), spec.version, req.marker))
    return pins


def _resolved(pins: list[tuple[str, str, Marker | None]], env: dict[str, str]) -> dict[str, str]:
    """The pins that apply in one environment; a package pinned twice there is an error."""
    chosen: dict[str, str] = {}
    for name, version, marker in pins:
        if marker is not None and not marker.evaluate(env):
            continue
        assert name not in chosen, f"{name} is pinned twice ({chosen[name]} and {version}) for {env['sys_platform']}"
        chosen[name] = version
    return chosen


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _check_ranges(requirements: list[str], resolved: dict[str, str], where: str) -> None:
    for text in requirements:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in resolved, f"{req.name} (pyproject.toml) is not pinned in {where}: run `make lock`"
        assert req.specifier.contains(resolved[name], prereleases=True), (
            f"{where} pins {name}=={resolved[name]}, outside pyproject.toml's {req.specifier}: run `make lock`"
        )


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_students_lock_matches_pyproject(platform: str, python: str) -> None:
    project = _project()
    resolved = _resolved(_pins(ROOT / "requirements.txt"), _env(platform, python))
    _check_ranges(project["dependencies"] + project["optional-dependencies"]["course"], resolved,
                  "requirements.txt")
    assert not DEV_TOOLS & set(resolved), f"developer tools in the students' lock: {DEV_TOOLS & set(resolved)}"


def test_torch_pins_follow_constraints() -> None:
    wanted = {canonicalize_name(Requirement(line).name): str(Requirement(line).specifier)
              for line in (ROOT / "constraints.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert set(wanted) == {"torch", "torchvision"}
    pins = {name: version for name, version, _ in _pins(ROOT / "requirements.txt")}
    for name, spec in wanted.items():
        assert f"=={pins[name]}" == spec, f"requirements.txt pins {name}=={pins[name]}, constraints.txt {spec}"


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_dev_lock_adds_tools_only(platform: str) -> None:
    env = _env(platform, PYTHONS[0])
    students = _resolved(_pins(ROOT / "requirements.txt"), env)
    dev = _resolved(_pins(ROOT / "requirements-dev.txt"), env)
    assert (ROOT / "requirements-dev.txt").read_text().count("-r requirements.txt") == 1
    assert not set(students) & set(dev), f"pinned in both locks: {sorted(set(students) & set(dev))}"
    _check_ranges(_project()["optional-dependencies"]["dev"], {**students, **dev}, "requirements-dev.txt")


def test_lock_checker_catches_a_stale_lock(tmp_path: Path) -> None:
    """The check above is not vacuous: a pin outside its range, a missing pin and a double pin all fail."""
    pins = _pins(ROOT / "requirements.txt")
    env = _env("linux-x86_64", PYTHONS[0])
    resolved = _resolved(pins, env)
    with pytest.raises(AssertionError, match="outside"):
        _check_ranges(["numpy<1"], resolved, "lock")
    with pytest.raises(AssertionError, match="not pinned"):
        _check_ranges(["not-a-real-package>=1"], resolved, "lock")
    doubled = tmp_path / "lock.txt"
    doubled.write_text("numpy==2.4.6\nnumpy==2.4.5 ; sys_platform == 'linux'\n")
    with pytest.raises(AssertionError, match="pinned twice"):
        _resolved(_pins(doubled), env)


UV_TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-apple-darwin", "x86_64-pc-windows-msvc"]


@pytest.mark.network
@pytest.mark.parametrize("target", UV_TARGETS)
def test_students_lock_resolves_on_every_platform(target: str, tmp_path: Path) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is in requirements-dev.txt: `make dev` installs it")
    env = {**os.environ, "MACOSX_DEPLOYMENT_TARGET": "14.0"}  # torch's macOS wheels need 14
    done = subprocess.run(
        [uv, "pip", "install", "--dry-run", "--python-platform", target, "--python-version", "3.11",
         "--target", str(tmp_path / "site"), "-r", str(ROOT / "requirements.txt")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "+ torch==2.14.1" in done.stderr + done.stdout
