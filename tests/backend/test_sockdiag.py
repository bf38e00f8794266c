"""sock_diag: accept-queue lengths of TCP and AF_UNIX listeners. Real fds, no mocks."""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skqueue.backend import sockdiag
from skqueue.backend.sockdiag import accept_queue_length
from support.kernel import wait_until


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture(params=["tcp4", "tcp6", "unix"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[socket.socket]:
    kind = request.param
    if kind == "tcp4":
        sock = socket.socket(socket.AF_INET)
        sock.bind(("127.0.0.1", 0))
    elif kind == "tcp6":
        if not has_ipv6_loopback():
            pytest.skip("no ::1")
        sock = socket.socket(socket.AF_INET6)
        sock.bind(("::1", 0))
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(tmp_path / "listener.sock"))
    sock.listen(16)
    yield sock
    sock.close()


def connect_to(listener: socket.socket) -> socket.socket:
    client = socket.socket(listener.family)
    client.connect(listener.getsockname())
    return client


def test_accept_queue_length_counts_pending(listener: socket.socket) -> None:
    fd = listener.fileno()
    assert accept_queue_length(fd) == 0
    clients = [connect_to(listener)]
    assert wait_until(lambda: accept_queue_length(fd) == 1)
    clients += [connect_to(listener), connect_to(listener)]
    assert wait_until(lambda: accept_queue_length(fd) == 3)
    conn, _ = listener.accept()
    assert accept_queue_length(fd) == 2
    # Accepted sockets share the listener's port but are not listeners.
    with pytest.raises(OSError) as info:
        accept_queue_length(conn.fileno())
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        accept_queue_length(clients[0].fileno())
    assert info.value.errno == errno.EINVAL
    conn.close()
    for client in clients:
        client.close()


def test_accept_queue_length_from_other_threads(listener: socket.socket) -> None:
    clients = [connect_to(listener) for _ in range(2)]
    fd = listener.fileno()
    assert wait_until(lambda: accept_queue_length(fd) == 2)
    results: list[int] = []

    def worker() -> None:
        results.extend(accept_queue_length(fd) for _ in range(50))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert results == [2] * 200
    for client in clients:
        client.close()


def test_accept_queue_length_not_a_listener(tmp_path: Path) -> None:
    with socket.socket() as unbound:
        with pytest.raises(OSError) as info:
            accept_queue_length(unbound.fileno())
        assert info.value.errno == errno.EINVAL
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        with pytest.raises(OSError) as info:
            accept_queue_length(udp.fileno())
        assert info.value.errno == errno.EINVAL
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            accept_queue_length(r)
        assert info.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)
    with open(tmp_path / "f", "wb") as f, pytest.raises(OSError) as info:
        accept_queue_length(f.fileno())
    assert info.value.errno == errno.ENOTSOCK
    with pytest.raises(OSError) as info:
        accept_queue_length(10_000)
    assert info.value.errno == errno.EBADF


def test_accept_queue_length_after_listener_stops(listener: socket.socket) -> None:
    fd = listener.fileno()
    client = connect_to(listener)
    assert wait_until(lambda: accept_queue_length(fd) == 1)
    listener.shutdown(socket.SHUT_RDWR)
    if listener.family == socket.AF_UNIX:
        # A shut-down AF_UNIX listener keeps its queue: the connection is still acceptable.
        assert accept_queue_length(fd) == 1
        listener.accept()[0].close()
        assert accept_queue_length(fd) == 0
    else:
        # A TCP listener that is shut down stops listening and drops its queue.
        with pytest.raises(OSError) as info:
            accept_queue_length(fd)
        assert info.value.errno == errno.EINVAL
    client.close()


def test_accept_queue_length_fd_reuse() -> None:
    first = socket.socket()
    first.bind(("127.0.0.1", 0))
    first.listen(4)
    client = connect_to(first)
    assert wait_until(lambda: accept_queue_length(first.fileno()) == 1)
    number = first.fileno()
    first.close()
    client.close()
    second = socket.socket()
    assert second.fileno() == number
    second.bind(("127.0.0.1", 0))
    second.listen(4)
    assert accept_queue_length(number) == 0
    second.close()


