"""Thread pools sized to the CPUs a process can use (``tlcourse.threads``): the arithmetic, the cgroup files of
both cgroup versions, and what ``import tlcourse`` does to torch in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tlcourse.threads import MARKER, THREAD_VARS, _cpu_times, cgroup_cpu_quota, cpu_share


@pytest.mark.parametrize(("affinity", "quota", "cores", "load", "want"), [
    (8, None, 8, 0.0, 8),     # a quiet machine: every core
    (8, 2.0, 8, 0.0, 2),      # a hub server limited to 2 CPUs sees 8 cores
    (2, 1.5, 2, None, 2),     # a fractional quota still runs two threads at times
    (4, None, 4, 3.2, 1),     # a busy laptop: one core free
    (4, None, 4, 1.6, 2),     # the free cores, to the nearest
    (2, None, 2, 9.0, 1),     # never fewer than one
    (16, 4.0, 64, 62.0, 2),   # affinity, quota and load: the smallest wins
])
def test_the_share_is_the_tightest_limit(affinity: int, quota: float | None, cores: int, load: float | None,
                                         want: int) -> None:
    assert cpu_share(affinity, quota, cores, load) == want


def test_cgroup_v2_quota_is_the_tightest_on_the_path(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("0::/hub.slice/alice\n")
    (tmp_path / "hub.slice" / "alice").mkdir(parents=True)
    (tmp_path / "hub.slice" / "cpu.max").write_text("300000 100000\n")
    (tmp_path / "hub.slice" / "alice" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path, proc) == 3.0  # the parent's 3 CPUs bound the unlimited child
    (tmp_path / "hub.slice" / "alice" / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path, proc) == 1.5
    (tmp_path / "hub.slice" / "cpu.max").write_text("max 100000\n")
    (tmp_path / "hub.slice" / "alice" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path, proc) is None


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("12:memory:/x\n4:cpu,cpuacct:/kubepods/pod1\n")
    folder = tmp_path / "cpu" / "kubepods" / "pod1"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text("50000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(tmp_path, proc) == 0.5
    (folder / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(tmp_path, proc) is None
    assert cgroup_cpu_quota(tmp_path, tmp_path / "missing") is None


def test_cpu_times_reads_busy_and_total(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 50 800 45 0 0 0 0 0\ncpu0 90 0 10 0 0 0 0 0 0 0\ncpu1 10 5 40 800 45 0 0 0 0 0\n")
    assert _cpu_times(stat) == (155, 1000)  # idle + iowait are not busy
    assert _cpu_times(stat, frozenset({0})) == (100, 100)  # only the CPUs this process may run on
    assert _cpu_times(stat, frozenset({1})) == (55, 900)
    assert _cpu_times(stat, frozenset({7})) is None
    stat.write_text("garbage\n")
    assert _cpu_times(stat) is None


def _threads_after_import(env: dict[str, str]) -> tuple[int, str]:
    code = "import tlcourse, torch, os; print(torch.get_num_threads(), os.environ.get('OMP_WAIT_POLICY'))"
    drop = {*THREAD_VARS, "OMP_WAIT_POLICY", "TLCOURSE_THREADS", MARKER}  # set when this process imported tlcourse
    clean = {k: v for k, v in os.environ.items() if k not in drop}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    return int(out[0]), out[1]


def test_import_tlcourse_sizes_torch_and_keeps_an_explicit_choice() -> None:
    assert _threads_after_import({"TLCOURSE_THREADS": "1"}) == (1, "PASSIVE")
    cores = os.cpu_count() or 1
    if cores >= 2:
        assert _threads_after_import({"TLCOURSE_THREADS": "2"})[0] == 2
        assert _threads_after_import({"OMP_NUM_THREADS": "2", "TLCOURSE_THREADS": "1"})[0] == 2  # explicit wins
    assert 1 <= _threads_after_import({})[0] <= cores
    # a parent's explicit choice reaches its children as one (the grader's per-worker share, say)
    parent = ("import os, subprocess, sys, tlcourse; print(subprocess.run([sys.executable, '-c', 'import tlcourse, "
              "torch; print(torch.get_num_threads())'], env=dict(os.environ, TLCOURSE_THREADS='2'), "
              "capture_output=True, text=True).stdout)")
    drop = {*THREAD_VARS, "OMP_WAIT_POLICY", "TLCOURSE_THREADS", MARKER}
    clean = {k: v for k, v in os.environ.items() if k not in drop}
    child = subprocess.run([sys.executable, "-c", parent], env={**clean, "OMP_NUM_THREADS": "1"},
                           capture_output=True, text=True, check=True, timeout=120).stdout.split()
    assert child == ["1"], child
    # a parent that imported tlcourse passes its sized numbers down, marked: the child sizes its own pools
    inherited = {var: "1" for var in THREAD_VARS} | {MARKER: "1", "TLCOURSE_THREADS": str(cores)}
    assert _threads_after_import(inherited)[0] == cores
