"""The built-in indicators: SMA, EMA, VWAP, RSI and dollar volume.

Each follows the contract of `_api` (write rows `[start, n)` from rows
before `start`): the windowed ones (SMA, dollar volume) vectorise any
span; the recursive ones (EMA, RSI, VWAP) carry their running values in
`out` (RSI's average gain/loss in `state`, VWAP's session sums), so the
live bar is recomputed from the bar before it and never drifts.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._api import IndicatorError, indicator

DAY = 86400


def _check_length(name: str, length: int) -> None:
    if length < 1:
        raise IndicatorError(f'indicator {name!r} parameter length must be >= 1, got {length}')


@indicator('sma', pane='overlay')
def sma(ohlc: np.ndarray, out: np.ndarray, start: int, length: int = 20) -> None:
    """Simple moving average of the close over `length` bars."""
    _check_length('sma', length)
    n = len(ohlc)
    first = max(start, length - 1)
    if first >= n:
        out['sma'][start:] = np.nan
        return
    out['sma'][start:first] = np.nan
    span = ohlc['close'][first - length + 1:n]
    out['sma'][first:n] = sliding_window_view(span, length).mean(axis=1)


@indicator('ema', pane='overlay')
def ema(ohlc: np.ndarray, out: np.ndarray, start: int, length: int = 20) -> None:
    """Exponential moving average of the close, alpha = 2 / (length + 1),
    seeded with the first close."""
    _check_length('ema', length)
    alpha = 2.0 / (length + 1)
    keep = 1.0 - alpha
    close = ohlc['close'][start:].tolist()
    col = out['ema']
    prev = float(col[start - 1]) if start else close[0]
    res = []
    for c in close:
        prev = alpha * c + keep * prev
        res.append(prev)
    col[start:] = res


@indicator('rsi', pane='subplot', state=('up', 'down'), levels=(30.0, 70.0))
def rsi(ohlc: np.ndarray, out: np.ndarray, start: int, length: int = 14) -> None:
    """Wilder's relative strength index over `length` bars (0-100)."""
    _check_length('rsi', length)
    n = len(ohlc)
    close = ohlc['close']
    first = max(start, length)
    out['rsi'][start:min(first, n)] = np.nan
    out['up'][start:min(first, n)] = np.nan
    out['down'][start:min(first, n)] = np.nan
    if first >= n:
        return
    diff = np.diff(close[first - length:n])     # diff[k] = close[first-length+k+1] - ...
    gains = np.maximum(diff, 0.0).tolist()
    losses = np.maximum(-diff, 0.0).tolist()
    if first == length:
        up = sum(gains[:length]) / length
        down = sum(losses[:length]) / length
        ups, downs = [up], [down]
        k0 = length
    else:
        up, down = float(out['up'][first - 1]), float(out['down'][first - 1])
        ups, downs = [], []
        k0 = length - 1
    for g, loss in zip(gains[k0:], losses[k0:], strict=True):
        up = (up * (length - 1) + g) / length
        down = (down * (length - 1) + loss) / length
        ups.append(up)
        downs.append(down)
    u = np.asarray(ups)
    d = np.asarray(downs)
    out['up'][first:n] = u
    out['down'][first:n] = d
    with np.errstate(divide='ignore', invalid='ignore'):
        val = np.where(d > 0, 100.0 - 100.0 / (1.0 + u / d), np.where(u > 0, 100.0, 50.0))
    out['rsi'][first:n] = val


@indicator('vwap', pane='overlay', state=('pv', 'vol'))
def vwap(ohlc: np.ndarray, out: np.ndarray, start: int) -> None:
    """Volume-weighted average (typical) price, restarting every UTC day;
    the typical price of bars before the day's first volume."""
    n = len(ohlc)
    seg = ohlc[start:n]
    tp = (seg['high'] + seg['low'] + seg['close']) / 3.0
    pv = tp * seg['volume']
    vol = seg['volume'].astype('f8')
    day = ohlc['time'][max(start - 1, 0):n] // DAY
    if start:
        new = day[1:] != day[:-1]
        base_pv, base_vol = float(out['pv'][start - 1]), float(out['vol'][start - 1])
    else:
        new = np.empty(len(seg), dtype=bool)
        new[0] = True
        new[1:] = day[1:] != day[:-1]
        base_pv = base_vol = 0.0
    cpv, cvol = np.cumsum(pv), np.cumsum(vol)
    # the running sums restart at every new session: subtract the sums
    # accumulated before each row's session start (rows before the span's
    # first session start carry on from the bar before the span)
    idx = np.arange(len(seg))
    sess = np.maximum.accumulate(np.where(new, idx, 0))
    has = np.maximum.accumulate(new)
    before_pv = np.where(sess > 0, cpv[sess - 1], 0.0)
    before_vol = np.where(sess > 0, cvol[sess - 1], 0.0)
    run_pv = np.where(has, cpv - before_pv, cpv + base_pv)
    run_vol = np.where(has, cvol - before_vol, cvol + base_vol)
    out['pv'][start:n] = run_pv
    out['vol'][start:n] = run_vol
    with np.errstate(divide='ignore', invalid='ignore'):
        out['vwap'][start:n] = np.where(run_vol > 0, run_pv / run_vol, tp)


@indicator('dollar_volume', pane='subplot', outputs=('dollar_volume',))
def dollar_volume(ohlc: np.ndarray, out: np.ndarray, start: int) -> None:
    """Traded value per bar: close * volume (in the quote currency)."""
    seg = ohlc[start:]
    out['dollar_volume'][start:] = seg['close'] * seg['volume']
