"""Shared helpers for the benchmark toolkit's tests: servers on loopback only, and the
``skqueue`` command run in a child interpreter that imports this checkout."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from skqbench.protocol import FRAME_SIZE, Request, decode, encode
from skqbench.servers.base import LOOPBACK, ServerConfig
from skqbench.servers.harness import ServerProcess
from support import checkout_env

#: ``python -m skqbench.cli`` with Ctrl-C restored: a test run started in the background
#: (``... &`` in a script, nohup) inherits SIGINT ignored, and Python keeps an inherited
#: SIG_IGN, so the tests that stop a command with SIGINT would wait for it forever.
_CLI_MAIN = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('skqbench.cli', run_name='__main__', alter_sys=True)"
)


def cli(*args: str) -> list[str]:
    """The argv of ``skqueue ARGS`` (the entry point need not be installed)."""
    return [sys.executable, "-c", _CLI_MAIN, *args]


def run_cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``skqueue ARGS`` run to its end, its output captured as text."""
    return subprocess.run(
        cli(*args), capture_output=True, text=True, env=checkout_env(), timeout=timeout, check=False
    )


@contextlib.contextmanager
def cli_process(*args: str, stderr: int = subprocess.PIPE) -> Iterator[subprocess.Popen[str]]:
    """``skqueue ARGS`` running, its output piped as text; killed and reaped at the end."""
    proc = subprocess.Popen(
        cli(*args), stdout=subprocess.PIPE, stderr=stderr, text=True, env=checkout_env()
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection((LOOPBACK, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_frame(sock: socket.socket) -> Request:
    buf = b""
    while len(buf) < FRAME_SIZE:
        chunk = sock.recv(FRAME_SIZE - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return decode(buf)


def roundtrip(sock: socket.socket, req: Request) -> Request:
    sock.sendall(encode(req))
    return recv_frame(sock)


@pytest.fixture
def tmp_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield str(tmp_path_factory.mktemp("report"))


@contextlib.contextmanager
def running(cfg: ServerConfig) -> Iterator[ServerProcess]:
    """A server design in its child process for the with-block; stopped at the end."""
    proc = ServerProcess(cfg)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
