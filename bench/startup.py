"""Figure 6: spawning `codex-sessions serve` to its `initialize` answer, against a bare
pygls server that imports nothing else."""

from __future__ import annotations

import os
import tempfile
import time

from codex_sessions.testing.client import SidecarClient

from .util import BARE_SERVER, SIDECAR, Results, median, ms


async def once(argv: list[str], env: dict[str, str]) -> float:
    client = SidecarClient(argv, env=env)
    t0 = time.perf_counter()
    await client.start()
    took = time.perf_counter() - t0
    await client.stop()
    return took


async def run(res: Results, quick: bool) -> None:
    reps = 5 if quick else 15
    tmp = tempfile.mkdtemp(prefix="bench-start-")
    env = dict(os.environ, CODEX_SESSIONS_STATE_DIR=tmp, CODEX_SESSIONS_CODEX="/nonexistent/codex")
    await once(SIDECAR, env)  # warm the page cache and .pyc files
    await once(BARE_SERVER, env)
    side, bare = [], []
    for _ in range(reps):
        side.append(await once(SIDECAR, env))
        bare.append(await once(BARE_SERVER, env))
    res.raw.update(start_side=side, start_bare=bare)
    ratio = median(side) / median(bare)
    res.add("start-up: bare pygls server, spawn to initialize answer", f"median {ms(median(bare))} (n={reps})")
    row = res.add("start-up: codex-sessions serve, spawn to initialize answer",
                  f"median {ms(median(side))} = {ratio:.2f}x the bare server", "< 1.5x", ratio < 1.5)
    row.note = f"{ratio:.2f}x the bare server ({ms(median(side))} vs {ms(median(bare))})"
