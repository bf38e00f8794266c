"""The asyncio design on uvloop (libuv): same protocol and pool, faster loop."""

from __future__ import annotations

import asyncio

import uvloop

from skqbench.servers.asyncio_pool import AsyncioServer


class UvloopServer(AsyncioServer):
    """:class:`AsyncioServer` with a uvloop event loop."""

    def new_loop(self) -> asyncio.AbstractEventLoop:
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop


DESIGN = UvloopServer
