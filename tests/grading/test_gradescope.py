"""Gradescope's autograder (``tlcourse export --gradescope-autograder``), rehearsed as Gradescope runs it.

The zip is unpacked into a folder laid out like Gradescope's ``/autograder`` (``source/``, ``submission/``,
``results/``) and its own ``run_autograder`` script grades a wrong submission (hidden tests fail), a hostile solved
one (it must earn its points and nothing more; one answer fails a visible test with markup in its message) and an
upload without a notebook; every ``results.json`` is validated against Gradescope's documented format (:data:`SCHEMA`, itself
shown to refuse malformed results). Only the Python differs from Gradescope's image: this checkout's environment
instead of the one ``setup.sh`` builds (apt and a full install do not belong in a test).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import nbformat
import pytest

from tlcourse.grading import hidden_secrets_of
from tlcourse.grading.gradescope import SCHEMA, build_autograder
from tlcourse.grading.hidden import distinctive

REPO = Path(__file__).resolve().parents[2]
from support.course import fill, need_sandbox, released_nb, solved, source_nb, wrong_sources  # noqa: E402

ASSIGNMENT = "00_warmup"  # the quickest lesson: the run's plumbing is the point, the lessons are graded elsewhere
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _need_sandbox() -> None:
    need_sandbox()


@pytest.fixture(scope="module")
def autograder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip, unpacked as Gradescope unpacks it: ``<root>/source``."""
    root = tmp_path_factory.mktemp("autograder")
    archive = build_autograder(ASSIGNMENT, root / "autograder.zip", root=REPO)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(root / "source")
    for script in ("setup.sh", "run_autograder"):  # zipfile does not restore modes; Gradescope's unzip does
        (root / "source" / script).chmod(0o755)
    return root


def run(autograder: Path, files: dict[str, bytes | Path]) -> dict:
    """Put ``files`` into ``submission/`` (a fresh one) and run ``source/run_autograder``; return results.json."""
    submission, results = autograder / "submission", autograder / "results"
    for folder in (submission, results):
        if folder.exists():
            subprocess.run(["rm", "-rf", str(folder)], check=True)
        folder.mkdir()
    for name, content in files.items():
        if isinstance(content, Path):
            (submission / name).symlink_to(content)
        else:
            (submission / name).write_bytes(content)
    env = dict(os.environ, AUTOGRADER=str(autograder), TLCOURSE_AUTOGRADER_PYTHON=sys.executable)
    done = subprocess.run([str(autograder / "source" / "run_autograder")], env=env, capture_output=True, text=True,
                          timeout=900)
    path = results / "results.json"
    assert path.is_file(), f"no results.json; run_autograder said:\n{done.stdout}\n{done.stderr}"
    result = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(result, SCHEMA)
    return result


def notebook_bytes(nb: nbformat.NotebookNode) -> bytes:
    return nbformat.writes(nb).encode("utf-8")


def by_name(result: dict) -> dict[str, dict]:
    return {t["name"]: t for t in result["tests"]}


