"""Real-fd tests for skqueue.backend.syscalls (no mocks)."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from skqueue.backend import syscalls as sc

MS = 1_000_000


def wait_readable(fd: int, timeout: float = 2.0) -> bool:
    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable)


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


# --------------------------------------------------------------------------- timerfd


@pytest.fixture
def timer_fd() -> Iterator[int]:
    fd = sc.timerfd_create()
    yield fd
    os.close(fd)


def test_timerfd_flags(timer_fd: int) -> None:
    assert os.get_blocking(timer_fd) is False
    assert os.get_inheritable(timer_fd) is False
    assert sc.timerfd_read(timer_fd) == 0  # never armed: EAGAIN, not an error


def test_timerfd_relative_fires_on_time(timer_fd: int) -> None:
    start = time.monotonic()
    sc.timerfd_settime_ns(timer_fd, 50 * MS, absolute=False)
    assert not wait_readable(timer_fd, 0.02)
    assert wait_readable(timer_fd)
    elapsed = time.monotonic() - start
    assert 0.049 <= elapsed < 0.5
    assert sc.timerfd_read(timer_fd) == 1
    assert sc.timerfd_read(timer_fd) == 0


def test_timerfd_absolute_deadline(timer_fd: int) -> None:
    deadline = time.clock_gettime_ns(time.CLOCK_MONOTONIC) + 30 * MS
    sc.timerfd_settime_ns(timer_fd, deadline)
    assert wait_readable(timer_fd)
    assert time.clock_gettime_ns(time.CLOCK_MONOTONIC) >= deadline
    assert sc.timerfd_read(timer_fd) == 1


def test_timerfd_past_absolute_deadline_fires_at_once(timer_fd: int) -> None:
    sc.timerfd_settime_ns(timer_fd, time.clock_gettime_ns(time.CLOCK_MONOTONIC) - 10 * MS)
    assert wait_readable(timer_fd, 0.1)
    assert sc.timerfd_read(timer_fd) == 1


def test_timerfd_interval_counts_expirations(timer_fd: int) -> None:
    start = time.monotonic_ns()
    sc.timerfd_settime_ns(timer_fd, 10 * MS, absolute=False, interval_ns=10 * MS)
    time.sleep(0.065)
    count = sc.timerfd_read(timer_fd)
    elapsed = time.monotonic_ns() - start
    assert 6 <= count <= elapsed // (10 * MS)
    assert wait_readable(timer_fd)  # still armed: periodic
    assert sc.timerfd_read(timer_fd) >= 1


def test_timerfd_disarm(timer_fd: int) -> None:
    sc.timerfd_settime_ns(timer_fd, 30 * MS, absolute=False)
    sc.timerfd_settime_ns(timer_fd, 0)
    assert not wait_readable(timer_fd, 0.08)
    assert sc.timerfd_read(timer_fd) == 0


def test_timerfd_errors() -> None:
    with pytest.raises(OSError) as info:
        sc.timerfd_create(12345)
    assert info.value.errno == errno.EINVAL
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            sc.timerfd_settime_ns(r, 10 * MS, absolute=False)
        assert info.value.errno == errno.EINVAL
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.skipif(os.geteuid() != 0, reason="setting the clock needs root")
def test_timerfd_cancel_on_set_reports_clock_change() -> None:
    fd = sc.timerfd_create(time.CLOCK_REALTIME)
    try:
        far = time.clock_gettime_ns(time.CLOCK_REALTIME) + 3600 * 1_000_000_000
        sc.timerfd_settime_ns(fd, far, cancel_on_set=True)
        assert sc.timerfd_read(fd) == 0
        # Setting the clock to (about) its own value is a "set" and cancels the timer.
        time.clock_settime_ns(time.CLOCK_REALTIME, time.clock_gettime_ns(time.CLOCK_REALTIME))
        assert wait_readable(fd)
        assert sc.timerfd_read(fd) == -1
    finally:
        os.close(fd)


# -------------------------------------------------------------------------- signalfd


@pytest.fixture
def blocked_usr() -> Iterator[None]:
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGUSR2})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@pytest.mark.usefixtures("blocked_usr")
def test_signalfd_receives_blocked_signal() -> None:
    fd = sc.signalfd(-1, [signal.SIGUSR1])
    try:
        assert os.get_blocking(fd) is False
        assert os.get_inheritable(fd) is False
        assert sc.read_signalfd(fd) == []
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        assert wait_readable(fd)
        infos = sc.read_signalfd(fd)
        assert len(infos) == 1
        info = infos[0]
        assert info.signo == signal.SIGUSR1
        assert info.code == -6  # SI_TKILL: sent by tgkill
        assert info.pid == os.getpid()
        assert info.uid == os.getuid()
        assert sc.read_signalfd(fd) == []
    finally:
        os.close(fd)


@pytest.mark.usefixtures("blocked_usr")
def test_signalfd_update_mask_and_read_several() -> None:
    fd = sc.signalfd(-1, [signal.SIGUSR1])
    try:
        assert sc.signalfd(fd, [signal.SIGUSR1, signal.SIGUSR2]) == fd
        me = threading.get_ident()
        signal.pthread_kill(me, signal.SIGUSR2)
        signal.pthread_kill(me, signal.SIGUSR1)
        got = sorted(i.signo for i in sc.read_signalfd(fd))
        assert got == [signal.SIGUSR1, signal.SIGUSR2]
        # Narrowing the mask hides SIGUSR2: it stays pending on the thread instead.
        sc.signalfd(fd, [signal.SIGUSR1])
        signal.pthread_kill(me, signal.SIGUSR2)
        assert sc.read_signalfd(fd) == []
        assert signal.SIGUSR2 in signal.sigpending()
        sc.signalfd(fd, [signal.SIGUSR2])
        assert [i.signo for i in sc.read_signalfd(fd)] == [signal.SIGUSR2]
    finally:
        os.close(fd)


def test_signalfd_rejects_bad_signal_numbers() -> None:
    for bad in (0, -1, signal.NSIG, 5000):
        with pytest.raises(OSError) as info:
            sc.signalfd(-1, [bad])
        assert info.value.errno == errno.EINVAL


def test_signalfd_bad_fd() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            sc.signalfd(r, [signal.SIGUSR1])
        assert info.value.errno == errno.EINVAL
    finally:
        os.close(r)
        os.close(w)


# --------------------------------------------------------------------------- inotify


@pytest.fixture
def inotify_fd() -> Iterator[int]:
    fd = sc.inotify_init()
    yield fd
    os.close(fd)


def masks(fd: int) -> list[int]:
    assert wait_readable(fd)
    return [event.mask for event in sc.read_inotify(fd)]


def test_inotify_file_events(inotify_fd: int, tmp_path: Path) -> None:
    assert os.get_blocking(inotify_fd) is False
    assert sc.read_inotify(inotify_fd) == []
    path = tmp_path / "watched"
    path.write_bytes(b"x")
    mask = sc.IN_MODIFY | sc.IN_ATTRIB | sc.IN_MOVE_SELF | sc.IN_DELETE_SELF
    wd = sc.inotify_add_watch(inotify_fd, str(path), mask)
    assert wd > 0
    assert sc.inotify_add_watch(inotify_fd, os.fsencode(path), mask) == wd  # same inode

    with open(path, "ab") as f:
        f.write(b"more")
    assert masks(inotify_fd) == [sc.IN_MODIFY]
    os.chmod(path, 0o600)
    assert masks(inotify_fd) == [sc.IN_ATTRIB]
    moved = tmp_path / "moved"
    os.rename(path, moved)
    events = sc.read_inotify(inotify_fd)
    assert [(e.wd, e.mask, e.name) for e in events] == [(wd, sc.IN_MOVE_SELF, "")]
    os.unlink(moved)
    # Deleting the file also removes the watch, which the kernel reports as IN_IGNORED.
    assert masks(inotify_fd) == [sc.IN_ATTRIB, sc.IN_DELETE_SELF, sc.IN_IGNORED]
    sc.inotify_rm_watch(inotify_fd, wd)  # already gone: EINVAL is swallowed


def test_inotify_rm_watch(inotify_fd: int, tmp_path: Path) -> None:
    wd = sc.inotify_add_watch(inotify_fd, str(tmp_path), sc.IN_CREATE)
    sc.inotify_rm_watch(inotify_fd, wd)
    assert masks(inotify_fd) == [sc.IN_IGNORED]
    (tmp_path / "after").touch()
    assert not wait_readable(inotify_fd, 0.05)
    sc.inotify_rm_watch(inotify_fd, wd)  # removed twice: EINVAL is swallowed
    with pytest.raises(OSError) as info:
        sc.inotify_rm_watch(10_000, wd)
    assert info.value.errno == errno.EBADF


def test_inotify_add_watch_errors(inotify_fd: int, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        sc.inotify_add_watch(inotify_fd, str(tmp_path / "missing"), sc.IN_MODIFY)


def test_inotify_directory_names_and_drains_everything(inotify_fd: int, tmp_path: Path) -> None:
    wd = sc.inotify_add_watch(inotify_fd, str(tmp_path), sc.IN_CREATE | sc.IN_DELETE)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub").rmdir()
    events = sc.read_inotify(inotify_fd)
    assert [(e.wd, e.mask, e.name) for e in events] == [
        (wd, sc.IN_CREATE | sc.IN_ISDIR, "sub"),
        (wd, sc.IN_DELETE | sc.IN_ISDIR, "sub"),
    ]
    # More than one 64 KiB read's worth of events: all of them come back in one call.
    names = [f"{i:04d}-" + "n" * 190 for i in range(400)]
    for name in names:
        (tmp_path / name).touch()
    events = sc.read_inotify(inotify_fd)
    assert [e.name for e in events] == names
    assert all(e.mask == sc.IN_CREATE for e in events)
    assert sc.read_inotify(inotify_fd) == []


def test_inotify_rename_cookie(inotify_fd: int, tmp_path: Path) -> None:
    (tmp_path / "a").touch()
    sc.inotify_add_watch(inotify_fd, str(tmp_path), sc.IN_MOVED_FROM | sc.IN_MOVED_TO)
    os.rename(tmp_path / "a", tmp_path / "b")
    moved_from, moved_to = sc.read_inotify(inotify_fd)
    assert (moved_from.mask, moved_from.name) == (sc.IN_MOVED_FROM, "a")
    assert (moved_to.mask, moved_to.name) == (sc.IN_MOVED_TO, "b")
    assert moved_from.cookie == moved_to.cookie != 0


# ----------------------------------------------------------------- accept queue length


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
    assert sc.accept_queue_length(fd) == 0
    clients = [connect_to(listener)]
    assert wait_until(lambda: sc.accept_queue_length(fd) == 1)
    clients += [connect_to(listener), connect_to(listener)]
    assert wait_until(lambda: sc.accept_queue_length(fd) == 3)
    conn, _ = listener.accept()
    assert sc.accept_queue_length(fd) == 2
    # Accepted sockets share the listener's port but are not listeners.
    with pytest.raises(OSError) as info:
        sc.accept_queue_length(conn.fileno())
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        sc.accept_queue_length(clients[0].fileno())
    assert info.value.errno == errno.EINVAL
    conn.close()
    for client in clients:
        client.close()


def test_accept_queue_length_from_other_threads(listener: socket.socket) -> None:
    clients = [connect_to(listener) for _ in range(2)]
    fd = listener.fileno()
    assert wait_until(lambda: sc.accept_queue_length(fd) == 2)
    results: list[int] = []

    def worker() -> None:
        results.extend(sc.accept_queue_length(fd) for _ in range(50))

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
            sc.accept_queue_length(unbound.fileno())
        assert info.value.errno == errno.EINVAL
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        with pytest.raises(OSError) as info:
            sc.accept_queue_length(udp.fileno())
        assert info.value.errno == errno.EINVAL
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            sc.accept_queue_length(r)
        assert info.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)
    with open(tmp_path / "f", "wb") as f, pytest.raises(OSError) as info:
        sc.accept_queue_length(f.fileno())
    assert info.value.errno == errno.ENOTSOCK
    with pytest.raises(OSError) as info:
        sc.accept_queue_length(10_000)
    assert info.value.errno == errno.EBADF


def test_accept_queue_length_after_listener_stops(listener: socket.socket) -> None:
    fd = listener.fileno()
    client = connect_to(listener)
    assert wait_until(lambda: sc.accept_queue_length(fd) == 1)
    listener.shutdown(socket.SHUT_RDWR)
    if listener.family == socket.AF_UNIX:
        # A shut-down AF_UNIX listener keeps its queue: the connection is still acceptable.
        assert sc.accept_queue_length(fd) == 1
        listener.accept()[0].close()
        assert sc.accept_queue_length(fd) == 0
    else:
        # A TCP listener that is shut down stops listening and drops its queue.
        with pytest.raises(OSError) as info:
            sc.accept_queue_length(fd)
        assert info.value.errno == errno.EINVAL
    client.close()


def test_accept_queue_length_fd_reuse() -> None:
    first = socket.socket()
    first.bind(("127.0.0.1", 0))
    first.listen(4)
    client = connect_to(first)
    assert wait_until(lambda: sc.accept_queue_length(first.fileno()) == 1)
    number = first.fileno()
    first.close()
    client.close()
    second = socket.socket()
    assert second.fileno() == number
    second.bind(("127.0.0.1", 0))
    second.listen(4)
    assert sc.accept_queue_length(number) == 0
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
        return sum(sc.accept_queue_length(s.fileno()) for s in group)

    assert wait_until(lambda: total() == 9)
    for sock in group:
        reported = sc.accept_queue_length(sock.fileno())
        accepted = 0
        while True:
            try:
                conn, _ = sock.accept()
            except BlockingIOError:
                break
            conn.close()
            accepted += 1
        assert reported == accepted
        assert sc.accept_queue_length(sock.fileno()) == 0
    for sock in group + clients:
        sock.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="SO_BINDTODEVICE needs privileges")
def test_accept_queue_length_device_bound_listener() -> None:
    """The exact lookup cannot find a device-bound listener; the dump fallback can."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        assert sc.accept_queue_length(listener.fileno()) == 0
        with connect_to(listener), connect_to(listener):
            assert wait_until(lambda: sc.accept_queue_length(listener.fileno()) == 2)


