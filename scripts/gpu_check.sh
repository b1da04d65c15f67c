#!/usr/bin/env bash
# GPU check of the drafting side: the gpu-marked tests (tests/test_gpu.py: bf16 LoRA training
# on CUDA lowers the loss; CUDA float32 greedy tokens equal CPU float32; bf16 drafting with
# the adapter) and the hf part of the drafting benchmark on CUDA and, for comparison, on the
# same machine's CPU. Everything uses the tiny Qwen2-VL built from configs (no downloads).
#
#   bash scripts/gpu_check.sh            # writes to $OUT (default runs/gpu_check)
#
# Needs python3 with torch (CUDA), transformers, peft, pillow, pytest, tqdm, httpx; no vLLM.
# reportgen is installed editable without dependencies (offline), else used from the tree.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_check}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
log="$OUT/gpu_check.log"
: >"$log"
step() { echo "== $* ($(date +%T))" | tee -a "$log"; }

step environment
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" -c 'import sys, torch, transformers, peft; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__, "peft", peft.__version__, "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)'
} 2>&1 | tee -a "$log"

step install reportgen
"$PY" -m pip install -q --no-deps --no-build-isolation -e . >>"$log" 2>&1 || {
  echo "editable install failed; using PYTHONPATH" | tee -a "$log"; export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"; }

status=0
step "gpu tests"
"$PY" -m pytest -m gpu tests/test_gpu.py -q -s -rA -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml" 2>&1 \
  | grep -v -E "Loading weights|Writing model shards" | tee -a "$log" || status=1

step "drafting benchmark, hf on cuda (float32) and bfloat16"
"$PY" -m evals.bench.draft_bench --backends hf --device cuda --n 64 --batch-size 16 --max-new-tokens 64 \
  --out "$OUT/draft_bench_cuda_fp32.json" 2>&1 | grep -v -E "Loading weights|Writing model shards|it/s\]" | tee -a "$log" || status=1
"$PY" -m evals.bench.draft_bench --backends hf --device cuda --dtype bfloat16 --n 64 --batch-size 16 --max-new-tokens 64 \
  --out "$OUT/draft_bench_cuda_bf16.json" 2>&1 | grep -v -E "Loading weights|Writing model shards|it/s\]" | tee -a "$log" || status=1
step "drafting benchmark, hf on this machine's CPU (baseline)"
"$PY" -m evals.bench.draft_bench --backends hf --device cpu --n 64 --batch-size 16 --max-new-tokens 64 \
  --out "$OUT/draft_bench_cpu.json" 2>&1 | grep -v -E "Loading weights|Writing model shards|it/s\]" | tee -a "$log" || status=1

step "done (status $status)"
exit $status
