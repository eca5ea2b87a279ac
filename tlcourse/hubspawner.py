"""A JupyterHub spawner for the one-server hub whose limits hold: each user's server runs in a cgroup of its own.

JupyterHub's ``LocalProcessSpawner`` ignores ``mem_limit`` and ``cpu_limit``: one student's runaway cell can take
the whole machine's memory, and every class-mate's kernel with it. :class:`LimitedSpawner` starts the server as
``LocalProcessSpawner`` does, but inside ``tlcourse-hub/<user>`` (the child joins it before it becomes the user and
execs the server) — a cgroup made by the grading sandbox's
:func:`tlcourse.grading.sandbox.make_cgroup` (v1 or v2) with the spawner's memory limit (no swap beyond it), a cap on
processes and a CPU quota. The kernels the server starts are born inside it, so a memory bomb is killed by the
kernel's OOM killer within the student's own limit, and a fork bomb stops at the process cap. Kernels see the
quota, and ``tlcourse.threads`` sizes their thread pools to it.

Cgroups need root (the one-server hub runs as root) or a delegated cgroup. Where none can be made, the spawner
refuses to start servers without limits (``require_limits``, default on) rather than pretend.

Example:
    >>> limits_for(mem_limit=2 * 1024**3, cpu_limit=1.5, processes=256)
    Limits(memory_mb=2048, processes=256, disk_mb=1024, file_mb=512, output_mb=64, open_files=1024, cpus=1.5)
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Integer

from tlcourse.grading.sandbox import Cgroup, Limits, make_cgroup

__all__ = ["GROUP", "LimitedSpawner", "limits_for", "cgroup_name"]

GROUP = "tlcourse-hub"  # the cgroup holding one child per running server


def limits_for(mem_limit: int | None, cpu_limit: float | None, processes: int) -> Limits:
    """The sandbox's :class:`Limits` for a server: JupyterHub's ``mem_limit`` (bytes) and ``cpu_limit`` (cores)."""
    defaults = Limits()
    memory_mb = int(mem_limit // (1024 * 1024)) if mem_limit else defaults.memory_mb
    return Limits(memory_mb=memory_mb, processes=processes, cpus=float(cpu_limit) if cpu_limit else None)


def cgroup_name(user: str) -> str:
    """A cgroup folder name for a hub user name, one per name: the name made safe (anything but letters, digits,
    ``._-`` becomes ``_``) and a short hash of the name as given (``a@b`` and ``a_b`` differ).

    Example:
        >>> cgroup_name("ana.lima@uni.edu")
        'user-ana.lima_uni.edu-b1030847'
        >>> cgroup_name("a@b") != cgroup_name("a_b")
        True
    """
    digest = hashlib.sha256(user.encode()).hexdigest()[:8]
    return "user-" + re.sub(r"[^A-Za-z0-9._-]", "_", user)[:64] + "-" + digest


class LimitedSpawner(LocalProcessSpawner):
    """``LocalProcessSpawner`` whose servers (and their kernels) live in a cgroup with the spawner's limits."""

    max_processes = Integer(512, config=True, help="processes and threads one user's server may run at once")
    require_limits = Bool(True, config=True, help="refuse to start a server when no cgroup can hold its limits")

    _cgroup: Cgroup | None = None

    def _limits(self) -> Limits:
        return limits_for(self.mem_limit, self.cpu_limit, self.max_processes)

    def _fresh_cgroup(self) -> Cgroup | None:
        """The user's cgroup, emptied first: a group left by a server the hub lost track of (a hub restart) may
        still hold its kernels, which must not share the new server's limits."""
        stale = make_cgroup(cgroup_name(self.user.name), self._limits(), group=GROUP)
        if stale is not None:
            stale.remove()
        return make_cgroup(cgroup_name(self.user.name), self._limits(), group=GROUP)

    def make_preexec_fn(self, name: str) -> Any:
        """The child joins the cgroup before it drops to the user and execs the server: nothing it starts is
        ever outside the limits."""
        become_user = super().make_preexec_fn(name)
        group = self._cgroup

        def preexec() -> None:
            if group is not None:
                group.enter()
            become_user()

        return preexec

    async def start(self) -> Any:
        self._cgroup = self._fresh_cgroup()
        if self._cgroup is None:
            if self.require_limits:
                raise RuntimeError("no cgroup for the server's limits: run the hub as root (or in a delegated "
                                   "cgroup), or set c.LimitedSpawner.require_limits = False to run without them")
            self.log.warning("no cgroup: %s's server runs without memory, CPU or process limits", self.user.name)
        else:
            limits = self._limits()
            self.log.info("%s's server in cgroup %s: %d MB, %s CPUs, %d processes", self.user.name,
                          self._cgroup.paths[0], limits.memory_mb, limits.cpus or "all", limits.processes)
        return await super().start()

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        if self._cgroup is not None:
            self._cgroup.remove()  # whatever the server left running (a kernel) goes with it
            self._cgroup = None

    def get_state(self) -> dict[str, Any]:
        """The spawner's state with the cgroup's folders: a restarted hub still removes the group on stop."""
        state = super().get_state()
        if self._cgroup is not None:
            state["cgroup"] = [str(p) for p in self._cgroup.paths]
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        if state.get("cgroup"):
            self._cgroup = Cgroup([Path(p) for p in state["cgroup"]])

    def clear_state(self) -> None:
        super().clear_state()
        self._cgroup = None
