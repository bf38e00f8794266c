"""What serving a connection on another core than its last request costs: the
cache-cold penalty that CPU and queue affinity exist to avoid.

Two threads, pinned to two different CPUs, serve the same connections: socketpairs
carrying the harness's frames, each with its own ``Framer``.  Serving one request is
what a server's worker does for it outside the kevent() call: ``recv`` the frame,
``Framer.feed``, ``decode``, ``send`` the reply, then the next request's bytes are
written by whoever served this one.  The timed serve always runs on the first CPU; in a
*warm* trial the connection's previous request was served there too, in a *cold* one on
the other CPU, so its socket buffers, kernel socket state and Python objects were last
written by the other core.  Both trials have the same thread handovers (in a warm trial
the other thread serves a different connection meanwhile), and they are interleaved in
random order.  The figure is the difference of the medians, with the spread of that
difference over rounds.  Run it on both interpreters; the simulator's ``cold`` cost
comes from it (``skqbench.sim.costs``).
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable

from _common import write_results

from skqbench.protocol import Framer, Request, decode, encode

Task = Callable[[], None]


class Pinned:
    """A thread pinned to one CPU that runs the tasks it is given, one at a time."""

    def __init__(self, cpu: int) -> None:
        self.tasks: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, args=(cpu,), daemon=True)
        self.thread.start()

    def _run(self, cpu: int) -> None:
        os.sched_setaffinity(0, {cpu})
        while (task := self.tasks.get()) is not None:
            task()
            self.done.put(0)

    def run(self, task: Task) -> None:
        self.tasks.put(task)
        if self.done.get(timeout=10) != 0:
            raise SystemExit("a pinned thread hung")

    def stop(self) -> None:
        self.tasks.put(None)
        self.thread.join(10)


class Conn:
    """One connection: the server's end, the client's end and the server's framer."""

    def __init__(self, rid: int) -> None:
        self.server, self.client = socket.socketpair()
        self.framer = Framer()
        self.rid = rid
        self.took = 0  # ns, the last serve's
        self.client.sendall(encode(Request(0, rid, 0)))

    def serve(self) -> None:
        """One request, as a worker serves it (its time in ``took``); then the next
        request's bytes, written by the same thread (untimed)."""
        t0 = time.perf_counter_ns()
        data = self.server.recv(4096)
        (frame,) = self.framer.feed(data)
        req = decode(frame)
        self.server.send(frame)
        self.took = time.perf_counter_ns() - t0
        self.client.recv(4096)
        self.rid = req.request_id + 1
        self.client.sendall(encode(Request(0, self.rid, 0)))


def measure(conns: list[Conn], trials: int, rng: random.Random) -> tuple[float, float]:
    """Median warm and cold serve times (ns) over one round of interleaved trials."""
    cpus = sorted(os.sched_getaffinity(0))[:2]
    here, there = Pinned(cpus[0]), Pinned(cpus[1])
    timed: dict[bool, list[int]] = {False: [], True: []}
    try:
        for _ in range(trials):
            cold = rng.random() < 0.5
            conn, other = rng.sample(conns, 2)
            # The previous request: on the other CPU (cold) or here (warm), with the
            # other thread busy on another connection, so both see the same handovers.
            here.run(conn.serve if not cold else other.serve)
            there.run(conn.serve if cold else other.serve)
            here.run(conn.serve)
            timed[cold].append(conn.took)
    finally:
        here.stop()
        there.stop()
    return statistics.median(timed[False]), statistics.median(timed[True])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--trials", type=int, default=4000, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs")
    conns = [Conn(i * 1000) for i in range(args.connections)]
    rng = random.Random(1)
    rounds = []
    for r in range(args.rounds):
        warm, cold = measure(conns, args.trials, rng)
        rounds.append({"warm_ns": warm, "cold_ns": cold, "penalty_ns": cold - warm})
        print(f"round {r + 1}: warm {warm / 1e3:.2f} us, cold {cold / 1e3:.2f} us")
    penalties = [r["penalty_ns"] for r in rounds]
    warm = statistics.median(r["warm_ns"] for r in rounds)
    penalty = statistics.median(penalties)
    print(
        f"cache-cold penalty per request: {penalty / 1e3:.2f} us "
        f"({min(penalties) / 1e3:.2f}..{max(penalties) / 1e3:.2f} over {args.rounds} rounds), "
        f"{penalty / warm:.0%} of a warm serve ({warm / 1e3:.2f} us); "
        f"python {sys.version.split()[0]}"
    )
    result = {"connections": args.connections, "trials": args.trials, "rounds": rounds}
    result |= {"penalty_ns": penalty, "warm_ns": warm}
    print(f"wrote {write_results('cache_cold', result)}")
    for conn in conns:
        conn.server.close()
        conn.client.close()


if __name__ == "__main__":
    main()
