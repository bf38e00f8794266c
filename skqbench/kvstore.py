"""The key-value workload: its data set, its request mix, and the store that serves it.

The store is LMDB (the ``lmdb`` binding, in the bench extra), chosen by measuring the
GIL stall and cost of store calls on this machine (``benchmarks/bench_kv_stores.py``,
README "The key-value experiment"): py-lmdb drops the GIL around every LMDB call, cursor
steps included, and is the cheapest per GET (6 us) and per NEXT (0.5 us) of the stores
that install here; rocksdict's iterator keeps the GIL and costs 4x per NEXT, aimrocks
2.5x, sqlite3 5x.

Keys are 48 bytes.  Value sizes and scan lengths follow the generalized Pareto
distributions of RocksDB's ``db_bench`` MixGraph model of Facebook's ZippyDB traces
(Cao et al., FAST 2020): value size ``k=0.2615, sigma=25.45`` clamped to [10, 1024]
bytes, scan length ``k=2.517, sigma=14.236`` clamped to [1, ``max_scan``] (infinite mean
before the clamp: about one SEEK in twenty runs to the cap of 10,000).  The mix is
theirs too: GET 83 %, PUT 14 %, SEEK 3 %.

A value's bytes are a function of its key and its length (:func:`value_for`), whether
the loader or a PUT wrote it, so a client checks every reply without knowing which
PUTs came first.
"""

from __future__ import annotations

import array
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from skqbench.protocol import (
    KV_GET,
    KV_KEY_SIZE,
    KV_NOT_FOUND,
    KV_OK,
    KV_PUT,
    KV_RECORD,
    KV_SEEK,
    KvRequest,
    encode_kv_reply,
)

KEY_SIZE = KV_KEY_SIZE
VALUE_MIN, VALUE_MAX = 10, 1024
VALUE_K, VALUE_SIGMA = 0.2615, 25.45
SCAN_K, SCAN_SIGMA = 2.517, 14.236
MAX_SCAN = 10_000
MIX = (("get", 0.83), ("put", 0.14), ("seek", 0.03))
KEYS_FULL = 1_000_000  # about 4 s to load here
KEYS_QUICK = 20_000  # well under a second
_LOAD_BATCH = 10_000
_READY = "loaded"  # marker file: a cached store is complete only with it


def gpd(rng: random.Random, k: float, sigma: float) -> float:
    """A generalized Pareto draw (location 0) by inversion."""
    tail: float = (1.0 - rng.random()) ** -k
    return sigma * (tail - 1.0) / k


def key_for(index: int) -> bytes:
    """The 48-byte key of record ``index``; keys sort as their indexes."""
    return b"k%047d" % index


