"""A scripted OpenAI Responses API server on 127.0.0.1, for tests and the demo.

Codex talks to it as to a real model. What the "model" does is read from the
latest user prompt, one directive per line, so parallel sessions never share
a script:

    stream: TEXT         stream TEXT in word-sized deltas
    stream-bytes: N      stream about N bytes of text (chunks of 4 KiB)
    run: CMD             call the shell tool with CMD, then summarise its exit code
    run-approved: CMD    the same, asking for escalated permissions (approval)
    slow: SECONDS        stream one word every 0.2 s for SECONDS (a turn to cancel)
    fail                 answer HTTP 500
    say: TEXT            answer with TEXT in one piece

A prompt without a directive is answered with "Done: <first line>". After a
tool call, the next request carries its output and is answered by the prompt's
next directive, or with a summary of the output when there is none (so
`run: make` then `slow: 5` runs a command, then streams slowly). Every request
body is kept in `requests` so tests can check the history Codex sent.

The notetaker (core/notes.py) is recognised by the marker its prompts begin with.
It answers from `notetaker`, a queue a test may fill (each entry is the answer's
text, or "fail": HTTP 500 to that request and to Codex's retries of it), and otherwise by these directives, read from the
task's prompt that the notetaker quotes (so the task's own model ignores them):

    note-gap: TEXT       the entry's gap (added to the open gaps)
    note-takeaway: TEXT  the entry's takeaway
    note-resolved        no gap is left open
    note-fail            every notetaker request about this prompt fails (HTTP 500)
    note-slow: SECONDS   the notetaker takes that long to answer about this prompt
    rewrite: TEXT        learn mode's rewrite of this prompt
    rewrite-fail         the rewrite fails (HTTP 500)

Without them an entry says what the prompt's first line was and that nothing was
missing, a rewrite appends the learnings it was given (or keeps the prompt when
there are none), and a summary lists the entries' first lines.
"""

from __future__ import annotations

import collections
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator


def provider_flags(base_url: str) -> list[str]:
    """The Codex `-c` flags that point it at a model server at `base_url`."""
    provider = (
        '{name="mock",base_url="%s",wire_api="responses",'
        "request_max_retries=0,stream_max_retries=2}" % base_url
    )
    return [
        "-c", "model_provider=mock",
        "-c", f"model_providers.mock={provider}",
        "-c", "model=mock-model",
    ]


