"""What comes in: pydantic models of every method's params, validated on the way in.

A problem becomes -32602 with a message naming the field by its wire name.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from ..errors import InvalidParams
from ..wire import Decision, Status

Sandbox = Literal["read-only", "workspace-write", "danger-full-access"]
ApprovalPolicy = Literal["untrusted", "on-failure", "on-request", "never"]


def _no_lone_surrogates(value: Any) -> Any:
    """Text that cannot be encoded as UTF-8 would fail later, half-way through."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
        if "\0" in value:
            raise ValueError("must not hold a NUL character")
    return value


class Params(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _no_lone_surrogates(value)


class InitOptions(Params):
    state_dir: Optional[str] = None
    codex_command: Optional[list[str]] = Field(default=None, min_length=1)
    codex_args: list[str] = Field(default_factory=list)  # appended to the Codex command
    max_sessions_per_project: int = Field(default=10, ge=1, le=1000)
    max_running: int = Field(default=5, ge=1, le=1000)
    output_limit_bytes: int = Field(default=10 * 1024 * 1024, ge=4096)
    codex_process: Literal["perProject", "perSession"] = "perProject"
    isolation: Literal["shared", "worktree"] = "shared"
    idle_exit_seconds: Optional[float] = Field(default=None, ge=0)
    codex_timeout: float = Field(default=30.0, gt=0, le=3600)  # seconds Codex may take to answer
    notes: bool = False  # the notetaker for the sessions this client starts
    # Set by `serve` from its own environment, so a daemon started by another client
    # still runs this client's Codex with this client's CODEX_HOME.
    client_env: dict[str, str] = Field(default_factory=dict)


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
    effort: Optional[str] = None
    sandbox: Sandbox = "workspace-write"
    approval_policy: ApprovalPolicy = "on-request"
    reuse: bool = True
    fresh: bool = False
    notes: Optional[bool] = None  # the notetaker (default: the client's `notes`)
    learn: Optional[bool] = None  # learn mode (turns notes on)
    isolation: Optional[Literal["shared", "worktree"]] = None  # default: the client's (shared)
    role: Literal["worker", "explorer", "verifier"] = "worker"
    write_scope: list[str] = Field(default_factory=list)


class ListParams(Params):
    project: Optional[str] = None
    status: Optional[list[Status]] = None
    all: bool = False
    waiting: bool = False
    fields: Optional[list[str]] = Field(default=None, max_length=64)  # only these (and id)


class ProjectParams(Params):
    project: str


class SendParams(SessionRef):
    text: str = Field(min_length=1)
    resume: bool = True


class RespondParams(SessionRef):
    request_id: str
    decision: Decision
    text: Optional[str] = None  # with decision `edit` (a promptReview): the prompt to send


class SwitchParams(SessionRef):
    """codex/session/notes and codex/session/learn."""

    on: bool


class LearningsParams(Params):
    project: str
    limit: int = Field(default=1000, ge=1, le=10000)


class RenameParams(SessionRef):
    new_name: str


class KillAllParams(Params):
    project: Optional[str] = None


class TranscriptParams(SessionRef):
    after: int = Field(default=0, ge=0)
    limit: int = Field(default=1000, ge=1, le=10000)


class ForkParams(SessionRef):
    new_name: str
    at_turn: Optional[int] = Field(default=None, ge=1)


class ReviewParams(Params):
    project: str
    target: Any = "uncommittedChanges"  # or {baseBranch} or {commit}; checked by the core
    name: Optional[str] = None


class SteerParams(SessionRef):
    text: str = Field(min_length=1)


class AdoptParams(Params):
    project: str
    thread_id: str = Field(min_length=1)
    name: str


class MergeParams(SessionRef):
    strategy: Literal["squash", "commit"] = "squash"


class DaemonStopParams(Params):
    only_if_idle: bool = False


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
        problem = first["msg"].removeprefix("Value error, ")
        if first["type"] == "missing":
            problem = "is required"
        elif "input" in first and first["type"] != "value_error":
            shown = repr(first["input"])
            problem = f"{problem} (got {shown[:80]})"
        raise InvalidParams(field, problem) from None
