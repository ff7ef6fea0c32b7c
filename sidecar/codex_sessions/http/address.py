"""Where the HTTP API listens: `daemon --http HOST:PORT`, else `http` in the config file.

Loopback addresses only (127.0.0.1, ::1, localhost), unless the daemon was started
with `--http-allow-remote`. Cheap to import: the CLI checks --http before starting.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..config import user_config
from .auth import is_loopback


class HttpSetupError(Exception):
    """The HTTP API cannot be turned on as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "localhost": "127.0.0.1"}.get(self.host,
                                                                                   self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


def parse_address(text: str, allow_remote: bool = False, source: str = "--http") -> Address:
    """`127.0.0.1:8765`, `[::1]:8765`, `localhost:0` (port 0 picks a free one)."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^\s:\[\]]+):(\d{1,5})", text.strip())
    if match is None:
        raise HttpSetupError(f"{source} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8765 "
                             "(port 0 picks a free one)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise HttpSetupError(f"{source} {text!r}: the port must be 0-65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise HttpSetupError(f"{source} {text!r}: give an IP address or localhost, "
                                 "not a host name") from None
    if not is_loopback(host) and not allow_remote:
        raise HttpSetupError(f"{source} {text!r}: {host} is not a loopback address; the API "
                             "listens on 127.0.0.1, ::1 or localhost unless the daemon is "
                             "started with --http-allow-remote")
    return Address("127.0.0.1" if host == "localhost" else host, port)


def configured_address(flag: str | None, allow_remote: bool) -> Address | None:
    """--http, else `http` in the user's config file, else None (the API is off)."""
    if flag:
        return parse_address(flag, allow_remote)
    try:
        value = user_config().get("http")
    except ValueError as exc:
        raise HttpSetupError(f"the HTTP API is off: {exc}") from None
    if value is None or value is False or value == "":
        return None
    if not isinstance(value, str):
        raise HttpSetupError(f"`http` in the config file must be a string such as "
                             f"\"127.0.0.1:8765\" (got {value!r}); the HTTP API is off")
    return parse_address(value, allow_remote, "`http` in the config file:")
