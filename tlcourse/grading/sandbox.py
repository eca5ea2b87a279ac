"""Where a submission runs: a bubblewrap sandbox with resource limits, or (only when asked) no sandbox at all.

A graded submission is hostile until proven otherwise. Under ``bwrap`` its worker gets its own network namespace
(no network), its own PID namespace (it sees no other process, and all of it dies with the worker), a new user
namespace with every capability dropped, read-only binds of what a lesson needs — the system libraries, Python and
the course's virtual environment, the ``tlcourse`` package, the data mirror and data home — and private,
size-limited tmpfs folders for its work and ``/tmp``. Nothing of the course folder (``solutions/``, the gradebook,
other submissions), the home folder or the real ``/tmp`` is there; the environment is an allow-list.

Limits: memory and processes through a cgroup (v1 or v2, whichever the machine has; none without root), file size
and open files through ``setrlimit``, output size by the reader, wall time by the parent (:mod:`.grade`).

Example:
    >>> spec = SandboxSpec(workdir=WORKDIR, files=Path("/tmp/files"), env={"A": "1"})
    >>> argv = bwrap_argv(spec, ["python", "-V"])
    >>> argv[0].endswith("bwrap") and "--unshare-all" in argv and argv[-2:] == ["python", "-V"]
    True
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Limits", "SandboxSpec", "bwrap_argv", "sandbox_problem", "Cgroup", "make_cgroup", "WORKDIR"]

#: Paths inside the sandbox.
WORKDIR = Path("/home/student")
FILES = Path("/job/files")
#: System folders a Python process needs (bound read-only when they exist).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Single files of /etc a lesson needs; /etc itself (shadow, keys, configs) is never bound.
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime", "/etc/mime.types", "/etc/nsswitch.conf")
ETC_DIRS = ("/etc/ld.so.conf.d", "/etc/alternatives", "/etc/fonts")


@dataclass(frozen=True)
class Limits:
    """What one submission may spend.

    Example:
        >>> Limits().memory_mb >= 1024
        True
    """

    memory_mb: int = 6144  # RAM of the worker, its kernel and their tmpfs files
    processes: int = 256  # tasks (processes and threads) alive at once
    disk_mb: int = 1024  # the private work folder and /tmp (tmpfs), each
    file_mb: int = 512  # the largest single file
    output_mb: int = 64  # the result the worker hands back
    open_files: int = 1024
    cpus: float | None = None  # a CPU quota (cores' worth), where a cgroup enforces it; None: no quota


@dataclass
class SandboxSpec:
    """What the sandbox shows a worker: its (private) work folder, the job's files and the environment."""

    workdir: Path  # inside the sandbox: a tmpfs of limits.disk_mb
    files: Path  # host folder with the submission's other files and the course's data files (read-only)
    env: dict[str, str]
    limits: Limits = field(default_factory=Limits)
    extra_ro: tuple[Path, ...] = ()  # more read-only binds (the data mirror, the data home)


def _exists(path: str | Path) -> bool:
    return os.path.lexists(path)


def _python_dirs() -> list[Path]:
    """The Python installation and the environment: the interpreter's prefix, the venv, and the package."""
    import tlcourse

    dirs = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.prefix),
            Path(tlcourse.__file__).resolve().parent}
    return sorted(d for d in dirs if d.is_dir())


def bwrap_argv(spec: SandboxSpec, command: list[str], bwrap: str | None = None) -> list[str]:
    """The ``bwrap`` command line that runs ``command`` in the sandbox ``spec`` describes.

    Example:
        >>> argv = bwrap_argv(SandboxSpec(WORKDIR, Path("/tmp/f"), {}), ["true"])
        >>> "--clearenv" in argv and "--cap-drop" in argv
        True
    """
    disk = str(spec.limits.disk_mb * 1024 * 1024)
    argv = [bwrap or shutil.which("bwrap") or "bwrap",
            "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL",
            "--die-with-parent", "--new-session", "--hostname", "sandbox", "--clearenv",
            # the private, size-limited folders first: a read-only bind below one of them still shows on top
            "--size", disk, "--tmpfs", "/tmp", "--size", disk, "--tmpfs", str(spec.workdir)]
    for path in [*SYSTEM_DIRS, *ETC_DIRS, *ETC_FILES]:
        if _exists(path):
            argv += ["--ro-bind", path, path]
    for path in [*_python_dirs(), *spec.extra_ro]:
        argv += ["--ro-bind", str(path), str(path)]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for device in sorted(Path("/dev").glob("nvidia*")):  # a GPU for grading in the gpu profile
        argv += ["--dev-bind", str(device), str(device)]
    argv += ["--ro-bind", str(spec.files), str(FILES), "--chdir", str(spec.workdir)]
    for key, value in sorted(spec.env.items()):
        argv += ["--setenv", key, value]
    return [*argv, "--", *command]


