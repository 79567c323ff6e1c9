"""A grid bot: the 30-line-script use case of piker, grown up a little.

Quotes come from `open_feed()`, orders go through `open_ems()` to the paper
engine (`mode='paper'`), on the built-in sim market by default:

- at start it rests LEVELS buys below and LEVELS sells above the mid,
  STEP ticks apart;
- each time a grid order fills it rests the opposite order one step
  away (a buy filled at p -> a sell at p + step, and vice versa), so the
  bot earns the step on every round trip while the price oscillates;
- if the price wanders more than (LEVELS + 1) steps from the grid's
  centre, every resting order is *modified* (same oid, new price) to
  follow it;
- it stops after FILLS fills or SECONDS seconds, *cancels* what is still
  resting and prints a summary.

    uv run python examples/grid_bot.py [--fqme btcusdt.sim] [--fills 10] [--seconds 60]

It joins a running `piker pikerd` (same PIKER_REGISTRY_ADDR) or starts one
in-process; fills land in the paper ledger of the config dir
(`piker ledger sim paper`).

Note the `if __name__ == '__main__':` guard: every piker sub-actor re-runs
the parent's main file on start-up (TRACTOR.md rule 1).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import trio

from piker.accounting import MktPair
from piker.clearing import (
    BrokerdPosition,
    OrderClient,
    OrderFinishedError,
    Status,
    open_ems,
)
from piker.data import open_feed


@dataclass
class GridOrder:
    """One of our orders, as far as the bot is concerned."""

    oid: str
    action: str
    price: float
    state: str = 'pending'  # pending -> open -> done


@dataclass
class Stats:
    placed: int = 0
    fills: int = 0
    modified: int = 0
    cancelled: int = 0
    errors: int = 0
    net: float = 0.0  # units bought minus sold by this run


class GridBot:
    """The bot's state machine; `run()` drives it from quotes and statuses."""

    def __init__(
        self, client: OrderClient, mkt: MktPair, levels: int, step_ticks: int,
        size: float,
    ) -> None:
        self.client = client
        self.mkt = mkt
        self.levels = levels
        self.step = step_ticks * float(mkt.price_tick)
        self.size = mkt.quantize(size)
        self.center = float('nan')
        self.orders: dict[str, GridOrder] = {}
        self.stats = Stats()
        self.position = (0.0, 0.0)  # the account's, as the venue reports it
        self.stopping = False
        self.t0 = time.monotonic()

    def price(self, value: float) -> float:
        return self.mkt.quantize(value, 'price')

    def log(self, text: str) -> None:
        print(f'{time.monotonic() - self.t0:7.2f}s  {text}', flush=True)

    # -- orders -----------------------------------------------------------

    async def place(self, action: str, price: float) -> None:
        order = self.client.mk_order(action, self.price(price), self.size)
        self.orders[order.oid] = GridOrder(order.oid, action, order.price)
        await self.client.send(order)
        self.stats.placed += 1

    async def start(self, mid: float) -> None:
        self.center = self.price(mid)
        self.log(f'grid around {self.center} step {self.step:g}, '
                 f'{self.levels} levels each side, size {self.size:g}')
        for i in range(1, self.levels + 1):
            await self.place('buy', self.center - i * self.step)
            await self.place('sell', self.center + i * self.step)

    async def on_mid(self, mid: float) -> None:
        """Follow the market: re-grid when it leaves the grid.

        Every acknowledged order moves (a modify: same oid, new price) to
        the grid slot of its rank around the new centre: the best buy one
        step below it, the next two steps, and so on; sells likewise above.
        """
        if abs(mid - self.center) <= (self.levels + 1) * self.step:
            return
        self.center = self.price(mid)
        moved = 0
        for action, sign in (('buy', -1), ('sell', 1)):
            side = sorted(
                (go for go in self.orders.values()
                 if go.action == action and go.state == 'open'),
                key=lambda go: go.price, reverse=action == 'buy',
            )
            for rank, go in enumerate(side, 1):
                price = self.price(self.center + sign * rank * self.step)
                if price == go.price:
                    continue
                go.price, go.state = price, 'pending'  # until the venue confirms
                try:
                    await self.client.update(go.oid, price=price)
                except OrderFinishedError:
                    continue  # it ended meanwhile: its status is on its way
                moved += 1
        self.stats.modified += moved
        self.log(f'market moved to {mid:.1f}: grid recentred on {self.center} '
                 f'({moved} orders modified)')

    async def on_status(self, st: Status) -> None:
        go = self.orders.get(st.oid)
        if go is None or go.state == 'done':
            return
        if st.resp == 'open':
            go.state = 'open'
        elif st.resp == 'fill':
            self.stats.fills += 1
            fill = st.brokerd_msg
            price, size = fill.get('price', go.price), fill.get('size', 0.0)
            self.stats.net += size if go.action == 'buy' else -size
            self.log(f'FILL  {go.action:<4} {size:g} @ {price}  '
                     f'(order {st.oid[:8]}, {self.stats.fills} fills)')
        elif st.resp == 'closed':
            go.state = 'done'
            if self.stopping:
                return
            # the other side of the round trip, one step away
            if go.action == 'buy':
                await self.place('sell', go.price + self.step)
            else:
                await self.place('buy', go.price - self.step)
        elif st.resp == 'canceled':
            go.state = 'done'
            self.stats.cancelled += 1
        elif st.resp == 'error':
            # e.g. a modify that raced with a fill: the order is gone
            go.state = 'done'
            self.stats.errors += 1
            self.log(f'error on {st.oid[:8]}: {st.reason}')

    def on_position(self, pos: BrokerdPosition) -> None:
        if pos.symbol == self.mkt.fqme:
            self.position = (pos.size, pos.avg_price)

    async def cancel_all(self, timeout: float = 10.0) -> None:
        """Cancel every order still working and wait for the outcome."""
        self.stopping = True  # a late fill must not place a new order
        live = [oid for oid, go in self.orders.items() if go.state != 'done']
        for oid in live:
            await self.client.cancel(oid)
        self.log(f'cancelling {len(live)} resting orders')
        with trio.move_on_after(timeout):
            while any(self.orders[oid].state != 'done' for oid in live):
                await trio.sleep(0.01)


