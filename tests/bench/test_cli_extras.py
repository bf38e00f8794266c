"""The ``skqueue`` command without the bench extra: it starts, and says what to install."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from skqbench import cli
from support import checkout_env

EXTRA = ("rich", "hdrh", "matplotlib", "uvloop")
# A None entry in sys.modules makes ``import rich`` fail as if rich were not installed.
WITHOUT_EXTRA = (
    "import sys\n"
    f"sys.modules.update(dict.fromkeys({EXTRA!r}))\n"
    "from skqbench.cli import main\n"
    "sys.exit(main())\n"
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA, *args],
        capture_output=True,
        text=True,
        env=checkout_env(),
        timeout=60,
    )


@pytest.mark.parametrize(
    "argv", [["--help"], ["bench", "--help"], ["bench", "sweep", "--help"], ["serve", "--help"]]
)
def test_help_works_without_the_bench_extra(argv: list[str]) -> None:
    out = _run(*argv)
    assert out.returncode == 0, out.stderr
    assert "usage: skqueue" in out.stdout
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "sweep", "--rates", "100"],
        ["bench", "reproduce", "--quick"],
        ["bench", "report", "."],
        ["bench", "load", "--port", "1", "--rate", "10"],
        ["bench", "crosscheck"],
        ["serve", "--design", "uvloop"],
    ],
)
def test_a_command_that_needs_the_extra_says_which_in_one_line(argv: list[str]) -> None:
    out = _run(*argv)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert "pip install 'skqueue[bench]'" in out.stderr
    assert out.stderr.startswith(f"skqueue {' '.join(a for a in argv[:2] if a.isalpha())}")


@pytest.mark.parametrize(
    ("argv", "needs"),
    [
        (["bench", "sweep", "--design", "skq"], ("hdrh", "matplotlib", "rich")),
        (["bench", "sweep", "--design", "skq", "--design", "uvloop"], ("uvloop",)),
        (["bench", "reproduce"], ("uvloop",)),
        (["serve"], ()),
        (["stats"], ()),
    ],
)
def test_uvloop_is_needed_only_where_a_uvloop_server_starts(
    argv: list[str], needs: tuple[str, ...]
) -> None:
    args = cli.build_parser().parse_args(argv)
    assert ("uvloop" in cli._needs(args)) == ("uvloop" in needs)
    assert set(needs) <= set(cli._needs(args))


def test_stats_works_without_the_bench_extra(tmp_path: object) -> None:
    out = _run("stats", "--control", os.path.join(str(tmp_path), "none.sock"), "--wait", "0")
    assert out.returncode == 1
    assert "no server answers" in out.stderr and "Traceback" not in out.stderr
