"""EVFILT_VNODE from inotify: every note, accumulation of fflags, the flag behaviour,
fds closed or reused behind the kqueue's back, EBADF/EINVAL, queue overflow, and the
READ filter on a regular file waking when the file grows."""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import skqueue
from skqueue.backend.inotify import IN_UNMOUNT
from skqueue.constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_DISABLE,
    EV_DISPATCH,
    EV_ENABLE,
    EV_EOF,
    EV_ERROR,
    EV_ONESHOT,
    EVFILT_READ,
    EVFILT_VNODE,
    NOTE_ATTRIB,
    NOTE_DELETE,
    NOTE_EXTEND,
    NOTE_LINK,
    NOTE_RENAME,
    NOTE_REVOKE,
    NOTE_WRITE,
)
from skqueue.event import kevent
from support import nothing as _nothing
from support import one, open_fds

WAIT = 2.0
QUIET = 0.05


def nothing(kq: skqueue.kqueue) -> None:
    _nothing(kq, QUIET)


ALL = NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB | NOTE_LINK | NOTE_RENAME | NOTE_REVOKE


@pytest.fixture
def path(tmp_path: Path) -> Path:
    target = tmp_path / "file"
    target.write_bytes(b"0123456789")
    return target


@pytest.fixture
def fd(path: Path) -> Iterator[int]:
    opened = os.open(path, os.O_RDWR)
    yield opened
    with contextlib.suppress(OSError):  # unless the test closed it itself
        os.close(opened)


@pytest.fixture
def dirfd(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "d").mkdir()
    (tmp_path / "elsewhere").mkdir()
    opened = os.open(tmp_path / "d", os.O_RDONLY | os.O_DIRECTORY)
    yield opened
    os.close(opened)


def add(kq: skqueue.kqueue, fd: int, fflags: int = ALL, flags: int = 0) -> None:
    kq.control([kevent(fd, EVFILT_VNODE, EV_ADD | flags, fflags)], 0)


def notes(kq: skqueue.kqueue) -> int:
    """fflags of the one event that must come now (data is always 0)."""
    ev = one(kq)
    assert (ev.filter, ev.data) == (EVFILT_VNODE, 0)
    return ev.fflags


# Every note on a file -------------------------------------------------------------------


def test_write_in_place_is_write_only(kq: skqueue.kqueue, fd: int) -> None:
    add(kq, fd, flags=EV_CLEAR)
    nothing(kq)
    os.pwrite(fd, b"ab", 0)
    ev = one(kq)
    assert (ev.ident, ev.flags, ev.fflags, ev.data) == (fd, EV_CLEAR, NOTE_WRITE, 0)


def test_append_is_write_and_extend(kq: skqueue.kqueue, fd: int) -> None:
    add(kq, fd, flags=EV_CLEAR)
    os.pwrite(fd, b"more", 10)
    assert notes(kq) == NOTE_WRITE | NOTE_EXTEND


def test_truncate_is_write(kq: skqueue.kqueue, fd: int) -> None:
    add(kq, fd, flags=EV_CLEAR)
    os.ftruncate(fd, 2)
    assert notes(kq) == NOTE_WRITE


def test_chmod_is_attrib(kq: skqueue.kqueue, fd: int, path: Path) -> None:
    add(kq, fd, flags=EV_CLEAR)
    path.chmod(0o600)
    assert notes(kq) == NOTE_ATTRIB


def test_link_then_unlinks(kq: skqueue.kqueue, fd: int, path: Path) -> None:
    add(kq, fd, flags=EV_CLEAR)
    second = path.with_name("second")
    os.link(path, second)
    assert notes(kq) == NOTE_LINK
    second.unlink()  # FreeBSD: every unlink is NOTE_DELETE, links left or not
    assert notes(kq) == NOTE_DELETE
    path.unlink()  # Linux says IN_ATTRIB here, with the fd still open
    assert notes(kq) == NOTE_DELETE
    os.pwrite(fd, b"x", 10)  # the file lives on through the fd
    assert notes(kq) == NOTE_WRITE | NOTE_EXTEND


