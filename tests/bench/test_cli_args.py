"""Every option of the ``skqueue`` command, walked from the parser: bad values end in one
line naming the option and exit 2; every option has help, and help names real options."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from skqbench import cli

LONG_PATH = "/tmp/" + "x" * 120  # over sun_path's 108 bytes, under PATH_MAX
HUGE_PATH = "x" * 5000  # over PATH_MAX
SECONDS = ["0", "-1", "1e9", "inf", "nan", "x"]
POSITIVE = ["0", "-1", "inf", "nan", "1e99", "x"]
DISTS = ["fixed:fast", "exp:0us", "fixed:5s", "bimodal:1us:2us:1.5", "classes", ""]

# Bad values for every option (by option string) and positional (by name).  A new option
# fails test_every_option_has_bad_values until it gets an entry here.
BAD_VALUES: dict[str, list[str]] = {
    "--quick": ["x"],  # a flag: given as --quick=x
    "--workers": ["0", "-1", "5000", "1" + "0" * 400, "1.5", "x"],
    "--base-us": ["0", "-1", "0.5", "1e6", "inf", "nan", "x"],
    "--connections": ["0", "-1", "100000", "1.5", "x"],
    "--arrival": ["uniform", ""],
    "--processes": ["0", "1000", "x"],
    "--duration": SECONDS,
    "--warmup": ["-1", "1e9", "inf", "nan", "x"],
    "--seed": ["-1", "1.5", "99999999999999999999999", "x"],
    "--work": ["spin", ""],
    "--slo-factor": ["0", "-1", "1e9", "inf", "nan", "x"],
    "--slo-us": POSITIVE,
    "--out": ["", HUGE_PATH],
    "--design": ["nginx", ""],
    "--policy": ["best0", "best300", "best2+ws300", "queue256", "fifo", ""],
    "--dist": DISTS,
    "--rates": ["", ",", "100,-5", "100,inf", "100,nan", "1e99", "x"],
    "--steps": ["0", "5000", "1.5", "x"],
    "--max-load": ["0", "-1", "1000", "inf", "nan", "x"],
    "--min-load": ["0", "-1", "1000", "inf", "nan", "x"],
    "--requests": ["0", "-1", "1e99", "1.5", "x"],
    "--port": ["99999", "70000", "65536", "-1", "1.5", "http"],
    "--rate": POSITIVE,
    "--service": [*DISTS, "classes:1ms", "bimodal:1ms:2ms:0.5"],
    "--knee": POSITIVE,
    "folder": ["", HUGE_PATH, "/nonexistent/folder"],
    "experiment": ["nothing", "", "KV"],
    "--sockperf-service": DISTS,
    "--control": ["", LONG_PATH],
    "--wait": ["-1", "1e9", "inf", "nan", "x"],
    "--max-service": ["0ms", "-1s", "soon", "", "99999s"],
    "--send-timeout": ["0ms", "-1s", "soon", "", "99999s"],
    "--max-inflight": ["-1", "1.5", "x", "100000"],
    "--rt-rate": POSITIVE,
    "--rt-connections": ["0", "-1", "100000", "1.5", "x"],
    "--keys": ["0", "-1", "1e3", "1000000000", "x"],
    "--max-scan": ["0", "-1", "10001", "1.5", "x"],
    "--max-value": ["0", "1023", "1048577", "1.5", "x"],
    "--cores": ["0", "-1", "5000", "1.5", "x"],
    "--realtime": ["-1", "100000", "1.5", "x"],
    "--rtshare": ["0", "101", "-1", "1.5", "x"],
    "--rtreserve": ["-1", "1025", "1.5", "x"],
    "--freq": ["-1", "1e99", "1.5", "x"],
    "--cost": ["harvest", "harvest=-1", "harvest=inf", "lock=nan", "foo=1", "=1", ""],
    "--calibrate": ["x"],  # a flag: given as --calibrate=x
    "--probe": ["x"],  # a flag: given as --probe=x
    "--from-results": ["", HUGE_PATH, "/nonexistent/folder"],
}
# What a command needs besides the option under test.
REQUIRED: dict[str, list[str]] = {
    "bench load": ["--port", "1", "--rate", "1"],
    "bench report": ["."],
}


def _leaves(
    parser: argparse.ArgumentParser, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command that runs something, as ("bench sweep", its parser)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaves(child, f"{path} {name}".strip())


def _options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            yield action


def _key(action: argparse.Action) -> str:
    return max(action.option_strings, key=len) if action.option_strings else action.dest


def _cases() -> Iterator[tuple[str, str, str]]:
    for command, parser in _leaves(cli.build_parser()):
        for action in _options(parser):
            for value in BAD_VALUES.get(_key(action), []):
                yield command, _key(action), value


COMMANDS = [command for command, _ in _leaves(cli.build_parser())]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_bad_values(command: str) -> None:
    parser = dict(_leaves(cli.build_parser()))[command]
    missing = [_key(a) for a in _options(parser) if not BAD_VALUES.get(_key(a))]
    assert not missing, f"add bad values for {command} {missing} to BAD_VALUES"


def _argv(command: str, option: str, value: str) -> list[str]:
    parser = dict(_leaves(cli.build_parser()))[command]
    action = next(a for a in _options(parser) if _key(a) == option)
    base = command.split()
    required = REQUIRED.get(command, [])
    if not action.option_strings:  # the positional itself
        return [*base, value]
    if action.nargs == 0:
        return [*base, *required, f"{option}={value}"]
    return [*base, *required, option, value]


@pytest.fixture
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value the parser let through must fail the test, not start a benchmark."""

    def accepted(*args: object) -> int:
        raise AssertionError(f"bad value accepted: {args}")

    for name in (
        "run_plan",
        "cmd_load",
        "cmd_kv",
        "cmd_crosscheck",
        "cmd_serve",
        "cmd_stats",
        "cmd_sim_run",
        "cmd_sim_grid",
    ):
        monkeypatch.setattr(cli, name, accepted)


@pytest.mark.parametrize(("command", "option", "value"), list(_cases()))
@pytest.mark.usefixtures("nothing_runs")
def test_bad_value_is_one_line_naming_the_option_and_exit_2(
    command: str, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(_argv(command, option, value))
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(f"skqueue {command}: error: "), err
    assert option in err and "Traceback" not in err, err


def test_a_port_to_connect_to_cannot_be_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "load", "--rate", "1", "--port", "0"])
    assert exc.value.code == 2
    assert "--port" in capsys.readouterr().err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_naming_only_real_options(command: str) -> None:
    parser = dict(_leaves(cli.build_parser()))[command]
    options = {s for a in parser._actions for s in a.option_strings}
    for action in _options(parser):
        assert action.help and action.help.strip(), f"{command} {_key(action)} has no help"
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", action.help)) - options
        assert not named, f"help of {command} {_key(action)} names {named}, not options here"
