"""kevent() loop events/s against a raw select.epoll loop on the same socketpairs.

Every loop does the same work per event: read the byte that made the fd ready and
write one byte back to its peer, so every fd stays busy (ping-pong).  The loops
alternate in rounds in one process and the best round of each is compared.
Target: skqueue >= 0.8x raw epoll; with one event per wait (``--pairs 1``) 0.65x.

Reference loops show what kqueue's semantics cost at the least in Python, with
none of skqueue's bookkeeping.  ``no-syscall ceiling`` is raw epoll plus one ``kevent``
object per event and nothing else: the most any kqueue built on select.epoll could
reach if it needed no system call per event.  The two floors are raw epoll plus exactly
the system calls and the event object an exact kevent needs, the two designs of
HARD-PARTS 2:

* ``oneshot floor``: EPOLLONESHOT items; per event FIONREAD (``data``), the
  ``epoll_ctl(MOD)`` re-arm (which also proves the fd still names its file) and
  one ``kevent`` -- skqueue's design;
* ``edge floor``: EPOLLET items; per event FIONREAD, an fstat identity check and one
  ``kevent``, plus the level re-check (FIONREAD) of each delivered fd at the next
  wait.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import socket
import termios
import time
from array import array
from collections.abc import Callable

from _common import c_floor, pure_path, write_results

import skqueue
from skqueue import EV_ADD, EVFILT_READ, kevent

Pairs = list[tuple[socket.socket, socket.socket]]


def make_pairs(n: int) -> Pairs:
    pairs = [socket.socketpair() for _ in range(n)]
    for a, b in pairs:
        a.setblocking(False)
        b.setblocking(False)
    return pairs


def prime(pairs: Pairs) -> dict[int, socket.socket]:
    """Start one byte in flight per pair; map each fd to its peer."""
    peer = {}
    for a, b in pairs:
        peer[a.fileno()] = b
        peer[b.fileno()] = a
        b.send(b"p")
    return peer


def drain(pairs: Pairs) -> None:
    for a, b in pairs:
        for sock in (a, b):
            try:
                while sock.recv(4096):
                    pass
            except BlockingIOError:
                pass


def epoll_loop(pairs: Pairs, events: int) -> float:
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


class Harvester:
    """One way of turning readiness into kevents; ``wait()`` is one kevent() call."""

    def wait(self) -> list[kevent]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Skqueue(Harvester):
    def __init__(self, fds: list[int]) -> None:
        self.kq = skqueue.kqueue()
        self.kq.control([kevent(fd, EVFILT_READ, EV_ADD) for fd in fds], 0)

    def wait(self) -> list[kevent]:
        return self.kq.control(None, 64)

    def close(self) -> None:
        self.kq.close()


class EpollHarvester(Harvester):
    """The reference loops: raw epoll plus what a kevent needs, and nothing more."""

    def __init__(self, fds: list[int], events: int) -> None:
        self.ep = select.epoll()
        for fd in fds:
            self.ep.register(fd, events)
        self.buf = array("i", [0])

    def close(self) -> None:
        self.ep.close()

    def readable(self, fd: int) -> int:
        fcntl.ioctl(fd, termios.FIONREAD, self.buf)
        return self.buf[0]


class Ceiling(EpollHarvester):
    """Level items and an event object: no system call per event."""

    def __init__(self, fds: list[int]) -> None:
        super().__init__(fds, select.EPOLLIN)

    def wait(self) -> list[kevent]:
        return [kevent(fd, EVFILT_READ, 0, 0, 0, None) for fd, _ in self.ep.poll(-1, 64)]


class OneshotFloor(EpollHarvester):
    """FIONREAD for data, the EPOLLONESHOT re-arm as the identity check."""

    ONESHOT = select.EPOLLIN | select.EPOLLONESHOT

    def __init__(self, fds: list[int]) -> None:
        super().__init__(fds, self.ONESHOT)

    def wait(self) -> list[kevent]:
        out = []
        for fd, _ in self.ep.poll(-1, 64):
            data = self.readable(fd)
            self.ep.modify(fd, self.ONESHOT)
            out.append(kevent(fd, EVFILT_READ, 0, 0, data, None))
        return out


class EdgeFloor(EpollHarvester):
    """EPOLLET items, FIONREAD, an fstat identity check, and the level re-check."""

    def __init__(self, fds: list[int]) -> None:
        super().__init__(fds, select.EPOLLIN | select.EPOLLET)
        self.identity = {}
        for fd in fds:
            st = os.fstat(fd)
            self.identity[fd] = (st.st_dev, st.st_ino)
        self.delivered: list[int] = []

    def wait(self) -> list[kevent]:
        # Level semantics on edge items: what was delivered and is still readable
        # is ready again without a new edge.
        ready = [fd for fd in self.delivered if self.readable(fd)]
        ready += [fd for fd, _ in self.ep.poll(0 if ready else -1, 64)]
        out = []
        for fd in ready:
            data = self.readable(fd)
            st = os.fstat(fd)
            if data and (st.st_dev, st.st_ino) == self.identity[fd]:
                out.append(kevent(fd, EVFILT_READ, 0, 0, data, None))
        self.delivered = [ev.ident for ev in out]
        return out


def serve(harvester: Callable[[list[int]], Harvester]) -> Callable[[Pairs, int], float]:
    """The loop every kevent producer runs: one wait, then the raw loop's work per event."""

    def loop(pairs: Pairs, events: int) -> float:
        peer = prime(pairs)
        socks = {s.fileno(): s for pair in pairs for s in pair}
        source = harvester(list(peer))
        wait = source.wait
        done = 0
        start = time.perf_counter()
        while done < events:
            for ev in wait():
                socks[ev.ident].recv(1)
                peer[ev.ident].send(b"p")
                done += 1
        elapsed = time.perf_counter() - start
        source.close()
        drain(pairs)
        return done / elapsed

    return loop


