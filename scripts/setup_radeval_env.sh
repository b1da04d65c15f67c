#!/usr/bin/env bash
# Create or update .venv-radeval: RadEval's own environment (`reportgen eval --with-radeval
# --radeval-python .venv-radeval/bin/python`, or REPORTGEN_RADEVAL_PYTHON).
#
#   bash scripts/setup_radeval_env.sh
#
# radeval 2.2.1 pins numpy 1.26 and spaCy 3.7 (and pulls stanza, medspacy), which would
# break reportgen's environment, so it gets one of its own and runs as a separate process
# (evals/metrics/radeval_runner.py, JSON lines over pipes). torch stays on the CPU build
# through .ci/constraints.txt. RadEval's model metrics download their weights on first use;
# offline only bleu and rouge run (`--radeval-metrics bleu,rouge`).
#
# Idempotent (a stamp file); from scratch ~4 minutes on a 2-core machine. Environment:
# PYTHON (interpreter that creates the venv, default python3), REPORTGEN_RADEVAL_ENV
# (default .venv-radeval), REPORTGEN_RADEVAL_PACKAGE (default radeval==2.2.1).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
env_dir="${REPORTGEN_RADEVAL_ENV:-.venv-radeval}"
pkg="${REPORTGEN_RADEVAL_PACKAGE:-radeval==2.2.1}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
stamp="$env_dir/.reportgen-radeval-$(echo "$pkg" | cat - .ci/constraints.txt scripts/setup_radeval_env.sh | sha1sum | cut -c1-12)"
[ -x "$env_dir/bin/python" ] || "$py" -m venv "$env_dir"
if [ ! -f "$stamp" ]; then
  echo "setup_radeval_env: installing $pkg into $env_dir (first run: a few minutes)" >&2
  "$env_dir/bin/python" -m pip install -q --upgrade pip 2>&1 | { grep -v "is ignored: it is neither" || true; }
  # torch first, from the constraints, so the resolver never considers a CUDA build.
  "$env_dir/bin/python" -m pip install -q -c .ci/constraints.txt torch==2.13.0 2>&1 | { grep -v "is ignored: it is neither" || true; }
  "$env_dir/bin/python" -m pip install -q -c .ci/constraints.txt "$pkg" 2>&1 | { grep -v "is ignored: it is neither" || true; }
  "$env_dir/bin/python" -c "import radeval" >/dev/null 2>&1 || { echo "setup_radeval_env: radeval does not import" >&2; exit 1; }
  rm -f "$env_dir"/.reportgen-radeval-*
  touch "$stamp"
fi
echo "$env_dir/bin/python"