_PROBLEM: dict[str, str | None] = {}


def sandbox_problem(bwrap: str | None = None) -> str | None:
    """``None`` when bubblewrap works here, else why not (in words a grader can act on). Checked once.

    Example:
        >>> sandbox_problem("/no/such/bwrap")
        'bubblewrap is not installed (/no/such/bwrap not found): apt install bubblewrap (Debian/Ubuntu) or dnf install bubblewrap'
    """
    exe = bwrap or shutil.which("bwrap")
    key = str(exe)
    if key in _PROBLEM:
        return _PROBLEM[key]
    if exe is None or not Path(exe).exists():
        problem = (f"bubblewrap is not installed ({exe or 'bwrap'} not found): apt install bubblewrap "
                   "(Debian/Ubuntu) or dnf install bubblewrap")
    else:
        try:
            probe = subprocess.run([exe, "--unshare-all", "--unshare-user", "--cap-drop", "ALL", "--die-with-parent",
                                    *[a for p in SYSTEM_DIRS if _exists(p) for a in ("--ro-bind", p, p)],
                                    "--proc", "/proc", "--dev", "/dev", "--", "true"],
                                   capture_output=True, text=True, timeout=30)
            problem = None if probe.returncode == 0 else (
                f"bubblewrap cannot create a sandbox here ({probe.stderr.strip()[:200]}); on Ubuntu 24.04 allow "
                "user namespaces for bwrap (an AppArmor profile), or grade as root")
        except (OSError, subprocess.SubprocessError) as exc:
            problem = f"bubblewrap failed to start ({exc})"
    _PROBLEM[key] = problem
    return problem


# --------------------------------------------------------------------------------------------------- cgroups
@dataclass
class Cgroup:
    """A cgroup (one per submission) limiting memory and processes; ``None`` paths where the machine has none."""

    paths: list[Path]  # v1: one folder per controller; v2: one folder

    def enter(self) -> None:
        """Move the calling process into the group (run in the child, before exec)."""
        self.add(os.getpid())

    def add(self, pid: int) -> None:
        """Move process ``pid`` into the group (its later children are born there)."""
        for path in self.paths:
            (path / "cgroup.procs").write_text(str(pid))

    def out_of_memory(self) -> bool:
        """Whether the memory limit killed a process of the group."""
        for path in self.paths:
            for name in ("memory.oom_control", "memory.events"):
                with contextlib.suppress(OSError):
                    for line in (path / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value or 0) > 0:
                            return True
        return False

    def hit_process_limit(self) -> bool:
        """Whether a fork was refused because of the process limit."""
        for path in self.paths:
            with contextlib.suppress(OSError, ValueError):
                events = (path / "pids.events").read_text().split()
                if "max" in events and int(events[events.index("max") + 1]) > 0:
                    return True
        return False

    def remove(self) -> None:
        """Kill whatever is still in the group, then remove it."""
        for path in self.paths:
            for _ in range(50):
                try:
                    pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.05)
            with contextlib.suppress(OSError):
                path.rmdir()


CPU_PERIOD_US = 100_000  # the CFS period a CPU quota is a share of
GROUP = "tlcourse-grade"  # the cgroup (or, v1, the cgroup of each controller) that holds one child per submission


