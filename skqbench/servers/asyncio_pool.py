"""asyncio baseline: one event loop thread reads and writes, the service runs in a
``ThreadPoolExecutor`` of N threads (what ``run_in_executor`` does for an asyncio
service with a blocking database driver; the future is used directly, without a
coroutine per request, so the baseline is not slowed by our own overhead).

What one connection may hold is bounded, as in the kqueue designs: at most
``cfg.inflight_limit`` of its requests are in the pool (the rest wait on the connection,
which stops being read), and a reply the client does not read within
``cfg.send_timeout`` (the transport's write buffer over its high-water mark) drops it.
The loop accepts by itself rather than through ``create_server``, whose accept loop
logs about a hundred tracebacks a second while the process is out of fds.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

from skqbench.protocol import Framer, Job, ProtocolError
from skqbench.servers.base import ACCEPT_BACKOFF_S, Server, listen_socket


class _FrameProtocol(asyncio.Protocol):
    """Splits the byte stream into frames and offloads them to the pool, a bounded
    number at a time."""

    def __init__(self, server: AsyncioServer) -> None:
        self.server = server
        self.framer = Framer()
        self.transport: asyncio.Transport | None = None
        self.pending: deque[Job] = deque()
        self.inflight = 0
        self.reading = True
        self.eof = False
        self.write_deadline: asyncio.TimerHandle | None = None

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
        if self.write_deadline is not None:
            self.write_deadline.cancel()
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            for frame in self.framer.feed(data):
                self.pending.append(self.server.respond(self.framer, frame))
        except ProtocolError:
            self.server.count("protocol_error")
            self.transport.close()
            return
        self._submit()

    def eof_received(self) -> bool:
        """The client sent all it will: answer what it asked for, then close (asyncio
        would close at once, dropping the replies still in the pool)."""
        self.eof = True
        self._submit()
        return True

    def pause_writing(self) -> None:
        """The client is not reading: stop taking requests, drop it at the deadline."""
        self.write_deadline = self.server.loop.call_later(
            self.server.cfg.send_timeout_s, self._too_slow
        )
        self._update_reading()

    def resume_writing(self) -> None:
        if self.write_deadline is not None:
            self.write_deadline.cancel()
            self.write_deadline = None
        self._update_reading()

    def _too_slow(self) -> None:
        assert self.transport is not None
        self.server.count("slow_reader")
        self.transport.abort()

    def _submit(self) -> None:
        """Move pending requests into the pool up to the connection's in-flight limit;
        close once a client that sent its end of file has every reply."""
        server = self.server
        while self.pending and self.inflight < server.cfg.inflight_limit:
            self.inflight += 1
            fut = server.pool.submit(server.serve_in_pool, self.pending.popleft())
            fut.add_done_callback(functools.partial(server.done_in_pool, self))
        assert self.transport is not None
        if self.eof and not self.inflight:
            self.transport.close()  # after the write buffer is flushed
        else:
            self._update_reading()

    def done(self, fut: Future[bytes | None]) -> None:
        """Loop thread: a request of this connection left the pool."""
        self.inflight -= 1
        assert self.transport is not None
        if self.transport.is_closing():
            return
        reply = None if fut.exception() is not None else fut.result()
        if reply is not None:
            self.transport.write(reply)
        self._submit()

    def _update_reading(self) -> None:
        """Read only while nothing waits for the pool and the client keeps reading."""
        assert self.transport is not None
        want = not self.pending and self.write_deadline is None
        if want == self.reading or self.eof or self.transport.is_closing():
            return
        self.reading = want
        if want:
            self.transport.resume_reading()
        else:
            self.transport.pause_reading()


class AsyncioServer(Server):
    """Event loop in a thread; ``cfg.workers`` service threads."""

    def new_loop(self) -> asyncio.AbstractEventLoop:
        """The loop implementation; the uvloop design overrides this only."""
        return asyncio.new_event_loop()

    def start(self) -> int:
        self.loop = self.new_loop()
        self.transports: set[asyncio.Transport] = set()
        self._accepting: set[asyncio.Task[object]] = set()
        self._resume_accept: asyncio.TimerHandle | None = None
        self.pool = ThreadPoolExecutor(self.cfg.workers, thread_name_prefix="pool")
        self.listener = listen_socket(self.cfg.port, self.cfg.reuseport)
        self.listener.setblocking(False)
        port: int = self.listener.getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait()
        return port

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.add_reader(self.listener.fileno(), self._accept)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def _accept(self) -> None:
        """Loop thread, listener readable: hand every new socket to a transport; out of
        fds, stop watching the listener for a while (see ``Server.accept_pending``)."""
        socks, exhausted = self.accept_pending(self.listener)
        for sock in socks:
            task = self.loop.create_task(
                self.loop.connect_accepted_socket(lambda: _FrameProtocol(self), sock)
            )
            self._accepting.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._accepted)
        if exhausted:
            self.loop.remove_reader(self.listener.fileno())
            self._resume_accept = self.loop.call_later(
                ACCEPT_BACKOFF_S, self.loop.add_reader, self.listener.fileno(), self._accept
            )

    def _accepted(self, task: asyncio.Task[object]) -> None:
        self._accepting.discard(task)
        if not task.cancelled():
            task.exception()  # a client gone before its transport was made: nothing to do

    def serve_in_pool(self, job: Job) -> bytes | None:
        return self.serve_request(threading.current_thread().name, job)

    def done_in_pool(self, proto: _FrameProtocol, fut: Future[bytes | None]) -> None:
        """Pool-thread callback: hand the outcome to the loop thread."""
        self.loop.call_soon_threadsafe(proto.done, fut)

    def stop(self) -> None:
        async def close() -> None:
            self.loop.remove_reader(self.listener.fileno())
            if self._resume_accept is not None:
                self._resume_accept.cancel()
            self.listener.close()
            for task in list(self._accepting):
                task.cancel()
            for transport in list(self.transports):
                transport.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.pool.shutdown(wait=True)
        self.loop.close()


DESIGN = AsyncioServer
