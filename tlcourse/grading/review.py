"""Static review of a student's own code: an allow-list of what honest course code does, not a list of known tricks.

A submitted notebook runs in a sandboxed kernel, but the kernel's own reports cannot be trusted once student code
tampers with it (input transformers, ``post_run_cell`` hooks, a patched ``compile``, a trace function, objects whose
comparisons always hold, ``torch.equal`` replaced ...). Before the automatic points count, every code cell whose
exact source is not one of the course's own cells (``trusted_sources``: the locked cells, tests and released
stubs) is parsed the way IPython runs it (magics and shell escapes translated first) and checked by each rule of
:data:`RULES`. Cell metadata is never consulted: a student can claim ``locked`` for anything.

Each rule admits what the course's reference solutions and plausible wrong submissions do and flags the rest, so a
finding means "read this cell by hand", never "this student cheated":

* ``import``: only modules of :data:`ALLOWED_MODULES` (no private or denied submodules, no ``*``, no relative);
* ``dangerous-name``: ``exec``/``eval``/``compile``/``globals``/``__import__``/``get_ipython``/IPython history ...,
  ``getattr``/``setattr``/``delattr`` unless the attribute is a visible string, ``type`` with three arguments,
  ``open`` in a writing mode, attributes such as ``settrace``, ``_getframe``, ``run_cell``, ``events``;
* ``dunder``: double-underscore names outside :data:`ALLOWED_DUNDERS` (names, attributes, strings, definitions);
* ``metaclass``, ``subclass`` (of tensors, arrays, or Python's value types), ``introspection`` (frames, code
  objects, modules reached as attributes), ``private`` (``_x`` attributes of modules);
* ``monkey-patch``: assignment, ``del`` or ``setattr`` on an attribute or item of an imported name (aliases
  followed), of ``type(...)``, or a module handed to a function;
* ``shadowing``: rebinding, at the top of a cell or through ``global``, a builtin the course's cells use or a
  name the course's cells import;
* ``magic``/``shell``: IPython magics other than :data:`ALLOWED_MAGICS`, and ``!`` escapes;
* ``unsafe-api``: ``os`` beyond its harmless read-only part, pickle loaders, backends named by module, file
  writers, ``trust_remote_code``, file names of Python modules;
* ``unparsable``: the cell is not Python (the caller decides whether the kernel ran it anyway).

>>> cells = [{"cell_type": "code", "source": "import torch\\ntorch.equal = lambda *a: True", "metadata": {}}]
>>> [(f.cell, f.line, f.rule) for f in review_notebook({"cells": cells}, trusted_sources=())]
[('cell 1', 2, 'monkey-patch')]
>>> review_notebook({"cells": cells}, trusted_sources=[cells[0]["source"]])
[]
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["Finding", "review_notebook", "review_source", "RULES", "ALLOWED_MODULES", "ALLOWED_DUNDERS",
           "ALLOWED_MAGICS"]


@dataclass(frozen=True)
class Finding:
    """One reason to read a cell by hand: the cell's label (grade id or ``cell N``), the 1-based line, the rule
    that fired and the offending source line (trimmed).

    >>> Finding("ex1", 3, "dunder", "def __eq__(self, o): return True")
    Finding(cell='ex1', line=3, rule='dunder', evidence='def __eq__(self, o): return True')
    """

    cell: str
    line: int
    rule: str
    evidence: str


# --------------------------------------------------------------------------------------------- allow-lists
#: top-level packages a student may import: the field's libraries (those the lessons use, plus their close
#: relatives) and harmless standard library. ``os`` is allowed for ``os.path`` and friends; its other attributes
#: are checked by ``unsafe-api``. ``IPython`` only as ``IPython.display`` (see :data:`ALLOWED_DOTTED`).
ALLOWED_MODULES = frozenset({
    "torch", "torchvision", "timm", "transformers", "peft", "sentence_transformers", "sklearn", "skimage",
    "numpy", "scipy", "pandas", "matplotlib", "seaborn", "PIL", "tqdm", "tlcourse", "ipywidgets",
    "math", "cmath", "random", "statistics", "collections", "itertools", "functools", "dataclasses", "typing",
    "copy", "time", "datetime", "pathlib", "json", "csv", "re", "string", "textwrap", "os", "warnings", "enum",
    "abc", "heapq", "bisect", "fractions", "decimal", "numbers", "pprint",
})
#: packages allowed only through one of their submodules
ALLOWED_DOTTED = frozenset({"IPython.display"})
#: submodules of allowed packages that reach the grader, native code, other processes, code loading or kernels
DENIED_MODULES = frozenset({
    "tlcourse.grading", "torch.utils.cpp_extension", "torch.library", "torch.multiprocessing", "torch.ops",
    "torch.hub", "torch.package", "torch.overrides", "torch.distributed", "torch.jit", "numpy.ctypeslib",
    "numpy.f2py", "numpy.distutils", "numpy.testing.overrides", "scipy.weave", "os.path.os", "os.path.sys",
})
#: what ``os`` is for in student code (everything else of it: processes, environment, descriptors, files)
ALLOWED_OS = frozenset({"path", "sep", "linesep", "pathsep", "curdir", "pardir", "extsep", "getcwd", "listdir",
                        "scandir", "walk", "cpu_count", "fspath", "name"})
#: dunder names honest code needs: construction, container protocol (a torch ``Dataset``), text forms, names
ALLOWED_DUNDERS = frozenset({"__init__", "__len__", "__getitem__", "__iter__", "__repr__", "__str__", "__name__",
                             "__main__", "__version__"})
#: line/cell magics a student may use, with the arguments each accepts (None: any code, reviewed as code)
ALLOWED_MAGICS: dict[str, frozenset[str] | None] = {
    "matplotlib": frozenset({"", "inline", "widget", "ipympl"}), "time": None, "timeit": None}
# (``%matplotlib module://x`` would import module x as a backend, hence its arguments are listed)
#: builtins (and IPython's user-namespace names) that run or reach code, frames, the kernel or its history
DANGEROUS_NAMES = frozenset({
    "exec", "eval", "compile", "globals", "locals", "vars", "__import__", "breakpoint", "get_ipython", "In",
    "Out", "exit", "quit", "__builtins__", "__loader__", "__spec__",
})
#: attribute names with no honest use here: tracing, frames, kernel hooks, code execution
DANGEROUS_ATTRIBUTES = frozenset({
    "settrace", "setprofile", "gettrace", "_getframe", "set_trace", "run_cell", "run_line_magic",
    "run_cell_magic", "run_code", "run_ast_nodes", "events", "input_transformers_post", "input_transformers_cleanup",
    "ast_transformers", "register_magic_function", "user_ns", "user_global_ns", "exec", "execfile", "getoutput",
    "system", "popen", "get_ipython", "f_trace", "meta_path", "path_hooks",
})
#: attributes that reach frames, code objects or tracebacks, and modules reached as someone's attribute
INTROSPECTION_ATTRIBUTES = frozenset({
    "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_lineno", "gi_frame", "gi_code", "cr_frame",
    "cr_code", "ag_frame", "ag_code", "tb_frame", "tb_next", "co_code", "co_consts", "co_names",
    "sys", "builtins", "inspect", "gc", "ctypes", "importlib", "subprocess", "threading", "_thread", "atexit",
    "marshal", "pickle", "socket", "ctypeslib", "cpp_extension", "multiprocessing", "mock",
    "IPython", "ipykernel", "traitlets", "shutil", "posix", "os",
})
#: base classes whose subclasses could answer a test's own calls (``.all()``, ``.item()``, ``==``) falsely
DENIED_BASES = frozenset({
    "torch.Tensor", "torch.nn.Parameter", "torch.nn.parameter.Parameter", "numpy.ndarray", "numpy.generic",
    "numpy.ma.MaskedArray", "pandas.DataFrame", "pandas.Series", "int", "float", "complex", "bool", "str",
    "bytes", "tuple", "list", "dict", "set", "frozenset", "type",
})
#: dotted calls (after resolving aliases) that load code or pickles, or pick a backend by module name
UNSAFE_CALLS = frozenset({
    "torch.load", "torch.hub", "torch.package", "torch.serialization", "pandas.read_pickle", "pandas.io.pickle",
    "pandas.compat.pickle_compat", "numpy.lib.format", "numpy.lib.npyio", "matplotlib.use",
    "matplotlib.pyplot.switch_backend", "numpy.savetxt", "numpy.load",
})
#: keyword arguments that switch a loader to unpickling (any value but a literal False / True respectively)
PICKLE_SWITCHES = {"allow_pickle": False, "weights_only": True}
#: method names that write files whose content the caller controls
WRITER_ATTRIBUTES = frozenset({"write_text", "write_bytes", "to_pickle", "savetxt", "symlink_to", "hardlink_to"})
_DUNDER = re.compile(r"__[A-Za-z0-9_]+?__")
_HISTORY = re.compile(r"_i+\d*|_\d+|_oh|_ih|_dh")
_CODE_FILE = re.compile(r"\.(py|pyc|pth|so|pyd|ipy)\s*$")
_MODE = re.compile(r"[rbtU]*")
_MODE_LIKE = re.compile(r"[rwaxbtU+]+")


# ------------------------------------------------------------------------------------------------ context
@dataclass
class _Cell:
    """What every rule sees of one cell: its trees (the cell and the code inside allowed magics), its lines, the
    names bound to imported things (name -> dotted path, aliases followed), the names the course's cells bind or
    use (``course_names``), what the course imports under each name, and the names bound to modules."""

    label: str
    lines: list[str]
    trees: list[ast.Module]
    imported: dict[str, str]
    course_names: frozenset[str] = frozenset()
    course_imports: dict[str, frozenset[str]] = field(default_factory=dict)
    modules: frozenset[str] = frozenset()

    def walk(self) -> Iterator[ast.AST]:
        for tree in self.trees:
            yield from ast.walk(tree)


def _ipython_code(source: str) -> str:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _parse(source: str, offset: int = 0) -> list[ast.Module]:
    """The cell as IPython runs it, plus the code inside allowed code-running magics (line numbers of the cell).
    Raises SyntaxError (or ValueError) when it is not Python.

    >>> [ast.unparse(t) for t in _parse("%time y = f(1)")]
    ["get_ipython().run_line_magic('time', 'y = f(1)')", 'y = f(1)']
    """
    tree = ast.parse(_ipython_code(source))
    ast.increment_lineno(tree, offset)
    trees = [tree]
    for node in ast.walk(tree):
        magic = _magic(node)
        if magic and ALLOWED_MAGICS.get(magic[0], "") is None:
            line, cell = magic[2]
            if line:
                trees += _parse(_strip_timeit_options(line), node.lineno - 1)
            if cell:
                trees += _parse(cell, node.lineno)
    return trees


def _strip_timeit_options(arg: str) -> str:
    """``%timeit``'s options off its code.

    >>> _strip_timeit_options("-n 3 -r2 -q f(1)")
    'f(1)'
    """
    return re.sub(r"^\s*((-[nrp]\s*\d+|-[tcqo])(\s+|$))*", "", arg)


_MAGIC_METHODS = frozenset({"run_line_magic", "run_cell_magic", "system", "getoutput"})


def _magic(node: ast.AST) -> tuple[str, str, tuple[str | None, str | None]] | None:
    """(magic name, method, (line, cell)) of ``get_ipython().<method>(name, ...)`` -- what IPython makes of
    ``%``, ``%%`` and ``!`` -- else None. The name is ``!`` for shell escapes, ``?`` when not a literal; line and
    cell are None when not literals.

    >>> _magic(ast.parse("get_ipython().run_cell_magic('time', '', 'x')", mode="eval").body)
    ('time', 'run_cell_magic', ('', 'x'))
    """
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MAGIC_METHODS
            and isinstance(node.func.value, ast.Call) and isinstance(node.func.value.func, ast.Name)
            and node.func.value.func.id == "get_ipython"):
        return None
    consts = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in node.args]
    if node.func.attr in ("system", "getoutput"):
        return "!", node.func.attr, (None, None)
    if node.keywords or not consts or (node.func.attr == "run_cell_magic") != (len(consts) == 3):
        return "?", node.func.attr, (None, None)
    return consts[0] or "?", node.func.attr, (consts[1] if len(consts) > 1 else "", consts[2] if len(consts) > 2 else None)


def _dotted(node: ast.AST, imported: dict[str, str]) -> str | None:
    """The dotted path of a name or attribute chain rooted in an imported name, else None.

    >>> _dotted(ast.parse("nn.Module.train", mode="eval").body, {"nn": "torch.nn"})
    'torch.nn.Module.train'
    """
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in imported:
        return ".".join([imported[node.id], *reversed(attrs)])
    return None


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node


def _import_bindings(tree: ast.AST) -> Iterator[tuple[str, str]]:
    """(bound name, dotted path) of each import in a tree."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield (a.asname, a.name) if a.asname else (a.name.split(".")[0], a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name != "*":
                    yield a.asname or a.name, f"{node.module}.{a.name}"


