"""Speed-ups of the cpu profile, each measured before/after on the same machine in one run (issue: CPU anchors).

* ``trunk_images`` — top-3 fine-tuning of EfficientNet-Lite0 on hymenoptera at 224 px (lesson 03): ``fit`` on
  the images (every epoch runs the frozen groups forward again) vs ``tlcourse.trunk.cache_trunk`` once + ``fit``
  on the cached maps. Whole runs of ``EPOCHS`` epochs, cache included; and per epoch.
* ``trunk_text`` — the top 2 of MiniLM's 6 layers + head on rt-polarity sentences (lesson 06), one epoch: ``fit``
  on tokenised batches vs cache once + ``fit`` on the cached hidden states.
* ``lora_dropout`` — LoRA on all 6 MiniLM layers (lesson 06's cpu set-up), one epoch on cached states: adapter
  dropout 0.1 (a common recipe) vs 0 (what the lesson uses): on a CPU the random masks cost a share of every step.
* ``threads`` — one epoch of the cached top-3 with 1 torch thread vs all cores.
* ``channels_last`` — one epoch of ``fit`` on the whole Lite0 at 224 px, without and with its channels-last switch.
* ``inference_mode`` — a forward pass over the validation images under ``no_grad`` vs ``inference_mode``.
* ``bf16`` — training steps under bfloat16 autocast vs float32, where the CPU has bf16 instructions
  (``avx512_bf16`` / ``amx_bf16``); elsewhere reported as absent.

Writes ``SPEEDUPS.md`` and ``speedups.json`` (ratio = seconds before / seconds after; > 1 is faster). Usage::

    python -m benchmarks.speedups [--out benchmarks/] [--only trunk_images ...]
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent

from benchmarks.machine import machine as machine_info  # noqa: E402

EPOCHS = 2


def _seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@functools.lru_cache(maxsize=1)  # decoded once, shared by every measurement
def _hymenoptera(size: int = 224) -> tuple[Any, Any]:
    from torch.utils.data import TensorDataset

    from tlcourse.data import load_hymenoptera

    def tensors(split: str) -> TensorDataset:
        ds = load_hymenoptera(split, image_size=size)
        xs, ys = zip(*(ds[i] for i in range(len(ds))), strict=True)
        return TensorDataset(torch.stack(xs), torch.tensor(ys))

    return tensors("train"), tensors("val")


def _top3_model() -> Any:
    from tlcourse.freeze import freeze, unfreeze
    from tlcourse.models import build_classifier

    return unfreeze(freeze(build_classifier("efficientnet_lite0", 2)), last=3)


def trunk_images() -> dict[str, Any]:
    """Top-3 fine-tuning on images vs on cached maps (whole run with the cache, and per epoch)."""
    from tlcourse.train import fit
    from tlcourse.trunk import cache_trunk

    train, _ = _hymenoptera()
    before = fit(_top3_model(), train, epochs=EPOCHS, lr=1e-3, seed=0, progress=False)
    model = _top3_model()
    start = time.perf_counter()
    cached = cache_trunk(model, train, last=3, progress=False)
    after = fit(cached.top, cached.data, epochs=EPOCHS, lr=1e-3, seed=0, progress=False)
    total_after = time.perf_counter() - start
    total_before = sum(r["seconds"] for r in before.records)
    epoch_before = total_before / EPOCHS
    epoch_after = sum(r["seconds"] for r in after.records) / EPOCHS
    return {"what": f"top-3 Lite0, 244 images at 224 px, {EPOCHS} epochs (cache included)",
            "before_s": total_before, "after_s": total_after, "ratio": total_before / total_after,
            "per_epoch": {"before_s": epoch_before, "after_s": epoch_after, "ratio": epoch_before / epoch_after},
            "cache_s": cached.seconds}


def trunk_text(n: int = 2000) -> dict[str, Any]:
    """MiniLM top 2 layers + head: one epoch on tokenised batches vs cache once + one epoch on cached states."""
    from tlcourse.data import load_rt_polarity
    from tlcourse.freeze import freeze, unfreeze
    from tlcourse.text import load_sentence_classifier, text_loader
    from tlcourse.train import fit
    from tlcourse.trunk import cache_trunk

    tok, base = load_sentence_classifier("minilm", 2)
    unfreeze(freeze(base), last=3)
    data = load_rt_polarity("train", limit=n)
    loader = text_loader(data, tok, max_length=48, batch_size=32, shuffle=True, seed=0)
    before = _seconds(lambda: fit(copy.deepcopy(base), loader, epochs=1, lr=1e-4, seed=0, progress=False))
    model = copy.deepcopy(base)
    start = time.perf_counter()
    cached = cache_trunk(model, text_loader(data, tok, max_length=48, batch_size=64, shuffle=False), last=3,
                         store=torch.float16, progress=False)
    fit(cached.top, cached.loader(batch_size=32, shuffle=True), epochs=1, lr=1e-4, seed=0, progress=False)
    after = time.perf_counter() - start
    return {"what": f"MiniLM top 2 layers + head, {n} sentences, 1 epoch (cache included)", "before_s": before,
            "after_s": after, "ratio": before / after, "cache_s": cached.seconds}


def lora_dropout(n: int = 2000) -> dict[str, Any]:
    """LoRA (r=8, query/key/value/dense, all 6 layers) for one epoch on cached states: lora_dropout 0.1 vs 0."""
    from peft import LoraConfig, get_peft_model

    from tlcourse.data import load_rt_polarity
    from tlcourse.freeze import freeze, unfreeze
    from tlcourse.text import load_sentence_classifier, text_loader
    from tlcourse.train import fit
    from tlcourse.trunk import cache_trunk, top_of

    tok, base = load_sentence_classifier("minilm", 2)
    unfreeze(freeze(base), last=7)
    data = load_rt_polarity("train", limit=n)
    cached = cache_trunk(base, text_loader(data, tok, max_length=48, batch_size=64, shuffle=False), last=7,
                         store=torch.float16, progress=False)

    def epoch(dropout: float) -> float:
        config = LoraConfig(r=8, lora_alpha=16, target_modules=["query", "key", "value", "dense"],
                            lora_dropout=dropout, modules_to_save=["classifier"])
        top = top_of(get_peft_model(copy.deepcopy(base), config), 7)
        return _seconds(lambda: fit(top, cached.loader(batch_size=32, shuffle=True, seed=0), epochs=1, lr=2e-3,
                                    seed=0, progress=False))

    before, after = epoch(0.1), epoch(0.0)
    return {"what": f"LoRA on all 6 MiniLM layers, {n} cached sentences, 1 epoch: adapter dropout 0.1 vs 0",
            "before_s": before, "after_s": after, "ratio": before / after}


def threads() -> dict[str, Any]:
    """One epoch of the cached top-3: 1 thread (before) vs every core (after)."""
    from tlcourse.train import fit
    from tlcourse.trunk import cache_trunk

    train, _ = _hymenoptera()
    cached = cache_trunk(_top3_model(), train, last=3, progress=False)
    default = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = _seconds(lambda: fit(cached.top, cached.data, epochs=1, lr=1e-3, seed=0, progress=False))
    finally:
        torch.set_num_threads(default)
    many = _seconds(lambda: fit(cached.top, cached.data, epochs=1, lr=1e-3, seed=0, progress=False))
    return {"what": f"cached top-3 epoch, 1 vs {default} torch threads", "before_s": one, "after_s": many,
            "ratio": one / many}


def _steps(model: Any, x: torch.Tensor, y: torch.Tensor, n: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    start = time.perf_counter()
    for _ in range(n):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return time.perf_counter() - start


def channels_last(steps: int = 6) -> dict[str, Any]:
    """One epoch of ``fit`` on the whole Lite0 (``steps`` batches of 32 at 224 px): with the NHWC switch of
    ``tlcourse._plumbing.channels_last`` turned off (before) and as shipped (after)."""
    import contextlib

    from torch.utils.data import TensorDataset

    import tlcourse.train as train
    from tlcourse.models import build_classifier

    data = TensorDataset(torch.randn(32 * steps, 3, 224, 224), torch.randint(0, 2, (32 * steps,)))

    def one_epoch() -> float:
        model = build_classifier("efficientnet_lite0", 2)
        train.fit(model, TensorDataset(*data[:8]), epochs=1, batch_size=8, progress=False, device="cpu")  # warm-up
        return _seconds(lambda: train.fit(model, data, epochs=1, batch_size=32, progress=False, device="cpu"))

    shipped = train.channels_last
    train.channels_last = lambda *_: contextlib.nullcontext()  # before: fit without the switch
    try:
        before = one_epoch()
    finally:
        train.channels_last = shipped
    after = one_epoch()
    return {"what": f"fit, one epoch of Lite0: {steps} batches of 32 at 224 px (NCHW vs channels-last)",
            "before_s": before, "after_s": after, "ratio": before / after}


def inference_mode() -> dict[str, Any]:
    """A forward pass over the 153 validation images: ``no_grad`` vs ``inference_mode``."""
    from tlcourse.models import build_classifier

    _, val = _hymenoptera()
    model = build_classifier("efficientnet_lite0", 2).eval()
    x = val.tensors[0]

    def run(context: Callable[[], Any]) -> float:
        with context():
            model(x[:8])
            return _seconds(lambda: [model(x[i:i + 32]) for i in range(0, len(x), 32)])

    before = run(torch.no_grad)
    after = run(torch.inference_mode)
    return {"what": "forward pass over 153 images at 224 px", "before_s": before, "after_s": after,
            "ratio": before / after}


def bf16(steps: int = 6) -> dict[str, Any]:
    """Training steps of the whole channels-last Lite0 (batch 32, 224 px): float32 vs bfloat16 autocast on the CPU
    (not used by ``fit``: it would change the numbers with the machine) — measured
    only where the CPU has bf16 instructions (``avx512_bf16`` / ``amx_bf16`` in /proc/cpuinfo); elsewhere bf16
    is emulated and slower."""
    from tlcourse.models import build_classifier

    flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    has = [f for f in ("avx512_bf16", "amx_bf16") if f in flags.split()]
    if not has:
        return {"what": "bf16 instructions on this CPU", "present": has, "note": "absent: not measured, not used"}
    x, y = torch.randn(32, 3, 224, 224), torch.randint(0, 2, (32,))
    model = build_classifier("efficientnet_lite0", 2).to(memory_format=torch.channels_last)  # as fit runs it
    _steps(model, x[:4], y[:4], 1)
    before = _steps(model, x, y, steps)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _steps(model, x[:4], y[:4], 1)
        after = _steps(model, x, y, steps)
    return {"what": f"{steps} training steps of channels-last Lite0, batch 32 at 224 px, bf16 autocast "
                    f"({', '.join(has)})",
            "before_s": before, "after_s": after, "ratio": before / after}


MEASUREMENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "trunk_images": trunk_images,
    "trunk_text": trunk_text,
    "lora_dropout": lora_dropout,
    "threads": threads,
    "channels_last": channels_last,
    "inference_mode": inference_mode,
    "bf16": bf16,
}


def markdown(report: dict[str, Any]) -> str:
    """The report as a table."""
    m = report["machine"]
    lines = ["# CPU speed-ups, measured before/after in one run", "",
             f"Written by `benchmarks/speedups.py` (do not edit by hand). Machine: {m.get('cpu')}, "
             f"{m.get('cores')} cores, torch {m.get('torch')}; {report['time']}; load average at start "
             f"{m.get('load_average_at_start')}. Ratio = seconds before / seconds after (> 1: faster).", "",
             "| speed-up | what | before (s) | after (s) | ratio |", "|---|---|---:|---:|---:|"]
    for name, r in report["results"].items():
        if "ratio" in r:
            lines.append(f"| {name} | {r['what']} | {r['before_s']:.1f} | {r['after_s']:.1f} | {r['ratio']:.2f}× |")
            if "per_epoch" in r:
                e = r["per_epoch"]
                lines.append(f"| {name} (per epoch) | one epoch, cache excluded | {e['before_s']:.2f} | "
                             f"{e['after_s']:.2f} | {e['ratio']:.2f}× |")
        else:
            lines.append(f"| {name} | {r['what']}: {r.get('present') or 'none'} | — | — | {r['note']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--only", nargs="+", choices=sorted(MEASUREMENTS), default=list(MEASUREMENTS))
    args = parser.parse_args(argv)
    report = {"machine": machine_info(), "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "results": {}}
    for name in args.only:
        print(f"{name} …", end=" ", flush=True)
        report["results"][name] = MEASUREMENTS[name]()
        r = report["results"][name]
        print(f"{r['ratio']:.2f}×" if "ratio" in r else r["note"], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speedups.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "SPEEDUPS.md").write_text(markdown(report))
    print(f"wrote {args.out / 'SPEEDUPS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
