"""Reports: what a turn did, built from what the sidecar observed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..wire import Report


@dataclass
class TurnLog:
    """What the sidecar saw during one turn."""

    commands: dict[str, int | None] = field(default_factory=dict)  # last exit code per command
    changed: list[str] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    last_agent_text: str = ""

    def add_changed(self, paths: list[str]) -> None:
        for path in paths:
            if path not in self.changed:
                self.changed.append(path)

    def add_command(self, command: str, exit_code: int | None) -> None:
        self.commands.pop(command, None)  # keep the order of last runs
        self.commands[command] = exit_code


def summarise(text: str, limit: int = 300) -> str:
    """The first one to three sentences of `text`, on one line."""
    flat = " ".join(text.split())
    sentences = re.split(r"(?<=[.!?])\s+", flat)
    summary = " ".join(sentences[:3])
    return summary if len(summary) <= limit else summary[: limit - 1].rstrip() + "…"


def build_report(name: str, turn_status: str | None, log: TurnLog,
                 pending: list[str], session_error: str | None,
                 overlaps: list[str] = ()) -> Report:  # type: ignore[assignment]
    """The report of the last turn; `turn_status` is Codex's, None while it runs."""
    blockers = [f"waiting for approval: {p}" for p in pending]
    blockers += list(overlaps)
    blockers += [f"declined: {d}" for d in log.declined]
    blockers += [f"`{cmd}` exited {code}" for cmd, code in log.commands.items()
                 if code not in (0, None)]
    blockers += log.errors
    if session_error and turn_status != "completed":
        blockers.append(session_error)
    if turn_status == "interrupted":
        blockers.append("the turn was interrupted")
    verified = [f"{cmd} (exit 0)" for cmd, code in log.commands.items() if code == 0]

    if turn_status is None:
        status = "blocked" if pending else "still running"
    elif turn_status == "failed" or session_error:
        status = "failed"
    elif blockers:
        status = "blocked"
    else:
        status = "done"

    summary = summarise(log.last_agent_text) if log.last_agent_text else {
        "done": "The turn completed without a message.",
        "failed": "The turn failed before the agent answered.",
        "blocked": "The turn stopped before it was done.",
        "still running": "The turn is still running.",
    }[status]
    return Report(session=name, status=status, summary=summary, changed=list(log.changed),
                  verified=verified, blockers=blockers, next=_next_step(status, log, pending))


def _next_step(status: str, log: TurnLog, pending: list[str]) -> str:
    if pending:
        return f"Answer the approval request for {pending[0]}."
    if status == "failed":
        return "Read the error, then resume the session or start a new one."
    if status == "blocked":
        failing = [cmd for cmd, code in log.commands.items() if code not in (0, None)]
        if failing:
            return f"Look at why `{failing[0]}` failed and send a follow-up."
        return "Send a follow-up prompt to continue."
    if status == "still running":
        return "Wait for the turn to finish, or cancel it."
    if log.changed:
        return f"Review the changes in {', '.join(log.changed[:3])}" + (
            f" and {len(log.changed) - 3} more." if len(log.changed) > 3 else ".")
    return "Send the next prompt, or kill the session."


def render(report: Report) -> str:
    """The report as the protocol's plain text."""
    return "\n".join([
        f"Session: {report['session']}",
        f"Status: {report['status']}",
        f"Summary: {report['summary']}",
        f"Changed: {', '.join(report['changed']) or 'none'}",
        f"Verified: {', '.join(report['verified']) or 'none'}",
        f"Blockers: {'; '.join(report['blockers']) or 'none'}",
        f"Next: {report['next']}",
    ])
