"""A session's transcript as kept in memory: numbered items, bounded in bytes."""

from __future__ import annotations

import collections
import itertools
import zlib
from typing import Any

import orjson


class Transcript:
    """The items kept in memory: numbered, bounded in bytes, oldest dropped first.

    The bound counts each item's JSON; items are kept compressed (they are read
    only when a client pages through the transcript), so a session holding its
    full `outputLimitBytes` costs far less memory than that. What memory no longer
    holds, the database does.
    """

    def __init__(self, limit_bytes: int, next_seq: int = 1) -> None:
        self.limit_bytes = limit_bytes
        self.items: collections.deque[tuple[bytes, int]] = collections.deque()
        self.size = 0
        self.next_seq = next_seq
        self.first_seq = next_seq  # the oldest item memory still holds

    def append(self, item: dict[str, Any]) -> bytes:
        """Number `item`, keep it, and return its JSON (for the store and the clients)."""
        item["seq"] = self.next_seq
        self.next_seq += 1
        encoded = orjson.dumps(item)
        self.items.append((zlib.compress(encoded, 1), len(encoded)))
        self.size += len(encoded)
        while self.size > self.limit_bytes and len(self.items) > 1:
            _, size = self.items.popleft()
            self.size -= size
            self.first_seq += 1
        return encoded

    def page(self, after: int, limit: int) -> list[dict[str, Any]] | None:
        """Items with seq > after, or None when memory no longer holds some of them."""
        if after + 1 < self.first_seq:
            return None
        start = after + 1 - self.first_seq
        return [orjson.loads(zlib.decompress(blob))
                for blob, _ in itertools.islice(self.items, start, start + limit)]

    def encoded_items(self) -> list[tuple[int, bytes]]:
        """(seq, JSON) of every item memory holds, e.g. to write into a new database."""
        return [(self.first_seq + i, zlib.decompress(blob)) for i, (blob, _) in enumerate(self.items)]
