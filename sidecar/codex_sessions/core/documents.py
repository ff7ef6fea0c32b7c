"""What is recorded of every session, as files: `documents/SESSION_ID/` in the state folder.

Always on, for every session:
- `user_actions.jsonl`: what the user did (prompts, answers to requests);
- `agent_actions.jsonl`: what the agent did (messages, commands, file changes,
  requests it asked, errors).
One transcript item per line, exactly as the transcript numbered and encoded it
(`seq`, `turnId`, `at`, `kind` and the item's fields), appended as items are
recorded. Appends are gathered per session and written a few milliseconds later
(and at once when a turn ends), so a streaming turn costs one small write per batch;
streamed pieces are not items and never come here.

Written by the notetaker (notes.py), when notes are on: `learnings.md` (an entry
per turn, a closing summary) and `augmented_turns.md` (learn mode's rewrites and the
user's decisions). `documents/projects/NAME-HASH/learnings.md` is the project's
learnings from every session, rewritten from the database on each new entry.

The folders are 0700, the files 0600, and nothing is written through a link.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from .projects import Project

log = logging.getLogger(__name__)

USER_KINDS = {"user"}
AGENT_KINDS = {"agent", "reasoning", "command", "fileChange", "error"}
FLUSH_DELAY = 0.02  # seconds: appends within this gather into one write
USER_FILE, AGENT_FILE = "user_actions.jsonl", "agent_actions.jsonl"
LEARNINGS_FILE, AUGMENTED_FILE = "learnings.md", "augmented_turns.md"


def is_user_action(item: dict[str, Any]) -> bool:
    """A prompt, or the user's answer to a request (the request item with its decision)."""
    return item["kind"] in USER_KINDS or (item["kind"] == "request" and bool(item.get("decision")))


def is_agent_action(item: dict[str, Any]) -> bool:
    return item["kind"] in AGENT_KINDS or (item["kind"] == "request" and not item.get("decision"))


def _private_dir(path: Path, link_ok: bool = False) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.is_symlink() and not link_ok:
        raise OSError(f"{path} is a symbolic link")
    os.chmod(path, 0o700)


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, atomically, 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)


class Documents:
    """The documents folder of one state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "documents"
        self._lines: dict[str, tuple[list[bytes], list[bytes]]] = {}  # user, agent lines
        self._timer: asyncio.TimerHandle | None = None
        self._failed: set[str] = set()  # sessions whose folder cannot be written (told once)
        self.turn_start: dict[str, int] = {}  # session id -> seq of its last prompt
        self._made: set[Path] = set()  # folders known to exist, private

    def _ensure(self, folder: Path) -> Path:
        if folder not in self._made:
            path = self.root
            _private_dir(path, link_ok=True)  # the user may have put it on another disk
            for part in folder.relative_to(self.root).parts:
                path = path / part
                _private_dir(path)
            self._made.add(folder)
        return folder

    def folder(self, session_id: str) -> Path:
        return self.root / session_id

    def project_folder(self, project: Project) -> Path:
        return self.root / "projects" / f"{project.name}-{project.hash}"

    # ---- the action logs ------------------------------------------------------------------

    def record(self, session_id: str, item: dict[str, Any], encoded: bytes) -> None:
        """A transcript item was recorded: queue its line for the session's action log."""
        if item["kind"] == "user" and not item.get("steer"):  # a prompt; steering joins a turn
            self.turn_start[session_id] = item["seq"]
        if is_user_action(item):
            which = 0
        elif is_agent_action(item):
            which = 1
        else:
            return  # status changes are the session's, not an action
        lines = self._lines.get(session_id)
        if lines is None:
            lines = self._lines[session_id] = ([], [])
        lines[which].append(encoded + b"\n")
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """Write every queued line now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._lines = self._lines, {}
        for session_id, (user, agent) in pending.items():
            try:
                folder = self._ensure(self.folder(session_id))
                if user:
                    _append(folder / USER_FILE, b"".join(user))
                if agent:
                    _append(folder / AGENT_FILE, b"".join(agent))
            except OSError as exc:
                self._made.discard(self.folder(session_id))
                if session_id not in self._failed:
                    self._failed.add(session_id)
                    log.warning("cannot record session %s in %s: %s", session_id,
                                self.folder(session_id), exc)

    # ---- the notetaker's files ------------------------------------------------------------

    def append_text(self, session_id: str, name: str, text: str) -> Path:
        """Append `text` to one of the session's documents (OSError if it cannot)."""
        folder = self.folder(session_id)
        try:
            _append(self._ensure(folder) / name, text.encode("utf-8"))
        except OSError:
            self._made.discard(folder)
            raise
        return folder / name

    def write_project(self, project: Project, text: str) -> Path:
        folder = self.project_folder(project)
        self._made.discard(folder)
        path = self._ensure(folder) / LEARNINGS_FILE
        write_private(path, text)
        return path

    def remove(self, session_id: str) -> None:
        """The session was forgotten: its documents go too."""
        self._lines.pop(session_id, None)
        self.turn_start.pop(session_id, None)
        folder = self.folder(session_id)
        self._made.discard(folder)
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
