"""`codex-sessions export`: a session's record as files a person or a tool can read.

- user_actions.jsonl: what the user did (prompts, approval answers);
- agent_actions.jsonl: what the agent did (messages, commands, file changes, errors);
- learnings.md: a readable account (timeline, commands and results, changed files,
  errors and open questions).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

USER_KINDS = {"user"}
AGENT_KINDS = {"agent", "reasoning", "command", "fileChange", "error"}


def _is_user_action(item: dict[str, Any]) -> bool:
    return item["kind"] in USER_KINDS or (item["kind"] == "request" and item.get("decision"))


FILES = ("user_actions.jsonl", "agent_actions.jsonl", "learnings.md")


class ExportError(Exception):
    """The export would follow a link or overwrite a file; the message says which."""


def _open_private(path: Path, force: bool) -> Any:
    """A new file, 0600; never through a symlink; an existing file only with `force`."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ExportError(f"{path} exists; use --force to overwrite it") from None
    except OSError as exc:
        if path.is_symlink():
            raise ExportError(f"{path} is a symbolic link; refusing to write through it") from None
        raise ExportError(f"cannot write {path}: {exc.strerror}") from None
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


def export_session(session: dict[str, Any], items: list[dict[str, Any]], folder: Path,
                   force: bool = False) -> None:
    if folder.is_symlink():
        raise ExportError(f"{folder} is a symbolic link; refusing to write through it")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in FILES:  # check all before writing any
        target = folder / name
        if target.is_symlink():
            raise ExportError(f"{target} is a symbolic link; refusing to write through it")
        if target.exists() and not force:
            raise ExportError(f"{target} exists; use --force to overwrite it")
    with _open_private(folder / FILES[0], force) as user, \
            _open_private(folder / FILES[1], force) as agent:
        for item in items:
            if _is_user_action(item):
                user.write(json.dumps(item, ensure_ascii=False) + "\n")
            elif item["kind"] in AGENT_KINDS or item["kind"] == "request":
                agent.write(json.dumps(item, ensure_ascii=False) + "\n")
    with _open_private(folder / FILES[2], force) as notes:
        notes.write(learnings(session, items))


def learnings(session: dict[str, Any], items: list[dict[str, Any]]) -> str:
    out = [f"# Session {session['name']} in {session['project']['name']}", "",
           f"- Project: {session['project']['root']}",
           f"- Status: {session['status']}; turns: {session['turns']}",
           f"- Created {session['createdAt']}, last updated {session['updatedAt']}",
           f"- Tokens: {session['usage']['inputTokens']} in, {session['usage']['outputTokens']} out",
           "", "## Timeline", ""]
    for item in items:
        at = item.get("at", "")[11:19]
        kind = item["kind"]
        if kind == "user":
            out.append(f"- {at} **user**: {_one_line(item['text'])}")
        elif kind == "agent":
            out.append(f"- {at} agent: {_one_line(item['text'])}")
        elif kind == "command":
            out.append(f"- {at} ran `{item['command']}` → exit {item.get('exitCode')}")
        elif kind == "fileChange":
            out.append(f"- {at} changed " + ", ".join(c["path"] for c in item["changes"]))
        elif kind == "request":
            what = item.get("command") or item.get("requestKind")
            out.append(f"- {at} approval {item['requestId']} for `{what}`: "
                       + (item["decision"] or "asked"))
        elif kind == "error":
            out.append(f"- {at} error: {_one_line(item['text'])}")
    commands = [i for i in items if i["kind"] == "command"]
    out += ["", "## Commands and their results", ""]
    out += [f"- `{c['command']}`: exit {c.get('exitCode')}" for c in commands] or ["- none"]
    out += ["", "## Changed files", ""]
    out += [f"- {path}" for path in session["changedFiles"]] or ["- none"]
    errors = [i["text"] for i in items if i["kind"] == "error"]
    out += ["", "## Errors", ""] + ([f"- {_one_line(e)}" for e in errors] or ["- none"])
    open_questions = [f"approval pending: {p.get('command') or p.get('kind')}"
                      for p in session["pending"]]
    open_questions += (session.get("report") or {}).get("blockers", [])
    out += ["", "## Open questions", ""] + ([f"- {q}" for q in open_questions] or ["- none"])
    report = session.get("report")
    if report:
        out += ["", "## Last report", "", f"- Status: {report['status']}",
                f"- Summary: {report['summary']}", f"- Next: {report['next']}"]
    return "\n".join(out) + "\n"


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
