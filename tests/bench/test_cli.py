"""The ``skqueue`` command: argument errors, serve + stats, Ctrl-C keeps results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from skqbench.cli import main
from skqbench.protocol import Request

from .conftest import cli_process, connect, roundtrip, run_cli


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required"),
        (["bench"], "required"),
        (["bench", "sweep", "--design", "nginx"], "invalid choice"),
        (["bench", "sweep", "--policy", "best0"], "bad SKQ policy"),
        (["bench", "sweep", "--dist", "fixed:fast"], "bad service distribution"),
        (["bench", "sweep", "--rates", "100,-5"], "is not a rate"),
        (["bench", "sweep", "--rates", "100", "--steps", "3"], "not allowed with"),
        (["bench", "sweep", "--min-load", "0.5", "--max-load", "0.5"], "must be below"),
        (["sim", "run", "--requests", "100", "--duration", "1"], "not allowed with"),
        (["sim", "run", "--requests", "100", "--warmup", "0.1"], "not allowed with"),
        (["bench", "reproduce", "--workers", "0"], "is not a worker count"),
        (["bench", "reproduce", "--slo-us", "5", "--slo-factor", "3"], "not allowed with"),
        (["serve", "--port", "http"], "is not a port"),
        (["bench", "report", "/nonexistent/folder"], "No such file"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_stats_without_server_says_so(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    none = os.path.join(str(tmp_path), "none.sock")
    assert main(["stats", "--control", none, "--wait", "0"]) == 1
    assert "no server answers" in capsys.readouterr().err


@pytest.mark.timeout(30)
def test_serve_then_stats_then_ctrl_c(tmp_path: object) -> None:
    control = os.path.join(str(tmp_path), "c.sock")
    with cli_process("serve", "--design", "asyncio", "--control", control) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(line.split("127.0.0.1:")[1].split(";")[0])
        sock = connect(port)
        assert roundtrip(sock, Request(1000, 42, 0)).request_id == 42
        sock.close()
        out = run_cli("stats", "--control", control, timeout=20)
        assert out.returncode == 0, out.stderr
        stats = json.loads(out.stdout)
        assert stats["served_total"] == 1 and stats["config"]["design"] == "asyncio"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert not os.path.exists(control)


SWEEP_CONFIGS = 6
SWEEP_RATES = (100, 200)


def _points(out: str) -> int:
    """Points in the sweep's results.json so far (it is replaced atomically)."""
    try:
        with open(os.path.join(out, "results.json")) as f:
            return len(json.load(f)["points"])
    except FileNotFoundError:
        return 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_ctrl_c_during_sweep_keeps_results(tmp_path: object, signum: int) -> None:
    """Six configurations, so that however loaded the machine (and whichever points
    saturate, which ends a configuration early) at least five server starts and points
    remain after the first point is saved: the signal always lands mid-sweep."""
    out = os.path.join(str(tmp_path), "rep")
    workers = [arg for n in range(1, SWEEP_CONFIGS + 1) for arg in ("--workers", str(n))]
    with cli_process(
        "bench",
        "sweep",
        "--design",
        "asyncio",
        *workers,
        "--dist",
        "fixed:1ms",
        "--rates",
        ",".join(map(str, SWEEP_RATES)),
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--connections",
        "4",
        "--out",
        out,
        stderr=subprocess.STDOUT,
    ) as proc:
        deadline = time.monotonic() + 60
        while _points(out) < 1:
            assert proc.poll() is None, "the sweep ended before measuring a point"
            assert time.monotonic() < deadline, "no point measured in 60 s"
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before the signal"
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 130, output
        with open(os.path.join(out, "results.json")) as f:
            data = json.load(f)
        assert data["interrupted"] is True
        assert 1 <= len(data["points"]) < SWEEP_CONFIGS * len(SWEEP_RATES)
        assert os.path.exists(os.path.join(out, "p99.png"))
        assert "interrupted" in output
