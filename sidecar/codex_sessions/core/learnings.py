"""What the notetaker (notes.py) is given and what it answers, as text.

Its prompts (each begins with MARKER, by which the scripted model knows it), the
JSON schemas Codex holds its answers to, checking an answer, and the Markdown of
learnings.md, of the project's learnings and of a review's diff. No I/O.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from .projects import Project
from .session import now


class NotesFailed(Exception):
    """The notetaker could not answer (Codex refused, failed, timed out, or broke the template)."""


MARKER = "codex-sessions notetaker"  # the first line of every notetaker prompt
PROMPT_LIMIT, ACTIONS_LIMIT = 8000, 12000  # characters of a turn given to the notetaker

_TEXT = {"type": "string"}
_LIST = {"type": "array", "items": {"type": "string"}}


def _schema(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


ENTRY_SCHEMA = _schema(done=_TEXT, gap=_TEXT, outcome=_TEXT, takeaway=_TEXT, openGaps=_LIST)
REWRITE_SCHEMA = _schema(prompt=_TEXT)
SUMMARY_SCHEMA = _schema(highlights=_LIST, unresolved=_LIST, nextRepetitions=_LIST)

ENTRY_PROMPT = f"""{MARKER}: entry
You are the notetaker of a Codex session. You do not do the task: you watch one turn of
it and write a note that helps the user learn. Use only what is below; run no commands.

<prompt>
{{prompt}}
</prompt>
<actions>
{{actions}}
</actions>
<outcome>
{{outcome}}
</outcome>
<open-gaps>
{{open_gaps}}
</open-gaps>

