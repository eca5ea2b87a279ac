"""CPU thread pools sized to the share of the machine this process can actually use.

torch, OpenMP, MKL and OpenBLAS start one thread per core they see. On a shared machine that is too many: a
JupyterHub server limited to 2 CPUs by its cgroup still sees every core of the host, and on a busy laptop the cores
are taken by other programs. Threads that outnumber the free cores fight over them, and small operations — most of
a lesson's — get several times slower. :func:`configure_threads` sizes the pools to

    min(cores this process may run on (affinity), the cgroup's CPU quota, cores the machine leaves free now)

(at least 1), and asks OpenMP to let idle threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``).
``import tlcourse`` calls it once, before torch loads where it can (the lessons import ``tlcourse`` first). An
explicit ``OMP_NUM_THREADS`` — the grader sets one per worker — or ``TLCOURSE_THREADS`` wins.

Example:
    >>> share = cpu_share(affinity=8, quota=2.0, cores=8, load=0.0)
    >>> share, cpu_share(affinity=4, quota=None, cores=4, load=3.2)
    (2, 1)
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

__all__ = ["THREAD_VARS", "explicit_threads", "allowed_cpus", "busy_cores", "cgroup_cpu_quota", "cpu_share", "pool_size", "configure_threads"]

#: the variables the BLAS / OpenMP runtimes read when they start
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: set beside the variables when this module wrote them, so that a child process (a kernel started by a process
#: that imported tlcourse) sizes its own pools instead of taking its parent's numbers for a user's choice
MARKER = "TLCOURSE_SIZED_THREADS"
#: what the environment said before this module sized anything (a user's or a parent's explicit choice)
_ORIGINAL = {var: os.environ[var] for var in THREAD_VARS
             if os.environ.get(var, "").strip() and os.environ.get(var) != os.environ.get(MARKER)}


def explicit_threads() -> dict[str, str]:
    """The thread variables set *before* ``import tlcourse`` sized the pools (what a user or a parent chose).

    Example:
        >>> isinstance(explicit_threads(), dict)
        True
    """
    return dict(_ORIGINAL)


def _v2_quota(root: Path, relative: str) -> float | None:
    """The tightest ``cpu.max`` from this cgroup up to the root (cgroup v2), in CPUs."""
    best = None
    folder = root / relative.lstrip("/")
    while True:
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            if quota != "max":
                best = min(best or math.inf, int(quota) / int(period))
        except (OSError, ValueError):
            pass
        if folder == root or root not in folder.parents:
            return best
        folder = folder.parent


def _v1_quota(root: Path, relative: str) -> float | None:
    folder = root / "cpu" / relative.lstrip("/")
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup"), proc: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (``2.0`` = two cores' worth), ``None`` without one.

    Example:
        >>> cgroup_cpu_quota(proc=Path("/nonexistent")) is None
        True
    """
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, relative = parts
        if controllers == "":
            return _v2_quota(root, relative)
        if "cpu" in controllers.split(","):
            return _v1_quota(root, relative)
    return None


def cpu_share(affinity: int, quota: float | None, cores: int, load: float | None) -> int:
    """The threads worth starting: the cores allowed (``affinity``), capped by the cgroup ``quota`` (rounded up:
    a 1.5-CPU quota still runs two threads at times) and by the cores the machine's current ``load`` (busy cores,
    :func:`busy_cores`) leaves free (rounded to the nearest core); at least 1.

    Example:
        >>> cpu_share(affinity=16, quota=None, cores=16, load=0.3), cpu_share(2, 1.5, 2, None)
        (16, 2)
    """
    share = float(max(1, affinity))
    if quota is not None and quota > 0:
        share = min(share, math.ceil(quota))
    if load is not None and cores > 0:
        share = min(share, round(cores - load))
    return max(1, int(share))


def _cpu_times(stat: Path, cpus: frozenset[int] | None = None) -> tuple[int, int] | None:
    """(busy, total) jiffies from ``/proc/stat``: of the CPUs in ``cpus`` (their ``cpuN`` lines), else of all."""
    def wanted(name: str) -> bool:
        return name == "cpu" if cpus is None else name[3:].isdigit() and int(name[3:]) in cpus

    try:
        lines = [line.split() for line in stat.read_text().splitlines() if line.startswith("cpu")]
        rows = [[int(v) for v in fields[1:]] for fields in lines if wanted(fields[0])]
    except (OSError, ValueError):
        return None
    if not rows or any(len(r) < 5 for r in rows):
        return None
    total = sum(sum(r) for r in rows)
    return total - sum(sum(r[3:5]) for r in rows), total  # idle + iowait are not busy


def busy_cores(interval: float = 0.05, stat: Path = Path("/proc/stat"), cpus: frozenset[int] | None = None,
               ) -> float | None:
    """How many of ``cpus`` (default: every core) are busy *now* (Linux: two ``/proc/stat`` readings ``interval``
    seconds apart; elsewhere the 1-minute load average, which lags; ``None`` where neither exists).

    Example:
        >>> busy = busy_cores()
        >>> busy is None or 0 <= busy <= (os.cpu_count() or 1) + 0.5
        True
    """
    import time

    first = _cpu_times(stat, cpus)
    if first is None:
        try:
            return os.getloadavg()[0]
        except (OSError, AttributeError):  # Windows has no load average
            return None
    time.sleep(interval)
    second = _cpu_times(stat, cpus)
    if second is None or second[1] <= first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1]) * (len(cpus) if cpus else os.cpu_count() or 1)


def _affinity() -> frozenset[int] | None:
    """The CPUs this process may run on (``None`` where the system does not say: macOS, Windows)."""
    return frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def allowed_cpus() -> int:
    """The CPUs this process may use, whatever else runs: affinity and the cgroup quota, not the load (a grader
    shares this among its workers once, so that it does not count its own workers as load).

    Example:
        >>> 1 <= allowed_cpus() <= (os.cpu_count() or 1)
        True
    """
    cpus = _affinity()
    cores = len(cpus) if cpus else os.cpu_count() or 1
    return cpu_share(cores, cgroup_cpu_quota(), cores, None)


def pool_size() -> int:
    """:func:`cpu_share` of this process, now: the load is measured on the CPUs it may run on (a container pinned
    to idle cores of a busy host gets them all). ``TLCOURSE_THREADS`` overrides it."""
    forced = os.environ.get("TLCOURSE_THREADS", "").strip()
    if forced.isdigit() and int(forced) > 0:
        return int(forced)
    cpus = _affinity()
    cores = len(cpus) if cpus else os.cpu_count() or 1
    return cpu_share(cores, cgroup_cpu_quota(), cores, busy_cores(cpus=cpus))


def configure_threads(threads: int | None = None) -> int:
    """Size the thread pools (see the module's description); return the number of threads set.

    Before torch loads, the runtimes' variables are set (an explicit ``OMP_NUM_THREADS`` is kept); after, torch's
    intra-op pool is resized. ``threads`` forces a number.

    Example:
        >>> import torch
        >>> before = torch.get_num_threads()
        >>> configure_threads(before) == before == torch.get_num_threads()
        True
    """
    explicit = _ORIGINAL.get("OMP_NUM_THREADS", "").strip()
    sized = not threads and not (explicit.isdigit() and int(explicit) > 0)
    n = threads or (pool_size() if sized else int(explicit))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
        return n
    for var in THREAD_VARS:
        if threads or var not in _ORIGINAL:
            os.environ[var] = str(n)
    if sized:  # children may size their own; a chosen number (a user's, a parent's, a caller's) they keep
        os.environ[MARKER] = str(n)
    else:
        os.environ.pop(MARKER, None)
    return n
