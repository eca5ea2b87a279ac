"""Did a change keep the lessons' behaviour? Compare the numbers two runs of ``benchmarks.run`` recorded.

Usage:
    python -m benchmarks.compare BEFORE/RESULTS.json AFTER/RESULTS.json [--profile cpu] [--out benchmarks/REFACTOR.md]

A refactoring must leave every recorded number identical to the bit on the same machine with the same thread
count (run both with ``OMP_NUM_THREADS=1 TLCOURSE_THREADS=1``, each pinned to a core: more threads reorder float
sums). Numbers whose name says they are a time (``…seconds…``) are listed apart: they measure the machine, not the
lesson. Exit 1 when any other number differs or is missing from one run.

Example:
    >>> table = compare({"records": [{"notebook": "n", "name": "acc", "value": 0.5}]},
    ...                 {"records": [{"notebook": "n", "name": "acc", "value": 0.5}]})
    >>> table["n"]["identical"], table["n"]["different"]
    (1, [])
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["compare", "is_timing", "main", "markdown"]


def is_timing(name: str) -> bool:
    """A number that measures the machine (a wall time), not the lesson."""
    return "seconds" in name


def _values(run: dict[str, Any]) -> dict[tuple[str, str], list[Any]]:
    out: dict[tuple[str, str], list[Any]] = {}
    for rec in run.get("records", []):
        out.setdefault((rec["notebook"], rec["name"]), []).append(rec["value"])
    return out


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per notebook: how many numbers are identical, which differ (name, before, after), which are timings, which
    are missing from one run."""
    old, new = _values(before), _values(after)
    table: dict[str, dict[str, Any]] = {}
    for key in sorted(set(old) | set(new)):
        row = table.setdefault(key[0], {"identical": 0, "different": [], "timings": [], "missing": []})
        if key not in old or key not in new:
            row["missing"].append(key[1])
        elif json.dumps(old[key]) == json.dumps(new[key]):
            row["identical"] += 1
        else:
            row["timings" if is_timing(key[1]) else "different"].append((key[1], old[key], new[key]))
    return table


def markdown(table: dict[str, dict[str, Any]], before: dict[str, Any], after: dict[str, Any]) -> str:
    lines = ["| notebook | identical | different | missing | timings (before → after) |", "|---|---|---|---|---|"]
    for notebook, row in table.items():
        timings = "; ".join(f"{n} {b[0]:.1f} → {a[0]:.1f}" for n, b, a in row["timings"]) or "—"
        different = "; ".join(f"{n}: {b} → {a}" for n, b, a in row["different"]) or "0"
        lines.append(f"| {notebook} | {row['identical']} | {different} | {', '.join(row['missing']) or '0'} | "
                     f"{timings} |")
    seconds = [(k, before["notebooks"][k].get("seconds"), v.get("seconds"))
               for k, v in after.get("notebooks", {}).items() if k in before.get("notebooks", {})]
    lines += ["", "Notebook wall times (s, before → after): "
              + "; ".join(f"{k} {b:.0f} → {a:.0f}" for k, b, a in seconds if b and a)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    before, after = (json.loads(p.read_text())["runs"][args.profile] for p in (args.before, args.after))
    table = compare(before, after)
    text = markdown(table, before, after)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return int(any(row["different"] or row["missing"] for row in table.values()))


if __name__ == "__main__":
    raise SystemExit(main())
