"""Which embedded store the key-value server uses: the GIL stall of its calls.

For each store that imports (rocksdict and aimrocks, RocksDB bindings; lmdb; sqlite3),
load the key-value data set of ``skqbench.kvstore`` (48-byte keys, db_bench MixGraph
value sizes), then run store calls in a loop while a probe thread asks to wake every
100 us (``skqbench.service.probe_lateness``): GET (one key a call), GETx256 (one call
for 256 keys: a long call, so a binding that keeps the GIL through it shows), and SEEK
with a run of 1000 NEXTs iterated from Python, as the server does.  CPython hands the
GIL to a waiting thread only every switch interval (5 ms) when the holder releases and
retakes it in a tight loop, which would hide what a call itself does; the interval is
set to 100 us here (``--switch-us``).  The probe's lateness on a busy 2-core machine is
mostly the OS scheduler's, so a second measure is taken as well: the share of its
Python progress that a spinning thread keeps while the calls run (1.0: the calls cost
it nothing; a GIL-holding C call such as ``sorted`` of a big list leaves it ~0).  Other
jobs on the machine add lateness of their own, so each row is measured ``--repeat``
times and the quietest run (lowest p99, highest share) kept.

The third measure is the call's own side, the GIL convoy: how much longer a call takes
beside one spinning Python thread than alone, at CPython's default 5 ms switch interval
and at ``--switch-us``. A call that drops the GIL around each of its steps has to take
it back every time, and each time it waits for the spinner to let go.  Alone and beside
are interleaved ``--repeat`` times; the medians are printed with their ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from _common import write_results

from skqbench import kvstore
from skqbench.service import probe_lateness

# GET one key, GET many keys in one call, SEEK a key and run RUN NEXTs
Calls = tuple[Callable[[bytes], object], Callable[[list[bytes]], object], Callable[[bytes], object]]
RUN = 1000
MULTI = 256


def _records(keys: int) -> list[tuple[bytes, bytes]]:
    rng = random.Random(1)
    out = []
    for i in range(keys):
        key = kvstore.key_for(i)
        out.append((key, kvstore.value_for(key, kvstore.value_size(rng))))
    return out


def _rocksdict(path: str, records: list[tuple[bytes, bytes]]) -> Calls:
    import rocksdict

    db: Any = rocksdict.Rdict(path)
    batch = rocksdict.WriteBatch()
    for k, v in records:
        batch.put(k, v)
    db.write(batch)

    def seek(key: bytes) -> None:
        it = db.iter()
        it.seek(key)
        for _ in range(RUN):
            if not it.valid():
                break
            it.key(), it.value()
            it.next()

    return db.get, db.get, seek


def _aimrocks(path: str, records: list[tuple[bytes, bytes]]) -> Calls:
    import aimrocks

    db: Any = aimrocks.DB(path, aimrocks.Options(create_if_missing=True))
    batch = aimrocks.WriteBatch()
    for k, v in records:
        batch.put(k, v)
    db.write(batch)

    def seek(key: bytes) -> None:
        it = db.iteritems()
        it.seek(key)
        for _ in itertools.islice(it, RUN):
            pass

    return db.get, db.multi_get, seek


def _lmdb(path: str, records: list[tuple[bytes, bytes]]) -> Calls:
    """The calls of skqbench.kvstore.Store, plus the binding's multi-key GET."""
    import lmdb

    env: Any = lmdb.open(path, map_size=1 << 34, sync=False, writemap=True)
    with env.begin(write=True) as txn:
        for k, v in records:
            txn.put(k, v, append=True)

    def get(key: bytes) -> object:
        with env.begin() as txn:
            return txn.get(key)

    def multi(keys: list[bytes]) -> object:
        with env.begin() as txn:
            return txn.cursor().getmulti(keys)

    def seek(key: bytes) -> None:
        with env.begin() as txn:
            cur = txn.cursor()
            cur.set_range(key)
            for _ in itertools.islice(cur, RUN):
                pass

    return get, multi, seek


