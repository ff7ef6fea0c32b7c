"""`codex-sessions export`: a session's record as files a person or a tool can read.

- user_actions.jsonl: what the user did (prompts, approval answers);
- agent_actions.jsonl: what the agent did (messages, commands, file changes, errors);
- learnings.md: a readable account (timeline, commands and results, changed files,
  errors and open questions), followed by the notetaker's entries when it kept any;
- augmented_turns.md: learn mode's reviews, when there were some.

The two action logs are copied from the session's documents folder (recorded as the
session ran, core/documents.py); a session recorded before there was one gets them
rendered from its transcript.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..core.documents import (AGENT_FILE, AUGMENTED_FILE, LEARNINGS_FILE, USER_FILE,
                              is_agent_action, is_user_action)

FILES = (USER_FILE, AGENT_FILE, LEARNINGS_FILE)


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


def _recorded(documents: Path | None, name: str) -> str | None:
    """A file of the session's documents folder, or None when there is none."""
    if documents is None or documents.is_symlink():
        return None
    path = documents / name
    try:
        return path.read_text(encoding="utf-8") if path.is_file() and not path.is_symlink() else None
    except OSError:
        return None


def export_session(session: dict[str, Any], items: list[dict[str, Any]], folder: Path,
                   force: bool = False, documents: Path | None = None) -> None:
    """Write the session's files into `folder`; `documents`: its documents folder, if any."""
    if folder.is_symlink():
        raise ExportError(f"{folder} is a symbolic link; refusing to write through it")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    augmented = _recorded(documents, AUGMENTED_FILE)
    for name in FILES + ((AUGMENTED_FILE,) if augmented is not None else ()):  # check all first
        target = folder / name
        if target.is_symlink():
            raise ExportError(f"{target} is a symbolic link; refusing to write through it")
        if target.exists() and not force:
            raise ExportError(f"{target} exists; use --force to overwrite it")
    user_log, agent_log = _recorded(documents, USER_FILE), _recorded(documents, AGENT_FILE)
    with _open_private(folder / USER_FILE, force) as user, \
            _open_private(folder / AGENT_FILE, force) as agent:
        if user_log is not None or agent_log is not None:
            user.write(user_log or "")
            agent.write(agent_log or "")
        else:
            for item in items:
                if is_user_action(item):
                    user.write(json.dumps(item, ensure_ascii=False) + "\n")
                elif is_agent_action(item):
                    agent.write(json.dumps(item, ensure_ascii=False) + "\n")
    notetaker = _recorded(documents, LEARNINGS_FILE)
    with _open_private(folder / LEARNINGS_FILE, force) as notes:
        notes.write(learnings(session, items))
        if notetaker:
            notes.write("\n---\n\n" + notetaker)
    if augmented is not None:
        with _open_private(folder / AUGMENTED_FILE, force) as out:
            out.write(augmented)


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
