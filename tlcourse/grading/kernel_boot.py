"""The grading kernel's entry point: an audit hook first, then ipykernel (``python -I -m tlcourse.grading.kernel_boot``).

A Python audit hook (:pep:`578`) cannot be removed once installed, so it holds for every cell a student runs, by
whatever route the code got there. It refuses two classes of event that no honest answer needs and that the static
review (:mod:`.review`) can only recognise by their spelling:

* **unpickling** anything but data: ``pickle.find_class`` (every pickle, whoever calls it: ``pandas.read_pickle``,
  ``numpy.load(allow_pickle=True)``, ``torch.load(weights_only=False)``) may only name classes and functions of
  :data:`PICKLE_MODULES`, minus the code runners of :data:`PICKLE_DENIED` — a pickle cannot call ``os.system``;
* **tracing**: ``sys.settrace`` / ``sys.setprofile`` (a tracer could swap what a test reads, line by line).

Example:
    >>> _pickle_allowed("torch._utils", "_rebuild_tensor_v2"), _pickle_allowed("posix", "system")
    (True, False)
    >>> _pickle_allowed("builtins", "eval"), _pickle_allowed("collections", "OrderedDict")
    (False, True)
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["arm", "PICKLE_MODULES", "PICKLE_DENIED", "DENIED_EVENTS", "main"]

#: top-level packages whose classes a pickle may name (tensors, arrays, containers, the course's data types)
PICKLE_MODULES = frozenset({"torch", "numpy", "collections", "copyreg", "builtins", "_codecs", "datetime", "PIL",
                            "pandas", "sklearn", "scipy", "tlcourse", "transformers", "tokenizers", "math"})
#: within those, what runs code, loads code or reaches the system
PICKLE_DENIED = ("builtins.eval", "builtins.exec", "builtins.compile", "builtins.getattr", "builtins.setattr",
                 "builtins.delattr", "builtins.__import__", "builtins.open", "builtins.globals", "builtins.vars",
                 "builtins.locals", "builtins.breakpoint", "builtins.input", "torch.load", "torch.hub",
                 "torch.jit", "torch.package", "torch.ops", "torch.library", "torch.utils.cpp_extension",
                 "torch.serialization", "numpy.load", "numpy.ctypeslib", "pandas.read_pickle", "pandas.io",
                 "tlcourse.grading")
#: audit events refused outright once the kernel runs
DENIED_EVENTS = frozenset({"sys.settrace", "sys.setprofile"})


def _pickle_allowed(module: str, name: str) -> bool:
    dotted = f"{module}.{name}"
    if module.split(".")[0] not in PICKLE_MODULES:
        return False
    return not any(dotted == d or dotted.startswith(d + ".") or module == d or module.startswith(d + ".")
                   for d in PICKLE_DENIED)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event in DENIED_EVENTS:
        raise RuntimeError(f"{event} is not allowed while grading")
    if event == "pickle.find_class" and not _pickle_allowed(str(args[0]), str(args[1])):
        raise RuntimeError(f"unpickling {args[0]}.{args[1]} is not allowed while grading (data only)")


def arm() -> None:
    """Install the audit hook (for good: audit hooks cannot be removed)."""
    sys.addaudithook(_hook)


def main() -> None:
    """Start ipykernel as ``python -m ipykernel_launcher`` would, arming the hook once the kernel is set up (its
    own imports, the debugger's among them, trace once at import) and before the first cell arrives."""
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize()
    arm()
    app.start()


if __name__ == "__main__":
    main()
