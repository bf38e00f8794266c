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

import abc
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

from skqbench import kvstore
from skqbench.histogram import new_histogram
from skqbench.osutil import child_process_setup, epoll_wait_ns, precise_timer_slack
from skqbench.protocol import (
    FRAME,
    FRAME_SIZE,
    KV_GET,
    KV_HEADER,
    KV_HELLO,
    KV_MAGIC,
    KV_OK,
    KV_PUT,
    KV_REALTIME,
    KV_SEEK,
    MAGIC,
    MAX_SERVICE_NS,
    KvRequest,
    encode_kv,
)
from skqbench.servers.base import LOOPBACK
from skqbench.service import parse_dist

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

ARRIVALS = ("poisson", "fixed", "pareto")
WORKLOADS = ("echo", "kv")
# mutilate's "fb_ia" inter-arrival: generalized Pareto, shape 0.154971 (scale 16.0292 us
# there); only the shape is kept, the scale is set so that the mean matches the rate.
FB_IA_SHAPE = 0.154971
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
    # echo: timed frames whose service time comes from ``dist``.  kv: the background mix
    # of skqbench.kvstore on ``connections`` at ``rate``, and GETs only on
    # ``rt_connections`` latency-sensitive ones at ``rt_rate``, each population measured
    # on its own.
    workload: str = "echo"
    rt_connections: int = 0
    rt_rate: float = 0.0
    kv_keys: int = kvstore.KEYS_FULL
    kv_seed: int = 1
    max_scan: int = kvstore.MAX_SCAN

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.duration_s <= 0 or self.warmup_s < 0 or self.drain_s < 0:
            raise ValueError("rate and duration must be positive, warmup and drain >= 0")
        if self.connections < 1:
            raise ValueError("need at least one connection")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"unknown arrival {self.arrival!r}; choose from {', '.join(ARRIVALS)}")
        if self.workload not in WORKLOADS:
            raise ValueError(f"unknown workload {self.workload!r}; choose from echo, kv")
        if (
            self.rt_connections < 0
            or self.rt_rate < 0
            or (self.rt_connections > 0) != (self.rt_rate > 0)
        ):
            raise ValueError("rt_connections and rt_rate are both 0 or both positive")
        if self.workload == "echo" and self.rt_connections:
            raise ValueError("latency-sensitive connections are a kv workload's")
        if not 1 <= self.max_scan <= kvstore.MAX_SCAN:
            raise ValueError(f"max_scan must be 1 to {kvstore.MAX_SCAN}")
        kvstore.Dataset(self.kv_keys, self.kv_seed)
        parse_dist(self.dist)

    @property
    def total_connections(self) -> int:
        return self.connections + self.rt_connections


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


class Codec(abc.ABC):
    """What one workload sends and how its replies are read and checked."""

    populations: tuple[str, ...]

    @abc.abstractmethod
    def shares(self, spec: LoadSpec, indexes: list[int]) -> list[tuple[float, list[int], int]]:
        """Per population: its total rate, this process's sockets of it (positions in
        ``indexes``) and its connections over all processes."""

    @abc.abstractmethod
    def request(self, pos: int, rid: int, sched: int, rng: random.Random) -> bytes:
        """The next request on the socket at ``pos``."""

    @abc.abstractmethod
    def replies(self, data: bytes) -> tuple[list[tuple[int, bool]], bytes]:
        """(request id, reply correct) for each complete reply in ``data``, and the rest."""


class EchoCodec(Codec):
    """Timed frames echoed back; the service time comes from the spec's distribution."""

    populations = ("all",)

    def __init__(self, spec: LoadSpec, indexes: list[int]) -> None:
        self.dist = parse_dist(spec.dist)
        mults = self.dist.connection_multipliers(spec.connections, random.Random(spec.seed))
        self.mults = [mults[i] for i in indexes]

    def shares(self, spec: LoadSpec, indexes: list[int]) -> list[tuple[float, list[int], int]]:
        return [(spec.rate, list(range(len(indexes))), spec.connections)]

    def request(self, pos: int, rid: int, sched: int, rng: random.Random) -> bytes:
        service = min(self.dist.sample_ns(rng, self.mults[pos]), MAX_SERVICE_NS)
        return FRAME.pack(MAGIC, service, rid, sched)

    def replies(self, data: bytes) -> tuple[list[tuple[int, bool]], bytes]:
        cut = len(data) - len(data) % FRAME_SIZE
        out = [(rid, magic == MAGIC) for magic, _, rid, _ in FRAME.iter_unpack(data[:cut])]
        return out, data[cut:]


