"""A turn's overhead and a 50 MiB command stream, through codex-sessions versus the same
`codex app-server` driven directly, with the same scripted model.

- scale: `serve` -> daemon with 1 live session, then 10 live sessions over 3 projects;
  turns of one session interleaved with turns of Codex driven directly (with 10, also
  with a second Codex driven directly: how far apart two identical ones are).
- modes: three at once, each with 10 live sessions over 3 projects: the daemon with one
  Codex per project (the default), the daemon with one Codex per session, and
  `serve --standalone`; their turns interleaved with the direct ones, then list round trips
  in rounds (two daemons differ by where the scheduler put them: each round is shown).
- stream: a command printing 50 MiB (10 runs: the rate of a short stream is noisy), through the daemon, through `serve --standalone`,
  and direct; and a paced command (how often the client is notified).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from codex_sessions.codex.launcher import native
from codex_sessions.testing.sandbox import OfflineCodex, make_git_project

from .direct import DirectCodex
from .roundtrip import COMPACT, NOOP, interleaved
from .util import (MIB, Results, Side, ci, cpu_seconds, finished, median, ms, start_session,
                   tree_cpu_seconds)

TURN_PROMPT = "stream: " + " ".join(f"word{i}" for i in range(40))
STREAM_BYTES = 50 * MIB
STREAM = f"stream {STREAM_BYTES // MIB} MiB"
# Codex 0.169 streams no outputDelta for what a command prints in its first ~0.1 s (it
# subscribes late), so the command waits first; the rate is taken from first to last byte.
STREAM_PROMPT = f"run: sleep 0.5; head -c {STREAM_BYTES} /dev/zero | tr '\\0' 'x' | fold -w 100"
# A command printing about 100 lines a second for ~3 s: how often the client is notified.
PACED_PROMPT = "run: sleep 0.5; for i in $(seq 1 300); do echo line $i; sleep 0.01; done"
PROJECTS = 3
LIVE = 10
LIST_ROUNDS = 5


class World:
    """One scripted model and CODEX_HOME; projects; Codex driven directly as the baseline."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-turn-"))
        self.offline = OfflineCodex(self.tmp / "world")
        self.projects = [make_git_project(self.tmp / f"project{k}") for k in range(PROJECTS)]
        argv, launcher_env = native(self.offline.codex_command)  # as the sidecar starts it
        self.direct = DirectCodex(argv, make_git_project(self.tmp / "direct"),
                                  {**self.offline.env(), **launcher_env})
        # A second one, driven the same way (started by the turns with 10 sessions): how far
        # apart two identical Codex processes are, the noise floor of every ratio to direct.
        self.control = DirectCodex(argv, make_git_project(self.tmp / "control"),
                                   {**self.offline.env(), **launcher_env})
        self.rigs: list[Rig] = []

    async def start(self) -> None:
        await self.direct.start()

    async def rig(self, kind: str, label: str, **options: Any) -> "Rig":
        env = self.offline.env(CODEX_SESSIONS_STATE_DIR=str(self.tmp / f"state-{label}"))
        rig = Rig(self, Side(kind, env, **options), label)
        self.rigs.append(rig)
        await rig.side.start()
        return rig

    async def close(self) -> None:
        for rig in self.rigs:
            try:
                await rig.side.close()
            except Exception as exc:  # the next one must still be closed
                print(f"   closing {rig.label}: {exc}", flush=True)
        await self.direct.close()
        await self.control.close()
        self.offline.model.stop()


