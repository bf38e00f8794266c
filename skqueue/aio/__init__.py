"""FreeBSD-style asynchronous I/O with completions through the kqueue (aio(4)).

Files are served by a pool of worker threads doing positional I/O; sockets by
one engine thread driven by readiness from an internal kqueue, with zero-copy
writes (SO_ZEROCOPY + MSG_ZEROCOPY) on TCP.  See ``api`` for the calls.
"""

from __future__ import annotations

from .api import *  # noqa: F403 - the public calls
from .api import __all__ as __all__