def test_rename(kq: skqueue.kqueue, fd: int, path: Path) -> None:
    add(kq, fd, flags=EV_CLEAR)
    path.rename(path.with_name("renamed"))
    assert notes(kq) == NOTE_RENAME


# Directories ---------------------------------------------------------------------------


def test_directory_entries(kq: skqueue.kqueue, dirfd: int, tmp_path: Path) -> None:
    d = tmp_path / "d"
    add(kq, dirfd, flags=EV_CLEAR)
    (d / "f").write_bytes(b"")
    assert notes(kq) == NOTE_WRITE
    (d / "f").rename(d / "g")  # inside the directory: WRITE only
    assert notes(kq) == NOTE_WRITE
    (d / "g").rename(tmp_path / "elsewhere" / "g")  # out of it: FreeBSD adds EXTEND
    assert notes(kq) == NOTE_WRITE | NOTE_EXTEND
    (d / "sub").mkdir()  # a subdirectory changes the link count
    assert notes(kq) == NOTE_WRITE | NOTE_LINK
    (d / "sub").rename(tmp_path / "elsewhere" / "sub")
    assert notes(kq) == NOTE_WRITE | NOTE_EXTEND | NOTE_LINK
    (tmp_path / "elsewhere" / "sub").rename(d / "sub")
    assert notes(kq) == NOTE_WRITE | NOTE_EXTEND | NOTE_LINK
    (d / "sub").rmdir()
    assert notes(kq) == NOTE_WRITE | NOTE_LINK
    (tmp_path / "elsewhere" / "g").write_bytes(b"x")  # not an entry of d
    nothing(kq)


def test_directory_rename_and_attrib(kq: skqueue.kqueue, dirfd: int, tmp_path: Path) -> None:
    add(kq, dirfd, flags=EV_CLEAR)
    (tmp_path / "d").chmod(0o700)
    assert notes(kq) == NOTE_ATTRIB
    (tmp_path / "d").rename(tmp_path / "moved")
    assert notes(kq) == NOTE_RENAME


# fflags, flags --------------------------------------------------------------------------


def test_only_requested_notes(kq: skqueue.kqueue, fd: int, path: Path) -> None:
    add(kq, fd, NOTE_DELETE, EV_CLEAR)
    os.write(fd, b"x")
    path.chmod(0o600)
    nothing(kq)
    path.unlink()
    assert notes(kq) == NOTE_DELETE


def test_notes_accumulate_without_clear(kq: skqueue.kqueue, fd: int, path: Path) -> None:
    add(kq, fd)  # no EV_CLEAR: level-triggered on the accumulated notes, as FreeBSD
    os.pwrite(fd, b"x", 0)
    assert notes(kq) == NOTE_WRITE
    path.chmod(0o600)
    assert notes(kq) == NOTE_WRITE | NOTE_ATTRIB
    assert notes(kq) == NOTE_WRITE | NOTE_ATTRIB  # still reported


def test_clear_reports_each_change_once(kq: skqueue.kqueue, fd: int, path: Path) -> None:
    add(kq, fd, flags=EV_CLEAR)
    os.pwrite(fd, b"x", 0)
    path.chmod(0o600)
    assert notes(kq) == NOTE_WRITE | NOTE_ATTRIB  # accumulated into one event
    nothing(kq)
    os.pwrite(fd, b"x", 0)
    assert notes(kq) == NOTE_WRITE  # what came before was cleared


def test_oneshot(kq: skqueue.kqueue, fd: int) -> None:
    add(kq, fd, flags=EV_ONESHOT)
    os.pwrite(fd, b"x", 0)
    assert one(kq).flags == EV_ONESHOT
    os.pwrite(fd, b"x", 0)
    nothing(kq)
    with pytest.raises(OSError) as info:
        kq.control([kevent(fd, EVFILT_VNODE, EV_DELETE)], 0)
    assert info.value.errno == errno.ENOENT


