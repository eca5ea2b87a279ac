"""Tests of tlcourse.record: headline numbers appended to the TLCOURSE_RESULTS file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tlcourse.record import RESULTS_ENV, load_records, record


def test_no_op_without_the_environment_variable(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert record("val_acc", 0.9, lesson="02") is None
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr() == ("", "")


def test_appends_valid_json_entries(tmp_path, monkeypatch) -> None:
    path = tmp_path / "out" / "results.json"
    monkeypatch.setenv(RESULTS_ENV, str(path))
    monkeypatch.setenv("TLCOURSE_PROFILE", "grading")
    record("val_acc", 0.93, lesson="03_fine_tuning")
    record("n_images", 244)
    record("backbone", "efficientnet_lite0", lesson="03_fine_tuning")
    record("np_value", np.float32(0.5))
    record("tensor_value", torch.tensor(7))
    entries = json.loads(path.read_text())
    assert entries == load_records(path)
    assert [(e["name"], e["value"], e["lesson"]) for e in entries] == [
        ("val_acc", 0.93, "03_fine_tuning"),
        ("n_images", 244, None),
        ("backbone", "efficientnet_lite0", "03_fine_tuning"),
        ("np_value", 0.5, None),
        ("tensor_value", 7, None),
    ]
    assert isinstance(entries[1]["value"], int)
    assert all(e["profile"] == "grading" for e in entries)
    assert all(set(e) == {"name", "value", "lesson", "profile", "time"} for e in entries)
    assert dt.datetime.fromisoformat(entries[0]["time"]).tzinfo is not None
    assert load_records() == entries  # default path: the environment variable
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json", "results.json.lock"]  # no temp left


@pytest.mark.parametrize("name", ["Val_acc", "val-acc", "val acc", "", "accuracy!", 3])
def test_rejects_bad_names(name, tmp_path, monkeypatch) -> None:
    path = tmp_path / "results.json"
    monkeypatch.setenv(RESULTS_ENV, str(path))
    with pytest.raises(ValueError, match="lower-case"):
        record(name, 1.0)
    assert not path.exists()


@pytest.mark.parametrize(
    ("value", "error"),
    [(float("nan"), ValueError), (float("inf"), ValueError), (np.float64("-inf"), ValueError),
     (True, TypeError), ([0.9], TypeError), (None, TypeError), (torch.ones(3), TypeError)],
)
def test_rejects_bad_values(value, error, tmp_path, monkeypatch) -> None:
    path = tmp_path / "results.json"
    monkeypatch.setenv(RESULTS_ENV, str(path))
    with pytest.raises(error):
        record("val_acc", value)
    assert not path.exists()


def test_validates_even_without_the_variable(monkeypatch) -> None:
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    with pytest.raises(ValueError):
        record("val_acc", float("nan"))


def test_load_records_missing_and_corrupt(tmp_path) -> None:
    assert load_records(tmp_path / "missing.json") == []
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_records(bad)
    bad.write_text('{"name": "x"}')
    with pytest.raises(ValueError, match="list of objects"):
        load_records(bad)


def _gap(low: float, high: float) -> Any:
    from tlcourse.stats import Interval

    return Interval((low + high) / 2, low, high, 0.95, "test interval")


@pytest.mark.parametrize(("expect", "margin", "low", "high", "outcome"), [
    ("greater", 0.0, 0.01, 0.05, "held"),
    ("greater", 0.0, -0.01, 0.05, "within noise"),
    ("greater", 0.0, -0.05, -0.01, "did not hold"),
    ("greater", 0.10, 0.05, 0.30, "within noise"),  # "wins by 10 points or more": the interval reaches below 0.10
    ("greater", 0.10, 0.12, 0.30, "held"),
    ("greater", 0.10, 0.01, 0.08, "did not hold"),  # a win, but not by the margin the claim promised
    ("less", 0.0, -0.05, -0.01, "held"),
    ("less", 0.0, -0.05, 0.01, "within noise"),
    ("less", 0.0, 0.01, 0.05, "did not hold"),
    ("close", 0.02, -0.01, 0.015, "held"),
    ("close", 0.02, -0.03, 0.01, "within noise"),  # could be further apart than the margin
    ("close", 0.02, 0.03, 0.08, "did not hold"),
    ("close", 0.02, -0.08, -0.03, "did not hold"),
])
def test_three_outcomes(expect, margin, low, high, outcome) -> None:
    from tlcourse.record import decide

    assert decide(_gap(low, high), expect, margin) == outcome


def test_claim_shows_the_outcome_and_records_the_interval(tmp_path, monkeypatch, capsys) -> None:
    from tlcourse.record import claim
    from tlcourse.stats import seed_difference

    path = tmp_path / "results.json"
    monkeypatch.setenv(RESULTS_ENV, str(path))
    assert claim("transfer_wins", _gap(0.1, 0.3), statement="transfer wins", detail="frozen 0.920 vs scratch "
                 "0.710", lesson="02") == "held"
    assert claim("finetune_wins", seed_difference([0.950, 0.962, 0.938], [0.948, 0.955, 0.941]),
                 statement="fine-tuning wins", if_not="three seeds on 153 images") == "within noise"
    assert claim("small_lr_wins", _gap(-0.2, -0.1), statement="a small rate wins") == "did not hold"
    out = capsys.readouterr().out
    assert "✓ held beyond noise: transfer wins\n    frozen 0.920 vs scratch 0.710" in out
    assert "≈ within noise: fine-tuning wins" in out and "t interval over 3 seeds" in out
    assert "why this can happen: three seeds" in out and "✗ did not hold: a small rate wins" in out
    entries = load_records(path)
    assert [(e["name"], e["value"]) for e in entries] == [("claim_transfer_wins", "held"),
                                                          ("claim_finetune_wins", "within noise"),
                                                          ("claim_small_lr_wins", "did not hold")]
    assert entries[0]["low"] == 0.1 and entries[0]["high"] == 0.3 and entries[0]["expect"] == "greater"
    assert entries[1]["method"] == "t interval over 3 seeds" and entries[1]["low"] < 0 < entries[1]["high"]


def test_a_comparison_without_its_uncertainty_is_refused(monkeypatch) -> None:
    from tlcourse.record import claim

    monkeypatch.delenv(RESULTS_ENV, raising=False)
    with pytest.raises(TypeError, match="needs its uncertainty"):
        claim("x", 0.92 > 0.71, statement="frozen beats scratch")
    with pytest.raises(TypeError, match="needs its uncertainty"):
        claim("x", np.bool_(True), statement="frozen beats scratch", exact="  ")
    with pytest.raises(TypeError, match="interval"):
        claim("x", 0.93, statement="just a number")  # a number is not an outcome
    with pytest.raises(ValueError, match="statement"):
        claim("x", _gap(0.1, 0.2), statement="")
    with pytest.raises(ValueError, match="margin"):
        claim("x", _gap(0.1, 0.2), statement="close", expect="close")
    with pytest.raises(ValueError, match="expect"):
        claim("x", _gap(0.1, 0.2), statement="s", expect="bigger")
    with pytest.raises(ValueError, match="low <= high"):
        claim("x", _gap(0.3, 0.1), statement="s")
    assert claim("x", np.bool_(False), statement="LoRA trains fewer parameters",
                 exact="parameter counts do not depend on the seed") == "did not hold"


def test_claim_html_escapes_and_colours() -> None:
    from tlcourse.record import _claim_html, _claim_lines

    lines = _claim_lines("within noise", "a < b", "0.1 vs 0.2", _gap(-0.1, 0.1), "<script>")
    page = _claim_html("within noise", lines)
    assert "a &lt; b" in page and "within noise" in page and "&lt;script&gt;" in page and "<script>" not in page
    assert "why this can happen" not in " ".join(_claim_lines("held", "a", "b", _gap(0.1, 0.2), "noise"))


def test_seed_tables_decide_comparisons_and_list_claims() -> None:
    """benchmarks/seeds.py: a comparison over seeds gets three outcomes; each claim shows its outcome per seed."""
    from benchmarks import seeds

    table = {
        "hymenoptera_finetune_val_acc": {"lesson": "03", "values": {"0": 0.961, "1": 0.941, "2": 0.948}},
        "hymenoptera_frozen_val_acc": {"lesson": "02", "values": {"0": 0.948, "1": 0.948, "2": 0.948}},
        "sentiment_finetune_acc": {"lesson": "06", "values": {"0": 0.84, "1": 0.83, "2": 0.83}},
        "sentiment_frozen_acc": {"lesson": "06", "values": {"0": 0.76, "1": 0.77, "2": 0.765}},
        "breast_test_auc": {"lesson": "05", "values": {"0": 0.86}},  # one seed: no row
        "claim_finetune_beats_frozen": {"lesson": "03", "values": {"0": "within noise", "1": "did not hold"}},
    }
    page = seeds.markdown(table, "cpu", {"cpu": "test CPU", "cores": 2})
    assert "| 03: fine-tuning beats 02's frozen features | ≈ within noise | +0.0020 |" in page
    assert "| 06: fine-tuning beats frozen sentence embeddings | ✓ held beyond noise |" in page
    assert "BreastMNIST" not in page.split("## Comparisons over seeds")[1].split("## The lessons")[0]
    assert "| finetune_beats_frozen | 03 | ≈ | ✗ | — |" in page
    assert "claim_finetune_beats_frozen" not in page.split("## Comparisons")[0]  # not among the numbers


def test_import_folds_runs_notebook_by_notebook(tmp_path) -> None:
    """run.py --import: a run of some notebooks replaces only those notebooks' entries of that profile."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]

    def run_of(notebooks: dict[str, float], machine: str) -> dict:
        return {"runs": {"cpu": {"profile": "cpu", "time": "t", "machine": {"cpu": machine, "cores": 2, "gpu": None,
                                                                             "python": "3", "torch": "2"},
                                 "notebooks": {nb: {"seconds": 1.0, "status": "ok", "time": "t"} for nb in notebooks},
                                 "records": [{"name": "x", "value": v, "notebook": nb, "lesson": nb}
                                             for nb, v in notebooks.items()]}}}

    out = tmp_path / "out"
    out.mkdir()
    (out / "RESULTS.json").write_text(json.dumps(run_of({"01": 0.1, "02": 0.2}, "old")))
    (tmp_path / "new.json").write_text(json.dumps(run_of({"02": 0.9}, "new")))
    result = subprocess.run([sys.executable, "-m", "benchmarks.run", "--profile", "cpu", "--out-dir", str(out),
                             "--import", str(tmp_path / "new.json")], cwd=repo, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    cpu = json.loads((out / "RESULTS.json").read_text())["runs"]["cpu"]
    assert sorted(cpu["notebooks"]) == ["01", "02"]
    assert sorted((r["notebook"], r["value"]) for r in cpu["records"]) == [("01", 0.1), ("02", 0.9)]
    bad = subprocess.run([sys.executable, "-m", "benchmarks.run", "--profile", "gpu", "--out-dir", str(out),
                          "--import", str(tmp_path / "new.json")], cwd=repo, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "holds no 'gpu' run" in bad.stderr


def test_benchmarks_describe_the_machine_once_and_read_anchors_as_data() -> None:
    """benchmarks/ is a package: one machine description (benchmarks.machine), the published anchors in
    anchors.json, and no script reaching into another through sys.path."""
    import ast

    from benchmarks import anchors, run, toolkit

    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    defs = {(p.name, n.name) for p in bench.glob("*.py") for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, ast.FunctionDef) and n.name in {"machine", "machine_info", "cpu_name", "_cpu_model"}}
    assert {name for name, _ in defs} == {"machine.py"}, defs
    data = json.loads((bench / "anchors.json").read_text())
    assert run.ANCHORS == anchors.ANCHORS and run.ANCHORS["breast_test_auc"][0] == data["lessons"]["breast_test_auc"]["value"]
    assert toolkit.ANCHORS == data["tutorial"]
    reaching = [p.name for p in bench.glob("*.py") if "sys.path" in p.read_text() and p.name != "sandbox.py"]
    assert reaching == []
