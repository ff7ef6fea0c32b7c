"""The scripted model plus two directives for the benchmarks.

`stream-bytes-paced: N` streams the same text as `stream-bytes: N` (4 KiB pieces), one
piece every 2 ms (~2 MiB/s), so that an editor receives each MiB in ~10 batches and
the cost of a single MiB can be resolved (unpaced, one 50 ms batch carries 1-3 MiB).

`stream-words: N`: about N
bytes of pseudo-English (random words from a 3,000-word vocabulary, lines of ~80
characters) in 4 KiB pieces. Unlike `stream-bytes:` (one 4 KiB chunk repeated, which
compresses ~1000x), this text compresses about as much as prose does (~2-3x with zlib),
so memory figures do not flatter a sidecar that compresses what it keeps."""

from __future__ import annotations

import random
import zlib
from functools import lru_cache
from typing import Any

from codex_sessions.testing.model_server import ModelServer, Reply, Script, _last_user_text
from codex_sessions.testing.sandbox import OfflineCodex

PACE = 0.002  # seconds between 4 KiB pieces of stream-bytes-paced


@lru_cache(maxsize=4)
def words_text(total: int) -> str:
    rng = random.Random(total)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1.5, 1, 0.5, 0.2, 0.2, 0.1, 0.1]
    vocab = ["".join(rng.choices(letters, weights, k=rng.randint(2, 10))) for _ in range(3000)]
    out, size, line = [], 0, 0
    while size < total:
        w = rng.choice(vocab)
        sep = "\n" if line + len(w) > 80 else " "
        line = 0 if sep == "\n" else line + len(w) + 1
        out.append(w + sep)
        size += len(w) + 1
    return "".join(out)[:total]


class BenchScript(Script):
    def reply(self, body: dict[str, Any]) -> Reply:
        for line in _last_user_text(body).splitlines():
            key, sep, value = line.strip().partition(":")
            key = key.strip().lower()
            if key == "stream-words" and sep:
                text = words_text(int(value))
                return self._message([text[i:i + 4096] for i in range(0, len(text), 4096)])
            if key == "stream-bytes-paced" and sep:
                plain = super().reply({"input": [{"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": f"stream-bytes: {int(value)}"}]}]})
                pieces = [e["delta"] for _, e in plain.events
                          if e.get("type") == "response.output_text.delta"]
                return self._message(pieces, pause=PACE)
        return super().reply(body)


def offline_world(root) -> OfflineCodex:
    """OfflineCodex whose model also understands `stream-words:`."""
    world = OfflineCodex(root)
    world.model.stop()
    world.model = ModelServer(BenchScript()).start()
    return world


def compress_ratio(total: int = 1 << 20) -> float:
    text = words_text(total).encode()
    return len(text) / len(zlib.compress(text, 1))
