from __future__ import annotations

import pytest

from skqbench.protocol import FRAME_SIZE, MAGIC, ProtocolError, Request, decode, encode


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
