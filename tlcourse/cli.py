"""The ``tlcourse`` command line: ``doctor``, ``data list|fetch|verify``, and the grading commands.

Each command is an entry of a registry; ``tlcourse.grading`` adds ``release``, ``publish``, ``collect``, ``grade``,
``check``, ``feedback``, ``export`` and ``report`` through its ``register_cli(subparsers)``.

Example:
    $ tlcourse doctor
    $ tlcourse data fetch hymenoptera
"""

from __future__ import annotations

import argparse
import importlib
import platform
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

__all__ = ["main", "doctor", "build_parser", "Check"]

# modules that add their own subcommands with register_cli(subparsers)
CLI_PLUGINS: tuple[str, ...] = ("tlcourse.grading",)


@dataclass
class Check:
    """One line of the doctor's report.

    Example:
        >>> Check("python", True, "3.11").line().startswith("  [ok]")
        True
    """

    what: str
    ok: bool
    detail: str
    required: bool = True

    def line(self) -> str:
        """The check as one printable line."""
        mark = "ok" if self.ok else ("!!" if self.required else "--")
        return f"  [{mark}] {self.what:<28} {self.detail}"


def _section(title: str, checks: list[Check]) -> str:
    return "\n".join([title, *(c.line() for c in checks)])


def required_python() -> str:
    """The Python versions the package supports, as its metadata says (``requires-python`` of pyproject.toml).

    Example:
        >>> required_python()
        '>=3.11'
    """
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        return metadata("tlcourse")["Requires-Python"] or ">=3.11"
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return ">=3.11"


def python_supported(version: tuple[int, ...], spec: str | None = None) -> bool:
    """Whether a Python ``version`` (``sys.version_info[:3]``) meets ``spec`` (default :func:`required_python`).

    Example:
        >>> python_supported((3, 10, 14), ">=3.11"), python_supported((3, 11, 0), ">=3.11")
        (False, True)
    """
    from packaging.specifiers import SpecifierSet

    return ".".join(map(str, version)) in SpecifierSet(spec or required_python())


def _system_checks() -> list[Check]:
    import torch

    from tlcourse.config import profile
    from tlcourse.device import describe_device, get_device

    py_ok = python_supported(tuple(sys.version_info[:3]))
    checks = [
        Check("python", py_ok, f"{platform.python_version()} ({sys.executable})"
              + ("" if py_ok else f": the course needs Python {required_python()}")),
        Check("torch", True, f"{torch.__version__} (CUDA build {torch.version.cuda or 'none'})"),
        Check("cuda", torch.cuda.is_available(),
              torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available (CPU is fine)",
              required=False),
        Check("mps", bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
              "available" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
              else "not available", required=False),
    ]
    try:
        dev = get_device()
        checks.append(Check("device", True, describe_device(dev)))
    except RuntimeError as exc:
        checks.append(Check("device", False, str(exc)))
    try:
        p = profile()
        checks.append(Check("profile", True, f"{p.name}: image {p.image_size}px, {p.epochs} epochs, batch "
                                            f"{p.batch_size}"))
    except ValueError as exc:
        checks.append(Check("profile", False, str(exc)))
    return checks


def _backbone_checks(load: bool) -> list[Check]:
    from tlcourse.models import BACKBONES, WeightsUnavailableError, load_backbone

    checks = []
    for name, spec in BACKBONES.items():
        if not spec.offline:
            checks.append(Check(name, True, f"online only: downloads {spec.weights} on first use", required=False))
            continue
        try:
            if load:
                model = load_backbone(name)
                n = sum(p.numel() for p in model.parameters())
                checks.append(Check(name, True, f"loads offline ({n:,} parameters, from {spec.pip_package})"))
            else:
                mod = importlib.import_module(spec.weights)
                checks.append(Check(name, True, f"package {spec.pip_package} present ({Path(mod.__file__).parent})"))
        except (WeightsUnavailableError, ImportError, OSError) as exc:
            checks.append(Check(name, False, str(exc).splitlines()[0]))
    return checks


