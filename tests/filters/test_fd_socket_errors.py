"""A socket's error belongs to the program: the kqueue must never consume it.

Linux clears SO_ERROR when it is read (a MSG_PEEK recv clears it too), so READ and
WRITE report EV_EOF with fflags 0 where FreeBSD copies so_error into fflags; what
matters is that connect_ex/getsockopt/recv, and asyncio on top of them, still see
ECONNREFUSED and ECONNRESET after any number of deliveries.
"""

from __future__ import annotations

import asyncio
import errno
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest

import skqueue
from skqueue import kevent
from skqueue.constants import EV_ADD, EV_EOF, EVFILT_READ, EVFILT_WRITE
from skqueue.install import installed
from support import one

WAIT = 10.0  # generous: only a hang runs into it


def closed_port() -> tuple[str, int]:
    """An address nobody listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address: tuple[str, int] = sock.getsockname()
    return address


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets an RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def events_of(kq: skqueue.kqueue, count: int) -> list[tuple[int, int, int]]:
    """(filter, flags, fflags) of the next ``count`` events, which must all come."""
    got: list[kevent] = []
    deadline = time.monotonic() + WAIT
    while len(got) < count and time.monotonic() < deadline:
        got += kq.control(None, count - len(got), WAIT)
    assert len(got) == count, got
    return sorted((ev.filter, ev.flags, ev.fflags) for ev in got)


def refused_error(sock: socket.socket, address: tuple[str, int]) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


def reconnect_error(sock: socket.socket, address: tuple[str, int]) -> int:
    # ECONNABORTED here once the error was consumed behind the program's back.
    return sock.connect_ex(address)


@pytest.mark.parametrize("ask", [refused_error, reconnect_error], ids=["getsockopt", "connect_ex"])
def test_refused_connect_keeps_econnrefused_for_the_program(
    kq: skqueue.kqueue, ask: Callable[[socket.socket, tuple[str, int]], int]
) -> None:
    address = closed_port()
    with socket.socket() as client:
        client.setblocking(False)
        assert client.connect_ex(address) in (errno.EINPROGRESS, errno.ECONNREFUSED)
        fd = client.fileno()
        kq.control([kevent(fd, EVFILT_READ, EV_ADD), kevent(fd, EVFILT_WRITE, EV_ADD)], 0)
        for _ in range(2):  # level-triggered: each delivery looks again, none consumes
            assert events_of(kq, 2) == [(EVFILT_WRITE, EV_EOF, 0), (EVFILT_READ, EV_EOF, 0)]
        assert ask(client, address) == errno.ECONNREFUSED


def test_reset_peer_leaves_econnreset_for_recv(kq: skqueue.kqueue, listener: socket.socket) -> None:
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    with server:
        kq.control([kevent(server.fileno(), EVFILT_READ, EV_ADD)], 0)
        reset(client)
        for _ in range(2):
            ev = one(kq, WAIT)
            assert (ev.flags, ev.fflags, ev.data) == (EV_EOF, 0, 0)
        with pytest.raises(ConnectionResetError):
            server.recv(16)


def test_udp_error_arriving_while_queued_stays_for_recv() -> None:
    """An empty datagram is told apart from a stale report without a peek: a
    MSG_PEEK recv would consume an ICMP error that came after the harvest."""
    kq = skqueue.kqueue(sched="queue")  # keeps a harvested knote queued between calls
    peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        for peer, sock in zip(peers, socks, strict=True):
            peer.bind(("127.0.0.1", 0))
            sock.bind(("127.0.0.1", 0))
            sock.connect(peer.getsockname())
            peer.sendto(b"", sock.getsockname())
            kq.control([kevent(sock.fileno(), EVFILT_READ, EV_ADD)], 0)
        (first,) = kq.control(None, 1, WAIT)  # the other one stays queued
        (done,) = [s for s in socks if s.fileno() == first.ident]
        (other,) = [s for s in socks if s is not done]
        assert done.recv(16) == b""  # so that only the other one is pending
        peers[socks.index(other)].close()
        other.send(b"x")  # answered by ICMP port unreachable: a pending error
        poller = select.poll()
        poller.register(other, select.POLLERR)
        assert poller.poll(WAIT * 1000), "no ICMP error came"
        (ev,) = kq.control(None, 1, WAIT)
        assert (ev.ident, ev.flags, ev.fflags) == (other.fileno(), 0, 0)
        with pytest.raises(ConnectionRefusedError):
            other.recv(16)
        assert other.recv(16) == b""  # the empty datagram is still there too
    finally:
        for sock in peers + socks:
            sock.close()
        kq.close()


@pytest.fixture
def on_skqueue() -> Iterator[None]:
    """asyncio's default loop running on skqueue's selector, for this test only."""
    assert not installed()
    skqueue.install()
    try:
        yield
    finally:
        skqueue.uninstall()


def assert_on_skqueue() -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop._selector, skqueue.KqueueSelector)  # type: ignore[attr-defined]


def test_asyncio_connect_to_closed_port_is_refused(on_skqueue: None) -> None:
    async def connect(address: tuple[str, int]) -> None:
        assert_on_skqueue()
        await asyncio.wait_for(asyncio.open_connection(*address), WAIT)

    with pytest.raises(ConnectionRefusedError):
        asyncio.run(connect(closed_port()))


def test_asyncio_reset_peer_raises_connection_reset(
    on_skqueue: None, listener: socket.socket
) -> None:
    async def read_after_reset() -> bytes:
        assert_on_skqueue()
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        try:
            server, _ = listener.accept()  # the handshake is done: no wait
            reset(server)
            return await asyncio.wait_for(reader.read(16), WAIT)
        finally:
            writer.close()

    with pytest.raises(ConnectionResetError):
        asyncio.run(read_after_reset())
