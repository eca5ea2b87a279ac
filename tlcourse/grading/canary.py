"""Canary cells: tests that must fail, slipped among the real ones, so that a lying kernel gives itself away.

The grader cannot see inside a student's kernel: code in an answer cell can rewrite what later cells run (IPython
input or AST transformers), swallow their exceptions, patch ``compile`` or the library checks a test calls
(``torch.equal``, ``np.allclose``, …), or trace the test and swap what it reads. Every one of those lies also
touches cells the student has never seen. :func:`insert` puts, after each graded test cell, a few canary cells made
with a per-run secret (random names and values, so they cannot be recognised or precomputed) that must fail in an
honest kernel: asserts and the library checks the course's tests use, and a **mirror** — the test cell's own source,
to the character, run while the names the answers define are bound to stand-ins that fail on any use (a trusted
cell binds them before and another restores the student's after). A lie that picks the cells to lie on by their
text cannot tell a mirror from the real test. :func:`verdict` reads the kernel's replies: a canary that "passed"
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
    "mirror": lambda a, b, n, t: t,
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


SETUP = "setup"  # the kind of the trusted cells around a mirror (they must run; they are no evidence)


def answer_names(sources: list[str]) -> frozenset[str]:
    """The names the answer cells of a notebook define at top level (functions, classes, variables).

    Example:
        >>> sorted(answer_names(["def f(x): return x", "k = 3", "class Head: pass"]))
        ['Head', 'f', 'k']
    """
    import ast

    names: set[str] = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id for tgt in targets for t in ast.walk(tgt) if isinstance(t, ast.Name)}
    return frozenset(names)


def _around(names: frozenset[str], rng: random.Random) -> tuple[str, str]:
    """The trusted cells before and after a mirror: bind every answer name to a stand-in that fails on any use,
    then give the student's objects back (or remove names the student never defined)."""
    saved, stand_in, gone, loop, value = (_name(rng) for _ in range(5))
    listed = repr(sorted(names))
    nonce = _name(rng)
    before = (f"class {stand_in}:\n"
              f"    def __getattr__(self, name):\n        raise AssertionError({nonce!r})\n"
              f"    def __call__(self, *args, **kwargs):\n        raise AssertionError({nonce!r})\n"
              f"    def __bool__(self):\n        raise AssertionError({nonce!r})\n"
              f"    def __iter__(self):\n        raise AssertionError({nonce!r})\n\n\n"
              f"{gone} = object()\n{saved} = {{n: globals().get(n, {gone}) for n in {listed}}}\n"
              f"for {loop} in {listed}:\n    globals()[{loop}] = {stand_in}()\ndel {loop}\n")
    after = (f"for {loop}, {value} in {saved}.items():\n    if {value} is {gone}:\n"
             f"        globals().pop({loop}, None)\n    else:\n        globals()[{loop}] = {value}\n"
             f"del {saved}, {stand_in}, {gone}, {loop}, {value}\n")
    return before, after


def _is_test(cell: Any) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _cell(source: str) -> Any:
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    cell.pop("id", None)  # nbformat 4.4 cells: ids are optional, and none is needed for a cell that is stripped
    return cell


def insert(nb: Any, rng: random.Random, per_test: int = PER_TEST,
           names: frozenset[str] = frozenset()) -> tuple[Any, dict[int, Canary]]:
    """A copy of ``nb`` with canary cells after each graded test cell and at the end; (notebook, {index: canary}).

    The kinds after each test are drawn from ``rng``; with the answers' ``names`` (:func:`answer_names`) a mirror
    of the test, between its two trusted cells, comes first. The last block has every other kind.
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
        if names:
            before, after = _around(names, rng)
            for kind, source in ((SETUP, before), ("mirror", cell.source), (SETUP, after)):
                canaries[len(cells)] = Canary(kind, last_test, source)
                cells.append(_cell(source))
        for kind in rng.sample(kinds, min(per_test - 1, len(kinds))):
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
    passed = [c for i, c in sorted(canaries.items()) if replies.get(i) == "ok" and c.kind != SETUP]
    return [f"a check that must fail passed after {c.after} ({c.kind}: {c.source.splitlines()[0][:70]!r})"
            for c in passed]
