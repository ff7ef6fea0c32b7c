"""The Emacs front-end, elisp/my-codex.el, in `emacs -Q --batch`.

Each ERT test in tests/emacs/my-codex-tests.el runs in its own Emacs, which
drives the real sidecar, the real Codex and the scripted model server in fresh
git projects named `ultra` and `other`. The tests of this module share one
world (model server, state folder) and so one codex-sessions daemon, as a
user's editors do; each test kills its projects' sessions at its end. ERT
asserts inside Emacs; the test also writes results as Lisp data, which are read
back here with sexpdata and checked independently of the Lisp code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sexpdata

from codex_sessions.testing.sandbox import OfflineCodex, make_git_project
from test_thread_model import _codex_conversation, user_texts

ROOT = Path(__file__).resolve().parents[1]
ELISP = ROOT / "elisp"
ERT_DIR = ROOT / "tests" / "emacs"
EMACS = shutil.which("emacs") or "emacs"


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """One world for the module: its daemon serves every test's Emacs."""
    world = OfflineCodex(tmp_path_factory.mktemp("emacs-world"))
    yield world
    world.close()


def run_emacs(args: list[str], env: dict[str, str], timeout: float = 170) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EMACS, "-Q", "--batch", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)


def read_results(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = sexpdata.loads(path.read_text(encoding="utf-8"))
    return {sexpdata.dumps(key): value for key, value in data}


def emacs_env(offline, project: Path, tmp_path: Path, result: str = "result.el") -> dict[str, str]:
    """The environment of a test's Emacs: the world, the projects, where results go."""
    other = tmp_path / "other"
    if not other.exists():
        make_git_project(other)
    flags = tmp_path / "flags"
    flags.mkdir(exist_ok=True)
    return offline.env(MY_CODEX_TEST_PYTHON=sys.executable,
                       MY_CODEX_TEST_PROJECT=str(project),
                       MY_CODEX_TEST_OTHER=str(other.resolve()),
                       MY_CODEX_TEST_RESULT=str(tmp_path / result),
                       MY_CODEX_TEST_FLAGS=str(flags),
                       MY_CODEX_TEST_SLOW_SIDECAR=str(ERT_DIR / "slow_sidecar.py"))


def ert_args(name: str) -> list[str]:
    return ["-L", str(ELISP), "-L", str(ERT_DIR), "-l", "my-codex-tests",
            "--eval", f'(ert-run-tests-batch-and-exit "\\\\`{name}\\\\\'")']


def check_ert(returncode: int, output: str) -> None:
    assert returncode == 0, output[-12000:]
    assert re.search(r"Ran 1 tests?, 1 results? as expected", output), output[-4000:]


def run_ert(name: str, offline, project: Path, tmp_path: Path, result: str = "result.el") -> dict[str, Any]:
    """Run the ERT test NAME alone; fail with its output unless it passed."""
    env = emacs_env(offline, project, tmp_path, result)
    proc = run_emacs(ert_args(name), env)
    check_ert(proc.returncode, proc.stdout + proc.stderr)
    return read_results(tmp_path / result)


def expected_buffer_name(root: str, session: str) -> str:
    digest = hashlib.sha1((root + "/").encode()).hexdigest()[:8]
    return f"*codex:{Path(root).name}:{session}:{digest}*"


def test_start_buffer_names_and_streaming(offline, project, tmp_path):
    r = run_ert("my-codex-test-start-names-and-streaming", offline, project, tmp_path)
    assert r["root"] == str(project)
    assert r["main-buffer"] == r["main-buffer-name"] == expected_buffer_name(str(project), "main")
    assert r["review-buffer"] == r["review-buffer-name"] == expected_buffer_name(str(project), "review")
    assert r["main-buffer"] == "*codex:ultra:main:%s*" % r["project-hash"]
    snapshots = r["snapshots"]
    assert len(set(snapshots)) >= 3 and snapshots == sorted(snapshots) and snapshots[-1] == 8


def test_buffer_prompt_commands_and_files(offline, project, tmp_path):
    r = run_ert("my-codex-test-buffer-prompt-commands-and-files", offline, project, tmp_path)
    assert r["numbers"] == "".join(f"{i}\n" for i in range(1, 21))
    assert r["opened"] == str(project / "numbers.txt")


def test_approval_round_trip(offline, project, tmp_path):
    r = run_ert("my-codex-test-approval-round-trip", offline, project, tmp_path)
    assert r["approved"] is True
    assert (project / "approved.txt").exists()
    assert not (project / "declined.txt").exists()
    assert (project / "for-session.txt").exists()


def test_kill_and_kill_all(offline, project, tmp_path):
    r = run_ert("my-codex-test-kill-and-kill-all", offline, project, tmp_path)
    assert r["after-kill-all"] == [["other", "main", "idle"]]
    assert r["killed-all"] is True


def test_rename_buffer_follows(offline, project, tmp_path):
    r = run_ert("my-codex-test-rename-buffer-follows", offline, project, tmp_path)
    assert r["old-buffer"] == expected_buffer_name(str(project), "main")
    assert r["new-buffer"] == r["new-buffer-name"] == expected_buffer_name(str(project), "review")


def test_list_ordering_and_keys(offline, project, tmp_path):
    r = run_ert("my-codex-test-list-ordering-and-keys", offline, project, tmp_path)
    rows = [line.split() for line in r["list-text"].splitlines() if line.strip()]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("1", "beta", "waiting"), ("2", "gamma", "failed"), ("3", "delta", "running"),
        ("4", "alpha", "idle")]
    # the project's list: no Project column; no column that would be empty (model, tree, !)
    assert re.search(r"^ *#\s+Name\s+Status\s+Elapsed\s+Tokens\s+Headline *$", r["list-header"])
    assert "waits: touch beta.txt" in r["list-text"]


