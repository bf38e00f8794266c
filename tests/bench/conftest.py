"""Shared helpers for the benchmark toolkit's tests: servers on loopback only."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from skqbench.protocol import FRAME_SIZE, Request, decode, encode
from skqbench.servers.base import LOOPBACK


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
