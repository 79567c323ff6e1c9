"""EMS load test: many order clients trading at once against a busy market.

    uv run python bench/load.py [--clients 20] [--orders 250] [--duration 30]
                                [--procs 4] [--quote-rate 1000]

A private service tree (its own PIKER_CONFIG_DIR and a free
PIKER_REGISTRY_ADDR; `[sim] quote_rate` quotes per second per market,
`[sim.paper] latency_ms = 0`): pikerd runs as `piker pikerd`, the clients
in `--procs` client processes (0: in this one), several per process, each
a task with its own `open_ems()` session on one of three sim markets. This
process only orchestrates and checks, so a client process that fails or
wedges is killed and reported, never hangs the bench. Every client paces
`--orders` new orders over `--duration` seconds, each order living its own
life concurrently with the others:

- rest (35%): a limit far from the touch; open; modified once or twice
  (price, sometimes size); cancelled;
- keep (15%): a limit far from the touch left working;
- market (15%): a marketable limit; filled, closed;
- dark (20%): a dark order far away; modified (re-armed); cancelled;
- dark_fill (15%): a dark order at the touch; triggers, goes live, fills
  (cancelled if the market has not come to it within 2 s).

At the end every client cancels every working dialog it sees (its
market's: the cancels of clients sharing a market race each other) and
waits for its own to end. Checked, and printed with the figures:

- each client's own dialogs: exactly one terminal status each, only
  fills after it, `filled + remaining == size`, fills add up;
- zero lost or duplicated dialogs: every oid placed is in emsd's journal
  exactly once, ended, and the journal holds no other but the warm-up's
  (one live and one dark order per market before the clock starts: 6,
  hence 5,006 dialogs in the journal for 5,000 placed); the paper venue
  created at most one venue order per oid (`paper_audit`);
- nothing left working: a fresh session's handshake lists no dialog;
- emsd's RSS (`/proc/<pid>/status` VmRSS) at the start, peak and end.

Also printed, to tell a slow tree from a starved machine: CPU seconds per
process, each daemon's event-loop lag (`_load_rpc`, a monitor loaded into
the daemons) and heartbeat round trips over a connection of their own.
`--mix rest=40,dark=60` changes the order mix; `--profile DIR` profiles
emsd and paperboi over the load phase (`_ems_rpc`); `--sample` samples
brokerd's, emsd's and paperboi's CPU over it and prints each one's split
(dark book, fan-out, journal, IPC, codec, ...) per quote and per order.

The load generator itself is `piker.testing._load` (the test
`tests/test_load_short.py` runs a short one); this script makes the
isolated environment, runs it and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import msgspec

from piker.testing._load import FQMES, Config, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    defaults = Config()
    for field in msgspec.structs.fields(Config):
        flag = f'--{field.name.replace("_", "-")}'
        if isinstance(field.default, bool):
            parser.add_argument(flag, action='store_true')
        else:
            parser.add_argument(flag, type=type(field.default),
                                default=getattr(defaults, field.name))
    parser.add_argument('--json', action='store_true', help='also print the report as JSON')
    args = parser.parse_args()
    cfg = Config(**{f.name: getattr(args, f.name) for f in msgspec.structs.fields(Config)})

    # importing piker also silences tractor's trio warnings (here and in sub-actors)
    from piker.testing import free_port
    with tempfile.TemporaryDirectory(prefix='piker-bench-load-') as conf:
        os.environ['PIKER_CONFIG_DIR'] = conf
        os.environ['PIKER_REGISTRY_ADDR'] = f'127.0.0.1:{free_port()}'
        print(f'piker EMS load: {cfg.clients} clients x {cfg.orders} orders over '
              f'{cfg.duration:.0f}s on {", ".join(FQMES)} at {cfg.quote_rate:,.0f} quotes/s each; '
              f'python {sys.version.split()[0]}, {os.cpu_count()} cpus, '
              f'load avg {os.getloadavg()[0]:.2f}', flush=True)
        t0 = time.perf_counter()
        report = run(cfg)
        wall = time.perf_counter() - t0
    print()
    print(report.table())
    for text in report.profiles:
        print(text)
    print(f'(wall time {wall:.1f} s, tree start and teardown included)')
    if args.json:
        print(json.dumps(msgspec.to_builtins(report)))
    if report.problems:
        sys.exit(1)


if __name__ == '__main__':
    main()