def _sqlite(path: str, records: list[tuple[bytes, bytes]]) -> Calls:
    con = sqlite3.connect(os.path.join(path, "kv.db"), check_same_thread=False)
    con.execute("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
    con.executemany("INSERT INTO kv VALUES (?, ?)", records)
    con.commit()
    many = "SELECT v FROM kv WHERE k IN (%s)" % ",".join("?" * MULTI)  # noqa: UP031

    def seek(key: bytes) -> None:
        con.execute("SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?", (key, RUN)).fetchall()

    return (
        lambda key: con.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone(),
        lambda keys: con.execute(many, keys).fetchall(),
        seek,
    )


def spin_share(run: Callable[[], object], seconds: float, idle_rate: float = 0.0) -> float:
    """Loop iterations a second of a spinning thread while ``run`` loops, over
    ``idle_rate`` (its rate beside a sleeping thread); the raw rate if that is 0."""
    stop = threading.Event()
    spins = [0]

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1
        spins[0] = n

    thread = threading.Thread(target=spin)
    start = time.perf_counter()
    thread.start()
    while time.perf_counter() < start + seconds:
        run()
    stop.set()
    thread.join()
    rate = spins[0] / (time.perf_counter() - start)
    return rate / idle_rate if idle_rate else rate


def convoy(run: Callable[[], object], seconds: float, repeat: int) -> dict[str, float]:
    """us a call alone and beside a spinning thread (medians of interleaved runs), at
    the default and the current switch interval, and the ratios."""
    current = sys.getswitchinterval()
    out: dict[str, float] = {}
    for name, interval in (("default", DEFAULT_SWITCH_S), ("set", current)):
        sys.setswitchinterval(interval)
        alone, beside = [], []
        for _ in range(repeat):
            alone.append(_per_call_us(run, seconds))
            beside.append(_per_call_us(run, seconds, spinning=True))
        out[f"alone_us_{name}"] = round(statistics.median(alone), 1)
        out[f"beside_us_{name}"] = round(statistics.median(beside), 1)
        out[f"convoy_x_{name}"] = round(statistics.median(beside) / statistics.median(alone), 1)
    sys.setswitchinterval(current)
    return out


def _per_call_us(run: Callable[[], object], seconds: float, spinning: bool = False) -> float:
    """us per call of ``run`` looped for ``seconds`` (at least once), with or without a
    thread spinning in Python beside it."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    thread = threading.Thread(target=spin)
    if spinning:
        thread.start()
    calls = 0
    start = time.perf_counter()
    while not calls or time.perf_counter() < start + seconds:
        run()
        calls += 1
    elapsed = time.perf_counter() - start
    stop.set()
    if spinning:
        thread.join()
    return elapsed / calls * 1e6


DEFAULT_SWITCH_S = 0.005  # CPython's
STORES = {"rocksdict": _rocksdict, "aimrocks": _aimrocks, "lmdb": _lmdb, "sqlite": _sqlite}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=kvstore.KEYS_FULL)
    parser.add_argument("--seconds", type=float, default=1.5, help="per measurement")
    parser.add_argument("--switch-us", type=float, default=100.0)
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the quietest is kept")
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_us / 1e6)
    records = _records(args.keys)
    # Keys drawn beforehand, so the loops measure store calls, not key building.
    rng = random.Random(2)
    keys = itertools.cycle([kvstore.key_for(rng.randrange(args.keys)) for _ in range(4096)])
    batches = itertools.cycle(
        [[kvstore.key_for(rng.randrange(args.keys)) for _ in range(MULTI)] for _ in range(64)]
    )

    def key() -> bytes:
        return next(keys)

    def row(name: str, run: Callable[[], object]) -> dict[str, float]:
        calls = 0

        def counted() -> None:
            nonlocal calls
            run()
            calls += 1

        runs = []
        for _ in range(args.repeat):
            calls = 0
            start = time.perf_counter()
            late = probe_lateness(counted, args.seconds)
            runs.append((late, (time.perf_counter() - start) / max(calls, 1) * 1e6))
        late, per_call = min(runs, key=lambda r: r[0].p99_ns)
        share = max(spin_share(run, args.seconds, idle_rate) for _ in range(args.repeat))
        out = {
            "gil_share_kept": round(share, 2),
            "stall_p50_us": late.p50_ns / 1000,
            "stall_p99_us": late.p99_ns / 1000,
            "stall_max_us": late.max_ns / 1000,
            "us_per_call": round(per_call, 1),
            **convoy(run, args.seconds / 4, args.repeat),
        }
        print(
            f"  {name:<10} stall p50 {out['stall_p50_us']:7.0f} us  p99 "
            f"{out['stall_p99_us']:7.0f} us  max {out['stall_max_us']:7.0f} us  "
            f"share kept {out['gil_share_kept']:4.2f}  ({out['us_per_call']:8.1f} us a call)\n"
            f"  {'':<10} beside a spinning thread: {out['convoy_x_default']:g}x as long at "
            f"the default 5 ms switch interval ({out['alone_us_default']:g} -> "
            f"{out['beside_us_default']:g} us), {out['convoy_x_set']:g}x at "
            f"{args.switch_us:g} us ({out['alone_us_set']:g} -> {out['beside_us_set']:g} us)",
            flush=True,
        )
        return out

    def measure(calls: Calls) -> dict[str, dict[str, float]]:
        get, multi, seek = calls
        return {
            "GET": row("GET", lambda: get(key())),
            f"GETx{MULTI}": row(f"GETx{MULTI}", lambda: multi(next(batches))),
            f"SEEK+{RUN}": row(f"SEEK+{RUN}", lambda: seek(key())),
        }

    idle_rate = max(spin_share(lambda: time.sleep(0.001), args.seconds) for _ in range(2))
    results: dict[str, Any] = {"idle": row("idle", lambda: time.sleep(0.001))}
    for name in args.stores.split(","):
        if name != "sqlite" and importlib.util.find_spec(name) is None:
            print(f"{name}: not installed, skipped")
            continue
        with tempfile.TemporaryDirectory(prefix=f"kvstores-{name}-") as path:
            start = time.perf_counter()
            calls = STORES[name](path, records)
            print(f"{name}: loaded {args.keys:,} keys in {time.perf_counter() - start:.1f} s")
            results[name] = measure(calls)
    payload = {"keys": args.keys, "switch_us": args.switch_us, "results": results}
    print(f"wrote {write_results('kv_stores', payload)}")


if __name__ == "__main__":
    main()
