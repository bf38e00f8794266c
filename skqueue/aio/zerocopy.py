"""Zero-copy socket writes: Linux SO_ZEROCOPY + MSG_ZEROCOPY bookkeeping.

Every successful ``send(MSG_ZEROCOPY)`` takes the socket's next 32-bit send id;
the kernel later reports, on the socket's error queue, ranges ``[lo, hi]`` of
ids whose pages it no longer needs.  Notices coalesce (one range may cover
several jobs' sends) and say whether the kernel copied the data anyway
(``SO_EE_CODE_ZEROCOPY_COPIED``; loopback always does).  The ledger maps each id
to the job and the part of its buffer it sent; a job is released when its last
id is covered.  The ids are counted here, so the AIO engine must be the only
user of MSG_ZEROCOPY on a socket it drives.
"""

from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass

from .jobs import Job

SO_ZEROCOPY = 60
MSG_ZEROCOPY = 0x4000000
SO_EE_ORIGIN_ZEROCOPY = 5
SO_EE_CODE_ZEROCOPY_COPIED = 1
IP_RECVERR = 11
IPV6_RECVERR = 25
_RECVERR = {(socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)}
# struct sock_extended_err: ee_errno, ee_origin, ee_type, ee_code, ee_pad, ee_info, ee_data.
_EXTENDED_ERR = struct.Struct("=IBBBBII")
#: Room for one sock_extended_err and the offender's address.
ANCBUF = socket.CMSG_SPACE(_EXTENDED_ERR.size + 32)
_MASK = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Notice:
    """The kernel let go of send ids lo..hi (inclusive, modulo 2**32)."""

    lo: int
    hi: int
    copied: bool


def parse_notice(level: int, kind: int, data: bytes) -> Notice | None:
    """A zero-copy notice from one control message of ``recvmsg(MSG_ERRQUEUE)``."""
    if (level, kind) not in _RECVERR or len(data) < _EXTENDED_ERR.size:
        return None
    ee_errno, origin, _, code, _, info, last = _EXTENDED_ERR.unpack_from(data)
    if origin != SO_EE_ORIGIN_ZEROCOPY or ee_errno != 0:
        return None
    return Notice(info, last, bool(code & SO_EE_CODE_ZEROCOPY_COPIED))


def enable_zerocopy(sock: socket.socket) -> bool:
    """Turn SO_ZEROCOPY on; False where the kernel refuses (AF_UNIX, old kernels)."""
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOPROTOOPT, errno.EINVAL):
            return False
        raise
    return True


class Ledger:
    """One socket's zero-copy sends in flight: send id -> (job, offset, length)."""

    __slots__ = ("next_id", "sends")

    def __init__(self) -> None:
        self.next_id = 0
        self.sends: dict[int, tuple[Job, int, int]] = {}

    def record(self, job: Job, offset: int, length: int) -> None:
        """A send of job's bytes [offset, offset+length) took the next id."""
        self.sends[self.next_id] = (job, offset, length)
        self.next_id = (self.next_id + 1) & _MASK
        job.zc_out += 1

    def release(self, notice: Notice, stats: dict[str, int]) -> list[Job]:
        """Apply a notice; the jobs whose last send it covered."""
        count = ((notice.hi - notice.lo) & _MASK) + 1
        lo = notice.lo
        if count <= len(self.sends):
            ids = [(lo + i) & _MASK for i in range(count)]
        else:  # a wide range: walk what is in flight instead
            ids = [i for i in self.sends if (i - lo) & _MASK < count]
        freed: list[Job] = []
        for send_id in ids:
            entry = self.sends.pop(send_id, None)
            if entry is None:
                continue
            job, _, length = entry
            job.zc_out -= 1
            stats["zc_released"] += 1
            stats["zc_inflight"] -= 1
            if notice.copied:
                stats["zc_copied_sends"] += 1
                stats["zc_copied_bytes"] += length
            if job.zc_out == 0:
                freed.append(job)
        return freed

    def forget(self, job: Job, stats: dict[str, int]) -> None:
        """job failed: stop waiting for its sends (the kernel keeps its own page refs)."""
        for send_id in [i for i, entry in self.sends.items() if entry[0] is job]:
            del self.sends[send_id]
            stats["zc_inflight"] -= 1
        job.zc_out = 0