def _v1(name: str, limits: Limits, root: Path, group: str = GROUP) -> Cgroup | None:
    """v1: a child of ``<controller>/tlcourse-grade`` for memory and pids (and cpu with a quota). As root the
    folders are made; a grader account needs them made once by root and handed over (``chown -R grader``): v1 lets
    the owner move its own processes in."""
    bases = [root / "memory" / group, root / "pids" / group]
    if limits.cpus:  # the cpu controller is mounted as "cpu" or only as "cpu,cpuacct"
        cpu = next((root / n for n in ("cpu", "cpu,cpuacct") if (root / n).is_dir()), root / "cpu")
        bases.append(cpu / group)
    if not all(os.access(b, os.W_OK) or os.access(b.parent, os.W_OK) for b in bases):
        return None
    made = []
    try:
        for base in bases:
            path = base / name
            path.mkdir(parents=True, exist_ok=True)
            made.append(path)
        limit = str(limits.memory_mb * 1024 * 1024)
        (made[0] / "memory.limit_in_bytes").write_text(limit)
        with contextlib.suppress(OSError):  # no swap beyond the limit, where swap accounting exists
            (made[0] / "memory.memsw.limit_in_bytes").write_text(limit)
        (made[1] / "pids.max").write_text(str(limits.processes))
        if limits.cpus:
            (made[2] / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            (made[2] / "cpu.cfs_quota_us").write_text(str(int(limits.cpus * CPU_PERIOD_US)))
    except OSError:
        Cgroup(made).remove()
        return None
    return Cgroup(made)


def _own_cgroup(root: Path, proc_cgroup: Path = Path("/proc/self/cgroup")) -> Path | None:
    """v2: this process's cgroup when it was delegated to us (``systemd-run --user --scope -p Delegate=yes``): we
    may then make children there. This process first moves into a leaf of its own (v2 lets only leaves hold
    processes once controllers are enabled below a group)."""
    with contextlib.suppress(OSError, ValueError):
        rel = next(ln.split("::", 1)[1] for ln in proc_cgroup.read_text().splitlines() if ln.startswith("0::"))
        own = root / rel.strip().lstrip("/")
        if own == root or not all(os.access(own / f, os.W_OK) for f in ("cgroup.procs", "cgroup.subtree_control")):
            return None
        leaf = own / "grader"
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        return own
    return None


def _v2_parent(root: Path, group: str = GROUP) -> Path | None:
    """Where the per-submission groups go: ``/sys/fs/cgroup/<group>`` as root, else a delegated cgroup."""
    if os.access(root, os.W_OK) or os.access(root / group, os.W_OK):
        return root / group
    return _own_cgroup(root)


def _v2(name: str, limits: Limits, root: Path, group: str = GROUP) -> Cgroup | None:
    parent = _v2_parent(root, group)
    if parent is None:
        return None
    try:
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text("+memory +pids" + (" +cpu" if limits.cpus else ""))
        path = parent / name
        path.mkdir(exist_ok=True)
        (path / "memory.max").write_text(str(limits.memory_mb * 1024 * 1024))
        with contextlib.suppress(OSError):
            (path / "memory.swap.max").write_text("0")
        (path / "pids.max").write_text(str(limits.processes))
        if limits.cpus:
            (path / "cpu.max").write_text(f"{int(limits.cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}")
    except OSError:
        return None
    return Cgroup([path])


#: cgroup flavours, tried in order: (test on the cgroup root, maker).
CGROUP_KINDS: dict[str, tuple[Callable[[Path], bool], Callable[[str, Limits, Path, str], Cgroup | None]]] = {
    "v1": (lambda r: (r / "memory" / "memory.limit_in_bytes").exists(), _v1),
    "v2": (lambda r: (r / "cgroup.controllers").exists(), _v2),
}


def make_cgroup(name: str, limits: Limits, root: Path = Path("/sys/fs/cgroup"), group: str = GROUP) -> Cgroup | None:
    """A fresh cgroup ``<group>/<name>`` with the memory and process limits (and a CPU quota when
    ``limits.cpus``), or ``None`` where none can be made.

    Root can always make one; a grader account can where the machine delegates cgroups to it (v2: run the grader
    in a delegated scope, ``systemd-run --user --scope -p Delegate=yes tlcourse grade …``; v1: root made
    ``<controller>/tlcourse-grade`` once and handed it over) — INSTRUCTORS.md §4, "Grading without root".

    Example:
        >>> make_cgroup("doc-example", Limits(), root=Path("/nonexistent")) is None
        True
    """
    for test, make in CGROUP_KINDS.values():
        if test(root):
            made = make(name, limits, root, group)
            if made is not None:
                return made
    return None


def rlimits(limits: Limits, cgroup: Cgroup | None) -> Callable[[], None]:
    """The function the child runs before exec: join the cgroup, cap file size, open files and core dumps."""
    file_bytes = limits.file_mb * 1024 * 1024

    def apply() -> None:
        if cgroup is not None:
            cgroup.enter()
        else:  # no cgroup: an address-space cap is the fallback for memory (cruder: counts reservations)
            memory = limits.memory_mb * 1024 * 1024 * 4
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply
