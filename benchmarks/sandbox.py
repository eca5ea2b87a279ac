"""Grading throughput and the cost of the trust boundary: the same warm-up submissions graded by plain
``nbgrader autograde`` and by ``tlcourse grade`` with and without the sandbox, at ``--jobs 1`` and ``2``, in one run.

Usage:
    python -m benchmarks.sandbox [--n 12] [--rounds 2] [--out-dir benchmarks/]

The batches run in rounds (every kind once per round, in turn), so a machine whose load drifts during the run
weighs on every kind alike; the table sums the rounds. ``tlcourse grade`` always runs its whole boundary (canary
cells, the static review, the sanitiser, capped read-back); ``--no-sandbox`` only drops bubblewrap and the cgroup.
Writes ``GRADING.json`` and ``GRADING.md`` and checks that every batch gave every student the same score.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))  # the grading tests' helpers (tests/support/course.py)
from benchmarks.machine import machine  # noqa: E402


def _submissions(folder: Path, n: int) -> None:
    """n submissions of the warm-up: a third solved, a third wrong, a third untouched."""
    import nbformat
    from support.course import WARMUP, fill, released_nb, solved, wrong_sources

    kinds = {"solved": solved(WARMUP), "wrong": fill(released_nb(WARMUP), wrong_sources(WARMUP)),
             "untouched": released_nb(WARMUP)}
    for i in range(n):
        kind = list(kinds)[i % 3]
        (folder / f"{kind}{i:02d}").mkdir(parents=True)
        nbformat.write(kinds[kind], folder / f"{kind}{i:02d}" / f"{WARMUP}.ipynb")


def _env() -> dict[str, str]:
    return dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def _run(cmd: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=cwd)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return seconds


def _tlcourse(jobs: int, sandbox: bool) -> Callable[[Path, Path], float]:
    def grade(subs: Path, root: Path) -> float:
        from support.course import WARMUP

        cmd = [str(Path(sys.executable).parent / "tlcourse"), "grade", str(subs), "--assignment", WARMUP,
               "--out", str(root / "grades.csv"), "--jobs", str(jobs), "--root", str(root), "--no-feedback",
               *([] if sandbox else ["--no-sandbox"])]
        return _run(cmd, root)

    return grade


def _nbgrader(subs: Path, root: Path) -> float:
    """Plain ``nbgrader autograde`` (one submission at a time, no sandbox, no boundary) on the same notebooks."""
    from support.course import WARMUP

    bin_dir = Path(sys.executable).parent
    submitted = root / "course" / "submitted"
    for student in subs.iterdir():
        shutil.copytree(student, submitted / student.name / WARMUP)
    release = ["--CourseDirectory.release_directory=" + str(root / "release")]  # never the repository's lessons/
    _run([str(bin_dir / "nbgrader"), "generate_assignment", WARMUP, "--force", *release], root)
    return _run([str(bin_dir / "nbgrader"), "autograde", WARMUP, "--force", "--create"], root)


#: What is compared: name -> grader (submissions folder, fresh course root) -> seconds.
KINDS: dict[str, Callable[[Path, Path], float]] = {
    "nbgrader autograde (no sandbox, one at a time)": _nbgrader,
    "tlcourse grade --no-sandbox --jobs 1": _tlcourse(1, False),
    "tlcourse grade --jobs 1 (sandbox)": _tlcourse(1, True),
    "tlcourse grade --no-sandbox --jobs 2": _tlcourse(2, False),
    "tlcourse grade --jobs 2 (sandbox)": _tlcourse(2, True),
}


def _scores(root: Path) -> dict[str, float]:
    """Every student's autograded points, read from the gradebook (the same for every kind)."""
    from nbgrader.api import Gradebook
    from support.course import WARMUP

    with Gradebook(f"sqlite:///{root / 'course' / 'gradebook.db'}") as gb:
        return {s.student.id: float(s.code_score) for s in gb.assignment_submissions(WARMUP)}


def _table(result: dict) -> str:
    base = result["seconds"]["nbgrader autograde (no sandbox, one at a time)"]
    n = result["submissions"] * result["rounds"]
    rows = "".join(f"| {k} | {n} | {v:.1f} | {v / n:.2f} | {v / base:.2f} |\n" for k, v in result["seconds"].items())
    m = result["machine"]
    return ("# Grading benchmark\n\nWritten by `benchmarks/sandbox.py`. The same submissions of `00_warmup` (a third "
            "solved, a third wrong, a third untouched), graded by plain `nbgrader autograde` and by `tlcourse grade "
            "--no-feedback` with and without the bubblewrap sandbox, in "
            f"{result['rounds']} rounds of {result['submissions']} (every kind once per round, in turn).\n\n"
            f"Machine: {m['cpu']} ({m['cores']} cores), Python {m['python']}, torch {m['torch']}; {result['time']}."
            f" Load average at the start / end: {result['load'][0]} / {result['load'][1]}.\n\n"
            "| grader | submissions | wall time (s) | s per submission | × nbgrader |\n|---|---:|---:|---:|---:|\n"
            + rows + f"\nSandbox with / without: **{result['sandbox_ratio']['jobs 1']:.3f}** at `--jobs 1`, "
            f"**{result['sandbox_ratio']['jobs 2']:.3f}** at `--jobs 2`. Every batch gave every student the same "
            "score. `tlcourse grade` includes its whole trust boundary in both columns (canary cells, the static "
            "review, the output sanitiser, capped read-back).\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="submissions per batch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args(argv)
    from support.course import make_course_root

    seconds = dict.fromkeys(KINDS, 0.0)
    scores: dict[str, dict[str, float]] = {}
    load = [round(os.getloadavg()[0], 1)]
    with tempfile.TemporaryDirectory(prefix="tlcourse-grading-bench-") as tmp:
        base = Path(tmp)
        _submissions(base / "subs", args.n)
        for r in range(args.rounds):
            for i, (kind, grade) in enumerate(KINDS.items()):
                root = make_course_root(base / f"r{r}-{i}")
                seconds[kind] += grade(base / "subs", root)
                scores[kind] = _scores(root)
                print(f"round {r + 1}: {kind}: {seconds[kind]:.1f} s so far", flush=True)
                shutil.rmtree(root)
    load.append(round(os.getloadavg()[0], 1))
    first = next(iter(scores.values()))
    if any(s != first for s in scores.values()):
        raise SystemExit(f"the batches disagree: {scores}")
    ratio = {f"jobs {j}": round(seconds[f"tlcourse grade --jobs {j} (sandbox)"]
                                / seconds[f"tlcourse grade --no-sandbox --jobs {j}"], 3) for j in (1, 2)}
    result = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(), "load": load,
              "submissions": args.n, "rounds": args.rounds, "seconds": {k: round(v, 1) for k, v in seconds.items()},
              "sandbox_ratio": ratio}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "GRADING.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out_dir / "GRADING.md").write_text(_table(result))
    print(_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
