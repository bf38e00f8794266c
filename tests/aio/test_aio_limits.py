"""Limits and malformed input: offsets, timeouts, fork(), lio_listio's edges, wrong types.

Each case must end with a clear error or a finished job, never a job stuck in
progress or a worker thread gone (the autouse fixture counts jobs and buffers).
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import skqueue
from skqueue import (
    EV_ONESHOT,
    EVFILT_LIO,
    LIO_NOWAIT,
    LIO_READ,
    LIO_WAIT,
    LIO_WRITE,
    aio_error,
    aio_read,
    aio_return,
    aio_suspend,
    aio_waitcomplete,
    aio_write,
    aiocb,
    lio_listio,
    sigevent_kevent,
)
from skqueue.aio import api
from support import checkout_env

from .conftest import PATIENCE, finish


@pytest.fixture
def fd(fd: int) -> int:
    """The scratch file, holding ten known bytes."""
    os.pwrite(fd, b"0123456789", 0)
    return fd


def assert_errno(code: int, call: Callable[[], object]) -> None:
    with pytest.raises(OSError) as info:
        call()
    assert info.value.errno == code, info.value


# 1. Offsets, and a worker that meets an exception ----------------------------------
@pytest.mark.parametrize("offset", [-1, 2**63, 2**64 + 5, 2**200])
@pytest.mark.parametrize("submit", [aio_read, aio_write], ids=["read", "write"])
def test_offset_outside_off_t_is_einval(
    fd: int, offset: int, submit: Callable[[aiocb], None]
) -> None:
    skqueue.tunables.aio_workers = 1  # one dead worker would stop every file job
    for _ in range(3):
        cb = aiocb(fd, bytearray(10), offset)
        assert_errno(errno.EINVAL, lambda: submit(cb))  # noqa: B023
        assert cb.ident == 0 and aio_error(cb) == errno.EINVAL  # recorded, not queued
    assert skqueue.aio_stats()["buffers_held"] == 0
    cb = aiocb(fd, bytearray(10), 0)
    aio_read(cb)
    assert finish(cb) == 10 and cb.buf == b"0123456789"


@pytest.mark.parametrize("number", [-1, 2**31, 2**63, 2**70])
def test_descriptor_no_process_can_have_is_ebadf(number: int) -> None:
    cb = aiocb(number, bytearray(1))
    assert_errno(errno.EBADF, lambda: aio_read(cb))
    assert aio_error(cb) == errno.EBADF
    assert_errno(errno.EBADF, lambda: skqueue.aio_cancel(number))


def test_largest_offset_is_served(fd: int) -> None:
    cb = aiocb(fd, bytearray(10), 2**63 - 1)
    aio_read(cb)
    aio_suspend([cb], PATIENCE)
    assert aio_error(cb) != errno.EINPROGRESS  # whatever the kernel says, it finished
    if aio_error(cb):
        assert_errno(aio_error(cb), lambda: aio_return(cb))
    else:
        assert aio_return(cb) == 0


@pytest.mark.parametrize(
    ("exc", "code"),
    [(RuntimeError("disk on fire"), errno.EIO), (ValueError("bad"), errno.EINVAL)],
    ids=["other", "value"],
)
def test_worker_survives_a_job_that_raises(
    fd: int, monkeypatch: pytest.MonkeyPatch, exc: Exception, code: int
) -> None:
    skqueue.tunables.aio_workers = 2
    real = os.preadv

    def failing(handle: int, buffers: list[memoryview], offset: int) -> int:
        if handle == fd:
            raise exc
        return real(handle, buffers, offset)

    monkeypatch.setattr(os, "preadv", failing)
    for _ in range(skqueue.tunables.aio_workers + 2):
        cb = aiocb(fd, bytearray(4))
        aio_read(cb)
        aio_suspend([cb], PATIENCE)
        assert aio_error(cb) == code
        assert_errno(code, lambda: aio_return(cb))  # noqa: B023
    monkeypatch.undo()
    cb = aiocb(fd, bytearray(4))
    aio_read(cb)
    assert finish(cb) == 4 and cb.buf == b"0123"
    assert skqueue.aio_stats()["workers"] <= skqueue.tunables.aio_workers


# 2. Timeouts ------------------------------------------------------------------------
BAD_TIMEOUTS: list[tuple[object, type[Exception] | int]] = [
    (float("nan"), ValueError),
    (float("inf"), OverflowError),
    (1e300, OverflowError),
    (2**200, OverflowError),
    (-1, errno.EINVAL),
    (-0.5, errno.EINVAL),
    (float("-inf"), errno.EINVAL),
    ("1", TypeError),
    (1j, TypeError),
    ([], TypeError),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("timeout", "expected"), BAD_TIMEOUTS, ids=repr)
@pytest.mark.parametrize("call", ["aio_waitcomplete", "aio_suspend"])
def test_bad_timeout_is_refused(
    fd: int, call: str, timeout: object, expected: type[Exception] | int
) -> None:
    cb = aiocb(fd, bytearray(4))
    aio_read(cb)
    aio_suspend([cb], PATIENCE)  # something is done: a wait that ran would return

    def wait() -> object:
        if call == "aio_suspend":
            aio_suspend([cb], timeout)  # type: ignore[arg-type]
            return None
        return aio_waitcomplete(timeout)  # type: ignore[arg-type]

    if isinstance(expected, int):
        assert_errno(expected, wait)
    else:
        with pytest.raises(expected):
            wait()
    assert aio_return(cb) == 4  # the refused wait reaped nothing


def test_huge_but_holdable_timeout_waits(fd: int) -> None:
    cb = aiocb(fd, bytearray(4))
    aio_read(cb)
    aio_suspend([cb], 1e9)
    assert aio_waitcomplete(2**30) == (cb, 4)
    assert_errno(errno.EAGAIN, lambda: aio_waitcomplete(0))
    assert_errno(errno.EAGAIN, lambda: aio_suspend([aiocb(fd)], 0.0))


# 3. fork() -------------------------------------------------------------------------
def test_aio_works_in_a_fork_child(tmp_path: Path) -> None:
    # A script of its own: its worker and engine threads are alive at fork().
    script = textwrap.dedent(
        """
        import gc, os, socket, sys, traceback
        import skqueue
        from skqueue import aio_error, aio_read, aio_return, aio_suspend, aio_write, aiocb

        def finish(cb):
            aio_suspend([cb], 10)
            return aio_return(cb)

        def child(fd, a, pending):
            assert skqueue.aio_stats()["jobs"] == 0, skqueue.aio_stats()
            try:
                aio_error(pending)
            except OSError:
                pass  # the parent's job is not the child's
            else:
                raise AssertionError("the parent's job is visible in the child")
            buf = bytearray(6)
            aio_read(got := aiocb(fd, buf, 0))
            assert finish(got) == 6 and buf == b"parent"
            c, d = socket.socketpair()
            pending.fd = c.fileno()  # the parent's block can be used again
            aio_read(pending)
            d.sendall(b"kid!")
            assert finish(pending) == 4 and pending.buf == b"kid!"
            gc.collect()
            os.fstat(a.fileno())  # the engine's wrapper did not close the caller's socket

        fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
        aio_write(written := aiocb(fd, b"parent", 0))
        assert finish(written) == 6
        a, b = socket.socketpair()
        pending = aiocb(a, bytearray(4))
        aio_read(pending)  # in flight at the fork
        pid = os.fork()
        if pid == 0:
            try:
                child(fd, a, pending)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        b.sendall(b"dad!")
        assert finish(pending) == 4 and pending.buf == b"dad!"
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "data")],
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# 4. lio_listio ------------------------------------------------------------------------
def test_list_with_nothing_queued_posts_no_event(fd: int, kq: skqueue.kqueue) -> None:
    refused = aiocb(fd, bytearray(4), -1, lio_opcode=LIO_READ)
    assert_errno(errno.EIO, lambda: lio_listio(LIO_NOWAIT, [refused], sigevent_kevent(kq)))
    assert aio_error(refused) == errno.EINVAL
    assert lio_listio(LIO_NOWAIT, [None], sigevent_kevent(kq, 0, "empty")) > 0
    for _ in range(2):  # flags 0: a leaked knote would come back on every wait
        assert kq.control(None, 4, 0) == []


