"""Thin, typed wrappers for the Linux calls the kqueue filters are built on.

Python 3.11's ``os`` has no timerfd, signalfd or inotify, so those go through ctypes;
everything else (sock_diag, the proc connector, ioctls) goes through ``socket``/``fcntl``.
Every function raises ``OSError`` with the kernel's errno, so callers can map failures
straight onto kevent's EV_ERROR ``data``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import socket
import struct
import sys
import termios
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Iterable
from typing import Literal, NamedTuple

__all__ = [
    "IN_ACCESS",
    "IN_ATTRIB",
    "IN_CLOSE_NOWRITE",
    "IN_CLOSE_WRITE",
    "IN_CREATE",
    "IN_DELETE",
    "IN_DELETE_SELF",
    "IN_EXCL_UNLINK",
    "IN_IGNORED",
    "IN_ISDIR",
    "IN_MASK_ADD",
    "IN_MODIFY",
    "IN_MOVED_FROM",
    "IN_MOVED_TO",
    "IN_MOVE_SELF",
    "IN_OPEN",
    "IN_Q_OVERFLOW",
    "IN_UNMOUNT",
    "InotifyEvent",
    "ProcConnector",
    "ProcEvent",
    "SigInfo",
    "accept_queue_length",
    "bytes_readable",
    "current_cpu",
    "exit_status",
    "getsockopt_int",
    "inotify_add_watch",
    "inotify_init",
    "inotify_rm_watch",
    "pipe_capacity",
    "read_inotify",
    "read_signalfd",
    "signalfd",
    "socket_outq",
    "timerfd_create",
    "timerfd_read",
    "timerfd_settime_ns",
]

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int) -> int:
    """Turn libc's -1/errno convention into OSError."""
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _read_records(fd: int, bufsize: int, max_record: int) -> list[bytes]:
    """Drain a non-blocking record-oriented fd (signalfd, inotify).

    The kernel packs as many whole records as fit into one read, so a read that left
    room for the largest possible record proves the queue was empty: no extra EAGAIN
    round trip is needed in the common case.
    """
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, bufsize)
        except BlockingIOError:
            return chunks
        chunks.append(chunk)
        if bufsize - len(chunk) >= max_record:
            return chunks


class _ThreadState(threading.local):
    """Per-thread scratch state: the hot-path ioctl buffer.

    It holds no kernel object: threading.local drops a dead thread's state without
    closing anything (see _DiagPool for the sock_diag sockets).
    """

    def __init__(self) -> None:
        self.int_buf = array("i", [0])


_tls = _ThreadState()


# --------------------------------------------------------------------------- timerfd

_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_TIMER_ABSTIME = 1
_TFD_TIMER_CANCEL_ON_SET = 2
_NS = 1_000_000_000


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


_timerfd_create = _libc.timerfd_create
_timerfd_create.argtypes = (ctypes.c_int, ctypes.c_int)
_timerfd_create.restype = ctypes.c_int
_timerfd_settime = _libc.timerfd_settime
_timerfd_settime.argtypes = (
    ctypes.c_int,
    ctypes.c_int,
    ctypes.POINTER(_Itimerspec),
    ctypes.POINTER(_Itimerspec),
)
_timerfd_settime.restype = ctypes.c_int


def timerfd_create(clock: int = time.CLOCK_MONOTONIC) -> int:
    """Create a non-blocking, close-on-exec timerfd (one per kqueue drives its timer heap)."""
    return _check(_timerfd_create(clock, _TFD_NONBLOCK | _TFD_CLOEXEC))


def timerfd_settime_ns(
    fd: int,
    deadline_ns: int,
    *,
    absolute: bool = True,
    interval_ns: int = 0,
    cancel_on_set: bool = False,
) -> None:
    """Arm the timer for ``deadline_ns`` (absolute clock time, or a delay); 0 disarms.

    ``cancel_on_set`` makes the next read report that the wall clock was set, so
    NOTE_ABSTIME timers can be re-evaluated; the kernel honours it only for absolute
    CLOCK_REALTIME timers.
    """
    flags = (_TFD_TIMER_ABSTIME if absolute else 0) | (
        _TFD_TIMER_CANCEL_ON_SET if cancel_on_set else 0
    )
    spec = _Itimerspec(
        _Timespec(*divmod(interval_ns, _NS)),
        _Timespec(*divmod(deadline_ns, _NS)),
    )
    _check(_timerfd_settime(fd, flags, ctypes.byref(spec), None))


def timerfd_read(fd: int) -> int:
    """Return the expirations since the last read: 0 if none, -1 if the clock was set."""
    try:
        data = os.read(fd, 8)
    except BlockingIOError:
        return 0
    except OSError as exc:
        if exc.errno == errno.ECANCELED:
            return -1
        raise
    return int.from_bytes(data, sys.byteorder)


# -------------------------------------------------------------------------- signalfd

