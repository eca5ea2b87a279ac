"""Headline numbers over several seeds: mean and spread, because one seed on 153 images is noisy.

Runs each notebook once per seed in one profile (``TLCOURSE_SEED_OFFSET`` shifts every seed the lesson sets,
so the lesson itself keeps its one fixed seed) and writes ``SEEDS.md`` / ``SEEDS.json``: for every headline
number (those with a published anchor in ``run.ANCHORS`` and those in ``HEADLINES``), the value per seed, the
mean, the spread (max − min) and the anchor; every claim a lesson checked, with its outcome per seed; and the
comparisons in ``SEED_CLAIMS`` decided over the seeds (a paired t interval, ``tlcourse.stats.seed_difference``),
which is what one seed cannot decide. Usage::

    python -m benchmarks.seeds --profile cpu --seeds 0 1 2 02_feature_extraction 03_fine_tuning
    python -m benchmarks.seeds --profile cpu --seeds 1 2 --offset0-from benchmarks/RESULTS.json ...

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

from benchmarks.anchors import ANCHORS  # noqa: E402
from benchmarks.machine import machine  # noqa: E402
from benchmarks.run import find_notebooks, run_notebook  # noqa: E402
from tlcourse.config import environ  # noqa: E402
from tlcourse.record import OUTCOME_STYLE, decide  # noqa: E402
from tlcourse.stats import seed_difference  # noqa: E402

#: Numbers reported over seeds besides those with an anchor.
HEADLINES = {"hymenoptera_finetune_val_acc", "sentiment_finetune_acc", "sentiment_lora_acc", "sentiment_frozen_acc",
             "hymenoptera_frozen_val_acc", "hymenoptera_scratch_val_acc", "breast_scratch_test_auc",
             "pneumonia_scratch_test_auc"}

#: Comparisons decided over seeds: (statement, a, b — a recorded name or a fixed number —, expect, margin).
SEED_CLAIMS: list[tuple[str, str, str | float, str, float]] = [
    ("03: fine-tuning beats 02's frozen features", "hymenoptera_finetune_val_acc", "hymenoptera_frozen_val_acc",
     "greater", 0.0),
    ("02: frozen features beat the small CNN from scratch", "hymenoptera_frozen_val_acc",
     "hymenoptera_scratch_val_acc", "greater", 0.0),
    ("05: BreastMNIST AUC above the published ResNet-18 (28)", "breast_test_auc", ANCHORS["breast_test_auc"][0],
     "greater", 0.0),
    ("05: BreastMNIST accuracy above the published ResNet-18 (28)", "breast_test_acc",
     ANCHORS["breast_test_acc"][0], "greater", 0.0),
    ("05: PneumoniaMNIST AUC above the published ResNet-18 (28)", "pneumonia_test_auc",
     ANCHORS["pneumonia_test_auc"][0], "greater", 0.0),
    ("05: transfer beats the in-notebook scratch model (BreastMNIST AUC)", "breast_test_auc",
     "breast_scratch_test_auc", "greater", 0.0),
    ("06: fine-tuning beats frozen sentence embeddings", "sentiment_finetune_acc", "sentiment_frozen_acc",
     "greater", 0.0),
    ("06: LoRA within 2 points of full fine-tuning", "sentiment_lora_acc", "sentiment_finetune_acc", "close", 0.02),
]


def _kept(name: str) -> bool:
    return name in ANCHORS or name in HEADLINES or name.startswith("claim_")


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
                if _kept(rec["name"]):
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
        if rec.get("notebook") in stems and _kept(rec["name"]):
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


def seed_claims(table: dict[str, Any]) -> list[str]:
    """``SEED_CLAIMS`` decided on the seeds both numbers were measured on (rows skipped when fewer than two)."""
    rows = []
    for statement, a, b, expect, margin in SEED_CLAIMS:
        if a not in table or (isinstance(b, str) and b not in table):
            continue
        seeds = [s for s in table[a]["values"] if isinstance(b, float) or s in table[b]["values"]]
        if len(seeds) < 2:
            continue
        a_vals = [table[a]["values"][s] for s in seeds]
        b_vals = b if isinstance(b, float) else [table[b]["values"][s] for s in seeds]
        gap = seed_difference(a_vals, b_vals)
        verdict = OUTCOME_STYLE[decide(gap, expect, margin)][0]
        rows.append(f"| {statement} | {verdict} | {gap.difference:+.4f} | [{gap.low:+.4f}, {gap.high:+.4f}] | "
                    f"{len(seeds)} |")
    if not rows:
        return []
    return ["", "## Comparisons over seeds", "",
            "One seed cannot separate the training's noise from a real difference: each comparison below is decided "
            "on the mean difference over the seeds, with a paired 95 % t interval (`tlcourse.stats.seed_difference`)."
            " It covers the training's noise; both numbers are scored on the same images, whose own sampling noise is "
            "in the lessons' bootstrap intervals, not here. A fixed number (a published baseline) has no interval.",
            "",
            "| comparison | outcome | mean difference | 95 % interval | seeds |", "|---|---|---:|---|---:|", *rows]


def claims_over_seeds(table: dict[str, Any], seeds: list[str]) -> list[str]:
    """Each claim a lesson checked, with its outcome in each seed's run."""
    claims = {n: e for n, e in table.items() if n.startswith("claim_")}
    if not claims:
        return []
    short = {"held": "✓", "within noise": "≈", "did not hold": "✗", 1: "✓", 0: "✗"}
    lines = ["", "## The lessons' claims, seed by seed", "",
             "✓ held beyond noise, ≈ within noise, ✗ did not hold, in each seed's run (the lesson's own interval).",
             "", "| claim | lesson | " + " | ".join(f"seed +{s}" for s in seeds) + " |",
             "|---|---|" + "---|" * len(seeds)]
    for name, e in sorted(claims.items(), key=lambda kv: (kv[1]["lesson"], kv[0])):
        cells = [short.get(e["values"].get(s), "—" if e["values"].get(s) is None else str(e["values"][s]))
                 for s in seeds]
        lines.append(f"| {name.removeprefix('claim_')} | {e['lesson']} | " + " | ".join(cells) + " |")
    return lines


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
    numbers = {n: e for n, e in table.items() if not n.startswith("claim_")}
    for name, e in sorted(numbers.items(), key=lambda kv: (kv[1]["lesson"], kv[0])):
        vals = [e["values"].get(s) for s in seeds]
        got = [v for v in vals if v is not None]
        anchor = ANCHORS.get(name)
        lines.append(f"| {name} | {e['lesson']} | " + " | ".join("—" if v is None else f"{v:.4f}" for v in vals)
                     + f" | {statistics.mean(got):.4f} | {max(got) - min(got):.4f} | "
                     + (f"{anchor[0]:.4g}" if anchor else "—") + f" | {e.get('measured', 'an earlier run')} |")
    lines += seed_claims(numbers) + claims_over_seeds(table, seeds)
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
