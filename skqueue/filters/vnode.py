"""EVFILT_VNODE: file and directory changes, from the kqueue's shared watcher.

A knote subscribes to the kqueue's one inotify instance (``backend.watcher``,
reached as ``KqueueHost.watcher``) for the inode behind its fd.

Linux events map onto FreeBSD notes like this:

- ``IN_MODIFY`` -> NOTE_WRITE, plus NOTE_EXTEND when ``st_size`` grew.
- ``IN_ATTRIB`` -> compared with the last ``st_nlink``: fewer links -> NOTE_DELETE
  (FreeBSD sends NOTE_DELETE for every unlink, even if other links remain; a
  directory only when the count reaches 0), more links -> NOTE_LINK, same count
  -> NOTE_ATTRIB.  Linux sends IN_ATTRIB, not IN_DELETE_SELF, when a file is
  unlinked while an fd is open, which is always the case for a knote.
- ``IN_MOVE_SELF`` -> NOTE_RENAME; ``IN_DELETE_SELF`` -> NOTE_DELETE.
- entries of a watched directory: created or deleted -> NOTE_WRITE; renamed ->
  NOTE_WRITE, plus NOTE_EXTEND when the entry moved in from or out to another
  directory (FreeBSD's rename hint); NOTE_LINK as well when a subdirectory's
  entry changed the directory's link count (created, removed, moved out, moved
  in without replacing a directory, or moved within over one).
- ``IN_UNMOUNT`` -> NOTE_REVOKE with EV_EOF|EV_ONESHOT, as FreeBSD's revoke.
- ``IN_Q_OVERFLOW`` (events lost) -> every knote compares a fresh ``fstat`` with
  its last snapshot (size, mtime, ctime, link count) and reports what changed.

Knotes activate in the order FreeBSD's vop_*_post hooks post one operation's
notes, which is inotify's order except for a lost link: Linux reports it first,
FreeBSD last (unlink: the directory's NOTE_WRITE, then the file's NOTE_DELETE;
rename over a file: the source's NOTE_RENAME, then the target's NOTE_DELETE), so
the lost link's activation is held past the next event when that event is the
rest of its operation (see ``InotifyWatcher.hold``).

Returned ``fflags`` accumulate until delivered with EV_CLEAR; as in FreeBSD, a
change reported to the filter as several notes at once (an append is
NOTE_WRITE|NOTE_EXTEND) is recorded whole when any of its notes was asked for, so
a knote asking for NOTE_WRITE alone sees NOTE_EXTEND on an append.  ``data`` is
0.  A knote whose fd was closed or now names another file is dropped silently
when an event or a delivery finds that out (identity = st_dev, st_ino).

Limits (Linux): a directory removed while an fd is open on it gets no inotify
event until that fd is closed, so its NOTE_DELETE is reported only when its
parent is watched by the same kqueue (the parent's IN_DELETE is the sign) or a
rename replaced it (IN_ATTRIB).  Events are translated when the
kqueue reads them, so a quick unlink-then-link pair can look like NOTE_ATTRIB
(the link count is compared, not replayed), and a lost link whose directory is
not watched, followed at once by an unlink or a rename elsewhere, is reported
after that one instead of before it.  Linux sends IN_UNMOUNT only when
the filesystem is finally shut down, which the knote's own open fd prevents, so
NOTE_REVOKE is mapped but cannot occur in practice (Linux has no revoke(2)).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

from ..backend.inotify import (
    IN_ATTRIB,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
)
from ..backend.watcher import MOVED_ACROSS
from ..constants import (
    EV_EOF,
    EV_ONESHOT,
    NOTE_ATTRIB,
    NOTE_DELETE,
    NOTE_EXTEND,
    NOTE_LINK,
    NOTE_RENAME,
    NOTE_REVOKE,
    NOTE_WRITE,
)
from ..knote import KN_DETACHED, REPORT, SKIP, Delivery, Filter, Knote, KqueueHost

if TYPE_CHECKING:
    from ..backend.watcher import Subscription

_MOVED = IN_MOVED_FROM | IN_MOVED_TO
_ALL_NOTES = (
    NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB | NOTE_LINK | NOTE_RENAME | NOTE_REVOKE
)


class VnodeState:
    """A VNODE knote's view of its file: identity, last snapshot, pending notes."""

    __slots__ = (
        "ctime_ns",
        "fd",
        "identity",
        "is_dir",
        "mtime_ns",
        "nlink",
        "notes",
        "revoked",
        "size",
        "sub",
    )

    def __init__(self, fd: int, st: os.stat_result) -> None:
        self.fd = fd
        self.identity = (st.st_dev, st.st_ino)
        self.is_dir = stat.S_ISDIR(st.st_mode)
        self.notes = 0  # requested notes seen since the last EV_CLEAR delivery
        self.revoked = False
        self.sub: Subscription | None = None
        self.size = self.nlink = self.mtime_ns = self.ctime_ns = 0
        self.remember(st)

    def remember(self, st: os.stat_result) -> None:
        self.size = st.st_size
        self.nlink = st.st_nlink
        self.mtime_ns = st.st_mtime_ns
        self.ctime_ns = st.st_ctime_ns

    def link_notes(self, st: os.stat_result) -> int:
        """NOTE_DELETE / NOTE_LINK from a change of the link count, else 0."""
        if st.st_nlink == self.nlink:
            return 0
        if st.st_nlink == 0 or (st.st_nlink < self.nlink and not self.is_dir):
            return NOTE_DELETE
        return NOTE_LINK

    def subdir_linked(self, mask: int, st: os.stat_result) -> bool:
        """Whether a subdirectory's entry event changed this directory's link count.

        As vop_mkdir_post, vop_rmdir_post and vop_rename_post decide it: a mkdir,
        an rmdir and a move out always do; a move in does unless it replaced a
        directory, a move within does only when it did.  The replacement is seen in
        the count itself, on file systems that count subdirectories (st_nlink >= 2).
        """
        # A count of 0 (last subdirectory, then itself removed, in one batch) is for _rmdir.
        before, self.nlink = self.nlink, st.st_nlink or self.nlink
        counted = st.st_nlink >= 2
        if mask & (IN_CREATE | IN_DELETE) or (mask & IN_MOVED_FROM and mask & MOVED_ACROSS):
            return True
        if mask & MOVED_ACROSS:
            return not counted or st.st_nlink != before
        return counted and st.st_nlink < before

    def absorb(self, mask: int, name: str, st: os.stat_result) -> list[int]:
        """The FreeBSD hints one inotify event stands for (see the module docstring).

        A hint is what FreeBSD passes to the filter in one call (an append is
        NOTE_WRITE|NOTE_EXTEND together); a knote takes a whole hint when it asked
        for any bit of it.  Only the snapshot field an event is about is updated,
        so that a link-count change is still seen by its IN_ATTRIB when an earlier
        IN_MODIFY of the same batch is translated after the link happened.
        """
        hints: list[int] = []
        if name:
            entry = 0
            if mask & (IN_CREATE | IN_DELETE | _MOVED):
                entry |= NOTE_WRITE
            if mask & MOVED_ACROSS:
                entry |= NOTE_EXTEND
            if mask & IN_ISDIR and self.subdir_linked(mask, st):
                entry |= NOTE_LINK
            return [entry] if entry else []
        grew = not self.is_dir and st.st_size > self.size
        if mask & IN_Q_OVERFLOW:
            links = self.link_notes(st)
            if grew:
                hints.append(NOTE_WRITE | NOTE_EXTEND)
            elif st.st_mtime_ns != self.mtime_ns:
                hints.append(NOTE_WRITE)
            if links:
                hints.append(links)
            elif st.st_ctime_ns != self.ctime_ns and not hints:
                hints.append(NOTE_ATTRIB)
            self.remember(st)
        if mask & IN_MODIFY:
            hints.append(NOTE_WRITE | (NOTE_EXTEND if grew else 0))
            self.size = st.st_size
        if mask & IN_ATTRIB:
            hints.append(self.link_notes(st) or NOTE_ATTRIB)
            self.nlink = st.st_nlink
        if mask & IN_MOVE_SELF:
            hints.append(NOTE_RENAME)
        if mask & IN_DELETE_SELF:
            hints.append(NOTE_DELETE)
        if mask & IN_UNMOUNT:
            hints.append(NOTE_REVOKE)
        self.mtime_ns = st.st_mtime_ns
        self.ctime_ns = st.st_ctime_ns
        return hints