def git(project: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True,
                          check=True).stdout


def test_worktrees_diff_merge_and_discard(offline, project, tmp_path):
    r = run_ert("my-codex-test-worktrees-diff-merge-discard", offline, project, tmp_path)
    assert "+left" in r["diff-text"] and "+right" not in r["diff-text"]
    assert "shared.txt" in r["refused"]
    assert (project / "shared.txt").read_text() == "left\n"
    log = git(project, "log", "-1", "--format=%B")
    assert "codex-sessions: left" in log and git(project, "status", "--porcelain").strip() == "?? notes.txt"
    assert git(project, "worktree", "list").count("\n") == 1
    assert "codex/" not in git(project, "branch", "--list")
    assert not Path(r["left-tree"]).exists()


def test_overlaps_and_scopes(offline, project, tmp_path):
    run_ert("my-codex-test-overlaps-and-scopes", offline, project, tmp_path)


def asked_with(offline, text: str) -> list[str]:
    """The user messages of the latest request to the model whose last one was TEXT."""
    for body in reversed(offline.model.requests):
        texts = user_texts(body)
        if texts and texts[-1] == text:
            return texts
    raise AssertionError(f"the model was never asked {text!r}")


def test_fork_from_here(offline, project, tmp_path):
    run_ert("my-codex-test-fork-from-here", offline, project, tmp_path)
    assert asked_with(offline, "say: four") == ["say: one", "say: four"]
    assert asked_with(offline, "say: five") == ["say: one", "say: two", "say: three", "say: five"]


def test_steer_a_running_turn(offline, project, tmp_path):
    run_ert("my-codex-test-steer-a-running-turn", offline, project, tmp_path)
    assert asked_with(offline, "say: steered") == ["slow: 20", "say: steered"]


def test_review(offline, project, tmp_path):
    run_ert("my-codex-test-review", offline, project, tmp_path)
    assert any("against the base branch 'main'" in t for t in user_texts(offline.model.requests[-1]))


