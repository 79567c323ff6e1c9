"""An order client to be SIGKILLed by tests/test_recovery_e2e.py.

Run as a script (`python tests/_recovery_client.py FQME`) in the test's
private environment: joins the running pikerd, places a resting live buy
and a dark buy, prints their oids as one JSON line once both work, then
waits to be killed.
"""
from __future__ import annotations

import json
import sys

import trio


async def main(fqme: str) -> None:
    from piker.clearing import open_ems, wait_for_status

    async with open_ems(fqme) as (client, trades, *_):
        live = await client.send(client.mk_order('buy', 90.0, 1.0))
        await wait_for_status(trades, live, 'open')
        dark = await client.send(client.mk_order('buy', 85.0, 1.0, exec_mode='dark'))
        await wait_for_status(trades, dark, 'dark_open')
        print(json.dumps({'live': live, 'dark': dark}), flush=True)
        await trio.sleep_forever()


if __name__ == '__main__':
    trio.run(main, sys.argv[1])
