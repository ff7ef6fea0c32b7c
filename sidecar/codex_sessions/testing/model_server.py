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
tool call, the next request carries its output and is answered with a summary.
Every request body is kept in `requests` so tests can check the history Codex
sent.
"""

from __future__ import annotations

import json
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

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def reply(self, body: dict[str, Any]) -> Reply:
        output = _pending_tool_output(body)
        if output is not None:
            return self._message([f"Command finished: {_summarise_output(output)}"])
        prompt = _last_user_text(body)
        for key, value in _directives(prompt):
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
