"""Every server design survives clients that misbehave: slow readers, requests asking for
too much service, the process running out of fds, and garbage on the wire.  Each fault
costs the faulty connection only (or, at the fd limit, new connections for a while).
One test is of the kqueue core: a listener's knote must outlive the fd limit."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from skqbench.osutil import process_tree, tree_cpu_s
from skqbench.protocol import (
    FRAME,
    FRAME_SIZE,
    MAGIC,
    MAX_SERVICE_NS,
    SOCKPERF_CLIENT,
    SOCKPERF_HEADER,
    SOCKPERF_MAX_SIZE,
    SOCKPERF_PONG_REQUEST,
    Request,
    encode,
)
from skqbench.servers.base import ACCEPT_BACKOFF_S, DESIGNS, LOOPBACK, ServerConfig
from skqbench.servers.harness import ServerProcess
from skqueue import EV_ADD, EVFILT_READ, KQ_SCHED_BEST, kevent, kqueue

from .conftest import connect, recv_frame, roundtrip, running

WORKERS = 2


def tree_rss_bytes(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        with open(f"/proc/{p}/status") as f:
            total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return total * 1024


def assert_closed_by_peer(sock: socket.socket, timeout: float = 10.0) -> None:
    """End of file or a reset within ``timeout`` (after any data the server had sent)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {timeout} s")


def design_ids(cfg: ServerConfig) -> str:
    return cfg.design


# ------------------------------------------------------------------ 1. slow readers

BIG = SOCKPERF_HEADER.pack(1, SOCKPERF_CLIENT | SOCKPERF_PONG_REQUEST, SOCKPERF_MAX_SIZE)
BIG += b"x" * (SOCKPERF_MAX_SIZE - len(BIG))  # answered with as many bytes


class SlowReaders:
    """Clients that keep sending requests with 64 KiB replies and never read one."""

    def __init__(self, port: int, count: int) -> None:
        self.socks = []
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((LOOPBACK, port))
            sock.setblocking(False)
            self.socks.append(sock)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        live = {s: memoryview(BIG) for s in self.socks}
        while live and not self._stop.is_set():
            _, writable, _ = select.select([], list(live), [], 0.1)
            for sock in writable:
                try:
                    n = sock.send(live[sock])
                except BlockingIOError:
                    continue
                except OSError:  # dropped by the server: what the fix does
                    del live[sock]
                    continue
                self.sent += n
                live[sock] = live[sock][n:] or memoryview(BIG)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "feeder hung"
        for s in self.socks:
            s.close()


SLOW_CONFIGS = [ServerConfig(d, WORKERS, sockperf_service="fixed:0us") for d in DESIGNS]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cfg", SLOW_CONFIGS, ids=design_ids)
def test_slow_readers_neither_starve_others_nor_fill_memory(cfg: ServerConfig) -> None:
    with running(cfg) as server:
        good = connect(server.port)
        assert roundtrip(good, Request(1000, 1, 1)).request_id == 1
        rss_before = tree_rss_bytes(server.pid)
        slow = SlowReaders(server.port, WORKERS * 2)  # more than there are workers
        try:
            time.sleep(3 * server.cfg.send_timeout_s)  # enough to block every worker
            good.settimeout(8)  # far above the send timeout, far below "forever"
            assert roundtrip(good, Request(1000, 2, 2)).request_id == 2
            growth = tree_rss_bytes(server.pid) - rss_before
        finally:
            slow.close()
        assert slow.sent > 4 * SOCKPERF_MAX_SIZE  # the slow readers did fill buffers
        # what a connection may hold is bounded (tens of KiB), not what the clients send
        assert growth < 48 * 2**20, f"server grew by {growth / 2**20:.0f} MiB"
        assert server.stats()["events"].get("slow_reader", 0) >= 1
        assert roundtrip(good, Request(1000, 3, 3)).request_id == 3
        good.close()