def _aliases(trees: list[ast.AST], imported: dict[str, str]) -> dict[str, str]:
    """``imported`` plus simple aliases (``t = torch``, ``M = nn.Module``) found in the trees, to a fixed point."""
    out = dict(imported)
    pairs = [(n.targets[0].id, n.value) for t in trees for n in ast.walk(t)
             if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
             and isinstance(n.value, ast.Name | ast.Attribute)]
    pairs += [(n.target.id, n.value) for t in trees for n in ast.walk(t)
              if isinstance(n, ast.NamedExpr | ast.AnnAssign) and isinstance(n.target, ast.Name)
              and isinstance(n.value, ast.Name | ast.Attribute)]
    for _ in range(4):
        for name, value in pairs:
            dotted = _dotted(value, out)
            if dotted and name not in out:
                out[name] = dotted
    return out


def _literal_loops(cell: _Cell) -> dict[str, frozenset[str]]:
    """Names that only ever iterate over a literal list of strings (``for name in ["a", "b"]``): their values."""
    stores: dict[str, int] = {}
    for node in cell.walk():
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            stores[node.id] = stores.get(node.id, 0) + 1
    loops: dict[str, list[frozenset[str]]] = {}
    for node in cell.walk():
        if (isinstance(node, ast.For | ast.comprehension) and isinstance(node.target, ast.Name)
                and isinstance(node.iter, ast.List | ast.Tuple | ast.Set)
                and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.iter.elts)):
            loops.setdefault(node.target.id, []).append(frozenset(e.value for e in node.iter.elts))
    return {name: frozenset().union(*values) for name, values in loops.items() if stores[name] == len(values)}


