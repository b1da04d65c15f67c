#!/usr/bin/env bash
# The lowest versions pyproject.toml promises, for the packages that install quickly
# without torch: pydicom (pydicom.pixels needs 3.0) and pillow. transformers' floor (4.56,
# from_pretrained(dtype=...)) needs torch and is checked by tests/test_floors.py against
# the code, not installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
floor() { sed -n "s/.*\"$1>=\([0-9.]*\)\".*/\1/p" pyproject.toml | head -1; }
venv="$(mktemp -d)/floor"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q "pydicom==$(floor pydicom)" "pillow==$(floor pillow)" "numpy>=1.24,<2.3"
PYTHONPATH="$PWD" "$venv/bin/python" .ci/floor_check.py
rm -rf "$(dirname "$venv")"
