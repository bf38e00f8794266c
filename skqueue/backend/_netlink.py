"""The netlink message header, shared by the sock_diag and proc connector sockets."""

from __future__ import annotations

import struct

NLMSG_ERROR = 2
NLMSG_DONE = 3
# struct nlmsghdr: length, type, flags, sequence number, port id.
NLMSGHDR = struct.Struct("=IHHII")