class KvCodec(Codec):
    """The key-value mix; every reply is checked against the data set's invariant
    (:func:`skqbench.kvstore.value_for`): a GET's value, and a SEEK's count (exactly the
    records that follow, up to the run) and its first and last records, which is cheap
    enough that checking a 10,000-record run does not load the machine."""

    populations = ("bg", "rt")

    def __init__(self, spec: LoadSpec, indexes: list[int]) -> None:
        self.dataset = kvstore.Dataset(spec.kv_keys, spec.kv_seed)
        self.max_scan = spec.max_scan
        self.realtime = [i >= spec.connections for i in indexes]
        self.expect: dict[int, kvstore.KvOp] = {}

    def shares(self, spec: LoadSpec, indexes: list[int]) -> list[tuple[float, list[int], int]]:
        bg = [pos for pos, rt in enumerate(self.realtime) if not rt]
        rt = [pos for pos, rt in enumerate(self.realtime) if rt]
        return [(spec.rate, bg, spec.connections), (spec.rt_rate, rt, spec.rt_connections)]

    def request(self, pos: int, rid: int, sched: int, rng: random.Random) -> bytes:
        if self.realtime[pos]:
            op = kvstore.KvOp("get", rng.randrange(self.dataset.keys))
        else:
            op = self.dataset.draw(rng, self.max_scan)
        self.expect[rid] = op
        key = kvstore.key_for(op.index)
        if op.op == "put":
            value = kvstore.value_for(key, op.arg)
            return encode_kv(KvRequest(KV_PUT, 0, op.arg, rid, sched, key, value))
        code = KV_SEEK if op.op == "seek" else KV_GET
        return encode_kv(KvRequest(code, 0, op.arg, rid, sched, key))

    def replies(self, data: bytes) -> tuple[list[tuple[int, bool]], bytes]:
        out = []
        at = 0
        while len(data) - at >= KV_HEADER.size:
            magic, code, status, _, size, rid, _ = KV_HEADER.unpack_from(data, at)
            end = at + KV_HEADER.size + size
            if end > len(data):
                break
            op = self.expect.pop(rid, None)
            ok = magic == KV_MAGIC and status == KV_OK and op is not None
            if ok and op is not None:
                ok = self._check(op, code, data[at + KV_HEADER.size : end])
            out.append((rid, ok))
            at = end
        return out, data[at:]

    def _check(self, op: kvstore.KvOp, code: int, body: bytes) -> bool:
        key = kvstore.key_for(op.index)
        if op.op == "get":
            return code == KV_GET and body == kvstore.value_for(key, len(body))
        if op.op == "put":
            return code == KV_PUT and not body
        try:
            records = kvstore.SeekRecords(body)
        except ValueError:
            return False
        count = min(op.arg, self.dataset.keys - op.index)
        last = count - 1
        return (
            code == KV_SEEK
            and len(records) == count
            and records.key(0) == key
            and records.key(last) == kvstore.key_for(op.index + last)
            and all(
                records.value(i) == kvstore.value_for(records.key(i), records.lengths[i])
                for i in (0, last)
            )
        )


def make_codec(spec: LoadSpec, indexes: list[int]) -> Codec:
    """The codec of ``spec.workload`` for one process's connections."""
    return KvCodec(spec, indexes) if spec.workload == "kv" else EchoCodec(spec, indexes)


def kv_hello(sock: socket.socket) -> None:
    """Announce a blocking socket latency-sensitive and wait for the server's answer."""
    sock.sendall(encode_kv(KvRequest(KV_HELLO, KV_REALTIME, 0, 0, 0)))
    got = b""
    while len(got) < KV_HEADER.size:
        chunk = sock.recv(KV_HEADER.size - len(got))
        if not chunk:
            raise ConnectionError("closed on HELLO")
        got += chunk


class _Connections:
    """One generator process's sockets; kept across runs against the same server so a
    sweep sees the same connection-to-worker placement at every load.  Those in
    ``hello`` announce themselves latency-sensitive first (a key-value HELLO)."""

    def __init__(self, port: int, indexes: list[int], hello: frozenset[int]) -> None:
        self.port = port
        self.indexes = indexes
        self.hello = hello
        self.socks: list[socket.socket] = []
        try:
            for i in indexes:
                sock = socket.create_connection((LOOPBACK, port), timeout=CONNECT_TIMEOUT_S)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.socks.append(sock)
                if i in hello:
                    kv_hello(sock)
                sock.setblocking(False)
        except OSError:
            self.close()
            raise
        self.broken = False

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


class _Population:
    """Connections that share an arrival process and a latency histogram."""

    def __init__(self, rate: float, arrival: str, conns: list[int], rng: random.Random) -> None:
        self.conns = conns
        self.gap = interarrival(arrival, rate, rng) if conns and rate > 0 else None
        self.hist, self.lag, self.from_send = new_histogram(), new_histogram(), new_histogram()
        self.sent = self.received = self.in_window = self.errors = 0

    def part(self, timeouts: int) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "received": self.received,
            "in_window": self.in_window,
            "timeouts": timeouts,
            "errors": self.errors,
            "hist": self.hist.encode(),
            "lag": self.lag.encode(),
            "from_send": self.from_send.encode(),
        }