def _attribute_names(node: ast.AST, cell: _Cell) -> frozenset[str] | None:
    """The attribute names an expression can be, if the code shows them all (a literal, or a literal loop)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return frozenset({node.value})
    if isinstance(node, ast.Name):
        return _literal_loops(cell).get(node.id)
    return None


def _builtin_call(node: ast.AST, name: str, cell: _Cell) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
            and name not in cell.imported)


# -------------------------------------------------------------------------------------------------- rules
def _module_allowed(dotted: str) -> bool:
    """Whether a student may import ``dotted`` (a module, or a name of a module).

    >>> [_module_allowed(m) for m in ("torch.nn", "os.path", "os.system", "IPython.display", "IPython.core")]
    [True, True, False, True, False]
    """
    parts = dotted.split(".")
    if any(p.startswith("_") for p in parts) or _under(dotted, DENIED_MODULES):
        return False
    if parts[0] == "os":
        return len(parts) == 1 or parts[1] in ALLOWED_OS
    return parts[0] in ALLOWED_MODULES or _under(dotted, ALLOWED_DOTTED)


def _under(dotted: str, prefixes: Collection[str]) -> bool:
    return any(dotted == p or dotted.startswith(p + ".") for p in prefixes)


def _imports(cell: _Cell) -> Iterator[ast.AST]:
    """Imports outside the allow-list, ``from x import *`` and relative imports."""
    for node in cell.walk():
        if isinstance(node, ast.Import) and not all(_module_allowed(a.name) for a in node.names):
            yield node
        elif isinstance(node, ast.ImportFrom) and (node.level or not node.module or not all(
                a.name != "*" and _module_allowed(f"{node.module}.{a.name}") for a in node.names)):
            yield node


def _dangerous_names(cell: _Cell) -> Iterator[ast.AST]:
    """Builtins and user-namespace names that run code or reach the kernel, whatever the spelling."""
    allowed: set[int] = set()
    for node in cell.walk():
        if _magic(node):  # the magic and shell rules judge these
            allowed |= {id(node.func), id(node.func.value.func)}
        for name in ("getattr", "setattr", "delattr"):
            if _builtin_call(node, name, cell) and len(node.args) >= 2 and _attribute_names(node.args[1], cell):
                allowed.add(id(node.func))
        if _builtin_call(node, "type", cell) and len(node.args) == 1 and not node.keywords:
            allowed.add(id(node.func))
        if _builtin_call(node, "open", cell) and _read_only(node.args[1:2], node.keywords):
            allowed.add(id(node.func))
    own = {n.id for n in cell.walk() if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    for node in cell.walk():
        if isinstance(node, ast.Name) and id(node) not in allowed and node.id not in cell.imported and (
                node.id in DANGEROUS_NAMES or node.id in ("getattr", "setattr", "delattr", "type", "open")
                or (_HISTORY.fullmatch(node.id) and isinstance(node.ctx, ast.Load) and node.id not in own)):
            yield node
        elif isinstance(node, ast.Attribute) and node.attr in DANGEROUS_ATTRIBUTES and id(node) not in allowed:
            yield node
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "open"
              and not _read_only([a for a in node.args[:1] if isinstance(a, ast.Constant)
                                  and isinstance(a.value, str) and _MODE_LIKE.fullmatch(a.value)], node.keywords)):
            yield node


def _read_only(mode_args: list[ast.expr], keywords: list[ast.keyword]) -> bool:
    """Whether an ``open`` call's mode (positional candidates, or ``mode=``) is visibly a reading one."""
    modes = [*mode_args, *(k.value for k in keywords if k.arg == "mode")]
    if any(k.arg is None for k in keywords):
        return False
    return all(isinstance(m, ast.Constant) and isinstance(m.value, str) and _MODE.fullmatch(m.value) for m in modes)


