"""Where things live: the state folder and the daemon's socket. Cheap to import (`serve`)."""

from __future__ import annotations

import os
from pathlib import Path

SUN_PATH_MAX = 100  # sockaddr_un holds 108 bytes on Linux, 104 on macOS


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "codex-sessions"


def state_dir(given: str | None) -> Path:
    """The state folder: given, else $CODEX_SESSIONS_STATE_DIR, else the XDG default."""
    chosen = given or os.environ.get("CODEX_SESSIONS_STATE_DIR")
    return Path(chosen).expanduser().resolve() if chosen else default_state_dir()


def socket_path(folder: Path) -> Path:
    """`daemon.sock` in the state folder, or a short path when that is too long for the OS."""
    preferred = folder / "daemon.sock"
    if len(os.fsencode(preferred)) <= SUN_PATH_MAX:
        return preferred
    import hashlib
    import tempfile
    digest = hashlib.sha1(os.fsencode(folder)).hexdigest()[:16]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "codex-sessions" if runtime else \
        Path(tempfile.gettempdir()) / f"codex-sessions-{os.getuid()}"
    return base / f"{digest}.sock"
