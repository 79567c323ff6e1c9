"""Fake venues for offline tests: real servers speaking a venue's protocol.

`_harness` is the venue-independent part (ASGI on trio, thread runner);
each venue lives in its own package (`binance`).
"""