@pytest.mark.forks_with_threads  # earlier tests' AIO and signal threads may run
@pytest.mark.timeout(30)
def test_accept_queue_length_in_forked_child() -> None:
    """Parent and child each get their own netlink socket, so replies never cross."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    client = connect_to(listener)
    fd = listener.fileno()
    assert wait_until(lambda: sc.accept_queue_length(fd) == 1)
    pid = os.fork()
    if pid == 0:  # child
        signal.alarm(20)  # a shared netlink socket would make one side wait forever
        code = 0
        try:
            if any(sc.accept_queue_length(fd) != 1 for _ in range(500)):
                code = 1
        except BaseException:
            code = 2
        os._exit(code)
    parent_ok = all(sc.accept_queue_length(fd) == 1 for _ in range(500))
    _, status = os.waitpid(pid, 0)
    assert parent_ok
    assert os.waitstatus_to_exitcode(status) == 0
    client.close()
    listener.close()


# ------------------------------------------------------------------------ exit status


def spawn(*code: str) -> int:
    return os.posix_spawn(sys.executable, [sys.executable, "-c", *code], os.environ)


def test_exit_status_exited_child_not_reaped() -> None:
    pid = spawn("import sys; sys.exit(3)")
    pidfd = os.pidfd_open(pid)
    try:
        assert wait_readable(pidfd, 10)
        status = sc.exit_status(pidfd)
        assert status == 3 << 8
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3
        assert sc.exit_status(pidfd) == status  # still there: not reaped
        reaped, wait_status = os.waitpid(pid, 0)
        assert (reaped, wait_status) == (pid, status)
        assert sc.exit_status(pidfd) is None  # reaped now: ECHILD
    finally:
        os.close(pidfd)


def test_exit_status_killed_child() -> None:
    pid = spawn("import time; time.sleep(60)")
    pidfd = os.pidfd_open(pid)
    try:
        assert sc.exit_status(pidfd) is None  # still running
        os.kill(pid, signal.SIGTERM)
        assert wait_readable(pidfd, 10)
        status = sc.exit_status(pidfd)
        assert status == signal.SIGTERM
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        assert os.waitpid(pid, 0) == (pid, status)
    finally:
        os.close(pidfd)


def test_exit_status_not_our_child() -> None:
    pidfd = os.pidfd_open(os.getppid())
    try:
        assert sc.exit_status(pidfd) is None
    finally:
        os.close(pidfd)


# --------------------------------------------------------------------- proc connector


@pytest.fixture
def proc_connector() -> Iterator[sc.ProcConnector]:
    try:
        conn = sc.ProcConnector.open()
    except PermissionError:
        pytest.skip("proc connector not permitted here (EPERM)")
    yield conn
    conn.close()


def collect_until(
    conn: sc.ProcConnector, done: Callable[[list[sc.ProcEvent]], bool], timeout: float = 5.0
) -> list[sc.ProcEvent]:
    events: list[sc.ProcEvent] = []
    deadline = time.monotonic() + timeout
    while not done(events) and time.monotonic() < deadline:
        if wait_readable(conn.fileno(), 0.1):
            events += conn.read_events()
    return events


def test_proc_connector_fork_exec_exit(proc_connector: sc.ProcConnector) -> None:
    conn = proc_connector
    assert conn.fileno() >= 0
    assert os.get_blocking(conn.fileno()) is False
    pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", "exit 5"], os.environ)

    def seen_exit(events: list[sc.ProcEvent]) -> bool:
        return any(e.what == "exit" and e.pid == pid for e in events)

    events = [e for e in collect_until(conn, seen_exit) if e.tgid == pid]
    os.waitpid(pid, 0)
    whats = [e.what for e in events]
    assert whats[0] == "fork" and "exec" in whats and whats[-1] == "exit"
    fork = events[0]
    assert (fork.pid, fork.parent_tgid) == (pid, os.getpid())
    exit_event = events[-1]
    assert exit_event.exit_code == 5 << 8
    assert exit_event.parent_tgid == os.getpid()
    assert conn.overflow is False


def test_proc_connector_reports_overflow(proc_connector: sc.ProcConnector) -> None:
    conn = proc_connector
    # Shrink the receive buffer to its minimum so that unread events are dropped.
    view = socket.socket(fileno=os.dup(conn.fileno()))
    view.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    view.close()
    pids = [os.posix_spawn("/bin/true", ["/bin/true"], os.environ) for _ in range(30)]
    for pid in pids:
        os.waitpid(pid, 0)
    conn.read_events()
    assert conn.overflow is True
    conn.overflow = False
    view = socket.socket(fileno=os.dup(conn.fileno()))
    view.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    view.close()
    pid = os.posix_spawn("/bin/true", ["/bin/true"], os.environ)
    os.waitpid(pid, 0)
    events = collect_until(conn, lambda evs: any(e.pid == pid and e.what == "exit" for e in evs))
    assert any(e.pid == pid and e.what == "exit" for e in events)
    assert conn.overflow is False


def test_proc_connector_close_is_idempotent() -> None:
    try:
        conn = sc.ProcConnector.open()
    except PermissionError:
        pytest.skip("proc connector not permitted here (EPERM)")
    fd = conn.fileno()
    conn.close()
    conn.close()
    with pytest.raises(OSError):
        os.fstat(fd)


# ----------------------------------------------------------------- buffer measurements


def test_pipe_capacity() -> None:
    r, w = os.pipe()
    try:
        assert sc.pipe_capacity(w) == sc.pipe_capacity(r) > 0
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 128 * 1024)
        assert sc.pipe_capacity(w) == 128 * 1024
    finally:
        os.close(r)
        os.close(w)
    with socket.socket() as s, pytest.raises(OSError) as info:
        sc.pipe_capacity(s.fileno())
    assert info.value.errno == errno.EBADF


def test_socket_outq_unix_stream() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert sc.socket_outq(a.fileno()) == 0
        a.sendall(b"x" * 1000)
        assert sc.socket_outq(a.fileno()) >= 1000  # charged to the sender until read
        assert b.recv(2000) == b"x" * 1000
        assert sc.socket_outq(a.fileno()) == 0


def test_socket_outq_tcp_unsent() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.setblocking(False)
            sent = 0
            with pytest.raises(BlockingIOError):
                while True:
                    sent += client.send(b"y" * 65536)
            # The receiver is full, so part of what we sent sits unsent in our queue.
            assert wait_until(lambda: 0 < sc.socket_outq(client.fileno()) <= sent)
            assert sc.socket_outq(client.fileno()) + sc.bytes_readable(server.fileno()) <= sent


def test_bytes_readable_pipe_socket_udp() -> None:
    r, w = os.pipe()
    try:
        assert sc.bytes_readable(r) == 0
        os.write(w, b"abc")
        assert sc.bytes_readable(r) == 3
        os.read(r, 2)
        assert sc.bytes_readable(r) == 1
    finally:
        os.close(r)
        os.close(w)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"0123456789")
        assert sc.bytes_readable(b.fileno()) == 10
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        tx.sendto(b"12345", rx.getsockname())
        tx.sendto(b"1234567", rx.getsockname())
        assert wait_until(lambda: sc.bytes_readable(rx.fileno()) == 5)  # next datagram
    with pytest.raises(OSError) as info:
        sc.bytes_readable(10_000)
    assert info.value.errno == errno.EBADF


def test_bytes_readable_threads_do_not_share_buffers() -> None:
    errors: list[str] = []
    pipes = []
    for size in (1, 2, 3, 4):
        r, w = os.pipe()
        os.write(w, b"z" * size)
        pipes.append((r, w, size))

    def worker(fd: int, size: int) -> None:
        for _ in range(20_000):
            got = sc.bytes_readable(fd)
            if got != size:
                errors.append(f"fd {fd}: {got} != {size}")
                return

    threads = [threading.Thread(target=worker, args=(r, size)) for r, _, size in pipes]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so a shared buffer would show
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
            assert not t.is_alive()
    finally:
        sys.setswitchinterval(interval)
    for r, w, _ in pipes:
        os.close(r)
        os.close(w)
    assert errors == []