# ------------------------------------------------------------------ 2. service caps


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "cfg", [ServerConfig(d, 1, "queue", max_service="50ms") for d in DESIGNS], ids=design_ids
)
def test_request_over_max_service_is_refused_without_stalling_others(cfg: ServerConfig) -> None:
    """One worker: a 4.29 s request used to stall every other connection that long."""
    with running(cfg) as server:
        other, greedy = connect(server.port), connect(server.port)
        greedy.sendall(encode(Request(MAX_SERVICE_NS, 1, 1)))
        time.sleep(0.1)  # the greedy request is read first
        start = time.monotonic()
        assert roundtrip(other, Request(1000, 2, 2)).request_id == 2
        assert time.monotonic() - start < MAX_SERVICE_NS / 1e9 / 2
        assert_closed_by_peer(greedy)
        # the cap itself is allowed
        assert roundtrip(other, Request(50_000_000, 3, 3)).request_id == 3
        assert server.stats()["events"]["protocol_error"] == 1
        other.close()
        greedy.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "cfg", [ServerConfig("asyncio", 4), ServerConfig("uvloop", 4), ServerConfig("reuseport", 1)]
)
def test_pipelining_connection_cannot_take_the_whole_pool(cfg: ServerConfig) -> None:
    """Eight pipelined slow requests used to occupy every pool thread."""
    with running(cfg) as server:
        greedy, other = connect(server.port), connect(server.port)
        greedy.sendall(b"".join(encode(Request(300_000_000, i, i)) for i in range(8)))
        time.sleep(0.1)  # all eight are read first
        other.sendall(encode(Request(1000, 100, 100)))
        # greedy's replies and other's come back in completion order; count greedy's
        # that finished before other's, which may only wait for a thread to free up
        # when the pool has one thread
        order = []
        sel = {greedy: "g", other: "o"}
        while "o" not in order:
            ready, _, _ = select.select(list(sel), [], [], 10)
            assert ready, "no reply within 10 s"
            for sock in ready:
                recv_frame(sock)
                order.append(sel[sock])
        ahead = order.index("o")
        assert ahead <= (1 if server.cfg.workers == 1 else 0), order
        got = {recv_frame(greedy).request_id for _ in range(8 - ahead)}
        assert len(got) == 8 - ahead  # none lost
        greedy.close()
        other.close()


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_service"):
        ServerConfig(max_service="0ms")
    with pytest.raises(ValueError, match="duration"):
        ServerConfig(send_timeout="soon")
    with pytest.raises(ValueError, match="max_inflight"):
        ServerConfig(max_inflight=-1)
    with pytest.raises(TypeError, match="max_inflight"):
        ServerConfig(max_inflight=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="workers"):
        ServerConfig(workers="4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rtreserve"):
        ServerConfig(rtreserve=-1)
    with pytest.raises(TypeError, match="rtreserve"):
        ServerConfig(rtreserve=1.5)  # type: ignore[arg-type]
    assert ServerConfig(workers=4).inflight_limit == 3
    assert ServerConfig(workers=1).inflight_limit == 1
    assert ServerConfig(max_inflight=2).inflight_limit == 2


# ------------------------------------------------------------------ 3. fd limit

HEADROOM = 8  # fds a server process may still open


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cfg", [ServerConfig(d, WORKERS) for d in DESIGNS], ids=design_ids)
def test_at_the_fd_limit_accepting_backs_off(
    cfg: ServerConfig, capfd: pytest.CaptureFixture[str]
) -> None:
    with running(cfg) as server:
        tree = process_tree(server.pid)
        for pid in tree:
            _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
            resource.prlimit(
                pid, resource.RLIMIT_NOFILE, (len(os.listdir(f"/proc/{pid}/fd")) + HEADROOM, hard)
            )
        # connect completes in the kernel's backlog, so more than the server can accept
        start = time.monotonic()
        clients = [connect(server.port) for _ in range(HEADROOM * len(tree) + 16)]
        try:
            time.sleep(0.5)  # the server reaches its limit
            cpu = sum(tree_cpu_s(server.pid))
            window = 2.0
            time.sleep(window)
            cpu = sum(tree_cpu_s(server.pid)) - cpu
        finally:
            for c in clients:
                c.close()
        assert cpu < 0.15 * window, f"{cpu:.2f} s of CPU in {window} s at the fd limit"
        # once fds are free again the server accepts (the backlog first, then this one)
        fresh = connect(server.port)
        assert roundtrip(fresh, Request(1000, 1, 1)).request_id == 1
        fresh.close()
        elapsed = time.monotonic() - start
        assert server.stats()["events"]["accept_backoff"] >= 1
    lines = capfd.readouterr().err.splitlines()
    # about one line per back-off and process (twice that for late timers), not one
    # per accept attempt
    bound = len(tree) * (2 * elapsed / ACCEPT_BACKOFF_S + 4)
    assert len(lines) <= bound, lines[:20]


