"""The key-value workload: the store, the mix, the framing, servers answering both
populations, and requests that must cost their connection only."""

from __future__ import annotations

import os
import random
import socket
from collections import Counter
from dataclasses import replace

import pytest

from skqbench import kvstore
from skqbench.kvstore import Dataset, KvService, SeekRecords, Store, key_for, value_for
from skqbench.loadgen import LoadGenerator, LoadSpec
from skqbench.protocol import (
    KV_GET,
    KV_HEADER,
    KV_HELLO,
    KV_MAX_VALUE,
    KV_NOT_FOUND,
    KV_OK,
    KV_PUT,
    KV_REALTIME,
    KV_SEEK,
    Framer,
    Job,
    KvRequest,
    ProtocolError,
    Request,
    decode_kv,
    encode,
    encode_kv,
)
from skqbench.servers.base import DESIGNS, ServerConfig

from .conftest import connect, running
from .test_server_faults import assert_closed_by_peer

KEYS = 2000


def kv_config(
    design: str, workers: int = 2, max_value: int = 1024, max_scan: int = 100
) -> ServerConfig:
    return ServerConfig(
        design,
        workers,
        work="kv",
        kv_keys=KEYS,
        kv_max_value=max_value,
        kv_max_scan=max_scan,
    )


def recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def call(sock: socket.socket, req: KvRequest) -> tuple[int, int, bytes]:
    """(op, status, body) of the reply to ``req``, checked to be ``req``'s."""
    sock.sendall(encode_kv(req))
    _, op, status, _, size, rid, sched = KV_HEADER.unpack(recv_exact(sock, KV_HEADER.size))
    assert (rid, sched) == (req.request_id, req.sched_ns)
    return op, status, recv_exact(sock, size)


# ------------------------------------------------------------------ store and mix


def test_store_round_trip_and_the_cache(tmp_path: os.PathLike[str]) -> None:
    dataset = Dataset(500, seed=3)
    path = kvstore.load(dataset, str(tmp_path))
    assert os.path.basename(path) == dataset.cache_name
    stamp = os.stat(os.path.join(path, "data.mdb")).st_mtime_ns
    assert kvstore.load(dataset, str(tmp_path)) == path  # cached: not loaded again
    assert os.stat(os.path.join(path, "data.mdb")).st_mtime_ns == stamp
    assert [p for p in os.listdir(tmp_path) if p != dataset.cache_name] == []  # no leftovers
    store = Store(path, dataset.keys)
    try:
        for i in (0, 1, 250, 499):
            value = store.get(key_for(i))
            assert value is not None and value == value_for(key_for(i), len(value))
            assert kvstore.VALUE_MIN <= len(value) <= kvstore.VALUE_MAX
        assert store.get(key_for(500)) is None
        store.put(key_for(7), value_for(key_for(7), 1000))
        assert store.get(key_for(7)) == value_for(key_for(7), 1000)
        records = store.seek(key_for(495), 10)  # runs off the end: 5 records
        assert [k for k, _ in records] == [key_for(i) for i in range(495, 500)]
        assert store.seek(key_for(3), 4) == [
            (key_for(i), store.get(key_for(i))) for i in range(3, 7)
        ]
        assert store.seek(b"k" + b"9" * 47, 3) == []
    finally:
        store.close()


