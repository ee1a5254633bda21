#!/usr/bin/env bash
# The generator's GPU check in one command, for a machine with one CUDA GPU (within ~7 minutes):
#
#     bash bench/gpu_check.sh
#
# Needs only python3 with torch (CUDA), numpy, scipy, opencv-python-headless, scikit-image, pytest, click,
# rich, matplotlib: no pip install, no internet (PyAV, dlib, espeak-ng, flask and sqlalchemy may be absent:
# only tests that do not need them run). Steps, each under its own `timeout`, each run even when an earlier
# one failed or timed out, and none started when the time left is too short:
#
#   1. nvidia-smi and the versions of python, torch, CUDA, cuDNN and the libraries;
#   2. tests/generator/test_gpu.py (the CUDA paths: generation equals the CPU's, a bf16 training step);
#   3. bench/bench_generator.py --device cuda: inference frames/s at batch 1 and 8 on 10 s of speech,
#      fp32 and bf16 autocast, peak GPU memory;
#   4. bench/bench_train.py --device cuda, bf16 autocast on, then off: training steps/s and clips/s of the
#      paper config per stage (TrainConfig defaults: batch 4, 32-frame windows) on a synthetic corpus;
#   5. the other generator tests that need neither PyAV nor dlib nor espeak-ng (CPU tests, "not slow");
#   6. a digest of the numbers (also printed at the end of stdout).
#
# Output in $OUT (./gpu-out when OUT is unset): gpu_check.log (everything), summary.tsv (step, status,
# exit code, seconds), generator_cuda.json, train_cuda_bf16.json, train_cuda_fp32.json.
# Knobs (for a dry run elsewhere): PYTHON (python3), GPU_CHECK_DEVICE (cuda), GPU_CHECK_BUDGET_S (400:
# the whole script), GPU_CHECK_QUICK=1 (smoke sizes: passes --quick to the benchmarks).

set -u  # no -e: a failing step is recorded and the next one runs

cd "$(dirname "$0")/.." || exit 2
REPO=$(pwd)
OUT_DIR=${OUT:-$REPO/gpu-out}
mkdir -p "$OUT_DIR" || exit 2
LOG=$OUT_DIR/gpu_check.log
SUMMARY=$OUT_DIR/summary.tsv
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
BUDGET=${GPU_CHECK_BUDGET_S:-400}
RESERVE=25  # seconds kept for the digest at the end
QUICK=
[ "${GPU_CHECK_QUICK:-0}" = 1 ] && QUICK=--quick

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export GLOO_SOCKET_IFNAME=${GLOO_SOCKET_IFNAME:-lo}  # the CPU DDP test of test_train.py: loopback only

: > "$LOG"
printf 'step\tstatus\texit_code\tseconds\tlimit_s\n' > "$SUMMARY"

say() { echo "$*" | tee -a "$LOG"; }

# step NAME MAX_SECONDS COMMAND...: run COMMAND under timeout (MAX_SECONDS, or less when the budget is short),
# output appended to the log; the last lines are echoed to stdout; the outcome goes to summary.tsv.
step() {
    local name=$1 max=$2 reserve=$RESERVE
    shift 2
    [ "$name" = digest ] && reserve=0
    local left=$((BUDGET - SECONDS - reserve))
    local limit=$((max < left ? max : left))
    if [ "$limit" -lt 15 ]; then
        say "=== $name: SKIPPED (${left}s left of the ${BUDGET}s budget)"
        printf '%s\tskipped\t-\t0\t%s\n' "$name" "$limit" >> "$SUMMARY"
        return
    fi
    say ""
    say "=== $name: limit ${limit}s, started $(date -u +%H:%M:%S) UTC, ${SECONDS}s into the script"
    local cmd="$*"
    say "\$ ${cmd:0:300}$([ ${#cmd} -gt 300 ] && echo ' ...')"
    local off t0 rc status
    off=$(stat -c %s "$LOG")
    t0=$SECONDS
    timeout -k 10 "$limit" "$@" >> "$LOG" 2>&1 < /dev/null
    rc=$?
    case $rc in
        0) status=ok ;;
        124 | 137) status=TIMEOUT ;;
        *) status=FAILED ;;
    esac
    tail -c +$((off + 1)) "$LOG" | tail -n 25
    say "=== $name: $status (exit code $rc) after $((SECONDS - t0))s"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$((SECONDS - t0))" "$limit" >> "$SUMMARY"
}

read -r -d '' VERSIONS_PY <<'EOF'
import importlib, importlib.util, platform, sys
print("python", sys.version.replace("\n", " "), platform.platform())
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cuda available", torch.cuda.is_available(),
      "threads", torch.get_num_threads())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("gpu", p.name, f"sm_{p.major}{p.minor}", round(p.total_memory / 2**30, 1), "GiB", "bf16",
          torch.cuda.is_bf16_supported(), "cudnn", torch.backends.cudnn.version())
    try:
        print("tf32 conv", torch.backends.cudnn.allow_tf32, "tf32 matmul", torch.backends.cuda.matmul.allow_tf32)
    except Exception as exc:
        print("tf32 flags unknown:", exc)
    print("cuda op ok:", torch.ones(4, device="cuda").sum().item() == 4)