def test_models_usage_and_limits(offline, project, tmp_path):
    r = run_ert("my-codex-test-models-usage-and-limits", offline, project, tmp_path)
    body = next(b for b in reversed(offline.model.requests) if user_texts(b)[-1:] == ["say: tuned"])
    assert body["model"] == "mock-model-b" and body["reasoning"]["effort"] == "high"
    assert "mock-model-b" not in r["models"]  # offered from Codex's catalogue, typed freely


def test_adopt_a_codex_conversation(offline, project, tmp_path):
    """A conversation made by driving `codex app-server` directly, as Codex's own clients do."""
    async def converse() -> None:
        server, _ = await _codex_conversation(offline, project, "say: the password is swordfish")
        await server.close()
    asyncio.run(converse())
    run_ert("my-codex-test-adopt-a-codex-conversation", offline, project, tmp_path)
    assert asked_with(offline, "say: recalled") == ["say: the password is swordfish", "say: recalled"]


def test_codex_tui(offline, project, tmp_path):
    run_ert("my-codex-test-codex-tui", offline, project, tmp_path)
    assert asked_with(offline, "say: typed in the tui") == ["say: hello from emacs", "say: typed in the tui"]


def test_numbered_jumps(offline, project, tmp_path):
    run_ert("my-codex-test-numbered-jumps", offline, project, tmp_path)


def test_errors_are_user_errors(offline, project, tmp_path):
    r = run_ert("my-codex-test-errors-are-user-errors", offline, project, tmp_path)
    assert r["bad-name"].startswith("name: ")
    assert "'bad name'" in r["bad-name"] or '"bad name"' in r["bad-name"]
    assert r["bad-new-name"].startswith("newName:")
    assert "nothing to cancel" in r["nothing-to-cancel"]


def test_cancel_report_and_notify(offline, project, tmp_path):
    r = run_ert("my-codex-test-cancel-report-and-notify", offline, project, tmp_path)
    assert r["report"].splitlines()[0] == "Session: main"
    assert [line.split(":")[0] for line in r["report"].splitlines()] == [
        "Session", "Status", "Summary", "Changed", "Verified", "Blockers", "Next"]


def test_switch_rebuilds_after_restart(offline, project, tmp_path):
    r = run_ert("my-codex-test-switch-rebuilds-after-restart", offline, project, tmp_path)
    assert "> say: remember the lighthouse" in r["before"]
    assert "> say: remember the lighthouse" in r["rebuilt"]
    assert "remember the lighthouse\n" in r["rebuilt"].split("> say: remember the lighthouse", 1)[1]


def test_sidecar_crash_restarts(offline, project, tmp_path):
    r = run_ert("my-codex-test-sidecar-crash-restarts", offline, project, tmp_path)
    text = r["after-crash"]
    assert text.index("before the crash") < text.index("after the crash")


def test_append_cost_is_flat(offline, project, tmp_path):
    r = run_ert("my-codex-test-append-cost-is-flat", offline, project, tmp_path)
    short, long = r["append-seconds"]
    assert long < 4 * short + 0.05


def test_exit_question_and_daemon_stop(offline, project, tmp_path):
    r = run_ert("my-codex-test-exit-question-and-daemon-stop", offline, project, tmp_path)
    with pytest.raises(ProcessLookupError):
        os.kill(r["codex-pid"], 0)


def test_undo_in_the_prompt(offline, project, tmp_path):
    run_ert("my-codex-test-undo-in-the-prompt", offline, project, tmp_path)


def test_items_in_order_once(offline, project, tmp_path):
    run_ert("my-codex-test-items-in-order-once", offline, project, tmp_path)


def test_configuration_reaches_the_sidecar(offline, project, tmp_path):
    r = run_ert("my-codex-test-configuration", offline, project, tmp_path)
    assert r["state-files"], "the sidecar kept no records in my-codex-state-directory"
    proc = subprocess.run([sys.executable, "-m", "codex_sessions", "--state-dir", str(offline.state_dir),
                           "ls", "-C", str(project), "--all", "--json"], env=offline.env(),
                          text=True, capture_output=True, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout) == [], proc.stdout + proc.stderr
    assert "model_reasoning_effort=low" in r["codex-command"]


