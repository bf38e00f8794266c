"""The control socket of a running server: where it lives, who owns it, who answers.

A server answers one-line commands (``stats``) on a unix socket; ``skqueue stats`` and
the benchmark harness ask it.  The socket is a file in a shared namespace, so the rules
here keep one user's server from being taken over, hidden or deleted by another server
or another user:

* the default path is in a directory only this user can enter (:func:`default_control_path`);
* a path a live server answers on is refused, a stale socket nobody answers is replaced;
* the socket is created owner-only (0600), and a server unlinks only the socket it bound;
* every client is answered on its own thread, so an idle client cannot hold up others.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from skqbench.servers.base import ACCEPT_BACKOFF_S, OUT_OF_RESOURCES

CONTROL_TIMEOUT_S = 5.0
# sun_path is 108 bytes on Linux; one is kept for the terminating NUL other tools expect.
SUN_PATH_MAX = 107
RUNTIME_NAME = "skqueue.sock"
PRIVATE_NAME = "control.sock"
RETRY_S = 0.05


def _private_dir() -> str:
    return os.path.join(tempfile.gettempdir(), f"skqueue-{os.getuid()}")


def _owned_by_me(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid()


def default_control_path() -> str:
    """``$XDG_RUNTIME_DIR/skqueue.sock`` when that is a directory of this user's, else
    ``<tempdir>/skqueue-<uid>/control.sock``: a fixed name in a shared /tmp could be
    taken by anyone.  Nothing is created here (see :class:`ControlServer`)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        with contextlib.suppress(OSError):
            st = os.stat(runtime)
            if stat.S_ISDIR(st.st_mode) and _owned_by_me(st):
                return os.path.join(runtime, RUNTIME_NAME)
    return os.path.join(_private_dir(), PRIVATE_NAME)


def check_control_path(path: str) -> str:
    """Reject a path no unix socket can have; used for ``--control`` and before binding."""
    raw = os.fsencode(path)
    if not raw:
        raise ValueError("empty path")
    if b"\0" in raw:
        raise ValueError("path contains a NUL byte")
    if len(raw) > SUN_PATH_MAX:
        raise ValueError(f"{len(raw)} bytes, a unix socket path holds at most {SUN_PATH_MAX}")
    return path


def _ensure_private_dir(directory: str) -> None:
    """Create the per-user directory 0700, or accept it only if it is ours and private."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or not _owned_by_me(st):
        raise PermissionError(
            errno.EPERM, "not a directory owned by you; refusing to use it", directory
        )
    if st.st_mode & 0o077:
        raise PermissionError(
            errno.EPERM, "others may enter this directory; refusing to use it", directory
        )


def _answers(path: str) -> bool:
    """Whether a server accepts connections on ``path`` (False for a stale socket)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(CONTROL_TIMEOUT_S)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
    return True


def _claim(path: str) -> None:
    """Make room for a new socket at ``path``, or raise ``OSError`` saying why not."""
    if os.path.dirname(os.path.abspath(path)) == _private_dir():
        _ensure_private_dir(_private_dir())
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(errno.EEXIST, "exists and is not a socket", path)
    if not _owned_by_me(st):
        raise PermissionError(errno.EPERM, "socket owned by another user", path)
    if _answers(path):
        raise OSError(errno.EADDRINUSE, "a running server already answers here", path)
    os.unlink(path)  # stale: its server was killed


class ControlServer:
    """A unix socket that answers one-line commands; ``stats`` returns ``stats()``'s JSON."""

    def __init__(self, path: str, stats: Callable[[], dict[str, Any]]) -> None:
        check_control_path(path)
        _claim(path)
        self.path = path
        self.stats = stats
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Owner-only from the first moment: a chmod after bind would leave a window.
        # The umask is process-wide; servers bind this once, at start-up.
        old_umask = os.umask(0o177)
        try:
            self.sock.bind(path)
        except OSError as exc:  # bind's errors do not name the path
            self.sock.close()
            raise OSError(exc.errno, exc.strerror, path) from None
        finally:
            os.umask(old_umask)
        st = os.lstat(path)
        self._identity = (st.st_dev, st.st_ino)
        self.sock.listen(8)
        self._thread = threading.Thread(target=self._accept, name="control", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError as exc:
                if exc.errno in OUT_OF_RESOURCES:  # out of fds: wait, do not end
                    time.sleep(ACCEPT_BACKOFF_S)
                    continue
                return  # closed
            threading.Thread(
                target=self._answer, args=(client,), name="control-client", daemon=True
            ).start()

    def _answer(self, client: socket.socket) -> None:
        with client:
            client.settimeout(CONTROL_TIMEOUT_S)
            try:
                command = client.recv(64).decode(errors="replace").strip()
                if command == "stats":
                    reply: dict[str, Any] = {"ok": True, "stats": self.stats()}
                else:
                    reply = {"ok": False, "error": f"unknown command {command!r}"}
                client.sendall(json.dumps(reply).encode() + b"\n")
            except Exception as exc:  # a broken client must not take the server down
                with contextlib.suppress(OSError):
                    client.sendall(json.dumps({"ok": False, "error": str(exc)}).encode())

    def close(self) -> None:
        """Stop answering and remove the socket, unless another server has replaced it."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(CONTROL_TIMEOUT_S)
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._identity:
                os.unlink(self.path)


def query(
    path: str, command: str = "stats", wait_s: float = 0.0, timeout: float = CONTROL_TIMEOUT_S
) -> dict[str, Any]:
    """Ask a running server's control socket; raises ``OSError`` if nobody answers.

    ``wait_s`` is how long to keep trying while the socket does not exist yet or refuses
    connections: a server started in the background needs a moment to bind it.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _ask(path, command, timeout)
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(RETRY_S)


def _ask(path: str, command: str, timeout: float) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    try:
        reply: dict[str, Any] = json.loads(b"".join(chunks))
    except ValueError:
        raise OSError(errno.EPROTO, "not a skqueue control socket", path) from None
    if not reply.get("ok"):
        raise OSError(f"server refused {command!r}: {reply.get('error')}")
    stats: dict[str, Any] = reply["stats"]
    return stats
