"""Server-Sent Events: every notification the editors get, numbered, with a replay buffer.

The daemon hands each notification to `EventLog.publish` as it hands it to its
editor connections. Each becomes one SSE event, encoded once:

    id: <run>-<n>
    event: changed | output | request | finished | notice
    data: <the notification's params, as JSON>

`<run>` is drawn when the daemon starts, so an id from an earlier daemon is
never taken for one of ours. The last events are kept (bounded by count and
bytes); a client that reconnects with `Last-Event-ID` gets what it missed. When
that is no longer kept (or the id is from another run), it gets a `reset` event
instead: it should read the sessions again (`GET /api/sessions`).

A new subscriber first catches up from the buffer (aiohttp writes that). Once it
is level, it is live: `publish` writes each event to its connection at once, in
the same call that writes it to the editors, as the Hub does (a task woken per
event would come a few loop turns later). A live subscriber that stops reading
is dropped once 8 MiB wait for it; it reconnects, and catches up or gets `reset`.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import secrets
from typing import Any, Sequence

import orjson
from aiohttp import HttpVersion11, web

from ..wire import CHANGED, FINISHED, OUTPUT, REQUEST, SHOW_MESSAGE, Encoded

EVENT_NAMES = {CHANGED: "changed", OUTPUT: "output", REQUEST: "request", FINISHED: "finished",
               SHOW_MESSAGE: "notice"}
KEEP_EVENTS = 10_000
KEEP_BYTES = 16 * 1024 * 1024
HEARTBEAT = 15.0  # seconds between comments on a quiet stream: finds dead clients
RETRY_MS = 1000  # what EventSource waits before it reconnects
BEHIND_LIMIT = 8 * 1024 * 1024  # bytes waiting for a live subscriber: it is not reading


class Subscriber:
    """A live subscriber: events are written straight to its connection."""

    def __init__(self, transport: asyncio.Transport, output: bool, chunked: bool) -> None:
        self.transport, self.output, self.chunked = transport, output, chunked
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def send(self, data: bytes) -> None:
        if self.ended.done():
            return
        if self.transport.is_closing():
            self.end()
            return
        # the response is chunked (HTTP/1.1): each write is one chunk, as aiohttp frames them
        self.transport.write(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)
        if self.transport.get_write_buffer_size() > BEHIND_LIMIT:
            self.transport.close()
            self.end()

    def end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


class EventLog:
    def __init__(self, keep_events: int = KEEP_EVENTS, keep_bytes: int = KEEP_BYTES) -> None:
        self.run = secrets.token_hex(4)
        self.keep_events, self.keep_bytes = keep_events, keep_bytes
        self.last = 0  # the number of the newest event
        self._events: collections.deque[tuple[bool, bytes]] = collections.deque()  # (output?, frame)
        self._bytes = 0
        self._live: set[Subscriber] = set()
        self.subscribers = 0
        self.closing = False

    @property
    def first(self) -> int:
        """The number of the oldest event kept (last + 1 when none is)."""
        return self.last - len(self._events) + 1

    def event_id(self, n: int) -> str:
        return f"{self.run}-{n}"

    def publish(self, method: str, params: Any) -> None:
        name = EVENT_NAMES.get(method)
        if name is None:
            return
        data = params.json if isinstance(params, Encoded) else orjson.dumps(params)
        self.last += 1
        frame = b"id: %s\nevent: %s\ndata: %s\n\n" % (self.event_id(self.last).encode(),
                                                       name.encode(), data)
        self._events.append((name == "output", frame))
        self._bytes += len(frame)
        while len(self._events) > self.keep_events or (
                self._bytes > self.keep_bytes and len(self._events) > 1):
            self._bytes -= len(self._events.popleft()[1])
        is_output = name == "output"
        for subscriber in list(self._live):
            if subscriber.output or not is_output:
                subscriber.send(frame)

    def position(self, last_event_id: str | None) -> tuple[int, bool]:
        """Where a subscriber starts, and whether it missed events we no longer have."""
        if not last_event_id:
            return self.last, False
        run, _, number = last_event_id.strip().rpartition("-")
        if run == self.run and number.isdigit() and self.first - 1 <= int(number) <= self.last:
            return int(number), False
        return self.last, True

    def after(self, position: int, output: bool) -> tuple[list[bytes], int, bool]:
        """The frames after `position` (output events only if asked), the new position,
        and whether some were lost (the subscriber fell behind the buffer)."""
        if position >= self.last:
            return [], position, False
        start = position + 1 - self.first
        lost = start < 0
        frames = [frame for is_output, frame in
                  itertools.islice(self._events, max(start, 0), None) if output or not is_output]
        return frames, self.last, lost

    def wake_all(self) -> None:
        """The daemon stops: every stream ends."""
        self.closing = True
        for subscriber in list(self._live):
            subscriber.end()

    def reset_frame(self, n: int, why: str) -> bytes:
        """`reset`, numbered so that a reconnect after it resumes from event n."""
        return b"id: %s\nevent: reset\ndata: %s\n\n" % (
            self.event_id(n).encode(), orjson.dumps({"reason": why}))

    async def stream(self, request: web.Request, output: bool,
                     notices: Sequence[Any] = ()) -> web.StreamResponse:
        """Serve one subscriber until it goes away (or the daemon stops).

        `notices`: what the daemon found at start-up, sent (without ids) to a subscriber
        that starts afresh, as editors get it when they connect."""
        last_id = request.headers.get("Last-Event-ID") or request.query.get("lastEventId")
        position, missed = self.position(last_id)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})
        chunked = request.version >= HttpVersion11
        if chunked:
            response.enable_chunked_encoding()
        await response.prepare(request)
        hello = b"retry: %d\n\n" % RETRY_MS
        if missed:
            hello += self.reset_frame(position, "the events after Last-Event-ID are no longer kept "
                                      "(or come from an earlier daemon): read the sessions again")
        # `ready` carries the id of where the stream starts, so that even a client that saw
        # no event yet reconnects with Last-Event-ID (and learns of a daemon restart).
        start = self.event_id(position)
        hello += b"id: %s\nevent: ready\ndata: %s\n\n" % (
            start.encode(), orjson.dumps({"lastEventId": start, "output": output}))
        if not last_id or missed:
            hello += b"".join(b"event: notice\ndata: %s\n\n" % orjson.dumps(n) for n in notices)
        self.subscribers += 1
        try:
            await response.write(hello)
            while not self.closing:  # catch up
                first = self.first
                frames, position, lost = self.after(position, output)
                if lost:
                    frames.insert(0, self.reset_frame(first - 1, "this stream fell behind: "
                                                      "read the sessions again"))
                if not frames:
                    break
                await response.write(b"".join(frames))
            transport = request.transport
            if self.closing or transport is None:
                return response
            subscriber = Subscriber(transport, output, chunked)  # level: live from here on
            self._live.add(subscriber)
            try:
                while not subscriber.ended.done():
                    try:
                        async with asyncio.timeout(HEARTBEAT):
                            await asyncio.shield(subscriber.ended)
                    except TimeoutError:
                        subscriber.send(b": still here\n\n")
            finally:
                self._live.discard(subscriber)
        except ConnectionError:
            pass  # it went away
        finally:
            self.subscribers -= 1
        return response
