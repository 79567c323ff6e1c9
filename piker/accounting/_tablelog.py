"""An append-only TOML file of top-level tables, with crash-safe appends.

The trade ledger grows by one table per fill. Rewriting it whole on
every fill costs O(file) and made each fill slower than the last, so a
fill *appends* its table(s) and fsyncs once: O(1) in the file's size.

The file is a `#` comment header carrying a marker line (the file is in
this format), then tables. It is created whole and atomically (temp file,
fsync, rename, fsync of the directory). An append writes `\\n` + tables
at the end of the last good byte and fsyncs; if that fails, the file is
truncated back to that length, and an append also first cuts off any
bytes found after it - a retry never glues onto a half-written table.

A crash mid-append can leave a torn last table. The writer ends every
table with a field whose every proper prefix is invalid TOML or fails
`complete()` (the ledger: a tz-aware `dt`), so on load the last table is
either complete or recognised as torn: dropped with a log line, and cut
off by the next append. Damage anywhere else is an error, as for any TOML
file. A file without the marker (written whole by an older piker, or by
hand) is read strictly and rewritten whole, with the marker, at its first
write.

Reading: `tomllib` takes ~5 s (and three times that on a busy box) for
100,000 trades, too slow for a venue that loads its ledger at start. So
the lines `tomli_w` writes - `[key]`/`["key"]` headers and `key = value`
lines with an escape-free string, a number or a date-time - are read by
`_fast_loads()` with `tomllib`'s own value parsers (the same values by
construction); anything else in the file (hand edits, escapes, damage)
makes it hand the whole file to `tomllib`.
"""
from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic
from ..log import get_logger
from ._files import AccountingError

__all__ = ['TableLog']

log = get_logger(__name__)

# (key, table, the file ends with a newline) -> is the table whole?
Complete = Callable[[str, Any, bool], bool]


try:  # the stdlib's own value grammar, so the fast path agrees with it
    from tomllib._re import RE_DATETIME, RE_NUMBER, match_to_datetime, match_to_number
except ImportError:  # pragma: no cover - another tomllib: always the slow path
    RE_DATETIME = None

_STR = r'"([^"\\\x00-\x1f\x7f]*)"'  # a basic string without escapes or control chars
_HEADER = re.compile(rf'\[(?:([A-Za-z0-9_-]+)|{_STR})\]')
_KV = re.compile(rf'([A-Za-z0-9_-]+) = (?:{_STR}|([^"].*))')
_BAD_COMMENT = re.compile(r'[\x00-\x08\x0a-\x1f\x7f]')


def _fast_loads(text: str) -> dict[str, Any] | None:
    """`tomllib.loads(text)` for a file of top-level tables of plain
    values, as `tomli_w` writes them; None for anything else.

    Lines repeat (`fqme = ...`, `cost = 0.0`): each distinct one is parsed
    once (values are immutable, so tables may share them)."""
    if RE_DATETIME is None:
        return None
    out: dict[str, Any] = {}
    table: dict[str, Any] | None = None
    seen: dict[str, tuple[str, Any]] = {}
    for line in text.split('\n'):
        kv = seen.get(line)
        if kv is None:
            if not line:
                continue
            if line[0] == '#':
                if _BAD_COMMENT.search(line):
                    return None
                continue
            if line[0] == '[':
                m = _HEADER.fullmatch(line)
                if m is None:
                    return None
                key = m[1] if m[1] is not None else m[2]
                if key in out:
                    return None
                table = out[key] = {}
                continue
            kv = _value_line(line)
            if kv is None:
                return None
            if len(seen) < 4096:
                seen[line] = kv
        if table is None or kv[0] in table:
            return None
        table[kv[0]] = kv[1]
    return out


def _value_line(line: str) -> tuple[str, Any] | None:
    """`key = value` with a plain value, parsed as `tomllib` does."""
    m = _KV.fullmatch(line)
    if m is None:
        return None
    if m[2] is not None:
        return m[1], m[2]
    raw = m[3]
    if raw[4:5] == '-' and (dt := RE_DATETIME.fullmatch(raw)) is not None:
        try:
            return m[1], match_to_datetime(dt)
        except ValueError:
            return None
    if (num := RE_NUMBER.fullmatch(raw)) is not None:
        return m[1], match_to_number(num, float)
    return None


