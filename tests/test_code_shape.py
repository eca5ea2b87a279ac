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


def _device_resolutions(tree: ast.AST) -> list[int]:
    """Lines that resolve a ``device`` argument by hand: ``torch.device(x) if x is not None else …`` (either
    branch order), the shape of the copies that once disagreed (one of them passed a ``torch.device`` on as a
    string)."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.IfExp):
            continue
        calls = [n for n in (node.body, node.orelse) if isinstance(n, ast.Call)
                 and ast.unparse(n.func) in ("torch.device", "device")]
        tests_none = isinstance(node.test, ast.Compare) and any(
            isinstance(c, ast.Constant) and c.value is None for c in node.test.comparators)
        if calls and tests_none:
            lines.append(node.lineno)
    return lines


def test_device_arguments_have_one_resolver() -> None:
    """Every ``device=`` argument goes through ``tlcourse.device.get_device`` (names and ``torch.device``)."""
    found = [f"{path.relative_to(PACKAGE)}:{line}" for path in sorted(PACKAGE.rglob("*.py"))
             for line in _device_resolutions(ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, f"resolve with get_device(device) instead: {found}"


def test_the_device_pattern_check_sees_a_copy() -> None:
    copy = "dev = torch.device(device) if device is not None else get_device()\n"
    flipped = "dev = get_device() if device is None else torch.device(device)\n"
    assert _device_resolutions(ast.parse(copy)) == [1] and _device_resolutions(ast.parse(flipped)) == [1]
    assert _device_resolutions(ast.parse("dev = get_device(device)\n")) == []
