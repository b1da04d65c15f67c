"""Patient data stays out of logs, exceptions and progress output by default.

Report text, image paths and indications are patient data (PHI). The toolkit's own
messages name records by file:line and id, never by their text; messages that quote a
value (an image path, a piece of text) go through ``scrub`` on their way to stderr: a
quoted value that looks like a path becomes ``'<path>'`` and a quoted run of words
becomes ``'<text>'``. ``reportgen --log-phi ...`` (or ``REPORTGEN_LOG_PHI=1``) shows
them as they are. Output files (JSONL records, HTML pages) are the user's data and keep
everything; the HTML page says so in a banner.

``install()`` puts the scrubbing filter on the root logger's handlers (the CLI calls it),
so third-party loggers at DEBUG are covered too.
"""

from __future__ import annotations

import logging
import os
import re

_allowed: bool | None = None

# 'quoted' or "quoted" values; the \\ escapes of repr() are kept inside
# (an apostrophe inside a word, as in "manifest's", opens and closes nothing)
_QUOTED = re.compile(r"""(?<!\w)(?P<q>['"])(?P<v>(?:\\.|(?!(?P=q)).){1,10000}?)(?P=q)(?!\w)""")
_PATHISH = re.compile(r"[/\\]|^~|\.(?:png|jpe?g|dcm|dicom|dic|tiff?|bmp|gif|webp|nii|json|jsonl|txt)$", re.IGNORECASE)


def allowed() -> bool:
    """True when the user opted in to patient data in logs (--log-phi / $REPORTGEN_LOG_PHI)."""
    if _allowed is not None:
        return _allowed
    return os.environ.get("REPORTGEN_LOG_PHI", "").strip().lower() in ("1", "true", "yes", "on")


def set_allowed(value: bool | None) -> None:
    """Opt in (True), out (False) or back to the environment's choice (None)."""
    global _allowed
    _allowed = value


def _replace(m: re.Match) -> str:
    value = m.group("v")
    if _PATHISH.search(value):
        return f"{m.group('q')}<path>{m.group('q')}"
    if len(value) >= 24 and " " in value.strip():
        return f"{m.group('q')}<text>{m.group('q')}"
    return m.group(0)


def scrub(message: str) -> str:
    """``message`` without quoted paths and texts (unless allowed)."""
    if allowed() or ("'" not in message and '"' not in message):
        return message
    return _QUOTED.sub(_replace, message)


class ScrubFilter(logging.Filter):
    """Scrubs every record that passes a handler (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not allowed():
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a bad format string: leave it to logging
                return True
            clean = scrub(message)
            if clean != message:
                record.msg, record.args = clean, None
            if record.exc_info and record.exc_info[1] is not None:
                # a traceback repeats the exception's message with its values: keep the type only
                exc = record.exc_info[1]
                record.msg = f"{record.msg} ({type(exc).__name__}: {scrub(str(exc))})"
                record.exc_info, record.exc_text = None, None
        return True


def install() -> None:
    """Add the filter to the root logger's handlers (idempotent)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())


__all__ = ["ScrubFilter", "allowed", "install", "scrub", "set_allowed"]
