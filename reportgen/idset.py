"""A set of record ids whose memory stays bounded however long the stream is.

Batch commands remember every id they have seen (a duplicate id is warned about; the
reference ids without a report are listed at the end). Over a multi-GB stream a Python
set of ids grows without bound (about 80 bytes an id), so ``IdSet`` keeps the first
``in_memory`` ids in a set and then moves them to a SQLite table in a temporary file,
which answers the same questions with a small, fixed page cache. Exact, not a Bloom
filter: a duplicate warning must never be a false alarm.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator

# ~8 MB of ids in a Python set before the table takes over
DEFAULT_IN_MEMORY = 100_000
# SQLite's page cache for the table, in KiB (negative cache_size means KiB)
_CACHE_KIB = 4096


class IdSet:
    """``add(id)`` -> True when the id is new; ``id in s``; ``len(s)``; iteration (any order).
    ``close()`` removes the temporary file (also on garbage collection and ``with``)."""

    def __init__(self, ids: Iterable[str] = (), *, in_memory: int = DEFAULT_IN_MEMORY, tmp_dir: str | None = None):
        if in_memory < 0:
            raise ValueError(f"in_memory must be >= 0, got {in_memory}")
        self.in_memory = in_memory
        self.tmp_dir = tmp_dir
        self._mem: set[str] = set()
        self._db: sqlite3.Connection | None = None
        self._path: str | None = None
        self._n = 0
        for i in ids:
            self.add(i)

    def add(self, rid: str) -> bool:
        if self._db is None:
            if rid in self._mem:
                return False
            if len(self._mem) < self.in_memory:
                self._mem.add(rid)
                self._n += 1
                return True
            self._db = self._spill()
        cur = self._db.execute("INSERT OR IGNORE INTO ids VALUES (?)", (rid,))
        if cur.rowcount:
            self._n += 1
            return True
        return False

    def __contains__(self, rid: object) -> bool:
        if self._db is None:
            return rid in self._mem
        return self._db.execute("SELECT 1 FROM ids WHERE id = ?", (rid,)).fetchone() is not None

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[str]:
        if self._db is None:
            yield from list(self._mem)
        else:
            for (rid,) in self._db.execute("SELECT id FROM ids"):
                yield rid

    @property
    def on_disk(self) -> bool:
        return self._db is not None

    def _spill(self) -> sqlite3.Connection:
        fd, self._path = tempfile.mkstemp(prefix="reportgen-ids-", suffix=".sqlite", dir=self.tmp_dir)
        os.close(fd)
        # nothing must survive the process: no journal, no fsync, and one transaction that is
        # never committed (this connection reads its own writes; SQLite spills pages to the
        # file when its cache is full, so memory stays at the cache size)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID")
        db.execute("BEGIN")
        db.executemany("INSERT INTO ids VALUES (?)", ((i,) for i in self._mem))
        self._mem = set()
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._path is not None:
            try:
                os.unlink(self._path)
            except OSError:
                pass
            self._path = None

    def __enter__(self) -> "IdSet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to tidy
            pass
