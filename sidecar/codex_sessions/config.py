"""Configuration: where state lives, which Codex runs, the user's config file.

A client's options (from `initialize`) apply to the sessions that client starts
and are recorded with them, so a session resumed later runs the Codex it was
started with.
"""

from __future__ import annotations

import os
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


DEFAULT_IDLE_EXIT = 600.0


@dataclass(frozen=True)
class ClientConfig:
    """What one client asked for, in the core's terms."""

    codex_command: tuple[str, ...] = ("codex",)
    codex_env: tuple[tuple[str, str], ...] = ()
    max_sessions_per_project: int = 10
    max_running: int = 5
    output_limit_bytes: int = 10 * 1024 * 1024
    codex_process: str = "perProject"
    codex_timeout: float = 30.0  # seconds Codex may take to answer a request
    notes: bool = False  # the notetaker for the sessions it starts (core/notes.py)
    isolation: str = "shared"  # how this client's sessions start unless told otherwise
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def codex_command(given: list[str] | None, args: list[str] | None = None,
                  env: dict[str, str] | None = None) -> list[str]:
    """codexCommand, else $CODEX_SESSIONS_CODEX, else `codex`; then codexArgs."""
    if given:
        base = list(given)
    else:
        from_env = (env if env is not None else os.environ).get("CODEX_SESSIONS_CODEX")
        base = shlex.split(from_env) if from_env else ["codex"]
    return base + list(args or [])


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "codex-sessions" / "config.toml"


def user_config() -> dict[str, Any]:
    """The user's config file, or {} when there is none; ValueError naming the problem."""
    path = user_config_path()
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
