"""One session: its record, its state machine, and the wire object derived from both.

A Session does no I/O: its runner (runner.py) feeds it what Codex did and sends
out what changed. Its status is derived from a few facts (the phase of its
Codex, whether a turn runs, pending requests, a prompt waiting for a slot)
rather than stored, so it cannot drift. Every transition is a method here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

import orjson

from ..wire import Report, Request, SessionInfo
from .projects import Project, buffer_name, project_from_root
from .report import TurnLog, build_report
from .transcript import Transcript

LIVE_PHASES = ("starting", "ready")
TITLE_LIMIT = 80
# The list's order: what needs the user first, then what is busy, then the rest.
RANK = {"waiting": 0, "failed": 1, "running": 2, "starting": 3, "queued": 4}
REST_RANK = 5

# Attribute -> key, for the fields kept in the record and shown on the wire as they are.
SHARED_FIELDS = {
    "created_at": "createdAt", "updated_at": "updatedAt", "model": "model", "effort": "effort",
    "sandbox": "sandbox", "approval_policy": "approvalPolicy", "thread_id": "threadId",
    "title": "title", "started_at": "startedAt", "turn_started_at": "turnStartedAt",
    "finished_at": "finishedAt", "turns": "turns", "last_turn": "lastTurn",
    "changed_files": "changedFiles", "usage": "usage", "error": "error", "report": "report",
    "notes": "notes", "notes_error": "notesError", "learn": "learn",  # the notetaker: notes.py
    "isolation": "isolation", "worktree": "worktree", "role": "role", "write_scope": "writeScope",
    "overlaps": "overlaps", "version": "version",
}
# Kept in the record only: how to run this session's Codex again.
PRIVATE_FIELDS = {"codex_command": "codexCommand", "codex_env": "codexEnv",
                  "codex_process": "codexProcess", "max_running": "maxRunning",
                  "codex_timeout": "codexTimeout", "turn_ids": "turnIds"}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Pending:
    """A request Codex is waiting on the user for."""

    codex_id: Any
    wire: Request
    params: dict[str, Any]


@dataclass
class Session:
    id: str
    name: str
    project: Project
    created_at: str
    updated_at: str = ""
    model: str | None = None
    effort: str | None = None
    sandbox: str = "workspace-write"
    approval_policy: str = "on-request"
    thread_id: str | None = None
    title: str | None = None
    started_at: str | None = None
    turn_started_at: str | None = None
    finished_at: str | None = None
    turns: int = 0
    last_turn: dict[str, Any] | None = None
    changed_files: list[str] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: {"inputTokens": 0, "outputTokens": 0})
    error: str | None = None
    report: Report | None = None
    isolation: str = "shared"
    worktree: dict[str, Any] | None = None  # {path, branch, base, merged}
    role: str = "worker"
    write_scope: list[str] = field(default_factory=list)
    overlaps: list[str] = field(default_factory=list)  # files others changed too, in words
    version: int = 0  # +1 on every change: of two copies of a session, the higher is newer
    codex_command: list[str] = field(default_factory=list)
    codex_env: dict[str, str] = field(default_factory=dict)
    codex_process: str = "perProject"
    max_running: int = 5
    codex_timeout: float = 30.0
    turn_ids: list[str] = field(default_factory=list)  # Codex's id of each turn, in order
    # Where its Codex is: starting, ready, failed, stopped, interrupted.
    phase: str = "starting"
    recorded_status: str | None = None  # the status another sidecar recorded
    owner: dict[str, int] | None = None  # that sidecar, while it runs
    # The current turn.
    turn_active: bool = False
    turn_id: str | None = None
    next_prompt: str | None = None
    next_review: dict[str, Any] | None = None  # the queued turn is a review of this target
    pending: dict[str, Pending] = field(default_factory=dict)
    request_counter: int = 0
    log: TurnLog = field(default_factory=TurnLog)
    retry: dict[str, Any] | None = None  # Codex is retrying the model: attempt and why
    transcript: Transcript = field(default_factory=lambda: Transcript(10 * 1024 * 1024))
    pid: int | None = None
    storage_error: str | None = None
    # The notetaker (notes.py): on or off, why it last failed, learn mode, and at run time
    # the prompt learn mode holds for review, and how many notetaker jobs are under way.
    notes: bool = False
    notes_error: str | None = None
    learn: dict[str, Any] | None = None
    reviewing: str | None = None
    notes_jobs: int = 0
    encoded: bytes | None = None  # wire_json()'s cache, cleared by touch()
    encoded_rows: dict[tuple[str, ...], bytes] = field(default_factory=dict)  # row_json()'s
    changes: ClassVar[int] = 0  # counts every change of any session: what a kept list checks

    @classmethod
    def new(cls, name: str, project: Project, limit_bytes: int, **options: Any) -> "Session":
        stamp = now()
        return cls(id=uuid.uuid4().hex[:12], name=name, project=project, created_at=stamp,
                   updated_at=stamp, transcript=Transcript(limit_bytes), **options)

    # ---- status -----------------------------------------------------------------------

    @property
    def live(self) -> bool:
        return self.phase in LIVE_PHASES

    @property
    def status(self) -> str:
        if self.owner is not None and self.recorded_status:
            return self.recorded_status
        if not self.live:
            return self.phase
        if self.turn_active:
            return "waiting" if self.pending else "running"
        if self.phase == "starting":
            return "starting"
        if self.reviewing is not None:  # learn mode: rewriting the prompt, or the user reviews it
            return "waiting" if self.pending else "queued"
        if self.next_prompt is not None:
            return "queued"
        return "idle"

    @property
    def workdir(self) -> str:
        """Where its Codex works: its own work tree, or the project's."""
        return self.worktree["path"] if self.worktree else self.project.root

    @property
    def busy(self) -> bool:
        return self.turn_active or self.next_prompt is not None or self.reviewing is not None

    @property
    def holds_daemon(self) -> bool:
        """A turn runs, waits for a slot or for the user, or the notetaker writes: the daemon stays."""
        return self.owner is None and (self.busy or self.notes_jobs > 0)

    def headline(self) -> str:
        """What the list shows beside the name: what it waits on, did, or was asked."""
        status = self.status
        if status == "waiting" and self.pending:
            first = next(iter(self.pending.values())).wire
            what = first.get("command") or ", ".join(
                c["path"] for c in first.get("changes") or []) or first.get("reason") or first["kind"]
            return f"waits: {what}"
        if status == "failed" and self.error:
            return self.error.splitlines()[0][:120]
        if status == "running" and self.retry:
            return f"retrying ({self.retry.get('attempt') or '?'}): {self.retry.get('message', '')}"[:120]
        if status in ("idle", "stopped", "interrupted") and self.report and self.turns:
            return f"{self.report['status']}: {self.report['summary']}"[:120]
        return self.title or ""

    # ---- the wire and the record ---------------------------------------------------------

    def touch(self) -> None:
        self.updated_at = now()
        self.version += 1
        self.forget_encoding()

    def forget_encoding(self) -> None:
        self.encoded = None
        self.encoded_rows.clear()
        Session.changes += 1

    def wire_json(self) -> bytes:
        """The session object as JSON, kept until the session next changes."""
        if self.encoded is None:
            self.encoded = orjson.dumps(self.to_wire())
        return self.encoded

    def row_json(self, fields: tuple[str, ...]) -> bytes:
        """Only `fields` of the session object (and its id), as JSON, kept likewise."""
        row = self.encoded_rows.get(fields)
        if row is None:
            wire = self.to_wire()
            row = self.encoded_rows[fields] = orjson.dumps(
                {"id": self.id, **{f: wire[f] for f in fields if f in wire}})  # type: ignore[literal-required]
        return row

    def to_wire(self) -> SessionInfo:
        status = self.status
        wire: dict[str, Any] = {key: getattr(self, attr) for attr, key in SHARED_FIELDS.items()}
        wire.update(
            id=self.id, name=self.name, project=self.project.to_wire(),
            bufferName=buffer_name(self.project, self.name), status=status,
            pending=[p.wire for p in self.pending.values()],
            live=self.live and self.owner is None, owner=self.owner,
            queuedPrompts=int(self.next_prompt is not None or self.reviewing is not None), pid=self.pid if self.live else None,
            headline=self.headline(), rank=RANK.get(status, REST_RANK),
            storageError=self.storage_error, retry=self.retry)
        return wire  # type: ignore[return-value]

    def record(self) -> dict[str, Any]:
        """What the store keeps of this session."""
        rec = {key: getattr(self, attr) for attr, key in {**SHARED_FIELDS, **PRIVATE_FIELDS}.items()}
        rec.update(id=self.id, name=self.name, root=self.project.root, status=self.status,
                   pending=[p.wire for p in self.pending.values()],
                   nextSeq=self.transcript.next_seq)
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, Any], limit_bytes: int) -> "Session":
        """A session as another (or an earlier) sidecar recorded it; KeyError if unusable."""
        values = {attr: rec[key] for attr, key in {**SHARED_FIELDS, **PRIVATE_FIELDS}.items()
                  if rec.get(key) is not None}
        session = cls(id=rec["id"], name=rec["name"], project=project_from_root(rec["root"]),
                      transcript=Transcript(limit_bytes, int(rec.get("nextSeq", 1))),
                      **{"created_at": rec["createdAt"], **values})
        status = rec.get("status")
        session.phase = status if status in ("failed", "stopped") else "interrupted"
        session.recorded_status = status
        return session

    # ---- transitions ----------------------------------------------------------------------

    def item(self, kind: str, **fields: Any) -> dict[str, Any]:
        """A transcript item of the running turn (its number 1, 2, ... as `turn`)."""
        return {"turnId": self.turn_id, "turn": self.turns if self.turn_active else None,
                "at": now(), "kind": kind, **fields}

    def accept_prompt(self, text: str) -> None:
        if self.title is None:
            first = text.strip().splitlines()[0] if text.strip() else ""
            self.title = first[:TITLE_LIMIT] or None
        self.next_prompt = text

    def begin_turn(self) -> str:
        """The queued prompt becomes a running turn; returns the prompt."""
        prompt, self.next_prompt, self.next_review = self.next_prompt or "", None, None
        self.turn_active = True
        self.turn_id = None
        self.turns += 1
        self.turn_started_at = now()
        self.started_at = self.started_at or self.turn_started_at
        self.log = TurnLog()
        self.retry = None
        return prompt

    def turn_accepted(self, turn_id: str) -> None:
        self.turn_id = turn_id
        self.turn_ids.append(turn_id)
        self.last_turn = {"id": turn_id, "status": "inProgress", "error": None}

    def end_turn(self, status: str, error: str | None = None) -> None:
        """The turn is over: completed, failed or interrupted."""
        if error and error not in self.log.errors:
            self.log.errors.append(error)
        self.last_turn = {"id": self.turn_id or (self.last_turn or {}).get("id"),
                          "status": status, "error": error}
        self.finished_at = now()
        self.turn_active = False
        self.turn_id = None
        self.retry = None
        self.pending.clear()
        self.report = report_of(self)

    def drop_prompt(self) -> None:
        self.next_prompt = None
        self.next_review = None

    def process_started(self, pid: int | None) -> None:
        self.phase = "starting"
        self.pid = pid
        self.error = None
        self.recorded_status = None

    def process_ready(self, thread_id: str) -> None:
        self.thread_id = thread_id
        self.phase = "ready"

    def process_ended(self, phase: str, error: str | None = None) -> None:
        """Its Codex is gone: failed, stopped or interrupted; a running turn ends with it."""
        if self.turn_active:
            self.end_turn("failed" if phase == "failed" else "interrupted", error)
        self.drop_prompt()
        self.reviewing = None
        self.pending.clear()
        self.phase = phase
        self.pid = None
        if error:
            self.error = error
        self.finished_at = self.finished_at or now()

    def note_changed(self, paths: list[str]) -> None:
        self.log.add_changed(paths)
        for path in paths:
            if path not in self.changed_files:
                self.changed_files.append(path)


def describe(pending: Pending) -> str:
    """A pending request in a few words: its command, its files, or why."""
    wire = pending.wire
    if wire.get("command"):
        return f"`{wire['command']}`"
    if wire.get("changes"):
        return "changes to " + ", ".join(c["path"] for c in wire["changes"])  # type: ignore[union-attr]
    return wire.get("reason") or wire["kind"]


def report_of(session: Session) -> Report:
    if session.last_turn is None and not session.busy and session.phase != "failed":
        return Report(session=session.name, status="done", summary="No prompt has been sent yet.",
                      changed=[], verified=[], blockers=[], next="Send a prompt.")
    turn_status = None if session.turn_active else (session.last_turn or {}).get("status")
    error = session.error if session.phase == "failed" else None
    return build_report(session.name, turn_status, session.log,
                        [describe(p) for p in session.pending.values()], error, session.overlaps)
