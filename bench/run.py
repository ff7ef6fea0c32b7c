"""Run every benchmark figure and print one table: figure, value, target, met.

Each figure is measured through `serve` -> daemon, as editors run codex-sessions, against a
baseline from the same run (Codex's app-server driven directly, `serve --standalone`, a bare
pygls server, a no-op request); the table says which.

    .venv/bin/python -m bench.run [--quick] [--only NAME ...] [--json FILE]

It measures; it does not gate: the exit code is 0 even when targets are missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import traceback

from . import editors, memory, roundtrip, sse, startup, store, turns
from .util import Results, Row, machine

FIGURES = {"list": roundtrip, "turns": turns, "memory": memory, "startup": startup, "editors": editors,
           "store": store, "sse": sse}


def table(rows: list[Row]) -> str:
    head = ("figure", "value", "target", "met")
    cells = [(r.figure, r.value, r.target, "-" if r.met is None else ("yes" if r.met else "NO"))
             for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(4)]
    line = lambda c: "| " + " | ".join(x.ljust(w) for x, w in zip(c, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(c) for c in cells)])


async def main_async(args: argparse.Namespace) -> Results:
    res = Results()
    for name, module in FIGURES.items():
        if args.only and name not in args.only:
            continue
        print(f"== {name}", flush=True)
        began = time.monotonic()
        try:
            await module.run(res, args.quick)
        except Exception as exc:  # one broken figure must not hide the others
            traceback.print_exc()
            res.add(f"{name}: not measured", f"error: {type(exc).__name__}: {exc}"[:200])
        print(f"   ({time.monotonic() - began:.0f} s)", flush=True)
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run: fewer repetitions, 2 MiB memory fills")
    parser.add_argument("--only", nargs="*", choices=list(FIGURES), help="run only these figures")
    parser.add_argument("--json", help="also write the rows and raw samples here")
    args = parser.parse_args()
    began = time.monotonic()
    before = machine()
    load_before = before["load"]
    res = asyncio.run(main_async(args))
    m = machine()
    print()
    print(f"Machine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}, {m['date']}"
          f"{' (--quick)' if args.quick else ''}")
    print(f"Tools: {m['tools']}")
    print(f"Code: {before['code']} at the start" + ("" if m["code"] == before["code"]
                                                   else f", {m['code']} at the end"))
    print(f"Load average (1, 5, 15 min): {load_before} before, {m['load']} after"
          " (a shared machine: other work running meanwhile shows here)")
    print(m["free"])
    print()
    print(table(res.rows))
    missed = [r for r in res.rows if r.met is False]
    print()
    if missed:
        print("Missed targets:")
        for r in missed:
            print(f"- {r.figure}: {r.note or r.value}")
    else:
        print("Every target with a figure was met.")
    print(f"\n(total {time.monotonic() - began:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": m, "load_before": load_before, "quick": args.quick,
                       "rows": [r.__dict__ for r in res.rows], "raw": res.raw}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
