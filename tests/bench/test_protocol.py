from __future__ import annotations

import pytest

from skqbench.protocol import (
    FRAME_SIZE,
    MAGIC,
    SOCKPERF_CLIENT,
    SOCKPERF_HEADER,
    SOCKPERF_PONG_REQUEST,
    Framer,
    Job,
    KvRequest,
    ProtocolError,
    Request,
    decode,
    encode,
)


class Recorder:
    """A handler that records what a framing asked of the server, when the job runs."""

    def __init__(self) -> None:
        self.calls: list[tuple[int | None, bytes | None] | KvRequest] = []

    def timed(self, service_ns: int | None, reply: bytes | None) -> Job:
        def job() -> bytes | None:
            self.calls.append((service_ns, reply))
            return reply

        return job

    def kv(self, req: KvRequest) -> Job:
        def job() -> bytes | None:
            self.calls.append(req)
            return None

        return job


def test_round_trip_keeps_every_field() -> None:
    req = Request(service_ns=123_456, request_id=2**63 + 5, sched_ns=987_654_321_000)
    frame = encode(req)
    assert len(frame) == FRAME_SIZE == 24
    assert decode(frame) == req
    assert int.from_bytes(frame[:4], "little") == MAGIC


def test_bad_magic_and_wrong_size_are_protocol_errors() -> None:
    frame = bytearray(encode(Request(1, 2, 3)))
    frame[0] ^= 0xFF
    with pytest.raises(ProtocolError, match="magic"):
        decode(frame)
    with pytest.raises(ProtocolError, match="bytes"):
        decode(encode(Request(1, 2, 3))[:-1])


def test_service_time_must_fit_the_frame() -> None:
    with pytest.raises(ValueError):
        encode(Request(2**32, 0, 0))
    with pytest.raises(ValueError):
        encode(Request(-1, 0, 0))


def test_framer_recognises_both_protocols_across_partial_reads() -> None:
    ours = encode(Request(5, 6, 7))
    framer = Framer()
    assert framer.wanted() == 14  # never more than the smallest header
    assert framer.feed(ours[:10]) == []
    assert framer.feed(ours[10:] + ours) == [ours, ours]
    recorder = Recorder()
    assert framer.respond(ours, recorder)() == ours
    assert recorder.calls == [(5, ours)]

    sp = Framer()
    request = SOCKPERF_HEADER.pack(9, SOCKPERF_CLIENT | SOCKPERF_PONG_REQUEST, 20) + b"abcdef"
    silent = SOCKPERF_HEADER.pack(10, SOCKPERF_CLIENT, 14)
    assert sp.feed(silent + request[:3]) == [silent]
    assert sp.wanted() == 11
    assert sp.feed(request[3:15]) == []
    assert sp.wanted() == 5  # the rest of the 20-byte message, not one byte more
    assert sp.feed(request[15:]) == [request]
    recorder = Recorder()
    assert sp.respond(silent, recorder)() is None
    reply = sp.respond(request, recorder)()
    assert reply is not None
    assert recorder.calls == [(None, None), (None, reply)]  # the server draws the time
    assert SOCKPERF_HEADER.unpack(reply[:14]) == (9, SOCKPERF_PONG_REQUEST, 20)
    assert reply[14:] == b"abcdef"


def test_framer_rejects_unknown_protocols_and_bad_lengths() -> None:
    with pytest.raises(ProtocolError, match="unknown protocol"):
        Framer().feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(ProtocolError, match="length"):
        Framer().feed(SOCKPERF_HEADER.pack(1, SOCKPERF_CLIENT, 3))
