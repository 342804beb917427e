#!/usr/bin/env bash
# Every GPU check and benchmark in one go, sized to finish in under 10 minutes on an H100 (the steps' time
# limits add up to 840 s, but they are ceilings: expected total about 7-8 minutes).
#
#   bash bench/gpu_check.sh            # from the repository root, on a machine with a CUDA GPU
#
# Needs python3 with torch, timm, numpy, scipy and matplotlib (summaries and figures), pytest for the test
# steps, and ray for the Ray step (skipped without it); no Streamlit, no network.
# Writes under $OUT when set (else bench/out/gpu): gpu_check.log, results-gpu.md (the markdown
# sections, ready for `python -m bench.docs results-gpu.md`), gpu-raw.tar.gz (CSV files).
# Each step has its own time limit, so one slow step cannot eat the others' time; the exit status
# is non-zero when any step failed or timed out.
#   DRY_RUN=1     rehearses every step on the CPU with --quick settings (checks the script, not the GPU).
#   ADVANTAGES=1  also runs a reduced advantages study on the GPU (not part of the 10-minute budget).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEST=${OUT:-bench/out/gpu}
RAW=$(mktemp -d /tmp/gpu-check-raw.XXXXXX)
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
LOG=$DEST/gpu_check.log
DOC=$DEST/results-gpu.md
export PYTHONUNBUFFERED=1 LEARNGENE_CACHE=${LEARNGENE_CACHE:-/tmp/learngene-cache}
: >"$LOG"
[ -f "$DOC" ] && rm "$DOC"
failed=()
T0=$(date +%s)

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    local t=$(date +%s) first
    [ "${DRY_RUN:-0}" = "1" ] && limit=$(( limit * 4 ))  # a 2-core CPU is much slower than the GPU box
    echo "=== $name (limit ${limit}s): $*" | tee -a "$LOG"
    first=$(( $(wc -l <"$LOG") + 1 ))
    timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    tail -n "+$first" "$LOG" | grep -v "it/s]" | tail -n 20 || true
    echo "=== $name: exit $rc after $(( $(date +%s) - t )) s (total $(( $(date +%s) - T0 )) s)" | tee -a "$LOG"
    [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
}

{
    echo "date: $(date -Is)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
    $PY -c "import sys, torch, timm, numpy; print('python', sys.version.split()[0], 'torch', torch.__version__, 'timm', timm.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"
} 2>&1 | tee -a "$LOG"
BENCH=(--device cuda --out "$RAW" --write-docs --docs "$DOC")
if [ "${DRY_RUN:-0}" = "1" ]; then  # rehearse the script on a CPU machine with tiny settings
    BENCH=(--device cpu --quick --threads 1 --out "$RAW" --write-docs --docs "$DOC")
elif ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA GPU visible to $PY; nothing to check (DRY_RUN=1 rehearses on the CPU)" | tee -a "$LOG"
    exit 2
fi

# 0. generate the embedded data set once (cached under $LEARNGENE_CACHE for every later step)
step "data" 60 $PY -c "from learngene.data import load_dataset as l; l('shapes'); l('shapes', images_per_class=128)"
# 1. the library's tests of batched and descendant training and the benchmarks' smoke tests, under this box's
#    torch/timm (they run on the CPU: the CUDA paths are checked by the benchmarks below, which compare
#    batched with sequential training and the vectorised CKA with the naive one on the GPU)
step "tests" 80 $PY -m pytest -q -p no:cacheprovider -m "not browser" tests/test_batched.py tests/test_descend.py \
    tests/test_bench.py
# 2. training throughput: project Trainer vs plain bf16 loop, eager and torch.compile, ViT 192 x 12 on 32x32
step "throughput" 170 $PY -m bench.throughput "${BENCH[@]}"
# 3. sweep speed: 8 and 32 six-block ViTs on 100 images, batched vs one after another, results compared
SWEEP_MODELS=8,32
[ "${DRY_RUN:-0}" = "1" ] && SWEEP_MODELS=2
step "sweep_speed" 150 $PY -m bench.sweep_speed --models $SWEEP_MODELS "${BENCH[@]}"
# 4. similarity speed: 12-block x 6-block CKA matrix on 2,048 images, vectorised vs naive
step "cka_speed" 40 $PY -m bench.cka_speed "${BENCH[@]}"
# 5. peak memory of training workers on the GPU (no web server here: no Streamlit)
if [ -f assets/lg_vit_tiny.safetensors ]; then
    step "memory" 80 $PY -m bench.memory --workers-only "${BENCH[@]}"
else
    echo "=== memory: skipped, assets/lg_vit_tiny.safetensors is missing" | tee -a "$LOG"
fi
# 6. the GPU code paths on the real GPU: torch.compile, bf16 autocast, the once-per-epoch divergence check
step "gpu_paths" 60 $PY -m pytest -q -p no:cacheprovider tests/test_gpu_paths.py
# 7. the same small sweep locally and as Ray tasks sharing the GPU (the driver writes every result)
if $PY -c "import ray" 2>/dev/null; then
    step "ray" 100 $PY -m bench.ray_speed --workers 1,2 "${BENCH[@]}"
else
    echo "=== ray: skipped, ray is not installed (pip install -e .[cluster])" | tee -a "$LOG"
fi
# 8. the real-size path at 224 px (deit_tiny_patch16_224, resnet18): accumulate -> condense -> inherit -> train
step "real_size" 100 $PY -m bench.real_size "${BENCH[@]}"
if [ "${ADVANTAGES:-0}" = "1" ]; then
    step "advantages" 900 $PY -m bench.advantages --tasks 5 "${BENCH[@]}"
fi

tar -czf "$DEST/gpu-raw.tar.gz" -C "$RAW" . 2>>"$LOG" || true
rm -rf "$RAW"
echo "total $(( $(date +%s) - T0 )) s; outputs in $DEST" | tee -a "$LOG"
if [ ${#failed[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}" | tee -a "$LOG"
    exit 1
fi
echo "all GPU checks passed" | tee -a "$LOG"
