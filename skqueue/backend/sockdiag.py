"""sock_diag (NETLINK_SOCK_DIAG): the accept-queue length of a listening socket.

FIONREAD does not work on listeners, so EVFILT_READ's ``data`` (FreeBSD reports the
queue length; libkqueue reports 1) comes from the kernel's socket diagnostics.
Every thread measures through a pool of netlink sockets, each used by one thread at a
time; a listener's question is packed once and cached (a plan).
"""

from __future__ import annotations

import atexit
import errno
import os
import socket
import struct
import threading
from collections import OrderedDict
from typing import NamedTuple

from ._netlink import NLMSG_DONE, NLMSG_ERROR, NLMSGHDR

__all__ = ["accept_queue_length"]

_NETLINK_SOCK_DIAG = 4
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_SOCK_DIAG_BY_FAMILY = 20
_TCP_LISTEN = 10
_NOCOOKIE = 0xFFFFFFFF
_UDIAG_SHOW_RQLEN = 0x10
_UNIX_DIAG_RQLEN = 4

_NLMSG_ERRNO = struct.Struct("=i")
_NLATTR = struct.Struct("=HH")
# struct inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid
# (sport and dport in network order, src[16], dst[16], if, cookie[2]).
_INET_DIAG_REQ = struct.Struct("=BBBxIHH16s16sIII")
# struct inet_diag_msg: state at offset 1, rqueue at 56, inode at 68.
_INET_DIAG_MSG = struct.Struct("=xB54xI8xI")
# struct unix_diag_req: family, protocol, pad, states, ino, show, cookie[2].
_UNIX_DIAG_REQ = struct.Struct("=BBxxIIIII")
# struct unix_diag_msg: family, type, state, pad, ino, cookie[2]; attributes follow.
_UNIX_DIAG_MSG = struct.Struct("=xxBxI8x")
_U32 = struct.Struct("=I")
_DIAG_RECV_SIZE = 32 * 1024
_DIAG_IDLE_MAX = 8  # idle sock_diag sockets kept for reuse; more are closed
# The kernel answers a sock_diag request within the send() that makes it, so a reply
# later than this never comes: the measurement fails (and poll's answer stands in)
# rather than hang the kevent call that measures.  SO_RCVTIMEO, not settimeout():
# the socket stays blocking, so a recv costs no extra poll(2).
_DIAG_REPLY_TIMEOUT = 1.0
_TIMEVAL = struct.Struct("@ll")
_PLAN_CACHE_MAX = 4096


