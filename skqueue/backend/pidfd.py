"""pidfd: the exit status of our own children, read without reaping them."""

from __future__ import annotations

import os

__all__ = ["exit_status"]


def exit_status(pidfd: int) -> int | None:
    """wait(2)-style status of an exited child, without reaping it (for NOTE_EXIT).

    Returns None while the child runs, or if it is not our child (ECHILD), so the
    caller can fall back to another source (the proc connector).
    """
    try:
        info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOWAIT | os.WNOHANG)
    except ChildProcessError:
        return None
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return (info.si_status & 0xFF) << 8
    if info.si_code == os.CLD_DUMPED:
        return info.si_status | 0x80
    return int(info.si_status)