def _dataset_checks() -> list[Check]:
    from tlcourse.data import DATASETS, verify

    checks = []
    for name in DATASETS:
        rep = verify(name)
        if rep.ok:
            checks.append(Check(name, True, f"{rep.where}: {rep.path}"))
        else:
            checks.append(Check(name, False, "; ".join(rep.problems)[:160] + f"  → tlcourse data fetch {name}"))
    return checks


def _disk_checks() -> list[Check]:
    from tlcourse.data import data_home, mirror_dir

    home = data_home()
    free = shutil.disk_usage(home).free / 2**30
    mirror = mirror_dir()
    return [
        Check("data home", True, f"{home} (TLCOURSE_DATA_HOME)"),
        Check("mirror", mirror is not None and mirror.is_dir(),
              f"{mirror} (TLCOURSE_DATA_MIRROR)" if mirror else "not set (TLCOURSE_DATA_MIRROR)", required=False),
        Check("free disk", free > 1.0, f"{free:.1f} GiB free in the data home"),
    ]


def doctor(load_weights: bool = True, out: Callable[[str], None] = print) -> int:
    """Print a readable report of what the course needs; return 0 when everything a lesson needs is there.

    Example:
        >>> doctor(load_weights=False, out=lambda s: None) in (0, 1)
        True
    """
    sections = {
        "System": _system_checks(),
        "Pretrained backbones": _backbone_checks(load_weights),
        "Datasets": _dataset_checks(),
        "Storage": _disk_checks(),
        "Commands": _plugin_checks(),
    }
    out("tlcourse doctor\n")
    for title, checks in sections.items():
        out(_section(title, checks) + "\n")
    failed = [c for checks in sections.values() for c in checks if c.required and not c.ok]
    if failed:
        out(f"{len(failed)} problem(s): " + ", ".join(c.what for c in failed))
        out("Fix: `make setup` installs the packages; `tlcourse data fetch --all` gets the data (or set "
            "TLCOURSE_DATA_MIRROR to a folder that holds it). See README.md, 'Troubleshooting'.")
        return 1
    out("All good: every lesson has what it needs.")
    return 0


# ------------------------------------------------------------------------------------------------ commands
def _cmd_doctor(args: argparse.Namespace) -> int:
    return doctor(load_weights=not args.quick)


def _cmd_data_list(args: argparse.Namespace) -> int:
    import pandas as pd

    from tlcourse.data import dataset_status

    with pd.option_context("display.max_colwidth", 60, "display.width", 200):
        print(dataset_status().drop(columns=["path"]).to_string(index=False))
    return 0


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from tlcourse.data import DATASETS, DatasetUnavailableError, fetch

    names = list(DATASETS) if args.all else args.names
    if not names:
        print("name a dataset or pass --all; registered: " + ", ".join(DATASETS), file=sys.stderr)
        return 2
    status = 0
    for name in names:
        try:
            print(f"{name}: {fetch(name, progress=not args.quiet)}")
        except (DatasetUnavailableError, ValueError) as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            status = 1
    return status


def _cmd_data_verify(args: argparse.Namespace) -> int:
    from tlcourse.data import DATASETS, verify

    names = args.names or list(DATASETS)
    reports = []
    for name in names:
        try:
            reports.append(verify(name))
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
    for rep in reports:
        print(rep)
    return 0 if all(r.ok for r in reports) else 1


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check Python, torch, GPU, backbones and datasets")
    p.add_argument("--quick", action="store_true", help="check the weight packages without loading the weights")
    p.set_defaults(func=_cmd_doctor)


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list, fetch and verify the course datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("list", help="registered datasets and where they are")
    dl.set_defaults(func=_cmd_data_list)
    df = dsub.add_parser("fetch", help="make datasets available (data home, mirror, or download)")
    df.add_argument("names", nargs="*")
    df.add_argument("--all", action="store_true", help="every registered dataset")
    df.add_argument("--quiet", action="store_true", help="no progress bars")
    df.set_defaults(func=_cmd_data_fetch)
    dv = dsub.add_parser("verify", help="check checksums (all datasets when none is named)")
    dv.add_argument("names", nargs="*")
    dv.set_defaults(func=_cmd_data_verify)