def test_names_resume_and_fresh(offline, project, tmp_path):
    run_ert("my-codex-test-names-resume-and-fresh", offline, project, tmp_path)


def test_pending_from_anywhere(offline, project, tmp_path):
    r = run_ert("my-codex-test-pending-from-anywhere", offline, project, tmp_path)
    lines = [line.split(None, 3) for line in r["inbox"].splitlines() if line.strip()]
    assert sorted((row[0], row[1], row[3]) for row in lines) == [
        ("other", "main", "touch two.txt"), ("ultra", "main", "touch one.txt"),
        ("ultra", "side", "touch three.txt")]
    assert (tmp_path / "other" / "two.txt").exists()
    assert not (project / "three.txt").exists()


def test_comint_habits_and_context(offline, project, tmp_path):
    run_ert("my-codex-test-comint-habits-and-context", offline, project, tmp_path)


def test_header_retry_storage_and_messages(offline, project, tmp_path):
    run_ert("my-codex-test-header-retry-storage-and-messages", offline, project, tmp_path)


def test_slow_sidecar_never_blocks(offline, project, tmp_path):
    run_ert("my-codex-test-slow-sidecar-never-blocks", offline, project, tmp_path)


def test_turn_outlives_emacs_and_another_emacs_takes_over(offline, project, tmp_path):
    """A turn started in one Emacs goes on after it exits; the next Emacs streams and answers it."""
    r = run_ert("my-codex-test-daemon-first-emacs", offline, project, tmp_path, "first.el")
    os.kill(r["long-pid"], 0)  # its Codex still runs, though that Emacs is gone
    status = daemon_status(offline)
    assert status["statuses"].get("running", 0) + status["statuses"].get("waiting", 0) >= 2
    run_ert("my-codex-test-daemon-second-emacs", offline, project, tmp_path, "second.el")
    assert (project / "asked.txt").exists()


