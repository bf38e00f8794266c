"""Runs a server design in its own process, with a local control socket.

The benchmark never serves and generates load in one interpreter: :class:`ServerProcess`
spawns a child that starts the design and answers ``stats`` on a unix socket
(:mod:`skqbench.control`), which is also what ``skqueue stats`` talks to when
``skqueue serve`` runs a server in the foreground (:func:`run_server`).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from typing import Any

from skqbench.control import ControlServer, query
from skqbench.osutil import child_process_setup
from skqbench.servers.base import ServerConfig, load_design

START_TIMEOUT_S = 60.0


def run_server(
    cfg: ServerConfig, control_path: str, ready: Callable[[int], None], stop: threading.Event
) -> None:
    """Start the design and its control socket, call ``ready(port)``, serve until ``stop``."""
    server = load_design(cfg.design)(cfg)
    with server.running() as port:
        control = ControlServer(control_path, server.stats)
        try:
            ready(port)
            stop.wait()
        finally:
            control.close()


def _child_main(cfg: ServerConfig, control_path: str, pipe: Pipe) -> None:
    child_process_setup()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def wait_for_parent() -> None:
        with contextlib.suppress(EOFError, OSError):
            pipe.recv()
        stop.set()

    threading.Thread(target=wait_for_parent, daemon=True).start()
    try:
        run_server(cfg, control_path, lambda port: pipe.send(("ready", port)), stop)
    except Exception as exc:
        with contextlib.suppress(OSError):
            pipe.send(("error", f"{cfg.design} server failed: {type(exc).__name__}: {exc}"))


class ServerProcess:
    """A server design in a child process: ``start() -> port``, ``stats()``, ``stop()``."""

    def __init__(self, cfg: ServerConfig, control_path: str | None = None) -> None:
        self.cfg = cfg
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if control_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="skqbench-")
            control_path = os.path.join(self._tmp.name, "control.sock")
        self.control_path = control_path
        self.port = 0

    def start(self, timeout: float = START_TIMEOUT_S) -> int:
        ctx = mp.get_context("spawn")
        self._pipe, theirs = ctx.Pipe()
        # Not daemonic: the reuseport design starts processes of its own.
        self._proc = ctx.Process(
            target=_child_main, args=(self.cfg, self.control_path, theirs), name="server"
        )
        self._proc.start()
        theirs.close()
        if not self._pipe.poll(timeout):
            self.stop()
            raise RuntimeError(f"{self.cfg.label} server did not start within {timeout:.0f} s")
        try:
            status, value = self._pipe.recv()
        except EOFError:
            status, value = "error", f"{self.cfg.label} server exited while starting"
        if status != "ready":
            self.stop()
            raise RuntimeError(value)
        self.port = int(value)
        return self.port

    @property
    def pid(self) -> int:
        """The server process (the reuseport design's workers are its children)."""
        pid = self._proc.pid
        assert pid is not None, "not started"
        return pid

    def stats(self) -> dict[str, Any]:
        return query(self.control_path)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._pipe.send("stop")
        self._proc.join(10.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._pipe.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
