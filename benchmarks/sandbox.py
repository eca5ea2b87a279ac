"""The cost of the grading sandbox: the same 30 warm-up submissions graded with and without it, in one run.

Usage:
    python benchmarks/sandbox.py [--n 30] [--jobs 2] [--out-dir benchmarks/]

Writes ``GRADING.json`` and ``GRADING.md`` (wall time of each batch, seconds per submission, the ratio) and checks
that both batches gave every student the same score.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO / "tests"), str(HERE)]
from run import machine  # noqa: E402 - benchmarks/run.py: the machine's description, shared by the benchmarks


def _submissions(folder: Path, n: int) -> None:
    """n submissions of the warm-up: a third solved, a third wrong, a third untouched."""
    import nbformat
    from test_grading import WARMUP, fill, released_nb, solved, wrong_sources

    kinds = {"solved": solved(WARMUP), "wrong": fill(released_nb(WARMUP), wrong_sources(WARMUP)),
             "untouched": released_nb(WARMUP)}
    for i in range(n):
        kind = list(kinds)[i % 3]
        (folder / f"{kind}{i:02d}").mkdir(parents=True)
        nbformat.write(kinds[kind], folder / f"{kind}{i:02d}" / f"{WARMUP}.ipynb")


def _grade(subs: Path, root: Path, out: Path, jobs: int, sandbox: bool) -> float:
    from test_grading import WARMUP, make_course_root

    make_course_root(root)
    cmd = [str(Path(sys.executable).parent / "tlcourse"), "grade", str(subs), "--assignment", WARMUP, "--out", str(out),
           "--jobs", str(jobs), "--root", str(root), "--no-feedback", *([] if sandbox else ["--no-sandbox"])]
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    return seconds


def _scores(path: Path) -> dict[str, str]:
    with open(path, newline="") as handle:
        return {row["student_id"]: row["auto_score"] for row in csv.DictReader(handle)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tlcourse-sandbox-bench-") as tmp:
        base = Path(tmp)
        _submissions(base / "subs", args.n)
        seconds, scores = {}, {}
        for mode in ("without", "with"):
            seconds[mode] = _grade(base / "subs", base / mode, base / f"{mode}.csv", args.jobs, mode == "with")
            scores[mode] = _scores(base / f"{mode}.csv")
            print(f"{mode} sandbox: {seconds[mode]:.1f} s", flush=True)
            shutil.rmtree(base / mode)
    if scores["with"] != scores["without"]:
        raise SystemExit(f"the two batches disagree: {scores}")
    result = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
              "submissions": args.n, "jobs": args.jobs, "seconds": {k: round(v, 1) for k, v in seconds.items()},
              "ratio": round(seconds["with"] / seconds["without"], 3)}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "GRADING.json").write_text(json.dumps(result, indent=1) + "\n")
    m = result["machine"]
    (args.out_dir / "GRADING.md").write_text(
        "# Grading benchmark\n\nWritten by `benchmarks/sandbox.py`. The same submissions of `00_warmup` (a third "
        "solved, a third wrong, a third untouched), graded with `tlcourse grade --jobs "
        f"{args.jobs} --no-feedback`, without and then with the bubblewrap sandbox, in one run.\n\n"
        f"Machine: {m['cpu']} ({m['cores']} cores), Python {m['python']}, torch {m['torch']}; {result['time']}.\n\n"
        "| batch | submissions | wall time (s) | s per submission |\n|---|---:|---:|---:|\n"
        + "".join(f"| {k} sandbox | {args.n} | {v:.1f} | {v / args.n:.2f} |\n" for k, v in result["seconds"].items())
        + f"\nRatio with / without: **{result['ratio']:.3f}**; both batches gave every student the same score.\n")
    print(f"ratio with / without: {result['ratio']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