def test_two_emacsen_at_once_see_every_notification(offline, project, tmp_path):
    env = emacs_env(offline, project, tmp_path, "watcher.el")
    watcher = subprocess.Popen([EMACS, "-Q", "--batch", *ert_args("my-codex-test-duo-watcher")],
                               cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        run_ert("my-codex-test-duo-driver", offline, project, tmp_path, "driver.el")
        output, _ = watcher.communicate(timeout=120)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    check_ert(watcher.returncode, output)
    text = read_results(tmp_path / "watcher.el")["watcher-text"]
    assert "Approval r1: accept" in text and text.count("Codex:\n" + "tick " * 10) == 1
    assert (project / "duo.txt").exists()


NOTETAKER = "codex-sessions notetaker"


def task_prompts(offline) -> list[str]:
    """The last user message of every request to the model but the notetaker's, in order."""
    prompts = [user_texts(body)[-1] for body in offline.model.requests if user_texts(body)]
    return [p for p in prompts if not p.startswith(NOTETAKER)]


def test_notes_option_and_learnings(offline, project, tmp_path):
    r = run_ert("my-codex-test-notes-option-and-learnings", offline, project, tmp_path)
    learnings = Path(r["learnings-file"]).read_text(encoding="utf-8")
    assert re.search(r"^## noted · Turn 1 ", learnings, re.M), learnings
    assert "- Takeaway: a project can ask for notes\n" in learnings
    assert "plain" not in learnings  # its notes were on for no turn


def test_learn_mode_review(offline, project, tmp_path):
    """Accept, edit and decline each send exactly the chosen text; cancel sends nothing."""
    r = run_ert("my-codex-test-learn-mode-review", offline, project, tmp_path)
    assert "-say: original one" in r["review-text"] and "+say: rewritten one" in r["review-text"]
    sent = [p for p in task_prompts(offline)
            if any(w in p for w in ("original", "rewritten", "edited", "say: 4"))]
    assert sent == ["say: rewritten one", "say: edited two",
                    "say: original three\nrewrite: say: rewritten three\nnote-gap: what conftest.py is",
                    "say: rewritten five", "say: original six\nrewrite: say: 6\nnote-resolved"], sent
    rewrites = [user_texts(b)[-1] for b in offline.model.requests
                if user_texts(b) and user_texts(b)[-1].startswith(NOTETAKER + ": rewrite")]
    assert sum("say: four\nrewrite: say: 4" in t for t in rewrites) == 1  # rewritten, then nothing sent


def daemon_status(offline) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "codex_sessions", "--state-dir", str(offline.state_dir),
                           "daemon", "status", "--json"], env=offline.env(), text=True,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_header_and_mode_line_in_a_terminal(offline, project, tmp_path):
    """format-mode-line gives nothing in batch, so this runs emacs -nw under script(1)."""
    assert shutil.which("script"), "script(1) (util-linux) is needed for a pseudo-terminal"
    other = make_git_project(tmp_path / "other")
    result_file, messages = tmp_path / "result.el", tmp_path / "messages.txt"
    env = offline.env(MY_CODEX_TEST_PYTHON=sys.executable, MY_CODEX_TEST_PROJECT=str(project),
                      MY_CODEX_TEST_OTHER=str(other), MY_CODEX_TEST_RESULT=str(result_file),
                      MY_CODEX_TEST_MESSAGES=str(messages), TERM="xterm-256color")
    command = " ".join([EMACS, "-nw", "-Q", "-L", str(ELISP), "-L", str(ERT_DIR),
                        "-l", "my-codex-tty-tests", "-f", "my-codex-tty-run"])
    proc = subprocess.run(["script", "-qec", command, "/dev/null"], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=170)
    log = messages.read_text() if messages.exists() else proc.stdout.decode(errors="replace")[-4000:]
    assert proc.returncode == 0, log
    r = read_results(result_file)
    assert "ultra/main" in r["header"] and "1 approval pending" in r["header"]
    assert "Codex[1 waiting]" in r["mode-line"] and "*invalid*" not in r["mode-line"]
    assert (project / "tty.txt").exists()


