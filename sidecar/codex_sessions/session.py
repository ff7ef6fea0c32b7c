"""One session: its record, its status, its transcript, and Codex events turned into items.

A Session holds no I/O of its own: the manager feeds it Codex's events and
sends out what it produces. Its status is derived from a few facts (the phase
of its process, whether a turn runs, pending requests, a prompt waiting for a
slot) rather than stored, so it cannot drift.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .appserver import AppServer
from .projects import Project, buffer_name, project_from_root
from .protocol import Report, Request, SessionInfo
from .report import TurnLog, build_report, summarise

LIVE_PHASES = ("starting", "ready")
OUTPUT_KEEP_BYTES = 64 * 1024
TITLE_LIMIT = 80


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def command_text(item: dict[str, Any]) -> str:
    """A command as the user would type it: Codex wraps it in `bash -lc '...'`."""
    actions = item.get("commandActions") or []
    if len(actions) == 1 and actions[0].get("command"):
        return actions[0]["command"]
    command = item.get("command")
    return " ".join(command) if isinstance(command, list) else str(command or "")


class Transcript:
    """The items kept in memory: numbered, bounded in bytes, oldest dropped first.

    The bound counts each item's JSON; items are kept compressed (they are read
    only when a client pages through the transcript), so a session holding its
    full `outputLimitBytes` costs far less memory than that.
    """

    def __init__(self, limit_bytes: int, next_seq: int = 1) -> None:
        self.limit_bytes = limit_bytes
        self.items: collections.deque[tuple[bytes, int]] = collections.deque()
        self.size = 0
        self.next_seq = next_seq
        self.first_seq = next_seq
        self.dropped = next_seq > 1  # older items live only in the database

    def append(self, item: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Number `item`, keep it, and return it with its JSON (for the store)."""
        item["seq"] = self.next_seq
        self.next_seq += 1
        encoded = json.dumps(item, ensure_ascii=False)
        self.items.append((zlib.compress(encoded.encode(), 1), len(encoded)))
        self.size += len(encoded)
        while self.size > self.limit_bytes and len(self.items) > 1:
            _, size = self.items.popleft()
            self.size -= size
            self.first_seq += 1
            self.dropped = True
        return item, encoded

    def page(self, after: int, limit: int) -> list[dict[str, Any]] | None:
        """Items with seq > after, or None when some of them were dropped."""
        if after + 1 < self.first_seq:
            return None
        start = after + 1 - self.first_seq
        return [json.loads(zlib.decompress(blob))
                for blob, _ in itertools.islice(self.items, start, start + limit)]


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
    model: str | None = None
    sandbox: str = "workspace-write"
    approval_policy: str = "on-request"
    thread_id: str | None = None
    title: str | None = None
    updated_at: str = ""
    started_at: str | None = None
    turn_started_at: str | None = None
    finished_at: str | None = None
    turns: int = 0
    last_turn: dict[str, Any] | None = None
    changed_files: list[str] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: {"inputTokens": 0, "outputTokens": 0})
    error: str | None = None
    report: Report | None = None
    # Where the process is: starting, ready, failed, stopped, interrupted.
    phase: str = "starting"
    recorded_status: str | None = None  # status another sidecar recorded
    owner: dict[str, int] | None = None
    # Runtime only.
    server: AppServer | None = None
    turn_active: bool = False
    turn_id: str | None = None
    next_prompt: str | None = None
    pending: dict[str, Pending] = field(default_factory=dict)
    log: TurnLog = field(default_factory=TurnLog)
    transcript: Transcript = field(default_factory=lambda: Transcript(10 * 1024 * 1024))
    request_counter: int = 0
    file_changes: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    # When Codex last told us anything, and per running command the moment before it
    # began: Codex stamps a quick command's start after it already ran.
    encoded: str | None = None  # wire_json()'s cache, cleared by touch()
    last_event_ms: float = 0.0
    command_floor: dict[str, float] = field(default_factory=dict)

    @classmethod
    def new(cls, name: str, project: Project, limit_bytes: int, **options: Any) -> "Session":
        stamp = now()
        return cls(id=uuid.uuid4().hex[:12], name=name, project=project, created_at=stamp,
                   updated_at=stamp, transcript=Transcript(limit_bytes), **options)

    # ---- status ---------------------------------------------------------------------

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
        if self.next_prompt is not None:
            return "queued"
        return "idle"

    @property
    def busy(self) -> bool:
        return self.turn_active or self.next_prompt is not None

    def touch(self) -> None:
        self.updated_at = now()
        self.encoded = None

    def wire_json(self) -> str:
        """The session object as JSON, kept until the session next changes."""
        if self.encoded is None:
            self.encoded = json.dumps(self.to_wire())
        return self.encoded

    def to_wire(self) -> SessionInfo:
        return SessionInfo(
            id=self.id, name=self.name, project=self.project.to_wire(),  # type: ignore[typeddict-item]
            bufferName=buffer_name(self.project, self.name), status=self.status,  # type: ignore[typeddict-item]
            threadId=self.thread_id, title=self.title, createdAt=self.created_at,
            updatedAt=self.updated_at, startedAt=self.started_at, finishedAt=self.finished_at,
            turnStartedAt=self.turn_started_at,
            turns=self.turns, lastTurn=self.last_turn,  # type: ignore[typeddict-item]
            pending=[p.wire for p in self.pending.values()],
            changedFiles=list(self.changed_files), usage=dict(self.usage),  # type: ignore[typeddict-item]
            error=self.error, report=self.report, live=self.live and self.owner is None,
            owner=self.owner, queuedPrompts=int(self.next_prompt is not None), model=self.model,
            sandbox=self.sandbox, approvalPolicy=self.approval_policy,
            pid=self.server.pid if self.server else None)

    # ---- persistence ----------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """What the store keeps of this session."""
        return {"id": self.id, "name": self.name, "root": self.project.root,
                "createdAt": self.created_at, "updatedAt": self.updated_at,
                "status": self.status, "model": self.model, "sandbox": self.sandbox,
                "approvalPolicy": self.approval_policy, "threadId": self.thread_id,
                "title": self.title, "startedAt": self.started_at,
                "turnStartedAt": self.turn_started_at,
                "finishedAt": self.finished_at, "turns": self.turns,
                "lastTurn": self.last_turn, "changedFiles": self.changed_files,
                "usage": self.usage, "error": self.error, "report": self.report,
                "pending": [p.wire for p in self.pending.values()],
                "nextSeq": self.transcript.next_seq}

    @classmethod
    def from_record(cls, rec: dict[str, Any], limit_bytes: int) -> "Session":
        session = cls(
            id=rec["id"], name=rec["name"], project=project_from_root(rec["root"]),
            created_at=rec["createdAt"], updated_at=rec["updatedAt"], model=rec.get("model"),
            sandbox=rec.get("sandbox", "workspace-write"),
            approval_policy=rec.get("approvalPolicy", "on-request"),
            thread_id=rec.get("threadId"), title=rec.get("title"),
            started_at=rec.get("startedAt"), finished_at=rec.get("finishedAt"),
            turn_started_at=rec.get("turnStartedAt"),
            turns=rec.get("turns", 0), last_turn=rec.get("lastTurn"),
            changed_files=rec.get("changedFiles") or [], usage=rec.get("usage") or
            {"inputTokens": 0, "outputTokens": 0}, error=rec.get("error"),
            report=rec.get("report"), transcript=Transcript(limit_bytes, rec.get("nextSeq", 1)))
        status = rec.get("status")
        session.phase = status if status in ("failed", "stopped") else "interrupted"
        session.recorded_status = status
        return session

    # ---- turning Codex events into items ----------------------------------------------

    def item(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"turnId": self.turn_id, "at": now(), "kind": kind, **fields}

    def set_title(self, prompt: str) -> None:
        if self.title is None:
            first = prompt.strip().splitlines()[0] if prompt.strip() else ""
            self.title = first[:TITLE_LIMIT] or None

    def relative(self, path: str) -> str:
        if os.path.isabs(path):
            rel = os.path.relpath(os.path.realpath(path), self.project.root)
            return path if rel.startswith("..") else rel
        return path

    def note_changed(self, paths: list[str]) -> None:
        self.log.add_changed(paths)
        for path in paths:
            if path not in self.changed_files:
                self.changed_files.append(path)

    def completed_item(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """The transcript item for a Codex `item/completed`, or None to skip it."""
        kind = item.get("type")
        if kind == "agentMessage":
            # the report needs its first sentences only: do not keep a long message twice
            self.log.last_agent_text = summarise((item.get("text") or "")[:2000])
            return self.item("agent", text=item.get("text") or "", itemId=item.get("id"))
        if kind == "reasoning":
            parts = [*(item.get("summary") or []), *(item.get("content") or [])]
            text = "\n".join(p if isinstance(p, str) else p.get("text", "") for p in parts)
            return self.item("reasoning", text=text, itemId=item.get("id")) if text else None
        if kind == "commandExecution":
            command = command_text(item)
            exit_code = item.get("exitCode")
            output = item.get("aggregatedOutput") or ""
            if len(output) > OUTPUT_KEEP_BYTES:
                output = output[-OUTPUT_KEEP_BYTES:]
            self.log.add_command(command, exit_code)
            return self.item("command", command=command, cwd=item.get("cwd"), exitCode=exit_code,
                             output=output, status=item.get("status"), itemId=item.get("id"))
        if kind == "fileChange":
            changes = self.file_changes.pop(item.get("id", ""), None) or self._changes(item)
            if item.get("status") not in (None, "completed"):
                return None
            self.note_changed([c["path"] for c in changes])
            return self.item("fileChange", changes=changes, itemId=item.get("id"))
        return None

    def _changes(self, item: dict[str, Any]) -> list[dict[str, str]]:
        changes = []
        for change in item.get("changes") or []:
            kind = change.get("kind")
            if isinstance(kind, dict):
                kind = kind.get("type")
            changes.append({"path": self.relative(change.get("path", "")), "kind": kind or "update"})
        return changes

    def started_item(self, item: dict[str, Any]) -> None:
        if item.get("type") == "fileChange":
            self.file_changes[item.get("id", "")] = self._changes(item)

    def new_request(self, codex_id: Any, method: str, params: dict[str, Any]) -> Pending | None:
        """Register a Codex server request; None if it is not one a user answers."""
        kinds = {"item/commandExecution/requestApproval": "command",
                 "item/fileChange/requestApproval": "fileChange",
                 "item/tool/requestUserInput": "userInput",
                 "item/permissions/requestApproval": "permissions"}
        kind = kinds.get(method)
        if kind is None:
            return None
        self.request_counter += 1
        request_id = f"r{self.request_counter}"
        wire = Request(requestId=request_id, kind=kind, reason=params.get("reason"),  # type: ignore[typeddict-item]
                       cwd=params.get("cwd"))
        if kind == "command":
            wire["command"] = command_text(params)
        elif kind == "fileChange":
            wire["changes"] = self.file_changes.get(params.get("itemId", ""), [])
        elif kind == "userInput":
            wire["questions"] = params.get("questions") or []
        pending = Pending(codex_id, wire, params)
        self.pending[request_id] = pending
        return pending


def answer_for(pending: Pending, decision: str) -> dict[str, Any]:
    """What Codex expects back for `decision` on this kind of request."""
    kind = pending.wire["kind"]
    if kind == "permissions":
        granted = pending.params.get("permissions") or {} if decision.startswith("accept") else {}
        return {"permissions": granted,
                "scope": "session" if decision == "acceptForSession" else "turn"}
    if kind == "userInput":
        return {"answers": {}}
    return {"decision": decision}


def describe(pending: Pending) -> str:
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
                        [describe(p) for p in session.pending.values()], error)
