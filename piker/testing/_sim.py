"""Paper-trading simulations in a few lines: boot a private service tree,
open EMS sessions in paper mode and take the wheel of the sim market.

```python
def test_buy(paper_sim):
    async def main(sim):
        await sim.push('btcusdt.sim', bid=99, ask=100, bsize=5, asize=5)
        ems = await sim.open_ems('btcusdt.sim')
        oid = await ems.place('buy', 100.0, 1.0)
        await ems.wait(oid, 'closed')
        assert sim.account().get('btcusdt.sim').size == 1.0

    paper_sim(main)
```

`run_sim(async_fn)` (the `paper_sim` fixture binds it to the test's private
config dir and registry port) runs `async_fn(sim)` in a fresh `trio.run`
under `maybe_open_pikerd()`, then tears everything down - sessions first
(so emsd sees clean disconnects), then market controls, then the tree -
and checks that every child process it saw is gone.

Every EMS session and market control runs in a task of its own, so they
can be opened and closed in any order (a client that disconnects while
another keeps trading is one `await ems.close()`).
"""
from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import tomli_w
import trio

from ..accounting import Account, TransactionLedger
from ..clearing._client import EMSError, OrderClient, open_ems, wait_for_status
from ..clearing._messages import BrokerdPosition, Status
from ..service import PeerLost
from ._proc import alive, descendants

__all__ = ['EMSSession', 'LeakedProcesses', 'PaperSim', 'run_sim']

Msg = Status | BrokerdPosition


class LeakedProcesses(AssertionError):
    """Child processes of a simulation outlived its teardown (now killed)."""


