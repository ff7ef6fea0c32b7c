"""Who may use the HTTP API: a loopback Host, then a token or the panel's cookie.

- The token is random and kept in `http-token` in the state folder (0600). It
  outlives the daemon, so a client configured with it keeps working; deleting
  the file (and restarting the daemon) makes a new one and ends every login.
- A request whose `Host` is not a loopback address or `localhost` is refused: a
  page at another name that resolves to 127.0.0.1 (DNS rebinding) gets nothing.
- The panel logs in once: `codex-sessions panel` asks (with the token) for a
  one-time code, and the browser exchanges it for an HttpOnly, SameSite=Strict
  cookie. The cookie holds a value derived from the token, never the token.
- No CORS: no Access-Control-* header is ever sent, so pages of other origins
  cannot read an answer; writes made with the cookie must come from our origin.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from pathlib import Path

TOKEN_FILE = "http-token"
COOKIE = "codex_sessions"
CODE_SECONDS = 300.0  # how long a login link works
MAX_CODES = 32


def load_token(state_dir: Path) -> tuple[str, Path]:
    """The token in the state folder, made on first use; the file is kept 0600."""
    path = state_dir / TOKEN_FILE
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    if st is not None:
        if st.st_uid != os.getuid():
            raise PermissionError(f"{path} belongs to another user; refusing it")
        if st.st_mode & 0o077:
            os.chmod(path, 0o600)
        token = path.read_text().strip()
        if len(token) >= 32:
            return token, path
    token = secrets.token_urlsafe(32)
    fresh = path.with_name(f".{TOKEN_FILE}.{os.getpid()}")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(fresh, path)
    return token, path


def host_name(host: str) -> str:
    """The name part of a Host header: `[::1]:80` -> `::1`, `Localhost.:80` -> `localhost`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else ""
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(host: str | None, also: frozenset[str] = frozenset()) -> bool:
    """Host is a loopback address or `localhost` (or, with --http-allow-remote, the bind name)."""
    if not host:
        return False
    name = host_name(host)
    return is_loopback(name) or name in also or "*" in also


class Credentials:
    """The token, the cookie value derived from it, and the one-time login codes."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.cookie = hmac.new(token.encode(), b"codex-sessions panel login",
                               hashlib.sha256).hexdigest()
        self._codes: dict[str, float] = {}

    def bearer_ok(self, header: str) -> bool | None:
        """None: no bearer token given; else whether it is ours."""
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        return hmac.compare_digest(given.strip().encode(), self.token.encode())

    def cookie_ok(self, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(value.encode(), self.cookie.encode())

    def new_code(self) -> str:
        now = time.monotonic()
        self._codes = {c: t for c, t in self._codes.items() if t > now}
        while len(self._codes) >= MAX_CODES:
            self._codes.pop(next(iter(self._codes)))
        code = secrets.token_urlsafe(24)
        self._codes[code] = now + CODE_SECONDS
        return code

    def use_code(self, code: str) -> bool:
        """A code works once, within CODE_SECONDS."""
        expires = self._codes.pop(code, None)
        return expires is not None and expires > time.monotonic()
