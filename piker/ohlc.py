"""OHLC history arrays: the one dtype, and how they cross the IPC wire.

Every backend's `open_history()` returns a structured numpy array of
`OHLC_DTYPE` rows (`time` is the bar's open in epoch seconds). tractor's
msgpack codec cannot carry numpy arrays (TRACTOR.md "Codec"), so brokerd
sends `pack_array()`'s `{'dtype', 'shape', 'data'}` dict and the client
rebuilds it with `unpack_array()`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

OHLC_DTYPE = np.dtype([
    ('time', 'i8'),
    ('open', 'f8'),
    ('high', 'f8'),
    ('low', 'f8'),
    ('close', 'f8'),
    ('volume', 'f8'),
])

# the timeframes (bar length in seconds) every backend must serve
TIMEFRAMES: tuple[int, ...] = (1, 60)


def pack_array(arr: np.ndarray) -> dict[str, Any]:
    """Encode a structured array as msgpack-friendly builtins."""
    arr = np.ascontiguousarray(arr)
    return {
        'dtype': [(name, arr.dtype[name].str) for name in arr.dtype.names or ()],
        'shape': list(arr.shape),
        'data': arr.tobytes(),
    }


def unpack_array(msg: dict[str, Any]) -> np.ndarray:
    """Rebuild an array packed by `pack_array()` (owns its memory)."""
    dtype = np.dtype([(name, code) for name, code in msg['dtype']])
    arr = np.frombuffer(msg['data'], dtype=dtype).reshape(msg['shape'])
    return arr.copy()
