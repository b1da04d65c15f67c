"""JSONL input and output that never lose work.

Reading yields one ``Record`` per line: either the parsed object or the problem with it
(malformed JSON, non-UTF-8 bytes, a missing id, an oversized line), so one bad line
never stops a batch. Writing is either atomic (``atomic_writer``: a temporary file renamed
over the target when done, so a crash never leaves a half-written file) or append-and-
flush (``AppendWriter``: each record is on disk as soon as it is written, for resumable
batches).
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import secrets
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from reportgen.errors import InputError, error_code

# A report of a few kB is normal; 1 MB of text is not a radiology report. Records longer
# than this are refused by default (users can raise it) so one runaway line cannot stall
# a batch.
MAX_RECORD_CHARS = 200_000


@dataclass(frozen=True)
class Record:
    """One input line: ``data`` when it parsed, else ``error``; ``line`` is 1-based."""

    path: str
    line: int
    data: Mapping[str, Any] | None
    error: str | None = None
    id_hint: str | None = None  # a line that did not parse: the id it seems to carry (messages only)

    @property
    def id(self) -> str | None:
        """The record's id when it has a usable one."""
        if self.data is not None and isinstance(self.data.get("id"), str) and self.data["id"]:
            return self.data["id"]
        return None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def fallback_id(self) -> str:
        """An id for error records of lines without one: ``line:N``."""
        return self.id or f"line:{self.line}"

    @property
    def error_code(self) -> str | None:
        """The code of ``error`` (``"E103"``), None for a good line."""
        return error_code(self.error)


def read_jsonl(
    path: str | os.PathLike[str],
    *,
    require: tuple[str, ...] = ("id",),
    max_chars: int = MAX_RECORD_CHARS,
    text_fields: tuple[str, ...] = (),
) -> Iterator[Record]:
    """Yield a Record per non-blank line of ``path``; problems become ``Record.error``.

    ``require`` names keys that must be present; ``id`` must be a non-empty string.
    ``text_fields`` must be strings and no longer than ``max_chars``.
    """
    p = check_in_file(path)
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            yield _parse_line(str(p), lineno, raw, require, max_chars, text_fields)


def read_jsonl_block(
    path: str | os.PathLike[str],
    start: int,
    end: int,
    first_line: int,
    *,
    require: tuple[str, ...] = ("id",),
    max_chars: int = MAX_RECORD_CHARS,
    text_fields: tuple[str, ...] = (),
) -> Iterator[Record]:
    """``read_jsonl`` over the bytes [start, end) of ``path``, whose first line is line
    ``first_line`` of the file: the same Records (same line numbers and messages) as
    ``read_jsonl`` gives for those lines. Lets workers of a distributed engine read their
    own share of one input file (``reportgen.engines``)."""
    p = Path(path)
    with p.open("rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    # BytesIO splits at b"\n" only, as iterating the file does (bytes.splitlines would
    # also split at a bare "\r" and shift every later line number).
    for lineno, raw in enumerate(io.BytesIO(data), start=first_line):
        if not raw.strip():
            continue
        yield _parse_line(str(p), lineno, raw, require, max_chars, text_fields)


def _parse_line(path: str, lineno: int, raw: bytes, require: tuple[str, ...], max_chars: int, text_fields: tuple[str, ...]) -> Record:
    def bad(msg: str, data: Mapping[str, Any] | None = None, id_hint: str | None = None) -> Record:
        return Record(path, lineno, data, f"{path}:{lineno}: {msg}", id_hint)

    # The line without its end: parsed with it, a line cut short fails on the newline
    # ("line 2 column 1") instead of where the line ends.
    raw = raw.rstrip(b"\r\n")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return bad(f"E102 line is not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8",
                   id_hint=find_id_hint(raw.decode("utf-8", errors="replace")))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        # One line, so the column is the character position (1-based) where parsing stopped.
        at = f"column {e.pos + 1}" + (", the end of the line" if e.pos >= len(text) else "")
        said = e.msg if e.msg.endswith(" at") else f"{e.msg} at"  # "Unterminated string starting at"
        return bad(f"E103 malformed JSON ({said} {at})", id_hint=find_id_hint(text))
    if not isinstance(data, dict):
        return bad(f"E104 a record must be a JSON object, got {type(data).__name__}")
    for key in require:
        if key not in data or data[key] is None:
            return bad(f"E105 record has no {key!r}", data)
    if "id" in require and (not isinstance(data["id"], str) or not data["id"].strip()):
        return bad("E106 'id' must be a non-empty string", data)
    for key in text_fields:
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            return bad(f"E107 {key!r} must be a string, got {type(value).__name__}", data)
        if len(value) > max_chars:
            return bad(f"E108 {key!r} has {len(value):,} characters, over the limit of {max_chars:,}", data)
        if not value.strip():
            return bad(f"E109 {key!r} is empty", data)
    return Record(path, lineno, data)


_ID_IN_BROKEN_LINE = re.compile(r'"id"\s*:\s*("(?:[^"\\]|\\.)*")')


def find_id_hint(text: str) -> str | None:
    """The id a line that is not valid JSON seems to carry (its first ``"id": "..."``), so
    messages can say which record was lost; never used as the record's id."""
    m = _ID_IN_BROKEN_LINE.search(text)
    if not m:
        return None
    try:
        value = json.loads(m.group(1))
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, str) and value.strip() else None


# One encoder for every line: ``json.dumps`` with options builds a new JSONEncoder per call.
# No circular-reference check: a record is a tree of fresh dicts and lists (what
# ``json.loads`` or a ``to_record`` makes; neither can hold a cycle), and the check costs
# an id() and two dict operations per container (~15% of encoding a check record).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def dumps(obj: Any) -> str:
    """One JSONL line (no trailing newline); non-ASCII kept as is (the text of
    ``json.dumps(obj, ensure_ascii=False, separators=(",", ":"))``)."""
    return _ENCODER.encode(obj)


