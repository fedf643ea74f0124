#!/usr/bin/env bash
# The GPU measurement of the training speed targets, in one script (< 5 minutes on one H100/H200).
#
# Targets it prints (met / NOT met):
#   1. a single run >= 3x PyTorch eager CUDA examples/s, Kim's CNN-rand on MR fold 0, batch 50
#      (benchmarks/text_cnn_train.py, PyTorch on the same GPU);
#   2. experiments/kim2014.py over the shared datasets, 3 seeds (MR 10 folds x 3 + SST-1, SST-2, TREC x 3: 39 runs),
#      in <= 60 s wall in all, compiles included, with --parallel_runs (one program per dataset);
#   3. the conv algorithms (benchmarks/conv_algorithms.py): on every case, `impl="auto"` no slower than "xla"
#      (forward + backward, within 10%);
#   and, without a target, what bfloat16 compute does to speed and accuracy (MR fold 0, 5 epochs).
#
# It runs from a copy of the working tree (the repository root is this script's parent's parent). The GPU image
# has jax (CUDA), flax, optax, orbax and PyTorch CUDA, but not every package jaxconv imports; those come from
# wheels in benchmarks/wheels/ (git-ignored; the GPU machine has no network). Prepare them once on a machine with
# PyPI (pure-Python wheels, any platform):
#
#     pip download ml_collections jaxtyping wadler_lindig --no-deps -d benchmarks/wheels
#
# and carry benchmarks/wheels with the tree. Missing modules without a wheel stop the script with one line naming
# them. The datasets are read from $JAXCONV_DATA, else ../shared/datasets/sentences beside the repository.
#
#     bash benchmarks/gpu_check.sh                   # everything, outputs under $OUT (or /tmp/gpu_check)
#     QUICK=1 JAX_PLATFORMS=cpu bash benchmarks/gpu_check.sh   # a tiny dry run of every step on CPU (minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
out="${OUT:-/tmp/gpu_check}"
mkdir -p "$out"
py="${PYTHON:-python3}"
quick="${QUICK:-0}"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # PyTorch and JAX share the GPU in the benchmark

# ---------------------------------------------------------------------------------------------------- dependencies
read -r -d '' check <<'PY' || true
import importlib.util, sys

