"""The command line: serve | run | ls | show | report | export | demo | doctor."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ProtocolError
from .manager import Manager
from .protocol import InitOptions, SessionRef
from .render import TerminalView
from .report import render
from .store import StoreError

EXIT_FOR_REPORT = {"done": 0, "failed": 1, "blocked": 2, "still running": 2}


def _options(args: argparse.Namespace) -> InitOptions:
    return InitOptions(state_dir=getattr(args, "state_dir", None))


async def _with_manager(args: argparse.Namespace, body: Any, emit: Any = None) -> int:
    manager = Manager(_options(args), emit or (lambda method, params: None))
    try:
        await manager.ready()
        return await body(manager)
    except (ProtocolError, StoreError) as exc:
        print(f"codex-sessions: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    finally:
        await manager.shutdown()


def _project(args: argparse.Namespace) -> str:
    return str(Path(args.directory or os.getcwd()).resolve())


# ---- run -------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    view = TerminalView(sys.stdout)
    done: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    state: dict[str, Any] = {}

    def emit(method: str, params: dict[str, Any]) -> None:
        if params.get("id", (params.get("session") or {}).get("id")) != state.get("id"):
            return
        if method == "codex/session/output":
            for item in params["items"]:
                view.show(item)
        elif method == "codex/session/request":
            asyncio.get_running_loop().create_task(answer(params["request"]))
        elif method == "codex/session/finished":
            done.put_nowait(params)
        elif method == "codex/session/changed" and params["session"]["status"] == "failed":
            done.put_nowait({"report": None, "session": params["session"]})

    async def answer(request: dict[str, Any]) -> None:
        decision = "accept" if args.yes else "decline"
        if not args.yes and sys.stdin.isatty():
            reply = await asyncio.to_thread(
                input, "Approve? [a]ccept, accept for [s]ession, [d]ecline: ")
            decision = {"a": "accept", "s": "acceptForSession"}.get(reply.strip()[:1].lower(),
                                                                      "decline")
        elif not args.yes:
            print("(not a terminal and no --yes: declining)", file=sys.stderr)
        state["manager"].respond(state["session"], request["requestId"], decision)

    async def body(manager: Manager) -> int:
        state["manager"] = manager
        session, _ = await manager.start(_project(args), args.name, None, True,
                                         model=args.model, sandbox=args.sandbox)
        state["id"], state["session"] = session.id, session
        await manager.send(session, args.prompt)
        finished = await done.get()
        if finished["report"] is None:
            print(f"codex-sessions: {finished['session']['error']}", file=sys.stderr)
            return 1
        print("\n" + render(finished["report"]))
        return EXIT_FOR_REPORT[finished["report"]["status"]]

    return asyncio.run(_with_manager(args, body, emit))


# ---- reading the database ----------------------------------------------------------------

def _age(stamp: str | None) -> str:
    return (stamp or "")[:19].replace("T", " ")


def cmd_ls(args: argparse.Namespace) -> int:
    async def body(manager: Manager) -> int:
        project = _project(args) if args.directory or not args.everywhere else None
        sessions = await manager.list(project, None, args.all)
        wire = [s.to_wire() for s in sessions]
        if args.json:
            print(json.dumps(wire, indent=2))
            return 0
        if not wire:
            print("no sessions" + (f" in {project}" if project else ""))
            return 0
        rows = [("PROJECT", "NAME", "STATUS", "UPDATED", "TITLE")] + [
            (s["project"]["name"], s["name"], s["status"], _age(s["updatedAt"]),
             (s["report"] or {}).get("summary") or s["title"] or "") for s in wire]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4][:60])
        return 0
    return asyncio.run(_with_manager(args, body))


async def _all_items(manager: Manager, session: Any) -> list[dict[str, Any]]:
    items, after = [], 0
    while True:
        page = await manager.transcript(session, after, 1000)
        items += page["items"]
        if not page["items"]:
            return items
        after = page["next"]


def _ref(args: argparse.Namespace) -> SessionRef:
    return SessionRef(project=_project(args), name=args.name)


def cmd_show(args: argparse.Namespace) -> int:
    async def body(manager: Manager) -> int:
        session = await manager.get(_ref(args))
        view = TerminalView(sys.stdout)
        for item in await _all_items(manager, session):
            view.show(item)
        return 0
    return asyncio.run(_with_manager(args, body))


def cmd_report(args: argparse.Namespace) -> int:
    async def body(manager: Manager) -> int:
        result = manager.report(await manager.get(_ref(args)))
        print(json.dumps(result["report"], indent=2) if args.json else result["text"])
        return 0
    return asyncio.run(_with_manager(args, body))


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_session

    async def body(manager: Manager) -> int:
        session = await manager.get(_ref(args))
        folder = Path(args.out or f"codex-session-{session.name}-{session.id}")
        export_session(session.to_wire(), await _all_items(manager, session), folder)
        print(f"exported {session.name} to {folder}/")
        return 0
    return asyncio.run(_with_manager(args, body))


# ---- serve, demo, doctor -------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve
    return serve(args.log_file, args.verbose)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return run_demo(args.keep)


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor
    return run_doctor(_options(args))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="codex-sessions",
                                  description="Named, persistent Codex sessions per project.")
    top.add_argument("--version", action="version", version=f"codex-sessions {__version__}")
    top.add_argument("--state-dir", help="where the session database lives "
                     "(default: $CODEX_SESSIONS_STATE_DIR or ~/.local/state/codex-sessions)")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="the sidecar: JSON-RPC on stdin/stdout, for editors")
    p.add_argument("--log-file", help="write logs there instead of stderr")
    p.add_argument("--verbose", action="store_true", help="log every message")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("run", help="run one prompt in a named session, stream it, print the report "
                       "(exit 0 done, 1 failed, 2 blocked)")
    p.add_argument("-C", "--directory", help="the project (default: the current directory)")
    p.add_argument("--name", default="main", help="the session's name (default: main)")
    p.add_argument("--model")
    p.add_argument("--sandbox", default="workspace-write",
                   choices=["read-only", "workspace-write", "danger-full-access"])
    p.add_argument("--yes", action="store_true", help="accept every approval request")
    p.add_argument("prompt")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("ls", help="list sessions from the database (no Codex needed)")
    p.add_argument("-C", "--directory", help="the project (default: the current directory)")
    p.add_argument("--everywhere", action="store_true", help="every project")
    p.add_argument("--all", action="store_true", help="include stopped sessions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ls)

    for name, func, text in (("show", cmd_show, "print a session's transcript"),
                             ("report", cmd_report, "print a session's last report"),
                             ("export", cmd_export, "write a session's record to a folder")):
        p = sub.add_parser(name, help=text)
        p.add_argument("name", nargs="?", default="main")
        p.add_argument("-C", "--directory", help="the project (default: the current directory)")
        if name == "report":
            p.add_argument("--json", action="store_true")
        if name == "export":
            p.add_argument("-o", "--out", help="the folder (default: codex-session-NAME-ID)")
        p.set_defaults(func=func)

    p = sub.add_parser("demo", help="three sessions at once against a scripted model, offline")
    p.add_argument("--keep", action="store_true", help="keep the throw-away project")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("doctor", help="check Codex, the state folder and the editors")
    p.set_defaults(func=cmd_doctor)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)