class _DiagLink:
    """One sock_diag netlink socket and the sequence number of its last request."""

    __slots__ = ("pid", "seq", "sock")

    def __init__(self, sock: socket.socket) -> None:
        seconds, fraction = divmod(_DIAG_REPLY_TIMEOUT, 1.0)
        timeout = _TIMEVAL.pack(int(seconds), int(fraction * 1e6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
        self.sock = sock
        self.seq = 0
        self.pid = os.getpid()  # a socket shared with another process would mix up replies

    def exchange(self, payload: bytes, dump: bool) -> list[bytes]:
        """One sock_diag request; returns the reply bodies.

        Replies to an older request (abandoned by an exception) are skipped by sequence
        number. A dump ends with NLMSG_DONE; a single lookup ends with its one reply.
        A reply that does not come within _DIAG_REPLY_TIMEOUT raises TimeoutError
        (ETIMEDOUT).
        """
        sock = self.sock
        seq = self.seq = (self.seq + 1) & 0xFFFFFFFF
        flags = _NLM_F_REQUEST | _NLM_F_DUMP if dump else _NLM_F_REQUEST
        header = NLMSGHDR.pack(NLMSGHDR.size + len(payload), _SOCK_DIAG_BY_FAMILY, flags, seq, 0)
        sock.send(header + payload)
        bodies: list[bytes] = []
        while True:
            try:
                data = sock.recv(_DIAG_RECV_SIZE)
            except BlockingIOError:  # SO_RCVTIMEO ran out
                raise TimeoutError(errno.ETIMEDOUT, "sock_diag did not answer") from None
            offset = 0
            while offset + NLMSGHDR.size <= len(data):
                length, kind, _flags, msg_seq, _pid = NLMSGHDR.unpack_from(data, offset)
                if length < NLMSGHDR.size:
                    break
                body = data[offset + NLMSGHDR.size : offset + length]
                offset += (length + 3) & ~3
                if msg_seq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return bodies
                if kind == NLMSG_ERROR:
                    (err,) = _NLMSG_ERRNO.unpack_from(body)
                    raise OSError(-err, os.strerror(-err))
                bodies.append(body)
                if not dump:
                    return bodies


class _DiagPool:
    """The sock_diag sockets, shared by every thread, each used by one at a time.

    A socket per thread was never closed: threading.local dropped it with the thread
    (ResourceWarning), and a server held one fd per live thread.  The pool holds as
    many as measurements ran at once, keeps at most _DIAG_IDLE_MAX idle, and closes
    them at exit and, in a fork() child, its copies of the parent's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_DiagLink] = []
        self._pid = os.getpid()

    def take(self) -> _DiagLink:
        """An idle socket, or a new one (OSError, e.g. EMFILE, if none can be opened)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _DiagLink(
            socket.socket(
                socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, _NETLINK_SOCK_DIAG
            )
        )

    def give_back(self, link: _DiagLink) -> None:
        """Keep link for the next measurement, or close it if the pool is full or
        link was opened by the parent of this fork() child."""
        with self._lock:
            if link.pid == self._pid and len(self._idle) < _DIAG_IDLE_MAX:
                self._idle.append(link)
                return
        link.sock.close()

    def close(self) -> None:
        """Close the idle sockets; the pool opens new ones when needed again."""
        with self._lock:
            idle, self._idle = self._idle, []
        for link in idle:
            link.sock.close()

    def after_fork_in_child(self) -> None:
        """Close the idle sockets, which the parent uses too, and disown the busy ones."""
        self._lock = threading.Lock()  # a parent thread may have held it at the fork
        self._pid = os.getpid()
        self.close()


_diag_pool = _DiagPool()


class _Plan(NamedTuple):
    """How to ask sock_diag about one listener: the request body and whether it dumps."""

    unix: bool
    payload: bytes
    dump: bool


# (st_dev, st_ino) -> plan, least recently used first. A listener's address cannot
# change, so the getsockname and request packing are done once per listener that is
# measured again and again; plans of closed listeners age out.  A plan is only a
# question: the reply's inode and state are checked every time, so a plan left by a
# closed socket whose inode number came back answers nothing, and is rebuilt.  Keyed
# by device too, so only sockfs inodes can ever hit.
_plans: OrderedDict[tuple[int, int], _Plan] = OrderedDict()
_plans_lock = threading.Lock()


def _cached_plan(key: tuple[int, int]) -> _Plan | None:
    """The plan for key, now the most recently used (a busy listener keeps its own)."""
    with _plans_lock:
        plan = _plans.get(key)
        if plan is not None:
            _plans.move_to_end(key)
        return plan


def _keep_plan(key: tuple[int, int], plan: _Plan) -> None:
    """Cache a plan that just answered, evicting the least recently used beyond the size."""
    with _plans_lock:
        _plans[key] = plan
        _plans.move_to_end(key)
        while len(_plans) > _PLAN_CACHE_MAX:
            _plans.popitem(last=False)


def _forget_plan(key: tuple[int, int]) -> None:
    with _plans_lock:
        _plans.pop(key, None)


def _after_fork_in_child() -> None:
    """Fresh locks (a parent thread may have held one at the fork), sockets of our own."""
    global _plans_lock
    _plans_lock = threading.Lock()
    _diag_pool.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_diag_pool.close)  # else the collector closes them, with a ResourceWarning


def _diag(payload: bytes, dump: bool) -> list[bytes]:
    """One sock_diag exchange on a socket of the pool; returns the reply bodies.

    A socket the kernel did not answer on is closed, not pooled: the next
    measurement gets a fresh one.
    """
    link = _diag_pool.take()
    try:
        bodies = link.exchange(payload, dump)
    except TimeoutError:
        link.sock.close()
        raise
    except BaseException:
        _diag_pool.give_back(link)
        raise
    _diag_pool.give_back(link)
    return bodies


def _make_plan(fd: int, ino: int) -> _Plan:
    """Build the request for a listener: ENOTSOCK / EINVAL if it is not one.

    TCP gets an exact lookup by local address and port, O(1) in the kernel; AF_UNIX
    an exact lookup by inode.
    """
    sock = socket.socket(fileno=fd)
    try:
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise OSError(errno.EINVAL, "socket is not listening")
        family = sock.family
        if family == socket.AF_UNIX:
            return _Plan(
                True,
                _UNIX_DIAG_REQ.pack(
                    family, 0, 1 << _TCP_LISTEN, ino, _UDIAG_SHOW_RQLEN, _NOCOOKIE, _NOCOOKIE
                ),
                False,
            )
        addr = sock.getsockname()
        if family == socket.AF_INET:
            src = socket.inet_aton(addr[0]) + bytes(12)
            ifindex = 0
        elif family == socket.AF_INET6:
            src = socket.inet_pton(family, addr[0].partition("%")[0])
            ifindex = addr[3]
        else:
            raise OSError(errno.EINVAL, "unsupported socket family")
        if sock.proto != socket.IPPROTO_TCP:
            raise OSError(errno.EINVAL, "only TCP listeners are supported")
        payload = _INET_DIAG_REQ.pack(
            family,
            socket.IPPROTO_TCP,
            0,
            1 << _TCP_LISTEN,
            socket.htons(addr[1]),
            0,
            src,
            bytes(16),
            ifindex,
            _NOCOOKIE,
            _NOCOOKIE,
        )
        return _Plan(False, payload, False)
    finally:
        sock.detach()


def _dump_plan(plan: _Plan) -> _Plan:
    """The fallback for TCP: dump the listeners on the port (the kernel filters by sport).

    Needed when the exact lookup picks another member of an SO_REUSEPORT group, or
    finds nothing (a listener bound to a device).
    """
    family, proto, _ext, states, sport, *_ = _INET_DIAG_REQ.unpack(plan.payload)
    payload = _INET_DIAG_REQ.pack(family, proto, 0, states, sport, 0, bytes(16), bytes(16), 0, 0, 0)
    return _Plan(False, payload, True)


def _rqueue(plan: _Plan, ino: int) -> int | None:
    """Run a plan; the accept-queue length if the listener with inode ``ino`` answered."""
    try:
        bodies = _diag(plan.payload, plan.dump)
    except FileNotFoundError:
        return None
    for body in bodies:
        if plan.unix:
            state, inode = _UNIX_DIAG_MSG.unpack_from(body)
            offset = _UNIX_DIAG_MSG.size
            while inode == ino and state == _TCP_LISTEN and offset + _NLATTR.size <= len(body):
                length, kind = _NLATTR.unpack_from(body, offset)
                if kind == _UNIX_DIAG_RQLEN:
                    return int(_U32.unpack_from(body, offset + _NLATTR.size)[0])
                offset += max((length + 3) & ~3, _NLATTR.size)
        else:
            state, rqueue, inode = _INET_DIAG_MSG.unpack_from(body)
            if inode == ino and state == _TCP_LISTEN:
                return int(rqueue)
    return None


def accept_queue_length(fd: int) -> int:
    """Connections waiting in a listening socket's accept queue (FreeBSD's READ ``data``).

    FIONREAD does not work on listeners, so this asks sock_diag; the socket is identified
    by inode, which is exact even when several listeners share a port.
    Raises ENOTSOCK for a non-socket and EINVAL for a socket that is not listening.
    """
    st = os.fstat(fd)
    ino = st.st_ino & 0xFFFFFFFF
    key = (st.st_dev, st.st_ino)
    cached = _cached_plan(key)
    if cached is not None:
        result = _rqueue(cached, ino)
        if result is not None:
            return result
        _forget_plan(key)  # no longer listening, or the inode number was reused
    plan = _make_plan(fd, ino)
    result = _rqueue(plan, ino)
    if result is None and not plan.unix:
        plan = _dump_plan(plan)
        result = _rqueue(plan, ino)
    if result is None:
        raise OSError(errno.EINVAL, "socket is not listening")
    _keep_plan(key, plan)
    return result
