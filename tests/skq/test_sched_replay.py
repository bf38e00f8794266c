"""The scheduler without I/O: the real Scheduler under a fake clock, a fake topology
and a seeded Random, with no threads and no kqueue.

A decision sequence (activations on given CPUs at given times, waits that take
events, steals) replayed twice gives the same placements, for every policy; and
small cases match placements worked out by hand.  This is the seam a simulator
drives.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import pytest

from skqueue import (
    KQ_SCHED_AUTO,
    KQ_SCHED_BEST,
    KQ_SCHED_CPU,
    KQ_SCHED_FEAT_WS,
    KQ_SCHED_QUEUE,
    tunables,
)
from skqueue.sched import RTRESERVE_MAX, Kevq, Scheduler, Topology, realtime_budget
from skqueue.sched import auto as auto_policy
from skqueue.sched.auto import AutoPolicy

if TYPE_CHECKING:
    from skqueue.knote import Knote

#: Two cores with two SMT threads each: CPUs 0, 1 are group 0; CPUs 2, 3 group 2.
TOPOLOGY = Topology({0: 0, 1: 0, 2: 2, 3: 2})
LOCK = threading.Lock()  # only for the kevqs' conditions; nothing waits on them


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


#: The guard of every stand-in knote: reentrant, so that one thread takes it for many.
GUARD = threading.RLock()


@dataclass(eq=False)
class Activation:
    """All the scheduler sees of a knote: the CPU it fired on, its group, its kevq, and
    the guard a thief takes to move it."""

    cpu: int
    group: int = -1
    kevq: Kevq | None = None
    guard: object = GUARD


def knote(cpu: int) -> Knote:
    return cast("Knote", Activation(cpu))


def cpu_of(kn: Knote) -> int:
    return cast(Activation, kn).cpu


def scheduler(
    sched: int, sargs: int = 0, feat: int = 0, fargs: int = 0, *, clock: FakeClock, seed: int = 7
) -> Scheduler:
    return Scheduler(
        sched,
        sargs,
        feat,
        fargs,
        topology=TOPOLOGY,
        clock=clock,
        cpu_of=cpu_of,
        rng=random.Random(seed),
    )


def kevq(
    group: int, *, queued: int = 0, avg_ns: float = 0.0, busy: tuple[int, int] = (0, 0)
) -> Kevq:
    """A kevq with queued events, a time-per-event estimate, and its last return
    (busy = (when, how many events))."""
    q = Kevq(LOCK, group)
    q.avg_ns = avg_ns
    q.last_return_ns, q.n_last = busy
    for _ in range(queued):
        q.push(knote(group), False)
    return q


@pytest.fixture(autouse=True)
def no_real_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every time and CPU the scheduler uses must come from what it was given."""

    def forbidden() -> int:
        raise AssertionError("the scheduler read a real clock")

    for name in ("monotonic_ns", "perf_counter_ns", "time_ns", "monotonic", "perf_counter"):
        monkeypatch.setattr(time, name, forbidden)
    monkeypatch.setattr("skqueue.backend.cpu.current_cpu", forbidden)
    yield


# Replay ------------------------------------------------------------------------------
POLICIES = {
    "random": (0, 0, 0, 0),
    "queue": (KQ_SCHED_QUEUE, 0, 0, 0),
    "cpu": (KQ_SCHED_CPU, 0, 0, 0),
    "best2": (KQ_SCHED_BEST, 2, 0, 0),
    "best3": (KQ_SCHED_BEST, 3, 0, 0),
    "queue2": (KQ_SCHED_QUEUE, 2, 0, 0),
    "cpu2": (KQ_SCHED_CPU, 2, 0, 0),
    "random+ws1": (0, 0, KQ_SCHED_FEAT_WS, 1),
    "best2+ws2": (KQ_SCHED_BEST, 2, KQ_SCHED_FEAT_WS, 2),
    "auto": (KQ_SCHED_AUTO, 0, 0, 0),
}
RTSHARE = 50


def script(seed: int, steps: int = 400) -> list[tuple[str, int, int]]:
    """A decision sequence: (what, which, how much), the clock moving between steps."""
    rng = random.Random(seed)
    out: list[tuple[str, int, int]] = []
    for _ in range(steps):
        what = rng.choice(("activate", "activate", "activate", "realtime", "wait", "tick"))
        if what in ("activate", "realtime"):
            out.append((what, rng.randrange(12), rng.randrange(4)))  # knote, cpu
        elif what == "wait":
            out.append((what, rng.randrange(5), 1 + rng.randrange(4)))  # kevq, nevents
        else:
            out.append((what, 0, rng.randrange(20_000)))  # ns
    return out