def _dunder_words(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.keyword | ast.arg):
        return [node.arg or ""]
    if isinstance(node, ast.alias):
        return [node.name, node.asname or ""]
    if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
        text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
        return _DUNDER.findall(text)
    return []


def _dunders(cell: _Cell) -> Iterator[ast.AST]:
    """Double-underscore names (names, attributes, definitions, keywords, strings) outside the short allow-list."""
    for node in cell.walk():
        words = [w for w in _dunder_words(node) if _DUNDER.fullmatch(w) and w.strip("_")]
        if any(w not in ALLOWED_DUNDERS for w in words) and hasattr(node, "lineno"):
            yield node


def _metaclass(cell: _Cell) -> Iterator[ast.AST]:
    """``class X(metaclass=...)``."""
    for node in cell.walk():
        if isinstance(node, ast.ClassDef) and any(k.arg in ("metaclass", None) for k in node.keywords):
            yield node


def _subclass(cell: _Cell) -> Iterator[ast.AST]:
    """Classes derived from tensors, arrays, frames or Python's value types, and ``.as_subclass``."""
    for node in cell.walk():
        if isinstance(node, ast.ClassDef):
            bases = [_dotted(b, cell.imported) or (b.id if isinstance(b, ast.Name) else "?") for b in node.bases]
            if any(b in DENIED_BASES for b in bases) or any(isinstance(b, ast.Starred) for b in node.bases):
                yield node
        elif isinstance(node, ast.Attribute) and node.attr in ("as_subclass", "_make_subclass"):
            yield node


