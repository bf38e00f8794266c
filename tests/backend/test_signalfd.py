"""signalfd through the tests' own wrapper: the kernel behaviour that keeps the SIGNAL
filter off signalfd (a signal reaches it only while blocked).  Real fds, no mocks."""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from support import kernel
from support.kernel import wait_readable


@pytest.fixture
def blocked_usr() -> Iterator[None]:
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGUSR2})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@pytest.mark.usefixtures("blocked_usr")
def test_signalfd_receives_blocked_signal() -> None:
    fd = kernel.signalfd(-1, [signal.SIGUSR1])
    try:
        assert os.get_blocking(fd) is False
        assert os.get_inheritable(fd) is False
        assert kernel.read_signalfd(fd) == []
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        assert wait_readable(fd)
        infos = kernel.read_signalfd(fd)
        assert len(infos) == 1
        info = infos[0]
        assert info.signo == signal.SIGUSR1
        assert info.code == -6  # SI_TKILL: sent by tgkill
        assert info.pid == os.getpid()
        assert info.uid == os.getuid()
        assert kernel.read_signalfd(fd) == []
    finally:
        os.close(fd)


@pytest.mark.usefixtures("blocked_usr")
def test_signalfd_update_mask_and_read_several() -> None:
    fd = kernel.signalfd(-1, [signal.SIGUSR1])
    try:
        assert kernel.signalfd(fd, [signal.SIGUSR1, signal.SIGUSR2]) == fd
        me = threading.get_ident()
        signal.pthread_kill(me, signal.SIGUSR2)
        signal.pthread_kill(me, signal.SIGUSR1)
        got = sorted(i.signo for i in kernel.read_signalfd(fd))
        assert got == [signal.SIGUSR1, signal.SIGUSR2]
        # Narrowing the mask hides SIGUSR2: it stays pending on the thread instead.
        kernel.signalfd(fd, [signal.SIGUSR1])
        signal.pthread_kill(me, signal.SIGUSR2)
        assert kernel.read_signalfd(fd) == []
        assert signal.SIGUSR2 in signal.sigpending()
        kernel.signalfd(fd, [signal.SIGUSR2])
        assert [i.signo for i in kernel.read_signalfd(fd)] == [signal.SIGUSR2]
    finally:
        os.close(fd)


def test_signalfd_rejects_bad_signal_numbers() -> None:
    for bad in (0, -1, signal.NSIG, 5000):
        with pytest.raises(OSError) as info:
            kernel.signalfd(-1, [bad])
        assert info.value.errno == errno.EINVAL


def test_signalfd_bad_fd() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            kernel.signalfd(r, [signal.SIGUSR1])
        assert info.value.errno == errno.EINVAL
    finally:
        os.close(r)
        os.close(w)