def replay(
    policy: tuple[int, int, int, int], steps: list[tuple[str, int, int]], seed: int
) -> list[object]:
    """Run steps as the kqueue would and return every decision the scheduler made."""
    clock = FakeClock()
    sched = scheduler(*policy, clock=clock, seed=seed)
    kevqs = [Kevq(LOCK, group) for group in (0, 0, 2, 2, 2)]
    for q in kevqs:
        sched.register(q)
    knotes = [cast(Activation, knote(0)) for _ in range(12)]
    orphans = Kevq(LOCK)
    trace: list[object] = []
    for what, which, much in steps:
        clock.now += 100  # every step takes a little time
        if what == "tick":
            clock.now += much
        elif what in ("activate", "realtime"):
            act = knotes[which]
            if act.kevq is not None:
                continue  # still queued: an activation of a queued knote places nothing
            act.cpu = much
            kn = cast("Knote", act)
            chosen = sched.place(kn, orphans)
            chosen.push(kn, what == "realtime")
            trace.append(("placed", which, kevqs.index(chosen), act.group))
        else:  # a wait of kevq `which` for `much` events, as KqueueCore._wait/_scan
            q = kevqs[which]
            q.account_wait(clock())
            nevents = q.batch_limit(much, 200_000)
            budget = realtime_budget(nevents, RTSHARE)
            taken: list[int] = []
            while len(taken) < nevents:
                if q.rt and budget > 0:
                    got = q.rt.popleft()
                    budget -= 1
                elif q.normal:
                    got = q.normal.popleft()
                elif sched.steal_into(q):
                    continue
                else:
                    break
                cast(Activation, got).kevq = None
                taken.append(knotes.index(cast(Activation, got)))
                clock.now += 1_000 * (1 + which)  # kevq i takes i+1 us per event
            q.account_return(clock(), len(taken))
            thief = sched.idle_thief(q)
            trace.append(("took", which, taken, None if thief is None else kevqs.index(thief)))
    trace.append([(q.placements, q.fallbacks, q.mismatches, q.steals, q.avg_ns) for q in kevqs])
    return trace


@pytest.mark.parametrize("name", POLICIES)
def test_a_replay_gives_the_same_placements_twice(name: str) -> None:
    steps = script(seed=11)
    first = replay(POLICIES[name], steps, seed=3)
    second = replay(POLICIES[name], steps, seed=3)
    assert first == second
    placed = [step for step in first[:-1] if isinstance(step, tuple) and step[0] == "placed"]
    assert len(placed) > 50
    assert len({step[2] for step in placed}) > 1  # a real choice was made


@pytest.mark.parametrize("name", ["random", "best2", "queue2", "random+ws1", "auto"])
def test_the_random_choices_come_from_the_given_random(name: str) -> None:
    steps = script(seed=11)
    assert replay(POLICIES[name], steps, seed=3) != replay(POLICIES[name], steps, seed=4)


def test_auto_places_as_the_policy_it_follows_on_the_same_randomness() -> None:
    # Fewer placements than one window: auto follows its first choice, best2+ws,
    # throughout; its evidence draws do not take from the placements' stream.
    steps = script(seed=11, steps=300)
    assert sum(what in ("activate", "realtime") for what, _, _ in steps) < auto_policy.WINDOW
    best2_ws = (KQ_SCHED_BEST, 2, KQ_SCHED_FEAT_WS, 1)
    assert auto_policy.START == "best2+ws"
    assert replay(POLICIES["auto"], steps, seed=3) == replay(best2_ws, steps, seed=3)


def test_the_affinity_policies_need_no_randomness_with_a_kevq_in_every_group() -> None:
    steps = script(seed=11)
    for name in ("queue", "cpu"):
        assert replay(POLICIES[name], steps, seed=3) == replay(POLICIES[name], steps, seed=4)


