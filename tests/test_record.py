"""Tests of tlcourse.record: headline numbers appended to the TLCOURSE_RESULTS file."""

from __future__ import annotations

import datetime as dt
import json

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


def test_claim_shows_the_verdict_and_records_it(tmp_path, monkeypatch, capsys) -> None:
    from tlcourse.record import claim

    path = tmp_path / "results.json"
    monkeypatch.setenv(RESULTS_ENV, str(path))
    claim("transfer_wins", np.bool_(0.92 > 0.71), "frozen 0.920 vs scratch 0.710", statement="transfer wins",
          lesson="02")
    claim("small_lr_wins", 0.80 > 0.85, "small 0.800 vs large 0.850", statement="a small rate wins",
          if_not="one seed on 153 images: a single image is 0.65 points")
    out = capsys.readouterr().out
    assert "✓ held in this run: transfer wins\n    frozen 0.920 vs scratch 0.710" in out
    assert "✗ did not hold in this run: a small rate wins" in out and "why this can happen: one seed" in out
    assert [(e["name"], e["value"]) for e in load_records(path)] == [("claim_transfer_wins", 1),
                                                                      ("claim_small_lr_wins", 0)]


def test_claim_rejects_a_claim_that_cannot_fail(monkeypatch) -> None:
    from tlcourse.record import claim

    monkeypatch.delenv(RESULTS_ENV, raising=False)
    with pytest.raises(TypeError, match="must be a bool"):
        claim("x", 0.93, "just a number")  # a number is not an outcome
    with pytest.raises(ValueError, match="evidence"):
        claim("x", True, "")


def test_claim_html_escapes_and_colours() -> None:
    from tlcourse.record import _claim_html

    page = _claim_html(False, "a < b", "0.1 vs 0.2", "noise")
    assert "a &lt; b" in page and "did not hold" in page and "noise" in page
    assert "noise" not in _claim_html(True, "a", "b", "noise")
