"""The wire format: pydantic models of every params, result and notification.

Params are BaseModels, validated on the way in. Results and notifications are
TypedDicts: they describe what goes out without costing a model per message,
and the tests validate real traffic against them with a TypeAdapter.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, TypeVar

from typing_extensions import TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from .errors import InvalidParams

Status = Literal["queued", "starting", "running", "waiting", "idle", "failed", "stopped",
                 "interrupted"]
Decision = Literal["accept", "acceptForSession", "decline", "cancel"]
ReportStatus = Literal["done", "blocked", "failed", "still running"]


class Params(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True)


class InitOptions(Params):
    state_dir: Optional[str] = None
    codex_command: Optional[list[str]] = Field(default=None, min_length=1)
    codex_args: list[str] = Field(default_factory=list)  # appended to the Codex command
    max_sessions_per_project: int = Field(default=10, ge=1, le=1000)
    max_running: int = Field(default=5, ge=1, le=1000)
    output_limit_bytes: int = Field(default=10 * 1024 * 1024, ge=4096)


class SessionRef(Params):
    """Either `id`, or `project` and `name`."""

    id: Optional[str] = None
    project: Optional[str] = None
    name: str = "main"


class StartParams(Params):
    project: str
    name: str = "main"
    prompt: Optional[str] = None
    model: Optional[str] = None
    sandbox: Literal["read-only", "workspace-write", "danger-full-access"] = "workspace-write"
    approval_policy: Literal["untrusted", "on-failure", "on-request", "never"] = "on-request"
    reuse: bool = True


class ListParams(Params):
    project: Optional[str] = None
    status: Optional[list[Status]] = None
    all: bool = False


class ProjectParams(Params):
    project: str


class SendParams(SessionRef):
    text: str = Field(min_length=1)


class RespondParams(SessionRef):
    request_id: str
    decision: Decision


class RenameParams(SessionRef):
    new_name: str


class KillAllParams(Params):
    project: Optional[str] = None


class TranscriptParams(SessionRef):
    after: int = Field(default=0, ge=0)
    limit: int = Field(default=1000, ge=1, le=10000)


P = TypeVar("P", bound=BaseModel)


def parse(model: type[P], raw: Any) -> P:
    """Validate `raw` params; a problem becomes -32602 naming the field."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidParams("params", "must be an object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "params"
        problem = first["msg"]
        if first["type"] == "missing":
            problem = "is required"
        elif "input" in first and first["type"] != "missing":
            problem = f"{first['msg']} (got {first['input']!r})"
        raise InvalidParams(field, problem) from None


# ---- what goes out -------------------------------------------------------------------

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
    kind: Literal["command", "fileChange", "userInput", "permissions"]
    command: Optional[str]
    cwd: Optional[str]
    reason: Optional[str]
    changes: Optional[list[dict[str, Any]]]
    questions: Optional[list[Any]]


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


NOTIFICATIONS: dict[str, type] = {
    "codex/session/changed": ChangedNotification,
    "codex/session/output": OutputNotification,
    "codex/session/request": RequestNotification,
    "codex/session/finished": FinishedNotification,
}
