"""A lesson on a busy machine: thread pools sized to the free cores (``tlcourse.threads``) vs one per core.

A student's laptop runs a browser and a video call; a shared JupyterHub runs other students' kernels. torch starts
one thread per core it sees, so those threads fight the other programs for the cores. This script keeps every core
busy with spinning processes (the synthetic background load), then runs lessons in the grading profile twice per
round, in alternating order:

* ``one per core`` — ``OMP_NUM_THREADS`` = the number of cores (what torch does without ``tlcourse``);
* ``sized`` — no thread variable set: ``import tlcourse`` sizes the pools to the cores the load leaves free.

and once more on the quiet machine (sized) for reference, last, so that every run finds the same warm caches. Writes ``LOAD.md`` and ``load.json`` (ratio = seconds one
per core / seconds sized; > 1: sizing is faster). Usage::

    python -m benchmarks.load [--lessons 02_feature_extraction ...] [--rounds 2] [--spinners N] [--out benchmarks/]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

from benchmarks.machine import machine as machine_info  # noqa: E402
from benchmarks.run import find_notebooks, run_notebook  # noqa: E402
from tlcourse.config import environ  # noqa: E402
from tlcourse.threads import MARKER, THREAD_VARS  # noqa: E402

SPIN = "while True: pass"


def spinners(n: int) -> list[subprocess.Popen]:
    """``n`` processes that each keep one core busy until killed."""
    return [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n)]


def mode_env(mode: str, cores: int) -> dict[str, str | None]:
    """The kernel's thread variables for a mode (``None`` unsets)."""
    if mode == "one per core":
        return {**{var: str(cores) for var in THREAD_VARS}, MARKER: None, "OMP_WAIT_POLICY": None,
                "TLCOURSE_THREADS": None}
    return {**{var: None for var in THREAD_VARS}, MARKER: None, "OMP_WAIT_POLICY": None, "TLCOURSE_THREADS": None}


def timed(path: Path, mode: str, cores: int, cell_timeout: int) -> dict[str, Any]:
    with environ(**mode_env(mode, cores)):
        run = run_notebook(path, "grading", cell_timeout)
    return {"mode": mode, "seconds": run["seconds"], "status": run["status"]}


def measure(path: Path, rounds: int, n_spin: int, cell_timeout: int) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    runs: list[dict[str, Any]] = []
    load = spinners(n_spin)
    try:
        time.sleep(2)  # let the spinners take the cores
        for r in range(rounds):
            order = ["one per core", "sized"] if r % 2 == 0 else ["sized", "one per core"]
            for mode in order:
                runs.append(timed(path, mode, cores, cell_timeout))
                print(f"  {path.stem} round {r + 1}: {mode:<13} {runs[-1]['seconds']:.1f} s {runs[-1]['status']}",
                      flush=True)
    finally:
        for p in load:
            p.kill()
    time.sleep(5)
    quiet = timed(path, "sized", cores, cell_timeout)  # last: every run before it warmed the same caches
    per_mode = {m: [x["seconds"] for x in runs if x["mode"] == m] for m in ("one per core", "sized")}
    return {"lesson": path.stem, "quiet_sized_seconds": quiet["seconds"], "runs": runs,
            "median": {m: statistics.median(v) for m, v in per_mode.items()},
            "ratio": statistics.median(per_mode["one per core"]) / statistics.median(per_mode["sized"]),
            "ok": all(x["status"] == "ok" for x in [quiet, *runs])}


def markdown(data: dict[str, Any]) -> str:
    m = data["machine"]
    lines = ["# A lesson on a busy machine: thread pools sized to the free cores vs one per core", "",
             f"Machine: {m['cpu']}, {m['cores']} cores; torch {m.get('torch')}; {data['spinners']} spinning "
             f"processes keep the cores busy; grading profile; {data['rounds']} rounds per lesson in alternating "
             f"order, medians. Ratio = one per core / sized (> 1: sizing is faster). Written by "
             "`benchmarks/load.py`.", "",
             "| lesson | quiet (sized) s | busy, one thread per core s | busy, sized s | ratio | all ran |",
             "|---|---|---|---|---|---|"]
    for r in data["lessons"]:
        lines.append(f"| {r['lesson']} | {r['quiet_sized_seconds']:.1f} | {r['median']['one per core']:.1f} | "
                     f"{r['median']['sized']:.1f} | {r['ratio']:.2f} | {'yes' if r['ok'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lessons", nargs="+", default=["02_feature_extraction"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--spinners", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cell-timeout", type=int, default=1200)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    data = {"machine": machine_info(), "spinners": args.spinners, "rounds": args.rounds,
            "lessons": [measure(p, args.rounds, args.spinners, args.cell_timeout)
                        for p in find_notebooks(args.lessons)]}
    (args.out / "load.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (args.out / "LOAD.md").write_text(markdown(data), encoding="utf-8")
    print(markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
