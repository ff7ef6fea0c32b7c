"""Where the daemon spends its time: py-spy samples of it while turns or lists run.

    .venv/bin/pip install py-spy        # once; not a dependency of the package
    .venv/bin/python -m bench.profile turns [--live 10] [--count 100]
    .venv/bin/python -m bench.profile stream [--count 3]     # the 50 MiB command
    .venv/bin/python -m bench.profile list [--sessions 1000] [--compact] [--seconds 10]

Prints the daemon's CPU per operation (from /proc) and its busiest functions, inclusive and
self, as shares of the samples in which it was not waiting (epoll, the store thread's queue).
The raw stacks stay in the file named by --raw, for flame graph tools.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .util import VENV_BIN, cpu_seconds

RATE = 200  # samples a second (py-spy pauses the daemon for each: consistent stacks)
IDLE = ("EpollSelector.select", "_connection_worker_thread (aiosqlite/core.py:59)",
        "SimpleQueue.get", "Condition.wait", "Thread.wait", "_do_waitpid")
# uvloop's own C code (its wait for events, and its transports' work) has no Python frame:
# py-spy puts it on the frame that started the loop.
IN_LOOP = "Runner.run (asyncio/runners.py"


def summary(raw: Path, top: int = 25) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    busy = idle = in_loop = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        if any(mark in frames[-1] for mark in IDLE):
            idle += n
            continue
        if frames[-1].startswith(IN_LOOP):
            in_loop += n
            continue
        busy += n
        names = [f.split(" (")[0] + " (" + f.split(" (", 1)[1].split(":")[0] + ")" if " (" in f else f
                 for f in frames]
        for name in set(names):
            inclusive[name] += n
        own[names[-1]] += n
    lines = [f"{busy} busy samples ({busy / RATE:.2f} s of CPU), {idle} waiting"
             + (f", {in_loop} in uvloop's C code (waiting or its own work; left out)" if in_loop else "")]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        lines.append(f"-- {title}")
        lines += [f"{100 * v / max(busy, 1):5.1f}%  {k}" for k, v in counter.most_common(top)]
    return "\n".join(lines)


def record(pid: int, raw: Path) -> subprocess.Popen:
    spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if not spy:
        sys.exit("py-spy is not installed: .venv/bin/pip install py-spy")
    return subprocess.Popen([spy, "record", "-p", str(pid), "-o", str(raw), "-f", "raw",
                             "-r", str(RATE)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def turns(args: argparse.Namespace) -> None:
    from .turns import STREAM_PROMPT, TURN_PROMPT, World
    prompt = STREAM_PROMPT if args.what == "stream" else TURN_PROMPT
    w = World()
    try:
        await w.start()
        rig = await w.rig("daemon", "profile")
        await rig.grow(args.live)
        await rig.turn(prompt)
        spy = record(rig.side.server_pid, args.raw)
        await asyncio.sleep(1.5)  # py-spy attached
        cpu0, t0 = cpu_seconds(rig.side.server_pid), time.monotonic()
        for _ in range(args.count):
            await rig.turn(prompt)
        took = time.monotonic() - t0
        cpu = cpu_seconds(rig.side.server_pid) - cpu0
        spy.send_signal(2)
        spy.wait()
        print(f"{args.count} turns with {args.live} live sessions in {took:.1f} s; the daemon's CPU "
              f"{cpu / args.count * 1000:.1f} ms a turn")
    finally:
        await w.close()


async def lists(args: argparse.Namespace) -> None:
    from .roundtrip import COMPACT, env_for, seed, timed_requests
    from .util import Side
    tmp = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    projects = []
    for k in range(10):
        (tmp / f"proj{k}").mkdir()
        projects.append((tmp / f"proj{k}").resolve())
    await seed(tmp / "state", args.sessions, projects)
    side = await Side("daemon", env_for(tmp / "state")).start()
    params = {"fields": COMPACT} if args.compact else {}
    try:
        await timed_requests(side.client, "codex/session/list", params, 50)
        spy = record(side.server_pid, args.raw)
        await asyncio.sleep(1.5)
        cpu0, count, end = cpu_seconds(side.server_pid), 0, time.monotonic() + args.seconds
        while time.monotonic() < end:
            await timed_requests(side.client, "codex/session/list", params, 20)
            count += 20
        cpu = cpu_seconds(side.server_pid) - cpu0
        spy.send_signal(2)
        spy.wait()
        print(f"{count} lists of {args.sessions} sessions ({'compact' if args.compact else 'full'}); "
              f"the daemon's CPU {cpu / count * 1000:.2f} ms a list")
    finally:
        await side.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["turns", "stream", "list"])
    parser.add_argument("--live", type=int, default=10, help="live sessions (turns, stream)")
    parser.add_argument("--count", type=int, help="turns to sample (default 100; stream: 3)")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions in the database (list)")
    parser.add_argument("--compact", action="store_true", help="list with the compact fields")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to list")
    parser.add_argument("--raw", type=Path, default=Path(tempfile.gettempdir()) / "codex-sessions-profile.txt")
    args = parser.parse_args()
    if args.count is None:
        args.count = 3 if args.what == "stream" else 100
    asyncio.run(lists(args) if args.what == "list" else turns(args))
    print(summary(args.raw))
    print(f"(raw stacks: {args.raw})")


if __name__ == "__main__":
    main()
