"""The command line: serve | daemon | run | attach | ls | show | report | export | ... .

`run` and `attach` drive the daemon (starting it if needed), so a session started
here is the one every editor sees. Reading commands ask the daemon when it runs
and read the database directly when it does not (no Codex is started).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .paths import state_dir as resolve_state_dir

if TYPE_CHECKING:
    import asyncio

    from .rpc.client import Client

# `serve` (the relay) must start fast: everything heavier is imported where it is used,
# asyncio included (60 ms of an editor's start on a slow machine).

EXIT_FOR_REPORT = {"done": 0, "failed": 1, "blocked": 2, "still running": 2}
TAIL_ITEMS = 40


def _project(args: argparse.Namespace) -> str:
    return str(Path(args.directory or os.getcwd()).resolve())


def _folder(args: argparse.Namespace) -> Path:
    return resolve_state_dir(args.state_dir)


def _fail(message: str, code: int = 1) -> int:
    print(f"codex-sessions: {message}", file=sys.stderr)
    return code


def _run(coro: Any) -> int:
    import asyncio
    from .rpc.client import RpcError
    from .store import StoreError
    try:
        return asyncio.run(coro)
    except RpcError as exc:
        from .errors import STORAGE_UNAVAILABLE
        return _fail(exc.message, 2 if exc.code == STORAGE_UNAVAILABLE else 1)
    except StoreError as exc:
        return _fail(str(exc), 2)
    except (ConnectionError, OSError) as exc:
        return _fail(f"lost the daemon: {exc}")


# ---- where sessions come from: the daemon, or the database ----------------------------------

class Source:
    """The daemon when it runs (live statuses), else the database as recorded."""

    def __init__(self, client: "Client | None", local: Any) -> None:
        self.client, self.local = client, local

    @classmethod
    async def open(cls, args: argparse.Namespace) -> "Source":
        from .rpc.client import connect_daemon
        try:
            return cls(await connect_daemon(_folder(args), start=False), None)
        except Exception:
            from .core.service import Sessions
            local = Sessions(_folder(args), lambda method, params: None)
            await local.ready()
            return cls(None, local)

    async def close(self) -> None:
        if self.client:
            await self.client.stop()
        if self.local:
            await self.local.shutdown()

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        if self.client:
            return await self.client.request(method, params)
        s = self.local
        if method == "codex/session/list":
            found = await s.list(params.get("project"), None, params.get("all", False))
            return {"sessions": [x.to_wire() for x in found]}
        if method == "codex/project/learnings":
            from .core.projects import resolve_project
            return await s.notes.project_learnings(resolve_project(params["project"]),
                                                   params.get("limit", 1000))
        session = await s.get(None, params["project"], params["name"])
        if method == "codex/session/get":
            return {"session": session.to_wire()}
        if method == "codex/session/transcript":
            return await s.transcript(session, params.get("after", 0), params.get("limit", 1000))
        if method == "codex/session/report":
            return s.report(session)
        raise ValueError(method)


async def _with_source(args: argparse.Namespace, body: Any) -> int:
    source = await Source.open(args)
    try:
        return await body(source)
    finally:
        await source.close()


async def _all_items(source: Source, ref: dict[str, Any], after: int = 0) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = await source.call("codex/session/transcript", {**ref, "after": after, "limit": 1000})
        items += page["items"]
        if not page["items"]:
            return items
        after = page["next"]


def _ref(args: argparse.Namespace) -> dict[str, Any]:
    return {"project": _project(args), "name": args.name}


# ---- run and attach: following a live session -------------------------------------------------

class Follower:
    """Prints one session's output as it streams and answers its approvals."""

    def __init__(self, client: "Client", session_id: str, yes: bool) -> None:
        import asyncio
        from .tools.render import TerminalView
        self.client, self.id, self.yes = client, session_id, yes
        self.view = TerminalView(sys.stdout)
        self.cancelled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.held: list[dict[str, Any]] | None = None  # live output kept back (see hold)
        client.on_notification = self.notified

    def hold(self) -> None:
        """Keep live output back while the transcript's tail is printed."""
        self.held = []

    def release(self, shown_up_to: int, streamed: set[str]) -> None:
        """Print what was kept back, but what the tail already showed (its items, and the
        text of messages it showed streaming)."""
        held, self.held = self.held or [], None
        for item in held:
            if "seq" in item and item["seq"] <= shown_up_to:
                continue
            if "seq" not in item and item.get("itemId") in streamed:
                continue
            self.view.show(item)

    def notified(self, method: str, params: Any) -> None:
        import asyncio
        if method == "codex/session/output" and params["id"] == self.id:
            for item in params["items"]:
                if self.held is not None:
                    self.held.append(item)
                else:
                    self.view.show(item)
        elif method == "codex/session/request" and params["id"] == self.id:
            asyncio.get_running_loop().create_task(self.answer(params["request"]))

    async def answer(self, request: dict[str, Any]) -> None:
        import asyncio
        if request.get("kind") == "promptReview":
            return await self.review(request)
        decision = "accept" if self.yes else "decline"
        if not self.yes and sys.stdin.isatty():
            reply = await asyncio.to_thread(
                input, "Approve? [a]ccept, accept for [s]ession, [d]ecline: ")
            decision = {"a": "accept", "s": "acceptForSession"}.get(reply.strip()[:1].lower(),
                                                                      "decline")
        elif not self.yes:
            print("(not a terminal and no --yes: declining)", file=sys.stderr)
        from .rpc.client import RpcError
        try:
            await self.client.request("codex/session/respond", {
                "id": self.id, "requestId": request["requestId"], "decision": decision})
        except RpcError as exc:  # answered elsewhere meanwhile
            print(f"({exc.message})", file=sys.stderr)


    async def review(self, request: dict[str, Any]) -> None:
        """Learn mode's rewrite: accept it, edit it (in $EDITOR), or send the original."""
        import asyncio
        from .tools.render import review_text
        print(review_text(request), file=sys.stderr)
        answer: dict[str, Any] = {"decision": "accept" if self.yes else "decline"}
        while not self.yes and sys.stdin.isatty():
            reply = await asyncio.to_thread(
                input, "Send the [a]ugmented prompt, [e]dit it, the [o]riginal, or [c]ancel? ")
            choice = reply.strip()[:1].lower()
            if choice == "e":
                try:
                    text = await asyncio.to_thread(_edit, request["augmented"])
                except OSError as exc:
                    print(f"codex-sessions: cannot run your editor ({exc}); set VISUAL or EDITOR",
                          file=sys.stderr)
                    continue
                text = text.rstrip("\n")  # an editor's last newline is not part of the prompt
                answer = {"decision": "edit", "text": text} if text.strip() else {"decision": "cancel"}
            elif choice in ("a", "o", "c"):
                answer = {"decision": {"a": "accept", "o": "decline", "c": "cancel"}[choice]}
            else:
                continue
            break
        if not self.yes and not sys.stdin.isatty():
            print("(not a terminal and no --yes: sending the original prompt)", file=sys.stderr)
        from .rpc.client import RpcError
        try:
            await self.client.request("codex/session/respond", {
                "id": self.id, "requestId": request["requestId"], **answer})
        except RpcError as exc:  # answered elsewhere meanwhile
            print(f"({exc.message})", file=sys.stderr)
        if answer["decision"] == "cancel":
            self.cancelled.set_result(None)


