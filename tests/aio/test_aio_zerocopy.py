"""Zero-copy aio_write: send-id ledger, coalesced notices, and 64 MiB to a slow reader."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

import skqueue
from skqueue import aio_error, aio_return, aio_write, aiocb
from skqueue.aio import jobs, zerocopy
from skqueue.aio.zerocopy import Ledger, Notice

from .conftest import settle


def _job(table: jobs.JobTable, n: int) -> jobs.Job:
    return jobs.Job(table, aiocb(0, bytes(n)), jobs.OP_WRITE, None, n, (0, 0), True)


def test_ledger_completes_a_job_only_when_all_its_ids_are_covered() -> None:
    table = jobs.JobTable()
    stats = table.stats
    first, second = _job(table, 300), _job(table, 100)
    ledger = Ledger()
    for offset in (0, 100, 200):
        ledger.record(first, offset, 100)
    ledger.record(second, 0, 100)
    stats["zc_inflight"] = 4
    assert ledger.release(Notice(0, 1, copied=False), stats) == []
    assert first.zc_out == 1
    # One coalesced notice covers the end of one job and all of the next.
    assert ledger.release(Notice(2, 3, copied=True), stats) == [first, second]
    assert stats["zc_copied_sends"] == 2 and stats["zc_copied_bytes"] == 200
    assert stats["zc_released"] == 4 and stats["zc_inflight"] == 0
    assert ledger.release(Notice(0, 3, copied=False), stats) == []  # repeated: no effect


def test_ledger_ids_wrap_around_32_bits() -> None:
    table = jobs.JobTable()
    job = _job(table, 30)
    ledger = Ledger()
    ledger.next_id = 0xFFFF_FFFE
    for offset in (0, 10, 20):
        ledger.record(job, offset, 10)
    assert ledger.next_id == 1 and set(ledger.sends) == {0xFFFF_FFFE, 0xFFFF_FFFF, 0}
    table.stats["zc_inflight"] = 3
    assert ledger.release(Notice(0xFFFF_FFFE, 0, copied=False), table.stats) == [job]
    assert not ledger.sends


def test_parse_reads_only_zero_copy_notices() -> None:
    raw = zerocopy._EXTENDED_ERR.pack(
        0, zerocopy.SO_EE_ORIGIN_ZEROCOPY, 0, zerocopy.SO_EE_CODE_ZEROCOPY_COPIED, 0, 7, 9
    )
    assert zerocopy.parse_notice(socket.IPPROTO_IP, zerocopy.IP_RECVERR, raw) == Notice(7, 9, True)
    assert zerocopy.parse_notice(socket.IPPROTO_IPV6, zerocopy.IPV6_RECVERR, raw) == Notice(
        7, 9, True
    )
    icmp = zerocopy._EXTENDED_ERR.pack(errno.EHOSTUNREACH, 2, 3, 1, 0, 0, 0)
    assert zerocopy.parse_notice(socket.IPPROTO_IP, zerocopy.IP_RECVERR, icmp) is None
    assert zerocopy.parse_notice(socket.SOL_SOCKET, 1, raw) is None


def test_64mib_zero_copy_write_to_a_slow_reader() -> None:
    size, held_back = 64 << 20, 1 << 20
    with socket.create_server(("127.0.0.1", 0)) as listener:
        writer = socket.socket()
        writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        writer.connect(listener.getsockname())
        reader, _ = listener.accept()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    payload = os.urandom(size)
    received = bytearray()
    resume = threading.Event()

    def read() -> None:
        while len(received) < size:
            if len(received) >= size - held_back:
                resume.wait(30)  # pause with the tail still in the writer's queue
            chunk = reader.recv(min(256 << 10, size - len(received)))
            if not chunk:
                return
            received.extend(chunk)
            time.sleep(0.0002)  # a slow consumer

    with writer, reader:
        skqueue.tunables.tx_zcopy = 1
        before = skqueue.aio_stats()
        cb = aiocb(writer, payload)
        aio_write(cb)
        thread = threading.Thread(target=read)
        thread.start()
        try:
            # Every byte handed to the kernel, yet the job waits for the last notices.
            assert settle(lambda: skqueue.aio_stats()["zc_bytes"] - before["zc_bytes"] == size, 20)
            time.sleep(0.2)
            mid = skqueue.aio_stats()
            assert aio_error(cb) == errno.EINPROGRESS
            assert mid["zc_inflight"] > 0
            assert mid["buffers_held"] == before["buffers_held"] + 1
        finally:
            resume.set()
            thread.join(30)
        assert not thread.is_alive()
        assert settle(lambda: aio_error(cb) != errno.EINPROGRESS, 10)
        assert aio_return(cb) == size
        assert received == payload
        after = skqueue.aio_stats()
        sends = after["zc_sends"] - before["zc_sends"]
        assert sends > 1  # larger than the send buffer: split into several sends
        assert after["zc_released"] - before["zc_released"] == sends
        assert after["zc_notices"] > before["zc_notices"]
        assert after["zc_copied_bytes"] - before["zc_copied_bytes"] == size  # loopback copies
        assert after["zc_inflight"] == 0 and after["buffers_held"] == before["buffers_held"]