def _check_watchable(fd: int, mode: int) -> None:
    """FreeBSD's VNODE filter takes vnodes only: sockets and pipes are EINVAL."""
    kind = stat.S_IFMT(mode)
    anonymous_pipe = kind == stat.S_IFIFO and os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
    if kind in (0, stat.S_IFSOCK) or anonymous_pipe:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))


class VnodeFilter(Filter):
    """NOTE_DELETE, WRITE, EXTEND, ATTRIB, LINK, RENAME, REVOKE on an open fd."""

    is_fd = True

    def __init__(self, kq: KqueueHost) -> None:
        super().__init__(kq)
        self.directories: dict[Knote, None] = {}  # knotes on directories (see _rmdir)

    def attach(self, kn: Knote) -> None:
        st = os.fstat(kn.ident)
        _check_watchable(kn.ident, st.st_mode)
        state = VnodeState(kn.ident, st)
        watcher = self.kq.watcher
        state.sub = watcher.subscribe(kn.ident, lambda mask, name: self._event(kn, mask, name))
        kn.hook = state
        if state.is_dir:
            self.directories[kn] = None

    def detach(self, kn: Knote) -> None:
        state: VnodeState = kn.hook
        self.directories.pop(kn, None)
        if state.sub is not None:
            self.kq.watcher.unsubscribe(state.sub)

    def _current(self, kn: Knote) -> os.stat_result | None:
        """fstat the knote's fd; None (and the knote dropped) if it names another file."""
        state: VnodeState = kn.hook
        try:
            st = os.fstat(state.fd)
        except OSError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != state.identity:
            self.kq.drop(kn)
            return None
        return st

    def _event(self, kn: Knote, mask: int, name: str) -> None:
        if kn.status & KN_DETACHED:
            return
        st = self._current(kn)
        if st is None:
            return
        hints = kn.hook.absorb(mask, name, st)
        self._post(kn, hints, held=bool(mask & IN_ATTRIB and NOTE_DELETE in hints))
        if name and mask & IN_DELETE and mask & IN_ISDIR:
            self._rmdir()

    def _post(self, kn: Knote, hints: list[int], held: bool = False) -> None:
        """Record hints on kn and activate it; held: after the rest of the operation."""
        state: VnodeState = kn.hook
        for hint in hints:
            if hint & kn.sfflags:  # FreeBSD's filt_vfsvnode: the whole hint, not a mask of it
                state.notes |= hint
            state.revoked = state.revoked or bool(hint & NOTE_REVOKE)
        if not (state.notes or state.revoked):
            return
        if held:  # unlinked: FreeBSD posts it last
            self.kq.watcher.hold(lambda: self.kq.activate(kn))
        else:
            self.kq.activate(kn)

    def _rmdir(self) -> None:
        """A subdirectory of a watched directory was removed: NOTE_DELETE its knotes.

        Linux tells a directory nothing of its own rmdir while an fd is open on it
        (every knote holds one); its parent's IN_DELETE is the only sign, and the
        removed directory's link count is 0 (vop_rmdir_post posts the parent's
        NOTE_WRITE|NOTE_LINK first, then the directory's NOTE_DELETE).
        """
        for kn in list(self.directories):
            state: VnodeState = kn.hook
            if state.nlink:
                st = self._current(kn)
                if st is not None and st.st_nlink == 0:
                    state.nlink = 0
                    self._post(kn, [NOTE_DELETE])

    def deliver(self, kn: Knote) -> Delivery:
        if self._current(kn) is None:
            return SKIP
        state: VnodeState = kn.hook
        kn.fflags = state.notes & _ALL_NOTES
        kn.data = 0
        kn.oflags = EV_EOF | EV_ONESHOT if state.revoked else 0
        return REPORT if state.notes or state.revoked else SKIP

    def clear(self, kn: Knote) -> None:
        kn.hook.notes = 0

    def recheck(self, kn: Knote) -> None:
        state: VnodeState = kn.hook
        if state.notes or state.revoked:
            self.kq.activate(kn)

    def stale(self, kn: Knote) -> bool:
        state: VnodeState = kn.hook
        try:
            st = os.fstat(state.fd)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != state.identity