def pure(loop: Callable[[Pairs, int], float]) -> Callable[[Pairs, int], float]:
    """loop on skqueue's pure-Python path."""

    def on_pure_path(pairs: Pairs, events: int) -> float:
        with pure_path():
            return loop(pairs, events)

    return on_pure_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pairs = make_pairs(args.pairs)
    loops: dict[str, Callable[[Pairs, int], float]] = {
        "epoll": epoll_loop,
        "no-syscall ceiling": serve(Ceiling),
        "oneshot floor": serve(OneshotFloor),
        "edge floor": serve(EdgeFloor),
        "skqueue": serve(Skqueue),
    }
    if skqueue.accelerated:  # both paths, side by side
        loops["skqueue, pure"] = pure(serve(Skqueue))
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, loop in loops.items():
            rates[name].append(loop(pairs, args.events))
    best = {name: max(values) for name, values in rates.items()}
    ratios = {name: best[name] / best["epoll"] for name in loops}
    print(f"{'loop':<19}{'best events/s':>14}{'vs epoll':>10}   rounds (events/s)")
    for name, values in rates.items():
        print(
            f"{name:<19}{best[name]:>14,.0f}{ratios[name]:>9.2f}x   "
            + " ".join(f"{v:,.0f}" for v in values)
        )
    path_name = "accelerated" if skqueue.accelerated else "pure Python"
    target = 0.65 if args.pairs == 1 else 0.8
    print(
        f"skqueue ({path_name}) / raw epoll = {ratios['skqueue']:.2f}x (target >= {target}x); "
        f"skqueue / oneshot floor = {best['skqueue'] / best['oneshot floor']:.2f}x"
    )
    # Per-event costs in microseconds: what the target leaves beyond raw epoll, and
    # what the two system calls of an exact kevent (data + re-arm/identity) cost.
    per_event_us = {name: 1e6 / rate for name, rate in best.items()}
    budget_us = per_event_us["epoll"] / target - per_event_us["epoll"]
    syscalls_us = per_event_us["oneshot floor"] - per_event_us["no-syscall ceiling"]
    print(
        f"{target}x leaves {budget_us:.2f} us per event beyond raw epoll; the two system "
        f"calls of an exact kevent cost {syscalls_us:.2f} us per event from Python"
    )
    with c_floor("syscall_cost") as syscall_cost:
        c_us = None if syscall_cost is None else syscall_cost()
    c_ceiling = None
    if c_us is not None:
        c_ceiling = per_event_us["epoll"] / (per_event_us["epoll"] + c_us)
        print(
            f"made from C they cost {c_us:.2f} us: with nothing else per event, an exact "
            f"kevent loop reaches at most {c_ceiling:.2f}x raw epoll here"
        )
    path = write_results(
        "kevent_vs_epoll",
        {
            "pairs": args.pairs,
            "events": args.events,
            "rates": rates,
            "best": best,
            "ratios": ratios,
            "ratio": ratios["skqueue"],
            "target": target,
            "per_event_us": per_event_us,
            "budget_us_at_target": budget_us,
            "exact_syscalls_us": syscalls_us,
            "accelerated": skqueue.accelerated,
            "ratio_pure": ratios.get("skqueue, pure", ratios["skqueue"]),
            "exact_syscalls_c_us": c_us,
            "ceiling_with_c_syscalls": c_ceiling,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