_SFD_CLOEXEC = os.O_CLOEXEC
_SFD_NONBLOCK = os.O_NONBLOCK
_ULONG_BITS = ctypes.sizeof(ctypes.c_ulong) * 8
# glibc's sigset_t is 1024 bits; its signalfd() passes the kernel-sized prefix on.
_Sigset = ctypes.c_ulong * (1024 // _ULONG_BITS)

_signalfd = _libc.signalfd
_signalfd.argtypes = (ctypes.c_int, ctypes.POINTER(_Sigset), ctypes.c_int)
_signalfd.restype = ctypes.c_int

# struct signalfd_siginfo is 128 bytes; we keep signo, code, pid, uid and status.
_SIGINFO = struct.Struct("=I4xiII20xi84x")


class SigInfo(NamedTuple):
    """One delivered signal, as read from a signalfd."""

    signo: int
    code: int
    pid: int
    uid: int
    status: int


def signalfd(fd: int, signals: Iterable[int]) -> int:
    """Create (``fd == -1``) or re-mask a signalfd watching ``signals``; returns the fd.

    The signals must also be blocked in every thread, or they are delivered normally
    instead of being queued for the fd.
    """
    mask = _Sigset()
    for signo in signals:
        if not 0 < signo < signal.NSIG:
            raise OSError(errno.EINVAL, f"invalid signal number {signo}")
        word, bit = divmod(signo - 1, _ULONG_BITS)
        mask[word] |= 1 << bit
    return _check(_signalfd(fd, ctypes.byref(mask), _SFD_NONBLOCK | _SFD_CLOEXEC))


def read_signalfd(fd: int) -> list[SigInfo]:
    """Read every pending signal from a non-blocking signalfd."""
    return [
        SigInfo(*fields)
        for chunk in _read_records(fd, 64 * _SIGINFO.size, _SIGINFO.size)
        for fields in _SIGINFO.iter_unpack(chunk)
    ]


# --------------------------------------------------------------------------- inotify

IN_ACCESS = 0x00000001
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_OPEN = 0x00000020
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_EXCL_UNLINK = 0x04000000
IN_MASK_ADD = 0x20000000
IN_ISDIR = 0x40000000

_IN_CLOEXEC = os.O_CLOEXEC
_IN_NONBLOCK = os.O_NONBLOCK
_INOTIFY_HEADER = struct.Struct("=iIII")
# A header plus the longest name (NAME_MAX + NUL, padded): the largest single event.
_INOTIFY_MAX_EVENT = _INOTIFY_HEADER.size + 256

_inotify_init1 = _libc.inotify_init1
_inotify_init1.argtypes = (ctypes.c_int,)
_inotify_init1.restype = ctypes.c_int
_inotify_add_watch = _libc.inotify_add_watch
_inotify_add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
_inotify_add_watch.restype = ctypes.c_int
_inotify_rm_watch = _libc.inotify_rm_watch
_inotify_rm_watch.argtypes = (ctypes.c_int, ctypes.c_int)
_inotify_rm_watch.restype = ctypes.c_int


class InotifyEvent(NamedTuple):
    """One inotify event; ``name`` is empty for events on the watched object itself."""

    wd: int
    mask: int
    cookie: int
    name: str


def inotify_init() -> int:
    """Create a non-blocking, close-on-exec inotify instance."""
    return _check(_inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))


def inotify_add_watch(fd: int, path: str | bytes, mask: int) -> int:
    """Watch ``path``; returns the watch descriptor (the same one for the same inode)."""
    return _check(_inotify_add_watch(fd, os.fsencode(path), mask))


def inotify_rm_watch(fd: int, wd: int) -> None:
    """Stop watching; EINVAL (watch already gone, e.g. file deleted) is not an error."""
    try:
        _check(_inotify_rm_watch(fd, wd))
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise


def read_inotify(fd: int) -> list[InotifyEvent]:
    """Read every pending event from a non-blocking inotify fd."""
    events: list[InotifyEvent] = []
    header_size = _INOTIFY_HEADER.size
    for chunk in _read_records(fd, 64 * 1024, _INOTIFY_MAX_EVENT):
        offset = 0
        while offset < len(chunk):
            wd, mask, cookie, length = _INOTIFY_HEADER.unpack_from(chunk, offset)
            offset += header_size
            name = chunk[offset : offset + length].rstrip(b"\0")
            offset += length
            events.append(InotifyEvent(wd, mask, cookie, os.fsdecode(name)))
    return events


# ------------------------------------------------------------------------ sock_diag

_NETLINK_SOCK_DIAG = 4
_NETLINK_CONNECTOR = 11
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_SOCK_DIAG_BY_FAMILY = 20
_TCP_LISTEN = 10
_NOCOOKIE = 0xFFFFFFFF
_UDIAG_SHOW_RQLEN = 0x10
_UNIX_DIAG_RQLEN = 4

_NLMSGHDR = struct.Struct("=IHHII")
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
_PLAN_CACHE_MAX = 4096


