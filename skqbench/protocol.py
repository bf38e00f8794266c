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
sockperf sequence number with 0x00, a key-value request with 0x02.

Key-value requests (:class:`KvRequest`, the workload of :mod:`skqbench.kvstore`) have a
28-byte header ``<IBBHIQQ`` (:data:`KV_MAGIC`, op, flags, 0, argument, request id,
scheduled time), then a 48-byte key (not for HELLO), then for PUT a value of
``argument`` bytes.  The argument of a SEEK is the run of NEXTs.  A HELLO with
:data:`KV_REALTIME` marks its connection latency-sensitive: it is the first frame such
a client sends, so a server that prioritises (SKQ's EV_REALTIME) learns the class from
the connection itself, on the one port every design listens on.  Every request gets one
reply: the same header layout with a status and the body's length as argument, then
the body (GET: the value; SEEK: the records, see :class:`skqbench.kvstore.SeekRecords`).
"""

from __future__ import annotations

import abc
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

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

KV_MAGIC = 0x564B5302  # "KV" + version 2: the low byte tells it from the other framings
KV_HEADER = struct.Struct("<IBBHIQQ")
KV_KEY_SIZE = 48
KV_GET, KV_PUT, KV_SEEK, KV_HELLO = 1, 2, 3, 4
KV_OPS = {KV_GET: "get", KV_PUT: "put", KV_SEEK: "seek", KV_HELLO: "hello"}
KV_REALTIME = 1  # HELLO flag
KV_OK, KV_NOT_FOUND = 0, 1
# Hard limits of the framing, so a header cannot make a server buffer gigabytes; a
# server's own caps (ServerConfig.kv_max_value, kv_max_scan) are lower.
KV_MAX_VALUE = 1 << 20
KV_MAX_SCAN = 1 << 20
KV_RECORD = struct.Struct("<I")  # a SEEK reply's record count and each value's length


@dataclass(frozen=True, slots=True)
class KvRequest:
    """One decoded key-value request; ``arg`` is the run of a SEEK."""

    op: int
    flags: int
    arg: int
    request_id: int
    sched_ns: int
    key: bytes = b""
    value: bytes = b""


def encode_kv(req: KvRequest) -> bytes:
    """Pack a request (a PUT's ``arg`` is its value's length)."""
    arg = len(req.value) if req.op == KV_PUT else req.arg
    header = KV_HEADER.pack(KV_MAGIC, req.op, req.flags, 0, arg, req.request_id, req.sched_ns)
    return header + req.key + req.value


def _kv_frame_size(op: int, arg: int) -> int:
    if op not in KV_OPS:
        raise ProtocolError(f"unknown key-value op {op}")
    if op == KV_HELLO:
        return KV_HEADER.size
    if op == KV_PUT and arg > KV_MAX_VALUE:
        raise ProtocolError(f"value of {arg} bytes over the framing's {KV_MAX_VALUE}")
    if op == KV_SEEK and not 1 <= arg <= KV_MAX_SCAN:
        raise ProtocolError(f"scan of {arg} records")
    return KV_HEADER.size + KV_KEY_SIZE + (arg if op == KV_PUT else 0)


def decode_kv(frame: bytes) -> KvRequest:
    """Unpack one complete request frame; ProtocolError if it is malformed."""
    if len(frame) < KV_HEADER.size:
        raise ProtocolError(f"key-value frame of {len(frame)} bytes")
    magic, op, flags, pad, arg, rid, sched = KV_HEADER.unpack_from(frame)
    if magic != KV_MAGIC or pad:
        raise ProtocolError(f"bad key-value header (magic {magic:#x})")
    if len(frame) != _kv_frame_size(op, arg):
        raise ProtocolError(f"key-value frame of {len(frame)} bytes for op {op}")
    key = frame[KV_HEADER.size : KV_HEADER.size + KV_KEY_SIZE]
    value = frame[KV_HEADER.size + KV_KEY_SIZE :]
    return KvRequest(op, flags, arg, rid, sched, key, value)


def encode_kv_reply(req: KvRequest, status: int, body: bytes = b"") -> bytes:
    """The reply to ``req``: its op, id and scheduled time, a status and a body."""
    header = KV_HEADER.pack(KV_MAGIC, req.op, status, 0, len(body), req.request_id, req.sched_ns)
    return header + body


Job = Callable[[], bytes | None]  # a request's work, returning the reply or None


class Handler(Protocol):
    """What a server offers the framings: the work behind each kind of request."""

    def timed(self, service_ns: int | None, reply: bytes | None) -> Job:
        """Work ``service_ns`` (None: the server draws it), then send ``reply``."""

    def kv(self, req: KvRequest) -> Job:
        """Serve a key-value request against the store."""


class Framing(abc.ABC):
    """How one protocol delimits frames and answers them."""

    header_size: int

    @abc.abstractmethod
    def frame_size(self, header: bytes) -> int:
        """Total size of the frame that starts with ``header``; ProtocolError if bad."""

    @abc.abstractmethod
    def respond(self, frame: bytes, handler: Handler) -> Job:
        """The work (and reply) for a complete frame."""

    def realtime(self, frame: bytes) -> bool:
        """True for a frame that marks its connection latency-sensitive."""
        return False


class SkqFraming(Framing):
    """Our fixed 24-byte frame; the client chose the service time."""

    header_size = FRAME_SIZE

    def frame_size(self, header: bytes) -> int:
        return FRAME_SIZE

    def respond(self, frame: bytes, handler: Handler) -> Job:
        return handler.timed(decode(frame).service_ns, frame)


class SockperfFraming(Framing):
    """sockperf's messages; only pong requests are answered."""

    header_size = SOCKPERF_HEADER.size

    def frame_size(self, header: bytes) -> int:
        _, _, length = SOCKPERF_HEADER.unpack(header)
        if not self.header_size <= length <= SOCKPERF_MAX_SIZE:
            raise ProtocolError(f"sockperf message length {length}")
        return int(length)

    def respond(self, frame: bytes, handler: Handler) -> Job:
        seq, flags, length = SOCKPERF_HEADER.unpack_from(frame)
        if not flags & SOCKPERF_PONG_REQUEST:
            return handler.timed(None, None)
        header = SOCKPERF_HEADER.pack(seq, flags & ~SOCKPERF_CLIENT, length)
        return handler.timed(None, header + frame[self.header_size :])


class KvFraming(Framing):
    """Key-value requests: a fixed header whose op and argument give the frame's size."""

    header_size = KV_HEADER.size

    def frame_size(self, header: bytes) -> int:
        magic, op, _, _, arg, _, _ = KV_HEADER.unpack(header)
        if magic != KV_MAGIC:
            raise ProtocolError(f"bad key-value magic {magic:#x}")
        return _kv_frame_size(op, arg)

    def respond(self, frame: bytes, handler: Handler) -> Job:
        return handler.kv(decode_kv(frame))

    def realtime(self, frame: bytes) -> bool:
        _, op, flags, *_ = KV_HEADER.unpack_from(frame)
        return bool(op == KV_HELLO and flags & KV_REALTIME)


_BY_FIRST_BYTE: dict[int, Framing] = {
    MAGIC & 0xFF: SkqFraming(),
    0: SockperfFraming(),
    KV_MAGIC & 0xFF: KvFraming(),
}


class Framer:
    """Cuts one connection's byte stream into frames, recognising the protocol first."""

    __slots__ = ("buf", "framing", "realtime", "size")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.framing: Framing | None = None
        self.size = 0  # of the frame being read, once its header is in
        self.realtime = False  # the client said it is latency-sensitive (a KV HELLO)

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

    def respond(self, frame: bytes, handler: Handler) -> Job:
        """The work for a frame :meth:`feed` returned (noting a realtime HELLO)."""
        assert self.framing is not None
        if self.framing.realtime(frame):
            self.realtime = True
        return self.framing.respond(frame, handler)
