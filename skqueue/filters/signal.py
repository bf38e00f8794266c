"""EVFILT_SIGNAL: count deliveries of a signal without taking it from the application.

Why not signalfd (libkqueue's way, and its trap): signalfd only sees a signal
that stays *pending*, i.e. one blocked in every thread.  A process-directed
signal goes to any thread that does not block it, so one thread that never
heard of skqueue (created before the registration, or by a C library) makes the
signal bypass signalfd; a thread-directed one (``pthread_kill``) is pending on
its target thread only, invisible to a signalfd read by another thread; and
Python cannot change the mask of a thread it is not running in.  A blocked
signal also never reaches the application's own handler.

Design: catch the delivery itself, in whatever thread the kernel picks, with an
async-signal-safe handler that writes to a pipe -- the self-pipe trick.  CPython
already has that handler: a signal with a Python-level handler is caught by
CPython's C handler in any thread, which writes the signal number to the fd
given to ``signal.set_wakeup_fd``.  So a process-wide hub (one, because
dispositions and the wakeup fd are process-wide, and because every kqueue
watching a signal must see every delivery, which separate consumers of one
queue could not):

- sets a pipe as the wakeup fd, and for each watched signal installs a Python
  handler that *chains* to the application's disposition: its Python handler is
  called, SIG_IGN does nothing, SIG_DFL performs the default action (terminate,
  stop, or nothing);
- runs one daemon thread that reads the pipe, forwards every byte to the wakeup
  fd that was installed before (asyncio and others keep working), and adds the
  count to the SIGNAL knote of every kqueue watching that signal;
- lets every kevent() call on a kqueue with SIGNAL knotes read the pipe itself
  first (non-blocking), so that a signal sent to the process is seen by the very
  next call, even a zero-timeout poll (FreeBSD posts it before kill() returns).
  Each byte is read by one thread only, so each delivery is counted once.

No thread's signal mask is touched, so nothing has to be blocked by hand, and
the count does not depend on which thread got the signal.  The hub starts with
the first SIGNAL knote of the process and, when the last one for a signal goes
away, puts back the disposition (and finally the wakeup fd), closes the pipe and
lets its thread end.  ``data`` = deliveries since the last delivery of the
event; EV_CLEAR is implied, as in FreeBSD.

Limits, plainly:

- CPython installs signal handlers only on the main thread.  So the *first*
  knote for a signal number must be added on the main thread: elsewhere EV_ADD
  fails with ENOTSUP (adding more knotes for an already watched signal works on
  any thread).  When the last knote goes away on another thread, the handler
  (which only chains, so behaviour is unchanged) stays until the main thread
  next adds or deletes a SIGNAL knote or that signal arrives.
- Standard signals that arrive while the same signal is being handled coalesce
  in the kernel, as with any Linux mechanism; real-time signals are queued and
  counted one by one.  A signal blocked by the application in every thread is
  never delivered, so it is not counted (it stays pending for its sigwait).
- ``signal.getsignal()`` returns skqueue's chaining handler while watched.  If
  the application installs another Python handler meanwhile, counting goes on
  (CPython's C handler stays) and skqueue leaves that handler in place at the
  end; setting SIG_IGN or SIG_DFL through ``signal.signal`` instead stops the
  observation -- set the disposition first, then register, as FreeBSD programs
  do.  If someone replaces the wakeup fd, the next watched signal takes it back
  (forwarding to the new one) and is counted once.
- A signal whose handler was installed by C code behind CPython's back (for
  example ``faulthandler.register``) is refused with EBUSY: chaining to it is
  impossible from Python and replacing it would break its owner.
- SIGKILL and SIGSTOP cannot be caught on Linux: EINVAL.  SIGCHLD set to SIG_IGN
  is not recorded (as FreeBSD documents) and its disposition is left alone, so
  the kernel keeps reaping children automatically.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import signal
import threading
from collections import Counter
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..constants import EV_CLEAR
from ..knote import REPORT, SKIP, Delivery, Filter, Knote, KqueueHost

_Disposition = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

_DEFAULT_IGNORED = frozenset({signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH})
_DEFAULT_STOP = frozenset({signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
_UNCATCHABLE = frozenset({signal.SIGKILL, signal.SIGSTOP})
# Signal numbers fit in 7 bits; the top bit marks a byte to count but not forward.
_COUNT_ONLY = 0x80

_libc = ctypes.CDLL(None, use_errno=True)


def _native_handler(signo: int) -> int:
    """The handler address the kernel has for signo (0 = SIG_DFL, 1 = SIG_IGN).

    ``sa_handler`` is the first member of glibc's ``struct sigaction`` on every
    architecture CPython runs on under Linux except MIPS; 256 bytes covers the struct.
    """
    buf = ctypes.create_string_buffer(256)
    if _libc.sigaction(signo, None, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ctypes.c_void_p.from_buffer(buf).value or 0


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _error(err: int, message: str) -> OSError:
    return OSError(err, f"{os.strerror(err)}: {message}")


class SignalHub:
    """The process-wide observer of signal deliveries, shared by every kqueue.

    ``listeners`` and ``saved`` are replaced or updated under ``lock`` but read
    without it by the hub thread and by the handler, which runs between two
    bytecodes of the main thread and so must never wait for a lock.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.listeners: dict[int, tuple[SignalFilter, ...]] = {}
        self.saved: dict[int, _Disposition] = {}  # hooked signal -> the application's
        self.pipe: tuple[int, int] | None = None  # (read end, write end = wakeup fd)
        # Who may read the pipe: a byte must be counted by one thread, and a read end
        # must not be closed under a reader.
        self.reader_lock = threading.Lock()
        self.prev_wakeup = -1
        self.handler = self._on_signal  # one bound method, so ``is`` recognises it

    # Watching --------------------------------------------------------------------
    def watch(self, signo: int, listener: SignalFilter) -> None:
        with self.lock:
            try:
                if signo not in self.saved and not _ignored_sigchld(signo):
                    self._hook(signo)
                self.listeners[signo] = (*self.listeners.get(signo, ()), listener)
            finally:
                self._settle()

    def unwatch(self, signo: int, listener: SignalFilter) -> None:
        with self.lock:
            rest = tuple(other for other in self.listeners.get(signo, ()) if other is not listener)
            if rest:
                self.listeners[signo] = rest
            else:
                self.listeners.pop(signo, None)
            self._settle()

    def _hook(self, signo: int) -> None:
        previous = signal.getsignal(signo)
        native = _native_handler(signo)
        if previous is None or (
            previous in (signal.SIG_DFL, signal.SIG_IGN)
            and native not in (int(signal.SIG_DFL), int(signal.SIG_IGN))
        ):
            raise _error(errno.EBUSY, f"signal {signo} has a handler Python did not install")
        try:
            self._start()
            signal.signal(signo, self.handler)
        except ValueError:  # CPython: "signal only works in main thread"
            raise _error(
                errno.ENOTSUP, "a signal's first SIGNAL knote must be added on the main thread"
            ) from None
        self.saved[signo] = previous

    def _settle(self) -> None:
        """Put back what unwatched signals changed (main thread only, lock held)."""
        if not _on_main_thread():
            return
        for signo in [signo for signo in self.saved if signo not in self.listeners]:
            previous = self.saved.pop(signo)
            if signal.getsignal(signo) is self.handler:
                signal.signal(signo, previous)
        if not self.saved and self.pipe is not None:
            self._stop()

    # The pipe and its reader ---------------------------------------------------------
    def _start(self) -> None:
        if self.pipe is not None:
            return
        rfd, wfd = os.pipe()
        os.set_blocking(wfd, False)  # CPython's handler must never block
        os.set_blocking(rfd, False)  # several threads read it (see drain)
        try:
            self.prev_wakeup = signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        except BaseException:
            os.close(rfd)
            os.close(wfd)
            raise
        self.pipe = (rfd, wfd)
        threading.Thread(target=self._run, args=(rfd,), name="skqueue-signals", daemon=True).start()

    def _stop(self) -> None:
        assert self.pipe is not None
        wfd = self.pipe[1]
        self.pipe = None
        self._give_back_wakeup(wfd)
        os.close(wfd)  # the reader sees EOF, closes rfd and ends

    def _give_back_wakeup(self, wfd: int) -> None:
        """Reinstall the previous wakeup fd, unless someone else's is in place now."""
        current = signal.set_wakeup_fd(-1)
        if current != wfd:
            signal.set_wakeup_fd(current)
        elif self.prev_wakeup >= 0:
            with contextlib.suppress(OSError, ValueError):  # closed by its owner meanwhile
                signal.set_wakeup_fd(self.prev_wakeup)
        self.prev_wakeup = -1

    def _run(self, rfd: int) -> None:
        """Hub thread: wait for bytes and count them, until the write end closes.

        It owns rfd and touches nothing of the hub's after closing it: by then
        ``pipe`` may be a newer hub's, and its read end may have that very number.
        """
        poller = select.poll()
        poller.register(rfd, select.POLLIN)
        while True:
            poller.poll()
            with self.reader_lock:
                if not self._read(rfd):  # EOF: the hub stopped
                    os.close(rfd)
                    return

    def drain(self) -> None:
        """Count what the pipe holds now; any thread, holding no kqueue lock.

        Under reader_lock the read end of ``pipe`` is open: its hub thread closes it
        (under that lock) only at EOF, after _stop has set ``pipe`` to None.
        """
        with self.reader_lock:
            pipe = self.pipe
            if pipe is not None:
                self._read(pipe[0])

    def _read(self, rfd: int) -> bool:
        """Count each byte CPython's C handler wrote and forward it on; False at EOF.

        Holds reader_lock and takes kqueue locks, so no caller may hold one.
        """
        while True:
            try:
                data = os.read(rfd, 512)
            except BlockingIOError:
                return True
            if not data:
                return False
            previous = self.prev_wakeup
            forward = bytes(byte for byte in data if not byte & _COUNT_ONLY)
            if previous >= 0 and forward:
                with contextlib.suppress(OSError):  # full or gone: CPython's best effort
                    os.write(previous, forward)
            for byte, count in Counter(data).items():
                signo = byte & ~_COUNT_ONLY
                for listener in self.listeners.get(signo, ()):
                    listener.signalled(signo, count)

    # The handler ----------------------------------------------------------------------
    def _on_signal(self, signo: int, frame: FrameType | None) -> None:
        """Main thread, after a delivery: keep the wakeup fd, then chain."""
        pipe = self.pipe
        if pipe is not None:
            current = signal.set_wakeup_fd(pipe[1], warn_on_full_buffer=False)
            if current != pipe[1]:  # replaced behind our back: take it back, chain to it
                self.prev_wakeup = current
                # This delivery's byte went to that fd already: count it, do not forward.
                os.write(pipe[1], bytes([signo | _COUNT_ONLY]))
        previous = self.saved.get(signo, signal.SIG_DFL)
        if signo not in self.listeners and self.lock.acquire(blocking=False):
            try:
                self._settle()  # a deferred restore: nobody watches it any more
            finally:
                self.lock.release()
        if callable(previous):
            previous(signo, frame)
        elif previous == signal.SIG_DFL:
            self._default_action(signo)

    def _default_action(self, signo: int) -> None:
        if signo in _DEFAULT_IGNORED:
            return
        if signo in _DEFAULT_STOP:
            os.kill(os.getpid(), signal.SIGSTOP)
            return
        signal.signal(signo, signal.SIG_DFL)
        signal.raise_signal(signo)  # terminates, unless this thread blocks signo
        signal.signal(signo, self.handler)

    def after_fork_in_child(self) -> None:
        """A forked child must not report its signals into the parent's pipe."""
        if self.pipe is None:
            return
        for signo, previous in self.saved.items():
            if signal.getsignal(signo) is self.handler:
                signal.signal(signo, previous)
        self._give_back_wakeup(self.pipe[1])
        for fd in self.pipe:
            os.close(fd)
        self.pipe = None
        self.saved.clear()
        self.listeners.clear()
        self.lock = threading.Lock()
        self.reader_lock = threading.Lock()