def _edit(text: str) -> str:
    """`text` in the user's $VISUAL/$EDITOR (vi when neither is set); what they saved."""
    import shlex
    import subprocess
    import tempfile
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", suffix=".md", prefix="codex-prompt-", delete=False) as f:
        f.write(text)
    try:
        subprocess.run([*shlex.split(editor), f.name], check=False)  # OSError: no such editor
        with open(f.name, encoding="utf-8") as saved:
            return saved.read()
    finally:
        os.unlink(f.name)


def _detach_on_interrupt(task: asyncio.Future[Any]) -> None:
    import asyncio
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, task.cancel)


def _detached(name: str) -> int:
    print(f"\ndetached: {name} goes on in the background "
          f"(`codex-sessions attach {name}` follows it again)", file=sys.stderr)
    return 130


async def _follow(client: "Client", session: dict[str, Any], turn_id: str | None,
                  turns: int, cancelled: "asyncio.Future[None] | None" = None) -> int:
    """Wait for the session's turn (the one with `turn_id`, else the next after `turns`) to end
    while a Follower streams it; print the report. Ctrl-C detaches. `cancelled`: the user
    cancelled the prompt in learn mode's review, so no turn comes."""
    import asyncio

    def ours(p: dict[str, Any]) -> bool:
        s = p["session"]
        if s["id"] != session["id"]:
            return False
        return (s.get("lastTurn") or {}).get("id") == turn_id if turn_id else s["turns"] > turns

    waiting = asyncio.ensure_future(client.wait_for("codex/session/finished", ours,
                                                    timeout=None))  # type: ignore[arg-type]
    _detach_on_interrupt(waiting)
    try:
        if cancelled is not None:
            await asyncio.wait([waiting, cancelled], return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                print("cancelled in its review: nothing was sent", file=sys.stderr)
                return 1
        finished = await waiting
    except asyncio.CancelledError:
        return _detached(session["name"])
    print("\n" + finished["text"])
    return EXIT_FOR_REPORT[finished["report"]["status"]]


def cmd_run(args: argparse.Namespace) -> int:
    from .rpc.client import connect_daemon

    async def body() -> int:
        client = await connect_daemon(_folder(args))
        try:
            started = await client.request("codex/session/start", {
                "project": _project(args), "name": args.name, "model": args.model,
                "effort": args.effort, "sandbox": args.sandbox, "fresh": args.fresh,
                **({"notes": True} if args.notes else {}), **({"learn": True} if args.learn else {})})
            session = started["session"]
            follower = Follower(client, session["id"], args.yes)
            sent = await client.request("codex/session/send", {"id": session["id"],
                                                               "text": args.prompt})
            return await _follow(client, session, sent["turnId"], sent["session"]["turns"],
                                 follower.cancelled)
        finally:
            await client.stop()
    return _run(body())


def cmd_review(args: argparse.Namespace) -> int:
    from .rpc.client import connect_daemon

    async def body() -> int:
        client = await connect_daemon(_folder(args))
        target: Any = ({"baseBranch": args.base} if args.base else
                       {"commit": args.commit} if args.commit else "uncommittedChanges")
        try:
            session = (await client.request("codex/session/review", {
                "project": _project(args), "target": target, "name": args.name}))["session"]
            follower = Follower(client, session["id"], False)
            for message in client.notifications:  # what came with the answer
                follower.notified(message["method"], message["params"])
            print(f"-- {session['name']}: {session['title']} --", file=sys.stderr)
            return await _follow(client, session, None, 0)
        finally:
            await client.stop()
    return _run(body())


def cmd_request(method: str, shape: Any, show: Any) -> Any:
    """A command that is one request to the daemon: params from the args, a printed answer."""
    def command(args: argparse.Namespace) -> int:
        from .rpc.client import connect_daemon

        async def body() -> int:
            client = await connect_daemon(_folder(args))
            try:
                result = await client.request(method, shape(args))
                if getattr(args, "json", False):
                    print(json.dumps(result, indent=2))
                else:
                    show(result)
                return 0
            finally:
                await client.stop()
        return _run(body())
    return command


def _show_session(verb: str) -> Any:
    return lambda result: print(f"{result['session']['name']}: {verb} ({result['session']['status']})")


def _show_threads(result: dict[str, Any]) -> None:
    for t in result["threads"] or []:
        print(f"{t['threadId']}  {(t['updatedAt'] or '')[:19]}  {t['title'][:70]}")
    if not result["threads"]:
        print("no Codex conversations here that are not sessions already")


def _show_models(result: dict[str, Any]) -> None:
    for m in result["models"]:
        print(f"{m['id']}{' (default)' if m['isDefault'] else ''}  efforts: "
              f"{', '.join(e for e in m['efforts'] if e)}")


def cmd_attach(args: argparse.Namespace) -> int:
    import asyncio
    from .rpc.client import connect_daemon

    async def body() -> int:
        client = await connect_daemon(_folder(args))
        try:
            session = (await client.request("codex/session/get", _ref(args)))["session"]
            follower = Follower(client, session["id"], args.yes)
            follower.hold()
            page = await client.request("codex/session/transcript",
                                        {"id": session["id"], "after": 0, "limit": 10000})
            for item in page["items"][-TAIL_ITEMS:] + page.get("streaming", []):
                follower.view.show(item)
            print(f"-- {session['name']} is {session['status']}; Ctrl-C detaches --", file=sys.stderr)
            follower.release(page["next"], {p["itemId"] for p in page.get("streaming", [])})
            for request in session["pending"]:  # asked before we came: ask now
                asyncio.get_running_loop().create_task(follower.answer(request))
            forever = asyncio.ensure_future(client.closed)  # type: ignore[arg-type]
            _detach_on_interrupt(forever)
            try:
                await forever
            except asyncio.CancelledError:
                return _detached(session["name"])
            return _fail("the daemon went away")
        finally:
            await client.stop()
    return _run(body())


def cmd_tui(args: argparse.Namespace) -> int:
    """Codex's own terminal UI on a session's thread; the editors see what happens there."""
    import asyncio
    from .rpc.client import RpcError, connect_daemon

    async def ask() -> dict[str, Any]:
        client = await connect_daemon(_folder(args))
        try:
            return await client.request("codex/session/tui", _ref(args), timeout=120)
        finally:
            await client.stop()
    try:
        opened = asyncio.run(ask())
    except RpcError as exc:
        return _fail(exc.message)
    env = {**os.environ, **opened["env"]}
    os.execvpe(opened["command"][0], opened["command"], env)
    return 1  # not reached


def cmd_simple(method: str, done: str) -> Any:
    """cancel / kill / resume NAME: one request to the daemon."""
    def command(args: argparse.Namespace) -> int:
        from .rpc.client import connect_daemon

        async def body() -> int:
            client = await connect_daemon(_folder(args))
            try:
                session = (await client.request(method, _ref(args)))["session"]
                print(f"{session['name']}: {done} ({session['status']})")
                return 0
            finally:
                await client.stop()
        return _run(body())
    return command


# ---- reading --------------------------------------------------------------------------------------

def _age(stamp: str | None) -> str:
    return (stamp or "")[:19].replace("T", " ")


def cmd_ls(args: argparse.Namespace) -> int:
    async def body(source: Source) -> int:
        project = _project(args) if args.directory or not args.everywhere else None
        wire = (await source.call("codex/session/list", {"project": project, "all": args.all}))["sessions"]
        if args.json:
            print(json.dumps(wire, indent=2))
            return 0
        if not wire:
            print("no sessions" + (f" in {project}" if project else ""))
            return 0
        rows = [("PROJECT", "NAME", "STATUS", "UPDATED", "")] + [
            (s["project"]["name"], s["name"], s["status"], _age(s["updatedAt"]), s["headline"])
            for s in wire]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4][:70])
        if source.client is None:
            print("(the daemon is not running: statuses as last recorded)", file=sys.stderr)
        return 0
    return _run(_with_source(args, body))


