"""memcached-style baseline: N threads, each with its own classic kqueue; an acceptor
thread hands connections to the threads round-robin.  A connection stays on its thread
for life, so one heavy connection delays every request queued behind it there."""

from __future__ import annotations

import itertools
import select
import threading

import skqueue
from skqbench.servers.base import ACCEPT_BACKOFF_S, Connection
from skqbench.servers.kq import POLL_S, KqueueServer, read_event


class VanillaServer(KqueueServer):
    """Static connection-to-thread assignment; nothing to share, so waits take a batch."""

    events_per_wait = 64

    def make_kqueues(self) -> list[skqueue.kqueue]:
        self._next = itertools.cycle(range(self.cfg.workers))
        return [skqueue.kqueue() for _ in range(self.cfg.workers)]

    def extra_threads(self) -> list[threading.Thread]:
        return [threading.Thread(target=self._acceptor, name="acceptor", daemon=True)]

    def _acceptor(self) -> None:
        while not self._stopping.is_set():
            ready, _, _ = select.select([self.listener], [], [], POLL_S)
            if ready:
                conns, exhausted = self.accept_all()
                for conn in conns:
                    self.register(conn)
                if exhausted:
                    self._stopping.wait(ACCEPT_BACKOFF_S)

    def register(self, conn: Connection) -> None:
        kq = self.kqueues[next(self._next)]
        kq.control([read_event(conn.fd, skqueue.EV_ADD, conn)], 0)


DESIGN = VanillaServer