@contextlib.contextmanager
def no_free_fds() -> Iterator[None]:
    """This process may open no fd until the block ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(map(int, os.listdir("/proc/self/fd"))), hard))
    try:
        with pytest.raises(OSError) as no_fd:
            while True:  # the limit is on fd numbers: fill the holes below it
                fillers.append(os.open(os.devnull, os.O_RDONLY))
        assert no_fd.value.errno == errno.EMFILE
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for fd in fillers:
            os.close(fd)


@pytest.mark.parametrize("sched", [0, KQ_SCHED_BEST])
def test_listener_knote_survives_fd_exhaustion(sched: int) -> None:
    """The READ filter asks sock_diag (a netlink socket, so an fd) for a listener's queue
    length; out of fds it used to drop the listener's knote silently."""
    with socket.socket() as listener, kqueue(sched=sched, sargs=2 if sched else 0) as kq:
        listener.bind((LOOPBACK, 0))
        listener.listen()
        kq.control([kevent(listener, EVFILT_READ, EV_ADD)], 0)
        client = socket.create_connection(listener.getsockname())
        with no_free_fds():
            events = kq.control(None, 1, 5)
        assert [(ev.ident, ev.data) for ev in events] == [(listener.fileno(), 1)]
        events = kq.control(None, 1, 5)  # and once the fds are back, the real count
        assert [(ev.ident, ev.data) for ev in events] == [(listener.fileno(), 1)]
        client.close()


def test_empty_datagram_knote_survives_fd_exhaustion() -> None:
    """The sibling: telling an empty datagram from nothing peeked through a dup()."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, kqueue() as kq:
        rx.bind((LOOPBACK, 0))
        kq.control([kevent(rx, EVFILT_READ, EV_ADD)], 0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.sendto(b"", rx.getsockname())
        with no_free_fds():
            events = kq.control(None, 1, 5)
        assert [(ev.ident, ev.data) for ev in events] == [(rx.fileno(), 0)]
        assert rx.recv(16) == b""


# ------------------------------------------------------------------ 4. garbage input

GARBAGE = {
    "bad-magic": FRAME.pack(MAGIC ^ 0xFF00, 1000, 1, 1),
    "unknown-protocol": b"\xff\xfe" * FRAME_SIZE,
    "not-utf8-text": "GET /\u00e9\u00e8 HTTP/1.1\r\n\r\n".encode("latin-1"),
    "truncated-frame": encode(Request(1000, 1, 1))[: FRAME_SIZE // 2],
    "oversized-length": SOCKPERF_HEADER.pack(1, SOCKPERF_PONG_REQUEST, SOCKPERF_MAX_SIZE + 1),
    "undersized-length": SOCKPERF_HEADER.pack(1, SOCKPERF_PONG_REQUEST, 3),
    "huge-length": SOCKPERF_HEADER.pack(1, SOCKPERF_PONG_REQUEST, 2**32 - 1),
}


@pytest.fixture(params=list(DESIGNS), scope="module")
def any_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with running(ServerConfig(request.param, WORKERS)) as server:
        yield server


@pytest.mark.timeout(30)
@pytest.mark.parametrize("garbage", list(GARBAGE))
def test_garbage_closes_that_connection_only(any_server: ServerProcess, garbage: str) -> None:
    good, bad = connect(any_server.port), connect(any_server.port)
    assert roundtrip(good, Request(1000, 1, 1)).request_id == 1
    bad.sendall(GARBAGE[garbage])
    if garbage == "truncated-frame":
        bad.shutdown(socket.SHUT_WR)  # the rest never comes
    assert_closed_by_peer(bad)
    assert roundtrip(good, Request(1000, 2, 2)).request_id == 2
    fresh = connect(any_server.port)
    assert roundtrip(fresh, Request(1000, 3, 3)).request_id == 3
    for s in (good, bad, fresh):
        s.close()


@pytest.mark.timeout(30)
def test_request_then_half_close_is_answered(any_server: ServerProcess) -> None:
    """A client that shuts its sending side after its requests (``nc -N``) still gets
    every reply, then the server's end of file."""
    sock = connect(any_server.port)
    sock.sendall(b"".join(encode(Request(20_000_000, i, i)) for i in range(3)))
    sock.shutdown(socket.SHUT_WR)
    assert sorted(recv_frame(sock).request_id for _ in range(3)) == [0, 1, 2]
    assert_closed_by_peer(sock)
    sock.close()
