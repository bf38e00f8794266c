"""SKQUEUE_CHECK_LOCKS: the lock-ownership debug mode fires, and costs nothing when off."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def run(code: str, check_locks: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SKQUEUE_CHECK_LOCKS"}
    if check_locks:
        env["SKQUEUE_CHECK_LOCKS"] = "1"
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unguarded_access_raises_naming_field_and_thread() -> None:
    result = run(
        """
        import threading
        import skqueue
        from skqueue import EV_ADD, EVFILT_USER, kevent

        kq = skqueue.kqueue(sched="random")
        kq.control([kevent(1, EVFILT_USER, EV_ADD)], 0)
        core = kq._core
        with core.lock:
            kn = core.knotes[(1, EVFILT_USER)]
            kn.status |= 0  # held: fine
        failures = []

        def unguarded():
            for touch in (
                lambda: setattr(kn, "status", 0),
                lambda: kn.owner,
                lambda: setattr(core, "leader", None),
                lambda: core.shared.normal,
            ):
                try:
                    touch()
                except AssertionError as exc:
                    failures.append(str(exc))

        t = threading.Thread(target=unguarded, name="intruder")
        t.start()
        t.join()
        print("\\n".join(failures))
        kq.close()
        """,
        check_locks=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4, result.stdout
    fields = ("Knote.status written", "Knote.owner read", "KqueueCore.leader written")
    for line, field in zip(lines, (*fields, "Kevq.normal read"), strict=True):
        assert line.startswith(field), line
        assert "thread 'intruder'" in line and "without the kqueue lock" in line


def test_off_leaves_the_classes_untouched() -> None:
    result = run(
        """
        import threading, types
        import skqueue
        from skqueue import _lockcheck
        from skqueue.core import KqueueCore
        from skqueue.knote import Knote
        from skqueue.sched.kevq import Kevq, WaitQueue

        assert not _lockcheck.CHECK_LOCKS
        assert _lockcheck.new_lock is threading.Lock
        for cls in (Knote, Kevq, WaitQueue):
            for field in _lockcheck.GUARDED[cls.__name__][0]:
                assert type(cls.__dict__[field]) is types.MemberDescriptorType, field
        assert not set(_lockcheck.GUARDED["KqueueCore"][0]) & set(vars(KqueueCore))
        kq = skqueue.kqueue()
        assert type(kq._core.lock) is type(threading.Lock())
        kq.close()
        print("untouched")
        """,
        check_locks=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "untouched"