async def run(
    fqme: str, levels: int, step_ticks: int, size: float, max_fills: int,
    seconds: float,
) -> Stats:
    async with (
        open_feed([fqme]) as feed,
        open_ems(fqme, mode='paper') as (client, trades, _positions, _accts, _dialogs),
    ):
        bot = GridBot(client, feed.mkts[fqme], levels, step_ticks, size)
        # centre the grid on a fresh quote: the market moved while emsd and
        # the paper engine were starting
        while True:
            quote = (await feed.stream.receive()).get(fqme) or {}
            if quote.get('bid') and quote.get('ask'):
                break
        await bot.start((quote['bid'] + quote['ask']) / 2)

        async with trio.open_nursery() as n:

            async def quotes() -> None:
                async for batch in feed.stream:
                    quote = batch.get(fqme)
                    if quote and quote.get('bid') and quote.get('ask'):
                        await bot.on_mid((quote['bid'] + quote['ask']) / 2)

            async def statuses() -> None:
                async for msg in trades:
                    if isinstance(msg, Status):
                        await bot.on_status(msg)
                        if bot.stats.fills >= max_fills:
                            n.cancel_scope.cancel()
                    else:
                        bot.on_position(msg)

            n.start_soon(quotes)
            n.start_soon(statuses)
            await trio.sleep(seconds)
            n.cancel_scope.cancel()

        # keep applying statuses while the cancels are answered
        async with trio.open_nursery() as n:

            async def drain() -> None:
                async for msg in trades:
                    if isinstance(msg, Status):
                        await bot.on_status(msg)
                    else:
                        bot.on_position(msg)

            n.start_soon(drain)
            await bot.cancel_all()
            n.cancel_scope.cancel()

        s = bot.stats
        working = [oid for oid, go in bot.orders.items() if go.state != 'done']
        size_now, avg = bot.position
        bot.log(f'done: {s.fills} fills (net {s.net:+g}), {s.placed} orders placed, '
                f'{s.modified} modified, {s.cancelled} cancelled, {s.errors} errors, '
                f'{len(working)} still working; account position {size_now:g} @ {avg:g}')
        return s


def main() -> None:
    parser = argparse.ArgumentParser(description='a grid bot on the paper engine')
    parser.add_argument('--fqme', default='btcusdt.sim')
    parser.add_argument('--levels', type=int, default=3, help='orders per side')
    parser.add_argument('--step-ticks', type=int, default=20,
                        help='grid spacing in price ticks')
    parser.add_argument('--size', type=float, default=0.01, help='units per order')
    parser.add_argument('--fills', type=int, default=20, help='stop after this many fills')
    parser.add_argument('--seconds', type=float, default=60.0,
                        help='stop after this long')
    args = parser.parse_args()
    trio.run(run, args.fqme.lower(), args.levels, args.step_ticks, args.size,
             args.fills, args.seconds)


if __name__ == '__main__':
    main()