# Hand-computed cases --------------------------------------------------------------------
def test_random_draws_its_choices_from_the_given_random() -> None:
    clock = FakeClock()
    sched = scheduler(0, clock=clock, seed=5)
    kevqs = [kevq(0), kevq(0), kevq(2)]
    for q in kevqs:
        sched.register(q)
    expected = random.Random(5)
    for cpu in (0, 1, 2, 3, 0, 1, 2, 3):
        assert sched.place(knote(cpu), Kevq(LOCK)) is expected.choice(kevqs)


def test_best_of_two_picks_the_smaller_expected_start() -> None:
    clock = FakeClock()
    sched = scheduler(KQ_SCHED_BEST, 2, clock=clock)
    # a: idle queue, but still busy until 5000 with the 5 events of 1 us it took at 0.
    a = kevq(0, avg_ns=1_000, busy=(0, 5))
    # b: ten queued events of 100 ns, idle otherwise.
    b = kevq(2, queued=10, avg_ns=100)
    sched.register(a)
    sched.register(b)
    clock.now = 1_000
    assert a.expected_start_ns(clock.now) == 5_000
    assert b.expected_start_ns(clock.now) == 2_000
    chosen = sched.place(knote(0), Kevq(LOCK))
    assert chosen is b
    b.push(knote(0), False)  # as the kqueue queues it
    clock.now = 10_000  # a is done; b has 11 events of 100 ns queued
    assert (a.expected_start_ns(clock.now), b.expected_start_ns(clock.now)) == (10_000, 11_100)
    assert sched.place(knote(0), Kevq(LOCK)) is a
    assert (a.placements, b.placements, sched.placements, sched.place_ns) == (1, 1, 2, 0)


def test_queue_affinity_binds_a_knote_to_its_first_cpu_group() -> None:
    clock = FakeClock()
    sched = scheduler(KQ_SCHED_QUEUE, clock=clock)
    low, high = kevq(0), kevq(2)
    sched.register(low)
    sched.register(high)
    act = Activation(cpu=3)
    kn = cast("Knote", act)
    assert sched.place(kn, Kevq(LOCK)) is high
    assert act.group == 2
    act.cpu = 0  # fires on another core later: it stays where it was bound
    assert sched.place(kn, Kevq(LOCK)) is high


def test_cpu_affinity_follows_the_activation_cpu_and_falls_back_at_random() -> None:
    clock = FakeClock()
    sched = scheduler(KQ_SCHED_CPU, clock=clock, seed=9)
    low, busy_low, high = kevq(0), kevq(0, queued=3, avg_ns=1_000), kevq(2)
    for q in (low, busy_low, high):
        sched.register(q)
    assert sched.place(knote(1), Kevq(LOCK)) is low  # group 0; the least loaded of it
    assert sched.place(knote(2), Kevq(LOCK)) is high
    sched.retire(high)  # nobody in group 2 now: a random kevq, counted as a fallback
    expected = random.Random(9).choice([low, busy_low])
    assert sched.place(knote(3), Kevq(LOCK)) is expected
    assert expected.fallbacks == 1


def test_a_hybrid_leaves_the_local_group_only_for_more_than_the_cache_penalty() -> None:
    penalty = tunables.cache_penalty_ns
    clock = FakeClock()
    clock.now = 50_000
    sched = scheduler(KQ_SCHED_CPU, 2, clock=clock)
    local = kevq(0, queued=1, avg_ns=penalty / 2)  # starts penalty/2 from now
    remote = kevq(2)  # starts now
    sched.register(local)
    sched.register(remote)
    assert sched.place(knote(0), Kevq(LOCK)) is local  # penalty/2 < penalty: stay
    for _ in range(3):
        local.push(knote(0), False)  # now 4 * penalty/2 = 2 penalties ahead
    assert sched.place(knote(0), Kevq(LOCK)) is remote
    assert (local.mismatches, remote.mismatches) == (0, 1)


def test_work_stealing_robs_the_most_loaded_of_the_probes_realtime_first() -> None:
    clock = FakeClock()
    sched = scheduler(0, 0, KQ_SCHED_FEAT_WS, 2, clock=clock)
    thief, big, small = kevq(0), kevq(0, queued=2), kevq(2, queued=1)
    urgent = knote(0)
    big.push(urgent, True)
    for q in (thief, big, small):
        sched.register(q)
    thief.sleeping = True
    assert sched.idle_thief(big) is thief
    # Two busy victims and steal_scan_factor >= 2: both probed, the bigger robbed.
    assert tunables.steal_scan_factor >= 2
    assert sched.steal_into(thief)
    assert list(thief.rt) == [urgent] and len(thief.normal) == 1
    assert (len(big), len(small), thief.steals, thief.steal_scans) == (1, 1, 2, 1)
    assert cast(Activation, urgent).kevq is thief