def _introspection(cell: _Cell) -> Iterator[ast.AST]:
    """Frames, code objects, tracebacks, and modules reached as another object's attribute."""
    for node in cell.walk():
        if isinstance(node, ast.Attribute) and node.attr in INTROSPECTION_ATTRIBUTES:
            yield node


def _private(cell: _Cell) -> Iterator[ast.AST]:
    """``_private`` attributes of imported modules and classes (``torch._C``, ``random._os``)."""
    for node in cell.walk():
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not _DUNDER.fullmatch(node.attr)
                and _dotted(node.value, cell.imported)):
            yield node


def _monkey_patch(cell: _Cell) -> Iterator[ast.AST]:
    """Assignments and deletions on attributes or items of imported names (aliases followed) or of ``type(x)``,
    ``setattr``/``delattr`` on them, and modules (or imported lower-case names, which may be modules) handed to a
    function other than ``getattr``/``hasattr``/``isinstance``/``issubclass`` or put in a container."""
    def patched(target: ast.AST) -> bool:
        root = _root(target)
        return (isinstance(root, ast.Name) and root.id in cell.imported) or _builtin_call(root, "type", cell)

    for node in cell.walk():
        if (isinstance(node, ast.Attribute | ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del)
                and patched(node)):
            yield node
        elif (any(_builtin_call(node, f, cell) for f in ("setattr", "delattr")) and node.args
              and patched(node.args[0])):
            yield node
        elif isinstance(node, ast.Call | ast.List | ast.Tuple | ast.Set | ast.Dict) and not any(
                _builtin_call(node, f, cell) for f in ("getattr", "hasattr", "isinstance", "issubclass")):
            values = [*node.args, *(k.value for k in node.keywords)] if isinstance(node, ast.Call) else (
                node.values if isinstance(node, ast.Dict) else node.elts)
            if any(isinstance(v, ast.Name) and v.id in cell.modules for v in values):
                yield node


