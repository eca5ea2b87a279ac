"""Toolkit benchmark: how fast and how well the tlcourse verbs transfer EfficientNet-Lite0 to ants vs bees.

Two measurements on hymenoptera (244 train / 153 val images), on this machine:

* ``frozen``   — ``tlcourse.features.extract_features`` (penultimate, 1280-d) at 224 px with an EMPTY feature
  cache, then ``tlcourse.features.linear_probe``; seconds = extraction + probe (model loading reported apart).
* ``finetune`` — ``tlcourse.train.fine_tune`` (freeze → head → unfreeze with discriminative rates) at a small
  image size chosen to fit a few minutes on a 2-core CPU; seconds = the whole ``fine_tune`` call. Defaults
  (192 px, batch 16, lr 1e-3, 2 frozen + 2 unfrozen epochs, BatchNorm frozen) were chosen from a small sweep
  on hymenoptera: with BatchNorm in training mode (``--bn train``) batches of 16 make the training loss jump
  when the body is unfrozen and validation accuracy fell to 0.82–0.88; rates above 2e-3 hurt the body.

Beside them: the PyTorch tutorial anchors (ResNet-18; Chilamkurthy, "Transfer Learning for Computer Vision
Tutorial", https://pytorch.org/tutorials/beginner/transfer_learning_tutorial.html).

Writes ``<out>/toolkit.json`` (merged: ``--only`` keeps the other measurement's last result) and
``<out>/TOOLKIT.md``. The data come from the registry (``TLCOURSE_DATA_HOME`` / ``TLCOURSE_DATA_MIRROR`` /
download). Usage::

    python -m benchmarks.toolkit [--profile cpu] [--out benchmarks/] [--only frozen|finetune]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.anchors import TUTORIAL as ANCHORS
from benchmarks.machine import machine as machine_info

__all__ = ["MEASUREMENTS", "ANCHORS", "machine_info", "measure_frozen", "measure_finetune", "write_report", "main"]

TUTORIAL = "https://pytorch.org/tutorials/beginner/transfer_learning_tutorial.html"

def measure_frozen(args: argparse.Namespace) -> dict[str, Any]:
    """Frozen Lite0 features (empty cache) + a logistic-regression probe.

    Example:
        >>> measure_frozen(parse_args(["--only", "frozen"]))["val_accuracy"] > 0.9  # doctest: +SKIP
        True
    """
    from tlcourse.config import environ
    from tlcourse.data import load_hymenoptera
    from tlcourse.device import get_device, seed_everything
    from tlcourse.features import extract_features, linear_probe, time_it
    from tlcourse.models import load_backbone

    seed_everything(0)
    device = get_device()
    size = args.frozen_size
    train = load_hymenoptera("train", image_size=size)
    val = load_hymenoptera("val", image_size=size)
    with time_it() as load_t:
        model = load_backbone("efficientnet_lite0")
    with tempfile.TemporaryDirectory(prefix="tlcourse-bench-cache-") as tmp, environ(TLCOURSE_CACHE_DIR=tmp):
        cpu0 = time.process_time()
        with time_it() as total:
            with time_it() as extract_t:
                X_train, y_train = extract_features(model, train, batch_size=args.batch_size, device=device)
                X_val, y_val = extract_features(model, val, batch_size=args.batch_size, device=device)
            probe = linear_probe(X_train, y_train, X_val, y_val, C=args.probe_c)
        cpu = time.process_time() - cpu0
        with time_it() as cached_t:  # the second time round: the features come from the cache
            extract_features(model, train, batch_size=args.batch_size, device=device, progress=False)
            extract_features(model, val, batch_size=args.batch_size, device=device, progress=False)
    return {
        "what": f"efficientnet_lite0 penultimate features ({X_train.shape[1]}-d) at {size} px + linear_probe",
        "val_accuracy": round(probe.test_accuracy, 4),
        "balanced_accuracy": round(probe.balanced_accuracy, 4),
        "train_accuracy": round(probe.train_accuracy, 4),
        "seconds": round(total.seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "extract_seconds": round(extract_t.seconds, 1),
        "probe_seconds": round(probe.seconds, 2),
        "cached_extract_seconds": round(cached_t.seconds, 2),
        "model_load_seconds": round(load_t.seconds, 1),
        "settings": {"image_size": size, "batch_size": args.batch_size, "C": probe.C, "device": str(device)},
        "n_train": len(train),
        "n_val": len(val),
    }


def _bn_train(model: Any) -> Any:
    return model


def _bn_frozen(model: Any) -> Any:
    from timm.layers import freeze_batch_norm_2d

    return freeze_batch_norm_2d(model)  # BatchNorm → FrozenBatchNorm (running statistics, no parameters)


# What BatchNorm does while the body trains: "train" (batch statistics, running stats updated — fine_tune as is)
# or "frozen" (ImageNet statistics kept; the usual fix for small batches, cf. lesson 03's BatchNorm pitfall).
BN_MODES: dict[str, Callable[[Any], Any]] = {"train": _bn_train, "frozen": _bn_frozen}


def measure_finetune(args: argparse.Namespace) -> dict[str, Any]:
    """``tlcourse.train.fine_tune`` on hymenoptera at a small image size.

    Example:
        >>> measure_finetune(parse_args(["--only", "finetune"]))["val_accuracy"] > 0.9  # doctest: +SKIP
        True
    """
    try:
        from tlcourse.train import fine_tune
    except ImportError as exc:  # train.py is written by someone else: say so plainly
        raise SystemExit(f"finetune: tlcourse.train.fine_tune is not available ({exc}); run --only frozen") from exc

    from tlcourse.data import load_hymenoptera
    from tlcourse.device import get_device, seed_everything
    from tlcourse.features import time_it
    from tlcourse.models import build_classifier

    seed_everything(0)
    device = get_device()
    size = args.finetune_size
    train = load_hymenoptera("train", image_size=size, train_aug=True)
    val = load_hymenoptera("val", image_size=size)
    model = BN_MODES[args.bn](build_classifier("efficientnet_lite0", num_classes=2))
    cpu0 = time.process_time()
    with time_it() as total:
        history = fine_tune(
            model,
            train,
            val,
            freeze_epochs=args.freeze_epochs,
            epochs=args.epochs,
            lr=args.lr,
            lr_mult=args.lr_mult,
            batch_size=args.batch_size,
            device=device,
            seed=0,
        )
    cpu = time.process_time() - cpu0
    frame = history.to_frame()
    return {
        "what": (
            f"efficientnet_lite0 fine_tune at {size} px: {args.freeze_epochs} frozen + {args.epochs} unfrozen "
            f"epochs, batch {args.batch_size}, lr {args.lr:g}, BatchNorm {args.bn}"
        ),
        "val_accuracy": round(float(frame["val_accuracy"].iloc[-1]), 4),
        "best_val_accuracy": round(float(frame["val_accuracy"].max()), 4),
        "seconds": round(total.seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "epochs": frame[["epoch", "phase", "train_loss", "val_loss", "val_accuracy", "seconds"]].round(4).to_dict(
            "records"
        ),
        "settings": {
            "image_size": size,
            "batch_size": args.batch_size,
            "freeze_epochs": args.freeze_epochs,
            "epochs": args.epochs,
            "lr": args.lr,
            "lr_mult": args.lr_mult,
            "batchnorm": args.bn,
            "device": str(device),
        },
        "n_train": len(train),
        "n_val": len(val),
    }


MEASUREMENTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "frozen": measure_frozen,
    "finetune": measure_finetune,
}

_LABELS = {"frozen": "frozen Lite0 + linear probe", "finetune": "Lite0 fine_tune"}


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``toolkit.json`` and ``TOOLKIT.md`` into ``out``; returns both paths.

    Example:
        >>> import tempfile
        >>> paths = write_report({"machine": machine_info(), "results": {}}, Path(tempfile.mkdtemp()))
        >>> [p.name for p in paths]
        ['toolkit.json', 'TOOLKIT.md']
    """
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "toolkit.json"
    json_path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    m = report["machine"]
    lines = [
        "# Toolkit benchmark: EfficientNet-Lite0 on hymenoptera (ants vs bees)",
        "",
        "Written by `benchmarks/toolkit.py`; do not edit by hand. Validation set: 153 images.",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), {m['device']}",
        f"- software: torch {m['torch']}, Python {m['python']}; profile `{report.get('profile', '?')}`",
        f"- date: {m['date']}; load average at start {m['load_average_at_start']} "
        "(other jobs on the same cores inflate the seconds)",
        "",
        "Seconds are wall-clock; CPU-s is the process's CPU time summed over its threads (on an idle machine the",
        "wall-clock time is about CPU-s / threads; on a busy one, OpenMP spin-waiting inflates CPU-s as well).",
        "",
        "| measurement | ours: val accuracy | seconds | anchor (PyTorch tutorial, ResNet-18) |",
        "|---|---|---|---|",
    ]
    for name, result in report["results"].items():
        anchor = ANCHORS[name]
        acc = f"{result['val_accuracy']:.4f}"
        if "best_val_accuracy" in result:
            acc += f" (best epoch {result['best_val_accuracy']:.4f})"
        secs = f"{result['seconds']} ({result.get('cpu_seconds', '?')} CPU-s)"
        if "extract_seconds" in result:
            secs += (
                f" (extraction {result['extract_seconds']}, probe {result['probe_seconds']}; "
                f"from the cache: {result['cached_extract_seconds']})"
            )
        lines.append(
            f"| {_LABELS[name]}: {result['what']} | {acc} | {secs} "
            f"| {anchor['val_accuracy']:.4f} — {anchor['model']}; {anchor['time']} |"
        )
    lines += [
        "",
        "Fine-tuning settings come from a small sweep (see the docstring of `benchmarks/toolkit.py`): with",
        "BatchNorm left in training mode, batches of 16 make the loss jump when the body is unfrozen.",
        "On 153 validation images one image is 0.0065 of accuracy: differences of 1–2 images are noise.",
        "",
        f"Anchors: S. Chilamkurthy, *Transfer Learning for Computer Vision Tutorial*, PyTorch tutorials, {TUTORIAL}.",
        "",
    ]
    md_path = out / "TOOLKIT.md"
    md_path.write_text("\n".join(lines), encoding="utf-8")
    return json_path, md_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see ``--help``).

    Example:
        >>> parse_args(["--only", "frozen"]).only
        'frozen'
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default=None, help="tlcourse profile (grading | cpu | gpu); default: automatic")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="folder for the results")
    p.add_argument("--only", choices=sorted(MEASUREMENTS), default=None, help="run one measurement")
    p.add_argument("--batch-size", type=int, default=16, help="16: twice the steps of 32 on 244 images")
    p.add_argument("--frozen-size", type=int, default=224, help="image size of the frozen measurement")
    p.add_argument("--probe-c", type=float, default=1.0, help="C of the logistic-regression probe")
    p.add_argument("--finetune-size", type=int, default=192, help="image size of the fine-tuning measurement")
    p.add_argument("--freeze-epochs", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2, help="unfrozen epochs of fine_tune")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-mult", type=float, default=100)
    p.add_argument("--bn", choices=sorted(BN_MODES), default="frozen", help="BatchNorm while fine-tuning")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen measurements, print them, and write the JSON and Markdown reports.

    Example:
        >>> main(["--only", "frozen"])  # doctest: +SKIP
        0
    """
    args = parse_args(argv)
    if args.profile:
        os.environ["TLCOURSE_PROFILE"] = args.profile
    from tlcourse.config import profile_name

    json_path = args.out / "toolkit.json"
    previous = json.loads(json_path.read_text(encoding="utf-8")) if json_path.is_file() else {}
    results = dict(previous.get("results", {})) if args.only else {}
    machine = machine_info()
    for name in [args.only] if args.only else list(MEASUREMENTS):
        print(f"[toolkit] {name} …", file=sys.stderr, flush=True)
        result = MEASUREMENTS[name](args)
        result["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        results[name] = result
        print(f"[toolkit] {name}: val accuracy {result['val_accuracy']:.4f} in {result['seconds']} s", flush=True)
        ordered = {k: results[k] for k in MEASUREMENTS if k in results}
        report = {"machine": machine, "profile": profile_name(), "anchors": ANCHORS, "results": ordered}
        for path in write_report(report, args.out):  # after each measurement: a crash keeps what was measured
            print(f"[toolkit] wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