def _generate(
    spec: LoadSpec,
    conns: _Connections,
    codec: Codec,
    pops: list[_Population],
    run: int,
    start_ns: int,
    rng: random.Random,
) -> dict[str, Any]:
    """The open-loop send/receive loop of one process, over its populations; returns
    raw counts and histograms per population."""
    socks = conns.socks
    n = len(socks)
    ep = select.epoll()
    by_fd = {s.fileno(): i for i, s in enumerate(socks)}
    for fd in by_fd:
        ep.register(fd, select.EPOLLIN)
    partial = [b""] * n
    alive = [True] * n
    # request id -> (scheduled, actually sent, population)
    pending: dict[int, tuple[int, int, _Population]] = {}
    measure_ns = start_ns + round(spec.warmup_s * 1e9)
    end_ns = measure_ns + round(spec.duration_s * 1e9)
    drain_end_ns = end_ns + round(spec.drain_s * 1e9)
    run_tag = run << RUN_SHIFT
    seq = 0
    live = [p for p in pops if p.gap is not None]
    nexts = [start_ns + p.gap() for p in live if p.gap is not None]
    now_ns = time.monotonic_ns
    while True:
        now = now_ns()
        while live:
            k = min(range(len(live)), key=nexts.__getitem__)
            next_ns = nexts[k]
            if next_ns > now or next_ns >= end_ns:
                break
            pop = live[k]
            sched = int(next_ns)
            i = pop.conns[rng.randrange(len(pop.conns))]
            rid = run_tag | seq
            seq += 1
            measured = sched >= measure_ns
            if alive[i]:
                data = codec.request(i, rid, sched, rng)
                try:
                    ok = socks[i].send(data) == len(data)
                except OSError:
                    ok = False
                if not ok:  # the stream is now misframed: give the connection up
                    alive[i] = False
                    conns.broken = True
            if measured:
                pop.sent += 1
                sent_at = now_ns()
                pop.lag.record_value(max(sent_at - sched, 1))
                if alive[i]:
                    pending[rid] = (sched, sent_at, pop)
                else:
                    pop.errors += 1
            assert pop.gap is not None
            nexts[k] += pop.gap()
        first = min(nexts, default=end_ns)
        if first >= end_ns and (not pending or now >= drain_end_ns):
            break
        wake = int(first) if first < end_ns else drain_end_ns
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
            replies, partial[i] = codec.replies(data)
            for rid, ok in replies:
                entry = pending.pop(rid, None)
                if entry is None:
                    continue  # a reply to an unmeasured request
                sched, sent_at, pop = entry
                if not ok:
                    pop.errors += 1
                pop.hist.record_value(max(now - sched, 1))
                pop.from_send.record_value(max(now - sent_at, 1))
                pop.received += 1
                if measure_ns <= now < end_ns and rid >> RUN_SHIFT == run:
                    pop.in_window += 1
    final = now_ns()
    unanswered = dict.fromkeys(map(id, pops), 0)
    for sched, sent_at, pop in pending.values():
        pop.hist.record_value(max(final - sched, 1))
        pop.from_send.record_value(max(final - sent_at, 1))
        unanswered[id(pop)] += 1
    ep.close()
    return {
        name: p.part(unanswered[id(p)]) for name, p in zip(codec.populations, pops, strict=True)
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
        indexes = list(range(index, spec.total_connections, processes))
        hello = frozenset(i for i in indexes if i >= spec.connections)
        try:
            if conns is None or conns.broken or (conns.port, conns.indexes) != (spec.port, indexes):
                if conns is not None:
                    conns.close()
                conns = None
                conns = _Connections(spec.port, indexes, hello)
        except OSError as exc:
            pipe.send(("error", f"generator {index} cannot connect to port {spec.port}: {exc}"))
            continue
        rng = random.Random(f"{spec.seed}/{index}/{run}")
        codec = make_codec(spec, indexes)
        pops = [
            _Population(rate * len(local) / max(1, total), spec.arrival, local, rng)
            for rate, local, total in codec.shares(spec, indexes)
        ]
        pipe.send(("connected", None))
        start_ns = pipe.recv()
        try:
            parts = _generate(spec, conns, codec, pops, run, start_ns, rng)
            pipe.send(("done", parts))
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
        """Measure one point: its first population (all requests, or a kv workload's
        background)."""
        return next(iter(self.run_populations(spec).values()))

    def run_populations(self, spec: LoadSpec) -> dict[str, LoadResult]:
        """Measure one point, a result per population; every process uses at least one
        connection."""
        if spec.total_connections < len(self._workers):
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
        offered = {"all": spec.rate, "bg": spec.rate, "rt": spec.rt_rate}
        return {
            name: _merge(offered[name], spec.duration_s, [part[name] for part in parts])
            for name in parts[0]
            if name != "rt" or spec.rt_connections
        }

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


def _merge(offered: float, duration_s: float, parts: list[dict[str, Any]]) -> LoadResult:
    from hdrh.histogram import HdrHistogram

    hist, lag, from_send = new_histogram(), new_histogram(), new_histogram()
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
        offered=offered,
        scheduled=round(total("sent") / duration_s, 1),
        achieved=round(total("in_window") / duration_s, 1),
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
