"""The command line, run as a user would: real processes, real Codex, scripted model."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys

from codex_sessions.testing.client import SidecarClient

CLI = [sys.executable, "-m", "codex_sessions"]


def run(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, **kw)


def test_run_streams_and_exits_0_when_done(offline, project):
    done = run(["run", "-C", str(project), "--name", "fix", "run: echo hi > made.txt"], offline.env())
    assert done.returncode == 0, done.stderr
    assert "$ echo hi > made.txt  (exit 0)" in done.stdout
    assert "Session: fix\nStatus: done" in done.stdout
    assert "Changed: made.txt" in done.stdout
    assert (project / "made.txt").read_text() == "hi\n"


def test_run_exits_1_when_failed_and_2_when_blocked(offline, project):
    failed = run(["run", "-C", str(project), "fail"], offline.env())
    assert failed.returncode == 1
    assert "Status: failed" in failed.stdout
    blocked = run(["run", "-C", str(project), "run-approved: touch nope.txt"], offline.env())
    assert blocked.returncode == 2
    assert "declining" in blocked.stderr and "Status: blocked" in blocked.stdout
    assert not (project / "nope.txt").exists()
    accepted = run(["run", "-C", str(project), "--yes", "run-approved: touch yes.txt"], offline.env())
    assert accepted.returncode == 0 and (project / "yes.txt").exists()


def test_run_with_a_missing_codex_says_what_to_do(offline, project):
    env = offline.env(CODEX_SESSIONS_CODEX="/nonexistent/codex")
    done = run(["run", "-C", str(project), "say: hi"], env)
    assert done.returncode == 1
    assert "npm install" in done.stderr and "/nonexistent/codex" in done.stderr


def test_ls_show_report_export_read_the_database(offline, project, tmp_path):
    assert run(["run", "-C", str(project), "--name", "notes", "run: echo a > a.txt"], offline.env()).returncode == 0
    listed = run(["ls", "-C", str(project)], offline.env())
    assert listed.returncode == 0
    assert "notes" in listed.stdout and "idle" in listed.stdout  # live, from the daemon
    assert "done: Command finished" in listed.stdout  # the sidecar's headline
    as_json = json.loads(run(["ls", "-C", str(project), "--json"], offline.env()).stdout)
    assert [s["name"] for s in as_json] == ["notes"]
    assert as_json[0]["bufferName"].startswith("*codex:ultra:notes:")
    shown = run(["show", "notes", "-C", str(project)], offline.env())
    assert "> run: echo a > a.txt" in shown.stdout and "$ echo a > a.txt  (exit 0)" in shown.stdout
    report = run(["report", "notes", "-C", str(project)], offline.env())
    assert report.stdout.startswith("Session: notes\nStatus: done")
    out = tmp_path / "exported"
    assert run(["export", "notes", "-C", str(project), "-o", str(out)], offline.env()).returncode == 0
    users = [json.loads(line) for line in (out / "user_actions.jsonl").read_text().splitlines()]
    agents = [json.loads(line) for line in (out / "agent_actions.jsonl").read_text().splitlines()]
    assert [u["kind"] for u in users] == ["user"]
    assert {"command", "agent", "fileChange"} <= {a["kind"] for a in agents}
    learnings = (out / "learnings.md").read_text()
    for heading in ("## Timeline", "## Commands and their results", "## Changed files",
                    "## Errors", "## Open questions"):
        assert heading in learnings
    assert "`echo a > a.txt`: exit 0" in learnings and "- a.txt" in learnings
    missing = run(["show", "ghost", "-C", str(project)], offline.env())
    assert missing.returncode == 1 and "ghost" in missing.stderr
    # exports are private, never overwrite without --force, never follow a link
    assert all(stat.S_IMODE((out / f).stat().st_mode) == 0o600 for f in os.listdir(out))
    again = run(["export", "notes", "-C", str(project), "-o", str(out)], offline.env())
    assert again.returncode == 1 and "--force" in again.stderr
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "learnings.md").unlink()
    (out / "learnings.md").symlink_to(victim)
    linked = run(["export", "notes", "-C", str(project), "-o", str(out), "--force"], offline.env())
    assert linked.returncode == 1 and "symbolic link" in linked.stderr
    assert victim.read_text() == "keep me"

    # without a daemon, the database as recorded (no Codex started)
    offline.stop_daemon()
    listed = run(["ls", "-C", str(project)], offline.env())
    assert "notes" in listed.stdout and "interrupted" in listed.stdout
    assert "not running" in listed.stderr
    assert not (offline.state_dir / "daemon.sock").exists()


def test_run_drives_the_live_session_of_that_name(offline, project):
    async def scenario() -> None:
        editor = SidecarClient(env=offline.env())
        await editor.start()
        try:
            s = (await editor.request("codex/session/start", {
                "project": str(project), "name": "review", "prompt": "say: the code word is fig"}))["session"]
            await editor.wait_for("codex/session/finished", lambda p: p["session"]["id"] == s["id"])
            done = await asyncio.to_thread(
                run, ["run", "-C", str(project), "--name", "review", "say: again"], offline.env())
            assert done.returncode == 0, done.stderr
            assert "again" in done.stdout
            # the same session, the same thread: the editor saw the CLI's turn live
            again = await editor.wait_for("codex/session/finished",
                                          lambda p: p["session"]["id"] == s["id"] and p["session"]["turns"] == 2)
            assert again["report"]["summary"] == "again"
            assert "the code word is fig" in str(offline.model.requests[-1]["input"])
        finally:
            await editor.stop()
    asyncio.run(scenario())


def test_attach_streams_and_detaches_without_stopping(offline, project):
    async def scenario() -> None:
        editor = SidecarClient(env=offline.env())
        await editor.start()
        try:
            s = (await editor.request("codex/session/start", {
                "project": str(project), "name": "long", "prompt": "slow: 4"}))["session"]
            await editor.wait_status(s["id"], "running")
            attach = await asyncio.create_subprocess_exec(
                *CLI, "attach", "long", "-C", str(project), env=offline.env(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.DEVNULL)
            assert attach.stdout
            first = await asyncio.wait_for(attach.stdout.readuntil(b"tick"), 20)
            assert b"> slow: 4" in first  # the transcript's tail first
            await asyncio.wait_for(attach.stdout.readuntil(b"tick"), 5)  # then live output
            attach.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(attach.communicate(), 10)
            assert attach.returncode == 130 and b"detached" in err
            got = (await editor.request("codex/session/get", {"id": s["id"]}))["session"]
            assert got["status"] == "running", "detaching stopped nothing"
            await editor.wait_for("codex/session/finished", lambda p: p["session"]["id"] == s["id"])
        finally:
            await editor.stop()
    asyncio.run(scenario())


def test_doctor_names_the_codex_it_found(offline):
    done = run(["doctor"], offline.env())
    assert "codex-cli 0.169.0" in done.stdout
    assert "state" in done.stdout
    broken = run(["doctor"], offline.env(CODEX_SESSIONS_CODEX="no-such-codex"))
    assert broken.returncode == 1
    assert "not found" in broken.stdout and "npm install -g @openai/codex" in broken.stdout


def test_demo_runs_three_sessions_and_prints_three_reports(tmp_path):
    done = subprocess.run([*CLI, "demo"], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("review", "tests", "docs"):
        assert f"Session: {name}\nStatus: done" in done.stdout
    assert "asks to run" in done.stdout and "accepting" in done.stdout
    assert "Changed: tests/test_ok.py\n" in done.stdout and "Changed: README.md\n" in done.stdout
    # statuses were shown live, with all three running at once at some point
    assert any(line.count("running") >= 2 or "waiting" in line for line in done.stdout.splitlines())
