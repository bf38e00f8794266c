"""The proc connector (NETLINK_CONNECTOR, CN_IDX_PROC): fork, exec and exit of any process.

EVFILT_PROC watches our own children through pidfds; this multicast feed is how it
watches processes that are not.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from typing import Literal, NamedTuple

from ._netlink import NLMSG_DONE, NLMSGHDR

__all__ = ["ProcConnector", "ProcEvent"]

_NETLINK_CONNECTOR = 11
_CN_IDX_PROC = 1
_CN_VAL_PROC = 1
_PROC_CN_MCAST_LISTEN = 1
_PROC_CN_MCAST_IGNORE = 2
_PROC_EVENT_NONE = 0
_PROC_EVENT_FORK = 0x00000001
_PROC_EVENT_EXEC = 0x00000002
_PROC_EVENT_EXIT = 0x80000000
# struct cn_msg: cb_id {idx, val}, seq, ack, len, flags.
_CN_MSG = struct.Struct("=IIIIHH")
# struct proc_event header: what, cpu, timestamp_ns; event_data follows.
_PROC_EVENT = struct.Struct("=IIQ")
_PROC_DATA_OFFSET = NLMSGHDR.size + _CN_MSG.size + _PROC_EVENT.size
_FORK_DATA = struct.Struct("=iiii")  # parent pid, parent tgid, child pid, child tgid
_EXEC_DATA = struct.Struct("=ii")  # pid, tgid
_EXIT_DATA = struct.Struct("=iiII")  # pid, tgid, exit_code, exit_signal
_EXIT_PARENT = struct.Struct("=ii")  # parent pid, parent tgid (newer kernels only)
_ACK_DATA = struct.Struct("=I")  # err
_CN_OP = struct.Struct("=I")  # LISTEN or IGNORE
_PROC_RCVBUF = 4 * 1024 * 1024
_SO_RCVBUFFORCE = 33  # absent from the socket module


class ProcEvent(NamedTuple):
    """A process fork, exec or exit seen by the proc connector.

    For "fork", pid/tgid are the child's; for "exit", exit_code is the wait(2) status
    word. Thread creation and exit appear too, with pid != tgid.
    """

    what: Literal["fork", "exec", "exit"]
    pid: int
    tgid: int
    parent_pid: int = 0
    parent_tgid: int = 0
    exit_code: int = 0


class ProcConnector:
    """Process event notifications from the kernel (NETLINK_CONNECTOR, CN_IDX_PROC).

    This is how EVFILT_PROC watches processes that are not our children. It only
    works in the initial user and pid namespaces, and older kernels also want
    CAP_NET_ADMIN (EPERM otherwise). The kernel drops events when the socket buffer
    overflows; ``overflow`` then becomes True and stays so until the caller, having
    re-checked what it watches, sets it back to False.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._pending: list[ProcEvent] = []
        self.overflow = False

    @classmethod
    def open(cls) -> ProcConnector:
        """Subscribe to process events; raises OSError (often EPERM) if unavailable."""
        sock = socket.socket(
            socket.AF_NETLINK,
            socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
            _NETLINK_CONNECTOR,
        )
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _PROC_RCVBUF)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _PROC_RCVBUF)
            sock.bind((0, _CN_IDX_PROC))
            conn = cls(sock)
            conn._control(_PROC_CN_MCAST_LISTEN)
        except BaseException:
            sock.close()
            raise
        return conn

    def _control(self, op: int) -> None:
        """Send LISTEN/IGNORE; for LISTEN, read the kernel's ack and raise its error.

        The kernel answers synchronously, so the ack is queued before send returns;
        events that raced ahead of it are kept for the next read_events().
        """
        ack = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        payload = _CN_MSG.pack(_CN_IDX_PROC, _CN_VAL_PROC, 0, ack, 4, 0) + _CN_OP.pack(op)
        header = NLMSGHDR.pack(NLMSGHDR.size + len(payload), NLMSG_DONE, 0, 0, 0)
        self._sock.send(header + payload)
        if op != _PROC_CN_MCAST_LISTEN:
            return
        while (data := self._recv()) is not None:
            if len(data) < _PROC_DATA_OFFSET + _ACK_DATA.size:
                continue
            (what, _cpu, _ts) = _PROC_EVENT.unpack_from(data, NLMSGHDR.size + _CN_MSG.size)
            (*_, msg_ack, _len, _flags) = _CN_MSG.unpack_from(data, NLMSGHDR.size)
            if what == _PROC_EVENT_NONE and msg_ack == ack + 1:
                (err,) = _ACK_DATA.unpack_from(data, _PROC_DATA_OFFSET)
                if err:
                    raise OSError(err, os.strerror(err))
                return
            event = self._parse(data)
            if event is not None:
                self._pending.append(event)

    def _recv(self) -> bytes | None:
        """One datagram from the kernel, or None when none is queued."""
        while True:
            try:
                data, (pid, _groups) = self._sock.recvfrom(4096)
            except BlockingIOError:
                return None
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overflow = True
                continue
            if pid == 0:  # only the kernel may speak; ignore forged multicast
                return data

    @staticmethod
    def _parse(data: bytes) -> ProcEvent | None:
        """Decode a fork/exec/exit message; anything else (uid, comm, acks...) is None."""
        if len(data) < _PROC_DATA_OFFSET:
            return None
        idx, val, *_ = _CN_MSG.unpack_from(data, NLMSGHDR.size)
        if (idx, val) != (_CN_IDX_PROC, _CN_VAL_PROC):
            return None
        what, _cpu, _ts = _PROC_EVENT.unpack_from(data, NLMSGHDR.size + _CN_MSG.size)
        at = _PROC_DATA_OFFSET
        if what == _PROC_EVENT_FORK:
            ppid, ptgid, pid, tgid = _FORK_DATA.unpack_from(data, at)
            return ProcEvent("fork", pid, tgid, ppid, ptgid)
        if what == _PROC_EVENT_EXEC:
            pid, tgid = _EXEC_DATA.unpack_from(data, at)
            return ProcEvent("exec", pid, tgid)
        if what == _PROC_EVENT_EXIT:
            pid, tgid, code, _exit_signal = _EXIT_DATA.unpack_from(data, at)
            ppid = ptgid = 0
            if len(data) >= at + _EXIT_DATA.size + _EXIT_PARENT.size:
                ppid, ptgid = _EXIT_PARENT.unpack_from(data, at + _EXIT_DATA.size)
            return ProcEvent("exit", pid, tgid, ppid, ptgid, code)
        return None

    def fileno(self) -> int:
        """The netlink socket, for registering in epoll."""
        return self._sock.fileno()

    def read_events(self) -> list[ProcEvent]:
        """Every fork/exec/exit event queued so far (non-blocking)."""
        events, self._pending = self._pending, []
        while (data := self._recv()) is not None:
            event = self._parse(data)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> None:
        """Unsubscribe (so the kernel stops producing events nobody reads) and close."""
        if self._sock.fileno() == -1:
            return
        with contextlib.suppress(OSError):
            self._control(_PROC_CN_MCAST_IGNORE)
        self._sock.close()

    def abandon(self) -> None:
        """Close without unsubscribing: in a fork() child, the parent still listens
        on this socket and the kernel counts listeners globally."""
        self._sock.close()
