"""Every server design survives clients that misbehave, and the kqueue core what a
server runs into (here: running out of fds)."""

from __future__ import annotations

import errno
import os
import resource
import socket

import pytest

from skqbench.servers.base import LOOPBACK
from skqueue import EV_ADD, EVFILT_READ, KQ_SCHED_BEST, kevent, kqueue


@pytest.mark.parametrize("sched", [0, KQ_SCHED_BEST])
def test_listener_knote_survives_fd_exhaustion(sched: int) -> None:
    """The READ filter asks sock_diag (a netlink socket, so an fd) for a listener's queue
    length; out of fds it used to drop the listener's knote silently."""
    with socket.socket() as listener, kqueue(sched=sched, sargs=2 if sched else 0) as kq:
        listener.bind((LOOPBACK, 0))
        listener.listen()
        kq.control([kevent(listener, EVFILT_READ, EV_ADD)], 0)
        client = socket.create_connection(listener.getsockname())
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        fillers = []
        resource.setrlimit(resource.RLIMIT_NOFILE, (client.fileno() + 1, hard))
        try:
            with pytest.raises(OSError) as no_fd:
                while True:  # the limit is on fd numbers: fill the holes below it
                    fillers.append(os.open(os.devnull, os.O_RDONLY))
            assert no_fd.value.errno == errno.EMFILE
            events = kq.control(None, 1, 5)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            for fd in fillers:
                os.close(fd)
        assert [(ev.ident, ev.data) for ev in events] == [(listener.fileno(), 1)]
        events = kq.control(None, 1, 5)  # and once the fds are back, the real count
        assert [(ev.ident, ev.data) for ev in events] == [(listener.fileno(), 1)]
        client.close()
