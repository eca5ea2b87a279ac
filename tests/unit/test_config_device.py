"""Profiles and device helpers."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from tlcourse.config import PROFILES, profile, profile_name
from tlcourse.device import autocast, describe_device, get_device, seed_everything


def test_profile_selection_rules(monkeypatch) -> None:
    monkeypatch.delenv("TLCOURSE_PROFILE", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert profile_name() == ("gpu" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert profile().name == "grading"
    monkeypatch.setenv("TLCOURSE_PROFILE", "cpu")  # an explicit choice wins
    assert profile().name == "cpu"
    monkeypatch.setenv("TLCOURSE_PROFILE", "huge")
    with pytest.raises(ValueError, match="grading"):
        profile()


def test_profiles_scale_up() -> None:
    g, c, u = PROFILES["grading"], PROFILES["cpu"], PROFILES["gpu"]
    assert g.image_size < c.image_size <= u.image_size  # cpu: full size too, made affordable by caching
    assert g.epochs <= c.epochs <= u.epochs
    assert u.amp and not c.amp and not g.amp
    text = repr(g)
    assert text.startswith("Profile 'grading'") and "image_size" in text
    assert c.with_(epochs=1).epochs == 1 and c.epochs == 3


def test_get_device_override(monkeypatch) -> None:
    monkeypatch.setenv("TLCOURSE_DEVICE", "cpu")
    assert get_device().type == "cpu"
    assert describe_device(torch.device("cpu")).startswith("cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("TLCOURSE_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            get_device()


def test_seed_everything_repeats() -> None:
    seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    seed_everything(4)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) != a


def test_autocast_is_a_noop_on_cpu() -> None:
    x = torch.randn(4, 4)
    with autocast("cpu"):
        y = x @ x
    assert y.dtype == torch.float32


def test_environ_sets_unsets_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    from tlcourse.config import environ

    monkeypatch.setenv("TLCOURSE_A", "kept")
    monkeypatch.delenv("TLCOURSE_B", raising=False)
    with pytest.raises(RuntimeError), environ(TLCOURSE_A=None, TLCOURSE_B="set"):
        assert "TLCOURSE_A" not in os.environ and os.environ["TLCOURSE_B"] == "set"
        raise RuntimeError("restored even on an error")
    assert os.environ["TLCOURSE_A"] == "kept" and "TLCOURSE_B" not in os.environ


def _pretend_apple_silicon(monkeypatch) -> None:
    """A Mac with an M-series chip, as torch reports it: no CUDA, MPS available."""
    monkeypatch.delenv("TLCOURSE_DEVICE", raising=False)
    monkeypatch.delenv("TLCOURSE_PROFILE", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)


def test_apple_silicon_gets_mps_with_the_cpu_profile(monkeypatch) -> None:
    _pretend_apple_silicon(monkeypatch)
    monkeypatch.setenv("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    assert get_device().type == "mps"
    assert profile_name() == "cpu"  # the gpu profile is tuned for CUDA
    assert "fallback for missing ops on" in describe_device(torch.device("mps"))


def test_apple_silicon_without_fallback_warns(monkeypatch) -> None:
    _pretend_apple_silicon(monkeypatch)
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK", raising=False)
    with pytest.warns(RuntimeWarning, match="PYTORCH_ENABLE_MPS_FALLBACK=1"):
        assert get_device().type == "mps"
    monkeypatch.setenv("TLCOURSE_DEVICE", "cpu")  # the way out the warning names
    assert get_device().type == "cpu"


def test_importing_tlcourse_enables_the_mps_fallback() -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTORCH_ENABLE_MPS_FALLBACK"}
    out = subprocess.run([sys.executable, "-c", "import os, tlcourse; print(os.environ['PYTORCH_ENABLE_MPS_FALLBACK'])"],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "1"


def test_mps_path_makes_no_cuda_only_calls(monkeypatch) -> None:
    """On MPS: no CUDA autocast, no pinned memory, and the training verbs' CUDA checks stay off."""
    from torch.utils.data import TensorDataset

    from tlcourse.data import make_loader
    from tlcourse.train import _resolve_amp

    _pretend_apple_silicon(monkeypatch)

    def _no_cuda(*args, **kwargs):
        raise AssertionError("a CUDA-only call on the MPS path")

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", _no_cuda)
    monkeypatch.setattr(torch.cuda, "get_device_name", _no_cuda)
    mps = torch.device("mps")
    loader = make_loader(TensorDataset(torch.zeros(8, 3)), batch_size=4, device=mps)
    assert loader.pin_memory is False
    assert _resolve_amp(True, mps) is False
    with autocast(mps):  # a no-op: CUDA-style autocast is never entered on MPS
        assert not torch.is_autocast_enabled()
    assert describe_device(mps).startswith("mps")
