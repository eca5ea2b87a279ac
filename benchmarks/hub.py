"""Sizing a hub: the memory and CPU one student costs, measured, and how many students a server holds.

Usage:
    python -m benchmarks.hub [--lesson 02_feature_extraction] [--profile cpu] [--out-dir benchmarks/]

Starts a Jupyter server as a student's hub server would (the course environment), measures its memory at rest,
then runs the lesson in a kernel (the cpu profile, as a student's laptop-sized run) while sampling the memory and
CPU time of the kernel. Writes ``HUB.json`` and ``HUB.md``: the measurements and a table of students per server
size, from these rules (stated in the page): every student has a server and a kernel holding the lesson's data;
a third of the class runs a heavy cell at any moment; 4 GB stay with the system.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.machine import machine

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

SERVERS = [(8, 32), (16, 64), (32, 128), (64, 256)]  # (cores, GB)
ACTIVE_SHARE = 1 / 3  # the share of a class running a heavy cell at any moment (assumption, stated in the page)
SYSTEM_GB = 4


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    except psutil.Error:
        return 0


def _server_at_rest(tmp: Path) -> int:
    """RSS of a fresh Jupyter server (no kernel), after it settled."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(8)
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
                               f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                time.sleep(0.5)
        time.sleep(10)
        return _tree_rss(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _run_lesson(path: Path, profile: str) -> dict:
    """Execute a lesson in a kernel, sampling the kernel's memory; return peak/end RSS, wall and CPU seconds."""
    import nbformat
    import psutil
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    peak, stop = [0], threading.Event()
    env_before = {k: os.environ.get(k) for k in ("TLCOURSE_PROFILE", "NBGRADER_EXECUTION")}
    os.environ["TLCOURSE_PROFILE"] = profile
    os.environ.pop("NBGRADER_EXECUTION", None)

    def sample() -> None:
        while not stop.is_set():
            km = getattr(client, "km", None)
            proc = getattr(getattr(km, "provisioner", None), "process", None)
            if proc is not None:
                peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.5)

    watcher = threading.Thread(target=sample, daemon=True)
    started = time.monotonic()
    try:
        with client.setup_kernel():
            pid = client.km.provisioner.process.pid
            watcher.start()
            client.execute(cleanup_kc=False)
            kernel = psutil.Process(pid)
            cpu = sum(t for t in kernel.cpu_times()[:2])
            end = _tree_rss(pid)
    finally:
        stop.set()
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {"wall_s": time.monotonic() - started, "cpu_s": cpu, "peak_rss": peak[0], "end_rss": end}


def _table(server_gb: float, active_gb: float, rest_gb: float, cores_active: float) -> list[dict]:
    rows = []
    for cores, ram in SERVERS:
        by_memory_all = int((ram - SYSTEM_GB) // active_gb)
        per_student = ACTIVE_SHARE * active_gb + (1 - ACTIVE_SHARE) * rest_gb
        by_memory = int((ram - SYSTEM_GB) // per_student)
        by_cpu = int(cores / (ACTIVE_SHARE * cores_active))
        rows.append({"cores": cores, "GB": ram, "all running at once (memory)": by_memory_all,
                     "a third running (memory)": by_memory, "a third running (CPU)": by_cpu,
                     "students": min(by_memory, by_cpu)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson", default="02_feature_extraction")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args(argv)
    gb = 1024 ** 3
    with tempfile.TemporaryDirectory(prefix="tlcourse-hub-bench-") as tmp:
        server = _server_at_rest(Path(tmp))
        run = _run_lesson(REPO / "solutions" / args.lesson / f"{args.lesson}.ipynb", args.profile)
    active_gb, rest_gb = (server + run["peak_rss"]) / gb, (server + run["end_rss"]) / gb
    cores_active = run["cpu_s"] / run["wall_s"]
    result = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
              "lesson": args.lesson, "profile": args.profile, "server_at_rest_mb": round(server / 2**20),
              "kernel_peak_mb": round(run["peak_rss"] / 2**20), "kernel_after_lesson_mb": round(run["end_rss"] / 2**20),
              "lesson_wall_s": round(run["wall_s"], 1), "lesson_cpu_s": round(run["cpu_s"], 1),
              "cores_while_running": round(cores_active, 2),
              "table": _table(server / gb, active_gb, rest_gb, cores_active)}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "HUB.json").write_text(json.dumps(result, indent=1) + "\n")
    m = result["machine"]
    lines = ["# Hub sizing", "",
             f"Written by `benchmarks/hub.py` on {m['cpu']} ({m['cores']} cores), {result['time']}. One student: a "
             f"Jupyter server at rest, then lesson `{args.lesson}` in the `{args.profile}` profile in a kernel.", "",
             "| measured | value |", "|---|---:|",
             f"| server at rest (RSS) | {result['server_at_rest_mb']} MB |",
             f"| kernel, peak while running the lesson | {result['kernel_peak_mb']} MB |",
             f"| kernel after the lesson (data still loaded) | {result['kernel_after_lesson_mb']} MB |",
             f"| lesson wall time / kernel CPU time | {result['lesson_wall_s']} s / {result['lesson_cpu_s']} s |",
             f"| cores used while running | {result['cores_while_running']} |", "",
             f"Students per server (cpu profile). Rules: {SYSTEM_GB} GB stay with the system; every student holds a "
             "server and a kernel with the lesson loaded; a third of the class runs a heavy cell at any moment (an "
             "assumption: a lab session, not an exam where everyone presses Run together).", "",
             "| server | all running at once (memory) | a third running (memory) | a third running (CPU) | "
             "students |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['cores']} cores / {r['GB']} GB | {r['all running at once (memory)']} | "
              f"{r['a third running (memory)']} | {r['a third running (CPU)']} | **{r['students']}** |"
              for r in result["table"]]
    (args.out_dir / "HUB.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
