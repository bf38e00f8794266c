"""Open-loop load generator: requests at scheduled times, latency from the schedule.

Each generator process owns a share of the connections and an independent arrival
process at its share of the rate.  A request is sent at its scheduled time, or as soon
as possible after it if the generator is late; either way its latency is taken from the
*scheduled* time, so a stalled generator or server cannot hide queueing (no coordinated
omission), and how late sends were is reported (``send_lag``) so that a saturated
generator is visible rather than silently lowering the load.  Latencies go into an
HdrHistogram per process; the histograms are merged.

Requests in flight when the run ends are awaited for ``drain_s``; those never answered
are recorded with the latency they had reached and counted as ``timeouts``.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import random
import select
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from skqbench.osutil import child_process_setup, epoll_wait_ns, precise_timer_slack
from skqbench.protocol import FRAME, FRAME_SIZE, MAGIC, MAX_SERVICE_NS
from skqbench.servers.base import LOOPBACK
from skqbench.service import parse_dist

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

ARRIVALS = ("poisson", "fixed", "pareto")
# mutilate's "fb_ia" inter-arrival: generalized Pareto, shape 0.154971 (scale 16.0292 us
# there); only the shape is kept, the scale is set so that the mean matches the rate.
FB_IA_SHAPE = 0.154971
HIST_MAX_NS = 3600 * 1_000_000_000
HIST_DIGITS = 3
RUN_SHIFT = 40  # request ids carry the run number above this bit
START_DELAY_NS = 50_000_000  # from "all connected" to the first scheduled send
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LoadSpec:
    """One load point.  ``rate`` is the offered load in requests/s over all processes."""

    port: int
    rate: float
    duration_s: float = 2.0
    warmup_s: float = 0.3
    drain_s: float = 1.0
    connections: int = 100
    arrival: str = "poisson"
    dist: str = "classes:150us"
    seed: int = 1

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.duration_s <= 0 or self.warmup_s < 0 or self.drain_s < 0:
            raise ValueError("rate and duration must be positive, warmup and drain >= 0")
        if self.connections < 1:
            raise ValueError("need at least one connection")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"unknown arrival {self.arrival!r}; choose from {', '.join(ARRIVALS)}")
        parse_dist(self.dist)


@dataclass
class LoadResult:
    """A measured point; latencies in microseconds, rates in requests/s."""

    offered: float
    scheduled: float  # the rate the arrival process actually drew in the window
    achieved: float
    sent: int
    received: int
    timeouts: int
    errors: int
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float
    mean_us: float
    # from the actual send instead of the schedule: what a closed-loop or C tool such as
    # sockperf reports; the difference is the generator's own lateness
    from_send_p50_us: float
    from_send_p99_us: float
    send_lag_p99_us: float
    send_lag_max_us: float
    histogram: str  # HdrHistogram of latencies in ns, base64 (HdrHistogram.decode)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def interarrival(kind: str, rate: float, rng: random.Random) -> Callable[[], float]:
    """A function drawing successive inter-arrival gaps in ns for ``rate`` per second."""
    mean_ns = 1e9 / rate
    if kind == "poisson":
        return lambda: rng.expovariate(1.0 / mean_ns)
    if kind == "fixed":
        return lambda: mean_ns
    if kind == "pareto":
        shape = FB_IA_SHAPE
        scale = mean_ns * (1.0 - shape)  # mean of a GPD at loc 0 is scale / (1 - shape)
        return lambda: scale * ((1.0 - rng.random()) ** -shape - 1.0) / shape
    raise ValueError(f"unknown arrival {kind!r}")


class _Connections:
    """One generator process's sockets; kept across runs against the same server so a
    sweep sees the same connection-to-worker placement at every load."""

    def __init__(self, port: int, indexes: list[int]) -> None:
        self.port = port
        self.indexes = indexes
        self.socks: list[socket.socket] = []
        try:
            for _ in indexes:
                sock = socket.create_connection((LOOPBACK, port), timeout=CONNECT_TIMEOUT_S)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(False)
                self.socks.append(sock)
        except OSError:
            self.close()
            raise
        self.broken = False

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def _new_hist() -> HdrHistogram:
    """hdrh is imported here, not at the top: it is in the bench extra, and the
    ``skqueue`` command must start (and say so) without it."""
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(1, HIST_MAX_NS, HIST_DIGITS)


def _generate(
    spec: LoadSpec,
    conns: _Connections,
    share: float,
    run: int,
    start_ns: int,
    rng: random.Random,
    mults: list[float],
) -> dict[str, Any]:
    """The open-loop send/receive loop of one process; returns raw counts and histograms."""
    dist = parse_dist(spec.dist)
    gap = interarrival(spec.arrival, spec.rate * share, rng)
    socks = conns.socks
    n = len(socks)
    ep = select.epoll()
    by_fd = {s.fileno(): i for i, s in enumerate(socks)}
    for fd in by_fd:
        ep.register(fd, select.EPOLLIN)
    partial = [b""] * n
    alive = [True] * n
    hist, lag, from_send = _new_hist(), _new_hist(), _new_hist()
    pending: dict[int, tuple[int, int]] = {}  # request id -> (scheduled, actually sent)
    measure_ns = start_ns + round(spec.warmup_s * 1e9)
    end_ns = measure_ns + round(spec.duration_s * 1e9)
    drain_end_ns = end_ns + round(spec.drain_s * 1e9)
    run_tag = run << RUN_SHIFT
    sent = received = in_window = errors = seq = 0
    next_ns = start_ns + gap()
    pack, unpack, now_ns = FRAME.pack, FRAME.iter_unpack, time.monotonic_ns
    while True:
        now = now_ns()
        while next_ns <= now and next_ns < end_ns:
            sched = int(next_ns)
            i = rng.randrange(n)
            service = min(dist.sample_ns(rng, mults[i]), MAX_SERVICE_NS)
            rid = run_tag | seq
            seq += 1
            measured = sched >= measure_ns
            if alive[i]:
                try:
                    ok = socks[i].send(pack(MAGIC, service, rid, sched)) == FRAME_SIZE
                except OSError:
                    ok = False
                if not ok:  # the stream is now misframed: give the connection up
                    alive[i] = False
                    conns.broken = True
            if measured:
                sent += 1
                sent_at = now_ns()
                lag.record_value(max(sent_at - sched, 1))
                if alive[i]:
                    pending[rid] = (sched, sent_at)
                else:
                    errors += 1
            next_ns += gap()
        if next_ns >= end_ns and (not pending or now >= drain_end_ns):
            break
        wake = int(next_ns) if next_ns < end_ns else drain_end_ns
        if wake > now:
            epoll_wait_ns(ep.fileno(), wake - now)
        for fd, _ in ep.poll(0):
            i = by_fd[fd]
            try:
                data = socks[i].recv(65536)
            except OSError:
                data = b""
            now = now_ns()
            if not data:
                ep.unregister(fd)
                alive[i] = False
                conns.broken = True
                continue
            if partial[i]:
                data = partial[i] + data
            cut = len(data) - len(data) % FRAME_SIZE
            partial[i] = data[cut:]
            for magic, _, rid, sched in unpack(data[:cut]):
                if magic != MAGIC:
                    errors += 1
                elif (times := pending.pop(rid, None)) is not None:
                    hist.record_value(max(now - sched, 1))
                    from_send.record_value(max(now - times[1], 1))
                    received += 1
                if measure_ns <= now < end_ns and rid >> RUN_SHIFT == run:
                    in_window += 1
    final = now_ns()
    for sched, sent_at in pending.values():
        hist.record_value(max(final - sched, 1))
        from_send.record_value(max(final - sent_at, 1))
    ep.close()
    return {
        "sent": sent,
        "received": received,
        "in_window": in_window,
        "timeouts": len(pending),
        "errors": errors,
        "hist": hist.encode(),
        "lag": lag.encode(),
        "from_send": from_send.encode(),
    }


def _worker_main(index: int, processes: int, pipe: Pipe) -> None:
    """A generator process: connect when given a spec, run when given the start time."""
    child_process_setup()
    precise_timer_slack()
    conns: _Connections | None = None
    while True:
        msg = pipe.recv()
        if msg is None:
            break
        spec, run = msg
        indexes = list(range(index, spec.connections, processes))
        try:
            if conns is None or conns.broken or (conns.port, conns.indexes) != (spec.port, indexes):
                if conns is not None:
                    conns.close()
                conns = None
                conns = _Connections(spec.port, indexes)
        except OSError as exc:
            pipe.send(("error", f"generator {index} cannot connect to port {spec.port}: {exc}"))
            continue
        dist = parse_dist(spec.dist)
        all_mults = dist.connection_multipliers(spec.connections, random.Random(spec.seed))
        mults = [all_mults[i] for i in indexes]
        rng = random.Random(f"{spec.seed}/{index}/{run}")
        pipe.send(("connected", None))
        start_ns = pipe.recv()
        share = len(indexes) / spec.connections
        try:
            pipe.send(("done", _generate(spec, conns, share, run, start_ns, rng, mults)))
        except Exception as exc:  # report, do not die: the parent is waiting for an answer
            pipe.send(("error", f"generator {index} failed: {type(exc).__name__}: {exc}"))


def _us(ns: float) -> float:
    return round(ns / 1000.0, 1)


class LoadGenerator:
    """Persistent generator processes (started once, reused for every point)."""

    def __init__(self, processes: int = 1) -> None:
        if processes < 1:
            raise ValueError("need at least one generator process")
        ctx = mp.get_context("spawn")
        self._workers: list[tuple[BaseProcess, Pipe]] = []
        for i in range(processes):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main, args=(i, processes, theirs), name=f"loadgen-{i}", daemon=True
            )
            proc.start()
            theirs.close()
            self._workers.append((proc, mine))
        self._run = 0

    def _gather(self, expected: str, timeout: float) -> list[Any]:
        out = []
        for proc, pipe in self._workers:
            if not pipe.poll(timeout):
                raise RuntimeError(f"{proc.name} did not answer within {timeout:.0f} s")
            try:
                status, value = pipe.recv()
            except EOFError:
                raise RuntimeError(f"{proc.name} exited") from None
            if status != expected:
                raise RuntimeError(value)
            out.append(value)
        return out

    def run(self, spec: LoadSpec) -> LoadResult:
        """Measure one point; every process uses at least one connection."""
        if spec.connections < len(self._workers):
            raise ValueError("fewer connections than generator processes")
        self._run += 1
        for _, pipe in self._workers:
            pipe.send((spec, self._run))
        self._gather("connected", CONNECT_TIMEOUT_S * 2)
        start_ns = time.monotonic_ns() + START_DELAY_NS
        for _, pipe in self._workers:
            pipe.send(start_ns)
        total_s = spec.warmup_s + spec.duration_s + spec.drain_s
        parts = self._gather("done", total_s + 30.0)
        return _merge(spec, parts)

    def close(self) -> None:
        for proc, pipe in self._workers:
            with contextlib.suppress(OSError):
                pipe.send(None)
            proc.join(5.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
            pipe.close()
        self._workers = []

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _merge(spec: LoadSpec, parts: list[dict[str, Any]]) -> LoadResult:
    from hdrh.histogram import HdrHistogram

    hist, lag, from_send = _new_hist(), _new_hist(), _new_hist()
    for part in parts:
        hist.add(HdrHistogram.decode(part["hist"]))
        lag.add(HdrHistogram.decode(part["lag"]))
        from_send.add(HdrHistogram.decode(part["from_send"]))

    def total(key: str) -> int:
        return sum(int(p[key]) for p in parts)

    empty = hist.get_total_count() == 0

    def pct(q: float, h: HdrHistogram = hist) -> float:
        return math.nan if empty else _us(h.get_value_at_percentile(q))

    return LoadResult(
        offered=spec.rate,
        scheduled=round(total("sent") / spec.duration_s, 1),
        achieved=round(total("in_window") / spec.duration_s, 1),
        sent=total("sent"),
        received=total("received"),
        timeouts=total("timeouts"),
        errors=total("errors"),
        p50_us=pct(50),
        p90_us=pct(90),
        p99_us=pct(99),
        p999_us=pct(99.9),
        max_us=math.nan if empty else _us(hist.get_max_value()),
        mean_us=math.nan if empty else _us(hist.get_mean_value()),
        from_send_p50_us=pct(50, from_send),
        from_send_p99_us=pct(99, from_send),
        send_lag_p99_us=_us(lag.get_value_at_percentile(99)),
        send_lag_max_us=_us(lag.get_max_value()),
        histogram=hist.encode().decode(),
    )
