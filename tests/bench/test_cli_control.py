"""The control socket: a per-user default path, one owner, one live server per path,
an idle client blocks nobody, and ``skqueue stats`` waits for a server still starting."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import stat
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from skqbench import control
from skqbench.cli import main
from skqbench.control import ControlServer, default_control_path, query

from .conftest import cli_process, run_cli

STATS = {"served_total": 7}


def _stats() -> dict[str, Any]:
    return dict(STATS)


@pytest.fixture
def sockdir() -> Iterator[str]:
    """A short private directory: pytest's tmp_path can exceed sun_path's 108 bytes."""
    path = tempfile.mkdtemp(prefix="skqc-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def served(sockdir: str) -> Iterator[ControlServer]:
    server = ControlServer(os.path.join(sockdir, "c.sock"), _stats)
    yield server
    server.close()


def _stale_socket(path: str) -> None:
    """A socket file nobody answers on, as a killed server leaves behind."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)


# ------------------------------------------------------------ one server per path


def test_a_second_server_refuses_a_path_a_live_server_answers_on(served: ControlServer) -> None:
    with pytest.raises(OSError) as exc:
        ControlServer(served.path, _stats)
    assert exc.value.errno == errno.EADDRINUSE
    assert query(served.path) == STATS  # the first one is untouched


def test_a_stale_socket_is_replaced(sockdir: str) -> None:
    path = os.path.join(sockdir, "c.sock")
    _stale_socket(path)
    server = ControlServer(path, _stats)
    try:
        assert query(path) == STATS
    finally:
        server.close()


def test_a_server_removes_only_the_socket_it_created(sockdir: str) -> None:
    path = os.path.join(sockdir, "c.sock")
    first = ControlServer(path, _stats)
    os.unlink(path)  # someone removed it, and a second server took the path
    second = ControlServer(path, lambda: {"second": True})
    try:
        first.close()
        assert query(path) == {"second": True}
    finally:
        second.close()
    assert not os.path.exists(path)


def test_a_path_that_is_not_a_socket_is_left_alone(sockdir: str) -> None:
    path = os.path.join(sockdir, "notes.txt")
    with open(path, "w") as f:
        f.write("mine")
    with pytest.raises(FileExistsError):
        ControlServer(path, _stats)
    with open(path) as f:
        assert f.read() == "mine"


def test_a_socket_of_another_user_is_refused(sockdir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.path.join(sockdir, "c.sock")
    _stale_socket(path)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(path).st_uid + 1)
    with pytest.raises(PermissionError):
        ControlServer(path, _stats)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)  # not unlinked


def test_the_socket_is_owner_only(served: ControlServer) -> None:
    assert stat.S_IMODE(os.lstat(served.path).st_mode) == 0o600


def test_a_bind_error_names_the_path(sockdir: str) -> None:
    path = os.path.join(sockdir, "no-such-dir", "c.sock")
    with pytest.raises(FileNotFoundError) as exc:
        ControlServer(path, _stats)
    assert exc.value.filename == path


def test_a_too_long_path_is_a_clear_error(sockdir: str) -> None:
    with pytest.raises(ValueError, match="at most 107"):
        ControlServer(os.path.join(sockdir, "x" * 120), _stats)


# ------------------------------------------------------------------ default path


@pytest.fixture
def private_tmp(sockdir: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """No runtime directory, and a temp dir of our own in place of the shared /tmp."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", sockdir)
    return os.path.join(sockdir, f"skqueue-{os.getuid()}")


def test_default_path_is_in_a_private_directory_created_0700(private_tmp: str) -> None:
    path = default_control_path()
    assert path == os.path.join(private_tmp, "control.sock")
    assert not os.path.exists(private_tmp)  # asking for the path creates nothing
    server = ControlServer(path, _stats)
    try:
        assert stat.S_IMODE(os.stat(private_tmp).st_mode) == 0o700
        assert query(path) == STATS
    finally:
        server.close()


def test_a_private_directory_others_can_enter_is_refused(private_tmp: str) -> None:
    os.mkdir(private_tmp)
    os.chmod(private_tmp, 0o777)
    with pytest.raises(PermissionError, match="others may enter"):
        ControlServer(default_control_path(), _stats)


def test_a_private_directory_of_another_user_is_refused(
    private_tmp: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = os.getuid() + 1  # pretend to be another user, for whom ours was made in advance
    monkeypatch.setattr(os, "getuid", lambda: me)
    planted = os.path.join(os.path.dirname(private_tmp), f"skqueue-{me}")
    os.mkdir(planted, 0o700)
    path = default_control_path()
    assert os.path.dirname(path) == planted
    with pytest.raises(PermissionError, match="not a directory owned by you"):
        ControlServer(path, _stats)


def test_a_default_path_too_long_for_a_socket_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", "/tmp/" + "t" * 100)  # TMPDIR set deep
    with pytest.raises(SystemExit) as exc:
        main(["stats", "--wait", "0"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert err.startswith("skqueue stats: error: argument --control: ")


def test_the_runtime_directory_is_used_when_it_is_ours(
    sockdir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", sockdir)
    assert default_control_path() == os.path.join(sockdir, "skqueue.sock")
    monkeypatch.setattr(os, "getuid", lambda: os.stat(sockdir).st_uid + 1)
    assert os.path.dirname(default_control_path()) != sockdir  # not ours: not used


# ------------------------------------------------------------------ clients


@pytest.mark.timeout(90)
def test_an_idle_client_does_not_block_others(
    sockdir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "CONTROL_TIMEOUT_S", 60.0)  # the idle client is kept 60 s
    server = ControlServer(os.path.join(sockdir, "c.sock"), _stats)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
            idle.connect(server.path)  # and says nothing
            assert query(server.path, timeout=30) == STATS
    finally:
        server.close()


@pytest.mark.timeout(90)
def test_stats_waits_for_a_server_that_is_starting(sockdir: str) -> None:
    path = os.path.join(sockdir, "c.sock")
    with cli_process("stats", "--control", path, "--wait", "60") as stats:
        server = ControlServer(path, _stats)
        try:
            out, err = stats.communicate(timeout=60)
        finally:
            server.close()
        assert stats.returncode == 0, err
        assert json.loads(out) == STATS


@pytest.mark.timeout(60)
def test_serve_refuses_a_control_path_a_running_serve_answers_on(sockdir: str) -> None:
    path = os.path.join(sockdir, "c.sock")
    serve = ("serve", "--design", "asyncio", "--workers", "1", "--control", path)
    with cli_process(*serve) as first:
        assert first.stdout is not None
        assert "serving on" in first.stdout.readline()
        second = run_cli(*serve, timeout=40)
        assert second.returncode == 1
        assert second.stderr.startswith("skqueue serve: error: ")
        assert "already answers" in second.stderr and "Traceback" not in second.stderr
        assert query(path)["config"]["workers"] == 1  # the first still answers
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=15) == 0
        assert not os.path.exists(path)