def found(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # its parent package is missing
        return False

# module -> the wheel in benchmarks/wheels that provides it (None: it must be in the image)
need = {"jax": None, "flax": None, "optax": None, "orbax.checkpoint": None, "etils": None, "yaml": None, "rich": None,
        "ml_collections": "ml_collections", "jaxtyping": "jaxtyping", "wadler_lindig": "wadler_lindig"}
missing = [m for m in need if not found(m)]
print(" ".join(need[m] for m in missing if need[m]) if sys.argv[1] == "wheels" else
      " ".join(m for m in missing if not need[m]))
PY
absent=$("$py" -c "$check" image)
if [ -n "$absent" ]; then
  echo "gpu_check: error: $py lacks $absent, which the GPU image should have; run with PYTHON=<a python that has them>" >&2
  exit 2
fi
wheels=$("$py" -c "$check" wheels)
if [ -n "$wheels" ]; then
  echo "gpu_check: installing $wheels from benchmarks/wheels"
  "$py" -m pip install --quiet --no-index --no-deps --find-links benchmarks/wheels $wheels \
    || { echo "gpu_check: error: could not install $wheels from benchmarks/wheels (see this script's header)" >&2; exit 2; }
fi
"$py" -c "import jaxconv, jax; print('gpu_check: jaxconv', jaxconv.__version__, 'jax', jax.__version__, jax.devices())"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

if [ "$quick" = "1" ]; then   # a dry run of every step on CPU: tiny settings, generous time limits
  bench_args=(--quick --max-buckets 2 --k 2 --runs 2)
  kim_args=(--datasets trec --seeds 2 --epochs 1 --steps 6)
  bf16_epochs=1
  conv_args=(--quick --cases kim,long)
  limits=(600 600 600 600)
else                          # on the GPU: at most 120 + 120 + 50 s, the whole script under 5 minutes
  bench_args=(--steps 300 --rounds 3 --k 1,32 --runs 4,30)
  kim_args=()
  bf16_epochs=5
  conv_args=(--rounds 10)
  limits=(120 120 50 60)
fi

set +e                        # a failed step reports itself; the summary still prints
# ---------------------------------------------------------------------------------------------------- 1. single run
echo
echo "== 1. Kim CNN on MR: jaxconv vs PyTorch eager on the same device (benchmarks/text_cnn_train.py)"
timeout "${limits[0]}" "$py" benchmarks/text_cnn_train.py "${bench_args[@]}" 2>&1 | grep -v "^WARNING\|^W[0-9]" | tee "$out/bench.txt"

# ---------------------------------------------------------------------------------------------------- 2. kim2014
echo
echo "== 2. experiments/kim2014.py --parallel_runs 30 ${kim_args[*]:-(3 seeds, MR 10 folds, SST-1, SST-2, TREC: 39 runs)}:" \
  "one program per dataset, latest checkpoints at the end of each run"
rm -rf "$out/kim2014"
start=$(date +%s.%N)
timeout "${limits[1]}" "$py" experiments/kim2014.py --workdir "$out/kim2014" --parallel_runs 30 --noprogress \
  --config.train.checkpoint_every_epochs=0 "${kim_args[@]}" > "$out/kim2014.txt" 2> "$out/kim2014.log" \
  || echo "gpu_check: kim2014.py failed or timed out (exit $?); see $out/kim2014.log"
wall=$("$py" -c "import time; print(f'{time.time() - $start:.1f}')")
cat "$out/kim2014.txt"
grep -E "compiles|error" "$out/kim2014.log" | tail -8 || true

# ---------------------------------------------------------------------------------------------------- 3. bfloat16
echo
echo "== 3. bfloat16 compute vs float32: MR fold 0, seed 0, $bf16_epochs epochs (no target)"
timeout "${limits[2]}" "$py" - "$out" "$bf16_epochs" <<'PY' | tee "$out/bf16.txt" || echo "gpu_check: bf16 run failed or timed out"
import json, sys, time
from jaxconv.configs import load_config
from jaxconv.train import train_and_evaluate
out, epochs = sys.argv[1], int(sys.argv[2])
for dtype in ("float32", "bfloat16"):
    config = load_config("text_cnn:mr", {"model.compute_dtype": dtype, "train.epochs": epochs, "progress": False,
                                        "train.checkpoint_every_epochs": 0, "tensorboard": False})
    r = train_and_evaluate(config, f"{out}/bf16_{dtype}")
    steps = r["step"]
    print(f"{dtype:>9}: test accuracy {r['test_accuracy']:.4f}, dev {r['dev_accuracy']:.4f}, training "
          f"{r['train_time_s']:.1f} s for {steps} steps ({steps * 50 / max(r['train_time_s'], 1e-9):,.0f} examples/s), "
          f"wall {r['wall_time_s']:.1f} s")
PY

# ---------------------------------------------------------------------------------------------------- 4. conv algorithms
echo
echo "== 4. conv algorithms: xla, im2col, fft, auto, Kim's fused widths, PyTorch (benchmarks/conv_algorithms.py)"
timeout "${limits[3]}" "$py" benchmarks/conv_algorithms.py "${conv_args[@]}" --json "$out/conv.json" 2>&1 \
  | grep -v "^WARNING\|^W[0-9]" | tee "$out/conv.txt" || echo "gpu_check: conv_algorithms.py failed or timed out"

# ---------------------------------------------------------------------------------------------------- summary
echo
echo "== targets"
"$py" - "$out" "$wall" "$quick" <<'PY'
import pathlib, re, sys
out, wall, quick = pathlib.Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
bench = (out / "bench.txt").read_text() if (out / "bench.txt").exists() else ""
m = re.search(r"^jaxconv / PyTorch eager: ([\d.]+)x", bench, re.M)
device = re.search(r"torch \S+ on (\w+)", bench)
if m:
    ratio = float(m.group(1))
    print(f"single run / PyTorch eager on {device.group(1) if device else '?'}: {ratio:.2f}x "
          f"(target >= 3x: {'met' if ratio >= 3 else 'NOT met'})")
else:
    print("single run / PyTorch eager: not measured (the benchmark failed; see bench.txt)")
done = len(list((out / "kim2014").rglob("final_metrics.json")))
print(f"kim2014.py, {done} runs finished: {wall:.1f} s wall (target <= 60 s for 39 runs: "
      f"{'met' if wall <= 60 and done == 39 else 'NOT met'}{', quick dry run' if quick else ''})")
if (out / "conv.json").exists():
    import json
    for name, case in json.loads((out / "conv.json").read_text())["cases"].items():
        rows = case["rows"]
        xla = rows.get("xla", rows.get("separate xla"))["fwd+bwd"]["ms"]
        auto = rows["auto"]["fwd+bwd"]["ms"]
        print(f"conv algorithms, {name}: auto -> {case['auto_choice']} {auto:.2f} ms, xla {xla:.2f} ms fwd+bwd "
              f"(target: auto no slower than xla, within 10%: {'met' if auto <= 1.1 * xla else 'NOT met'})")
else:
    print("conv algorithms: not measured (the benchmark failed; see conv.txt)")
PY