def _loads(raw: bytes) -> dict[str, Any]:
    """Parse; a bad byte or bad TOML raises ValueError (both are)."""
    text = raw.decode('utf-8')
    data = _fast_loads(text)
    return tomllib.loads(text) if data is None else data


class TableLog:
    """One append-only TOML table file (see the module doc).

    `size` is the length of the file's good content as last read or
    written (None: no file known), `appendable` whether the file is in
    this format. Not thread-safe: one owner writes it.
    """

    def __init__(self, path: Path, mark: str) -> None:
        self.path = path
        self.mark = mark
        self.size: int | None = None
        self.appendable = False
        self._sep = b'\n'       # before the next append's first table
        self._torn = False      # bytes after `size` are known (and logged)

    def _marked(self, raw: bytes) -> bool:
        want = f'# {self.mark}'.encode()
        for line in raw.split(b'\n', 64)[:64]:
            if not line.startswith(b'#'):
                return False
            if line.rstrip() == want:
                return True
        return False

    def read(self, complete: Complete) -> dict[str, Any]:
        """The file's tables ({} if there is no file), a torn last one
        dropped (marked files only); `AccountingError` if unreadable."""
        self.size, self.appendable, self._sep, self._torn = None, False, b'\n', False
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise AccountingError(f'cannot read {self.path}: {err}') from None
        self.appendable = self._marked(raw)
        data: dict[str, Any] | None
        try:
            data = _loads(raw)
            error = None
        except ValueError as err:
            data, error = None, err
        good = len(raw)
        if self.appendable and (data is None or not self._last_whole(data, raw, complete)):
            head = self._drop_torn(raw)
            if head is not None:
                data, good = head
        if data is None:
            raise AccountingError(f'invalid {self.path}: not valid TOML: {error}') from None
        self.size = good
        self._sep = b'\n' if raw[:good].endswith(b'\n') else b'\n\n'
        return data

    @staticmethod
    def _last_whole(data: dict[str, Any], raw: bytes, complete: Complete) -> bool:
        if not data:
            return True
        key = next(reversed(data))
        return complete(key, data[key], raw.endswith(b'\n'))

    def _drop_torn(self, raw: bytes) -> tuple[dict[str, Any], int] | None:
        """The tables before the last one and their length, if they parse."""
        cut = raw.rfind(b'\n[') + 1
        if cut == 0:
            return None
        try:
            data = _loads(raw[:cut])
        except ValueError:
            return None  # damage before the last table: not a torn append
        good = len(raw[:cut].rstrip(b'\n')) + 1
        self._torn = True
        log.warning('%s: torn last table dropped (a crash mid-append: its fill was never '
                    'reported), cut off at the next write: %r', self.path, raw[cut:cut + 1000])
        return data, good

    def rewrite(self, text: str) -> None:
        """Replace the file with `text` (which carries the marker) atomically."""
        data = text.encode('utf-8')
        write_atomic(self.path, data)
        self.size, self.appendable, self._torn = len(data), True, False
        self._sep = b'\n' if data.endswith(b'\n') else b'\n\n'

    def append(self, body: str) -> bool:
        """Append the TOML tables `body` (a blank line before them) with
        one fsync. False: the file vanished or shrank under us - the caller
        writes it whole instead. On an OSError the file is back to its
        previous length (or the next append cuts the rest off)."""
        if not self.appendable or self.size is None:
            return False
        size = self.size
        chunk = self._sep + body.encode('utf-8')
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except FileNotFoundError:
            log.warning('%s vanished: written anew from memory', self.path)
            return False
        try:
            end = os.fstat(fd).st_size
            if end < size:
                log.warning('%s shrank (%d bytes, %d known): written anew from memory',
                            self.path, end, size)
                return False
            if end > size:
                if not self._torn:
                    log.warning('%s: %d unknown byte(s) after the last good table cut '
                                'off: %r', self.path, end - size, os.pread(fd, 1000, size))
                os.ftruncate(fd, size)
            try:
                view = memoryview(chunk)
                at = size
                while view:
                    n = os.pwrite(fd, view, at)
                    view, at = view[n:], at + n
                os.fsync(fd)
            except BaseException:
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    self._torn = True
                raise
        finally:
            os.close(fd)
        self.size, self._sep, self._torn = size + len(chunk), b'\n', False
        return True