class Rig:
    """One codex-sessions with live sessions spread over the world's projects."""

    def __init__(self, world: World, side: Side, label: str) -> None:
        self.world, self.side, self.label = world, side, label
        self.sids: list[str] = []
        self.turns = 0  # of the first session, the one whose turns are timed

    async def grow(self, count: int) -> None:
        """Start sessions (project k % 3) until `count` are live and idle."""
        c = self.side.client
        new = []
        while len(self.sids) < count:
            k = len(self.sids)
            s = await start_session(c, self.world.projects[k % PROJECTS], f"s{k}")
            self.sids.append(s["id"])
            new.append(s["id"])
        for sid in new:
            await c.wait_status(sid, "idle", timeout=120)

    async def turn(self, prompt: str) -> dict[str, Any]:
        c, sid = self.side.client, self.sids[0]
        mark = len(c.notifications)
        cpu0 = cpu_seconds(self.side.server_pid)
        t0 = time.monotonic()
        await c.request("codex/session/send", {"id": sid, "text": prompt})
        accepted = time.monotonic()  # the answer comes once Codex answered turn/start
        self.turns += 1
        await finished(c, sid, self.turns)
        cpu = cpu_seconds(self.side.server_pid) - cpu0
        outputs = c.since(mark, "codex/session/output", sid)
        first_text = next((st for st, p in outputs
                           if any(i["kind"] in ("agentDelta", "agent") for i in p["items"])), None)
        end = c.since(mark, "codex/session/finished", sid)[0][0]
        cmd = [(st, sum(len(i["text"]) for i in p["items"] if i["kind"] == "commandDelta"))
               for st, p in outputs]
        cmd = [(st, n) for st, n in cmd if n]
        pieces = sum(1 for _, p in outputs for i in p["items"] if i["kind"] == "commandDelta")
        return {"start": t0, "accepted": accepted, "first_text": first_text, "end": end, "cmd": cmd,
                "pieces": pieces, "outputs": len(outputs), "cpu": cpu}


def spans(turn: dict[str, Any]) -> tuple[float, ...]:
    """(send/turn/start answered, first agent text, turn end) from the start; CPU of the owner."""
    return (turn["accepted"] - turn["start"], turn["first_text"] - turn["start"],
            turn["end"] - turn["start"], turn.get("cpu", 0.0))


async def timed_turns(rigs: list[Rig], world: World, reps: int,
                      control: bool = False) -> dict[str, list[tuple[float, ...]]]:
    """`reps` turns of each rig and of direct Codex (and the control), round robin (drift
    hits all alike)."""
    directs = {"direct": world.direct, **({"control": world.control} if control else {})}
    out: dict[str, list[tuple[float, ...]]] = {label: [] for label in [*(r.label for r in rigs),
                                                                       *directs]}
    paths: list[Rig | str] = [*rigs, *directs]
    for path in paths:  # warm every path
        await (directs[path] if isinstance(path, str) else path).turn(TURN_PROMPT)
    for rep in range(reps):
        for path in paths[rep % len(paths):] + paths[:rep % len(paths)]:  # rotated each round
            if isinstance(path, str):
                out[path].append(spans(await directs[path].turn(TURN_PROMPT)))
            else:
                out[path.label].append(spans(await path.turn(TURN_PROMPT)))
    return out


async def idle_cpu(rig: Rig, seconds: float = 3.0) -> float:
    """CPU seconds a second the daemon spends while its sessions are idle."""
    await asyncio.sleep(0.5)
    cpu0 = cpu_seconds(rig.side.server_pid)
    await asyncio.sleep(seconds)
    return (cpu_seconds(rig.side.server_pid) - cpu0) / seconds


def col(samples: list[tuple[float, ...]], i: int) -> float:
    return median([s[i] for s in samples])


