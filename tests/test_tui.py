"""Codex's own terminal UI on a session's thread, joined to the daemon's Codex (in tmux)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from codex_sessions.testing.client import SidecarClient

from test_sidecar import finished, start


class Terminal:
    """A tmux server of its own with one window running a command."""

    def __init__(self, tmp: Path, command: str, env: dict[str, str], cwd: Path) -> None:
        self.socket = str(tmp / "tmux.sock")
        script = tmp / "run.sh"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()
                          if k in ("HOME", "CODEX_HOME", "CODEX_SESSIONS_STATE_DIR",
                                   "CODEX_SESSIONS_CODEX", "PATH"))
        script.write_text(f"{exports}cd {shlex.quote(str(cwd))}\nexec {command}\n")
        self.tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "45", f"bash {script}")

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t").stdout

    def wait_for(self, text: str, seconds: float = 40) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never showed; the screen:\n{self.screen()}")

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", text)
        time.sleep(0.6)  # typed text arriving in one burst is taken as a paste
        self.tmux("send-keys", "-t", "t", "Enter")

    def close(self) -> None:
        self.tmux("kill-server")


async def test_codex_tui_joins_a_sessions_thread_and_the_editor_sees_it(offline, project, tmp_path):
    editor = SidecarClient(env=offline.env())
    await editor.start()
    term = None
    try:
        s = await start(editor, project, "main", "say: hello from the editor")
        await finished(editor, s["id"])
        env = offline.env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        term = Terminal(tmp_path, "codex-sessions tui main", env, project)
        term.wait_for("hello from the editor")  # the TUI shows the session's history
        term.type("say: typed in the tui")
        done = await finished(editor, s["id"], turns=2)
        assert done["report"]["summary"] == "typed in the tui"
        items = (await editor.request("codex/session/transcript", {"id": s["id"]}))["items"]
        typed = [i for i in items if i["kind"] == "user" and i.get("via") == "codexTui"]
        assert [i["text"] for i in typed] == ["say: typed in the tui"]
        # an approval asked in the TUI's turn reaches the editor, and the editor answers it
        term.type("run-approved: touch from_tui.txt")
        request = await editor.wait_for("codex/session/request", lambda p: p["id"] == s["id"])
        await editor.request("codex/session/respond", {
            "id": s["id"], "requestId": request["request"]["requestId"], "decision": "accept"})
        done = await finished(editor, s["id"], turns=3)
        assert (project / "from_tui.txt").exists() and done["report"]["changed"] == ["from_tui.txt"]
    finally:
        if term is not None:
            term.close()
        await editor.stop()