def cmd_show(args: argparse.Namespace) -> int:
    from .tools.render import TerminalView

    async def body(source: Source) -> int:
        view = TerminalView(sys.stdout)
        for item in await _all_items(source, _ref(args)):
            view.show(item)
        return 0
    return _run(_with_source(args, body))


def cmd_report(args: argparse.Namespace) -> int:
    async def body(source: Source) -> int:
        result = await source.call("codex/session/report", _ref(args))
        print(json.dumps(result["report"], indent=2) if args.json else result["text"])
        return 0
    return _run(_with_source(args, body))


def cmd_export(args: argparse.Namespace) -> int:
    from .core.documents import Documents
    from .tools.export import ExportError, export_session

    async def body(source: Source) -> int:
        session = (await source.call("codex/session/get", _ref(args)))["session"]
        folder = Path(args.out or f"codex-session-{session['name']}-{session['id']}")
        try:
            export_session(session, await _all_items(source, _ref(args)), folder, args.force,
                           Documents(_folder(args)).folder(session["id"]))
        except ExportError as exc:
            return _fail(str(exc))
        print(f"exported {session['name']} to {folder}/")
        return 0
    return _run(_with_source(args, body))


def cmd_learnings(args: argparse.Namespace) -> int:
    async def body(source: Source) -> int:
        found = await source.call("codex/project/learnings", {"project": _project(args)})
        if args.json:
            print(json.dumps(found["entries"], indent=2))
        elif args.path:
            print(found["path"])
        elif not found["entries"]:
            print(f"no learnings yet in {found['project']['root']} (turn the notetaker on: "
                  "`codex-sessions run --notes ...`)", file=sys.stderr)
        else:
            print(found["text"], end="")
        return 0
    return _run(_with_source(args, body))