async def run_turns(res: Results, quick: bool) -> None:
    reps = 6 if quick else 60  # 30 left the 10-session ratio's interval 0.95-1.27 wide
    w = World()
    try:
        await w.start()
        main = await w.rig("daemon", "perProject")
        await main.grow(1)
        idle = {1: await idle_cpu(main)}
        one = await timed_turns([main], w, reps)
        await main.grow(LIVE)
        idle[LIVE] = await idle_cpu(main)
        await w.control.start()
        ten = await timed_turns([main], w, reps, control=True)
        scale_rows(res, one, ten, main.label, reps)
        res.add(f"daemon CPU while nothing runs, 1 / {LIVE} live sessions",
                f"{idle[1] * 1000:.1f} / {idle[LIVE] * 1000:.1f} ms a second")
        # Process modes and the relay: all three at once, each with 10 live sessions.
        per_session = await w.rig("daemon", "perSession", codexProcess="perSession")
        standalone = await w.rig("standalone", "standalone")
        await per_session.grow(LIVE)
        await standalone.grow(LIVE)
        rigs = [main, per_session, standalone]
        modes = await timed_turns(rigs, w, reps)
        # Two daemons' round trips differ by where the scheduler put them, and that holds
        # for seconds: in rounds, each round's ratio is reported, not one pooled run's.
        rounds = []
        for _ in range(1 if quick else LIST_ROUNDS):
            rounds.append(await interleaved(
                {(r.label, form): (r.side.client, method, params) for r in rigs
                 for form, method, params in (("noop", NOOP, {}), ("full", "codex/session/list", {}),
                                              ("compact", "codex/session/list", {"fields": COMPACT}))},
                200))
        res.raw.update(turns_one=one, turns_ten=ten, turns_modes=modes,
                       lists_modes=[{f"{a}/{b}": v for (a, b), v in got.items()} for got in rounds])
        mode_rows(res, modes, rounds, reps)
    finally:
        await w.close()


def scale_rows(res: Results, one: dict, ten: dict, label: str, reps: int) -> None:
    ratios = {}
    for count, got in ((1, one), (LIVE, ten)):
        side, direct = got[label], got["direct"]
        r_first = col(side, 1) / col(direct, 1)
        r_end = col(side, 2) / col(direct, 2)
        ratios[count] = r_end
        res.add(f"turn with {count} live session{'s' if count > 1 else ''}"
                f"{f' over {PROJECTS} projects' if count > 1 else ''}: send answered, serve -> daemon "
                "vs turn/start answered direct",
                f"median {ms(col(side, 0))} vs {ms(col(direct, 0))}")
        res.add(f"turn with {count} live session{'s' if count > 1 else ''}: to first agent text, "
                "serve -> daemon / direct",
                f"{r_first:.2f}x (median {ms(col(side, 1))} vs {ms(col(direct, 1))}; n={reps}); "
                f"the daemon's CPU per turn {ms(sum(x[3] for x in side) / len(side))} (mean)")
        target = "< 1.05x" if count == LIVE else "-"
        row = res.add(f"turn with {count} live session{'s' if count > 1 else ''}: send to finished, "
                      "serve -> daemon / direct (turn/start to turn/completed)",
                      f"{r_end:.2f}x ({ci([x[2] for x in side], [x[2] for x in direct])}; median "
                      f"{ms(col(side, 2))} vs {ms(col(direct, 2))}; n={reps})",
                      target, r_end < 1.05 if count == LIVE else None)
        row.note = (f"{r_end:.2f}x: {ms(col(side, 2) - col(direct, 2))} more than Codex alone "
                    f"(median {ms(col(side, 2))} vs {ms(col(direct, 2))}); "
                    f"{ms(col(side, 0) - col(direct, 0))} of it before Codex answers turn/start")
    floor = col(ten["control"], 2) / col(ten["direct"], 2)
    res.add(f"turn with {LIVE} live sessions: a second Codex driven directly / the first "
            "(the noise floor of the ratios above)",
            f"{floor:.2f}x ({ci([x[2] for x in ten['control']], [x[2] for x in ten['direct']])}; "
            f"median {ms(col(ten['control'], 2))} vs {ms(col(ten['direct'], 2))}; n={reps})")
    flat = ratios[LIVE] / ratios[1]
    row = res.add(f"turn overhead from 1 to {LIVE} live sessions: the ratio at {LIVE} over the ratio at 1",
                  f"{flat:.2f}x ({ratios[1]:.2f}x of direct with 1, {ratios[LIVE]:.2f}x with {LIVE})",
                  "<= 1.05x (flat)", flat <= 1.05)
    row.note = f"the send-to-finished ratio grows from {ratios[1]:.2f}x to {ratios[LIVE]:.2f}x of direct"