def value_for(key: bytes, size: int) -> bytes:
    """The value every writer stores under ``key`` with ``size`` bytes: the key repeated
    (cheap to check, so the generator's checking takes little of the machine)."""
    return (key * (size // KEY_SIZE + 1))[:size]


def value_size(rng: random.Random) -> int:
    return max(VALUE_MIN, min(VALUE_MAX, round(gpd(rng, VALUE_K, VALUE_SIGMA))))


def scan_length(rng: random.Random, cap: int = MAX_SCAN) -> int:
    return max(1, min(cap, round(gpd(rng, SCAN_K, SCAN_SIGMA))))


def mean_scan_length(cap: int = MAX_SCAN) -> float:
    """E[min(X, cap)] for X generalized Pareto (shape SCAN_K, scale SCAN_SIGMA), the
    integral of its survival function (1 + k x / sigma) ** (-1 / k) from 0 to cap;
    :func:`scan_length`'s rounding and floor of 1 move it by well under a record."""
    k, sigma = SCAN_K, SCAN_SIGMA
    return float(sigma / (k - 1) * ((1 + k * cap / sigma) ** (1 - 1 / k) - 1))


@dataclass(frozen=True)
class KvOp:
    """One request of the mix: ``arg`` is the value size of a PUT, the run of a SEEK."""

    op: str  # get | put | seek
    index: int
    arg: int = 0


@dataclass(frozen=True)
class Dataset:
    """What the loader writes: ``keys`` records, sizes drawn from ``seed``."""

    keys: int = KEYS_FULL
    seed: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.keys <= 10**9:
            raise ValueError("keys must be 1 to 10**9")

    def draw(self, rng: random.Random, max_scan: int = MAX_SCAN) -> KvOp:
        """One request of the background mix (GET 83 %, PUT 14 %, SEEK 3 %)."""
        u = rng.random()
        index = rng.randrange(self.keys)
        if u < MIX[0][1]:
            return KvOp("get", index)
        if u < MIX[0][1] + MIX[1][1]:
            return KvOp("put", index, value_size(rng))
        return KvOp("seek", index, scan_length(rng, max_scan))

    @property
    def cache_name(self) -> str:
        """Folder name of the loaded store; the format version is part of it."""
        return f"skqbench-kv-v2-{self.keys}-{self.seed}"


def _map_size(keys: int) -> int:
    """Room for every key at the largest value, with B-tree and PUT overhead."""
    return max(64 << 20, keys * (KEY_SIZE + VALUE_MAX) * 2)


def load(dataset: Dataset, cache_dir: str | None = None) -> str:
    """The path of a loaded store for ``dataset``, loading it only if no complete copy is
    cached (under the temp dir, keyed by the data set's parameters).  A load goes to a
    fresh folder renamed into place, so a crash never leaves a half-loaded cache."""
    import lmdb

    root = cache_dir or tempfile.gettempdir()
    path = os.path.join(root, dataset.cache_name)
    if os.path.exists(os.path.join(path, _READY)):
        return path
    work = tempfile.mkdtemp(prefix=dataset.cache_name + ".", dir=root)
    try:
        env = lmdb.open(work, map_size=_map_size(dataset.keys), sync=False, writemap=True)
        rng = random.Random(f"load/{dataset.seed}")
        for start in range(0, dataset.keys, _LOAD_BATCH):
            with env.begin(write=True) as txn:
                for i in range(start, min(dataset.keys, start + _LOAD_BATCH)):
                    key = key_for(i)
                    txn.put(key, value_for(key, value_size(rng)), append=True)
        env.sync(True)
        env.close()
        with open(os.path.join(work, _READY), "w") as f:
            f.write(f"{dataset}\n")
        try:
            os.rename(work, path)
        except OSError:  # another process loaded it first
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return path


class Store:
    """An opened store: GET, PUT and SEEK + a run of NEXTs, safe from many threads.

    Each call opens its own LMDB transaction (read transactions are a few hundred ns);
    PUTs are serialised by LMDB's single writer, without the GIL.
    """

    def __init__(self, path: str, keys: int) -> None:
        import lmdb

        self._env: Any = lmdb.open(
            path, map_size=_map_size(keys), sync=False, writemap=True, max_readers=1024
        )

    def get(self, key: bytes) -> bytes | None:
        with self._env.begin() as txn:
            value: bytes | None = txn.get(key)
            return value

    def put(self, key: bytes, value: bytes) -> None:
        with self._env.begin(write=True) as txn:
            txn.put(key, value)

    def seek(self, key: bytes, count: int) -> list[tuple[bytes, bytes]]:
        """Up to ``count`` records from the first key >= ``key``, in key order."""
        out: list[tuple[bytes, bytes]] = []
        with self._env.begin() as txn:
            cur = txn.cursor()
            if not cur.set_range(key):
                return out
            for item in cur:
                out.append(item)
                if len(out) == count:
                    break
        return out

    def close(self) -> None:
        self._env.close()


class KvService:
    """The server side: a decoded request in, its encoded reply out."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def serve(self, req: KvRequest) -> bytes:
        if req.op == KV_GET:
            value = self.store.get(req.key)
            if value is None:
                return encode_kv_reply(req, KV_NOT_FOUND)
            return encode_kv_reply(req, KV_OK, value)
        if req.op == KV_PUT:
            self.store.put(req.key, req.value)
        elif req.op == KV_SEEK:
            records = self.store.seek(req.key, req.arg)
            return encode_kv_reply(req, KV_OK, SeekRecords.encode(records))
        return encode_kv_reply(req, KV_OK)


class SeekRecords:
    """A SEEK reply's body: ``<I`` count, the values' ``<I`` lengths, the keys, then the
    values.  Lengths first let a client find any record without walking the others."""

    def __init__(self, body: bytes) -> None:
        if len(body) < 4:
            raise ValueError("SEEK reply without a count")
        (count,) = KV_RECORD.unpack_from(body)
        keys_at = 4 + 4 * count
        self.lengths = memoryview(body)[4:keys_at].cast("I")
        self._keys_at = keys_at
        self._values_at = keys_at + KEY_SIZE * count
        if len(self.lengths) != count or len(body) != self._values_at + sum(self.lengths):
            raise ValueError("SEEK reply of the wrong size")
        self._body = body

    @staticmethod
    def encode(records: list[tuple[bytes, bytes]]) -> bytes:
        lengths = array.array("I", [len(v) for _, v in records])
        keys = b"".join(k for k, _ in records)
        return (
            KV_RECORD.pack(len(records))
            + lengths.tobytes()
            + keys
            + b"".join(v for _, v in records)
        )

    def __len__(self) -> int:
        return len(self.lengths)

    def key(self, i: int) -> bytes:
        at = self._keys_at + KEY_SIZE * i
        return self._body[at : at + KEY_SIZE]

    def value(self, i: int) -> bytes:
        at = self._values_at + sum(self.lengths[:i])
        return self._body[at : at + self.lengths[i]]

    def items(self) -> list[tuple[bytes, bytes]]:
        """Every record (tests; the generator reads only what it checks)."""
        return [(self.key(i), self.value(i)) for i in range(len(self))]