# ---- serve, daemon, demo, doctor ----------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    from .logs import setup_logging
    if args.state_dir:
        os.environ["CODEX_SESSIONS_STATE_DIR"] = args.state_dir
    setup_logging(args.log_file, args.verbose)
    if args.standalone:
        from .serve import standalone_server
        return standalone_server()
    from .relay import relay
    return relay()


def cmd_daemon(args: argparse.Namespace) -> int:
    import asyncio
    folder = _folder(args)
    if args.action == "run":
        if args.http:  # a bad address is refused before anything starts
            from .http.address import HttpSetupError, parse_address
            try:
                parse_address(args.http, args.http_allow_remote)
            except HttpSetupError as exc:
                return _fail(str(exc), 2)
        from .daemon import run_daemon
        return run_daemon(folder, args.idle_exit, Path(args.log_file) if args.log_file else None,
                          args.verbose, args.http, args.http_allow_remote)

    from .codex.reaper import alive
    from .rpc.client import connect_daemon

    async def body() -> int:
        try:
            client = await connect_daemon(folder, start=False)
        except Exception:
            if args.action == "status" and args.json:
                print(json.dumps({"running": False, "stateDir": str(folder)}))
            else:
                print(f"no daemon is running for {folder}")
            return 3 if args.action == "status" else 0
        try:
            if args.action == "stop":
                status = await client.request("codex/daemon/status", {})
                await client.request("codex/daemon/stop", {})
                await client.stop()
                for _ in range(300):
                    if not alive(status["pid"]):
                        break
                    await asyncio.sleep(0.05)
                print(f"stopped the daemon (pid {status['pid']}); its sessions were kept")
                return 0
            status = await client.request("codex/daemon/status", {})
            status["running"] = True
            if args.json:
                print(json.dumps(status, indent=2))
            else:
                for key in ("pid", "version", "socket", "stateDir", "log", "startedAt",
                            "uptimeSeconds", "clients", "liveSessions", "statuses",
                            "idleExitSeconds", "idleFor", "eventLoop"):
                    print(f"{key}: {status.get(key)}")
                http = status.get("http")
                print(f"http: {http['url']} (token in {http['tokenFile']})" if http else
                      f"http: off{' (' + status['httpError'] + ')' if status.get('httpError') else ''}")
            return 0
        finally:
            await client.stop()
    return _run(body())