def mode_rows(res: Results, modes: dict, rounds: list[dict], reps: int) -> None:
    d_end = col(modes["direct"], 2)
    for label, what in (("perProject", "daemon, one Codex per project"),
                        ("perSession", "daemon, one Codex per session"),
                        ("standalone", "serve --standalone, one Codex per project")):
        res.add(f"turn, {LIVE} live sessions, {what}: send to finished",
                f"median {ms(col(modes[label], 2))} = {col(modes[label], 2) / d_end:.2f}x direct "
                f"({ms(d_end)}); first agent text {ms(col(modes[label], 1))}; n={reps}")
    ratio = col(modes["perProject"], 2) / col(modes["perSession"], 2)
    row = res.add(f"turn, {LIVE} live sessions: perProject / perSession, send to finished",
                  f"{ratio:.2f}x ({ci([x[2] for x in modes['perProject']], [x[2] for x in modes['perSession']])})",
                  "<= 1.05x (no worse)", ratio <= 1.05)
    row.note = (f"one Codex per project takes {ratio:.2f}x the turn time of one per session "
                f"({ms(col(modes['perProject'], 2))} vs {ms(col(modes['perSession'], 2))})")
    relay = col(modes["perProject"], 2) - col(modes["standalone"], 2)
    res.add(f"turn, {LIVE} live sessions: serve -> daemon minus serve --standalone, send to finished",
            f"{ms(relay)} (median {ms(col(modes['perProject'], 2))} vs {ms(col(modes['standalone'], 2))})")
    lists = {key: [x for got in rounds for x in got[key]] for key in rounds[0]}
    for form in ("full", "compact", "noop"):
        a, b = lists[("perProject", form)], lists[("perSession", form)]
        each = [median(got[("perProject", form)]) / median(got[("perSession", form)]) for got in rounds]
        ratio = median(each)
        value = (f"{ratio:.2f}x, the median of {len(rounds)} rounds' ratios "
                 f"({', '.join(f'{r:.2f}' for r in each)}); pooled medians {ms(median(a))} vs "
                 f"{ms(median(b))}; standalone {ms(median(lists[('standalone', form)]))}; n={len(a)}")
        if form == "noop":  # the same request in both: how far apart two daemons are anyway
            res.add(f"no-op request, {LIVE} live sessions: perProject daemon / perSession daemon", value)
            continue
        row = res.add(f"list ({form}), {LIVE} live sessions: perProject / perSession", value,
                      "<= 1.05x (no worse)", ratio <= 1.05)
        row.note = f"list ({form}) with one Codex per project takes {ratio:.2f}x the time of one per session"


# ---- streaming ------------------------------------------------------------------------------

def span_rate(stamps: list[float], total: int, first: int) -> tuple[float, float]:
    """bytes/s from the first piece to the last (the first piece's bytes not counted)."""
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return float("nan"), 0.0
    span = stamps[-1] - stamps[0]
    return (total - first) / span, span


async def stream_turn(rig: Rig) -> dict[str, Any]:
    pids = {"server": rig.side.server_pid, "relay": rig.side.relay_pid}
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items() if p}
    codex0 = tree_cpu_seconds(rig.side.server_pid)
    s = await rig.turn(STREAM_PROMPT)
    cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items() if p}
    codex_cpu = tree_cpu_seconds(rig.side.server_pid) - codex0
    total = sum(n for _, n in s["cmd"])
    r, span = span_rate([st for st, _ in s["cmd"]], total, s["cmd"][0][1] if s["cmd"] else 0)
    return {"rate": r, "bytes": total, "span": span, "cpu": cpu, "codex_cpu": codex_cpu,
            "outputs": s["outputs"], "cmd_notes": len(s["cmd"]), "pieces": s["pieces"],
            "turn": s["end"] - s["start"]}


