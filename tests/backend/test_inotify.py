"""inotify: watches, events, names, cookies and draining a full queue. Real fds, no mocks."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from skqueue.backend import inotify
from support.kernel import wait_readable


@pytest.fixture
def inotify_fd() -> Iterator[int]:
    fd = inotify.inotify_init()
    yield fd
    os.close(fd)


def masks(fd: int) -> list[int]:
    assert wait_readable(fd)
    return [event.mask for event in inotify.read_inotify(fd)]


def test_inotify_file_events(inotify_fd: int, tmp_path: Path) -> None:
    assert os.get_blocking(inotify_fd) is False
    assert inotify.read_inotify(inotify_fd) == []
    path = tmp_path / "watched"
    path.write_bytes(b"x")
    mask = inotify.IN_MODIFY | inotify.IN_ATTRIB | inotify.IN_MOVE_SELF | inotify.IN_DELETE_SELF
    wd = inotify.inotify_add_watch(inotify_fd, str(path), mask)
    assert wd > 0
    assert inotify.inotify_add_watch(inotify_fd, os.fsencode(path), mask) == wd  # same inode

    with open(path, "ab") as f:
        f.write(b"more")
    assert masks(inotify_fd) == [inotify.IN_MODIFY]
    os.chmod(path, 0o600)
    assert masks(inotify_fd) == [inotify.IN_ATTRIB]
    moved = tmp_path / "moved"
    os.rename(path, moved)
    events = inotify.read_inotify(inotify_fd)
    assert [(e.wd, e.mask, e.name) for e in events] == [(wd, inotify.IN_MOVE_SELF, "")]
    os.unlink(moved)
    # Deleting the file also removes the watch, which the kernel reports as IN_IGNORED.
    assert masks(inotify_fd) == [inotify.IN_ATTRIB, inotify.IN_DELETE_SELF, inotify.IN_IGNORED]
    inotify.inotify_rm_watch(inotify_fd, wd)  # already gone: EINVAL is swallowed


def test_inotify_rm_watch(inotify_fd: int, tmp_path: Path) -> None:
    wd = inotify.inotify_add_watch(inotify_fd, str(tmp_path), inotify.IN_CREATE)
    inotify.inotify_rm_watch(inotify_fd, wd)
    assert masks(inotify_fd) == [inotify.IN_IGNORED]
    (tmp_path / "after").touch()
    assert not wait_readable(inotify_fd, 0.05)
    inotify.inotify_rm_watch(inotify_fd, wd)  # removed twice: EINVAL is swallowed
    with pytest.raises(OSError) as info:
        inotify.inotify_rm_watch(10_000, wd)
    assert info.value.errno == errno.EBADF


def test_inotify_add_watch_errors(inotify_fd: int, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        inotify.inotify_add_watch(inotify_fd, str(tmp_path / "missing"), inotify.IN_MODIFY)


def test_inotify_directory_names_and_drains_everything(inotify_fd: int, tmp_path: Path) -> None:
    wd = inotify.inotify_add_watch(inotify_fd, str(tmp_path), inotify.IN_CREATE | inotify.IN_DELETE)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub").rmdir()
    events = inotify.read_inotify(inotify_fd)
    assert [(e.wd, e.mask, e.name) for e in events] == [
        (wd, inotify.IN_CREATE | inotify.IN_ISDIR, "sub"),
        (wd, inotify.IN_DELETE | inotify.IN_ISDIR, "sub"),
    ]
    # More than one 64 KiB read's worth of events: all of them come back in one call.
    names = [f"{i:04d}-" + "n" * 190 for i in range(400)]
    for name in names:
        (tmp_path / name).touch()
    events = inotify.read_inotify(inotify_fd)
    assert [e.name for e in events] == names
    assert all(e.mask == inotify.IN_CREATE for e in events)
    assert inotify.read_inotify(inotify_fd) == []


def test_inotify_rename_cookie(inotify_fd: int, tmp_path: Path) -> None:
    (tmp_path / "a").touch()
    inotify.inotify_add_watch(
        inotify_fd, str(tmp_path), inotify.IN_MOVED_FROM | inotify.IN_MOVED_TO
    )
    os.rename(tmp_path / "a", tmp_path / "b")
    moved_from, moved_to = inotify.read_inotify(inotify_fd)
    assert (moved_from.mask, moved_from.name) == (inotify.IN_MOVED_FROM, "a")
    assert (moved_to.mask, moved_to.name) == (inotify.IN_MOVED_TO, "b")
    assert moved_from.cookie == moved_to.cookie != 0
