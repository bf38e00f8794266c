"""Fixed-size binary request/response frame shared by the load generator and servers.

A frame is 24 bytes, little endian ``<IIQQ``:

* ``magic``: :data:`MAGIC` (protocol name and version); anything else is malformed and
  the server closes that connection, and only that one.
* ``service_ns``: how long the server must work on this request.  The load generator
  draws it (the connection's class times the distribution), so the service mix is exact,
  reproducible from a seed and identical for every server design.
* ``request_id``: opaque to the server.
* ``sched_ns``: the *scheduled* send time (``time.monotonic_ns`` of the generator);
  latency is measured from it, so a late send cannot hide queueing (no coordinated
  omission).

The server echoes the frame unchanged once the service is done.  A fixed size means a
server reads exactly one request per readiness event without any parsing state beyond
a partial-frame buffer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = 0x514B5301  # "SKQ" + version 1
FRAME = struct.Struct("<IIQQ")
FRAME_SIZE = FRAME.size
MAX_SERVICE_NS = 2**32 - 1


class ProtocolError(ValueError):
    """A frame that is not ours: the peer is closed, the server keeps running."""


@dataclass(frozen=True, slots=True)
class Request:
    """One decoded frame."""

    service_ns: int
    request_id: int
    sched_ns: int


def encode(req: Request) -> bytes:
    """Pack a request; raises ``ValueError`` for a service time that does not fit."""
    if not 0 <= req.service_ns <= MAX_SERVICE_NS:
        raise ValueError(f"service time {req.service_ns} ns out of range")
    return FRAME.pack(MAGIC, req.service_ns, req.request_id, req.sched_ns)


def decode(frame: bytes | bytearray | memoryview) -> Request:
    """Unpack exactly one frame; raises :class:`ProtocolError` if it is malformed."""
    if len(frame) != FRAME_SIZE:
        raise ProtocolError(f"frame of {len(frame)} bytes, expected {FRAME_SIZE}")
    magic, service_ns, request_id, sched_ns = FRAME.unpack(frame)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {magic:#x}")
    return Request(service_ns, request_id, sched_ns)
