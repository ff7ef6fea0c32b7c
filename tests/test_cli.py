"""The command line, run as a user would: real processes, real Codex, scripted model."""

from __future__ import annotations

import json
import subprocess
import sys

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
    assert "notes" in listed.stdout and "interrupted" in listed.stdout
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
