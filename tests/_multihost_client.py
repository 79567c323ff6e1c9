"""Scripts run inside a test namespace by tests/test_multihost.py.

    python tests/_multihost_client.py order FQME PRICE
        (host C) place a paper buy of 0.001 at PRICE, print every Status of
        it as a JSON line until it is closed, errors or is canceled
    python tests/_multihost_client.py control FQME GO_FILE PRICE
        (host B) open market control on brokerd.sim, print "ready", wait
        for GO_FILE to exist, push a quote crossing PRICE, print "pushed"
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import trio

DONE = {'closed', 'error', 'canceled'}


async def order(fqme: str, price: float) -> None:
    from piker.clearing import Status, open_ems

    async with open_ems(fqme) as (client, trades, *_):
        oid = await client.send(client.mk_order('buy', price, 0.001))
        async for msg in trades:
            if isinstance(msg, Status) and msg.oid == oid:
                print(json.dumps({'oid': oid, 'resp': msg.resp, 'filled': msg.filled,
                                  'reason': msg.reason or ''}),
                      flush=True)
                if msg.resp in DONE:
                    return


async def control(fqme: str, go: str, price: float) -> None:
    from piker.brokers.sim import open_market_control
    from piker.service import maybe_open_pikerd

    async with maybe_open_pikerd(), open_market_control(fqme) as ctl:
        print('ready', flush=True)
        while not Path(go).exists():
            await trio.sleep(0.05)
        await ctl.push(last=price, bid=price - 1, ask=price)
        print('pushed', flush=True)
        await trio.sleep_forever()


if __name__ == '__main__':
    if sys.argv[1] == 'order':
        trio.run(order, sys.argv[2], float(sys.argv[3]))
    else:
        trio.run(control, sys.argv[2], sys.argv[3], float(sys.argv[4]))