def test_accept_queue_length_reuseport_group() -> None:
    group: list[socket.socket] = []
    for _ in range(3):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", group[0].getsockname()[1] if group else 0))
        sock.listen(16)
        sock.setblocking(False)
        group.append(sock)
    clients = [connect_to(group[0]) for _ in range(9)]

    def total() -> int:
        return sum(accept_queue_length(s.fileno()) for s in group)

    assert wait_until(lambda: total() == 9)
    for sock in group:
        reported = accept_queue_length(sock.fileno())
        accepted = 0
        while True:
            try:
                conn, _ = sock.accept()
            except BlockingIOError:
                break
            conn.close()
            accepted += 1
        assert reported == accepted
        assert accept_queue_length(sock.fileno()) == 0
    for sock in group + clients:
        sock.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="SO_BINDTODEVICE needs privileges")
def test_accept_queue_length_device_bound_listener() -> None:
    """The exact lookup cannot find a device-bound listener; the dump fallback can."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        assert accept_queue_length(listener.fileno()) == 0
        with connect_to(listener), connect_to(listener):
            assert wait_until(lambda: accept_queue_length(listener.fileno()) == 2)


@pytest.mark.forks_with_threads  # earlier tests' AIO and signal threads may run
@pytest.mark.timeout(30)
def test_accept_queue_length_in_forked_child() -> None:
    """Parent and child each get their own netlink socket, so replies never cross."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    client = connect_to(listener)
    fd = listener.fileno()
    assert wait_until(lambda: accept_queue_length(fd) == 1)
    pid = os.fork()
    if pid == 0:  # child
        signal.alarm(20)  # a shared netlink socket would make one side wait forever
        code = 0
        try:
            if any(accept_queue_length(fd) != 1 for _ in range(500)):
                code = 1
        except BaseException:
            code = 2
        os._exit(code)
    parent_ok = all(accept_queue_length(fd) == 1 for _ in range(500))
    _, status = os.waitpid(pid, 0)
    assert parent_ok
    assert os.waitstatus_to_exitcode(status) == 0
    client.close()
    listener.close()


# ------------------------------------------------------------------ unanswered request


@pytest.fixture
def quiet_link(monkeypatch: pytest.MonkeyPatch) -> Iterator[sockdiag._DiagLink]:
    """A diag link whose socket nobody answers on (a datagram pair), with a short bound."""
    monkeypatch.setattr(sockdiag, "_DIAG_REPLY_TIMEOUT", 0.2)
    quiet, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with quiet, peer:
        yield sockdiag._DiagLink(quiet)


def test_diag_link_that_never_answers_times_out(quiet_link: sockdiag._DiagLink) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        quiet_link.exchange(b"request", False)
    assert info.value.errno == errno.ETIMEDOUT
    assert 0.15 <= time.monotonic() - start < 30  # bounded, not hung


def test_real_diag_links_carry_the_bound() -> None:
    link = sockdiag._diag_pool.take()
    try:
        timeval = link.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
        assert sockdiag._TIMEVAL.unpack(timeval) == (1, 0)
        assert link.sock.gettimeout() is None  # blocking: no poll(2) before each recv
    finally:
        sockdiag._diag_pool.give_back(link)


def test_unanswered_measurement_fails_and_its_socket_is_dropped(
    quiet_link: sockdiag._DiagLink,
) -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=4) as listener:
        sockdiag._diag_pool.give_back(quiet_link)  # the next measurement takes it
        with pytest.raises(TimeoutError) as info:
            accept_queue_length(listener.fileno())
        assert info.value.errno == errno.ETIMEDOUT
        assert quiet_link.sock.fileno() == -1  # closed, not pooled again
        assert accept_queue_length(listener.fileno()) == 0  # a fresh socket answers
