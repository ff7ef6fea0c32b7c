"""`codex-sessions demo`: three named sessions at once, offline, with an approval.

It runs the real Codex against the scripted model server on 127.0.0.1 in a
throw-away git project, shows the sessions' statuses as they change, answers
the approval one of them asks for, and prints the three reports.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..config import ClientConfig
from ..core.report import render
from ..core.service import Sessions
from ..wire import plain
from ..testing.sandbox import OfflineCodex, make_git_project

SESSIONS = {
    "review": "stream: I read the project. The README is short but accurate, "
              "and nothing else needs review yet.",
    "tests": "run: mkdir -p tests && printf 'def test_ok():\\n    assert 1 + 1 == 2\\n' "
             "> tests/test_ok.py && python3 -c 'print(\"1 passed\")'",
    "docs": "run-approved: printf '\\n## Usage\\nRun the demo.\\n' >> README.md",
}


def run_demo(keep: bool = False) -> int:
    try:
        return asyncio.run(_demo(keep))
    except RuntimeError as exc:
        print(f"codex-sessions demo: {exc}", file=sys.stderr)
        return 1


async def _demo(keep: bool) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="codex-sessions-demo-"))
    world = OfflineCodex(workdir / "offline")
    project = make_git_project(workdir / "demo-project",
                               {"README.md": "# demo-project\n", "app.py": "print('hi')\n"})
    os.environ.update(HOME=str(world.home), CODEX_HOME=str(world.codex_home))  # Codex inherits them
    began = time.monotonic()
    statuses: dict[str, str] = {}
    reports: dict[str, dict[str, Any]] = {}
    sessions: Sessions

    def show_statuses() -> None:
        line = "   ".join(f"{name}: {status:<8}" for name, status in statuses.items())
        print(f"[{time.monotonic() - began:5.1f}s]  {line}", flush=True)

    def emit(method: str, params: Any) -> None:
        params = plain(params)
        if method == "codex/session/changed" and len(reports) < len(SESSIONS):
            s = params["session"]
            if statuses.get(s["name"]) != s["status"]:
                statuses[s["name"]] = s["status"]
                show_statuses()
        elif method == "codex/session/request":
            session = sessions.registry.get(params["id"])
            assert session is not None
            request = params["request"]
            print(f"           {session.name} asks to run `{request.get('command')}` "
                  f"({request.get('reason')}): accepting", flush=True)
            # answered after a moment, as a person would
            asyncio.get_running_loop().call_later(
                0.5, sessions.respond, session, request["requestId"], "accept")
        elif method == "codex/session/finished":
            reports[params["session"]["name"]] = params["report"]

    sessions = Sessions(world.state_dir, emit)
    client = ClientConfig(codex_command=tuple(world.codex_command))
    print(f"Project: {project}\nCodex:   {world.codex} (scripted model at {world.model.base_url})\n")
    try:
        for name, prompt in SESSIONS.items():
            statuses[name] = "-"
            await sessions.start(client, str(project), name, prompt)
        deadline = time.monotonic() + 120
        while len(reports) < len(SESSIONS) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        await sessions.shutdown()
        world.close()
    print()
    for name in SESSIONS:
        report = reports.get(name)
        print(render(report) if report else f"Session: {name}\nStatus: no report (timed out)")
        print()
    if keep:
        print(f"The project is kept at {project}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    ok = len(reports) == len(SESSIONS) and all(r["status"] == "done" for r in reports.values())
    print("Demo finished: three sessions ran at once; each report above was built from what "
          "the sidecar observed." if ok else "Demo did not finish cleanly.")
    return 0 if ok else 1
