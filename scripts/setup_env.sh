#!/usr/bin/env bash
# Create or update .venv for reportgen: `scripts/setup_env.sh demo|dev`.
#   demo: the core checker, the metrics and the IU reports (torchxrayvision, CPU torch)
#   dev:  everything the tests use (draft, clip, metrics, judge, notebook)
# torch is pinned to the CPU build through .ci/constraints.txt: an unpinned install
# pulls a multi-GB CUDA build. Idempotent: re-runs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-dev}"
py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=".venv/.reportgen-$profile-$(cat pyproject.toml .ci/constraints.txt scripts/setup_env.sh | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c .ci/constraints.txt torch==2.13.0
  case "$profile" in
    demo) extras="iu,metrics" ;;
    dev) extras="dev" ;;
    *) echo "usage: $0 demo|dev" >&2; exit 2 ;;
  esac
  .venv/bin/python -m pip install -q -c .ci/constraints.txt -e ".[$extras]"
  if [ "$profile" = dev ]; then
    # radgraph's reward function, read by file path in the parity tests (never installed:
    # its model dependencies are heavy and its weights download on first use).
    .venv/bin/python -m pip download -q --no-deps -d .cache/radgraph radgraph==0.1.18
  fi
  # Test/CI environment only: let PyPI's CUDA torchvision import beside CPU torch
  # (see scripts/torchvision_cpu_shim.py). Library code never does this.
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  cp scripts/torchvision_cpu_shim.py "$site/_reportgen_tv_shim.py"
  echo "import _reportgen_tv_shim" > "$site/_reportgen_tv_shim.pth"
  rm -f .venv/.reportgen-"$profile"-*
  touch "$stamp"
fi
# Headless Chromium for the browser tests of the HTML report (tests/test_report_browser.py),
# checked on every run (not only when the venv is rebuilt); skipped when already installed.
if [ "$profile" = dev ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup_env: chromium is not installed (apt-get install chromium); the browser tests will be skipped" >&2
  fi
fi
