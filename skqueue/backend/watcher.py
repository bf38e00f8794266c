"""The kqueue's shared file watcher: one inotify instance, fanned out to subscribers.

Each kqueue owns at most one inotify instance, created with the first watch and
closed with the last, registered in the kqueue's epoll set.  A subscriber
watches the inode behind an fd through the ``/proc/self/fd/N`` magic link, which
names the open file itself: it works for files that were already unlinked or
renamed, and cannot race with a rename the way a path from ``readlink`` would.
inotify keys watches by inode, so two fds on one file share a watch descriptor;
the watcher fans each event out to every subscriber.  The VNODE filter and READ
on regular files (which wakes when the file grows) are its subscribers.
"""

from __future__ import annotations

import os
import select
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from . import inotify
from .inotify import (
    IN_ATTRIB,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
)

if TYPE_CHECKING:
    from .epoll import Poller

#: Called with the event mask (plus MOVED_ACROSS) and the entry name ("" = itself).
Callback = Callable[[int, str], None]

# One fixed mask for every watch: a second subscriber on the same inode then
# never needs the kernel mask changed (IN_UNMOUNT/IGNORED/OVERFLOW always come).
_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_MOVE_SELF
    | IN_DELETE_SELF
    | IN_CREATE
    | IN_DELETE
    | IN_MOVED_FROM
    | IN_MOVED_TO
)
_MOVED = IN_MOVED_FROM | IN_MOVED_TO
#: Private bit: a move whose other half was not in this directory (cross-directory).
MOVED_ACROSS = 0x0100_0000


class Subscription:
    """One interest in one inode; ``wd`` is -1 once the kernel dropped the watch."""

    __slots__ = ("callback", "wd")

    def __init__(self, wd: int, callback: Callback) -> None:
        self.wd = wd
        self.callback = callback


class Watcher(Protocol):
    """The kqueue's shared file watcher (one inotify instance for every filter)."""

    def subscribe(self, fd: int, callback: Callback) -> Subscription:
        """Call callback(mask, name) for changes to the file open on fd (OSError: none)."""

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget sub; the last subscription gives the kernel object back."""

    def hold(self, activation: Callable[[], None]) -> None:
        """Run activation after the next event of the batch when that event ends its operation."""


class InotifyWatcher:
    """The kqueue's inotify instance, shared by VNODE knotes and READ on regular files."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller
        self.fd = -1
        self.subs: dict[int, list[Subscription]] = {}
        self.held: list[Callable[[], None]] = []  # see hold()

    def subscribe(self, fd: int, callback: Callback) -> Subscription:
        """Watch the file open on fd; raises OSError (ENOSPC: watch limit) on failure."""
        if self.fd < 0:
            self.fd = inotify.inotify_init()
            self.poller.add(self.fd, select.EPOLLIN, self._on_ready)
        try:
            wd = inotify.inotify_add_watch(self.fd, f"/proc/self/fd/{fd}", _MASK)
        except OSError:
            self._close_if_idle()
            raise
        sub = Subscription(wd, callback)
        self.subs.setdefault(wd, []).append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self.subs.get(sub.wd)
        if subs is not None and sub in subs:
            subs.remove(sub)
            if not subs:
                del self.subs[sub.wd]
                inotify.inotify_rm_watch(self.fd, sub.wd)
        sub.wd = -1
        self._close_if_idle()

    def hold(self, activation: Callable[[], None]) -> None:
        """Run activation after the next event of the batch if that event is its op's.

        Linux reports a file's lost link (IN_ATTRIB) before the rest of the
        operation, FreeBSD after it: unlink posts the directory's NOTE_WRITE, then
        the file's NOTE_DELETE (vop_remove_post); a rename over a file posts the
        source's NOTE_RENAME, then the target's NOTE_DELETE (vop_rename_post).
        """
        self.held.append(activation)

    def _close_if_idle(self) -> None:
        """Give the inotify instance back (the per-user limit is 128) when unused."""
        if self.fd >= 0 and not self.subs:
            self.close()

    def _on_ready(self, events: int) -> None:
        batch = inotify.read_inotify(self.fd)
        # A rename inside one directory shows both halves on its watch with one cookie.
        halves = Counter((ev.wd, ev.cookie) for ev in batch if ev.mask & _MOVED)
        for ev in batch:
            mask = ev.mask
            if mask & _MOVED and halves[(ev.wd, ev.cookie)] < 2:
                mask |= MOVED_ACROSS
            if mask & IN_Q_OVERFLOW:
                targets = [sub for subs in self.subs.values() for sub in subs]
            else:
                targets = list(self.subs.get(ev.wd, ()))
            # What the previous event held goes after this one when this one
            # completes its operation, else before it (it was an operation of its own).
            held, self.held = self.held, []
            if not _ends_unlink(mask):
                _run(held)
                held = []
            for sub in targets:
                if sub.wd != -1:
                    sub.callback(mask, ev.name)
            _run(held)
            if mask & IN_IGNORED:  # the kernel dropped the watch; its wd may be reused
                for sub in self.subs.pop(ev.wd, ()):
                    sub.wd = -1
        held, self.held = self.held, []
        _run(held)
        self._close_if_idle()

    def close(self) -> None:
        if self.fd >= 0:
            self.poller.remove(self.fd)
            os.close(self.fd)
            self.fd = -1
        for subs in self.subs.values():
            for sub in subs:
                sub.wd = -1
        self.subs.clear()

    def abandon(self) -> None:
        """In a fork() child: close the inotify fd, changing nothing in the kernel."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _ends_unlink(mask: int) -> bool:
    """The event Linux sends after a file's lost link within one unlink or rename."""
    return bool(mask & IN_MOVE_SELF or (mask & IN_DELETE and not mask & IN_ISDIR))


def _run(activations: list[Callable[[], None]]) -> None:
    for activation in activations:
        activation()
