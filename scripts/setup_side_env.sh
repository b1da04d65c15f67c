#!/usr/bin/env bash
# Create or update the own environment of a backend whose pins clash with reportgen's:
#
#   bash scripts/setup_side_env.sh radeval    # .venv-radeval: radeval 2.2.1 (pins numpy 1.26, spaCy 3.7)
#   bash scripts/setup_side_env.sh radgraph   # .venv-radgraph: radgraph 0.1.18 + transformers<5
#
# reportgen runs the backend there as a separate process (JSON lines over pipes,
# reportgen/pyproc.py): `reportgen eval --with-radeval --radeval-python .venv-radeval/bin/python`
# (or REPORTGEN_RADEVAL_PYTHON); REPORTGEN_RADGRAPH_PYTHON=.venv-radgraph/bin/python for
# `--extractor radgraph` (radgraph's bundled allennlp calls tokenizer.encode_plus, which
# transformers 5 removed). torch stays on the CPU build through .ci/constraints.txt. The
# models' weights download on first use (offline: RadEval's bleu and rouge need none).
#
# Idempotent (a stamp file); from scratch a few minutes each on a 2-core machine. Prints the
# environment's python. Environment: PYTHON (interpreter that creates the venv, default
# python3), REPORTGEN_SIDE_ENV (default .venv-NAME), REPORTGEN_SIDE_PACKAGES (override the
# package list).
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:-}"
case "$name" in
  radeval) pkgs="radeval==2.2.1"; check="import radeval" ;;
  radgraph) pkgs="radgraph==0.1.18 transformers<5"; check="import radgraph, transformers; assert int(transformers.__version__.split('.')[0]) < 5" ;;
  *) echo "usage: $0 radeval|radgraph" >&2; exit 2 ;;
esac
pkgs="${REPORTGEN_SIDE_PACKAGES:-$pkgs}"
py="${PYTHON:-python3}"
env_dir="${REPORTGEN_SIDE_ENV:-.venv-$name}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
stamp="$env_dir/.reportgen-$name-$(echo "$pkgs" | cat - .ci/constraints.txt scripts/setup_side_env.sh | sha1sum | cut -c1-12)"
pip_q() { "$env_dir/bin/python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }; return "${PIPESTATUS[0]}"; }
[ -x "$env_dir/bin/python" ] || "$py" -m venv "$env_dir"
if [ ! -f "$stamp" ]; then
  echo "setup_side_env: installing $pkgs into $env_dir (first run: a few minutes)" >&2
  pip_q install -q --upgrade pip
  # torch first, from the constraints, so the resolver never considers a CUDA build.
  pip_q install -q -c .ci/constraints.txt torch==2.13.0
  # shellcheck disable=SC2086  # the list is words
  pip_q install -q -c .ci/constraints.txt $pkgs
  "$env_dir/bin/python" -c "$check" >/dev/null 2>&1 || { echo "setup_side_env: '$check' fails in $env_dir" >&2; exit 1; }
  rm -f "$env_dir"/.reportgen-"$name"-*
  touch "$stamp"
fi
echo "$env_dir/bin/python"
