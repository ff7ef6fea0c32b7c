"""Figures 2 and 3: a turn's overhead, and a 20 MiB command stream, through the sidecar
versus the same `codex app-server` driven directly, with the same scripted model."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from codex_sessions.testing.sandbox import OfflineCodex, make_git_project

from .direct import DirectCodex
from .util import (MIB, SIDECAR, Results, TimedClient, cpu_seconds, finished, median, ms,
                   start_session, tree_cpu_seconds)

TURN_PROMPT = "stream: " + " ".join(f"word{i}" for i in range(40))
STREAM_BYTES = 20 * MIB
# Codex 0.169 streams no outputDelta for what a command prints in its first ~0.1 s (it
# subscribes late), so the command waits first; the rate is taken from first to last byte.
STREAM_PROMPT = f"run: sleep 0.5; head -c {STREAM_BYTES} /dev/zero | tr '\\0' 'x' | fold -w 100"
# A command printing about 100 lines a second for ~3 s: how often the client is notified.
PACED_PROMPT = "run: sleep 0.5; for i in $(seq 1 300); do echo line $i; sleep 0.01; done"


class World:
    """One scripted model and CODEX_HOME; a sidecar session and a direct app-server."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-turn-"))
        self.offline = OfflineCodex(self.tmp / "world")
        self.p_side = make_git_project(self.tmp / "via-sidecar")
        self.p_direct = make_git_project(self.tmp / "direct")
        self.client = TimedClient(SIDECAR, env=self.offline.env())
        self.direct = DirectCodex(self.offline.codex_command, self.p_direct, self.offline.env())
        self.sid = ""
        self.turns = 0

    async def start(self) -> None:
        await self.client.start()
        s = await start_session(self.client, self.p_side, "bench")
        await self.client.wait_status(s["id"], "idle")
        self.sid = s["id"]
        await self.direct.start()

    async def sidecar_turn(self, prompt: str) -> dict:
        c = self.client
        mark = len(c.notifications)
        t0 = time.monotonic()
        await c.request("codex/session/send", {"id": self.sid, "text": prompt})
        accepted = time.monotonic()  # the answer comes once Codex answered turn/start
        self.turns += 1
        await finished(c, self.sid, self.turns)
        outputs = c.since(mark, "codex/session/output", self.sid)
        first_text = next((st for st, p in outputs
                           if any(i["kind"] in ("agentDelta", "agent") for i in p["items"])), None)
        end = c.since(mark, "codex/session/finished", self.sid)[0][0]
        cmd = [(st, sum(len(i["text"]) for i in p["items"] if i["kind"] == "commandDelta"))
               for st, p in outputs]
        cmd = [(st, n) for st, n in cmd if n]
        pieces = sum(1 for _, p in outputs for i in p["items"] if i["kind"] == "commandDelta")
        return {"start": t0, "accepted": accepted, "first_text": first_text, "end": end, "cmd": cmd, "pieces": pieces,
                "outputs": len(outputs),
                "notifications": len([m for m in c.notifications[mark:]
                                      if (m["params"].get("id") or (m["params"].get("session") or {}).get("id")) == self.sid])}

    async def close(self) -> None:
        await self.client.stop()
        await self.direct.close()
        self.offline.close()


async def run_turns(res: Results, quick: bool) -> None:
    reps = 5 if quick else 15
    w = World()
    await w.start()
    try:
        await w.sidecar_turn(TURN_PROMPT)  # warm both paths
        await w.direct.turn(TURN_PROMPT)
        side_first, side_end, dir_first, dir_end, side_acc, dir_acc = [], [], [], [], [], []
        for _ in range(reps):  # interleaved, so drift of a noisy machine hits both alike
            s = await w.sidecar_turn(TURN_PROMPT)
            d = await w.direct.turn(TURN_PROMPT)
            side_first.append(s["first_text"] - s["start"])
            side_end.append(s["end"] - s["start"])
            dir_first.append(d["first_text"] - d["start"])
            dir_end.append(d["end"] - d["start"])
            side_acc.append(s["accepted"] - s["start"])
            dir_acc.append(d["accepted"] - d["start"])
    finally:
        await w.close()
    res.raw.update(turn_side_first=side_first, turn_side_end=side_end,
                   turn_dir_first=dir_first, turn_dir_end=dir_end)
    res.add("turn: turn/start answered (sidecar: codex/session/send answered)",
            f"median {ms(median(side_acc))} through the sidecar vs {ms(median(dir_acc))} direct")
    r1 = median(side_first) / median(dir_first)
    r2 = median(side_end) / median(dir_end)
    row = res.add("turn: turn/start to first agent text, sidecar / direct",
                  f"{r1:.2f}x (median {ms(median(side_first))} vs {ms(median(dir_first))}; n={reps})",
                  "< 1.05x", r1 < 1.05)
    row.note = (f"{r1:.2f}x: {ms(median(side_first) - median(dir_first))} more than Codex alone "
                f"(median {ms(median(side_first))} vs {ms(median(dir_first))}). turn/start is answered "
                f"{ms(median(side_acc) - median(dir_acc))} later through the sidecar (work before it "
                f"forwards turn/start), and the first text comes "
                f"{ms(median([f - a for f, a in zip(side_first, side_acc)]))} after that answer vs "
                f"{ms(median([f - a for f, a in zip(dir_first, dir_acc)]))} direct (batching of pieces)")
    row = res.add("turn: turn/start to turn end, sidecar / direct",
                  f"{r2:.2f}x (median {ms(median(side_end))} vs {ms(median(dir_end))}; n={reps})",
                  "< 1.05x", r2 < 1.05)
    row.note = (f"{r2:.2f}x: {ms(median(side_end) - median(dir_end))} more than Codex alone "
                f"(median {ms(median(side_end))} vs {ms(median(dir_end))}); "
                f"{ms(median(side_acc) - median(dir_acc))} of it before Codex answers turn/start, the rest "
                "after (relaying events, and the change observation of the turn's last command "
                "before codex/session/finished)")


