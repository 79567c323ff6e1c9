"""Errors a broker backend, brokerd or a feed raise at users.

They are plain exceptions with messages meant for humans (DESIGN.md
section 11). Across the IPC boundary they travel as `{'type', 'msg'}`
data (`error_to_msg()`), never as pickled exceptions, and the receiving
side raises the same class again (`raise_from_msg()`).
"""
from __future__ import annotations

from typing import Any


class BrokerError(Exception):
    """Base of every piker backend / feed error."""


class NoSuchBackend(BrokerError, LookupError):
    """The broker name in an fqme or a command names no installed backend."""


class SymbolNotFound(BrokerError, LookupError):
    """A backend has no market for the requested symbol."""


class FeedError(BrokerError):
    """A live feed broke: brokerd died, stopped answering, or its upstream failed."""


_BY_NAME: dict[str, type[BrokerError]] = {
    cls.__name__: cls
    for cls in (BrokerError, NoSuchBackend, SymbolNotFound, FeedError)
}


def error_to_msg(err: BaseException) -> dict[str, Any]:
    """Encode an error for the wire: `{'type': class name, 'msg': text}`."""
    return {'type': type(err).__name__, 'msg': str(err)}


def raise_from_msg(msg: dict[str, Any]) -> None:
    """Raise the error encoded by `error_to_msg()` as its local class.

    Unknown classes (e.g. a `ValueError` from bad input) become the matching
    builtin if it is a plain `ValueError`, else a `BrokerError` whose text
    names the remote type.
    """
    etype, text = msg.get('type', 'BrokerError'), msg.get('msg', '')
    cls = _BY_NAME.get(etype)
    if cls is not None:
        raise cls(text)
    if etype == 'ValueError':
        raise ValueError(text)
    raise BrokerError(f'{etype}: {text}')