def test_released_buffer_is_a_per_entry_error(fd: int) -> None:
    released = memoryview(bytearray(4))
    released.release()
    first = aiocb(fd, b"ab", 0, lio_opcode=LIO_WRITE)
    bad = aiocb(fd, released, 2, lio_opcode=LIO_WRITE)
    last = aiocb(fd, b"yz", 8, lio_opcode=LIO_WRITE)
    assert_errno(errno.EIO, lambda: lio_listio(LIO_WAIT, [first, bad, last]))
    assert aio_error(bad) == errno.EINVAL and bad.ident == 0
    assert (aio_return(first), aio_return(last)) == (2, 2)  # both were queued
    assert os.pread(fd, 10, 0) == b"ab234567yz"
    with pytest.raises(ValueError, match="released"):
        aio_write(bad)


def test_list_event_waits_for_every_entry(
    fd: int, kq: skqueue.kqueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = aiocb(fd, bytearray(2), 0, lio_opcode=LIO_READ)
    second = aiocb(fd, bytearray(2), 2, lio_opcode=LIO_READ)
    prepare = api._prepare

    def reap_first_meanwhile(cb: aiocb, op: int) -> object:
        if cb is second:  # the first job is done and reaped before this one is queued
            assert finish(first) == 2
        return prepare(cb, op)

    monkeypatch.setattr(api, "_prepare", reap_first_meanwhile)
    ident = lio_listio(LIO_NOWAIT, [first, second], sigevent_kevent(kq, EV_ONESHOT, "list"))
    aio_suspend([second], PATIENCE)
    events = kq.control(None, 4, PATIENCE)
    assert [(ev.filter, ev.ident, ev.udata) for ev in events] == [(EVFILT_LIO, ident, "list")]
    assert aio_return(second) == 2


def test_queue_limit_alone_gives_eagain() -> None:
    skqueue.tunables.aio_max_per_fd = 1
    x, y = socket.socketpair()
    with x, y:
        waiting = aiocb(x, bytearray(1), lio_opcode=LIO_READ)  # no data: stays queued
        refused = aiocb(x, bytearray(1), lio_opcode=LIO_READ)
        assert_errno(errno.EAGAIN, lambda: lio_listio(LIO_NOWAIT, [waiting, refused]))
        assert aio_error(refused) == errno.EAGAIN and refused.ident == 0
        assert aio_error(waiting) == errno.EINPROGRESS
        y.sendall(b"!")
        assert finish(waiting) == 1


# 5. Wrong types -------------------------------------------------------------------------
class _BadFileno:
    def fileno(self) -> str:
        return "3"


def _with_field(fd: int, field: str, value: object) -> aiocb:
    cb = aiocb(fd, bytearray(4))
    setattr(cb, field, value)
    return cb


WRONG_TYPES: dict[str, Callable[[int, skqueue.kqueue], object]] = {
    "aio_read(5)": lambda fd, kq: aio_read(5),  # type: ignore[arg-type]
    "aio_write(None)": lambda fd, kq: aio_write(None),  # type: ignore[arg-type]
    "aio_read(cb.fd='x')": lambda fd, kq: aio_read(_with_field(fd, "fd", "x")),
    "aio_read(cb.offset=1.5)": lambda fd, kq: aio_read(_with_field(fd, "offset", 1.5)),
    "aio_read(cb.nbytes='2')": lambda fd, kq: aio_read(_with_field(fd, "nbytes", "2")),
    "aio_fsync('x', cb)": lambda fd, kq: skqueue.aio_fsync("x", aiocb(fd)),  # type: ignore[arg-type]
    "aio_fsync(1.5, cb)": lambda fd, kq: skqueue.aio_fsync(1.5, aiocb(fd)),  # type: ignore[arg-type]
    "aio_fsync(O_SYNC, 5)": lambda fd, kq: skqueue.aio_fsync(skqueue.O_SYNC, 5),  # type: ignore[arg-type]
    "aio_error(1.5)": lambda fd, kq: aio_error(1.5),  # type: ignore[arg-type]
    "aio_error('x')": lambda fd, kq: aio_error("x"),  # type: ignore[arg-type]
    "aio_return(1.5)": lambda fd, kq: aio_return(1.5),  # type: ignore[arg-type]
    "aio_return(None)": lambda fd, kq: aio_return(None),  # type: ignore[arg-type]
    "aio_cancel('x')": lambda fd, kq: skqueue.aio_cancel("x"),
    "aio_cancel(1.5)": lambda fd, kq: skqueue.aio_cancel(1.5),
    "aio_cancel(fd, 5)": lambda fd, kq: skqueue.aio_cancel(fd, 5),  # type: ignore[arg-type]
    "aio_suspend(5)": lambda fd, kq: aio_suspend(5),  # type: ignore[arg-type]
    "aio_suspend([5])": lambda fd, kq: aio_suspend([5]),  # type: ignore[list-item]
    "aio_suspend([cb], 'x')": lambda fd, kq: aio_suspend([aiocb(fd)], "x"),  # type: ignore[arg-type]
    "aio_waitcomplete('x')": lambda fd, kq: aio_waitcomplete("x"),  # type: ignore[arg-type]
    "lio_listio('x', [])": lambda fd, kq: lio_listio("x", []),  # type: ignore[arg-type]
    "lio_listio(mode, 5)": lambda fd, kq: lio_listio(LIO_NOWAIT, 5),  # type: ignore[arg-type]
    "lio_listio(mode, [cb, 5])": lambda fd, kq: lio_listio(
        LIO_NOWAIT,
        [aiocb(fd, b"x", lio_opcode=LIO_WRITE), 5],  # type: ignore[list-item]
    ),
    "lio_listio(mode, [], 'x')": lambda fd, kq: lio_listio(LIO_NOWAIT, [], "x"),  # type: ignore[arg-type]
    "aiocb(1.5)": lambda fd, kq: aiocb(1.5),
    "aiocb('x')": lambda fd, kq: aiocb("x"),
    "aiocb(fileno() -> str)": lambda fd, kq: aiocb(_BadFileno()),
    "aiocb(offset=1.5)": lambda fd, kq: aiocb(fd, bytearray(1), 1.5),  # type: ignore[arg-type]
    "aiocb(nbytes='1')": lambda fd, kq: aiocb(fd, bytearray(1), nbytes="1"),  # type: ignore[arg-type]
    "aiocb(sigevent=5)": lambda fd, kq: aiocb(fd, bytearray(1), sigevent=5),  # type: ignore[arg-type]
    "aiocb(lio_opcode=None)": lambda fd, kq: aiocb(fd, lio_opcode=None),  # type: ignore[arg-type]
    "sigevent_kevent(5)": lambda fd, kq: sigevent_kevent(5),  # type: ignore[arg-type]
    "sigevent_kevent(kq, 'x')": lambda fd, kq: sigevent_kevent(kq, "x"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("name", list(WRONG_TYPES))
def test_wrong_type_is_a_type_error(fd: int, kq: skqueue.kqueue, name: str) -> None:
    with pytest.raises(TypeError) as info:
        WRONG_TYPES[name](fd, kq)
    assert "attribute" not in str(info.value) and str(info.value)
    assert skqueue.aio_stats()["jobs"] == 0  # nothing was queued, not even part of a list


# Siblings: the socket engine meets an exception -----------------------------------
def test_socket_engine_survives_a_pump_that_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = socket.socketpair()
    with x, y:
        target = x.fileno()
        real = socket.socket.recv_into

        def failing(sock: socket.socket, buf: memoryview, nbytes: int = 0, flags: int = 0) -> int:
            if sock.fileno() == target:
                raise RuntimeError("driver bug")
            return real(sock, buf, nbytes, flags)

        monkeypatch.setattr(socket.socket, "recv_into", failing)
        doomed = aiocb(x, bytearray(2))
        aio_read(doomed)
        y.sendall(b"zz")
        aio_suspend([doomed], PATIENCE)
        assert_errno(errno.EIO, lambda: aio_return(doomed))
        monkeypatch.undo()
        survivor = aiocb(x, bytearray(2))
        aio_read(survivor)  # the engine still runs: the data is still there
        assert finish(survivor) == 2 and survivor.buf == b"zz"
