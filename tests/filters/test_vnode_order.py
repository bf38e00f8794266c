"""EVFILT_VNODE: the events one file-system operation produces, in FreeBSD's order.

FreeBSD posts them from the vop_*_post hooks of sys/kern/vfs_subr.c:
remove: directory NOTE_WRITE, then file NOTE_DELETE; rename: source directory,
target directory (NOTE_WRITE, plus NOTE_EXTEND across directories, plus NOTE_LINK
when a directory's link count changes), then the renamed file's NOTE_RENAME, then
the replaced file's NOTE_DELETE; link: file NOTE_LINK, then directory NOTE_WRITE;
create: directory NOTE_WRITE; mkdir: directory NOTE_WRITE|NOTE_LINK; rmdir:
directory NOTE_WRITE|NOTE_LINK, then the removed directory's NOTE_DELETE.
NOTE_LINK on a directory means its link count changed: a directory moved within
over another one changes it, one moved in over another one does not.
Two operations in a row keep their own order.  Every case runs on a classic and
an SKQ kqueue, collected by one wait or drained one event per wait.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

import skqueue
from skqueue.constants import (
    EV_ADD,
    EV_CLEAR,
    EVFILT_VNODE,
    NOTE_ATTRIB,
    NOTE_DELETE,
    NOTE_EXTEND,
    NOTE_LINK,
    NOTE_RENAME,
    NOTE_WRITE,
)
from skqueue.event import kevent
from support import nothing

WAIT = 5.0
ALL = NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB | NOTE_LINK | NOTE_RENAME
WR = NOTE_WRITE


#: An operation on the tree, a function of its root.
Op = Callable[[Path], object]


class Case(NamedTuple):
    """An operation on a tree under tmp_path and the events FreeBSD posts for it."""

    tree: tuple[str, ...]  # made in order; a trailing "/" makes a directory
    op: Op
    expected: tuple[tuple[str, int], ...]  # (watched path, fflags), in order
    quiet: tuple[str, ...] = ()  # also watched, must report nothing


def unlink(path: str) -> Op:
    return lambda root: os.unlink(root / path)


def rename(src: str, dst: str) -> Op:
    return lambda root: os.rename(root / src, root / dst)


def link(src: str, dst: str) -> Op:
    return lambda root: os.link(root / src, root / dst)


def create(path: str) -> Op:
    return lambda root: (root / path).touch()


def mkdir(path: str) -> Op:
    return lambda root: os.mkdir(root / path)


def rmdir(path: str) -> Op:
    return lambda root: os.rmdir(root / path)


def chmod(path: str, mode: int) -> Op:
    return lambda root: os.chmod(root / path, mode)


def write(path: str, data: bytes) -> Op:
    return lambda root: (root / path).write_bytes(data)


def both(first: Op, second: Op) -> Op:
    """Two operations, back to back (their events reach the kqueue in one read)."""
    return lambda root: (first(root), second(root))


CASES: dict[str, Case] = {
    "unlink": Case(
        ("d/", "d/f"),
        unlink("d/f"),
        (("d", WR), ("d/f", NOTE_DELETE)),
    ),
    "rename": Case(
        ("d/", "d/f"),
        rename("d/f", "d/g"),
        (("d", WR), ("d/f", NOTE_RENAME)),
    ),
    "rename-across": Case(
        ("d/", "e/", "d/f"),
        rename("d/f", "e/g"),
        (("d", WR | NOTE_EXTEND), ("e", WR | NOTE_EXTEND), ("d/f", NOTE_RENAME)),
    ),
    "rename-over": Case(
        ("d/", "d/f", "d/g"),
        rename("d/f", "d/g"),
        (("d", WR), ("d/f", NOTE_RENAME), ("d/g", NOTE_DELETE)),
    ),
    "rename-over-across": Case(
        ("d/", "e/", "d/f", "e/g"),
        rename("d/f", "e/g"),
        (
            ("d", WR | NOTE_EXTEND),
            ("e", WR | NOTE_EXTEND),
            ("d/f", NOTE_RENAME),
            ("e/g", NOTE_DELETE),
        ),
    ),
    "link": Case(
        ("d/", "d/f"),
        link("d/f", "d/h"),
        (("d/f", NOTE_LINK), ("d", WR)),
    ),
    "link-across": Case(
        ("d/", "e/", "d/f"),
        link("d/f", "e/h"),
        (("d/f", NOTE_LINK), ("e", WR)),
        quiet=("d",),
    ),
    "create": Case(
        ("d/", "d/f"),
        create("d/new"),
        (("d", WR),),
        quiet=("d/f",),
    ),
    "mkdir": Case(
        ("d/", "d/f"),
        mkdir("d/sub"),
        (("d", WR | NOTE_LINK),),
        quiet=("d/f",),
    ),
    "rename-dir": Case(
        ("d/", "d/s/"),
        rename("d/s", "d/s2"),
        (("d", WR), ("d/s", NOTE_RENAME)),
    ),
    "rename-dir-across": Case(
        ("d/", "e/", "d/s/"),
        rename("d/s", "e/s"),
        (
            ("d", WR | NOTE_EXTEND | NOTE_LINK),
            ("e", WR | NOTE_EXTEND | NOTE_LINK),
            ("d/s", NOTE_RENAME),
        ),
    ),
    "rmdir": Case(
        ("d/", "d/s/"),
        rmdir("d/s"),
        (("d", WR | NOTE_LINK), ("d/s", NOTE_DELETE)),
    ),
    "rename-dir-over-dir": Case(
        ("d/", "d/s/", "d/t/"),
        rename("d/s", "d/t"),
        (("d", WR | NOTE_LINK), ("d/s", NOTE_RENAME), ("d/t", NOTE_DELETE)),
    ),
    "rename-dir-over-dir-across": Case(
        ("d/", "e/", "d/s/", "e/t/"),
        rename("d/s", "e/t"),
        (
            ("d", WR | NOTE_EXTEND | NOTE_LINK),
            ("e", WR | NOTE_EXTEND),  # one subdirectory in, one out: same link count
            ("d/s", NOTE_RENAME),
            ("e/t", NOTE_DELETE),
        ),
    ),
    "mkdir-then-chmod": Case(
        ("d/",),
        both(mkdir("d/sub"), chmod("d", 0o700)),
        (("d", WR | NOTE_LINK | NOTE_ATTRIB),),
    ),
    # Two operations in a row keep their own order: only a lost link is held back,
    # and only past the event that completes its own unlink or rename.
    "chmod-then-unlink": Case(
        ("d/", "d/f", "d/g"),
        both(chmod("d/g", 0o600), unlink("d/f")),
        (("d/g", NOTE_ATTRIB), ("d", WR), ("d/f", NOTE_DELETE)),
    ),
    "empty-then-rmdir": Case(
        ("d/", "d/s/", "d/s/sub/"),
        both(rmdir("d/s/sub"), rmdir("d/s")),
        (("d/s", WR | NOTE_LINK | NOTE_DELETE), ("d", WR | NOTE_LINK)),
    ),
    "unlink-then-write": Case(
        ("d/", "d/f", "g"),
        both(unlink("d/f"), write("g", b"x")),
        (("d/f", NOTE_DELETE), ("g", WR | NOTE_EXTEND)),
    ),
}


def make(root: Path, tree: tuple[str, ...]) -> None:
    for entry in tree:
        if entry.endswith("/"):
            (root / entry).mkdir()
        else:
            (root / entry).touch()


@pytest.fixture
def opened() -> Iterator[dict[str, int]]:
    """Path -> fd of what a test watches, all closed at the end."""
    fds: dict[str, int] = {}
    yield fds
    for fd in fds.values():
        os.close(fd)


def drain(kq: skqueue.kqueue, count: int, per_wait: int) -> list[kevent]:
    """Exactly count events, taken at most per_wait at a time, then silence."""
    got: list[kevent] = []
    while len(got) < count:
        events = kq.control(None, per_wait, WAIT)
        assert events, f"no event after {got}"
        assert len(events) <= per_wait
        got.extend(events)
    nothing(kq)
    return got


@pytest.mark.parametrize("per_wait", [16, 1], ids=["one-wait", "one-per-wait"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_one_operation_in_freebsd_order(
    kq: skqueue.kqueue, tmp_path: Path, opened: dict[str, int], case: str, per_wait: int
) -> None:
    tree, op, expected, quiet = CASES[case]
    make(tmp_path, tree)
    watched = [path for path, _ in expected] + list(quiet)
    for path in watched:
        opened[path] = os.open(tmp_path / path, os.O_RDONLY)
    # Registered in the reverse of the expected order: the order must come from
    # the operation, not from the registrations.
    changes = [kevent(opened[p], EVFILT_VNODE, EV_ADD | EV_CLEAR, ALL) for p in reversed(watched)]
    kq.control(changes, 0)
    nothing(kq)
    op(tmp_path)
    names = {fd: path for path, fd in opened.items()}
    got = [(names[ev.ident], ev.fflags) for ev in drain(kq, len(expected), per_wait)]
    assert got == list(expected)
