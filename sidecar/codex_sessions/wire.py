"""What goes out on the wire: session objects, reports, requests, notifications.

TypedDicts describe what the sidecar sends without costing a model per message;
the tests validate real traffic against them with a TypeAdapter. The core builds
these shapes; the RPC layer sends them.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import orjson
from typing_extensions import TypedDict

Status = Literal["queued", "starting", "running", "waiting", "idle", "failed", "stopped",
                 "interrupted"]
Decision = Literal["accept", "acceptForSession", "decline", "cancel", "edit"]  # edit: promptReview
ReportStatus = Literal["done", "blocked", "failed", "still running"]
LIVE_STATUSES = ("queued", "starting", "running", "waiting", "idle")

class ProjectInfo(TypedDict):
    root: str
    name: str
    hash: str


class TurnInfo(TypedDict):
    id: str
    status: Literal["inProgress", "completed", "interrupted", "failed"]
    error: Optional[str]


class Request(TypedDict, total=False):
    requestId: str
    kind: Literal["command", "fileChange", "userInput", "permissions", "promptReview"]
    command: Optional[str]
    cwd: Optional[str]
    reason: Optional[str]
    changes: Optional[list[dict[str, Any]]]
    questions: Optional[list[Any]]
    # promptReview (learn mode, core/notes.py): the prompt, the notetaker's rewrite, a
    # unified diff from one to the other, and the earlier learnings it was given.
    original: str
    augmented: str
    diff: str
    sources: list[dict[str, Any]]


class Learn(TypedDict):
    on: bool
    endedBecause: Optional[Literal["resolved", "off"]]
    openGaps: list[str]


class Usage(TypedDict):
    inputTokens: int
    outputTokens: int


class Report(TypedDict):
    session: str
    status: ReportStatus
    summary: str
    changed: list[str]
    verified: list[str]
    blockers: list[str]
    next: str


class SessionInfo(TypedDict):
    id: str
    name: str
    project: ProjectInfo
    bufferName: str
    status: Status
    threadId: Optional[str]
    title: Optional[str]
    createdAt: str
    updatedAt: str
    startedAt: Optional[str]
    turnStartedAt: Optional[str]
    finishedAt: Optional[str]
    turns: int
    lastTurn: Optional[TurnInfo]
    pending: list[Request]
    changedFiles: list[str]
    usage: Usage
    error: Optional[str]
    report: Optional[Report]
    live: bool
    owner: Optional[dict[str, int]]
    queuedPrompts: int
    model: Optional[str]
    sandbox: str
    approvalPolicy: str
    pid: Optional[int]
    headline: str
    rank: int
    effort: Optional[str]
    storageError: Optional[str]
    retry: Optional[dict[str, Any]]
    notes: bool
    notesError: Optional[str]
    learn: Optional[Learn]
    isolation: Literal["shared", "worktree"]
    worktree: Optional[dict[str, Any]]
    role: Literal["worker", "explorer", "verifier"]
    writeScope: list[str]
    overlaps: list[str]
    version: int


class ChangedNotification(TypedDict):
    session: SessionInfo


class OutputNotification(TypedDict):
    id: str
    items: list[dict[str, Any]]


class RequestNotification(TypedDict):
    id: str
    request: Request


class FinishedNotification(TypedDict):
    session: SessionInfo
    report: Report
    text: str


CHANGED = "codex/session/changed"
OUTPUT = "codex/session/output"
REQUEST = "codex/session/request"
FINISHED = "codex/session/finished"
FORGOTTEN = "codex/session/forgotten"
OVERLAP = "codex/session/overlap"
SHOW_MESSAGE = "window/showMessage"

NOTIFICATIONS: dict[str, type] = {
    "codex/session/changed": ChangedNotification,
    "codex/session/output": OutputNotification,
    "codex/session/request": RequestNotification,
    "codex/session/finished": FinishedNotification,
}


class Encoded:
    """Params or a result that are JSON text already (spliced, not encoded again).

    A holder rather than a bytes subclass: making one of those copies its bytes again.
    """

    __slots__ = ("json",)

    def __init__(self, json: bytes) -> None:
        self.json = json


class JsonString:
    """A JSON string literal, quotes included, as Codex wrote it (a command's output): a view
    into the line it came in, neither decoded nor copied."""

    __slots__ = ("json",)

    def __init__(self, json: memoryview | bytes) -> None:
        self.json = json

    def text(self) -> str:
        return orjson.loads(self.json)


def json_default(value: Any) -> Any:
    """orjson's `default` for messages that may hold a JsonString."""
    if isinstance(value, JsonString):
        return orjson.Fragment(bytes(value.json))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def plain(params: Any) -> Any:
    """Params as Python values, whether they were encoded already or not."""
    return orjson.loads(params.json) if isinstance(params, Encoded) else params
