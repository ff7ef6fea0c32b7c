"""`codex-sessions doctor`: which Codex, which version, and what is missing."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys

from .. import __version__
from ..config import codex_command
from ..paths import state_dir
from ..store import Store, StoreError


def _run(argv: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return done.returncode, (done.stdout + done.stderr).strip()


def run_doctor(folder_given: str | None) -> int:
    problems = 0

    def line(ok: bool | None, what: str, detail: str, advice: str = "") -> None:
        nonlocal problems
        mark = {True: "ok  ", False: "FAIL", None: "note"}[ok]
        print(f"{mark}  {what}: {detail}")
        if ok is False:
            problems += 1
        if advice and ok is not True:
            print(f"      -> {advice}")

    line(True, "codex-sessions", f"{__version__} (Python {sys.version.split()[0]})")
    command = codex_command(None)
    source = "CODEX_SESSIONS_CODEX" if os.environ.get("CODEX_SESSIONS_CODEX") else "default"
    binary = shutil.which(command[0])
    if binary is None:
        line(False, "Codex", f"{command[0]!r} not found ({source})",
             "install it with `npm install -g @openai/codex`, or set CODEX_SESSIONS_CODEX "
             "to its path")
    else:
        code, out = _run([*command, "--version"])
        line(code == 0, "Codex", f"{binary} ({source}): {out.splitlines()[0] if out else code}",
             "check that this binary runs: " + " ".join(command) + " --version")
        if code == 0:
            code, out = _run([*command, "login", "status"])
            line(True if code == 0 else None, "Codex login",
                 out.splitlines()[0] if out else f"exit {code}",
                 "run `codex login`, or configure a model provider with an API key "
                 "(not needed for the demo)")
    folder = state_dir(folder_given)
    try:
        store = Store(folder, "doctor")

        async def check() -> None:
            await store.open()
            await store.close()
        asyncio.run(check())
        line(True, "state", f"{store.path}" + (f" ({store.notice})" if store.notice else ""))
    except StoreError as exc:
        line(False, "state", str(exc), "set CODEX_SESSIONS_STATE_DIR to a writable folder")
    for editor, minimum in (("emacs", "28.1"), ("nvim", "0.10")):
        path = shutil.which(editor)
        if path:
            _, out = _run([path, "--version"])
            line(True, editor, out.splitlines()[0] if out else path)
        else:
            line(None, editor, f"not found (needed only for its front-end, {minimum}+)")
    print("\nAll set." if problems == 0 else f"\n{problems} problem(s) found.")
    return 0 if problems == 0 else 1
