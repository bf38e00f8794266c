"""AIO throughput and CPU time per GiB against plain blocking I/O in threads.

Three comparisons in one run, each as ratios (AIO / blocking):
- aio_write over TCP loopback, copying path (tx_zcopy=0), vs ``sendall`` in a thread;
- aio_write over TCP loopback, zero-copy path (MSG_ZEROCOPY), vs the same baseline;
- aio_read of a cached file (worker pool), vs ``preadv`` in as many threads.
CPU time is the whole process's (all threads: the AIO engine or workers, the
reader on the other end of the socket), per GiB moved.  On loopback the kernel
copies zero-copy sends anyway, so that path shows its bookkeeping cost, not
the copy it saves on a real NIC.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable

from _common import write_results

import skqueue
from skqueue import aio_read, aio_waitcomplete, aio_write, aiocb

GIB = 1 << 30


def _measure(nbytes: int, run: Callable[[], None]) -> dict[str, float]:
    """Wall and process CPU time of run(), as GiB/s and CPU seconds per GiB."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"gib_per_s": nbytes / GIB / wall, "cpu_s_per_gib": cpu / (nbytes / GIB), "wall_s": wall}


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    return a, b


def _drain(sock: socket.socket, nbytes: int) -> threading.Thread:
    """A reader thread that consumes nbytes as fast as it can."""

    def run() -> None:
        buf = bytearray(1 << 20)
        left = nbytes
        while left > 0:
            n = sock.recv_into(buf)
            if not n:
                return
            left -= n

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _pipeline(cbs: list[aiocb], submit: Callable[[aiocb], None], jobs: int) -> None:
    """Keep every block in flight, resubmitting each as it completes, jobs times in all."""
    for cb in cbs:
        submit(cb)
    done = 0
    while done < jobs:
        cb, status = aio_waitcomplete(30)
        assert status >= 0, os.strerror(cb.error)
        done += 1
        if done + len(cbs) <= jobs:
            submit(cb)


def socket_write(total: int, chunk: int, depth: int, zerocopy: bool | None) -> dict[str, float]:
    """zerocopy None: blocking sendall in a thread; else aio_write on that path."""
    a, b = _tcp_pair()
    payload = os.urandom(chunk)
    jobs = total // chunk
    with a, b:
        reader = _drain(b, jobs * chunk)
        if zerocopy is None:

            def run() -> None:
                def send() -> None:
                    for _ in range(jobs):
                        a.sendall(payload)

                writer = threading.Thread(target=send)
                writer.start()
                writer.join()
                reader.join()
        else:
            skqueue.tunables.tx_zcopy = int(zerocopy)
            skqueue.tunables.tx_zcopy_min = 0

            def run() -> None:
                _pipeline([aiocb(a, payload) for _ in range(depth)], aio_write, jobs)
                reader.join()

        before = skqueue.aio_stats()
        result = _measure(jobs * chunk, run)
        after = skqueue.aio_stats()
    for key in ("zc_sends", "zc_copied_bytes", "zc_notices", "copy_bytes"):
        result[key] = after[key] - before[key]
    return result


def file_read(total: int, chunk: int, depth: int, threads: int, aio: bool) -> dict[str, float]:
    """aio_read with the worker pool, or preadv in as many plain threads."""
    with tempfile.TemporaryFile(dir=os.environ.get("BENCH_DIR")) as f:
        size = min(total, 256 << 20)
        block = os.urandom(chunk)
        for offset in range(0, size, chunk):
            os.pwrite(f.fileno(), block, offset)
        os.preadv(f.fileno(), [bytearray(size)], 0)  # into the page cache
        jobs = total // chunk
        fd = f.fileno()
        if aio:
            skqueue.tunables.aio_workers = threads
            offsets = iter(range(jobs))

            def submit(cb: aiocb) -> None:
                cb.offset = next(offsets) * chunk % size
                aio_read(cb)

            def run() -> None:
                _pipeline([aiocb(fd, bytearray(chunk)) for _ in range(depth)], submit, jobs)
        else:

            def run() -> None:
                def work(first: int) -> None:
                    buf = bytearray(chunk)
                    for i in range(first, jobs, threads):
                        os.preadv(fd, [buf], i * chunk % size)

                pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
                for t in pool:
                    t.start()
                for t in pool:
                    t.join()

        return _measure(jobs * chunk, run)


def _ratio(aio: dict[str, float], base: dict[str, float]) -> dict[str, float]:
    return {
        "throughput": aio["gib_per_s"] / base["gib_per_s"],
        "cpu_per_gib": aio["cpu_s_per_gib"] / base["cpu_s_per_gib"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, smaller volumes")
    args = parser.parse_args()
    net = disk = (1 if args.quick else 8) * GIB
    chunk, depth, threads = 1 << 20, 8, 4
    saved = skqueue.tunables.as_dict()
    try:
        rows = {
            "tcp_blocking_sendall": socket_write(net, chunk, depth, None),
            "tcp_aio_write_copy": socket_write(net, chunk, depth, False),
            "tcp_aio_write_zerocopy": socket_write(net, chunk, depth, True),
            "file_blocking_preadv": file_read(disk, chunk, depth, threads, False),
            "file_aio_read": file_read(disk, chunk, depth, threads, True),
        }
    finally:
        for name, value in saved.items():
            skqueue.tunables.set(name, value)
    ratios = {
        "aio_write_copy_vs_blocking": _ratio(
            rows["tcp_aio_write_copy"], rows["tcp_blocking_sendall"]
        ),
        "aio_write_zerocopy_vs_blocking": _ratio(
            rows["tcp_aio_write_zerocopy"], rows["tcp_blocking_sendall"]
        ),
        "aio_read_vs_blocking_threads": _ratio(rows["file_aio_read"], rows["file_blocking_preadv"]),
    }
    print(f"{'case':28} {'GiB/s':>8} {'CPU s/GiB':>10} {'wall s':>7}")
    for name, row in rows.items():
        print(
            f"{name:28} {row['gib_per_s']:8.2f} {row['cpu_s_per_gib']:10.3f} {row['wall_s']:7.2f}"
        )
    print(f"\n{'ratio (aio / blocking)':34} {'throughput':>10} {'CPU/GiB':>8}")
    for name, ratio in ratios.items():
        print(f"{name:34} {ratio['throughput']:10.2f} {ratio['cpu_per_gib']:8.2f}")
    zc = rows["tcp_aio_write_zerocopy"]
    print(
        f"\nzero-copy path: {zc['zc_sends']:.0f} sends, {zc['zc_notices']:.0f} error-queue "
        f"notices, {zc['zc_copied_bytes'] / GIB:.2f} GiB reported copied by the kernel "
        "(loopback always copies)"
    )
    path = write_results(
        "bench_aio",
        {
            "chunk_bytes": chunk,
            "depth": depth,
            "threads": threads,
            "cpus": os.cpu_count(),
            "quick": args.quick,
            "rows": rows,
            "ratios": ratios,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
