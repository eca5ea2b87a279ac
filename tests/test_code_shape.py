"""The package stays readable: no function over 80 lines, one copy of the batch/device/loader plumbing."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tlcourse"
MAX_LINES = 80


def _functions() -> list[tuple[str, str, int]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((str(path.relative_to(PACKAGE)), node.name, node.end_lineno - node.lineno + 1))
    return found


def test_no_function_over_80_lines() -> None:
    long = [f"{file}:{name} ({n} lines)" for file, name, n in _functions() if n > MAX_LINES]
    assert not long, "split these into named steps: " + ", ".join(long)


def test_plumbing_is_defined_once() -> None:
    """Batch/device/loader helpers live in tlcourse/_plumbing.py only (they used to drift apart per module)."""
    shared = {"to_device", "_to_device", "first_tensor", "_first_tensor", "as_loader", "_as_loader", "_choose"}
    copies = [f"{file}:{name}" for file, name, _ in _functions() if name in shared and file != "_plumbing.py"]
    assert not copies, f"use tlcourse._plumbing instead of a private copy: {copies}"
