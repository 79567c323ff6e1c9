"""Where accounting files live and how they are read and written.

Both the trade ledger and the positions table are human-readable TOML in
the config dir (DESIGN.md section 8), read with `tomllib`, rendered with
`tomli_w`. The positions table is small and replaced whole through
`write_atomic()` (a crash leaves the old or the new file, never a torn
one); the ledger grows with every fill, so a fill *appends* its table
(see `_ledger`), and only a new or legacy ledger is written whole.
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic
from ..config import get_config_dir

# broker and account names become file name parts: keep them boring
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_-]*$')


class AccountingError(ValueError):
    """An accounting file is unreadable/invalid, or a name is unusable."""


def check_name(value: str, what: str) -> str:
    """Validate a broker or account name used in a file name."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise AccountingError(
            f'invalid {what} name {value!r}: use letters, digits, "_" '
            'or "-", starting with a letter or digit'
        )
    return value


def accounting_dir() -> Path:
    """`<config dir>/accounting`."""
    return get_config_dir() / 'accounting'


def ledger_path(broker: str, account: str) -> Path:
    """`<config dir>/accounting/ledgers/trades_<broker>_<account>.toml`."""
    check_name(broker, 'broker')
    check_name(account, 'account')
    return accounting_dir() / 'ledgers' / f'trades_{broker}_{account}.toml'


def account_path(broker: str, account: str) -> Path:
    """`<config dir>/accounting/account.<broker>.<account>.toml`."""
    check_name(broker, 'broker')
    check_name(account, 'account')
    return accounting_dir() / f'account.{broker}.{account}.toml'


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; a missing file reads as empty."""
    try:
        text = path.read_text(encoding='utf-8')
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise AccountingError(f'cannot read {path}: {err}') from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise AccountingError(f'invalid {path}: not valid TOML: {err}') from None


def toml_text(body: str, header: str = '') -> str:
    """TOML text `body` after `header` as `#` comment lines."""
    head = ''.join(f'# {line}\n' if line else '#\n' for line in header.splitlines())
    return head + ('\n' if head and body else '') + body


def write_toml_text(
    path: Path, body: str, header: str = '', *, durable: bool = True,
) -> None:
    """Atomically replace `path` with TOML text `body`, after a `#` header
    (`durable=False`: without fsync, see `write_atomic`)."""
    write_atomic(path, toml_text(body, header), durable=durable)


def join_tables(texts: Iterable[str]) -> str:
    """Join separately rendered top-level TOML tables exactly as
    `tomli_w.dumps()` of their union would (a blank line between them).

    The ledger and the positions file render each trade once and keep the
    text, so a write costs a join, not a re-rendering of every trade."""
    return '\n'.join(texts)
