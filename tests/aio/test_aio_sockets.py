"""Socket jobs: FIFO order per direction, EOF, errors, cancellation, zero-copy toggling."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import socket
import struct
import threading
import time

import pytest

import skqueue
from skqueue import (
    aio_cancel,
    aio_error,
    aio_read,
    aio_return,
    aio_suspend,
    aio_waitcomplete,
    aio_write,
    aiocb,
)

from .conftest import finish

Pair = tuple[socket.socket, socket.socket]


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(min(n - len(out), 1 << 20))
        assert chunk, "peer closed early"
        out += chunk
    return bytes(out)


def test_read_waits_for_data_and_status_calls(tcp_pair: Pair) -> None:
    a, b = tcp_pair
    buf = bytearray(100)
    cb = aiocb(a, buf)
    aio_read(cb)
    with pytest.raises(OSError) as info:
        aio_suspend([cb], 0.1)
    assert info.value.errno == errno.EAGAIN
    assert aio_error(cb) == errno.EINPROGRESS
    assert aio_error(cb.ident) == errno.EINPROGRESS
    with pytest.raises(OSError) as info:
        aio_return(cb)  # not finished
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        aio_read(cb)  # the block is busy
    assert info.value.errno == errno.EINVAL
    b.sendall(b"hello")
    aio_suspend([cb], 5)
    assert aio_error(cb) == 0
    assert aio_return(cb.ident) == 5  # the event's ident works as well as the block
    assert buf[:5] == b"hello"


def test_reads_complete_in_order_with_what_is_there(tcp_pair: Pair) -> None:
    a, b = tcp_pair
    bufs = [bytearray(4) for _ in range(5)]
    cbs = [aiocb(a, buf) for buf in bufs]
    for cb in cbs:
        aio_read(cb)
    b.sendall(b"0123456789")
    assert finish(cbs[0]) == 4
    assert finish(cbs[1]) == 4
    assert finish(cbs[2]) == 2  # a read completes with whatever is there
    assert bytes(bufs[0] + bufs[1] + bufs[2][:2]) == b"0123456789"
    b.shutdown(socket.SHUT_WR)
    assert finish(cbs[3]) == 0  # EOF
    assert finish(cbs[4]) == 0


def test_ten_concurrent_writes_arrive_in_order_each_completing_once(
    tcp_pair: Pair, kq: skqueue.kqueue
) -> None:
    a, b = tcp_pair
    skqueue.tunables.tx_zcopy_min = 16 * 1024
    sizes = [1, 100_000, 7, 3 << 20, 20_000, 15_000, 1 << 20, 0, 65_536, 5]
    payloads = [os.urandom(n) for n in sizes]
    cbs = [
        aiocb(a, p, sigevent=skqueue.sigevent_kevent(kq, skqueue.EV_ONESHOT, i))
        for i, p in enumerate(payloads)
    ]
    before = skqueue.aio_stats()
    for cb in cbs:
        aio_write(cb)
    received = recv_exactly(b, sum(sizes))
    assert received == b"".join(payloads)
    events: list[skqueue.kevent] = []
    deadline = time.monotonic() + 10
    while len(events) < 10 and time.monotonic() < deadline:
        events += kq.control(None, 20, 1)
    assert kq.control(None, 20, 0.2) == []  # nothing fires twice
    assert sorted(ev.udata for ev in events) == list(range(10))
    for ev in events:
        assert ev.filter == skqueue.EVFILT_AIO and ev.data == 0
        assert ev.flags & skqueue.EV_EOF
        assert ev.ident == cbs[ev.udata].ident
        assert aio_return(ev.ident) == sizes[ev.udata]
    after = skqueue.aio_stats()
    assert after["zc_sends"] > before["zc_sends"]  # the big ones went zero-copy
    assert after["copy_bytes"] - before["copy_bytes"] >= 1 + 7 + 15_000 + 5


def test_cancel_only_what_has_not_started(tcp_pair: Pair) -> None:
    a, b = tcp_pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    big = os.urandom(32 << 20)  # far more than the socket buffers: it starts, then stalls
    running, queued = aiocb(a, big), aiocb(a, b"tail")
    aio_write(running)
    aio_write(queued)
    deadline = time.monotonic() + 5
    while skqueue.aio_stats()["running"] == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert aio_cancel(a, running) == skqueue.AIO_NOTCANCELED
    assert aio_cancel(a, queued) == skqueue.AIO_CANCELED
    assert aio_cancel(a) == skqueue.AIO_NOTCANCELED
    assert aio_error(queued) == errno.ECANCELED
    with pytest.raises(OSError) as info:
        aio_return(queued)
    assert info.value.errno == errno.ECANCELED
    assert recv_exactly(b, len(big)) == big
    assert finish(running) == len(big)
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(10)  # the cancelled job never reached the wire
    assert aio_cancel(a) == skqueue.AIO_ALLDONE


def test_reset_completes_read_with_econnreset(tcp_pair: Pair) -> None:
    a, b = tcp_pair
    cb = aiocb(a, bytearray(10))
    aio_read(cb)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    b.close()  # RST
    aio_suspend([cb], 5)
    assert aio_error(cb) == errno.ECONNRESET
    with pytest.raises(ConnectionResetError):
        aio_return(cb)


def test_write_to_closed_peer_is_epipe_not_sigpipe(tcp_pair: Pair) -> None:
    a, b = tcp_pair
    b.close()
    old = signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # SIGPIPE would kill the process
    try:
        errors = []
        for _ in range(20):
            cb = aiocb(a, b"x" * 1000)
            aio_write(cb)
            aio_suspend([cb], 5)
            errors.append(aio_error(cb))
            with contextlib.suppress(OSError):
                aio_return(cb)
            if errors[-1]:
                break
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGPIPE, old)
    assert errors[-1] in (errno.EPIPE, errno.ECONNRESET)


def test_unix_socket_falls_back_to_copying() -> None:
    a, b = socket.socketpair()
    with a, b:
        skqueue.tunables.tx_zcopy_min = 0
        before = skqueue.aio_stats()
        data = os.urandom(1 << 20)
        cb = aiocb(a, data)
        aio_write(cb)
        assert recv_exactly(b, len(data)) == data
        assert finish(cb) == len(data)
        after = skqueue.aio_stats()
        assert after["zc_sends"] == before["zc_sends"]
        assert after["copy_bytes"] - before["copy_bytes"] == len(data)


def test_socket_closed_behind_our_back_gives_ebadf() -> None:
    a, b = socket.socketpair()
    cb = aiocb(a.fileno(), bytearray(10))
    aio_read(cb)
    a.close()
    try:
        aio_suspend([cb], 5)
        assert aio_error(cb) == errno.EBADF
        with pytest.raises(OSError) as info:
            aio_return(cb)
        assert info.value.errno == errno.EBADF
    finally:
        b.close()


def test_toggling_tx_zcopy_while_1000_jobs_run(tcp_pair: Pair) -> None:
    a, b = tcp_pair
    skqueue.tunables.tx_zcopy_min = 4096
    rng = random.Random(5)
    payloads = [rng.randbytes(rng.choice((10, 3000, 5000, 40_000, 200_000))) for _ in range(1000)]
    total = sum(map(len, payloads))
    received = bytearray()

    def reader() -> None:
        while len(received) < total:
            chunk = b.recv(1 << 20)
            if not chunk:
                return
            received.extend(chunk)

    stop = threading.Event()

    def toggle() -> None:
        while not stop.is_set():
            skqueue.tunables.tx_zcopy = 1 - skqueue.tunables.tx_zcopy
            time.sleep(0.0005)

    threads = [threading.Thread(target=reader), threading.Thread(target=toggle)]
    before = skqueue.aio_stats()
    for t in threads:
        t.start()
    cbs = [aiocb(a, p) for p in payloads]
    try:
        for cb in cbs:
            aio_write(cb)
        finished: dict[int, int] = {}
        for _ in cbs:
            cb, status = aio_waitcomplete(30)
            assert id(cb) not in finished  # each completes once
            finished[id(cb)] = status
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert [finished[id(cb)] for cb in cbs] == [len(p) for p in payloads]
    assert bytes(received) == b"".join(payloads)
    after = skqueue.aio_stats()
    assert after["zc_sends"] > before["zc_sends"]
    assert after["copy_bytes"] > before["copy_bytes"]
    assert after["zc_released"] - before["zc_released"] == after["zc_sends"] - before["zc_sends"]
