"""The tlcourse console script: doctor and data commands, run as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MIRROR = os.environ.get("TLCOURSE_DATA_MIRROR") or str(Path(__file__).resolve().parents[3] / "shared" / "data")
TLCOURSE = shutil.which("tlcourse", path=str(Path(sys.executable).parent)) or "tlcourse"


def _run(args: list[str], tmp_path: Path, mirror: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLCOURSE_")}
    env["TLCOURSE_DATA_HOME"] = str(tmp_path / "home")
    env["HF_HUB_OFFLINE"] = "1"
    if mirror:
        env["TLCOURSE_DATA_MIRROR"] = mirror
    return subprocess.run([TLCOURSE, *args], env=env, capture_output=True, text=True, timeout=300)


needs_mirror = pytest.mark.skipif(not Path(MIRROR).is_dir(), reason=f"no data mirror at {MIRROR}")


@needs_mirror
def test_doctor_passes_with_the_mirror(tmp_path: Path) -> None:
    res = _run(["doctor"], tmp_path, MIRROR)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    for word in ("Pretrained backbones", "efficientnet_lite0", "loads offline", "hymenoptera", "mirror", "profile"):
        assert word in out
    assert "All good" in out


def test_doctor_fails_without_data(tmp_path: Path) -> None:
    res = _run(["doctor", "--quick"], tmp_path, None)
    assert res.returncode == 1
    assert "tlcourse data fetch hymenoptera" in res.stdout
    assert "problem(s)" in res.stdout


@needs_mirror
def test_data_list_and_verify(tmp_path: Path) -> None:
    res = _run(["data", "list"], tmp_path, MIRROR)
    assert res.returncode == 0 and "pneumoniamnist" in res.stdout and "mirror" in res.stdout
    assert _run(["data", "verify", "usps", "breastmnist"], tmp_path, MIRROR).returncode == 0
    assert _run(["data", "verify", "usps"], tmp_path, None).returncode == 1
    assert _run(["data", "verify", "nope"], tmp_path, MIRROR).returncode == 2


@needs_mirror
def test_data_fetch_from_mirror_writes_nothing(tmp_path: Path) -> None:
    res = _run(["data", "fetch", "rt_polarity", "--quiet"], tmp_path, MIRROR)
    assert res.returncode == 0 and "rt-polaritydata" in res.stdout
    assert not any((tmp_path / "home").glob("rt-polaritydata*"))


def test_data_fetch_offline_is_actionable(tmp_path: Path) -> None:
    res = _run(["data", "fetch", "breastmnist", "--quiet"], tmp_path, None)
    assert res.returncode == 1
    assert "TLCOURSE_DATA_MIRROR" in res.stderr and "zenodo" in res.stderr


def test_doctor_requires_the_python_the_package_requires() -> None:
    """Regression: doctor accepted Python 3.10 while pyproject.toml requires 3.11."""
    import tomllib

    from tlcourse.cli import python_supported, required_python

    declared = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert required_python() == declared["requires-python"]
    assert not python_supported((3, 10, 14)) and not python_supported((3, 9, 0))
    assert python_supported((3, 11, 0)) and python_supported((3, 12, 3))


def test_links_give_one_nbgitpuller_link_per_lesson(tmp_path: Path) -> None:
    """`tlcourse links`: one link per lesson, each a git-pull URL nbgitpuller reads back to the same repo, branch,
    folder and lesson; bad URLs are refused with a message, not turned into links."""
    import csv
    import io
    from urllib.parse import parse_qs, urlsplit

    lessons = sorted(p.parent.name for p in (Path(__file__).resolve().parents[2] / "lessons").glob("*/*.ipynb")
                     if p.stem == p.parent.name)
    res = _run(["links", "--hub", "https://hub.example.edu/", "--repo", "https://git.example.edu/c/tl.git",
                "--branch", "spring", "--format", "csv"], tmp_path, None)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [r["lesson"] for r in rows] == lessons
    for row in rows:
        url = urlsplit(row["url"])
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert (url.netloc, url.path) == ("hub.example.edu", "/hub/user-redirect/git-pull")
        assert query == {"repo": "https://git.example.edu/c/tl.git", "branch": "spring", "targetpath": "tl",
                         "urlpath": f"lab/tree/tl/lessons/{row['lesson']}/{row['lesson']}.ipynb"}
    html = _run(["links", "--hub", "https://h.edu", "--repo", "https://g.edu/r", "--format", "html"], tmp_path, None)
    assert html.stdout.count("<li><a href=") == len(lessons) and "&amp;branch=main" in html.stdout
    bad = _run(["links", "--hub", "hub.example.edu", "--repo", "https://g.edu/r"], tmp_path, None)
    assert bad.returncode == 2 and "full URL" in bad.stderr and "Traceback" not in bad.stderr
    for hub in ("file:///srv/hub", "https://hub.example.edu/?next=/evil", "javascript:alert(1)"):
        refused = _run(["links", "--hub", hub, "--repo", "https://g.edu/r"], tmp_path, None)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, hub
    odd = _run(["links", "--hub", "https://uni.edu/my hub)/hub/", "--repo", "https://g.edu/r"], tmp_path, None)
    assert odd.returncode == 0 and "https://uni.edu/my%20hub%29/hub/user-redirect/git-pull?" in odd.stdout


def test_a_broken_plugin_is_said_not_swallowed(tmp_path, monkeypatch, capsys):
    """A command plugin that fails to import (e.g. a broken install of tlcourse.grading) is said on stderr at once
    and fails the doctor's report; the other commands still work (``tlcourse grade`` used to vanish silently)."""
    from tlcourse import cli

    (tmp_path / "broken_plugin.py").write_text("import no_such_package_for_tlcourse\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "CLI_PLUGINS", ("broken_plugin",))
    parser = cli.build_parser()
    err = capsys.readouterr().err
    assert "broken_plugin did not load" in err and "no_such_package_for_tlcourse" in err
    assert parser.parse_args(["doctor", "--quick"]).command == "doctor"
    (check,) = cli._plugin_checks()
    assert not check.ok and check.required and "no_such_package_for_tlcourse" in check.detail