def cmd_panel(args: argparse.Namespace) -> int:
    """A one-time login link for the panel, from the daemon's HTTP API (started if need be)."""
    from .rpc.client import connect_daemon

    async def body() -> int:
        client = await connect_daemon(_folder(args))
        try:
            status = await client.request("codex/daemon/status", {})
        finally:
            await client.stop()
        http = status.get("http")
        if not http:
            why = f" ({status['httpError']})" if status.get("httpError") else ""
            return _fail(f"the HTTP API is off{why}. Turn it on with `http = \"127.0.0.1:8765\"` "
                         "in ~/.config/codex-sessions/config.toml (then `codex-sessions daemon "
                         "stop`), or run `codex-sessions daemon --http 127.0.0.1:8765`")
        from .http.client import login_link
        try:
            url = await login_link(http["url"], Path(http["tokenFile"]))
        except (OSError, ValueError) as exc:
            return _fail(f"the HTTP API at {http['url']} did not give a login link: {exc}")
        print(url)
        if args.open:
            import webbrowser
            if not webbrowser.open(url):
                return _fail("no browser could be opened here; open the link above yourself")
        return 0
    return _run(body())


def cmd_demo(args: argparse.Namespace) -> int:
    from .tools.demo import run_demo
    return run_demo(args.keep)


