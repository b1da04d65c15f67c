"""Errors with codes and the fix, as spaCy does: ``E012: <problem>. Fix: <what to do>``.

Codes are stable so users can search for them; docs/errors.md lists them.
"""

from __future__ import annotations


class ReportgenError(Exception):
    """An error a user can act on. ``code`` is stable, ``fix`` says what to do."""

    def __init__(self, code: str, message: str, fix: str | None = None, record: str | None = None):
        self.code = code
        self.message = message
        self.fix = fix
        self.record = record
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.record}: " if self.record else ""
        tail = f" Fix: {self.fix}" if self.fix else ""
        return f"{self.code}: {where}{self.message}.{tail}" if not self.message.endswith(".") else f"{self.code}: {where}{self.message}{tail}"


class InputError(ReportgenError):
    """A bad input record: names the record (file:line or id) and the problem."""


class BackendUnavailable(ReportgenError):
    """A backend was chosen whose package, weights or server is not available."""