class EMSSession:
    """One `open_ems()` session, with every message it received recorded.

    Unpacks like `open_ems()`'s tuple: `client, trades, positions,
    accounts, dialogs = await sim.open_ems(fqme)`. With `record=True` (the
    default) a task drains `trades` into `msgs`, so `wait()` can look back
    as well as forward and `resps(oid)` gives a dialog's whole story; with
    `record=False` read `trades` yourself (e.g. with `sim.wait(trades, ...)`).
    """

    def __init__(
        self,
        fqme: str,
        client: OrderClient,
        trades: trio.MemoryReceiveChannel,
        positions: dict[tuple[str, str], list[BrokerdPosition]],
        accounts: list[str],
        dialogs: dict[str, Status],
    ) -> None:
        self.fqme = fqme
        self.client = client
        self.trades = trades
        self.positions = positions
        self.accounts = accounts
        self.dialogs = dialogs
        # the handshake's view, before any message changed the live tables
        self.initial_positions = {k: list(v) for k, v in positions.items()}
        self.initial_dialogs = dict(dialogs)
        self.msgs: list[Msg] = []
        self._changed = trio.Event()
        self._closing = trio.Event()
        self._closed = trio.Event()
        self.ended = False  # the trades stream ended (emsd went away)
        self.lost: Exception | None = None  # the session died with emsd: why

    def __iter__(self) -> Iterator[Any]:
        return iter((self.client, self.trades, self.positions, self.accounts, self.dialogs))

    # -- recording ------------------------------------------------------------

    async def _record(self) -> None:
        try:
            async for msg in self.trades:
                self.msgs.append(msg)
                self._changed.set()
                self._changed = trio.Event()
        finally:
            self.ended = True
            self._changed.set()

    def statuses(self, oid: str) -> list[Status]:
        """Every Status of `oid` received so far, in order."""
        return [m for m in self.msgs if isinstance(m, Status) and m.oid == oid]

    def resps(self, oid: str) -> list[str]:
        """The `resp` of every Status of `oid` received so far."""
        return [s.resp for s in self.statuses(oid)]

    def mark(self) -> int:
        """A position in `msgs`: pass it as `since=` to wait for newer ones."""
        return len(self.msgs)

    async def wait_for(
        self,
        pred: Callable[[Msg], bool],
        timeout: float = 5.0,
        since: int = 0,
    ) -> Msg:
        """The first recorded message from `since` on that satisfies `pred`."""
        i = since
        with trio.fail_after(timeout):
            while True:
                while i < len(self.msgs):
                    msg = self.msgs[i]
                    i += 1
                    if pred(msg):
                        return msg
                if self.ended:
                    raise EMSError('the trades stream ended while waiting')
                await self._changed.wait()

    async def until(self, cond: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until `cond()` holds, re-checking it after every message."""
        with trio.fail_after(timeout):
            while not cond():
                if self.ended:
                    raise EMSError('the trades stream ended while waiting')
                await self._changed.wait()

    async def wait(
        self,
        oid: str,
        resps: str | set[str] | frozenset[str] | tuple[str, ...],
        timeout: float = 5.0,
        since: int = 0,
    ) -> Status:
        """The first Status of `oid` with a resp in `resps` (from `since` on)."""
        want = {resps} if isinstance(resps, str) else set(resps)
        msg = await self.wait_for(
            lambda m: isinstance(m, Status) and m.oid == oid and m.resp in want,
            timeout=timeout, since=since,
        )
        assert isinstance(msg, Status)
        return msg

    async def wait_position(
        self,
        fqme: str,
        size: float,
        account: str = 'paper',
        timeout: float = 5.0,
        since: int = 0,
    ) -> BrokerdPosition:
        """The first position update of `fqme`/`account` with this size."""
        msg = await self.wait_for(
            lambda m: (
                isinstance(m, BrokerdPosition) and m.symbol == fqme
                and m.account == account and math.isclose(m.size, size, abs_tol=1e-9)
            ),
            timeout=timeout, since=since,
        )
        assert isinstance(msg, BrokerdPosition)
        return msg

    def position(self, fqme: str, broker: str = 'sim', account: str = 'paper') -> float:
        """This session's current view of the position size in `fqme`."""
        for pos in self.positions.get((broker, account), []):
            if pos.symbol == fqme:
                return pos.size
        return 0.0

    # -- orders ---------------------------------------------------------------

    async def place(
        self,
        action: str,
        price: float,
        size: float,
        exec_mode: str = 'live',
        account: str = 'paper',
        symbol: str | None = None,
        **fields: Any,
    ) -> str:
        """Build and send an order (see `OrderClient.mk_order`, `fields`: its
        type, trail, tif...); return its oid."""
        order = self.client.mk_order(
            action, price, size, exec_mode=exec_mode, account=account,  # type: ignore[arg-type]
            symbol=symbol, **fields,
        )
        return await self.client.send(order)

    def send_raw(self, msg: Any) -> None:
        """Put `msg` on the wire as is, skipping client-side validation.

        For testing how emsd treats malformed or hostile input.
        """
        self.client._send_ch.send_nowait(msg)

    # -- lifetime ---------------------------------------------------------------

    async def close(self) -> None:
        """Disconnect this client from emsd (its orders keep working)."""
        self._closing.set()
        await self._closed.wait()


class PaperSim:
    """The handle `run_sim()` passes to a simulation.

    Offers EMS sessions (`open_ems`), market control (`market`/`push`),
    waiting (`wait`), the paper venue's records on disk (`ledger`,
    `account`) and its order audit (`venue_orders`), and crash tests:
    `kill(name)` SIGKILLs a daemon and returns once pikerd respawned it,
    `ems_state()` / `until_ems(cond)` watch emsd recover, `flush_journal()`
    waits for its journal to hold everything published. A market
    control or session whose daemon died is marked broken/ended (the
    next `market()` opens a new control) instead of failing the run.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        services: Any,
        config_dir: Path,
        loglevel: str | None,
    ) -> None:
        self._n = nursery
        self.services = services  # pikerd's `Services` (None if we joined one)
        self.config_dir = config_dir
        self.loglevel = loglevel
        self.sessions: list[EMSSession] = []
        self._controls: dict[str, Any] = {}
        self._closers: list[trio.Event] = []
        self._done: list[trio.Event] = []

    # -- EMS sessions -------------------------------------------------------

    async def open_ems(
        self,
        fqme: str = 'btcusdt.sim',
        mode: str = 'paper',
        record: bool = True,
    ) -> EMSSession:
        """Open a new order client (`open_ems()`) in a task of its own."""
        return await self._n.start(self._run_session, fqme, mode, record)

    async def _run_session(
        self,
        fqme: str,
        mode: str,
        record: bool,
        task_status: trio.TaskStatus[EMSSession] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        sess: EMSSession | None = None
        try:
            async with open_ems(fqme, mode=mode, loglevel=self.loglevel) as (  # type: ignore[arg-type]
                client, trades, positions, accounts, dialogs,
            ):
                sess = EMSSession(fqme, client, trades, positions, accounts, dialogs)
                self.sessions.append(sess)
                async with trio.open_nursery() as n:
                    if record:
                        n.start_soon(sess._record)
                    task_status.started(sess)
                    await sess._closing.wait()
                    n.cancel_scope.cancel()
        except PeerLost as err:
            if sess is None:
                raise
            # emsd died under the session (a test killing it): the session
            # is over, the simulation goes on; `sess.lost` says why
            sess.lost = err
        finally:
            # only once open_ems() has fully exited: emsd saw the disconnect
            if sess is not None:
                sess.ended = True
                sess._changed.set()
                sess._closed.set()

    # -- the market -----------------------------------------------------------

    async def market(self, fqme: str = 'btcusdt.sim') -> Any:
        """The `MarketControl` of sim market `fqme` (opened once, kept)."""
        fqme = fqme.lower()
        ctl = self._controls.get(fqme)
        if ctl is None or ctl.broken:
            # none yet, or its brokerd died (a test killed it): a new one
            ctl = self._controls[fqme] = await self._n.start(self._run_control, fqme)
        return ctl

    async def _run_control(
        self,
        fqme: str,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        from ..brokers.sim import open_market_control
        closing, done = trio.Event(), trio.Event()
        self._closers.append(closing)
        self._done.append(done)
        ctl = None
        try:
            # leave the walk paused on exit: the tree is going down anyway
            async with open_market_control(
                fqme, loglevel=self.loglevel, resume_on_exit=False,
            ) as ctl:
                task_status.started(ctl)
                await closing.wait()
        except Exception:
            if ctl is None:
                raise
            # its brokerd died under it (a test killing daemons): mark it
            # broken; the next `market()` opens a new one
            ctl.broken = True
        finally:
            done.set()

    async def push(self, fqme: str = 'btcusdt.sim', **quote: float) -> dict[str, Any]:
        """Emit exactly `quote` on `fqme` (pausing its random walk)."""
        ctl = await self.market(fqme)
        return await ctl.push(**quote)

    # -- waiting ----------------------------------------------------------------

    async def wait(
        self,
        trades: EMSSession | trio.MemoryReceiveChannel,
        oid: str,
        resps: str | set[str],
        timeout: float = 5.0,
    ) -> Status:
        """Wait for `oid` to report one of `resps` on a session or raw channel."""
        if isinstance(trades, EMSSession):
            return await trades.wait(oid, resps, timeout=timeout)
        return await wait_for_status(trades, oid, resps, timeout=timeout)

    # -- the paper venue's records ------------------------------------------------

    def ledger(self, broker: str = 'sim', account: str = 'paper') -> TransactionLedger:
        """The paper trade ledger, freshly read from disk."""
        return TransactionLedger.load(broker, account)

    def account(self, broker: str = 'sim', account: str = 'paper') -> Account:
        """The paper positions table, freshly read from disk."""
        return Account.load(broker, account)

    def ledger_size(self, fqme: str, broker: str = 'sim', account: str = 'paper') -> float:
        """The net size of `fqme` summed over the ledger's fills."""
        return sum(t.size for t in self.ledger(broker, account).iter_txns(fqme))

    def position_size(self, fqme: str, broker: str = 'sim', account: str = 'paper') -> float:
        """The size of `fqme` in the positions file (0 when flat/absent)."""
        pos = self.account(broker, account).get(fqme)
        return pos.size if pos is not None else 0.0

    async def venue_orders(self, broker: str = 'sim') -> dict[str, list[str]]:
        """oid -> reqids of every order the paper venue of `broker` created."""
        from ..clearing._daemons import PAPERBOI
        from ..clearing._paper_engine import paper_audit
        from ..service import find_service
        async with find_service(PAPERBOI.name(broker)) as portal:
            if portal is None:
                return {}
            return await portal.run(paper_audit, broker=broker)

    # -- daemons --------------------------------------------------------------

    async def kill(self, name: str, timeout: float = 20.0) -> int:
        """SIGKILL daemon `name`; return the pid pikerd respawned it with.

        Returns once the new process runs (its start-up hook, if any, has
        run); what it then resumes (emsd's restore, a venue's report) may
        still be under way: see `ems_state()`.
        """
        from ..service import list_services
        info = (await list_services()).get(name)
        if info is None or info.pid is None:
            raise LookupError(f'no daemon {name!r} with a known pid to kill')
        old = info.pid
        os.kill(old, signal.SIGKILL)
        with trio.fail_after(timeout):
            while True:
                info = (await list_services()).get(name)
                if (info is not None and info.pid not in (None, old)
                        and info.state == 'running'):
                    return info.pid
                await trio.sleep(0.02)

    async def ems_state(self) -> dict[str, Any]:
        """emsd's state (`piker.clearing._ems_admin.ems_state`); {} if none."""
        from ..clearing._daemons import EMSD
        from ..clearing._ems_admin import ems_state
        from ..service import find_service
        async with find_service(EMSD.name()) as portal:
            if portal is None:
                return {}
            return await portal.run(ems_state)

    async def flush_journal(self) -> None:
        """Wait until emsd's journal holds everything it has published
        (it commits a moment behind, `JournalWriter`): read the db after."""
        from ..clearing._daemons import EMSD
        from ..clearing._ems_admin import flush_journal
        from ..service import find_service
        async with find_service(EMSD.name()) as portal:
            if portal is not None:
                await portal.run(flush_journal)

    async def until_ems(
        self,
        cond: Callable[[dict[str, Any]], bool],
        timeout: float = 10.0,
        poll: float = 0.02,
    ) -> dict[str, Any]:
        """Poll `ems_state()` until `cond(state)` holds; return that state."""
        with trio.fail_after(timeout):
            while True:
                try:
                    state = await self.ems_state()
                except Exception:  # emsd going down or not up yet: poll on
                    state = {}
                if state and cond(state):
                    return state
                await trio.sleep(poll)

    # -- processes --------------------------------------------------------------

    def child_pids(self) -> set[int]:
        """Every live descendant process of this one."""
        return descendants(os.getpid())

    async def aclose(self) -> None:
        """Tear down in dependency order: clients first, then each daemon
        before the daemons it consumes (emsd, paperboi, brokerd), so no
        daemon ever sees its upstream vanish under it."""
        with trio.move_on_after(10) as cs:
            cs.shield = True
            for sess in list(self.sessions):
                await sess.close()
            for ev in self._closers:
                ev.set()
            for ev in self._done:
                await ev.wait()
            if self.services is not None:
                await self.services.stop_all()
        self._n.cancel_scope.cancel()


# -- process bookkeeping (`_proc`: Linux /proc; elsewhere the check is skipped)

def check_gone(pids: set[int], timeout: float = 5.0) -> None:
    """Raise `LeakedProcesses` (after killing them) if any of `pids` lives on."""
    deadline = time.monotonic() + timeout
    left = set(pids)
    while left and time.monotonic() < deadline:
        left = {p for p in left if alive(p)}
        if left:
            time.sleep(0.02)
    if left:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        raise LeakedProcesses(f'processes outlived the simulation (killed): {sorted(left)}')


# -- the runner ---------------------------------------------------------------

def _write_toml(path: Path, data: dict[str, Any] | str | None) -> None:
    if data is None:
        return
    text = data if isinstance(data, str) else tomli_w.dumps(data)
    path.write_text(text)


def run_sim(
    async_fn: Callable[[PaperSim], Awaitable[Any]],
    *,
    brokers: dict[str, Any] | str | None = None,
    conf: dict[str, Any] | str | None = None,
    loglevel: str | None = None,
    timeout: float = 60.0,
    check_leaks: bool = True,
) -> Any:
    """Run `await async_fn(sim)` in a fresh service tree; return its result.

    Needs an isolated environment (`PIKER_CONFIG_DIR` and
    `PIKER_REGISTRY_ADDR` set, as the `piker_env` fixture does) so it never
    touches a user's files or daemons. `brokers` / `conf` (dicts or TOML
    text) are written to `brokers.toml` / `conf.toml` first, e.g.
    `brokers={'sim': {'paper': {'latency_ms': 200}}}`. The simulation is
    cancelled after `timeout` seconds (`trio.TooSlowError`). With
    `check_leaks`, raises `LeakedProcesses` if any child process survives
    the teardown.
    """
    confdir = isolated_config_dir('run_sim()')
    _write_toml(confdir / 'brokers.toml', brokers)
    _write_toml(confdir / 'conf.toml', conf)
    result, pids = trio.run(
        run_tree, async_fn, confdir, loglevel, timeout,
    )
    if check_leaks:
        check_gone(pids)
    return result


def isolated_config_dir(who: str) -> Path:
    """The test's private config dir; refuses to run without one."""
    from ..config import ENV_CONFIG_DIR, ENV_REGISTRY_ADDR, get_config_dir

    missing = [v for v in (ENV_CONFIG_DIR, ENV_REGISTRY_ADDR) if not os.environ.get(v)]
    if missing:
        raise RuntimeError(
            f'{who} needs an isolated piker environment ({", ".join(missing)} '
            'unset): use the `paper_sim` / `piker_env` fixtures'
        )
    confdir = get_config_dir()
    confdir.mkdir(parents=True, exist_ok=True)
    return confdir


async def run_tree(
    async_fn: Callable[[PaperSim], Awaitable[Any]],
    confdir: Path,
    loglevel: str | None,
    timeout: float,
) -> tuple[Any, set[int]]:
    """Inside a trio run: boot the tree, `await async_fn(sim)` (cancelled
    after `timeout`), tear down; return its result and the child pids seen."""
    from ..service import maybe_open_pikerd

    pids: set[int] = set()
    async with maybe_open_pikerd(loglevel=loglevel) as services:
        async with trio.open_nursery() as n:
            sim = PaperSim(n, services, confdir, loglevel)
            try:
                with trio.fail_after(timeout):
                    result = await async_fn(sim)
            finally:
                pids = sim.child_pids()
                await sim.aclose()
    return result, pids
