"""Run the solution notebooks in one profile; write ``benchmarks/RESULTS.md`` and ``benchmarks/RESULTS.json``.

Usage:
    python -m benchmarks.run --profile grading|cpu|gpu [NOTEBOOK_OR_ASSIGNMENT ...]
    python -m benchmarks.run --profile gpu --import gpu/RESULTS.json   # fold in a run made on another machine

Each notebook (default: every ``solutions/NN_*/*.ipynb``) runs in a fresh kernel, in a temporary copy of its
folder (so ``solutions/`` stays clean), with ``TLCOURSE_PROFILE`` set to the profile and ``TLCOURSE_RESULTS``
naming a file that ``tlcourse.record(name, value)`` appends to. The results hold the machine (CPU and GPU names),
the profile, each notebook's wall time and status, every recorded number, and beside it the published reference
value (``ANCHORS``) it should be compared with. Runs of different profiles are kept side by side: re-running a
profile replaces its entries for the notebooks it ran.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.anchors import ANCHORS
from benchmarks.machine import machine

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PROFILES = ("grading", "cpu", "gpu")

# ------------------------------------------------------------------------------------------------ notebooks
def find_notebooks(names: list[str]) -> list[Path]:
    """Notebook paths from paths or assignment names (default: every solution notebook)."""
    solutions = REPO / "solutions"
    if not names:
        return sorted(p for p in solutions.glob("[0-9][0-9]_*/*.ipynb") if p.stem == p.parent.name)
    found = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            found.append(path.resolve())
        elif (solutions / name / f"{name}.ipynb").is_file():
            found.append(solutions / name / f"{name}.ipynb")
        else:
            raise SystemExit(f"no notebook {name!r}: give a path or an assignment name such as 00_warmup")
    return found


def run_notebook(path: Path, profile: str, cell_timeout: int, keep: Path | None = None) -> dict[str, Any]:
    """Execute one notebook in a scratch copy of its folder; return its timing, status and records. With ``keep``,
    the executed notebook (outputs up to an error included) is written there for a reader."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    from tlcourse.config import environ
    from tlcourse.record import load_records

    with tempfile.TemporaryDirectory(prefix=f"bench-{path.stem}-") as tmp:
        work = Path(tmp) / path.parent.name
        shutil.copytree(path.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        results = Path(tmp) / "results.json"
        nb = nbformat.read(work / path.name, as_version=4)
        status = "ok"
        started = time.perf_counter()
        # NBGRADER_EXECUTION unset: it would force the grading profile
        with environ(TLCOURSE_PROFILE=profile, TLCOURSE_RESULTS=str(results), NBGRADER_EXECUTION=None):
            try:
                NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                               resources={"metadata": {"path": str(work)}}).execute()
            except CellExecutionError as exc:
                status = "error: " + str(exc).strip().splitlines()[-1][:200]
            except DeadKernelError:
                status = "error: the kernel died"
            except TimeoutError as exc:
                status = f"error: timeout ({str(exc).strip().splitlines()[0]})"
        seconds = time.perf_counter() - started
        records = load_records(results)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, keep / path.name)
    for rec in records:
        rec.setdefault("lesson", None)
        rec["notebook"] = path.stem
    return {"notebook": path.stem, "seconds": round(seconds, 1), "status": status, "records": records}


# ------------------------------------------------------------------------------------------------- results
def merge(previous: dict[str, Any], profile: str, info: dict[str, Any], runs: list[dict[str, Any]]) -> dict:
    """Fold a run into the results: this profile's entries for these notebooks are replaced."""
    data = {"runs": dict(previous.get("runs", {}))}
    entry = dict(data["runs"].get(profile, {"notebooks": {}, "records": []}))
    ran = {r["notebook"] for r in runs}
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    notebooks = {k: v for k, v in entry.get("notebooks", {}).items() if k not in ran}
    for r in runs:
        notebooks[r["notebook"]] = {"seconds": r["seconds"], "status": r["status"], "time": stamp}
    records = [r for r in entry.get("records", []) if r.get("notebook") not in ran]
    records += [rec for r in runs for rec in r["records"]]
    data["runs"][profile] = {"profile": profile, "machine": info, "time": stamp,
                             "notebooks": dict(sorted(notebooks.items())), "records": records}
    data["anchors"] = {k: {"value": v, "source": s} for k, (v, s) in ANCHORS.items()}
    return data


def fold(data: dict[str, Any], profile: str, run: dict[str, Any]) -> dict[str, Any]:
    """Fold another machine's run of ``profile`` into ``data``, notebook by notebook (its notebooks replace
    those entries; the others stay), keeping that run's machine and time on the notebooks it brings."""
    runs = [{"notebook": nb, "seconds": e["seconds"], "status": e["status"],
             "records": [r for r in run["records"] if r.get("notebook") == nb]}
            for nb, e in run["notebooks"].items()]
    folded = merge(data, profile, run["machine"], runs)
    folded["runs"][profile]["time"] = run["time"]
    return folded


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _one_line(text: str, limit: int = 160) -> str:
    """A status fit for a table cell: one line, no pipes, at most ``limit`` characters."""
    flat = " ".join(str(text).split()).replace("|", "/")
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


_VERDICT = {"held": "✓ held", "within noise": "≈ within noise", "did not hold": "✗ did not hold",
            1: "✓ held (two-outcome claim, no interval)", 0: "✗ did not hold (two-outcome claim, no interval)"}


