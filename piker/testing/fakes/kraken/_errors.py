"""Kraken's errors: strings like `EOrder:Insufficient funds`.

REST answers them in the envelope (`{"error": [..], "result": {}}`, HTTP
200 as Kraken does, 5xx only for server faults); websocket v2 method
responses carry one as `"error"` with `"success": false`.
"""
from __future__ import annotations


class KrakenError(Exception):
    def __init__(self, text: str, status: int = 200) -> None:
        super().__init__(text)
        self.text = text
        self.status = status
