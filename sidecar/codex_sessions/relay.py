"""`codex-sessions serve`: what editors run. It relays stdio to the daemon.

It reads the client's `initialize` to learn the state folder, connects to that
folder's daemon (starting it, detached, when none answers: two `serve` started
at once end with one daemon), adds what the daemon cannot know about this client
(its CODEX_SESSIONS_CODEX, CODEX_HOME, PATH), and then copies bytes both ways
until either side closes. It parses nothing after that, so a round trip costs
two thread hand-offs.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import __version__
from .paths import socket_path, state_dir as resolve_state_dir

START_TIMEOUT = 60.0
PIPE_BYTES = 1 << 20  # what one read from the daemon takes, and the editor's pipe holds
CLIENT_ENV = ("CODEX_HOME", "HOME", "PATH")


def frame(body: bytes) -> bytes:
    """rpc.framing's frame(), not imported from there: that would import asyncio.

    The relay starts with every editor, so it imports only what it uses (the standard
    json, not orjson, for the few small messages it reads or writes itself).
    """
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def dumps(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


class DaemonUnavailable(Exception):
    """No daemon answers and none could be started; the message says why."""


class SyncFrames:
    """Frames read from a file descriptor or socket, keeping what was read beyond them."""

    def __init__(self, recv: Any) -> None:
        self.recv = recv  # up to n bytes, b"" at the end
        self.buf = b""

    def _need(self, count: int) -> bool:
        while len(self.buf) < count:
            chunk = self.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def next(self) -> tuple[bytes, Any]:
        """One frame as it came (headers and body) and its decoded body (None if unusable)."""
        while (end := self.buf.find(b"\r\n\r\n")) == -1:
            if not self._need(len(self.buf) + 1):
                raw, self.buf = self.buf, b""
                return raw, None
        header = self.buf[:end].decode("latin-1")
        length = 0
        for line in header.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value.strip())
        total = end + 4 + min(length, 64 * 1024 * 1024)
        self._need(total)
        raw, self.buf = self.buf[:total], self.buf[total:]
        try:
            return raw, json.loads(raw[end + 4:])
        except ValueError:
            return raw, None


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def ensure_daemon(folder: Path, start: bool = True) -> socket.socket:
    """A connection to the folder's daemon, started (detached) if none answers."""
    path = socket_path(folder)
    sock = _connect(path)
    if sock is not None or not start:
        if sock is None:
            raise DaemonUnavailable(f"no daemon serves {folder}")
        return sock
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / "daemon.start.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # whoever got here first starts it; the rest wait
        sock = _connect(path)
        if sock is not None:
            return sock
        log_path = folder / "daemon.log"
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "codex_sessions", "--state-dir", str(folder), "daemon",
                 "--log-file", str(log_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_fd,
                start_new_session=True, close_fds=True, cwd="/")
        finally:
            os.close(log_fd)
        # A loaded machine can take many seconds to start Python: wait while the daemon
        # lives, give up at once when it died.
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            sock = _connect(path)
            if sock is not None:
                return sock
            if daemon.poll() is not None:
                raise DaemonUnavailable(f"the daemon for {folder} exited as it started (status "
                                        f"{daemon.returncode}); see {log_path}")
            time.sleep(0.02)
    raise DaemonUnavailable(f"the daemon for {folder} did not start within {START_TIMEOUT:g} s; "
                            f"see {log_path}")


def ask(sock: socket.socket, method: str, params: Any = None) -> Any:
    """One request on a fresh connection, before it relays anything; the result."""
    body = dumps({"jsonrpc": "2.0", "id": f"serve:{method}", "method": method,
                         "params": params or {}})
    sock.sendall(frame(body))
    _, answer = SyncFrames(sock.recv).next()
    if not isinstance(answer, dict) or "result" not in answer:
        raise DaemonUnavailable(f"the daemon did not answer {method}: {answer!r}")
    return answer["result"]


def _client_options(message: Any) -> tuple[Path, bytes | None]:
    """The state folder the client asked for, and its initialize with our additions."""
    if not (isinstance(message, dict) and message.get("method") == "initialize"):
        return resolve_state_dir(None), None
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    options = params.get("initializationOptions")
    options = dict(options) if isinstance(options, dict) else {}
    folder = resolve_state_dir(options.get("stateDir") if isinstance(options.get("stateDir"), str)
                               else None)
    if not options.get("codexCommand") and os.environ.get("CODEX_SESSIONS_CODEX"):
        options["codexCommand"] = shlex.split(os.environ["CODEX_SESSIONS_CODEX"])
    options.setdefault("clientEnv", {k: os.environ[k] for k in CLIENT_ENV if k in os.environ})
    message = {**message, "params": {**params, "initializationOptions": options}}
    return folder, frame(dumps(message))


def _copy(read_fd: int, write: Any, done: Any, size: int) -> None:
    """Copy until the end through one buffer: a read allocates nothing."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    try:
        while count := os.readv(read_fd, [buffer]):
            write(view[:count])
    except OSError:
        pass
    finally:
        done()


def relay() -> int:
    stdin_fd, out_fd = sys.stdin.fileno(), sys.stdout.fileno()
    first_frames = SyncFrames(lambda n: os.read(stdin_fd, n))
    raw, first = first_frames.next()
    if not raw:
        return 0
    folder, initialize = _client_options(first)
    try:
        sock = ensure_daemon(folder)
        status = ask(sock, "codex/daemon/status")
        if status.get("version") != __version__:
            if not status.get("busy"):  # nothing runs there: replace it with ours
                ask(sock, "codex/daemon/stop", {"onlyIfIdle": True})
                sock.close()
                deadline = time.monotonic() + 20
                while _connect(socket_path(folder)) is not None and time.monotonic() < deadline:
                    time.sleep(0.05)
                sock = ensure_daemon(folder)
                ask(sock, "codex/daemon/status")
            else:
                notice = {"jsonrpc": "2.0", "method": "window/showMessage", "params": {
                    "type": 2, "message": f"codex-sessions: the running daemon is version "
                    f"{status.get('version')} and has turns running; it serves this editor until "
                    f"they end (this is {__version__}). `codex-sessions daemon stop` replaces it."}}
                os.write(out_fd, frame(dumps(notice)))
    except (DaemonUnavailable, OSError) as exc:
        # Serve this editor ourselves rather than leave it with nothing; say so.
        print(f"codex-sessions serve: {exc}; serving this client alone", file=sys.stderr)
        notice = {"jsonrpc": "2.0", "method": "window/showMessage", "params": {
            "type": 2, "message": f"codex-sessions: no daemon ({exc}); this editor runs its own "
            "sidecar, and its sessions end with it"}}
        os.write(out_fd, frame(dumps(notice)))
        from .serve import standalone_server
        return standalone_server((initialize or raw) + first_frames.buf)
    sock.sendall((initialize or raw) + first_frames.buf)

    def to_stdout(chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(out_fd, view):]

    def stdin_closed() -> None:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    threading.Thread(target=_copy, args=(stdin_fd, sock.sendall, stdin_closed, 1 << 16),
                     daemon=True).start()
    try:  # a command's output comes in batches of MiBs: fewer, bigger writes to the editor
        fcntl.fcntl(out_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:  # not a pipe, or more than this user may have
        pass
    _copy(sock.fileno(), to_stdout, lambda: None, PIPE_BYTES)
    return 0