def _module_level(tree: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a cell that run in the notebook's namespace (not inside functions, classes or the targets of
    comprehensions), definitions included but not their bodies."""
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.comprehension):
            stack += [node.iter, *node.ifs]
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            stack += ast.iter_child_nodes(node)


def _shadowing(cell: _Cell) -> Iterator[ast.AST]:
    """Rebinding, in the notebook's namespace (or through ``global``), a builtin the course's cells use or a name
    they import (re-importing the same thing is fine)."""
    for tree in cell.trees:
        for node in _module_level(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
                names = [node.id]
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names = [node.name]
            elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
                names = [node.name]
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [n for n, dotted in _import_bindings(node) if dotted not in cell.course_imports.get(n, ())]
            else:
                continue
            if any(n in cell.course_names for n in names):
                yield node
        for node in ast.walk(tree):
            if isinstance(node, ast.Global | ast.Nonlocal) and any(n in cell.course_names for n in node.names):
                yield node


def _magics(cell: _Cell) -> Iterator[ast.AST]:
    """IPython magics other than the allowed ones (and allowed ones with arguments they do not accept)."""
    for node in cell.walk():
        magic = _magic(node)
        if not magic or magic[0] == "!":
            continue
        name, _, (line, code) = magic
        accepted = ALLOWED_MAGICS.get(name, frozenset())
        if name not in ALLOWED_MAGICS or (accepted is not None and (line or "").strip() not in accepted) or (
                accepted is None and line is None):
            yield node


def _shell(cell: _Cell) -> Iterator[ast.AST]:
    """``!command`` and ``x = !command``."""
    for node in cell.walk():
        magic = _magic(node)
        if magic and magic[0] == "!":
            yield node


def _unsafe_api(cell: _Cell) -> Iterator[ast.AST]:
    """``os`` beyond paths and listings, code or pickle loaders, backends chosen by module name, file writers,
    ``trust_remote_code``, and file names of Python code."""
    for node in cell.walk():
        dotted = _dotted(node, cell.imported) if isinstance(node, ast.Name | ast.Attribute) else None
        if dotted and ((dotted.startswith("os.") and dotted.split(".")[1] not in ALLOWED_OS)
                       or _under(dotted, DENIED_MODULES) or _under(dotted, UNSAFE_CALLS - {"numpy.load"})):
            yield node
        elif isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Attribute) and node.func.attr in WRITER_ATTRIBUTES)
                or any((k.arg is None and _dotted(node.func, cell.imported) == "numpy.load")
                       or (k.arg in PICKLE_SWITCHES and not (
                           isinstance(k.value, ast.Constant) and k.value.value is PICKLE_SWITCHES[k.arg]))
                       for k in node.keywords)
                or any(k.arg == "trust_remote_code" and not (isinstance(k.value, ast.Constant) and not k.value.value)
                       for k in node.keywords)):
            yield node
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _CODE_FILE.search(node.value):
            yield node


_PATH_LIKE = re.compile(r"(?:\d+\.)?[A-Za-z_]\w*(?:\.\w+|\[\w+\])*")
_FIELD = re.compile(r"\{([^{}!:]*)[^{}]*\}")
_WORD = re.compile(r"[A-Za-z_]\w*")
#: names that no string in student code may spell as an attribute path (``getattr(x, "sys")``, a format field
#: ``"{0.sys.modules}"``, ``Formatter().get_field("0.sys", …)``): whatever resolves a name from a string reaches
#: what the attribute rules guard, so the string itself is judged
_GUARDED_WORDS = DANGEROUS_ATTRIBUTES | INTROSPECTION_ATTRIBUTES | DANGEROUS_NAMES | {
    "modules", "get_ipython", "shell", "kernel", "user_ns", "attrgetter", "methodcaller", "get_field", "Formatter",
    "IPython", "ipykernel", "read_pickle", "serialization", "find_class", "addaudithook", "audit"}


def _string_paths(text: str) -> list[str]:
    """The attribute paths a string could name: the whole string if it looks like one, and format fields."""
    paths = [text] if _PATH_LIKE.fullmatch(text.strip()) else []
    return paths + [f for f in _FIELD.findall(text) if f.strip()]


def _string_attributes(cell: _Cell) -> Iterator[ast.AST]:
    """Strings that spell a guarded attribute or name as a path (``"sys"``, ``"0.sys.modules"``, ``"{0.__class__}"``),
    or a private one: the route from a string to an attribute (``getattr`` with a literal, ``str.format``,
    ``string.Formatter``, …) is not what matters; the name is."""
    for node in cell.walk():
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 200:
            words = {w for p in _string_paths(node.value) for w in _WORD.findall(p)}
            if words & _GUARDED_WORDS or any(_DUNDER.fullmatch(w) and w not in ALLOWED_DUNDERS for w in words):
                yield node


#: the rules, by name: each yields the nodes (with line numbers) it objects to in one cell
RULES: dict[str, Callable[[_Cell], Iterator[ast.AST]]] = {
    "import": _imports,
    "dangerous-name": _dangerous_names,
    "dunder": _dunders,
    "metaclass": _metaclass,
    "subclass": _subclass,
    "introspection": _introspection,
    "private": _private,
    "monkey-patch": _monkey_patch,
    "shadowing": _shadowing,
    "magic": _magics,
    "shell": _shell,
    "unsafe-api": _unsafe_api,
    "string-attribute": _string_attributes,
}


# ------------------------------------------------------------------------------------------------ reviewing
@dataclass(frozen=True)
class _Course:
    """What the course's own cells bind: imported names (name -> dotted paths), modules, builtins they use."""

    imports: dict[str, frozenset[str]]
    modules: frozenset[str]
    builtins: frozenset[str]


