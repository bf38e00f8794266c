"""Our generator and sockperf agree on the same server (needs Debian's sockperf)."""

from __future__ import annotations

import pytest

from skqbench.crosscheck import CrossCheck, agree, crosscheck, parse_sockperf, sockperf_binary

SAMPLE = """sockperf: ====> avg-rtt=1080.5 (std-dev=40.1)
sockperf: ---> <MAX> observation = 1500.101
sockperf: ---> percentile 99.999 = 1500.101
sockperf: ---> percentile 99.000 = 1190.250
sockperf: ---> percentile 90.000 = 1120.000
sockperf: ---> percentile 50.000 = 1075.500
sockperf: ---> <MIN> observation = 1010.000
"""


def test_sockperf_summary_is_parsed() -> None:
    found = parse_sockperf(SAMPLE)
    assert found[50.0] == 1075.5 and found[99.0] == 1190.25
    with pytest.raises(RuntimeError):
        parse_sockperf("sockperf: error")


def test_tolerance_is_relative_with_an_absolute_floor() -> None:
    assert agree(1100, 1000) and not agree(1400, 1000)
    assert agree(250, 120)  # within the 150 us slack
    assert not agree(500, 120)


@pytest.mark.skipif(
    sockperf_binary() is None, reason="sockperf not installed (apt-get install sockperf)"
)
@pytest.mark.timeout(300)
def test_generator_agrees_with_sockperf() -> None:
    """p50 must agree both ways; the tail one way only: ours may not exceed sockperf's.

    sockperf paces its sends by busy-waiting on one of this machine's two cores, which
    slows the server it measures: its p99 came out 1.4-3.2x ours in 11 of 12 runs here
    (ours 1.5-2.9 ms, sockperf's 1.9-6.3 ms), so a two-sided p99 test fails by chance.
    What the check is for -- our Python generator adding latency of its own -- would
    push our tail above sockperf's, and that is what is asserted.
    """
    runs = []
    for _ in range(3):  # a busy machine can stall either tool in one run; a defect, all three
        res = crosscheck("vanilla", rate=400, service="fixed:1ms", duration_s=3)
        print(res)
        runs.append(res)
        if _agrees(res):
            break
    assert _agrees(runs[-1]), runs


def _agrees(res: CrossCheck) -> bool:
    """Both measured the server's 1 ms service, p50 alike, and our tail not above theirs."""
    return (
        res.sockperf_p50_us >= 1000
        and res.ours_p50_us >= 1000
        and res.ours_p99_us >= 1000
        and agree(res.ours_p50_us, res.sockperf_p50_us)
        and (res.ours_p99_us <= res.sockperf_p99_us or agree(res.ours_p99_us, res.sockperf_p99_us))
    )