class Terminal:
    """An `emacs -nw` in a tmux server of its own, driven by keys and read off the screen."""

    def __init__(self, name: str, command: str, env: dict[str, str], tmp_path: Path) -> None:
        self.socket = f"my-codex-{name}-{os.getpid()}"
        script = tmp_path / f"{name}.sh"
        exports = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items()
                          if key.startswith(("MY_CODEX_", "CODEX_", "HOME", "PATH")))
        script.write_text(f"{exports}export TERM=xterm-256color\ncd {shlex.quote(str(ROOT))}\n"
                          f"exec {command}\n")
        self.tmux("new-session", "-d", "-s", "t", "-x", "150", "-y", "40", f"bash {script}")

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], text=True, capture_output=True,
                              timeout=30)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t").stdout

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", "t").returncode == 0

    def wait(self, what: str, predicate, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; the screen:\n{self.screen() if self.alive() else '(gone)'}")

    def prompt_line(self) -> str:
        lines = self.screen().splitlines()
        index = next(i for i, line in enumerate(lines) if line.startswith("--- prompt (C-c C-c"))
        return lines[index + 1].rstrip()

    def close(self) -> None:
        self.tmux("kill-server")


def test_undo_and_exit_question_in_a_real_terminal(offline, project, tmp_path):
    """emacs -nw in tmux: C-/ while output streams goes back a step each time; C-x C-c asks,
    n keeps Emacs, y exits, and the turn goes on in the daemon."""
    assert shutil.which("tmux"), "tmux is needed to drive Emacs in a real terminal"
    env = emacs_env(offline, project, tmp_path)
    start = ('(progn (cd (getenv "MY_CODEX_TEST_PROJECT")) (switch-to-buffer (my-codex-start-session '
             '"main" "slow: 20")) (goto-char (point-max)))')
    term = Terminal("undo", f"{EMACS} -nw -Q -L elisp -L tests/emacs -l my-codex-test-helpers "
                    f"--eval {shlex.quote(start)}", env, tmp_path)
    try:
        term.wait("the turn streaming", lambda: "tick tick" in term.screen())
        mode_line = next(line for line in term.screen().splitlines() if "*codex:ultra:main" in line)
        assert ":**" not in mode_line, mode_line  # streaming does not mark the buffer modified
        term.keys("hello")
        term.wait("hello typed", lambda: term.prompt_line() == "hello")
        term.keys("C-a", "C-e", " world")
        term.wait("hello world typed", lambda: term.prompt_line() == "hello world")
        ticks = term.screen().count("tick")
        for expected in ("hello", "", ""):
            term.wait("more output", lambda: term.screen().count("tick") > ticks)
            ticks = term.screen().count("tick")
            term.keys("C-_")
            time.sleep(0.5)
            assert term.prompt_line() == expected, term.screen()
        term.wait("the end of undo", lambda: "No further undo information" in term.screen())
        term.keys("C-x", "C-c")
        term.wait("the exit question", lambda: "will go on in the background after Emacs exits"
                  in term.screen())
        assert "1 Codex turn under way (ultra/main)" in term.screen()
        term.keys("n")
        time.sleep(1)
        assert term.alive() and "*codex:ultra:main" in term.screen()
        term.keys("C-x", "C-c")
        term.wait("the exit question again", lambda: "will go on in the background" in term.screen())
        term.keys("y")
        term.wait("Emacs gone", lambda: not term.alive(), 15)
        status = daemon_status(offline)
        assert status["statuses"].get("running", 0) >= 1, status
    finally:
        term.close()


def test_byte_compiles_cleanly_and_checkdoc_is_silent(tmp_path):
    script = tmp_path / "lint.el"
    script.write_text(r'''
(require 'checkdoc)
(setq byte-compile-error-on-warn t
      byte-compile-dest-file-function
      (lambda (file) (expand-file-name (concat (file-name-nondirectory file) "c")
                                       (getenv "LINT_OUT"))))
(let ((problems nil))
  (dolist (file (directory-files (getenv "LINT_ELISP") t "\\.el\\'"))
    (unless (byte-compile-file file)
      (push (list 'compile file) problems))
    (let ((checkdoc-create-error-function
           (lambda (text start _end &optional _unfixable)
             (push (list 'checkdoc file text
                         (with-current-buffer (find-file-noselect file)
                           (line-number-at-pos start)))
                   problems)
             nil))
          (checkdoc-autofix-flag 'never))
      (with-current-buffer (find-file-noselect file)
        (checkdoc-current-buffer t))))
  (prin1 (list 'problems problems)))
''')
    env = dict(os.environ, LINT_OUT=str(tmp_path), LINT_ELISP=str(ELISP))
    proc = run_emacs(["-L", str(ELISP), "-l", str(script)], env, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "(problems nil)" in proc.stdout, output
    assert "Warning" not in proc.stderr and "Error" not in proc.stderr, output
    compiled = sorted(p.name for p in tmp_path.glob("*.elc"))
    assert compiled == sorted(p.name + "c" for p in ELISP.glob("*.el")) and compiled
    assert not list(ELISP.glob("*.elc"))


def test_package_headers_and_autoloads():
    text = (ELISP / "my-codex.el").read_text()
    assert text.startswith(";;; my-codex.el --- ")
    assert "lexical-binding: t" in text.splitlines()[0]
    assert ';; Package-Requires: ((emacs "28.1"))' in text
    assert ";;; my-codex.el ends here" in text
    for command in ("my-codex-start-session", "my-codex-list-sessions", "my-codex-switch-session",
                    "my-codex-kill-session", "my-codex-kill-all-sessions", "my-codex-rename-session",
                    "my-codex-send", "my-codex-cancel", "my-codex-session-report",
                    "my-codex-resume-session"):
        assert f";;;###autoload\n(defun {command} " in text, command
