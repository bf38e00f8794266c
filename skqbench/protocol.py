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

Servers also speak sockperf's framing (so that its C client can cross-check our numbers,
see :mod:`skqbench.crosscheck`): a 14-byte network-order header ``>QHI`` (sequence number,
flags, total message length) and a payload.  Messages with the pong-request flag are
answered with the same bytes and the client flag cleared; their service time comes from
the server's own distribution, since sockperf cannot carry one.  A connection's framing
is recognised from its first byte: ours starts with ``MAGIC``'s low byte (0x01), a
sockperf sequence number with 0x00.
"""

from __future__ import annotations

import abc
import struct
from collections.abc import Callable
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


SOCKPERF_HEADER = struct.Struct(">QHI")
SOCKPERF_CLIENT = 1
SOCKPERF_PONG_REQUEST = 2
SOCKPERF_MAX_SIZE = 65536
MIN_HEADER = SOCKPERF_HEADER.size  # reading this much never runs past a frame of either kind

ServiceSource = Callable[[], int]  # the server's own service time, for sockperf messages
Reply = tuple[int, bytes | None]  # (service time in ns, bytes to send back or None)


class Framing(abc.ABC):
    """How one protocol delimits frames and answers them."""

    header_size: int

    @abc.abstractmethod
    def frame_size(self, header: bytes) -> int:
        """Total size of the frame that starts with ``header``; ProtocolError if bad."""

    @abc.abstractmethod
    def respond(self, frame: bytes, server_service_ns: ServiceSource) -> Reply:
        """(service time, reply or None) for a complete frame."""


class SkqFraming(Framing):
    """Our fixed 24-byte frame; the client chose the service time."""

    header_size = FRAME_SIZE

    def frame_size(self, header: bytes) -> int:
        return FRAME_SIZE

    def respond(self, frame: bytes, server_service_ns: ServiceSource) -> Reply:
        return decode(frame).service_ns, frame


class SockperfFraming(Framing):
    """sockperf's messages; only pong requests are answered."""

    header_size = SOCKPERF_HEADER.size

    def frame_size(self, header: bytes) -> int:
        _, _, length = SOCKPERF_HEADER.unpack(header)
        if not self.header_size <= length <= SOCKPERF_MAX_SIZE:
            raise ProtocolError(f"sockperf message length {length}")
        return int(length)

    def respond(self, frame: bytes, server_service_ns: ServiceSource) -> Reply:
        seq, flags, length = SOCKPERF_HEADER.unpack_from(frame)
        if not flags & SOCKPERF_PONG_REQUEST:
            return server_service_ns(), None
        header = SOCKPERF_HEADER.pack(seq, flags & ~SOCKPERF_CLIENT, length)
        return server_service_ns(), header + frame[self.header_size :]


_BY_FIRST_BYTE: dict[int, Framing] = {MAGIC & 0xFF: SkqFraming(), 0: SockperfFraming()}


class Framer:
    """Cuts one connection's byte stream into frames, recognising the protocol first."""

    __slots__ = ("buf", "framing", "size")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.framing: Framing | None = None
        self.size = 0  # of the frame being read, once its header is in

    def wanted(self) -> int:
        """Bytes that complete the current header or frame and not one more."""
        if self.framing is None:
            return MIN_HEADER - len(self.buf)
        if not self.size:
            return self.framing.header_size - len(self.buf)
        return self.size - len(self.buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes, return the complete frames; ProtocolError if malformed."""
        self.buf += data
        frames = []
        while True:
            if self.framing is None:
                if not self.buf:
                    break
                framing = _BY_FIRST_BYTE.get(self.buf[0])
                if framing is None:
                    raise ProtocolError(f"unknown protocol (first byte {self.buf[0]:#x})")
                self.framing = framing
            if not self.size:
                if len(self.buf) < self.framing.header_size:
                    break
                self.size = self.framing.frame_size(bytes(self.buf[: self.framing.header_size]))
            if len(self.buf) < self.size:
                break
            frames.append(bytes(self.buf[: self.size]))
            del self.buf[: self.size]
            self.size = 0
        return frames

    def respond(self, frame: bytes, server_service_ns: ServiceSource) -> Reply:
        """(service time, reply or None) for a frame :meth:`feed` returned."""
        assert self.framing is not None
        return self.framing.respond(frame, server_service_ns)