def _cmd_lab_settings(args: argparse.Namespace) -> int:
    from tlcourse.lab import install_lab_settings

    print(f"JupyterLab settings for the course written to {install_lab_settings(args.prefix)}")
    return 0


def _add_lab_settings(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab-settings", help="JupyterLab defaults for calm, offline lessons (no news prompt, no "
                                            "update check)")
    p.add_argument("--prefix", default=sys.prefix, help="the environment JupyterLab runs from (default: this one)")
    p.set_defaults(func=_cmd_lab_settings)


def _cmd_links(args: argparse.Namespace) -> int:
    from tlcourse.launch import lesson_links, write_links

    try:
        kind = "colab" if args.colab else "hub"
        links = lesson_links(args.hub, args.repo, args.branch, args.target, kind=kind)
        print(write_links(links, args.format), end="")
    except ValueError as exc:
        print(f"tlcourse links: {exc}", file=sys.stderr)
        return 2
    return 0


def _add_links(sub: argparse._SubParsersAction) -> None:
    from tlcourse.launch import FORMATS

    p = sub.add_parser("links", help="links that open each lesson on your JupyterHub or in Colab (for the LMS)",
                       description="One link per lesson: a click logs the student in to the hub, clones (or updates) "
                                   "the class repository in their home and opens the lesson in JupyterLab; or, with "
                                   "--colab, opens the lesson from the class repository on GitHub in Google Colab "
                                   "(publish it with `tlcourse publish --colab` so that it installs itself there).")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--hub", help="the hub's URL, e.g. https://hub.example.edu")
    where.add_argument("--colab", action="store_true", help="Colab links (the repository must be on GitHub)")
    p.add_argument("--repo", required=True, help="the class repository students clone (tlcourse publish), never "
                                                 "the one with solutions")
    p.add_argument("--branch", default="main")
    p.add_argument("--target", default=None, help="the folder in the student's home (default: the repo's name)")
    p.add_argument("--format", choices=sorted(FORMATS), default="md")
    p.set_defaults(func=_cmd_links)


COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "doctor": _add_doctor,
    "data": _add_data,
    "lab-settings": _add_lab_settings,
    "links": _add_links,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered command and plugin.

    Example:
        >>> build_parser().parse_args(["doctor", "--quick"]).quick
        True
    """
    parser = argparse.ArgumentParser(prog="tlcourse", description="tlcourse — transfer-learning course tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS.values():
        add(sub)
    for modname in CLI_PLUGINS:
        mod = _load_plugin(modname)
        register = getattr(mod, "register_cli", None)
        if register is not None:
            register(sub)
    return parser


def _import_plugin(modname: str) -> tuple[ModuleType | None, str | None]:
    """``(module, None)``, or ``(None, why)`` when the command plugin does not import."""
    try:
        return importlib.import_module(modname), None
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _load_plugin(modname: str) -> ModuleType | None:
    """A command plugin, or None when it fails to import — said on stderr at once (its commands are missing, and
    argparse alone would only call them an "invalid choice") and reported by ``tlcourse doctor``."""
    mod, why = _import_plugin(modname)
    if why is not None:
        print(f"tlcourse: the commands of {modname} did not load ({why}); run `tlcourse doctor`, reinstall with "
              f"`pip install -r requirements.txt -e .`", file=sys.stderr)
    return mod


def _plugin_checks() -> list[Check]:
    whys = {modname: _import_plugin(modname)[1] for modname in CLI_PLUGINS}
    return [Check(m, why is None, "commands loaded" if why is None else f"does not import: {why}")
            for m, why in whys.items()]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tlcourse`` console script.

    Example:
        >>> main(["data", "verify", "no-such-dataset"])  # doctest: +SKIP
        2
    """
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
