"""Capture every frame on one interface (run inside a namespace, as root).

    python tests/_sniff.py IFACE OUT_FILE

Raw AF_PACKET socket (no tcpdump needed): appends each frame as is to
OUT_FILE until SIGTERM; prints "ready" once bound.
"""
from __future__ import annotations

import signal
import socket
import sys

ETH_P_ALL = 0x0003


def main(iface: str, out: str) -> None:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(out, 'wb', buffering=0) as f:
        print('ready', flush=True)
        while True:
            f.write(s.recv(65535))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