def _ignored_sigchld(signo: int) -> bool:
    return signo == signal.SIGCHLD and _native_handler(signo) == int(signal.SIG_IGN)


hub = SignalHub()
os.register_at_fork(after_in_child=hub.after_fork_in_child)


class SignalFilter(Filter):
    """EVFILT_SIGNAL for one kqueue; kn.hook = deliveries not yet reported."""

    def __init__(self, kq: KqueueHost) -> None:
        super().__init__(kq)
        self.watched: dict[int, Knote] = {}  # signal number -> its knote here

    def attach(self, kn: Knote) -> None:
        signo = kn.ident
        if not 0 < signo < signal.NSIG or signo in _UNCATCHABLE:
            raise _error(errno.EINVAL, f"cannot observe signal {signo}")
        kn.flags |= EV_CLEAR  # as FreeBSD: data counts deliveries since the last report
        kn.hook = 0
        hub.watch(signo, self)
        self.watched[signo] = kn
        self.kq.set_before_wait(hub.drain)

    def detach(self, kn: Knote) -> None:
        hub.unwatch(kn.ident, self)
        if self.watched.get(kn.ident) is kn:
            del self.watched[kn.ident]
        if not self.watched:
            self.kq.set_before_wait(None)

    def signalled(self, signo: int, count: int) -> None:
        """Hub thread: signo was delivered count times."""

        def count_in() -> Knote | None:
            kn = self.watched.get(signo)
            if kn is not None:
                kn.hook += count
            return kn

        self.kq.activate_from_thread(count_in)

    def deliver(self, kn: Knote) -> Delivery:
        kn.data = kn.hook
        kn.fflags = 0
        kn.oflags = 0
        return REPORT if kn.data > 0 else SKIP

    def clear(self, kn: Knote) -> None:
        kn.hook = 0

    def recheck(self, kn: Knote) -> None:
        if kn.hook:
            self.kq.activate(kn)