@dataclass
class Reply:
    """One scripted answer: SSE events with optional pauses, or an HTTP error."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    http_status: int = 200


def _last_user_text(body: dict[str, Any]) -> str:
    for item in reversed(body.get("input") or []):
        if item.get("type") == "message" and item.get("role") == "user":
            parts = item.get("content") or []
            return "\n".join(p.get("text", "") for p in parts if isinstance(p, dict))
    return ""


def _pending_tool_output(body: dict[str, Any]) -> dict[str, Any] | None:
    """The function_call_output that ends the input, if the model owes a reply to it."""
    items = body.get("input") or []
    if items and items[-1].get("type") == "function_call_output":
        return items[-1]
    return None


NOTETAKER_MARKER = "codex-sessions notetaker"  # core/notes.py MARKER
NOTETAKER_KEYS = {"note-gap", "note-takeaway", "note-resolved", "note-fail", "note-slow",
                  "rewrite", "rewrite-fail"}


def _section(text: str, tag: str) -> str:
    """The text between <tag> and </tag> in a notetaker prompt ("" if there is none)."""
    found = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.S)
    return found.group(1) if found else ""


def _notetaker_directives(task_prompt: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in task_prompt.splitlines():
        key, _, value = line.strip().partition(":")
        if key.strip().lower() in NOTETAKER_KEYS:
            found.setdefault(key.strip().lower(), value.strip())
    return found


def _directives(prompt: str) -> list[tuple[str, str]]:
    found = []
    for line in prompt.splitlines():
        key, sep, value = line.strip().partition(":")
        key = key.strip().lower()
        if key in {"stream", "stream-bytes", "run", "run-approved", "slow", "say"} and sep:
            found.append((key, value.strip()))
        elif key == "fail":
            found.append((key, ""))
    return found


class Script:
    """Turns one request body into a Reply."""

    def __init__(self) -> None:
        self._ids = iter(range(1, 1 << 62))
        self.notetaker: collections.deque[str] = collections.deque()
        self._failing_turns: set[str] = set()  # Codex retries a failed turn's request: fail those too

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def reply(self, body: dict[str, Any]) -> Reply:
        prompt = _last_user_text(body)
        if prompt.startswith(NOTETAKER_MARKER):
            return self._notetaker(prompt, _turn_of(body))
        output = _pending_tool_output(body)
        directives = _directives(prompt)
        if output is not None:
            done = _tool_outputs_since_prompt(body)
            if done >= len(directives):
                return self._message([f"Command finished: {_summarise_output(output)}"])
            directives = directives[done:]
        for key, value in directives:
            if key == "fail":
                return Reply(http_status=500)
            if key == "say":
                return self._message([value])
            if key == "stream":
                words = value.split(" ")
                return self._message([w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)])
            if key == "stream-bytes":
                total = int(value)
                chunk = ("lorem ipsum dolor sit amet " * 160)[:4095] + "\n"
                pieces = [chunk] * (total // len(chunk)) + [chunk[: total % len(chunk)]]
                return self._message([p for p in pieces if p])
            if key == "slow":
                count = max(1, round(float(value) / 0.2))
                return self._message(["tick "] * count, pause=0.2)
            if key in {"run", "run-approved"}:
                return self._tool_call(value, escalate=key == "run-approved")
        first = prompt.strip().splitlines()[0] if prompt.strip() else ""
        return self._message([f"Done: {first}"])

    def _notetaker(self, prompt: str, turn: str | None) -> Reply:
        """The notetaker's answer: queued by a test, else scripted by the task's prompt."""
        if turn is not None and turn in self._failing_turns:
            return Reply(http_status=500)
        if self.notetaker:
            answer = self.notetaker.popleft()
            if answer == "fail":
                if turn is not None:
                    self._failing_turns.add(turn)
                return Reply(http_status=500)
            return self._message([answer])
        kind = prompt.splitlines()[0].rpartition(":")[2].strip()
        task = _section(prompt, "prompt")
        script = _notetaker_directives(task)
        if "note-fail" in script or (kind == "rewrite" and "rewrite-fail" in script):
            return Reply(http_status=500)
        reply = self._notetaker_answer(kind, prompt, task, script)
        if script.get("note-slow"):
            reply.events.insert(0, (float(script["note-slow"]), reply.events.pop(0)[1]))
        return reply

    def _notetaker_answer(self, kind: str, prompt: str, task: str, script: dict[str, str]) -> Reply:
        first = task.strip().splitlines()[0] if task.strip() else "(no prompt)"
        if kind == "rewrite":
            learned = [line for line in _section(prompt, "learnings").splitlines()
                       if line.startswith("[L")]
            text = script.get("rewrite") or (
                task + "\n\nLearned earlier in this project:\n" + "\n".join(f"- {x}" for x in learned)
                if learned else task)
            return self._message([json.dumps({"prompt": text})])
        if kind == "summary":
            notes = [line[len("- Prompt: "):] for line in _section(prompt, "notes").splitlines()
                     if line.startswith("- Prompt: ")]
            return self._message([json.dumps({
                "highlights": [f"worked on: {n}" for n in notes] or ["nothing was noted"],
                "unresolved": [], "nextRepetitions": ["repeat the last task without help"]})])
        gaps = [line[2:] for line in _section(prompt, "open-gaps").splitlines()
                if line.startswith("- ")]
        gap = script.get("note-gap") or "none"
        if gap != "none":
            gaps.append(gap)
        outcome = _section(prompt, "outcome").splitlines()
        status = next((line for line in outcome if line.startswith("Status:")), "Status: unknown")
        return self._message([json.dumps({
            "done": f"Worked on: {first}", "gap": gap, "outcome": status,
            "takeaway": script.get("note-takeaway") or "Nothing new to remember.",
            "openGaps": [] if "note-resolved" in script else gaps})])

    def _message(self, pieces: list[str], pause: float = 0.0) -> Reply:
        rid, mid = self._id("resp"), self._id("msg")
        events: list[tuple[float, dict[str, Any]]] = [
            (0.0, {"type": "response.created", "response": {"id": rid}}),
            (0.0, {"type": "response.output_item.added", "output_index": 0,
                   "item": {"type": "message", "role": "assistant", "id": mid, "content": []}}),
        ]
        for piece in pieces:
            events.append((pause, {"type": "response.output_text.delta", "item_id": mid,
                                   "output_index": 0, "content_index": 0, "delta": piece}))
        text = "".join(pieces)
        events.append((0.0, {"type": "response.output_item.done", "output_index": 0,
                             "item": {"type": "message", "role": "assistant", "id": mid,
                                      "content": [{"type": "output_text", "text": text}]}}))
        events.append((0.0, _completed(rid)))
        return Reply(events)

    def _tool_call(self, command: str, escalate: bool) -> Reply:
        rid = self._id("resp")
        args: dict[str, Any] = {"cmd": command}
        if escalate:
            args["sandbox_permissions"] = "require_escalated"
            args["justification"] = f"Needs approval to run: {command}"
        item = {"type": "function_call", "id": self._id("fc"), "call_id": self._id("call"),
                "name": "exec_command", "arguments": json.dumps(args)}
        return Reply([
            (0.0, {"type": "response.created", "response": {"id": rid}}),
            (0.0, {"type": "response.output_item.done", "output_index": 0, "item": item}),
            (0.0, _completed(rid)),
        ])


def _turn_of(body: dict[str, Any]) -> str | None:
    """The id of the Codex turn a request belongs to (its retries carry the same)."""
    try:
        meta = json.loads((body.get("client_metadata") or {}).get("x-codex-turn-metadata") or "{}")
    except ValueError:
        return None
    return meta.get("turn_id") if isinstance(meta, dict) else None


def _tool_outputs_since_prompt(body: dict[str, Any]) -> int:
    """How many tool calls of this turn have run (outputs after the last user message)."""
    count = 0
    for item in reversed(body.get("input") or []):
        if item.get("type") == "message" and item.get("role") == "user":
            break
        count += item.get("type") == "function_call_output"
    return count


def _completed(rid: str) -> dict[str, Any]:
    return {"type": "response.completed",
            "response": {"id": rid, "usage": {"input_tokens": 10, "output_tokens": 5,
                                              "total_tokens": 15}}}


def _summarise_output(item: dict[str, Any]) -> str:
    output = item.get("output")
    if isinstance(output, list):
        output = " ".join(p.get("text", "") for p in output if isinstance(p, dict))
    lines = str(output or "").strip().splitlines()
    for line in lines:  # Codex prefixes the output with "Chunk ID: ...", "Wall time: ..."
        if "exit code" in line.lower() or "exited with" in line.lower():
            return line.strip()[:200]
    return lines[0][:200] if lines else "no output"


class ModelServer:
    """The scripted server, run on a background thread; use as a context manager."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def notetaker(self) -> "collections.deque[str]":
        """Answers for the notetaker's next requests, in order ("fail": HTTP 500)."""
        return self.script.notetaker

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def codex_flags(self) -> list[str]:
        return provider_flags(self.base_url)

    def start(self) -> "ModelServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            return self.script.reply(body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                body = b'{"data":[],"object":"list"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                if not self.path.rstrip("/").endswith("/responses"):
                    self.send_error(404)
                    return
                reply = server._record(body)
                if reply.http_status != 200:
                    payload = b'{"error":{"message":"scripted failure","type":"server_error"}}'
                    self.send_response(reply.http_status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for chunk in _sse(reply):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # Codex hung up, e.g. the turn was interrupted
                self.close_connection = True

        return Handler


def _sse(reply: Reply) -> Iterator[bytes]:
    for pause, event in reply.events:
        if pause:
            time.sleep(pause)
        yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