def test_dispatch(kq: skqueue.kqueue, fd: int, path: Path) -> None:
    add(kq, fd, flags=EV_DISPATCH | EV_CLEAR)
    os.pwrite(fd, b"x", 0)
    ev = one(kq)
    assert (ev.flags, ev.fflags) == (EV_DISPATCH | EV_CLEAR, NOTE_WRITE)
    path.chmod(0o600)
    nothing(kq)
    kq.control([kevent(fd, EVFILT_VNODE, EV_ENABLE, ALL)], 0)
    assert notes(kq) == NOTE_ATTRIB


def test_disable_then_enable(kq: skqueue.kqueue, fd: int) -> None:
    add(kq, fd, flags=EV_DISABLE | EV_CLEAR)
    os.pwrite(fd, b"x", 20)
    nothing(kq)
    kq.control([kevent(fd, EVFILT_VNODE, EV_ENABLE, ALL)], 0)
    assert notes(kq) == NOTE_WRITE | NOTE_EXTEND


def test_delete(kq: skqueue.kqueue, fd: int) -> None:
    add(kq, fd)
    os.pwrite(fd, b"x", 0)
    kq.control([kevent(fd, EVFILT_VNODE, EV_DELETE)], 0)
    nothing(kq)
    os.pwrite(fd, b"x", 0)
    nothing(kq)


# Closed and reused fds, errors --------------------------------------------------------------


def test_fd_closed_behind_our_back_drops_the_knote(kq: skqueue.kqueue, fd: int, path: Path) -> None:
    add(kq, fd)
    other = os.open(path, os.O_WRONLY)
    try:
        os.close(fd)
        os.write(other, b"x")
        nothing(kq)
    finally:
        os.close(other)
    assert kq.stats()["knotes"] == 0


def test_reused_fd_number_drops_the_knote(kq: skqueue.kqueue, fd: int, tmp_path: Path) -> None:
    add(kq, fd)
    writer = os.dup(fd)
    os.close(fd)
    stranger = tmp_path / "stranger"
    stranger.write_bytes(b"")
    reused = os.open(stranger, os.O_RDONLY)
    try:
        assert reused == fd
        os.write(writer, b"x")  # the old file changes; the number names another one
        nothing(kq)
        assert kq.stats()["knotes"] == 0
    finally:
        os.close(reused)
        os.close(writer)


def test_bad_fd_is_ebadf(kq: skqueue.kqueue) -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    (err,) = kq.control([kevent(r, EVFILT_VNODE, EV_ADD, ALL)], 1, 0)
    assert (err.ident, err.flags, err.data) == (r, EV_ERROR, errno.EBADF)
    with pytest.raises(OSError) as info:
        kq.control([kevent(r, EVFILT_VNODE, EV_ADD, ALL)], 0)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize("kind", ["socket", "pipe", "eventfd"])
def test_not_a_vnode_is_einval(kq: skqueue.kqueue, kind: str) -> None:
    if kind == "socket":
        a, b = socket.socketpair()
        fds = [a.detach(), b.detach()]
    elif kind == "pipe":
        fds = list(os.pipe())
    else:
        fds = [os.eventfd(0)]
    try:
        (err,) = kq.control([kevent(fds[0], EVFILT_VNODE, EV_ADD, ALL)], 1, 0)
        assert (err.flags, err.data) == (EV_ERROR, errno.EINVAL)
    finally:
        for opened in fds:
            os.close(opened)


