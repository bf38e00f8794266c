"""pidfd: the exit status of a child, read without reaping it. Real fds, no mocks."""

from __future__ import annotations

import os
import signal
import sys

from skqueue.backend.pidfd import exit_status
from support.kernel import wait_readable


def spawn(*code: str) -> int:
    return os.posix_spawn(sys.executable, [sys.executable, "-c", *code], os.environ)


def test_exit_status_exited_child_not_reaped() -> None:
    pid = spawn("import sys; sys.exit(3)")
    pidfd = os.pidfd_open(pid)
    try:
        assert wait_readable(pidfd, 10)
        status = exit_status(pidfd)
        assert status == 3 << 8
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3
        assert exit_status(pidfd) == status  # still there: not reaped
        reaped, wait_status = os.waitpid(pid, 0)
        assert (reaped, wait_status) == (pid, status)
        assert exit_status(pidfd) is None  # reaped now: ECHILD
    finally:
        os.close(pidfd)


def test_exit_status_killed_child() -> None:
    pid = spawn("import time; time.sleep(60)")
    pidfd = os.pidfd_open(pid)
    try:
        assert exit_status(pidfd) is None  # still running
        os.kill(pid, signal.SIGTERM)
        assert wait_readable(pidfd, 10)
        status = exit_status(pidfd)
        assert status == signal.SIGTERM
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        assert os.waitpid(pid, 0) == (pid, status)
    finally:
        os.close(pidfd)


def test_exit_status_not_our_child() -> None:
    pidfd = os.pidfd_open(os.getppid())
    try:
        assert exit_status(pidfd) is None
    finally:
        os.close(pidfd)