Answer with a JSON object:
- done: what was done in this turn, in one or two sentences;
- gap: the gap in knowledge or the confusion this turn showed (the user's or the
  agent's), in one sentence, or "none";
- outcome: how the turn ended, in one sentence;
- takeaway: what to remember or do differently next time, in one sentence;
- openGaps: the gaps of this session still unresolved: those in <open-gaps> that this
  turn did not resolve, plus `gap` unless this turn resolved it; [] when none is left.
"""

REWRITE_PROMPT = f"""{MARKER}: rewrite
You are the notetaker of a Codex session. The user is about to send the prompt below to
a coding agent. Rewrite it so that it uses what was learned earlier in this project
(below): add the context, constraints and pitfalls that apply, keep the user's intent
and wording, add nothing that does not help. If nothing applies, return it unchanged.
Use only what is below; run no commands.

<prompt>
{{prompt}}
</prompt>
<learnings>
{{learnings}}
</learnings>

Answer with a JSON object: prompt: the prompt to send.
"""

SUMMARY_PROMPT = f"""{MARKER}: summary
You are the notetaker of a Codex session that has just ended. From your notes of its
turns and its last report below, write its closing summary. Use only what is below.

<notes>
{{notes}}
</notes>
<outcome>
{{outcome}}
</outcome>

Answer with a JSON object:
- highlights: the few moments of the session worth remembering, in order;
- unresolved: the questions and gaps still open ([] when none);
- nextRepetitions: what the user should practise or do again next time to make it stick.
"""


@dataclass
class TurnNote:
    """What the notetaker is given of one turn."""

    number: int
    turn_id: str | None
    prompt: str
    actions: str
    outcome: str
    attempts: int = 0


# ---- what the notetaker is given, and what it answers ---------------------------------------

def describe_actions(items: list[dict[str, Any]]) -> str:
    """A turn's items as the notetaker reads them: one line (or a few) each, bounded."""
    lines: list[str] = []
    for item in items:
        kind = item["kind"]
        if kind == "user" and item.get("steer"):
            lines.append(f"- the user added, while it ran: {_clip(item.get('text') or '', 1500)}")
        elif kind == "agent":
            lines.append(f"- the agent said: {_clip(item.get('text') or '', 1500)}")
        elif kind == "command":
            output = (item.get("output") or "").strip()
            lines.append(f"- ran `{item.get('command')}` -> exit {item.get('exitCode')}"
                         + (f"; output ends: {_clip(output[-600:], 600)}" if output else ""))
        elif kind == "fileChange":
            lines.append("- changed " + ", ".join(c["path"] for c in item.get("changes") or []))
        elif kind == "request" and item.get("requestKind") != "promptReview":
            what = item.get("command") or item.get("reason") or item.get("requestKind")
            lines.append(f"- asked the user about {what}: {item.get('decision') or 'asked'}")
        elif kind == "error":
            lines.append(f"- error: {_clip(item.get('text') or '', 400)}")
    text = "\n".join(lines)
    return text if len(text) <= ACTIONS_LIMIT else "…\n" + text[-ACTIONS_LIMIT:]


def _clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def parse_answer(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The notetaker's JSON answer, checked against `schema` (NotesFailed if it is not)."""
    body = text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.S)
    if fence:
        body = fence.group(1)
    try:
        answer = json.loads(body)
    except ValueError:
        raise NotesFailed(f"its answer is not the JSON asked for: {_clip(text, 120)!r}") from None
    if not isinstance(answer, dict):
        raise NotesFailed("its answer is not a JSON object")
    for key, spec in schema["properties"].items():
        value = answer.get(key)
        if spec["type"] == "string" and not isinstance(value, str):
            raise NotesFailed(f"its answer lacks {key!r} (text)")
        if spec["type"] == "array" and not (isinstance(value, list)
                                            and all(isinstance(v, str) for v in value)):
            raise NotesFailed(f"its answer lacks {key!r} (a list of texts)")
    return {key: answer[key] for key in schema["properties"]}


def entry_markdown(note: TurnNote, answer: dict[str, Any]) -> str:
    """One entry of learnings.md, in the fixed template."""
    first = note.prompt.strip().splitlines()[0] if note.prompt.strip() else ""
    return "\n".join([
        f"## Turn {note.number} · {now()}", "",
        f"- Turn id: {note.turn_id or 'unknown'}",
        f"- Prompt: {_clip(first, 160)}",
        f"- Done: {_clip(answer['done'], 1000)}",
        f"- Gap: {_clip(answer['gap'], 1000) or 'none'}",
        f"- Outcome: {_clip(answer['outcome'], 1000)}",
        f"- Takeaway: {_clip(answer['takeaway'], 1000)}", ""])


def summary_markdown(answer: dict[str, Any]) -> str:
    def listed(values: list[str]) -> list[str]:
        return [f"  - {_clip(v, 500)}" for v in values] or ["  - none"]
    return "\n".join([f"## Closing summary · {now()}", "", "- Timeline highlights:",
                      *listed(answer["highlights"]), "- Unresolved questions:",
                      *listed(answer["unresolved"]), "- Suggested next repetitions:",
                      *listed(answer["nextRepetitions"]), ""])


def project_markdown(project: Project, entries: list[dict[str, Any]]) -> str:
    sessions = {e["session_name"] for e in entries}
    out = [f"# Learnings in {project.name}", "", f"Project: {project.root}",
           f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'} from {len(sessions)} "
           f"session{'' if len(sessions) == 1 else 's'}, oldest first.", ""]
    for entry in entries:
        text = entry["text"].replace("## ", f"## {entry['session_name']} · ", 1)
        out += [text.rstrip(), ""]
    return "\n".join(out)


STOPWORDS = frozenset("the and for with that this from into then than have has had are was were "
                      "will would should could can not but you your our its they them what when "
                      "where which who how why all any each also just only please make sure".split())


def search_words(text: str, limit: int = 16) -> list[str]:
    """The words of a prompt worth matching: three letters or more, no stop words, no repeats."""
    words: list[str] = []
    for word in re.findall(r"\w{3,}", text.lower()):
        if word not in STOPWORDS and word not in words:
            words.append(word)
    return words[:limit]


def source_line(entry: dict[str, Any]) -> str:
    data = entry["data"]
    if entry["kind"] == "summary":
        return (f"[L{entry['id']}] session {entry['session_name']}, closing summary: unresolved: "
                + ("; ".join(data.get("unresolved") or []) or "none"))
    return (f"[L{entry['id']}] session {entry['session_name']}, turn {entry['turn']}: "
            f"{data.get('done', '')} Gap: {data.get('gap', 'none')}. "
            f"Takeaway: {data.get('takeaway', '')}")


def wire_source(entry: dict[str, Any]) -> dict[str, Any]:
    """A learning a rewrite was given, as `promptReview.sources` shows it."""
    data = entry["data"]
    return {"id": entry["id"], "sessionId": entry["session_id"], "sessionName": entry["session_name"],
            "turn": entry["turn"], "turnId": entry["turn_id"], "kind": entry["kind"],
            "at": entry["at"], "gap": data.get("gap"), "takeaway": data.get("takeaway"),
            "line": source_line(entry)}


def wire_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {"id": entry["id"], "sessionId": entry["session_id"], "sessionName": entry["session_name"],
            "turn": entry["turn"], "turnId": entry["turn_id"], "kind": entry["kind"],
            "at": entry["at"], "text": entry["text"], "fields": entry["data"]}


def unified_diff(original: str, augmented: str) -> str:
    """From the original to the rewrite, as `diff -u` shows it (every line ends with a newline)."""
    def lines(text: str) -> list[str]:
        return [line + "\n" for line in text.splitlines()]
    return "".join(difflib.unified_diff(lines(original), lines(augmented),
                                        fromfile="original", tofile="rewrite"))


def is_gap(gap: Any) -> bool:
    return isinstance(gap, str) and gap.strip().lower().rstrip(".") not in ("", "none")


def fenced(text: str, language: str = "") -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"
