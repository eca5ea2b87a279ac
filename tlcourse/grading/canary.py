"""Canary cells: tests that must fail, slipped among the real ones, so that a lying kernel gives itself away.

The grader cannot see inside a student's kernel: code in an answer cell can rewrite what later cells run (IPython
input or AST transformers), swallow their exceptions, patch ``compile`` or the library checks a test calls
(``torch.equal``, ``np.allclose``, …), or trace the test and swap what it reads. Every one of those lies also
touches cells the student has never seen. :func:`insert` puts, after each graded test cell, a few canary cells made
with a per-run secret (random names and values, so they cannot be recognised or precomputed): each looks like test
code — asserts, the library checks the course's tests use, the preceding test's own source behind a failing
assert — and must fail in an honest kernel. :func:`verdict` reads the kernel's replies: a canary that "passed"
means the kernel does not report failures honestly, and the submission is withheld for review.

Example:
    >>> import nbformat, random
    >>> test = nbformat.v4.new_code_cell("assert f(2) == 4")
    >>> test.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t1", "points": 1}
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def f(x): return 2 * x"), test])
    >>> sent, canaries = insert(nb, random.Random(0))
    >>> len(sent.cells) > len(nb.cells) and all(i >= 2 for i in canaries)
    True
    >>> verdict(canaries, {i: "error" for i in canaries})
    []
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CANARIES", "Canary", "insert", "strip", "verdict", "PER_TEST"]

PER_TEST = 3  # canaries after each graded test cell (all kinds once more at the end of the notebook)


@dataclass(frozen=True)
class Canary:
    """One inserted cell: its kind, the graded test it follows, and its source (the evidence if it passes)."""

    kind: str
    after: str
    source: str


def _ints(rng: random.Random) -> tuple[int, int]:
    """Two different small positive integers (small: relative tolerances cannot make them close)."""
    a = rng.randrange(1, 1000)
    return a, a + rng.randrange(1, 100)


def _name(rng: random.Random) -> str:
    return "_" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(10))


#: Canary kinds: (a, b, a fresh name, the preceding test's source) -> a cell that must raise in an honest kernel
#: (``a`` and ``b`` are different small positive integers, drawn per run).
CANARIES: dict[str, Callable[[int, int, str, str], str]] = {
    "assert": lambda a, b, n, t: f"{n} = {a}\nassert {n} == {b}, f'expected {b}, got {{{n}}}'",
    "raise": lambda a, b, n, t: f"raise AssertionError({n!r})",
    "name": lambda a, b, n, t: f"assert {n}({a}) is not None",
    "mirror": lambda a, b, n, t: f"assert {a} < 0\n{t}",
    "torch.equal": lambda a, b, n, t: f"import torch\nassert torch.equal(torch.tensor([{a}]), torch.tensor([{b}]))",
    "torch.allclose": lambda a, b, n, t: (
        f"import torch\nassert torch.allclose(torch.tensor([{a}.0]), torch.tensor([{b}.0]), atol=1e-3)"),
    "np.allclose": lambda a, b, n, t: f"import numpy as np\nassert np.allclose(np.array([{a}.5]), np.array([{b}.5]))",
    "np.testing": lambda a, b, n, t: f"import numpy as np\nnp.testing.assert_allclose([{a}.0], [{b}.0])",
    "math.isclose": lambda a, b, n, t: f"import math\nassert math.isclose({a}.25, {b}.25)",
    "isinstance": lambda a, b, n, t: f"assert isinstance({a}, str)",
    "len": lambda a, b, n, t: f"{n} = list(range({a}))\nassert len({n}) == {b}",
    "compile": lambda a, b, n, t: f"exec(compile('assert {a} == {b}', '<test>', 'exec'))",
}


def _make(kind: str, rng: random.Random, test: str) -> str:
    return CANARIES[kind](*_ints(rng), _name(rng), test)


def _is_test(cell: Any) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _cell(source: str) -> Any:
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    cell.pop("id", None)  # nbformat 4.4 cells: ids are optional, and none is needed for a cell that is stripped
    return cell


def insert(nb: Any, rng: random.Random, per_test: int = PER_TEST) -> tuple[Any, dict[int, Canary]]:
    """A copy of ``nb`` with canary cells after each graded test cell and at the end; (notebook, {index: canary}).

    The kinds after each test are drawn from ``rng`` (``mirror`` always among them); the last block has every kind.
    """
    out = copy.deepcopy(nb)
    cells, canaries = [], {}
    kinds = [k for k in CANARIES if k != "mirror"]
    last_test = ""
    for cell in out.cells:
        cells.append(cell)
        if not _is_test(cell):
            continue
        last_test = cell.metadata["nbgrader"].get("grade_id", "?")
        for kind in ["mirror", *rng.sample(kinds, min(per_test - 1, len(kinds)))]:
            canaries[len(cells)] = Canary(kind, last_test, _make(kind, rng, cell.source))
            cells.append(_cell(canaries[len(cells)].source))
    if canaries:
        for kind in kinds:
            canaries[len(cells)] = Canary(kind, last_test, _make(kind, rng, ""))
            cells.append(_cell(canaries[len(cells)].source))
    out.cells = cells
    return out, canaries


def strip(nb: Any, canaries: dict[int, Canary]) -> Any:
    """``nb`` without the canary cells (their indices as :func:`insert` returned them)."""
    out = copy.copy(nb)
    out.cells = [c for i, c in enumerate(nb.cells) if i not in canaries]
    return out


def verdict(canaries: dict[int, Canary], replies: dict[int, str]) -> list[str]:
    """Evidence of lying: each canary whose kernel reply was ``ok`` (a failure reported as a success).

    A canary that never ran (the kernel died, time ran out) is no evidence either way.
    """
    passed = [c for i, c in sorted(canaries.items()) if replies.get(i) == "ok"]
    return [f"a check that must fail passed after {c.after} ({c.kind}: {c.source.splitlines()[0][:70]!r})"
            for c in passed]