for m in ("numpy", "scipy", "cv2", "skimage", "PIL", "pytest", "hypothesis", "click", "rich", "matplotlib", "pandas"):
    try:
        print(f"{m:12s}", getattr(importlib.import_module(m), "__version__", "?"))
    except Exception as exc:
        print(f"{m:12s} MISSING ({exc!r})")
print("absent (expected here):", [m for m in ("av", "dlib", "face_recognition_models", "espeakng_loader", "flask",
                                              "sqlalchemy") if importlib.util.find_spec(m) is None])
for m in ("generator.model", "generator.neural", "generator.losses", "generator.train", "generator.synthetic",
          "bench.bench_generator", "bench.bench_train"):
    importlib.import_module(m)
print("repo modules import: ok")
EOF

read -r -d '' DIGEST_PY <<'EOF'
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name)) as fh:
            return json.load(fh)
    except Exception as exc:
        print(f"{name}: not available ({exc.__class__.__name__})")
g = load("generator_cuda.json")
if g:
    print("device:", g.get("device"))
    print(f"{'inference method':34s} {'batch':>5s} {'budget':>6s} {'frames':>6s} {'fps':>9s} {'peak MB':>8s}")
    for r in g["rows"]:
        print(f"{r['method'][:34]:34s} {r['batch']:5d} {str(r.get('frame_budget', 64)):>6s} {r['frames']:6d} "
              f"{r['fps']:9.1f} {str(r.get('peak_gpu_mb', '-')):>8s}" + (f"  PSNR {r['psnr_vs_fp32_db']} dB"
                                                                        if 'psnr_vs_fp32_db' in r else ""))
    print("identity:", g.get("identity"))
    print("peak memory:", g.get("peak_memory"))
for name in ("train_cuda_bf16.json", "train_cuda_fp32.json"):
    t = load(name)
    if not t:
        continue
    print(f"{name}: {t.get('setup', {}).get('perceptual', '')[:60]}")
    for s in t["stages"]:
        if "error" in s:
            print(f"  {s['stage']:9s} ERROR {s['error'][:200]}")
            continue
        print(f"  {s['stage']:9s} bf16={str(s['bf16_autocast']):5s} batch {s['batch_size']} x {s['window']} frames: "
              f"{s['s_per_step']:.4f} s/step (median {s['s_per_step_median']:.4f}), {s['steps_per_s']:.2f} steps/s, "
              f"{s['clips_per_s']:.1f} clips/s, data {s['data_s_per_step']:.4f} s/step (rest "
              f"{s['rest_s_per_step_est']:.4f}), peak {s['peak_gpu_mb']} MB")
EOF

say "gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S') UTC, repo $REPO ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no git')), out $OUT_DIR, device $DEVICE, budget ${BUDGET}s"

step nvidia-smi 20 bash -c 'nvidia-smi; nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,utilization.gpu,clocks.sm,clocks.max.sm,power.limit --format=csv'
step versions 60 "$PY" -c "$VERSIONS_PY"
# On the GPU machine a skip ("needs a CUDA GPU": torch sees no device) counts as a failure.
export PY DEVICE
step test_gpu 90 bash -c '
    t=$(mktemp)
    "$PY" -m pytest -p no:cacheprovider -p no:xdist -q -rfEs tests/generator/test_gpu.py 2>&1 | tee "$t"
    rc=${PIPESTATUS[0]}
    if [ "$rc" = 0 ] && [ "$DEVICE" != cpu ] && grep -q "needs a CUDA GPU" "$t"; then
        echo "test_gpu: the CUDA tests were SKIPPED (torch sees no CUDA device): counted as a failure"
        rc=3
    fi
    rm -f "$t"
    exit "$rc"'
step bench_generator 150 "$PY" bench/bench_generator.py --device "$DEVICE" --threads 4 $QUICK \
    --json "$OUT_DIR/generator_cuda.json"
step bench_train_bf16 100 "$PY" bench/bench_train.py --device "$DEVICE" --amp --warmup 3 --steps 20 $QUICK \
    --json "$OUT_DIR/train_cuda_bf16.json"
step bench_train_fp32 100 "$PY" bench/bench_train.py --device "$DEVICE" --no-amp --warmup 3 --steps 20 $QUICK \
    --json "$OUT_DIR/train_cuda_fp32.json"
# Test modules that import neither PyAV, dlib nor espeak-ng at collection or run time (checked with those
# imports made to fail); test_classifier's one video-file test (PyAV) is deselected.
step tests_generator_cpu 120 "$PY" -m pytest -p no:cacheprovider -p no:xdist -q -rfEs -m "not slow" \
    tests/generator/test_model.py tests/generator/test_neural.py tests/generator/test_losses.py \
    tests/generator/test_train.py tests/generator/test_train_cli.py tests/generator/test_synthetic.py \
    tests/generator/test_augment.py tests/generator/test_classifier.py tests/generator/test_renderers.py \
    tests/generator/test_warp_expression.py tests/generator/test_warp_mesh.py \
    --deselect tests/generator/test_classifier.py::test_generated_videos_from_files_and_report
step digest 20 "$PY" -c "$DIGEST_PY" "$OUT_DIR"

say ""
say "=== summary (${SECONDS}s in all; files in $OUT_DIR)"
tee -a "$LOG" < "$SUMMARY"
if grep -qE $'\t(FAILED|TIMEOUT|skipped)\t' "$SUMMARY"; then
    exit 1
fi
exit 0
