"""asyncio baseline: one event loop thread reads and writes, the service runs in a
``ThreadPoolExecutor`` of N threads (what ``run_in_executor`` does for an asyncio
service with a blocking database driver; the future is used directly, without a
coroutine per request, so the baseline is not slowed by our own overhead)."""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

from skqbench.protocol import Framer, ProtocolError
from skqbench.servers.base import Server, listen_socket


class _FrameProtocol(asyncio.Protocol):
    """Splits the byte stream into frames and offloads each one to the pool."""

    def __init__(self, server: AsyncioServer) -> None:
        self.server = server
        self.framer = Framer()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server.transports.add(self.transport)
        # asyncio sets TCP_NODELAY only when the socket's proto is IPPROTO_TCP, which an
        # accepted socket's is not; without it Nagle adds 40 ms stalls.
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server.transports.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            frames = self.framer.feed(data)
        except ProtocolError:
            self.transport.close()
            return
        server = self.server
        for frame in frames:
            service_ns, reply = self.framer.respond(frame, server.sockperf_service_ns)
            fut = server.pool.submit(server.serve_in_pool, service_ns)
            if reply is not None:
                fut.add_done_callback(functools.partial(server.reply, self.transport, reply))


class AsyncioServer(Server):
    """Event loop in a thread; ``cfg.workers`` service threads."""

    def new_loop(self) -> asyncio.AbstractEventLoop:
        """The loop implementation; the uvloop design overrides this only."""
        return asyncio.new_event_loop()

    def start(self) -> int:
        self.loop = self.new_loop()
        self.transports: set[asyncio.Transport] = set()
        self.pool = ThreadPoolExecutor(self.cfg.workers, thread_name_prefix="pool")
        sock = listen_socket(self.cfg.port, self.cfg.reuseport)
        port: int = sock.getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sock, ready), daemon=True)
        self._thread.start()
        ready.wait()
        return port

    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self._aserver = self.loop.run_until_complete(
            self.loop.create_server(lambda: _FrameProtocol(self), sock=sock)
        )
        ready.set()
        self.loop.run_forever()

    def serve_in_pool(self, service_ns: int) -> None:
        self.serve_request(threading.current_thread().name, service_ns)

    def reply(self, transport: asyncio.Transport, frame: bytes, fut: Future[None]) -> None:
        """Pool-thread callback: hand the write to the loop thread."""
        if fut.exception() is None:
            self.loop.call_soon_threadsafe(self._write, transport, frame)

    @staticmethod
    def _write(transport: asyncio.Transport, frame: bytes) -> None:
        if not transport.is_closing():
            transport.write(frame)

    def stop(self) -> None:
        async def close() -> None:
            self._aserver.close()
            for transport in list(self.transports):
                transport.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.pool.shutdown(wait=True)
        self.loop.close()


DESIGN = AsyncioServer
