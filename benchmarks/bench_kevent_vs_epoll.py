"""kevent() loop events/s against a raw select.epoll loop on the same socketpairs.

Both loops do the same work per event: read the byte that made the fd ready and
write one byte back to its peer, so every fd stays busy (ping-pong).  The two loops
alternate in rounds in one process and the best round of each is compared.
Target: skqueue >= 0.8x raw epoll.
"""

from __future__ import annotations

import argparse
import select
import socket
import time
from collections.abc import Callable

from _common import write_results

import skqueue
from skqueue import EV_ADD, EVFILT_READ, kevent


def make_pairs(n: int) -> list[tuple[socket.socket, socket.socket]]:
    pairs = [socket.socketpair() for _ in range(n)]
    for a, b in pairs:
        a.setblocking(False)
        b.setblocking(False)
    return pairs


def prime(pairs: list[tuple[socket.socket, socket.socket]]) -> dict[int, socket.socket]:
    """Start one byte in flight per pair; map each fd to its peer."""
    peer = {}
    for a, b in pairs:
        peer[a.fileno()] = b
        peer[b.fileno()] = a
        b.send(b"p")
    return peer


def drain(pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    for a, b in pairs:
        for sock in (a, b):
            try:
                while sock.recv(4096):
                    pass
            except BlockingIOError:
                pass


def epoll_loop(pairs: list[tuple[socket.socket, socket.socket]], events: int) -> float:
    peer = prime(pairs)
    ep = select.epoll()
    for fd in peer:
        ep.register(fd, select.EPOLLIN)
    socks = {s.fileno(): s for pair in pairs for s in pair}
    done = 0
    start = time.perf_counter()
    while done < events:
        for fd, _ in ep.poll(-1, 64):
            socks[fd].recv(1)
            peer[fd].send(b"p")
            done += 1
    elapsed = time.perf_counter() - start
    ep.close()
    drain(pairs)
    return done / elapsed


def kevent_loop(pairs: list[tuple[socket.socket, socket.socket]], events: int) -> float:
    peer = prime(pairs)
    kq = skqueue.kqueue()
    socks = {s.fileno(): s for pair in pairs for s in pair}
    kq.control([kevent(fd, EVFILT_READ, EV_ADD) for fd in peer], 0)
    done = 0
    start = time.perf_counter()
    while done < events:
        for ev in kq.control(None, 64):
            socks[ev.ident].recv(1)
            peer[ev.ident].send(b"p")
            done += 1
    elapsed = time.perf_counter() - start
    kq.close()
    drain(pairs)
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pairs = make_pairs(args.pairs)
    loops: dict[str, Callable[[list[tuple[socket.socket, socket.socket]], int], float]] = {
        "epoll": epoll_loop,
        "skqueue": kevent_loop,
    }
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, loop in loops.items():
            rates[name].append(loop(pairs, args.events))
    best = {name: max(values) for name, values in rates.items()}
    ratio = best["skqueue"] / best["epoll"]
    print(f"{'loop':<10}{'best events/s':>16}{'rounds (events/s)':>40}")
    for name, values in rates.items():
        print(f"{name:<10}{best[name]:>16,.0f}   " + " ".join(f"{v:,.0f}" for v in values))
    print(f"skqueue / raw epoll = {ratio:.2f}x (target >= 0.8x)")
    path = write_results(
        "kevent_vs_epoll",
        {"pairs": args.pairs, "events": args.events, "rates": rates, "best": best,
         "ratio": ratio, "target": 0.8},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