def span_rate(stamps: list[float], total: int, first: int) -> tuple[float, float]:
    """bytes/s from the first piece to the last (the first piece's bytes not counted)."""
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return float("nan"), 0.0
    span = stamps[-1] - stamps[0]
    return (total - first) / span, span


async def run_stream(res: Results, quick: bool) -> None:
    reps = 1 if quick else 5
    w = World()
    await w.start()
    try:
        side, direct = [], []
        for _ in range(reps):
            cpu0 = cpu_seconds(w.client.pid)
            codex0 = tree_cpu_seconds(w.client.pid)
            s = await w.sidecar_turn(STREAM_PROMPT)
            cpu = cpu_seconds(w.client.pid) - cpu0
            codex_cpu = tree_cpu_seconds(w.client.pid) - codex0
            total = sum(n for _, n in s["cmd"])
            r, span = span_rate([st for st, _ in s["cmd"]], total, s["cmd"][0][1] if s["cmd"] else 0)
            side.append({"rate": r, "bytes": total, "span": span, "cpu": cpu, "codex_cpu": codex_cpu,
                         "outputs": s["outputs"], "cmd_notes": len(s["cmd"]), "pieces": s["pieces"],
                         "last_byte": s["cmd"][-1][0] - s["start"] if s["cmd"] else float("nan"),
                         "turn": s["end"] - s["start"]})
            sizes: list[int] = []
            d = await w.direct.turn(STREAM_PROMPT, lambda st, m, p: sizes.append(len(p["delta"]))
                                    if m == "item/commandExecution/outputDelta" else None)
            stamps = d["output_stamps"]
            r_d, span_d = span_rate(stamps, d["output_bytes"], sizes[0] if sizes else 0)
            direct.append({"rate": r_d, "bytes": d["output_bytes"], "pieces": len(stamps),
                           "span": span_d,
                           "last_byte": stamps[-1] - d["start"] if stamps else float("nan"),
                           "turn": d["end"] - d["start"]})
    finally:
        await w.close()
    res.raw.update(stream_side=side, stream_direct=direct)
    s_rate = median([x["rate"] for x in side])
    d_rate = median([x["rate"] for x in direct])
    s_bytes = median([x["bytes"] for x in side])
    ratio = s_rate / d_rate
    res.add("stream 20 MiB: Codex's own output rate (direct app-server)",
            f"{d_rate / MIB:.1f} MiB/s ({median([x['bytes'] for x in direct]) / MIB:.1f} MiB of "
            f"outputDelta in {median([x['pieces'] for x in direct]):.0f} pieces over "
            f"{ms(median([x['span'] for x in direct]))}; turn {ms(median([x['turn'] for x in direct]))}; n={reps})")
    row = res.add("stream 20 MiB: rate reaching the client through the sidecar",
                  f"{s_rate / MIB:.1f} MiB/s = {ratio:.2f}x Codex's ({s_bytes / MIB:.1f} MiB over "
                  f"{ms(median([x['span'] for x in side]))}; turn {ms(median([x['turn'] for x in side]))})",
                  ">= 1.00x Codex's rate", ratio >= 1.0)
    cpu_mib = median([x["cpu"] / (x["bytes"] / MIB) for x in side if x["bytes"]])
    codex_mib = median([x["codex_cpu"] / (x["bytes"] / MIB) for x in side if x["bytes"]])
    row.note = (f"{ratio:.2f}x Codex's own output rate ({s_rate / MIB:.1f} vs {d_rate / MIB:.1f} MiB/s). "
                f"The sidecar spends {cpu_mib * 1000:.1f} ms CPU per MiB (decoding Codex's JSON lines, "
                f"re-encoding the pieces as notifications), which competes with Codex "
                f"({codex_mib * 1000:.1f} ms/MiB) and the client for {os.cpu_count()} cores: at Codex's "
                f"own rate Codex needs {codex_mib * d_rate / MIB:.1f} cores and the sidecar "
                f"{cpu_mib * d_rate / MIB:.1f} more")
    res.add("stream 20 MiB: sidecar CPU time per MiB",
            f"{cpu_mib * 1000:.1f} ms/MiB (Codex's own processes: {codex_mib * 1000:.1f} ms/MiB)")
    res.add("stream 20 MiB: output notifications for the turn",
            f"{median([x['outputs'] for x in side]):.0f}, {median([x['cmd_notes'] for x in side]):.0f} "
            f"of them with command output ({median([x['pieces'] for x in side]):.0f} commandDelta pieces)")
    await paced(res, quick)


async def paced(res: Results, quick: bool) -> None:
    w = World()
    await w.start()
    try:
        rates, counts, pieces = [], [], []
        for _ in range(1 if quick else 2):
            s = await w.sidecar_turn(PACED_PROMPT)
            stamps = [st for st, _ in s["cmd"]]
            span = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
            rates.append((len(stamps) - 1) / span)
            counts.append(len(stamps))
            pieces.append(s["pieces"])
    finally:
        await w.close()
    res.raw.update(paced_rates=rates)
    out_s = median(rates)
    row = res.add("command printing ~100 lines/s for 3 s: output notifications per second per session",
                  f"{out_s:.1f}/s ({median(counts):.0f} notifications carrying {median(pieces):.0f} "
                  f"commandDelta pieces)", "<= 20/s (batched)", out_s <= 20.5)
    row.note = f"{out_s:.1f} output notifications/s, above the ~20/s batching"


async def run(res: Results, quick: bool) -> None:
    await run_turns(res, quick)
    await run_stream(res, quick)