async def run_stream(res: Results, quick: bool) -> None:
    reps = 1 if quick else 10
    w = World()
    try:
        await w.start()
        rigs = [await w.rig("daemon", "daemon"), await w.rig("standalone", "standalone")]
        for rig in rigs:
            await rig.grow(1)
        got: dict[str, list[dict[str, Any]]] = {"daemon": [], "standalone": [], "direct": []}
        for _ in range(reps):  # interleaved
            for rig in rigs:
                got[rig.label].append(await stream_turn(rig))
            sizes: list[int] = []
            d = await w.direct.turn(STREAM_PROMPT, lambda st, m, p: sizes.append(len(p["delta"]))
                                    if m == "item/commandExecution/outputDelta" else None)
            stamps = d["output_stamps"]
            r_d, span_d = span_rate(stamps, d["output_bytes"], sizes[0] if sizes else 0)
            got["direct"].append({"rate": r_d, "bytes": d["output_bytes"], "pieces": len(stamps),
                                  "span": span_d, "turn": d["end"] - d["start"]})
    finally:
        await w.close()
    res.raw.update(stream=got)
    stream_rows(res, got, reps)
    await paced(res, quick)


def stream_rows(res: Results, got: dict[str, list[dict[str, Any]]], reps: int) -> None:
    direct = got["direct"]
    d_rate = median([x["rate"] for x in direct])
    res.add(f"{STREAM}: Codex's own output rate (direct app-server)",
            f"{d_rate / MIB:.1f} MiB/s ({median([x['bytes'] for x in direct]) / MIB:.1f} MiB of "
            f"outputDelta in {median([x['pieces'] for x in direct]):.0f} pieces over "
            f"{ms(median([x['span'] for x in direct]))}; turn {ms(median([x['turn'] for x in direct]))}; n={reps})")
    for label, what in (("daemon", "serve -> daemon"), ("standalone", "serve --standalone")):
        side = got[label]
        rate = median([x["rate"] for x in side])
        ratio = rate / d_rate
        cpu = {k: median([x["cpu"][k] / (x["bytes"] / MIB) for x in side if x["bytes"]])
               for k in side[0]["cpu"]}
        codex_mib = median([x["codex_cpu"] / (x["bytes"] / MIB) for x in side if x["bytes"]])
        value = (f"{rate / MIB:.1f} MiB/s = {ratio:.2f}x Codex's ({median([x['bytes'] for x in side]) / MIB:.1f} "
                 f"MiB over {ms(median([x['span'] for x in side]))}; turn {ms(median([x['turn'] for x in side]))})")
        if label == "daemon":
            row = res.add(f"{STREAM}: rate reaching the client, {what}", value, ">= 0.90x Codex's rate",
                          ratio >= 0.9)
            row.note = (f"{ratio:.2f}x Codex's own output rate ({rate / MIB:.1f} vs {d_rate / MIB:.1f} MiB/s); "
                        f"CPU per MiB: daemon {cpu['server'] * 1000:.1f} ms, relay {cpu['relay'] * 1000:.1f} ms, "
                        f"Codex {codex_mib * 1000:.1f} ms, on {os.cpu_count()} cores shared with the client")
            res.add(f"{STREAM}: CPU time per MiB, {what}",
                    f"daemon {cpu['server'] * 1000:.1f} ms/MiB, relay {cpu['relay'] * 1000:.1f} ms/MiB "
                    f"(Codex's own processes: {codex_mib * 1000:.1f} ms/MiB)")
            res.add(f"{STREAM}: output notifications for the turn",
                    f"{median([x['outputs'] for x in side]):.0f}, {median([x['cmd_notes'] for x in side]):.0f} "
                    f"of them with command output ({median([x['pieces'] for x in side]):.0f} commandDelta pieces)")
        else:
            res.add(f"{STREAM}: rate reaching the client, {what}",
                    value + f"; sidecar CPU {cpu['server'] * 1000:.1f} ms/MiB")


async def paced(res: Results, quick: bool) -> None:
    w = World()
    try:
        await w.start()
        rig = await w.rig("daemon", "daemon")
        await rig.grow(1)
        rates, counts, pieces = [], [], []
        for _ in range(1 if quick else 2):
            s = await rig.turn(PACED_PROMPT)
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
