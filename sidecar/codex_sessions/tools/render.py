"""Transcript items as terminal text, for `run`, `demo` and `show`."""

from __future__ import annotations

from typing import Any, TextIO

OUTPUT_LINES = 8


class TerminalView:
    """Writes one session's items and streamed pieces to a terminal, prefixed by name."""

    def __init__(self, out: TextIO, prefix: str = "") -> None:
        self.out = out
        self.prefix = prefix
        self._streamed: set[str] = set()
        self._mid_line = False

    def _line(self, text: str) -> None:
        if self._mid_line:
            self.out.write("\n")
            self._mid_line = False
        for line in text.splitlines() or [""]:
            self.out.write(f"{self.prefix}{line}\n")
        self.out.flush()

    def show(self, item: dict[str, Any]) -> None:
        kind = item.get("kind")
        if kind == "agentDelta":
            if not self._mid_line:
                self.out.write(self.prefix)
            self.out.write(item["text"].replace("\n", "\n" + self.prefix))
            self._mid_line = True
            self._streamed.add(item.get("itemId") or "")
            self.out.flush()
        elif kind == "agent":
            if item.get("itemId") in self._streamed:
                self._line("") if self._mid_line else None
                self._mid_line = False
            else:
                self._line(item.get("text", ""))
        elif kind == "user":
            self._line(f"> {item.get('text', '')}")
        elif kind == "command":
            self._line(f"$ {item.get('command')}  (exit {item.get('exitCode')})")
            tail = (item.get("output") or "").rstrip().splitlines()[-OUTPUT_LINES:]
            for line in tail:
                self._line(f"  | {line}")
        elif kind == "fileChange":
            for change in item.get("changes") or []:
                self._line(f"~ {change['path']} ({change['kind']})")
        elif kind == "request":
            if item.get("decision"):
                self._line(f"? {item['requestId']}: {item['decision']}")
            elif item.get("requestKind") == "promptReview":
                self._line(f"? {item['requestId']}: learn mode rewrote the prompt; review it")
            else:
                what = item.get("command") or item.get("requestKind")
                self._line(f"? {item['requestId']} needs approval: {what}"
                           + (f" ({item['reason']})" if item.get("reason") else ""))
        elif kind == "error":
            self._line(f"! {item.get('text')}")
        elif kind == "reasoning":
            self._line(f"(thinking) {item.get('text', '')}")


def review_text(request: dict[str, Any]) -> str:
    """A promptReview for the terminal: what it drew on, and the diff."""
    lines = ["", "-- learn mode rewrote your prompt --"]
    sources = request.get("sources") or []
    if sources:
        lines.append("from what was learned earlier:")
        lines += [f"  {source['line']}" for source in sources]
    lines += ["", request.get("diff") or "(no change)"]
    return "\n".join(lines)