def test_keys_are_48_bytes_and_sort_as_their_indexes() -> None:
    keys = [key_for(i) for i in (0, 9, 10, 99_999, 10**9 - 1)]
    assert all(len(k) == 48 for k in keys) and keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_mix_proportions_and_heavy_tails_are_as_stated() -> None:
    dataset = Dataset(1000)
    rng = random.Random(7)
    ops = [dataset.draw(rng) for _ in range(200_000)]
    share = Counter(op.op for op in ops)
    assert share["get"] / len(ops) == pytest.approx(0.83, abs=0.005)
    assert share["put"] / len(ops) == pytest.approx(0.14, abs=0.005)
    assert share["seek"] / len(ops) == pytest.approx(0.03, abs=0.002)
    sizes = sorted(op.arg for op in ops if op.op == "put")
    assert sizes[0] == kvstore.VALUE_MIN and sizes[-1] <= kvstore.VALUE_MAX
    scans = sorted(op.arg for op in ops if op.op == "seek")
    assert scans[0] >= 1 and scans[-1] == kvstore.MAX_SCAN
    # Generalized Pareto, k=2.517, sigma=14.236: median sigma (2^k - 1) / k = 26.7, and
    # P(run > 10,000) = (1 + k 10^4 / sigma)^(-1/k) = 5.1 %: the clamp takes that share.
    assert 20 <= scans[len(scans) // 2] <= 34
    assert scans.count(kvstore.MAX_SCAN) / len(scans) == pytest.approx(0.051, abs=0.012)
    capped = [dataset.draw(rng, 100) for _ in range(5000)]
    assert all(1 <= op.arg <= 100 for op in capped if op.op == "seek")
    assert [dataset.draw(random.Random(1)) for _ in range(3)] == [
        dataset.draw(random.Random(1)) for _ in range(3)
    ]


# ------------------------------------------------------------------ framing


def test_kv_frames_round_trip_across_partial_reads() -> None:
    put = KvRequest(KV_PUT, 0, 5, 11, 12, key_for(1), b"hello")
    seek = KvRequest(KV_SEEK, 0, 40, 13, 14, key_for(2))
    hello = KvRequest(KV_HELLO, KV_REALTIME, 0, 15, 16)
    data = encode_kv(hello) + encode_kv(put) + encode_kv(seek)
    framer = Framer()
    frames = framer.feed(data[:20]) + framer.feed(data[20:90]) + framer.feed(data[90:])
    assert [decode_kv(f) for f in frames] == [hello, put, seek]
    assert not framer.realtime
    framer.respond(frames[0], _Handler())
    assert framer.realtime  # a HELLO with the flag marks the connection


class _Handler:
    def timed(self, service_ns: int | None, reply: bytes | None) -> Job:
        raise AssertionError("not a timed frame")

    def kv(self, req: KvRequest) -> Job:
        return lambda: None


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (KV_HEADER.pack(0x564B5302, 9, 0, 0, 0, 1, 1), "op"),
        (KV_HEADER.pack(0x564B5302, KV_PUT, 0, 0, KV_MAX_VALUE + 1, 1, 1), "value"),
        (KV_HEADER.pack(0x564B5302, KV_SEEK, 0, 0, 0, 1, 1), "scan"),
        (KV_HEADER.pack(0x56FF5302, KV_GET, 0, 0, 0, 1, 1), "magic"),
    ],
    ids=["op", "value", "scan", "magic"],
)
def test_malformed_kv_headers_are_protocol_errors(frame: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        Framer().feed(frame)


def test_seek_records_round_trip_and_reject_a_wrong_size() -> None:
    records = [(key_for(i), value_for(key_for(i), 10 + i)) for i in range(5)]
    body = SeekRecords.encode(records)
    parsed = SeekRecords(body)
    assert parsed.items() == records and len(parsed) == 5
    assert parsed.value(4) == records[4][1]
    assert SeekRecords(SeekRecords.encode([])).items() == []
    for bad in (body[:-1], body + b"x", b"\x01"):
        with pytest.raises(ValueError):
            SeekRecords(bad)


def test_service_answers_each_op() -> None:
    path = kvstore.load(Dataset(KEYS))
    service = KvService(Store(path, KEYS))
    try:
        reply = service.serve(KvRequest(KV_GET, 0, 0, 1, 2, key_for(KEYS)))
        assert KV_HEADER.unpack_from(reply)[2] == KV_NOT_FOUND
        reply = service.serve(KvRequest(KV_SEEK, 0, 3, 1, 2, key_for(10)))
        body = reply[KV_HEADER.size :]
        assert KV_HEADER.unpack_from(reply)[2:5] == (KV_OK, 0, len(body))
        assert [k for k, _ in SeekRecords(body).items()] == [key_for(i) for i in (10, 11, 12)]
    finally:
        service.store.close()


# ------------------------------------------------------------------ servers


@pytest.mark.timeout(90)
@pytest.mark.parametrize("design", ["skq", "dispatch"])
def test_server_answers_both_populations_every_reply_checked(design: str) -> None:
    with running(kv_config(design, 4, max_scan=200)) as server, LoadGenerator(1) as gen:
        spec = LoadSpec(
            server.port,
            rate=300,
            duration_s=1.0,
            warmup_s=0.2,
            connections=8,
            workload="kv",
            rt_connections=2,
            rt_rate=100,
            kv_keys=KEYS,
            max_scan=200,
        )
        pops = gen.run_populations(spec)
        assert set(pops) == {"bg", "rt"}
        for name, res in pops.items():
            # errors counts every reply the generator's check rejected
            assert res.errors == res.timeouts == 0, name
            assert res.sent == res.received > 0, name
        assert pops["bg"].sent > 2 * pops["rt"].sent  # 300/s against 100/s
        stats = server.stats()
    if design == "skq":  # only SKQ registers the latency-sensitive sockets EV_REALTIME
        assert sum(q["realtime"] for q in stats["kqueue"]["kevqs"]) >= pops["rt"].received


@pytest.mark.timeout(90)
def test_skq_server_keeps_reserved_workers_for_the_latency_sensitive_connections() -> None:
    cfg = replace(kv_config("skq", 3, max_scan=200), rtreserve=1)
    assert cfg.label == "skq best2 rt1 x3"
    with running(cfg) as server, LoadGenerator(1) as gen:
        spec = LoadSpec(
            server.port,
            rate=300,
            duration_s=1.0,
            warmup_s=0.2,
            connections=8,
            workload="kv",
            rt_connections=2,
            rt_rate=100,
            kv_keys=KEYS,
            max_scan=200,
        )
        pops = gen.run_populations(spec)
        for name, res in pops.items():
            assert res.errors == res.timeouts == 0, name
            assert res.sent == res.received > 0, name
        kq = server.stats()["kqueue"]
    assert (kq["rtreserve"], kq["reserved_kevqs"]) == (1, 1)
    assert kq["reserved_placements"] > 0 and kq["reserve_refused"] > 0
    (reserved,) = [q for q in kq["kevqs"] if q["reserved"]]
    assert reserved["realtime"] > 0


KV_FAULTS = {
    "put over kv_max_value": encode_kv(KvRequest(KV_PUT, 0, 0, 1, 1, key_for(1), b"x" * 2000)),
    "seek over kv_max_scan": encode_kv(KvRequest(KV_SEEK, 0, 500, 1, 1, key_for(1))),
    "timed frame": encode(Request(1000, 1, 1)),
    "unknown op": KV_HEADER.pack(0x564B5302, 9, 0, 0, 0, 1, 1),
    "garbage after a request": encode_kv(KvRequest(KV_GET, 0, 0, 1, 1, key_for(1)))
    + b"\x00" * KV_HEADER.size,
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("design", list(DESIGNS))
def test_bad_kv_requests_close_that_connection_only(design: str) -> None:
    with running(kv_config(design)) as server:
        good = connect(server.port)
        assert call(good, KvRequest(KV_HELLO, KV_REALTIME, 0, 1, 2))[:2] == (KV_HELLO, KV_OK)
        for name, frame in KV_FAULTS.items():
            bad = connect(server.port)
            bad.sendall(frame)
            assert_closed_by_peer(bad)
            bad.close()
            op, status, body = call(good, KvRequest(KV_GET, 0, 0, 3, 4, key_for(5)))
            assert (op, status) == (KV_GET, KV_OK), name
            assert body == value_for(key_for(5), len(body)), name
        assert server.stats()["events"].get("protocol_error") == len(KV_FAULTS)


@pytest.mark.timeout(60)
def test_timed_server_refuses_kv_requests() -> None:
    with running(ServerConfig("dispatch", 2)) as server:
        sock = connect(server.port)
        sock.sendall(encode_kv(KvRequest(KV_GET, 0, 0, 1, 1, key_for(1))))
        assert_closed_by_peer(sock)
