"""What goes out to the clients: paced, in order, and only once it is saved.

Per session, streamed pieces gather into one `codex/session/output`
notification, sent at once when none went out in the last 50 ms and otherwise at
the end of that interval. A transcript item goes out in the loop's next step, with
the pieces gathered before it: the end of a stream is never held back. A `changed` rides
along with the next batch (at once, when nothing is waiting). Other notifications
(`request`, `finished`) follow the batch they came after.

Nothing reaches a client before the store committed it: each batch waits for the
store's barrier (or for the store to declare it cannot save, which the user is
told about). Items are spliced into the notification from the JSON the
transcript already made, and a command's output from the JSON Codex wrote: neither
is encoded again, and the notification is joined in one copy.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from ..store import Store
from ..wire import CHANGED, OUTPUT, Encoded, JsonString

log = logging.getLogger(__name__)

OUTPUT_INTERVAL = 0.05  # at most about 20 output notifications a second per session

Emit = Callable[[str, Any], None]


@dataclass
class _Box:
    """What one session has to send."""

    items: list[bytes] = field(default_factory=list)
    piece: dict[str, Any] | None = None  # the streamed piece being gathered
    pieces: list[dict[str, Any]] = field(default_factory=list)
    dirty: bool = False
    after: list[tuple[str, Any]] = field(default_factory=list)
    timer: asyncio.Handle | None = None
    due: float = 0.0  # when the timer fires (uvloop's handle for a past time does not say)
    last_output: float = 0.0


class Outbox:
    def __init__(self, emit: Emit, store: Store, wire_of: Callable[[str], bytes | None]) -> None:
        self.emit = emit
        self.store = store
        self.wire_of = wire_of  # a session's object as JSON, by id
        self._boxes: dict[str, _Box] = {}
        self._sending: collections.deque[tuple[asyncio.Future[None], list[tuple[str, Any]]]] = \
            collections.deque()
        self._sender: asyncio.Task[None] | None = None

    def _box(self, session_id: str) -> _Box:
        box = self._boxes.get(session_id)
        if box is None:
            box = self._boxes[session_id] = _Box()
        return box

    def item(self, session_id: str, encoded: bytes) -> None:
        """A transcript item (already numbered and queued for the store): sent in the next
        step of the loop, with whatever else Codex's same read brought (a turn's end)."""
        box = self._box(session_id)
        box.piece = None
        box.items.append(encoded)
        self._schedule_at(session_id, box, asyncio.get_running_loop().time())

    def piece(self, session_id: str, kind: str, item_id: str | None, text: str | JsonString,
              turn_id: str | None) -> None:
        """A streamed piece; consecutive pieces of one item within a batch are joined."""
        box = self._box(session_id)
        last = box.piece
        if last is not None and last["kind"] == kind and last["itemId"] == item_id:
            last["parts"].append(text)
        else:
            box.piece = {"kind": kind, "itemId": item_id, "parts": [text], "turnId": turn_id,
                         "at": len(box.items)}
            box.pieces.append(box.piece)
        self._paced(session_id, box)

    def changed(self, session_id: str) -> None:
        box = self._box(session_id)
        box.dirty = True
        self._schedule_at(session_id, box, asyncio.get_running_loop().time())

    def then(self, session_id: str, method: str, params: Any) -> None:
        """Send `method` right after what is queued for the session now."""
        self._box(session_id).after.append((method, params))
        self.flush(session_id)

    def _paced(self, session_id: str, box: _Box) -> None:
        self._schedule_at(session_id, box, box.last_output + OUTPUT_INTERVAL)

    def _schedule_at(self, session_id: str, box: _Box, when: float) -> None:
        """Flush at `when` (loop time; a past one: at once) unless a flush is due before."""
        if box.timer is not None:
            if box.due <= when:
                return
            box.timer.cancel()
        box.due = when
        box.timer = asyncio.get_running_loop().call_at(when, self.flush, session_id)

    def flush(self, session_id: str) -> None:
        """Queue everything the session has for sending, behind the store's barrier."""
        box = self._boxes.get(session_id)
        if box is None:
            return
        if box.timer is not None:
            box.timer.cancel()
            box.timer = None
        notes: list[tuple[str, Any]] = []
        if box.items or box.pieces:
            notes.append((OUTPUT, self._output(session_id, box)))
        if box.dirty:
            wire = self.wire_of(session_id)
            if wire is not None:
                notes.append((CHANGED, Encoded(b'{"session":' + wire + b"}")))
        notes += box.after
        box.items, box.pieces, box.piece, box.dirty, box.after = [], [], None, False, []
        if not notes:
            return
        self._sending.append((self.store.barrier(), notes))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())

    def _output(self, session_id: str, box: _Box) -> Encoded:
        """The output notification: items as they were encoded, pieces in their place."""
        entries: list[list[bytes | memoryview]] = []
        at = 0
        for piece in box.pieces:
            entries += ([encoded] for encoded in box.items[at:piece["at"]])
            at = piece["at"]
            entries.append([b'{"kind":"', piece["kind"].encode(), b'","itemId":',
                            orjson.dumps(piece["itemId"]), b',"text":',
                            *self._text(session_id, piece), b"}"])
        entries += ([encoded] for encoded in box.items[at:])
        chunks: list[bytes | memoryview] = [b'{"id":', orjson.dumps(session_id), b',"items":[']
        for n, entry in enumerate(entries):
            if n:
                chunks.append(b",")
            chunks += entry
        chunks.append(b"]}")
        if box.pieces:  # only streaming is paced; a status or prompt must not delay it
            box.last_output = asyncio.get_running_loop().time()
        return Encoded(b"".join(chunks))

    def _text(self, session_id: str, piece: dict[str, Any]) -> list[bytes | memoryview]:
        """The piece's text as one JSON string, in chunks: Codex's JSON strings are not decoded."""
        parts = piece["parts"]
        if piece["kind"] == "agentDelta":  # kept, so an interrupted turn keeps its text
            text = "".join(parts)  # Codex's agent text comes decoded: only command output stays JSON
            self.store.append_piece(session_id, piece["itemId"], piece["turnId"], text)
            return [orjson.dumps(text)]
        return [b'"', *((p.json if isinstance(p, JsonString) else memoryview(orjson.dumps(p)))[1:-1]
                        for p in parts), b'"']

    async def _send(self) -> None:
        while self._sending:
            barrier, notes = self._sending[0]
            await barrier
            self._sending.popleft()
            for method, params in notes:
                try:
                    self.emit(method, params)
                except Exception:  # one client's trouble must not silence the rest
                    log.exception("sending %s", method)

    def forget(self, session_id: str) -> None:
        box = self._boxes.pop(session_id, None)
        if box is not None and box.timer is not None:
            box.timer.cancel()

    async def drain(self) -> None:
        """Send everything queued (at shutdown)."""
        for session_id in list(self._boxes):
            self.flush(session_id)
        if self._sender is not None:
            await asyncio.shield(self._sender)