def _course(trusted_sources: Collection[str]) -> _Course:
    imports: dict[str, set[str]] = {}
    modules: set[str] = set()
    used: set[str] = set()
    for source in trusted_sources:
        try:
            trees = _parse(source)
        except (SyntaxError, ValueError):
            continue
        for tree in trees:
            for name, dotted in _import_bindings(tree):
                imports.setdefault(name, set()).add(dotted)
            modules |= {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                        for a in n.names}
            used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return _Course({k: frozenset(v) for k, v in imports.items()}, frozenset(modules),
                   frozenset(used & set(dir(builtins))) - {"__name__"})


@lru_cache(maxsize=1024)
def _names_a_module(dotted: str) -> bool:
    """Whether ``dotted`` names a module, decided from files alone (nothing is imported): the top-level package's
    location, then a ``.py`` file, a package folder or an extension module per part. Unknown means yes.

    >>> _names_a_module("tlcourse.stats"), _names_a_module("tlcourse.stats.accuracy"), _names_a_module("no_such.x")
    (True, False, True)
    """
    top, *parts = dotted.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return True
    if spec is None:
        return True
    places = [Path(p) for p in (spec.submodule_search_locations or [])]
    for part in parts:
        if not places:
            return False  # an attribute of a plain module: a function, class or constant
        here = [place / part for place in places if (place / part).is_dir()]  # a package (or namespace) folder
        if not here and not any((place / f"{part}.py").is_file() or any(place.glob(f"{part}.*.so"))
                                or any(place.glob(f"{part}.*.pyd")) for place in places):
            return False
        places = here
    return True