def cmd_doctor(args: argparse.Namespace) -> int:
    from .tools.doctor import run_doctor
    return run_doctor(args.state_dir)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="codex-sessions",
                                  description="Named, persistent Codex sessions per project.")
    top.add_argument("--version", action="version", version=f"codex-sessions {__version__}")
    top.add_argument("--state-dir", help="where the session database lives "
                     "(default: $CODEX_SESSIONS_STATE_DIR or ~/.local/state/codex-sessions)")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="for editors: JSON-RPC on stdin/stdout, relayed to the daemon")
    p.add_argument("--standalone", action="store_true",
                   help="no daemon: this process owns its sessions, which end with it")
    p.add_argument("--log-file", help="write logs there instead of stderr")
    p.add_argument("--verbose", action="store_true", help="log every message (transcripts too)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("daemon", help="the process that owns the sessions: run it, or "
                       "`daemon status [--json]`, `daemon stop`")
    p.add_argument("action", nargs="?", default="run", choices=["run", "status", "stop"])
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.add_argument("--idle-exit", type=float, help="seconds to stay once no client is connected "
                   "and nothing runs (default 600)")
    p.add_argument("--log-file", help="write logs there instead of stderr")
    p.add_argument("--verbose", action="store_true", help="log every message (transcripts too)")
    p.add_argument("--http", metavar="HOST:PORT", help="also serve the HTTP API and the web "
                   "panel there, e.g. 127.0.0.1:8765 (port 0 picks one; default: `http` in "
                   "the config file, else off)")
    p.add_argument("--http-allow-remote", action="store_true",
                   help="let --http listen on an address other than loopback")
    p.set_defaults(func=cmd_daemon)

    p = sub.add_parser("panel", help="print a link that logs a browser into the web panel "
                       "(once); --open opens it")
    p.add_argument("--open", action="store_true", help="open the link in the default browser")
    p.set_defaults(func=cmd_panel)

    p = sub.add_parser("run", help="run one prompt in a named session (the live one of that name "
                       "if there is one), stream it, print the report (exit 0 done, 1 failed, "
                       "2 blocked); Ctrl-C detaches")
    p.add_argument("-C", "--directory", help="the project (default: the current directory)")
    p.add_argument("--name", default="main", help="the session's name (default: main)")
    p.add_argument("--model")
    p.add_argument("--effort", help="reasoning effort (see `codex-sessions models`)")
    p.add_argument("--sandbox", default="workspace-write",
                   choices=["read-only", "workspace-write", "danger-full-access"])
    p.add_argument("--fresh", action="store_true",
                   help="a new conversation even if the name had one (the old one is kept, renamed)")
    p.add_argument("--yes", action="store_true", help="accept every approval request (and, "
                   "with --learn, every rewrite)")
    p.add_argument("--notes", action="store_true", help="the notetaker writes learnings.md "
                   "after each turn (spends model tokens)")
    p.add_argument("--learn", action="store_true", help="learn mode: the prompt is rewritten "
                   "with the project's learnings and you choose what is sent (turns notes on)")
    p.add_argument("prompt")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("attach", help="print a session's recent transcript, then follow it live; "
                       "Ctrl-C detaches without stopping it")
    p.add_argument("name", nargs="?", default="main")
    p.add_argument("-C", "--directory", help="the project (default: the current directory)")
    p.add_argument("--yes", action="store_true", help="accept every approval request")
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("tui", help="open Codex's own terminal UI on a session's conversation "
                       "(it joins the daemon's Codex: editors show what you do there)")
    p.add_argument("name", nargs="?", default="main")
    p.add_argument("-C", "--directory", help="the project (default: the current directory)")
    p.set_defaults(func=cmd_tui)

    for name, method, done in (("cancel", "codex/session/cancel", "cancelled"),
                               ("kill", "codex/session/kill", "killed"),
                               ("resume", "codex/session/resume", "resumed")):
        p = sub.add_parser(name, help=f"{name} a session (through the daemon)")
        p.add_argument("name", nargs="?", default="main")
        p.add_argument("-C", "--directory", help="the project (default: the current directory)")
        p.set_defaults(func=cmd_simple(method, done))

    p = sub.add_parser("review", help="a session whose turn is Codex's review of the uncommitted "
                       "changes (or --base BRANCH, --commit SHA); prints its report")
    p.add_argument("-C", "--directory", help="the project (default: the current directory)")
    p.add_argument("--name", help="the session's name (default: review, review-2, ...)")
    p.add_argument("--base", help="review the changes against this branch")
    p.add_argument("--commit", help="review this commit")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("fork", help="continue a session's conversation in a new session")
    p.add_argument("name", help="the session to fork")
    p.add_argument("new_name", help="the new session's name")
    p.add_argument("--at-turn", type=int, help="keep turns 1..N (default: all)")
    p.add_argument("-C", "--directory", help="the project (default: the current directory)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_request(
        "codex/session/fork", lambda a: {"project": _project(a), "name": a.name,
                                         "newName": a.new_name, "atTurn": a.at_turn},
        _show_session("forked")))

    p = sub.add_parser("steer", help="add a thought to a session's running turn")
    p.add_argument("name")
    p.add_argument("text")
    p.add_argument("-C", "--directory", help="the project (default: the current directory)")
    p.set_defaults(func=cmd_request(
        "codex/session/steer", lambda a: {"project": _project(a), "name": a.name, "text": a.text},
        _show_session("steered")))

    p = sub.add_parser("threads", help="Codex's own conversations in this project (to adopt)")
    p.add_argument("-C", "--directory", help="the project (default: the current directory)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_request("codex/project/threads", lambda a: {"project": _project(a)},
                                    _show_threads))

    p = sub.add_parser("adopt", help="make one of Codex's own conversations a named session")
    p.add_argument("thread_id")
    p.add_argument("name")
    p.add_argument("-C", "--directory", help="the project (default: the current directory)")
    p.set_defaults(func=cmd_request(
        "codex/session/adopt", lambda a: {"project": _project(a), "threadId": a.thread_id,
                                          "name": a.name}, _show_session("adopted")))

    p = sub.add_parser("models", help="the models Codex offers, with their reasoning efforts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_request("codex/models", lambda a: {}, _show_models))

    p = sub.add_parser("ls", help="list sessions (live from the daemon, else as recorded)")
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
            p.add_argument("--force", action="store_true", help="overwrite files already there")
        p.set_defaults(func=func)

    p = sub.add_parser("learnings", help="print the project's learnings (the notetaker's "
                       "entries from every session), or with --path the file that holds them")
    p.add_argument("-C", "--directory", help="the project (default: the current directory)")
    p.add_argument("--path", action="store_true", help="print the path of the learnings.md file")
    p.add_argument("--json", action="store_true", help="the entries as JSON")
    p.set_defaults(func=cmd_learnings)

    p = sub.add_parser("demo", help="three sessions at once against a scripted model, offline")
    p.add_argument("--keep", action="store_true", help="keep the throw-away project")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("doctor", help="check Codex, the state folder and the editors")
    p.set_defaults(func=cmd_doctor)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)