def claim_cell(rec: dict[str, Any]) -> str:
    """One claim's outcome in one profile, with its interval when it was recorded with one."""
    verdict = _VERDICT.get(rec["value"], str(rec["value"]))
    if "low" not in rec:
        return verdict
    return (f"{verdict} {rec['difference']:+.3f} [{rec['low']:+.3f}, {rec['high']:+.3f}] "
            f"<small>{_one_line(rec.get('method', ''), 60)}</small>")


def claims_table(data: dict[str, Any]) -> list[str]:
    """Every claim a lesson checked (``tlcourse.claim``), one row each, with its outcome and interval in every
    profile run."""
    profiles = [p for p in PROFILES if p in data.get("runs", {})]
    outcome: dict[tuple[str, str], dict[str, str]] = {}
    for profile in profiles:
        for rec in data["runs"][profile]["records"]:
            if rec["name"].startswith("claim_"):
                key = (str(rec.get("lesson") or rec.get("notebook")), rec["name"].removeprefix("claim_"))
                outcome.setdefault(key, {})[profile] = claim_cell(rec)
    if not outcome:
        return []
    lines = ["## Checked claims", "",
             "What each lesson claims and checks in its own run (`tlcourse.claim`): ✓ held beyond noise, "
             "≈ within noise (the interval straddles the line the claim draws), ✗ did not hold; then the measured "
             "difference and its 95 % interval, and where the interval comes from; — not run in that profile. "
             "The grading profile's tiny subsets decide little.", "",
             "| lesson | claim | " + " | ".join(profiles) + " |", "|---|---|" + "---|" * len(profiles)]
    for (lesson, name), by_profile in sorted(outcome.items()):
        lines.append(f"| {lesson} | {name} | " + " | ".join(by_profile.get(p, "—") for p in profiles) + " |")
    return lines + [""]


def markdown(data: dict[str, Any]) -> str:
    """The results as a readable page."""
    lines = ["# Benchmark results", "",
             "Written by `benchmarks/run.py` (do not edit by hand). Each profile's run: the machine, each solution "
             "notebook's wall time, and every number a lesson recorded with `tlcourse.record`, beside the "
             "published reference value it should be compared with.", ""]
    lines += claims_table(data)
    for profile in [p for p in PROFILES if p in data.get("runs", {})]:
        run = data["runs"][profile]
        m = run["machine"]
        lines += [f"## Profile `{profile}`", "",
                  f"Machine: {m['cpu']} ({m['cores']} cores), GPU: {m['gpu'] or 'none'}; Python {m['python']}, "
                  f"torch {m['torch']}. Last run {run['time']}.", "",
                  "| notebook | wall time (s) | status |", "|---|---:|---|"]
        lines += [f"| {nb} | {e['seconds']:.1f} | {_one_line(e['status'])} |" for nb, e in run["notebooks"].items()]
        total = sum(e["seconds"] for e in run["notebooks"].values())
        lines += [f"| **total** | **{total:.1f}** | |", ""]
        numbers = [r for r in run["records"] if not r["name"].startswith("claim_")]
        if numbers:
            lines += ["| recorded | lesson | value | anchor | anchor source |", "|---|---|---:|---:|---|"]
            for rec in numbers:
                anchor = ANCHORS.get(rec["name"])
                lines.append(f"| {rec['name']} | {rec.get('lesson') or rec.get('notebook')} | {_fmt(rec['value'])} | "
                             f"{_fmt(anchor[0]) if anchor else '—'} | {anchor[1] if anchor else ''} |")
            lines.append("")
        else:
            lines += ["(no numbers recorded)", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line entry; returns 1 when a notebook failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook paths or assignment names (default: all)")
    parser.add_argument("--profile", choices=PROFILES, required=True)
    parser.add_argument("--cell-timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where RESULTS.md/.json go (default benchmarks/)")
    parser.add_argument("--keep-executed", type=Path, default=None, metavar="DIR",
                        help="also write each executed notebook into DIR (to read the run's prose and figures)")
    parser.add_argument("--import", dest="imports", type=Path, nargs="+", default=[], metavar="RESULTS_JSON",
                        help="fold the --profile run of other RESULTS.json files (another machine's, a GPU run, "
                             "a run of some notebooks) into --out-dir, notebook by notebook, then exit")
    args = parser.parse_args(argv)
    out_json, out_md = args.out_dir / "RESULTS.json", args.out_dir / "RESULTS.md"
    previous = json.loads(out_json.read_text()) if out_json.is_file() else {}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.imports:
        data = previous
        for path in args.imports:
            run = json.loads(path.read_text())["runs"].get(args.profile)
            if run is None:
                raise SystemExit(f"{path} holds no {args.profile!r} run")
            data = fold(data, args.profile, run)
        out_json.write_text(json.dumps(data, indent=1) + "\n")
        out_md.write_text(markdown(data))
        print(f"folded profile {args.profile} from {len(args.imports)} file(s) into {out_md} and {out_json.name}")
        return 0

    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    info = machine()
    print(f"profile {args.profile} on {info['cpu']} ({info['cores']} cores), GPU: {info['gpu'] or 'none'}", flush=True)
    runs = []
    for path in find_notebooks(args.notebooks):
        print(f"  {path.relative_to(REPO) if path.is_relative_to(REPO) else path} …", end=" ", flush=True)
        result = run_notebook(path, args.profile, args.cell_timeout, args.keep_executed)
        print(f"{result['seconds']:.1f} s, {result['status']}, {len(result['records'])} number(s)", flush=True)
        runs.append(result)
        data = merge(previous, args.profile, info, runs)  # written after every notebook: nothing lost on a kill
        out_json.write_text(json.dumps(data, indent=1) + "\n")
        out_md.write_text(markdown(data))
    print(f"wrote {out_md} and {out_json.name}")
    return 0 if all(r["status"] == "ok" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
