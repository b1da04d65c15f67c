"""Write docs/errors.md from the error registry (``reportgen.errors.ERRORS``).

    python scripts/errors_doc.py            # regenerate docs/errors.md
    python scripts/errors_doc.py --check    # exit 1 when docs/errors.md is out of date

Run it after adding a code to ``ERRORS`` in reportgen/errors.py; tests/test_errors.py
fails while the page and the registry differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def main(argv: list[str] | None = None) -> int:
    from reportgen.errors import markdown

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when the page is out of date")
    p.add_argument("--out", type=Path, default=DOC, help=f"the page to write (default {DOC})")
    args = p.parse_args(argv)
    text = markdown()
    current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
    if args.check:
        if current != text:
            print(f"{args.out} is out of date: run python scripts/errors_doc.py", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out} ({text.count(chr(10))} lines)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