def check_in_file(path: str | os.PathLike[str], what: str = "input file", code: str = "E101", fix: str = "check the path") -> Path:
    """``path`` as a Path when it names a file; else ``code`` saying that it is a folder or
    does not exist (one wording for every input file: --studies, --manifest, --csv, ...)."""
    p = Path(path)
    if not p.is_file():
        state = "is a folder, not a file" if p.is_dir() else "does not exist"
        raise InputError(code, f"{what} {str(p)!r} {state}", fix=fix)
    return p


def check_in_dir(path: str | os.PathLike[str], what: str, code: str, fix: str) -> Path:
    """``path`` as a Path when it names a folder; else ``code`` saying that it is a file or
    does not exist (the folder twin of ``check_in_file``: --root, --image-root, ...)."""
    p = Path(path)
    if not p.is_dir():
        state = "is a file, not a folder" if p.exists() else "does not exist"
        raise InputError(code, f"{what} {str(p)!r} {state}", fix=fix)
    return p


def has_record_line(path: str | os.PathLike[str]) -> bool:
    """True when the file has a line that is not blank (a JSONL input with something in it)."""
    with open(path, "rb") as fh:
        return any(line.strip() for line in fh)


def check_out_dir(path: str | os.PathLike[str], flag: str = "--out", code: str = "E736") -> None:
    """Fail before any work when an output folder cannot be made: ``path`` names a file, a
    file stands where one of its parent folders should be, or the folder it would be made
    in is not writable (E736). Nothing is created."""
    from reportgen.errors import ReportgenError

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ReportgenError(code, f"{flag} {path} is a file, not a folder", fix=f"give a folder for the outputs, e.g. {flag} {target}_out")
    parent = target
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ReportgenError(code, f"{flag} {path}: {parent} is a file, so the folder cannot be made", fix=f"give another {flag} folder")
    if not os.access(parent, os.W_OK):
        raise ReportgenError(code, f"{flag} {path}: the folder {parent} is not writable", fix=f"give a writable {flag} folder")


def check_out_file(path: str | os.PathLike[str], flag: str = "--out", code: str = "E734") -> None:
    """Fail before any work when an output file cannot be written: ``path`` names a folder,
    or its folder cannot be created or is not writable (E734; ``--html`` gives E707)."""
    from reportgen.errors import ReportgenError

    target = Path(path)
    if target.is_dir():
        raise ReportgenError(code, f"{flag} {path} is a folder, not a file", fix=f"give a file name, e.g. {flag} {target / {'--html': 'out.html', '--log': 'vllm.log'}.get(flag, 'out.json')}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportgenError(code, f"{flag} {path}: its folder cannot be created ({e.strerror or e})") from None
    if not os.access(target.parent, os.W_OK):
        raise ReportgenError(code, f"{flag} {path}: the folder {target.parent} is not writable")


@contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[Any]:
    """Write to a temporary file beside ``path`` and rename it over ``path`` on success.

    On an exception the temporary file is removed and an existing ``path`` is untouched.
    The file ends with the permissions a plain ``open(path, "w")`` would give it: those of
    the file it replaces, else 0666 less the umask.
    """
    target = Path(path)
    if target.is_dir():  # else the rename fails only after all the work (commands check first: check_out_file)
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _create_temp(target: Path) -> tuple[int, str]:
    """A new file beside ``target``, created as ``open()`` creates files (mode 0666, which
    the kernel narrows by the umask and default ACLs; ``tempfile.mkstemp`` would force
    0600), or with the mode of the existing ``target`` it will replace."""
    for _ in range(100):
        tmp = str(target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp"))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except OSError:  # no file yet: the umask decided
            return fd, tmp
        try:
            os.chmod(tmp, mode)  # overwriting keeps the old file's permissions, as open() does
        except OSError:
            pass
        return fd, tmp
    raise FileExistsError(f"no free temporary name beside {target}")


def written_records(path: str | os.PathLike[str]) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """(raw line, record) for each line of an output file that is a JSON object with a
    string id; unparseable lines (a torn last line after a crash) are skipped."""
    with Path(path).open("rb") as fh:
        for raw in fh:
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                yield raw, rec


class AppendWriter:
    """Append JSONL records, flushing and fsyncing each, for crash-safe resumable batches.

    ``done_ids()`` reads the ids already in the file (a torn last line from a crash is
    ignored and truncated away before appending).
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._fh = self.path.open("a", encoding="utf-8")

    def _repair_tail(self) -> None:
        # A crash mid-write can leave a last line without its newline. A torn record is
        # dropped (and redone); a complete one (only its newline missing) is kept and its
        # line ended, since readers already count it as done.
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        try:  # a complete record whose newline was not written: keep it, end its line
            complete = isinstance(json.loads(data[cut:]), dict)
        except (json.JSONDecodeError, UnicodeDecodeError):
            complete = False
        with self.path.open("r+b") as fh:
            if complete:
                fh.seek(0, os.SEEK_END)
                fh.write(b"\n")
            else:
                fh.truncate(cut)

    def done_ids(self) -> set[str]:
        return {rec["id"] for _, rec in written_records(self.path)}

    def write(self, record: Mapping[str, Any]) -> None:
        self._fh.write(dumps(record) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "AppendWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def json_safe(x: Any) -> Any:
    """JSON-safe copy for metrics files: NaN -> null, recursively (tuples become lists)."""
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x
