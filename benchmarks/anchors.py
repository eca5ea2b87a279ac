"""The published numbers the benchmarks compare with, read from ``anchors.json`` (data, with each value's source).

Example:
    >>> ANCHORS["breast_test_auc"][0], TUTORIAL["finetune"]["val_accuracy"]
    (0.901, 0.9346)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["ANCHORS", "TUTORIAL", "load"]

FILE = Path(__file__).resolve().parent / "anchors.json"


def load(path: Path = FILE) -> dict[str, Any]:
    """The whole anchors file."""
    return json.loads(path.read_text(encoding="utf-8"))


#: recorded name -> (value, where it comes from)
ANCHORS: dict[str, tuple[float, str]] = {k: (float(v["value"]), str(v["source"])) for k, v in load()["lessons"].items()}
#: the PyTorch tutorial's runs (ResNet-18, 224 px, 25 epochs of SGD), printed beside benchmarks.toolkit's
TUTORIAL: dict[str, dict[str, Any]] = load()["tutorial"]
