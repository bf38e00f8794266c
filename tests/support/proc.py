"""Child processes for the EVFILT_PROC tests: a scripted child, and whether the proc
connector (NOTE_FORK / NOTE_EXEC) is open to this process."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap

import pytest

from skqueue.backend.proc_connector import ProcConnector

#: Long enough never to expire when things work, on a busy machine.
WAIT = 5.0

#: wait(2) status of the scripted child's own exit (exit(3)).
STATUS = 3 << 8

# One line of stdin per step, answered "done"; exit(3) at an empty line or at EOF.
SCRIPT = textwrap.dedent(
    """
    import os, sys, threading
    print("ready", flush=True)
    while step := sys.stdin.readline().strip():
        if step == "fork":
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
        elif step == "thread":
            worker = threading.Thread(target=lambda: None)
            worker.start()
            worker.join()
        elif step == "exec":
            os.execv("/bin/sh", ["sh", "-c", "read line; exit 4"])
        print("done", flush=True)
    sys.exit(3)
    """
)


@functools.cache
def connector_works() -> bool:
    """The proc connector needs root in the initial namespaces; without it, no NOTE_FORK."""
    try:
        ProcConnector.open().close()
    except OSError:
        return False
    return True


needs_connector = pytest.mark.skipif(
    not connector_works(), reason="the proc connector needs root in the initial namespaces"
)


class Child:
    """A scripted child process; ``step`` returns once the child has done it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.pid = self.proc.pid
        # Popen may return (vfork) before the exec is over: wait until it is.
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"

    def step(self, name: str) -> None:
        """ "fork" (a child, reaped), "thread" (started and joined) or "exec" (a shell)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        if name != "exec":
            assert self.proc.stdout.readline() == "done\n"

    def finish(self) -> None:
        """Make it exit: 3 from the script, 4 from the shell it may have become."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.close()

    def exit_unreaped(self) -> None:
        """Make it exit and wait until it has, without reaping it (the kqueue reads the status)."""
        self.finish()
        os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
