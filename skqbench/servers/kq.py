"""What the three kqueue designs (skq, vanilla, dispatch) share: worker threads that wait
on a kqueue and serve one request per event.  A design says which kqueue each worker
waits on, how connections are registered and what happens after an event is handled."""

from __future__ import annotations

import abc
import contextlib
import socket
import threading
from typing import Any

import skqueue
from skqbench.servers.base import ACCEPT_BACKOFF_S, Connection, Server, listen_socket

POLL_S = 0.1  # how often an idle worker checks for stop


class KqueueServer(Server):
    """Base of the kqueue designs; the listener is a knote whose udata is ``None``."""

    events_per_wait = 1

    def start(self) -> int:
        self._stopping = threading.Event()
        self._conns: dict[int, Connection] = {}
        self._conns_lock = threading.Lock()
        self.listener = listen_socket(self.cfg.port, self.cfg.reuseport)
        self.listener.setblocking(False)
        self.kqueues = self.make_kqueues()
        self._threads = [
            threading.Thread(target=self._worker, args=(i,), name=f"w{i}", daemon=True)
            for i in range(self.cfg.workers)
        ]
        self._threads += self.extra_threads()
        for t in self._threads:
            t.start()
        port: int = self.listener.getsockname()[1]
        return port

    @abc.abstractmethod
    def make_kqueues(self) -> list[skqueue.kqueue]:
        """The kqueues; worker ``i`` waits on ``kqueues[i % len(kqueues)]``."""

    def extra_threads(self) -> list[threading.Thread]:
        """Threads besides the workers (an acceptor, for instance)."""
        return []

    @abc.abstractmethod
    def register(self, conn: Connection) -> None:
        """Register a new connection."""

    def prioritise(self, kq: skqueue.kqueue, conn: Connection) -> None:
        """The client said it is latency-sensitive; a design without the machinery to
        prioritise it (a FIFO queue) does nothing, which is the point of the comparison."""

    def rearm(self, kq: skqueue.kqueue, fd: int, conn: Connection | None) -> None:
        """Called after an event on ``fd`` (``conn``, or ``None`` for the listener) was
        handled and the fd is still open."""

    def accept_all(self) -> tuple[list[Connection], bool]:
        """Accept every pending connection; True as well when accepting must back off
        (see :meth:`Server.accept_pending`)."""
        socks, exhausted = self.accept_pending(self.listener)
        conns = [Connection(sock) for sock in socks]
        with self._conns_lock:
            self._conns.update((conn.fd, conn) for conn in conns)
        return conns, exhausted

    def pause_accepting(self, kq: skqueue.kqueue) -> None:
        """Out of fds: disable the listener's knote and add a one-shot timer knote whose
        activation (see :meth:`_worker`) enables it again."""
        fd = self.listener.fileno()
        timer = skqueue.kevent(
            fd,
            skqueue.EVFILT_TIMER,
            skqueue.EV_ADD | skqueue.EV_ONESHOT,
            0,
            round(ACCEPT_BACKOFF_S * 1000),
        )
        kq.control([read_event(fd, skqueue.EV_DISABLE), timer], 0)

    def _worker(self, index: int) -> None:
        kq = self.kqueues[index % len(self.kqueues)]
        name = f"w{index}"
        while not self._stopping.is_set():
            try:
                events = kq.control(None, self.events_per_wait, POLL_S)
            except (OSError, ValueError):  # kqueue closed by stop()
                return
            for ev in events:
                conn: Connection | None = ev.udata
                if ev.filter == skqueue.EVFILT_TIMER:  # the accept back-off is over
                    kq.control([read_event(self.listener.fileno(), skqueue.EV_ENABLE)], 0)
                elif conn is None:
                    new, exhausted = self.accept_all()
                    for c in new:
                        self.register(c)
                    if exhausted:
                        self.pause_accepting(kq)
                    else:
                        self.rearm(kq, self.listener.fileno(), None)
                elif conn.serve_one(self, name):
                    if conn.framer.realtime and not conn.prioritised:
                        conn.prioritised = True
                        self.prioritise(kq, conn)
                    self.rearm(kq, conn.fd, conn)
                else:
                    self._drop(kq, conn)

    def _drop(self, kq: skqueue.kqueue, conn: Connection) -> None:
        """Unregister and close; kqueue drops the knote on close, the delete says why."""
        with contextlib.suppress(OSError):
            kq.control([read_event(conn.fd, skqueue.EV_DELETE)], 0)
        with self._conns_lock:
            self._conns.pop(conn.fd, None)
        conn.close()

    def stop(self) -> None:
        self._stopping.set()
        for t in self._threads:
            t.join()
        self.listener.close()
        with self._conns_lock:
            for conn in self._conns.values():
                conn.close()
            self._conns.clear()
        for kq in self.kqueues:
            kq.close()

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        with self._conns_lock:
            out["connections"] = len(self._conns)
        return out


def read_event(fd: int | socket.socket, flags: int, udata: Any = None) -> skqueue.kevent:
    """A read-filter change for ``fd``."""
    return skqueue.kevent(fd, skqueue.EVFILT_READ, flags, 0, 0, udata)