def _findings(label: str, source: str, trees: list[ast.Module], imported: dict[str, str], course: _Course,
              modules: frozenset[str]) -> list[Finding]:
    cell = _Cell(label, source.splitlines(), trees, imported, course.builtins | frozenset(course.imports),
                 course.imports, modules)
    seen: dict[tuple[int, str], Finding] = {}
    for rule, check in RULES.items():
        for node in check(cell):
            line = getattr(node, "lineno", 1)
            evidence = cell.lines[line - 1].strip()[:200] if 0 < line <= len(cell.lines) else ""
            seen.setdefault((line, rule), Finding(label, line, rule, evidence))
    return sorted(seen.values(), key=lambda f: (f.line, f.rule))


def _unparsable(label: str, source: str, exc: Exception) -> Finding:
    lines = source.splitlines()
    line = getattr(exc, "lineno", None) or 1
    return Finding(label, line, "unparsable", lines[line - 1].strip()[:200] if 0 < line <= len(lines) else "")


def review_sources(cells: list[tuple[str, str]], trusted_sources: Collection[str] = ()) -> list[Finding]:
    """Findings for (label, source) cells; a source in ``trusted_sources`` is the course's own and not reviewed
    (its imports still count: they tell which names are modules).

    >>> review_sources([("ex1", "import numpy as np"), ("ex2", "np.allclose = lambda *a, **k: True")])
    [Finding(cell='ex2', line=1, rule='monkey-patch', evidence='np.allclose = lambda *a, **k: True')]
    """
    trusted = frozenset(trusted_sources)
    course = _course(trusted)
    parsed: dict[int, list[ast.Module]] = {}
    found: list[Finding] = []
    for index, (label, source) in enumerate(cells):
        if source in trusted:
            continue
        try:
            parsed[index] = _parse(source)
        except (SyntaxError, ValueError) as exc:
            found.append(_unparsable(label, source, exc))
    everything = [t for trees in parsed.values() for t in trees]
    bindings = {n: d for t in everything for n, d in _import_bindings(t)}
    bindings.update({n: next(iter(sorted(d))) for n, d in course.imports.items()})
    imported = _aliases(everything, bindings)
    modules = course.modules | {a.asname or a.name.split(".")[0] for t in everything for n in ast.walk(t)
                                if isinstance(n, ast.Import) for a in n.names}
    modules |= {n for n, d in imported.items() if d in {imported.get(m) for m in modules}}
    # lower-case imported names may be modules too, unless the course itself imports them and their files say not
    vouched = {d for paths in course.imports.values() for d in paths if not _names_a_module(d)}
    modules |= {n for n, d in imported.items() if d.rsplit(".", 1)[-1][:1].islower() and d not in vouched}
    for index, trees in parsed.items():
        found += _findings(cells[index][0], cells[index][1], trees, imported, course, frozenset(modules))
    return found


def review_source(source: str, trusted_sources: Collection[str] = ()) -> list[Finding]:
    """Findings for one cell of student code (labelled ``cell 1``), with the course's cells as context.

    >>> [f.rule for f in review_source("model.classifier = nn.Linear(1280, 2)", ["from torch import nn"])]
    []
    >>> [f.rule for f in review_source("nn.Linear.forward = lambda self, x: x", ["from torch import nn"])]
    ['monkey-patch']
    """
    return review_sources([("cell 1", source)], trusted_sources)


def review_notebook(nb: Any, trusted_sources: Collection[str]) -> list[Finding]:
    """Findings for every code cell of ``nb`` (an nbformat notebook or its dict) whose exact source is not in
    ``trusted_sources`` (the sources of the course's locked cells, tests and released cells): answer cells and
    any cell the student added, whatever its metadata claims. Cells are labelled by nbgrader grade id, else
    ``cell N`` (1-based), as :func:`tlcourse.grading.gradebook.cell_label` does.

    >>> hostile = {"cell_type": "code", "source": "import sys; sys.settrace(None)",
    ...            "metadata": {"nbgrader": {"grade_id": "ex1", "locked": True}}}
    >>> sorted({f.rule for f in review_notebook({"cells": [hostile]}, ["import sys"])})
    ['dangerous-name', 'import']
    """
    cells = []
    for index, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        gid = (cell.get("metadata") or {}).get("nbgrader", {}).get("grade_id")
        cells.append((gid or f"cell {index + 1}", source))
    return review_sources(cells, trusted_sources)
