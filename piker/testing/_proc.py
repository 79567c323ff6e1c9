"""Process bookkeeping from Linux /proc (no psutil): the one copy.

The test kit checks that a tree leaves no process behind, the load bench
kills what outlives its tree and samples emsd's memory and CPU, and the
tests look for daemons by their environment: all read the same few
/proc files, here. Elsewhere than Linux every lookup finds nothing.
"""
from __future__ import annotations

import os
import socket


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may
    hold spaces and parens: split after the last ')'), or None."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()
    except OSError:
        return None


def proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, state) of every process."""
    table: dict[int, tuple[int, str]] = {}
    try:
        entries = os.listdir('/proc')
    except OSError:
        return table
    for entry in entries:
        if entry.isdigit() and (fields := _stat_fields(entry)) is not None:
            table[int(entry)] = (int(fields[1]), fields[0])
    return table


def alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != 'Z'


def descendants(root: int) -> set[int]:
    """Live (non-zombie) descendants of process `root`."""
    table = proc_table()
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out: set[int] = set()
    todo = [root]
    while todo:
        for child in kids.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return {p for p in out if table[p][1] != 'Z'}


def children_of(pid: int) -> list[int]:
    """Live direct children of `pid`."""
    return sorted(p for p, (ppid, state) in proc_table().items()
                  if ppid == pid and state != 'Z')


def with_env(key: str, value: str) -> list[int]:
    """Live processes (not this one) whose environment has `key=value`."""
    want = f'{key}={value}'.encode()
    out = []
    for pid in proc_table():
        if pid == os.getpid():
            continue
        try:
            with open(f'/proc/{pid}/environ', 'rb') as f:
                if want in f.read().split(b'\0') and alive(pid):
                    out.append(pid)
        except OSError:
            continue
    return out


def cmdline(pid: int | str) -> str:
    """The command line of `pid`, its arguments joined by spaces ('' if gone)."""
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return ''


def rss_kb(pid: int) -> int:
    """VmRSS of `pid` in kB (0 if it cannot be read)."""
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) `pid` has used so far (0 if unknown)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def port_open(host: str, port: int) -> bool:
    """True if something accepts TCP connections on `host:port`."""
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0