def auto_points() -> float:
    return sum(float(c.metadata["nbgrader"].get("points", 0)) for c in source_nb(ASSIGNMENT).cells
               if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution"))


# ------------------------------------------------------------------------------------------------ the zip
def test_the_zip_is_laid_out_as_gradescope_expects(autograder: Path) -> None:
    with zipfile.ZipFile(autograder / "autograder.zip") as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
    assert {"setup.sh", "run_autograder"} <= names  # at the root of the archive, not in a folder
    assert all(stat.S_ISREG(modes[s]) and modes[s] & 0o111 for s in ("setup.sh", "run_autograder"))
    assert f"solutions/{ASSIGNMENT}/{ASSIGNMENT}.ipynb" in names and f"lessons/{ASSIGNMENT}/{ASSIGNMENT}.ipynb" in names
    assert {"tlcourse/__init__.py", "nbgrader_config.py", "requirements.txt", "pyproject.toml"} <= names
    others = {n.split("/")[1] for n in names if n.startswith(("solutions/", "lessons/"))}
    assert others == {ASSIGNMENT}, "only this assignment's notebooks"
    assert not any(n.startswith("course/") or n.endswith(".db") or "__pycache__" in n for n in names)
    setup = (autograder / "source" / "setup.sh").read_text(encoding="utf-8")
    assert "bubblewrap" in setup and "pip install" in setup and "data fetch" in setup


# ---------------------------------------------------------------------------------------------- the format
def test_the_schema_refuses_what_gradescope_would_refuse() -> None:
    good = {"score": 1.0, "tests": [{"name": "a", "score": 1.0, "max_score": 1.0, "visibility": "visible"}]}
    jsonschema.validate(good, SCHEMA)
    for bad in ({"tests": [{"name": "a", "score": 1, "max_score": 1, "visibility": "sometimes"}]},
                {"tests": [{"name": "a", "max_score": 1}]},
                {"score": "full"}, {"score": 1, "output_format": "pdf"}, {"score": 1, "grade": 1},
                {"output": "no score and no tests"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)


# ------------------------------------------------------------------------------------------- the grading
def test_a_wrong_submission_fails_hidden_tests_later_and_visible_ones_at_once(autograder: Path) -> None:
    answers = wrong_sources(ASSIGNMENT) | {
        # a visible test fails with markup in the message
        "ex2_freeze_body": "def freeze_body(model):\n    raise ValueError('<img src=x onerror=alert(1)> **bold**')\n",
        # right on the visible tests' inputs; on the hidden test's input a chained exception carries that input:
        # the first traceback frame is then the student's own cell, not the test cell
        "ex3_unfreeze_top": (
            "def unfreeze_top(model, k):\n"
            "    if k not in (1, 3):\n"
            "        try:\n"
            "            {}[k]\n"
            "        except KeyError:\n"
            "            raise ValueError(f'SECRET-INPUT k={k!r}')\n"
            "    groups = layer_groups(model)\n"
            "    for i, group in enumerate(groups):\n"
            "        for p in group.parameters():\n"
            "            p.requires_grad = i >= len(groups) - k\n"
            "    return [g.name for g in groups[len(groups) - k:]]\n")}
    result = run(autograder, {f"{ASSIGNMENT}.ipynb": notebook_bytes(fill(released_nb(ASSIGNMENT), answers))})
    tests = by_name(result)
    hidden_failures = [t for t in result["tests"] if t["visibility"] == "after_published" and t["status"] == "failed"
                       and tests[f"{t['name']} (visible tests)"]["status"] == "passed"]
    assert hidden_failures, "the wrong submission fails hidden tests after passing the visible ones"
    assert all(t["output"] for t in hidden_failures)  # each says why, in plain text
    assert 0 < result["score"] < auto_points()
    assert result["score"] == pytest.approx(sum(t["score"] for t in result["tests"]))
    markup = tests[f"{ASSIGNMENT}: ex2_freeze_body_tests (visible tests)"]
    # a failure in the visible tests is shown at once, worth 0: the points stay with the after_published entry
    assert markup["visibility"] == "visible" and markup["status"] == "failed" and markup["max_score"] == 0
    assert "<img" in markup["output"] and markup["output_format"] == "text"  # Gradescope shows it as text
    assert tests[f"{ASSIGNMENT}: ex2_freeze_body_tests"]["score"] == 0
    chained = tests[f"{ASSIGNMENT}: ex3_unfreeze_top_tests"]
    assert chained["score"] == 0 and tests[f"{chained['name']} (visible tests)"]["status"] == "passed"
    assert "SECRET-INPUT" not in json.dumps(result), "the hidden test's input, through the student's exception"
    assert "Visible tests:" in result["output"] and "Autograded" not in result["output"]  # no hidden score early
    assert result["output_format"] == result["test_output_format"] == result["test_name_format"] == "text"
    assert all(t["output_format"] == "text" for t in result["tests"])
    assert "graded by hand" in result["output"]
    secrets = distinctive(hidden_secrets_of(source_nb(ASSIGNMENT)))
    text = json.dumps(result)
    assert secrets and not [s for s in secrets if s in text], "a hidden test's line in results.json"


def test_a_hostile_submission_earns_nothing_and_writes_no_result(autograder: Path) -> None:
    """A solved notebook whose first answer also tries to forge results.json and to read the hidden tests: the
    sandbox stops both, the grader's review withholds it, and results.json is the grader's, with 0 points."""
    results_file = autograder / "results" / "results.json"
    attack = (
        "import pathlib\n"
        "for _p in [" + repr(str(results_file)) + ", '/autograder/results/results.json']:\n"
        "    try:\n"
        "        pathlib.Path(_p).write_text('{\"score\": 999, \"tests\": []}')\n"
        "    except OSError:\n"
        "        pass\n"
        "try:\n"
        "    print(open(" + repr(str(autograder / "source" / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"))
        + ").read())\n"
        "except OSError:\n"
        "    pass\n"
    )
    nb = solved(ASSIGNMENT)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "ex1_replace_head":
            cell.source = attack + cell.source
    result = run(autograder, {f"{ASSIGNMENT}.ipynb": notebook_bytes(nb)})
    assert result["score"] == 0 and result["tests"] == []
    assert "review" in result["output"] and result["extra_data"]["withheld"]
    secrets = distinctive(hidden_secrets_of(source_nb(ASSIGNMENT)))
    assert not [s for s in secrets if s in json.dumps(result)]


def test_an_upload_without_a_notebook_is_reported_not_crashed(autograder: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.ipynb"
    target.write_bytes(notebook_bytes(solved(ASSIGNMENT)))
    result = run(autograder, {f"{ASSIGNMENT}.ipynb": target, "notes.txt": b"hello"})  # a link is never followed
    assert result["score"] == 0 and result["tests"] == []
    assert "no notebook" in result["output"] and "symbolic link" in result["output"]
