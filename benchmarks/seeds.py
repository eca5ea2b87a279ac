"""Headline numbers over several seeds: mean and spread, because one seed on 153 images is noisy.

Runs each notebook once per seed in one profile (``TLCOURSE_SEED_OFFSET`` shifts every seed the lesson sets,
so the lesson itself keeps its one fixed seed) and writes ``SEEDS.md`` / ``SEEDS.json``: for every headline
number (those with a published anchor in ``run.ANCHORS`` and those in ``HEADLINES``), the value per seed, the
mean, the spread (max − min) and the anchor. Usage::

    python benchmarks/seeds.py --profile cpu --seeds 0 1 2 02_feature_extraction 03_fine_tuning
    python benchmarks/seeds.py --profile cpu --seeds 1 2 --offset0-from benchmarks/RESULTS.json ...

``--offset0-from`` takes seed offset 0 from a ``run.py`` results file of the same profile (the lessons' own seed,
already run) instead of running it again. Numbers of lessons not run this time are kept from the previous
``SEEDS.json`` of the same profile, and each number says when it was measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from run import ANCHORS, find_notebooks, machine, run_notebook  # noqa: E402

from tlcourse.config import environ  # noqa: E402

#: Numbers reported over seeds besides those with an anchor.
HEADLINES = {"hymenoptera_finetune_val_acc", "sentiment_finetune_acc", "sentiment_lora_acc", "sentiment_frozen_acc",
             "hymenoptera_frozen_val_acc"}


def collect(notebooks: list[Path], profile: str, seeds: list[int], timeout: int,
            save: Any = None) -> dict[str, Any]:
    """Run every notebook with every seed offset; return {name: {"lesson", "values": {seed: value}}}.
    ``save(table)`` is called after every run, so a long run loses nothing when stopped."""
    table: dict[str, Any] = {}
    for path in notebooks:
        for seed in seeds:
            print(f"  {path.stem} seed offset {seed} …", end=" ", flush=True)
            with environ(TLCOURSE_SEED_OFFSET=str(seed)):
                result = run_notebook(path, profile, timeout)
            print(f"{result['seconds']:.0f} s, {result['status']}", flush=True)
            for rec in result["records"]:
                if rec["name"] in ANCHORS or rec["name"] in HEADLINES:
                    entry = table.setdefault(rec["name"], {"lesson": path.stem, "values": {}})
                    entry["values"][str(seed)] = rec["value"]
                    entry["measured"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
            if save is not None:
                save(table)
    return table


def add_offset0(table: dict[str, Any], results: Path, profile: str, notebooks: list[Path]) -> None:
    """Fill seed offset 0 from ``run.py``'s results (same profile) for the notebooks of this run."""
    run = json.loads(results.read_text())["runs"][profile]
    stems = {p.stem for p in notebooks}
    for rec in run["records"]:
        if rec.get("notebook") in stems and (rec["name"] in ANCHORS or rec["name"] in HEADLINES):
            entry = table.setdefault(rec["name"], {"lesson": rec["notebook"], "values": {}})
            entry["values"]["0"] = rec["value"]


def previous_numbers(path: Path, profile: str, notebooks: list[Path]) -> dict[str, Any]:
    """Numbers of lessons not run this time, from an earlier ``SEEDS.json`` of the same profile."""
    if not path.is_file():
        return {}
    old = json.loads(path.read_text())
    if old.get("profile") != profile:
        return {}
    stems = {p.stem for p in notebooks}
    return {name: entry for name, entry in old["numbers"].items() if entry["lesson"] not in stems}


def markdown(table: dict[str, Any], profile: str, info: dict[str, Any]) -> str:
    """The table as a page: value per seed, mean, spread, anchor."""
    seeds = sorted({s for e in table.values() for s in e["values"]}, key=int)
    lines = ["# Headline numbers over seeds", "",
             f"Written by `benchmarks/seeds.py` (do not edit by hand). Profile `{profile}` on {info['cpu']} "
             f"({info['cores']} cores). Seed offsets {', '.join(seeds)} (`TLCOURSE_SEED_OFFSET`); the lessons "
             "themselves run offset 0. Spread = max − min.", "",
             "| number | lesson | " + " | ".join(f"seed +{s}" for s in seeds)
             + " | mean | spread | anchor | measured (UTC) |",
             "|---|---|" + "---:|" * (len(seeds) + 3) + "---|"]
    for name, e in sorted(table.items(), key=lambda kv: (kv[1]["lesson"], kv[0])):
        vals = [e["values"].get(s) for s in seeds]
        got = [v for v in vals if v is not None]
        anchor = ANCHORS.get(name)
        lines.append(f"| {name} | {e['lesson']} | " + " | ".join("—" if v is None else f"{v:.4f}" for v in vals)
                     + f" | {statistics.mean(got):.4f} | {max(got) - min(got):.4f} | "
                     + (f"{anchor[0]:.4g}" if anchor else "—") + f" | {e.get('measured', 'an earlier run')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook paths or assignment names (default: all)")
    parser.add_argument("--profile", default="cpu", choices=("grading", "cpu", "gpu"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cell-timeout", type=int, default=1800)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    parser.add_argument("--offset0-from", type=Path, help="take seed offset 0 from this run.py RESULTS.json")
    args = parser.parse_args(argv)
    info = machine()
    notebooks = find_notebooks(args.notebooks)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    out_json = args.out_dir / "SEEDS.json"
    kept = previous_numbers(out_json, args.profile, notebooks)  # read once, before the first save rewrites it

    def save(table: dict[str, Any]) -> None:
        for name, entry in kept.items():
            table.setdefault(name, entry)
        if args.offset0_from:
            add_offset0(table, args.offset0_from, args.profile, notebooks)
        out_json.write_text(json.dumps({"profile": args.profile, "machine": info,
                                                             "numbers": table}, indent=1) + "\n")
        (args.out_dir / "SEEDS.md").write_text(markdown(table, args.profile, info))

    save(collect(notebooks, args.profile, args.seeds, args.cell_timeout, save))
    print(f"wrote {args.out_dir / 'SEEDS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
