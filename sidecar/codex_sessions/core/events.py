"""Codex's items and server requests, turned into transcript items and pending requests.

Pure functions over a session: no I/O, nothing sent. The runner decides what to
do with what they return.
"""

from __future__ import annotations

import os
from typing import Any

from ..wire import Request
from .report import summarise
from .session import Pending, Session

OUTPUT_KEEP_BYTES = 64 * 1024
REQUEST_KINDS = {"item/commandExecution/requestApproval": "command",
                 "item/fileChange/requestApproval": "fileChange",
                 "item/tool/requestUserInput": "userInput",
                 "item/permissions/requestApproval": "permissions"}


def command_text(item: dict[str, Any]) -> str:
    """A command as the user would type it: Codex wraps it in `bash -lc '...'`."""
    actions = item.get("commandActions") or []
    if len(actions) == 1 and actions[0].get("command"):
        return actions[0]["command"]
    command = item.get("command")
    return " ".join(command) if isinstance(command, list) else str(command or "")


def relative(session: Session, path: str) -> str:
    if os.path.isabs(path):
        rel = os.path.relpath(os.path.realpath(path), os.path.realpath(session.workdir))
        return path if rel.startswith("..") else rel
    return path


def file_changes(session: Session, item: dict[str, Any]) -> list[dict[str, str]]:
    changes = []
    for change in item.get("changes") or []:
        kind = change.get("kind")
        if isinstance(kind, dict):
            kind = kind.get("type")
        changes.append({"path": relative(session, change.get("path", "")), "kind": kind or "update"})
    return changes


def completed_item(session: Session, item: dict[str, Any],
                   announced: dict[str, list[dict[str, str]]]) -> dict[str, Any] | None:
    """The transcript item for a Codex `item/completed`, or None to skip it.

    `announced` holds the changes of file-change items as they started (Codex
    may not repeat them on completion).
    """
    kind = item.get("type")
    if kind == "agentMessage":
        # the report needs its first sentences only: do not keep a long message twice
        session.log.last_agent_text = summarise((item.get("text") or "")[:2000])
        return session.item("agent", text=item.get("text") or "", itemId=item.get("id"))
    if kind == "reasoning":
        parts = [*(item.get("summary") or []), *(item.get("content") or [])]
        text = "\n".join(p if isinstance(p, str) else p.get("text", "") for p in parts)
        return session.item("reasoning", text=text, itemId=item.get("id")) if text else None
    if kind == "commandExecution":
        command = command_text(item)
        exit_code = item.get("exitCode")
        output = item.get("aggregatedOutput") or ""
        if len(output) > OUTPUT_KEEP_BYTES:
            output = output[-OUTPUT_KEEP_BYTES:]
        session.log.add_command(command, exit_code)
        return session.item("command", command=command, cwd=item.get("cwd"), exitCode=exit_code,
                            output=output, status=item.get("status"), itemId=item.get("id"))
    if kind == "fileChange":
        changes = announced.pop(item.get("id", ""), None) or file_changes(session, item)
        if item.get("status") not in (None, "completed"):
            return None
        session.note_changed([c["path"] for c in changes])
        return session.item("fileChange", changes=changes, itemId=item.get("id"))
    return None


def new_request(session: Session, codex_id: Any, method: str, params: dict[str, Any],
                announced: dict[str, list[dict[str, str]]]) -> Pending | None:
    """Register a Codex server request; None if it is not one a user answers."""
    kind = REQUEST_KINDS.get(method)
    if kind is None:
        return None
    session.request_counter += 1
    request_id = f"r{session.request_counter}"
    wire = Request(requestId=request_id, kind=kind, reason=params.get("reason"),  # type: ignore[typeddict-item]
                   cwd=params.get("cwd"))
    if kind == "command":
        wire["command"] = command_text(params)
    elif kind == "fileChange":
        wire["changes"] = announced.get(params.get("itemId", ""), [])
    elif kind == "userInput":
        wire["questions"] = params.get("questions") or []
    pending = Pending(codex_id, wire, params)
    session.pending[request_id] = pending
    return pending


def request_item(session: Session, pending: Pending, decision: str | None) -> dict[str, Any]:
    """The transcript item of a request: when it is asked, and again when it is answered."""
    wire = pending.wire
    return session.item("request", requestId=wire["requestId"], requestKind=wire["kind"],
                        command=wire.get("command"), cwd=wire.get("cwd"),
                        reason=wire.get("reason"), changes=wire.get("changes"), decision=decision)


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
