"""AIO: a zero-copy socket write whose completion arrives as an event on a kqueue.

Run it: ``python examples/aio_zerocopy_send.py``.  It queues one 8 MiB aio_write on
a TCP loopback connection with ``sigevent_kevent``: skqueue sends it with
MSG_ZEROCOPY straight from the buffer (pinned until the job ends), in several sends
as it is larger than the send buffer, and posts an EVFILT_AIO event once the kernel
has released the last of them.  The caller never blocks on the socket; a reader
thread plays the peer.  Loopback copies every zero-copy send anyway, and the
statistics printed at the end say so.
"""

from __future__ import annotations

import os
import socket
import threading

import skqueue
from skqueue import EV_ONESHOT, EVFILT_AIO, aio_return, aio_write, aiocb, sigevent_kevent

SIZE = 8 << 20


def main() -> None:
    skqueue.tunables.tx_zcopy = 1  # the default; 0 would make it an ordinary copying send
    payload = os.urandom(SIZE)
    received = bytearray()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        writer = socket.create_connection(listener.getsockname())
        reader, _ = listener.accept()

    def read() -> None:
        while len(received) < SIZE and (chunk := reader.recv(1 << 20)):
            received.extend(chunk)

    peer = threading.Thread(target=read)
    before = skqueue.aio_stats()
    with skqueue.kqueue() as kq, writer, reader:
        cb = aiocb(
            writer, payload, sigevent=sigevent_kevent(kq, EV_ONESHOT, udata="the 8 MiB send")
        )
        aio_write(cb)  # returns at once: the job runs on skqueue's socket engine
        print(f"queued aio_write of {SIZE} bytes on fd {writer.fileno()}")
        peer.start()
        events = kq.control(None, 1, 30)  # the completion, as any other kqueue event
        peer.join(30)
    if not events or peer.is_alive():
        raise SystemExit("no completion within 30 s")
    (ev,) = events
    assert ev.filter == EVFILT_AIO and ev.ident == cb.ident
    print(f"completion event: filter=EVFILT_AIO udata={ev.udata!r} errno={ev.data}")
    sent = aio_return(ev.ident)  # the job's byte count; reaps it
    print(f"aio_return: {sent} bytes sent; the reader got {len(received)} bytes, ", end="")
    print("identical" if received == payload else "DIFFERENT")
    after = skqueue.aio_stats()
    diff = {
        name: after[name] - before[name] for name in ("zc_sends", "zc_bytes", "zc_copied_bytes")
    }
    print(
        f"zero-copy sends: {diff['zc_sends']} carrying {diff['zc_bytes']} bytes; "
        f"the kernel copied {diff['zc_copied_bytes']} of them (loopback always copies)"
    )
    if sent != SIZE or received != payload:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
