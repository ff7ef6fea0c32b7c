"""Reading LSP base-protocol frames (`Content-Length` headers, JSON bodies) robustly.

No input stops the reader: header names are case-insensitive; a length that is
not a number, is zero or negative, or is over MAX_BODY is refused before anything
is allocated; a body that is not JSON is answered with a parse error. After any
of these, reading resumes at the next `Content-Length` header found in what
follows, so one mis-framed message costs one error answer, not the connection.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Awaitable, Callable

import orjson

MAX_BODY = 64 * 1024 * 1024
MAX_HEADER = 8 * 1024
READ_BYTES = 64 * 1024
BODY_STALL = 2.0  # seconds without a byte while a body is incomplete: it never will be
HEADER_END = re.compile(rb"\r?\n\r?\n")
LENGTH = re.compile(rb"(?i)content-length[ \t]*:[ \t]*([^\r\n]*)")
NEXT_HEADER = re.compile(rb"(?i)content-length[ \t]*:")


class FrameError(Exception):
    """A frame that cannot be read; answered with `code` and the message, id null."""

    def __init__(self, message: str, code: int = -32700) -> None:
        super().__init__(message)
        self.code = code


class FrameReader:
    """Frames from a byte source: `read(n)` returns up to n bytes, b"" at the end."""

    def __init__(self, read: Callable[[int], Awaitable[bytes]]) -> None:
        self._read = read
        self.buf = bytearray()
        self.eof = False

    async def _fill(self, timeout: float | None = None, want: int = READ_BYTES) -> bool:
        """Read more; False at the end of input (or when `timeout` passes with nothing)."""
        if self.eof:
            return False
        want = max(want, READ_BYTES)  # a big body is read in as few pieces as it comes in
        try:
            chunk = await asyncio.wait_for(self._read(want), timeout) if timeout else \
                await self._read(want)
        except asyncio.TimeoutError:
            return False
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _resync(self, start: int = 0) -> None:
        """Drop everything before the next `Content-Length` header after `start`."""
        found = NEXT_HEADER.search(self.buf, start)
        if found:
            del self.buf[:found.start()]
        else:
            del self.buf[:max(0, len(self.buf) - 32)]  # a header may be cut in two

    async def next(self) -> Any:
        """The next message, decoded; FrameError for a bad frame; EOFError at the end."""
        while True:
            end = HEADER_END.search(self.buf)
            if end is not None and end.start() <= MAX_HEADER:
                break
            if end is None and len(self.buf) <= MAX_HEADER:
                if not await self._fill():
                    if self.buf.strip():
                        self.buf.clear()
                        raise FrameError("the input ended inside a header")
                    raise EOFError
                continue
            found = NEXT_HEADER.search(self.buf, 1)  # a header block this long is junk
            self._resync(1)
            if found is None and not await self._fill():
                raise EOFError
            raise FrameError("a header block without a usable Content-Length was skipped")
        header = bytes(self.buf[:end.start()])
        del self.buf[:end.end()]
        match = LENGTH.search(header)
        if match is None:
            raise FrameError("a message without a Content-Length header was skipped")
        raw = match.group(1).strip()
        if not raw.isdigit() or len(raw) > 12:
            self._resync()
            raise FrameError(f"Content-Length must be a positive number of bytes (got {raw[:40]!r})")
        length = int(raw)
        if length == 0 or length > MAX_BODY:
            self._resync()
            raise FrameError(f"Content-Length {length} is outside 1..{MAX_BODY}")
        while len(self.buf) < length:
            if not await self._fill(BODY_STALL, length - len(self.buf)):
                self._resync()
                raise FrameError(f"the body ended after {len(self.buf)} of {length} bytes")
        with memoryview(self.buf) as view, view[:length] as body_view:
            try:  # decoded where it lies: a big notification is not copied first
                message = orjson.loads(body_view)
            except orjson.JSONDecodeError as exc:
                body, error = bytes(body_view), exc
            else:
                body = None
        del self.buf[:length]
        if body is None:
            return message
        try:  # valid JSON that orjson refuses (a lone surrogate): its params will be refused
            return json.loads(body)
        except ValueError:
            pass
        inside = NEXT_HEADER.search(body)
        if inside:  # the length was too big: the next frame is inside this body
            self.buf[:0] = body[inside.start():]
        raise FrameError(f"Parse error: {error}") from None


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