def test_realtime_share_and_freq_are_arithmetic_on_what_they_are_given() -> None:
    assert [realtime_budget(n, 50) for n in (1, 2, 3, 4, 8)] == [1, 1, 2, 2, 4]
    assert realtime_budget(8, 100) == 8
    assert realtime_budget(5, 1) == 1
    q = kevq(0)
    assert q.batch_limit(8, 40) == 8  # no estimate yet
    q.account_return(0, 4)
    q.account_wait(40_000_000)  # 4 events in 40 ms: 10 ms each
    assert q.avg_ns == 10_000_000
    assert q.batch_limit(8, 40) == 2  # at 40 events/s a thread finishes 2.5 of them
    q.account_return(40_000_000, 2)
    q.account_wait(42_000_000)  # 1 ms each now: the 95/5 moving average
    assert q.avg_ns == pytest.approx(0.95 * 10_000_000 + 0.05 * 1_000_000)


# Reserved workers (KQTUNE_RTRESERVE) ----------------------------------------------------------
def reserve_script(seed: int, steps: int = 500) -> list[tuple[str, int, int]]:
    """script() plus retunes, threads that join and threads that retire."""
    rng = random.Random(seed)
    out = script(seed, steps)
    for _ in range(steps // 10):
        at = rng.randrange(len(out))
        what = rng.choice(("retune", "retune", "join", "retire"))
        out.insert(at, (what, rng.randrange(5), rng.choice((0, 1, 2, 3, 6))))
    return out


def replay_reserved(
    policy: tuple[int, int, int, int], steps: list[tuple[str, int, int]], seed: int
) -> list[object]:
    """replay() with a reservation that changes, checking its rules at every step.

    What the scheduler evicts is placed again here, as KqueueCore._place_again does.
    """
    clock = FakeClock()
    sched = scheduler(*policy, clock=clock, seed=seed)
    kevqs: list[Kevq] = []
    knotes = [cast(Activation, knote(0)) for _ in range(12)]
    realtime = [i % 3 == 0 for i in range(12)]  # knotes 0, 3, 6, 9 are EV_REALTIME
    orphans = Kevq(LOCK)
    trace: list[object] = []

    def place(i: int) -> None:
        kn = cast("Knote", knotes[i])
        chosen = sched.place(kn, orphans, realtime[i])
        assert chosen is orphans or realtime[i] or not chosen.reserved, "normal on a reserved kevq"
        if sched.reserved and realtime[i]:
            assert chosen.reserved, "a realtime activation missed the reserved kevqs"
        chosen.push(kn, realtime[i])
        trace.append(("placed", i, kevqs.index(chosen) if chosen in kevqs else -1))

    def place_again(evicted: list[Knote]) -> None:
        for kn in evicted:
            assert not realtime[knotes.index(cast(Activation, kn))], "evicted a realtime event"
            cast(Activation, kn).kevq = None
            place(knotes.index(cast(Activation, kn)))

    for group in (0, 0, 2):
        kevqs.append(Kevq(LOCK, group))
        place_again(sched.register(kevqs[-1]))
    for what, which, much in steps:
        clock.now += 100
        if what == "tick":
            clock.now += much
        elif what == "retune":
            place_again(sched.set_reserve(much))
        elif what == "join":
            kevqs.append(Kevq(LOCK, 2 * (which % 2)))
            place_again(sched.register(kevqs[-1]))
        elif what == "retire":
            if len(sched.kevqs) < 2:
                continue
            gone = sched.kevqs[which % len(sched.kevqs)]
            place_again(sched.retire(gone))
            queued = [*gone.rt, *gone.normal]  # as KqueueCore._replace_queued
            gone.rt.clear()
            gone.normal.clear()
            for kn in queued:
                cast(Activation, kn).kevq = None
                place(knotes.index(cast(Activation, kn)))
        elif what in ("activate", "realtime"):
            act = knotes[which]
            if act.kevq is None:
                act.cpu = much
                place(which)
        else:
            q = sched.kevqs[which % len(sched.kevqs)]
            q.account_wait(clock())
            taken: list[int] = []
            while len(taken) < much:
                if q.rt:
                    got = q.rt.popleft()
                elif q.normal:
                    got = q.normal.popleft()
                elif sched.steal_into(q):
                    continue
                else:
                    break
                cast(Activation, got).kevq = None
                taken.append(knotes.index(cast(Activation, got)))
                assert realtime[taken[-1]] or not q.reserved, "a reserved kevq took a normal event"
                clock.now += 1_000
            q.account_return(clock(), len(taken))
            thief = sched.idle_thief(q)
            trace.append(
                ("took", kevqs.index(q), taken, None if thief is None else kevqs.index(thief))
            )
        # The reservation: the oldest min(n, kevqs - 1) kevqs, and nothing normal on them.
        count = max(0, min(sched.reserve, len(sched.kevqs) - 1))
        assert [q.reserved for q in sched.kevqs] == [i < count for i in range(len(sched.kevqs))]
        assert not any(q.normal for q in sched.reserved)
    stats = sched.stats()
    trace.append(
        [stats[key] for key in ("reserved_placements", "reserve_refused", "reserve_evicted")]
    )
    return trace


@pytest.mark.parametrize("name", POLICIES)
def test_a_reserved_replay_keeps_its_rules_and_gives_the_same_placements_twice(name: str) -> None:
    steps = reserve_script(seed=13)
    first = replay_reserved(POLICIES[name], steps, seed=3)
    assert first == replay_reserved(POLICIES[name], steps, seed=3)
    rt_placed, refused, evicted = cast("list[int]", first[-1])
    assert rt_placed > 10 and refused > 10 and evicted > 0  # the script exercised all three


def test_realtime_goes_to_the_best_of_the_reserved_kevqs_and_normal_to_the_others() -> None:
    clock = FakeClock()
    clock.now = 1_000
    sched = scheduler(KQ_SCHED_BEST, 2, clock=clock)
    # Registration order decides: a and b are reserved, c and d are not.
    a = kevq(0, queued=3, avg_ns=1_000)  # starts at 4_000
    b = kevq(0, queued=1, avg_ns=1_000)  # starts at 2_000
    c, d = kevq(2), kevq(2)  # idle: best for anything, but not reserved
    for q in (a, b, c, d):
        assert sched.register(q) == []  # nothing to evict: no reservation yet
    queued = [*a.normal, *b.normal]
    assert sched.set_reserve(2) == queued  # they held normal events: placed again elsewhere
    assert not a.normal and not b.normal
    assert [q.reserved for q in (a, b, c, d)] == [True, True, False, False]
    for q, count in ((a, 3), (b, 1)):
        for _ in range(count):
            q.push(knote(0), True)  # their queues hold realtime events now
    assert sched.place(knote(0), Kevq(LOCK), True) is b  # best of the two reserved
    assert sched.place(knote(0), Kevq(LOCK), False) in (c, d)
    stats = sched.stats()
    assert (stats["reserved_kevqs"], stats["reserved_placements"], stats["reserve_refused"]) == (
        2,
        1,
        1,
    )
    assert stats["reserve_evicted"] == 4
    assert [k["reserved"] for k in stats["kevqs"]] == [True, True, False, False]


def test_a_reservation_keeps_one_kevq_for_normal_events() -> None:
    clock = FakeClock()
    sched = scheduler(0, clock=clock)
    assert sched.set_reserve(3) == []  # nobody registered: nothing to reserve yet
    first = kevq(0, queued=2)
    assert sched.register(first) == []
    assert not first.reserved  # the only kevq takes both kinds
    assert sched.place(knote(0), Kevq(LOCK), True) is first
    assert sched.place(knote(0), Kevq(LOCK), False) is first
    queued = list(first.normal)
    second = kevq(2)
    assert sched.register(second) == queued  # first is reserved now: its normal events move
    assert (first.reserved, second.reserved) == (True, False)
    for _ in range(10):
        assert sched.place(knote(0), Kevq(LOCK), False) is second
        assert sched.place(knote(0), Kevq(LOCK), True) is first
    third = kevq(2)
    sched.register(third)
    assert [q.reserved for q in (first, second, third)] == [True, True, False]
    for _ in range(10):
        assert sched.place(knote(0), Kevq(LOCK), False) is third


def test_a_retired_reserved_kevq_is_replaced_by_the_oldest_unreserved() -> None:
    clock = FakeClock()
    sched = scheduler(0, clock=clock)
    a, b, c = kevq(0), kevq(0, queued=2), kevq(2, queued=1)
    for q in (a, b, c):
        sched.register(q)
    sched.set_reserve(1)
    assert [q.reserved for q in (a, b, c)] == [True, False, False]
    queued = list(b.normal)
    assert sched.retire(a) == queued  # b is the oldest unreserved: reserved now
    assert (b.reserved, c.reserved, len(b.normal), len(c.normal)) == (True, False, 0, 1)
    assert sched.set_reserve(0) == []  # unreserving evicts nothing
    assert not b.reserved and sched.reserved == []
    with pytest.raises(ValueError):
        sched.set_reserve(-1)
    with pytest.raises(ValueError):
        sched.set_reserve(RTRESERVE_MAX + 1)
    assert sched.set_reserve(RTRESERVE_MAX) == []  # two kevqs: one is reserved
    assert sched.reserved == [b]


def test_a_reserved_thief_steals_realtime_events_only() -> None:
    clock = FakeClock()
    sched = scheduler(0, 0, KQ_SCHED_FEAT_WS, 4, clock=clock)
    thief, busy = kevq(0), kevq(2, queued=3)
    urgent = knote(2)
    sched.register(thief)
    sched.register(busy)
    sched.set_reserve(1)
    thief.sleeping = True
    assert thief.reserved and sched.idle_thief(busy) is None  # only normal events there
    assert not sched.steal_into(thief)
    busy.push(urgent, True)
    assert sched.idle_thief(busy) is thief
    assert sched.steal_into(thief)
    assert (list(thief.rt), len(thief.normal), len(busy.normal)) == ([urgent], 0, 3)
    # An unreserved thief takes both kinds, realtime first, from reserved kevqs too:
    # a realtime event never waits behind a busy reserved thread while another idles.
    late = knote(2)
    busy.push(late, True)
    other = kevq(2)
    sched.register(other)  # joins unreserved: thief stays the reserved one
    assert sched.steal_into(other)  # probes both, robs busy (4 queued against 1)
    assert (list(other.rt), len(other.normal), len(busy)) == ([late], 3, 0)
    assert sched.steal_into(other)  # only thief has anything left
    assert list(other.rt) == [late, urgent] and not thief.rt


# auto: the switching decisions, replayed ------------------------------------------------
def auto_replay(
    service: Callable[[random.Random], int], gap_ns: float, placements: int, seed: int
) -> tuple[Scheduler, list[str], list[int]]:
    """Open-loop arrivals on four kevqs that each serve FIFO, one event per wait.

    Returns the scheduler, auto's choice after every placement, and the order in
    which the placed activations (numbered) were served, after draining.
    """
    clock = FakeClock()
    sched = scheduler(KQ_SCHED_AUTO, clock=clock, seed=seed)
    kevqs = [Kevq(LOCK, group) for group in (0, 0, 2, 2)]
    for q in kevqs:
        sched.register(q)
    free = [0] * len(kevqs)  # when each kevq's thread is next free
    rng = random.Random(seed)
    served: list[int] = []
    numbers: dict[int, int] = {}

    def run_until(t: float) -> None:
        for i, q in enumerate(kevqs):
            while free[i] <= t:
                q.account_wait(free[i])  # closes the previous batch, if any
                if not q.normal:
                    q.account_return(free[i], 0)
                    break
                kn = q.normal.popleft()
                cast(Activation, kn).kevq = None
                served.append(numbers[id(kn)])
                q.account_return(free[i], 1)
                free[i] += service(rng)

    choices: list[str] = []
    for n in range(placements):
        clock.now += round(rng.expovariate(1 / gap_ns))
        run_until(clock.now)
        kn = knote(rng.randrange(4))
        numbers[id(kn)] = n
        chosen = sched.place(kn, Kevq(LOCK))
        chosen.push(kn, False)
        i = kevqs.index(chosen)
        free[i] = max(free[i], clock.now)
        choices.append(sched.stats()["auto"]["choice"])
    run_until(float("inf"))
    return sched, choices, served


def uniform(_: random.Random) -> int:
    return 20_000


def dispersed(rng: random.Random) -> int:
    return 2_000_000 if rng.random() < 0.01 else 20_000


def test_auto_settles_on_affinity_for_a_uniform_light_workload() -> None:
    # 20 us per event, 4 kevqs at 10 % load: the local kevq is almost always free.
    sched, choices, served = auto_replay(uniform, 50_000, 3000, seed=5)
    auto = sched.stats()["auto"]
    assert choices[0] == "best2+ws" and choices[-1] == "cpu+ws", auto
    assert auto["switches"] == 1 and auto["reason"]["holds"] >= 0.97, auto
    assert auto["reason"]["load"] == pytest.approx(0.1, abs=0.05), auto
    # The switch happened after HOLD windows of agreeing evidence, not before.
    assert choices.index("cpu+ws") >= 3 * 256 - 1
    assert sorted(served) == list(range(3000))  # across the switch: each exactly once


def test_auto_keeps_best_of_two_and_stealing_for_a_dispersed_loaded_workload() -> None:
    # 1 % of events take 100x the rest, 4 kevqs at about 80 % load.
    sched, choices, served = auto_replay(dispersed, 12_500, 3000, seed=5)
    auto = sched.stats()["auto"]
    assert set(choices) == {"best2+ws"}, auto
    assert auto["reason"]["cv"] >= 1.0 and auto["reason"]["holds"] < 0.85, auto
    assert sched.steal
    assert sorted(served) == list(range(3000))


def test_auto_replays_the_same_decisions_twice() -> None:
    first = auto_replay(uniform, 50_000, 1500, seed=9)
    second = auto_replay(uniform, 50_000, 1500, seed=9)
    assert first[1:] == second[1:]
    assert first[0].stats()["auto"] == second[0].stats()["auto"]


def evidence_window(auto: AutoPolicy, holds: bool) -> bool:
    for _ in range(auto_policy.WINDOW):
        auto.observe(holds, 0)
    return auto.close_window(0, [])


def test_auto_needs_hold_agreeing_windows_to_switch() -> None:
    auto = AutoPolicy()
    assert [evidence_window(auto, True) for _ in range(auto_policy.HOLD)] == [
        *([False] * (auto_policy.HOLD - 1)),
        True,
    ]
    assert auto.choice == "cpu+ws" and auto.switches == 1


def test_auto_does_not_flap_on_evidence_that_alternates_within_the_window() -> None:
    auto = AutoPolicy()
    for i in range(20 * auto_policy.HOLD):
        assert not evidence_window(auto, i % 2 == 0)
    assert auto.choice == auto_policy.START and auto.switches == 0
    assert auto.windows == 20 * auto_policy.HOLD


def test_auto_switching_moves_nothing_that_is_queued() -> None:
    """A switch changes the rule for future placements only: queues stay as they are."""
    clock = FakeClock()
    sched = scheduler(KQ_SCHED_AUTO, clock=clock)
    kevqs = [kevq(group, queued=3) for group in (0, 2)]
    for q in kevqs:
        sched.register(q)
    before = [list(q.normal) for q in kevqs]
    for _ in range(auto_policy.HOLD * auto_policy.WINDOW):
        clock.now += 1_000
        kn = knote(0)
        sched.place(kn, Kevq(LOCK))  # placed, never queued: only the decision counts
    assert sched.stats()["auto"]["switches"] == 1
    assert [list(q.normal) for q in kevqs] == before


def test_a_kevq_that_has_timed_nothing_yet_does_not_draw_every_placement() -> None:
    """A new thread's kevq (no time per event yet) is costed like the slowest candidate:
    with events queued it loses to an idle measured one, where the bare estimate (0 per
    event: always "now") would win every sample it is in."""
    clock = FakeClock()
    clock.now = 1_000
    sched = scheduler(KQ_SCHED_BEST, 2, clock=clock)
    new = kevq(0, queued=5)  # timed nothing: 5 events at the other's 1_000 each
    measured = kevq(0, avg_ns=1_000)  # idle: starts now
    for q in (new, measured):
        sched.register(q)
    assert new.expected_start_ns(clock.now) == measured.expected_start_ns(clock.now)
    assert sched.place(knote(0), Kevq(LOCK)) is measured
    # Both new: neither has a time, so queue lengths alone cannot tell them apart.
    idle, other = kevq(0), kevq(0, queued=2)
    assert Scheduler._best([other, idle], clock.now) == (other, clock.now)
