"""SKQUEUE_CHECK_LOCKS and SKQUEUE_LOCK_TIMING: the lock debug modes work, and cost
nothing when off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

_MODES = ("SKQUEUE_CHECK_LOCKS", "SKQUEUE_LOCK_TIMING")


def run(code: str, check_locks: bool, timing: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _MODES}
    if check_locks:
        env["SKQUEUE_CHECK_LOCKS"] = "1"
    if timing:
        env["SKQUEUE_LOCK_TIMING"] = "1"
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
                lambda: core.shared.closing,
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
    for line, field in zip(lines, (*fields, "Kevq.closing read"), strict=True):
        assert line.startswith(field), line
        assert "thread 'intruder'" in line and "without the lock that guards it" in line


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
        assert type(_lockcheck.new_lock()) is type(threading.RLock())
        for cls in (Knote, Kevq, WaitQueue):
            for field in _lockcheck.GUARDED[cls.__name__][0]:
                assert type(cls.__dict__[field]) is types.MemberDescriptorType, field
        assert not set(_lockcheck.GUARDED["KqueueCore"][0]) & set(vars(KqueueCore))
        kq = skqueue.kqueue()
        assert type(kq._core.lock) is type(threading.RLock())
        assert "lock" not in kq.stats()
        kq.close()
        print("untouched")
        """,
        check_locks=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "untouched"


def test_timing_counts_waits_and_holds_of_every_acquisition() -> None:
    result = run(
        """
        import json, threading, time
        import skqueue
        from skqueue import EV_ADD, EVFILT_USER, NOTE_TRIGGER, kevent

        kq = skqueue.kqueue(sched="random")
        kq.control([kevent(1, EVFILT_USER, EV_ADD)], 0)
        before = kq.stats()["lock"]
        core = kq._core
        held = threading.Event()

        def holder():
            with core.lock:
                held.set()
                time.sleep(0.2)

        t = threading.Thread(target=holder)
        t.start()
        held.wait(10)
        kq.control([kevent(1, EVFILT_USER, 0, NOTE_TRIGGER)], 1, 0)  # waits for holder
        t.join(10)
        after = kq.stats()["lock"]
        print(json.dumps([before, after]))
        kq.close()
        """,
        check_locks=False,
        timing=True,
    )
    assert result.returncode == 0, result.stderr
    before, after = json.loads(result.stdout)
    assert after["acquisitions"] >= before["acquisitions"] + 2  # the holder and control()
    assert after["hold_ns"] - before["hold_ns"] >= 0.2e9  # the holder's sleep
    assert after["wait_ns"] - before["wait_ns"] >= 0.1e9  # control() waited most of it
