"""Shared classic kqueue: N threads wait on one ordinary kqueue; every socket is
registered with EV_DISPATCH so that one event goes to one thread, which re-enables the
socket (one more kevent call per request) once it has served it."""

from __future__ import annotations

import skqueue
from skqbench.servers.base import Connection
from skqbench.servers.kq import KqueueServer, read_event


class DispatchServer(KqueueServer):
    """One kqueue, EV_DISPATCH, EV_ENABLE after every event."""

    def make_kqueues(self) -> list[skqueue.kqueue]:
        self.kq = skqueue.kqueue()
        flags = skqueue.EV_ADD | skqueue.EV_DISPATCH
        self.kq.control([read_event(self.listener.fileno(), flags)], 0)
        return [self.kq]

    def register(self, conn: Connection) -> None:
        flags = skqueue.EV_ADD | skqueue.EV_DISPATCH
        self.kq.control([read_event(conn.fd, flags, conn)], 0)

    def rearm(self, kq: skqueue.kqueue, fd: int, conn: Connection | None) -> None:
        # As on FreeBSD, every change sets the knote's udata, so it is passed again.
        kq.control([read_event(fd, skqueue.EV_ENABLE, conn)], 0)


DESIGN = DispatchServer
