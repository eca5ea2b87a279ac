"""The package stays readable: no function over 80 lines, one copy of the batch/device/loader plumbing."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "tlcourse"
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
    shared = {"to_device", "_to_device", "first_tensor", "_first_tensor", "as_loader", "_as_loader", "_choose",
              "_call", "_cycle", "_forever", "_inputs", "_split_batch", "_source_batch"}
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


def _copied_plumbing(tree: ast.AST) -> list[str]:
    """The shapes the copies had, whatever their names: a loss scaler built by hand (``GradScaler(...)``), a
    loader restarted inside a loop (``iter(loader)`` in a ``while`` or an ``except StopIteration``), a batch taken
    apart by hand (``isinstance(batch, ...)``, ``batch[0]``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("GradScaler"):
            found.append(f"{node.lineno}: GradScaler (use _plumbing.grad_scaler)")
        if isinstance(node, ast.While | ast.ExceptHandler):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Call) and ast.unparse(inner.func) == "iter":
                    found.append(f"{inner.lineno}: a loader restarted by hand (use _plumbing.cycle_batches)")
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "isinstance" and node.args \
                and ast.unparse(node.args[0]) == "batch":
            found.append(f"{node.lineno}: a batch read by hand (use _plumbing.read_batch)")
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "batch" \
                and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
            found.append(f"{node.lineno}: a batch read by hand (use _plumbing.read_batch)")
    return found


def test_batches_loaders_and_scalers_have_one_copy() -> None:
    """Batch reading, loader cycling and the loss scaler live in ``_plumbing`` only (train, features and adapt
    each had their own, and they disagreed on what a batch may look like)."""
    found = [f"{path.relative_to(PACKAGE)}:{hit}" for path in sorted(PACKAGE.rglob("*.py"))
             if path.name != "_plumbing.py" for hit in _copied_plumbing(ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, found


def test_the_plumbing_pattern_check_sees_copies() -> None:
    copies = {
        "s = torch.amp.GradScaler('cuda', enabled=False)": "GradScaler",
        "while True:\n    for b in loader: pass\n    it = iter(loader)": "restarted",
        "try:\n    b = next(it)\nexcept StopIteration:\n    it = iter(loader)": "restarted",
        "x = batch[0] if isinstance(batch, tuple) else batch": "batch read",
    }
    for source, words in copies.items():
        assert any(words in hit for hit in _copied_plumbing(ast.parse(source))), source
    assert _copied_plumbing(ast.parse("b = read_batch(next(it), dev)\nscaler = grad_scaler(dev)")) == []


def _pooling_registries(tree: ast.AST) -> list[int]:
    """Dict literals keyed by two or more pooling names (a second pooling registry, as features and text once had,
    one of them ignoring padding masks)."""
    names = {"mean", "avg", "max", "cls", "flat"}
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Dict)
            and len({k.value for k in node.keys if isinstance(k, ast.Constant)} & names) >= 2]


def test_one_pooling_registry() -> None:
    found = [f"{path.relative_to(PACKAGE)}:{line}" for path in sorted(PACKAGE.rglob("*.py"))
             if path.name != "pooling.py" for line in _pooling_registries(ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, f"pool through tlcourse.pooling.POOLINGS: {found}"
    assert _pooling_registries(ast.parse('POOLS = {"avg": a, "max": b}')) == [1]
    assert _pooling_registries(ast.parse('GROUPS = {"stem": a, "head": b}')) == []


def test_every_module_is_mapped_and_reachable() -> None:
    """Each module is in ARCHITECTURE.md's map and (but the hub's spawner and login, which need JupyterHub) a lazy
    attribute of ``tlcourse`` (``tlcourse.stats`` once failed as an attribute)."""
    import tlcourse

    modules = {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_")}
    modules |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    architecture = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert [m for m in sorted(modules) if f"`{m}`" not in architecture and f"`{m}/`" not in architecture] == []
    # ``tlcourse.record`` and ``tlcourse.quiz`` are the modules' functions of the same name, on purpose
    unreachable = [m for m in sorted(modules - {"hubspawner", "hublti"}) if not hasattr(tlcourse, m)]
    assert unreachable == [], f"add these to tlcourse._SUBMODULES: {unreachable}"


def _imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    found |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return {name for name in found if name.startswith("tlcourse")}


def test_generic_modules_do_not_reach_up() -> None:
    """``trunk`` (generic: any model cut into stages) and ``features`` import nothing from ``text``; ``pooling``
    is a leaf. The sentence classifier registers its own groups and stages."""
    assert not {m for m in _imports("trunk") if m.startswith(("tlcourse.text", "tlcourse.viz"))}, _imports("trunk")
    assert not {m for m in _imports("features") if m.startswith(("tlcourse.text", "tlcourse.viz"))}
    assert _imports("pooling") == set()


def _private_imports(tree: ast.AST) -> list[str]:
    """``from tlcourse.x import _name``: a module reaching into another's private names (grading/ once imported 35
    of them: its real internal API carried underscores)."""
    return [f"{node.module}.{alias.name}" for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tlcourse")
            for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]


def test_no_module_imports_another_modules_private_names() -> None:
    """An underscore name is private to its module; what modules share has a public name (in ``__all__`` when it
    is for users, without it when it is the package's internal API)."""
    found = [f"{path.relative_to(PACKAGE)}: {hit}" for path in sorted(PACKAGE.rglob("*.py"))
             for hit in _private_imports(ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, found
    assert _private_imports(ast.parse("from tlcourse.grading.course import _api")) == ["tlcourse.grading.course._api"]
    assert _private_imports(ast.parse("from tlcourse.grading.course import course_dir")) == []


def _imports_of(path: Path, package: Path) -> set[str]:
    """Every tlcourse module ``path`` imports, at the top or inside a function (a lazy import still ties them)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        for name in names:
            parts = name.split(".")
            while parts and parts[0] == "tlcourse":
                candidate = package.parent.joinpath(*parts)
                if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
                    found.add(".".join(parts))
                    break
                parts = parts[:-1]
    return found


def test_no_import_circle_in_the_package() -> None:
    """No module reaches, through any chain of imports (lazy ones included), back to itself: each sits on a layer.
    Package ``__init__`` files are left out (they gather their modules' names by design)."""
    import networkx as nx

    package = PACKAGE
    modules = {".".join(p.relative_to(package.parent).with_suffix("").parts): p for p in package.rglob("*.py")
               if p.name != "__init__.py"}
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        graph.add_edges_from((name, dep) for dep in _imports_of(path, package) if dep in modules and dep != name)
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert circles == [], circles
