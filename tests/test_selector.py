"""skqueue.KqueueSelector used directly, without install(), on real sockets."""

from __future__ import annotations

import asyncio
import errno
import os
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import pytest

import skqueue

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


@pytest.fixture
def sel() -> Iterator[skqueue.KqueueSelector]:
    with skqueue.KqueueSelector() as selector:
        yield selector


def ready(sel: skqueue.KqueueSelector, timeout: float | None = 0) -> dict[int, tuple[int, object]]:
    """fd -> (events, data), merging the one-pair-per-filter answers of select()."""
    out: dict[int, tuple[int, object]] = {}
    for key, events in sel.select(timeout):
        assert events, "select() reported a key with no events it asked for"
        out[key.fd] = (out.get(key.fd, (0, None))[0] | events, key.data)
    return out


def bad_fd() -> int:
    """An fd number that is certainly closed."""
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    return fd


def test_not_installed_by_using_it(sel: skqueue.KqueueSelector) -> None:
    default: type = selectors.DefaultSelector
    assert default is not skqueue.KqueueSelector
    assert not os.get_inheritable(sel.fileno())


def test_register_and_select_read_write(
    sel: skqueue.KqueueSelector, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    key = sel.register(a, READ | WRITE, "a-data")
    assert (key.fileobj, key.fd, key.events, key.data) == (a, a.fileno(), READ | WRITE, "a-data")
    assert ready(sel) == {a.fileno(): (WRITE, "a-data")}  # writable, nothing to read
    b.send(b"x")
    assert ready(sel, 1) == {a.fileno(): (READ | WRITE, "a-data")}
    assert a.recv(1) == b"x"
    assert ready(sel) == {a.fileno(): (WRITE, "a-data")}


def test_register_twice_or_bad_events_is_refused(
    sel: skqueue.KqueueSelector, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    sel.register(a, READ)
    with pytest.raises(KeyError):
        sel.register(a.fileno(), WRITE)
    with pytest.raises(ValueError):
        sel.register(0, 1 << 5)
    assert list(sel.get_map()) == [a.fileno()]


def test_modify_changes_events_and_data(
    sel: skqueue.KqueueSelector, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    b.send(b"x")
    sel.register(a, WRITE, 1)
    assert ready(sel) == {a.fileno(): (WRITE, 1)}
    key = sel.modify(a, READ, 2)
    assert (key.events, key.data) == (READ, 2)
    assert ready(sel) == {a.fileno(): (READ, 2)}  # WRITE is gone from the kqueue too
    key = sel.modify(a, READ, 3)  # same events: only the data changes
    assert ready(sel) == {a.fileno(): (READ, 3)}


def test_unregister_stops_events(
    sel: skqueue.KqueueSelector, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    b.send(b"x")
    sel.register(a, READ | WRITE)
    sel.register(b, WRITE)
    key = sel.unregister(a)
    assert key.fileobj is a
    assert ready(sel) == {b.fileno(): (WRITE, None)}
    with pytest.raises(KeyError):
        sel.unregister(a)
    sel.register(a, READ)  # and it can come back
    assert ready(sel) == {a.fileno(): (READ, None), b.fileno(): (WRITE, None)}


def test_bad_fd_raises_ebadf_and_leaves_nothing(sel: skqueue.KqueueSelector) -> None:
    fd = bad_fd()
    with pytest.raises(OSError) as info:
        sel.register(fd, READ | WRITE)
    assert info.value.errno == errno.EBADF
    with pytest.raises(KeyError):
        sel.get_key(fd)
    assert len(sel.get_map()) == 0
    a, b = socket.socketpair()  # takes the lowest free numbers: fd among them
    with a, b:
        assert fd in (a.fileno(), b.fileno())
        assert ready(sel) == {}  # no registration survived the failure
        sel.register(fd, READ | WRITE)  # and the number is free to register
        assert ready(sel) == {fd: (WRITE, None)}


def test_closed_fd_is_forgotten_and_unregister_still_works(
    sel: skqueue.KqueueSelector,
) -> None:
    a, b = socket.socketpair()
    fa, fb = a.fileno(), b.fileno()
    sel.register(a, READ | WRITE)
    sel.register(fb, WRITE)
    a.close()
    assert ready(sel) == {fb: (WRITE, None)}  # the closed fd yields nothing
    sel.unregister(fa)  # no error although the kqueue already dropped it
    b.close()
    sel.unregister(fb)
    assert len(sel.get_map()) == 0


def test_closed_fd_number_reused_reports_nothing_for_the_old_registration(
    sel: skqueue.KqueueSelector,
) -> None:
    a, b = socket.socketpair()
    fa = a.fileno()
    sel.register(fa, READ)
    a.close()
    b.close()
    c, d = socket.socketpair()  # fa now names another, readable, socket
    with c, d:
        assert fa in (c.fileno(), d.fileno())
        other = d if c.fileno() == fa else c
        other.send(b"x")
        assert ready(sel) == {}
        sel.unregister(fa)
        sel.register(fa, READ)  # a fresh registration sees the new file
        assert ready(sel) == {fa: (READ, None)}


def test_timeouts(sel: skqueue.KqueueSelector, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    sel.register(a, READ)
    t0 = time.monotonic()
    assert sel.select(0) == []
    assert sel.select(-1) == []  # negative means "poll", as in selectors
    assert time.monotonic() - t0 < 0.5
    t0 = time.monotonic()
    assert sel.select(0.2) == []
    assert 0.18 <= time.monotonic() - t0 < 1.5


def test_empty_selector_still_waits(sel: skqueue.KqueueSelector) -> None:
    t0 = time.monotonic()
    assert sel.select(0.2) == []
    assert 0.18 <= time.monotonic() - t0 < 1.5


def test_select_none_blocks_until_ready(
    sel: skqueue.KqueueSelector, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    sel.register(a, READ, "wake")
    writer = threading.Timer(0.1, b.send, (b"x",))
    writer.start()
    t0 = time.monotonic()
    assert ready(sel, None) == {a.fileno(): (READ, "wake")}
    assert time.monotonic() - t0 >= 0.05
    writer.join(5)
    assert not writer.is_alive()


def test_close_closes_the_kqueue(pair: tuple[socket.socket, socket.socket]) -> None:
    sel = skqueue.KqueueSelector()
    sel.register(pair[0], READ)
    fd = sel.fileno()
    sel.close()
    with pytest.raises(ValueError):
        sel.fileno()
    with pytest.raises(OSError) as info:
        os.fstat(fd)  # the kqueue's fd is really gone
    assert info.value.errno == errno.EBADF


def test_asyncio_loop_on_it_without_install(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.setblocking(False)
    loop = asyncio.SelectorEventLoop(skqueue.KqueueSelector())
    try:

        async def exchange() -> bytes:
            await loop.sock_sendall(a, b"ping")
            return await loop.sock_recv(a, 16)

        b.sendall(b"pong")
        assert loop.run_until_complete(exchange()) == b"pong"
        assert b.recv(16) == b"ping"
    finally:
        loop.close()


def test_refused_connect_leaves_so_error_to_the_application(
    sel: skqueue.KqueueSelector,
) -> None:
    """A non-blocking connect learns its failure from SO_ERROR once WRITE fires
    (asyncio's sock_connect): the kqueue must not consume it on the way."""
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        address = closed_port.getsockname()
    with socket.socket() as client:
        client.setblocking(False)
        assert client.connect_ex(address) in (errno.EINPROGRESS, errno.ECONNREFUSED)
        sel.register(client, WRITE)
        assert ready(sel, 5) == {client.fileno(): (WRITE, None)}
        assert client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED


def test_read_on_a_pipe_write_end_reports_the_reader_gone(
    sel: skqueue.KqueueSelector,
) -> None:
    """asyncio's write-pipe transport watches its own fd for READ to learn that the
    reader closed, as FreeBSD reports EV_EOF there (Linux epoll says EPOLLERR)."""
    r, w = os.pipe()
    try:
        sel.register(w, READ)
        assert ready(sel) == {}
    finally:
        os.close(r)
    try:
        t0 = time.monotonic()
        assert ready(sel, 5) == {w: (READ, None)}
        assert time.monotonic() - t0 < 1
    finally:
        sel.unregister(w)
        os.close(w)


@pytest.mark.parametrize("family", [socket.AF_UNIX, socket.AF_INET])
def test_empty_datagram_is_readable(sel: skqueue.KqueueSelector, family: int) -> None:
    """FIONREAD says 0 for an empty datagram; select() must still report it (as
    FreeBSD and epoll do) instead of missing it while epoll keeps firing."""
    if family == socket.AF_UNIX:
        rd, wr = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    else:
        rd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rd.bind(("127.0.0.1", 0))
        wr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        wr.connect(rd.getsockname())
    with rd, wr:
        sel.register(rd, READ)
        wr.send(b"")
        cpu = time.process_time()
        assert ready(sel, 5) == {rd.fileno(): (READ, None)}
        assert time.process_time() - cpu < 0.5
        assert rd.recv(16) == b""
        assert ready(sel) == {}