def test_lost_events_are_recovered_by_comparison(kq: skqueue.kqueue, tmp_path: Path) -> None:
    """Flood the inotify queue (IN_Q_OVERFLOW); a change whose event was lost is still
    reported, from the difference to the knote's last snapshot."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 100_000:
        pytest.skip("inotify queue too large to overflow quickly")
    noisy = os.open(tmp_path / "noisy", os.O_RDWR | os.O_CREAT)
    quiet = os.open(tmp_path / "quiet", os.O_RDWR | os.O_CREAT)
    try:
        add(kq, noisy, NOTE_RENAME, EV_CLEAR)  # watched, but nothing it asks for
        add(kq, quiet, flags=EV_CLEAR)
        for i in range(limit // 2 + 10):  # alternating events are never merged
            os.pwrite(noisy, b"x", 0)
            os.fchmod(noisy, 0o600 if i % 2 else 0o644)
        os.write(quiet, b"grown")  # its event does not fit any more
        assert notes(kq) == NOTE_WRITE | NOTE_EXTEND
        nothing(kq)
    finally:
        os.close(noisy)
        os.close(quiet)


# READ on a regular file wakes when the file grows -----------------------------------------


def test_read_at_eof_wakes_when_the_file_grows(kq: skqueue.kqueue, fd: int, path: Path) -> None:
    os.lseek(fd, 0, os.SEEK_END)
    kq.control([kevent(fd, EVFILT_READ, EV_ADD)], 0)
    nothing(kq)
    with path.open("ab") as appender:
        appender.write(b"abc")
    ev = one(kq)
    assert (ev.ident, ev.filter, ev.data) == (fd, EVFILT_READ, 3)
    os.read(fd, 3)
    nothing(kq)
    os.pwrite(fd, b"zz", 0)  # rewriting what was read: nothing new to read
    nothing(kq)
    kq.control([kevent(fd, EVFILT_READ, EV_DELETE)], 0)
    os.write(fd, b"more")
    nothing(kq)


def test_read_and_vnode_on_one_file(kq: skqueue.kqueue, fd: int) -> None:
    os.lseek(fd, 0, os.SEEK_END)
    kq.control(
        [kevent(fd, EVFILT_READ, EV_ADD | EV_CLEAR), kevent(fd, EVFILT_VNODE, EV_ADD, ALL)], 0
    )
    os.pwrite(fd, b"abc", 10)
    got = {ev.filter: (ev.data, ev.fflags) for ev in kq.control(None, 4, WAIT)}
    if len(got) < 2:
        got.update({ev.filter: (ev.data, ev.fflags) for ev in kq.control(None, 4, WAIT)})
    assert got == {EVFILT_READ: (3, 0), EVFILT_VNODE: (0, NOTE_WRITE | NOTE_EXTEND)}


# Resources ---------------------------------------------------------------------------------


def test_no_fd_left_after_close(fd: int, dirfd: int) -> None:
    gc.collect()
    before = open_fds()
    first, second = skqueue.kqueue(), skqueue.kqueue(sched="best", sargs=2)
    for made in (first, second):
        add(made, fd)
        add(made, dirfd)
        made.control([kevent(fd, EVFILT_READ, EV_ADD)], 0)
    assert open_fds() != before
    first.close()
    second.close()
    assert open_fds() == before


def test_inotify_fd_is_given_back_with_the_last_knote(kq: skqueue.kqueue, fd: int) -> None:
    gc.collect()
    before = open_fds()
    add(kq, fd)
    kq.control([kevent(fd, EVFILT_READ, EV_ADD)], 0)
    kq.control([kevent(fd, EVFILT_VNODE, EV_DELETE), kevent(fd, EVFILT_READ, EV_DELETE)], 0)
    assert open_fds() == before


def test_unmount_is_revoke_and_ends_the_knote(kq: skqueue.kqueue, fd: int) -> None:
    """Linux sends IN_UNMOUNT only once no fd pins the filesystem, and a knote's fd
    does; so the event is handed to the knote's real inotify subscription."""
    add(kq, fd, NOTE_REVOKE)
    assert kq._core is not None
    with kq._core.lock:  # as the harvest runs the watcher's callbacks
        kn = kq._core.knotes[(fd, EVFILT_VNODE)]
        assert kn.hook.sub is not None
        kn.hook.sub.callback(IN_UNMOUNT, "")  # the event Linux would send on unmount
    ev = one(kq)
    assert (ev.flags, ev.fflags) == (EV_EOF | EV_ONESHOT, NOTE_REVOKE)
    assert kq.stats()["knotes"] == 0
