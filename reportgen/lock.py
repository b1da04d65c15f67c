"""One writer per output file: ``reportgen draft`` holds ``OUT.lock`` while it writes OUT.

The lock is an advisory ``flock`` on a file beside the output, holding the owner's pid,
host and start time (for the message a second run gets). The kernel drops a flock when
its process dies, so a lock file left by a crashed or killed run is stale and simply taken
over; nothing has to be cleaned up by hand. The file is removed when the owner finishes.

    with OutputLock(Path("drafts.jsonl")):
        ...   # E902 if another run holds it
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from reportgen.errors import ReportgenError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


class OutputLock:
    """An exclusive, non-blocking lock on ``target`` (see the module docstring)."""

    def __init__(self, target: str | os.PathLike[str]):
        self.target = Path(target)
        self.path = self.target.with_name(self.target.name + ".lock")
        self._fd: int | None = None
        self.stale: dict[str, Any] | None = None  # what a stale lock file said, when one was taken over

    def acquire(self) -> "OutputLock":
        if fcntl is None:  # pragma: no cover
            raise ReportgenError("E902", "output locking needs a POSIX system (fcntl)", fix="run on Linux or macOS")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read(fd)
                os.close(fd)
                who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')}"
                raise ReportgenError(
                    "E902", f"another `reportgen draft` ({who}) is writing {self.target.name}",
                    fix=f"wait for it to finish, or stop it (its lock is {self.path}); a lock left by a run "
                    "that crashed is taken over automatically",
                ) from None
            try:  # the file may have been removed by its previous owner between open and flock
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            old = _read(fd)
            self.stale = old or None
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps({
                "pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }).encode())
            self._fd = fd
            return self
        raise ReportgenError("E902", f"could not lock {self.path} (it keeps being replaced)", fix="retry")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # still ours: we hold the flock on this very file
        except FileNotFoundError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        out = json.loads(data) if data.strip() else {}
        return out if isinstance(out, dict) else {}
    except (OSError, ValueError):
        return {}


__all__ = ["OutputLock"]