class _DiagLink:
    """One sock_diag netlink socket and the sequence number of its last request."""

    __slots__ = ("pid", "seq", "sock")

    def __init__(self) -> None:
        self.sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, _NETLINK_SOCK_DIAG
        )
        self.seq = 0
        self.pid = os.getpid()  # a socket shared with another process would mix up replies

    def exchange(self, payload: bytes, dump: bool) -> list[bytes]:
        """One sock_diag request; returns the reply bodies.

        Replies to an older request (abandoned by an exception) are skipped by sequence
        number. A dump ends with NLMSG_DONE; a single lookup ends with its one reply.
        """
        sock = self.sock
        seq = self.seq = (self.seq + 1) & 0xFFFFFFFF
        flags = _NLM_F_REQUEST | _NLM_F_DUMP if dump else _NLM_F_REQUEST
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), _SOCK_DIAG_BY_FAMILY, flags, seq, 0)
        sock.send(header + payload)
        bodies: list[bytes] = []
        while True:
            data = sock.recv(_DIAG_RECV_SIZE)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _flags, msg_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    break
                body = data[offset + _NLMSGHDR.size : offset + length]
                offset += (length + 3) & ~3
                if msg_seq != seq:
                    continue
                if kind == _NLMSG_DONE:
                    return bodies
                if kind == _NLMSG_ERROR:
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
        return _DiagLink()

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
    """One sock_diag exchange on a socket of the pool; returns the reply bodies."""
    link = _diag_pool.take()
    try:
        return link.exchange(payload, dump)
    finally:
        _diag_pool.give_back(link)


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


# --------------------------------------------------------------------------- process


def exit_status(pidfd: int) -> int | None:
    """wait(2)-style status of an exited child, without reaping it (for NOTE_EXIT).

    Returns None while the child runs, or if it is not our child (ECHILD), so the
    caller can fall back to another source (the proc connector).
    """
    try:
        info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOWAIT | os.WNOHANG)
    except ChildProcessError:
        return None
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return (info.si_status & 0xFF) << 8
    if info.si_code == os.CLD_DUMPED:
        return info.si_status | 0x80
    return int(info.si_status)


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
_PROC_DATA_OFFSET = _NLMSGHDR.size + _CN_MSG.size + _PROC_EVENT.size
_FORK_DATA = struct.Struct("=iiii")  # parent pid, parent tgid, child pid, child tgid
_EXEC_DATA = struct.Struct("=ii")  # pid, tgid
_EXIT_DATA = struct.Struct("=iiII")  # pid, tgid, exit_code, exit_signal
_EXIT_PARENT = struct.Struct("=ii")  # parent pid, parent tgid (newer kernels only)
_ACK_DATA = struct.Struct("=I")  # err
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
        payload = _CN_MSG.pack(_CN_IDX_PROC, _CN_VAL_PROC, 0, ack, 4, 0) + _U32.pack(op)
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), _NLMSG_DONE, 0, 0, 0)
        self._sock.send(header + payload)
        if op != _PROC_CN_MCAST_LISTEN:
            return
        while (data := self._recv()) is not None:
            if len(data) < _PROC_DATA_OFFSET + _ACK_DATA.size:
                continue
            (what, _cpu, _ts) = _PROC_EVENT.unpack_from(data, _NLMSGHDR.size + _CN_MSG.size)
            (*_, msg_ack, _len, _flags) = _CN_MSG.unpack_from(data, _NLMSGHDR.size)
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
        idx, val, *_ = _CN_MSG.unpack_from(data, _NLMSGHDR.size)
        if (idx, val) != (_CN_IDX_PROC, _CN_VAL_PROC):
            return None
        what, _cpu, _ts = _PROC_EVENT.unpack_from(data, _NLMSGHDR.size + _CN_MSG.size)
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


# -------------------------------------------------------------------- buffer levels


def pipe_capacity(fd: int) -> int:
    """A pipe's buffer size, so EVFILT_WRITE can report free space (minus FIONREAD)."""
    return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)


def socket_outq(fd: int) -> int:
    """Bytes queued in a socket's send buffer, for EVFILT_WRITE's free space.

    TCP counts unsent plus unacknowledged bytes; AF_UNIX counts the memory charged to
    the sender until the peer reads, overhead included, so it exceeds the payload.
    """
    buf = _tls.int_buf
    fcntl.ioctl(fd, termios.TIOCOUTQ, buf)
    return buf[0]


def bytes_readable(fd: int) -> int:
    """Bytes readable now (FIONREAD); hot path, so it reuses a per-thread buffer."""
    buf = _tls.int_buf
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


# -------------------------------------------------------------------- socket options, CPU

_libc.sched_getcpu.restype = ctypes.c_int


def getsockopt_int(fd: int, level: int, option: int) -> int:
    """An int socket option, straight on the fd (no dup and socket object per call)."""
    value = ctypes.c_int(0)
    size = ctypes.c_uint32(ctypes.sizeof(value))
    _check(_libc.getsockopt(fd, level, option, ctypes.byref(value), ctypes.byref(size)))
    return value.value


def current_cpu() -> int:
    """The CPU the calling thread runs on now (sched_getcpu(3))."""
    cpu: int = _libc.sched_getcpu()
    return max(cpu, 0)
