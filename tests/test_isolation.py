"""Parallel without collisions: work trees, diff, merge, discard, write scopes, overlaps."""

from __future__ import annotations

import subprocess

import pytest

from codex_sessions.testing.client import RpcError

from test_sidecar import finished, start


def git(project, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True,
                          check=True).stdout


async def test_worktree_sessions_stay_apart_then_merge_refuse_and_discard(sidecar, project):
    (project / "notes.txt").write_text("uncommitted\n")  # not copied into the work trees
    first = await sidecar.request("codex/session/start", {
        "project": str(project), "name": "left", "isolation": "worktree",
        "prompt": "run: echo left > shared.txt"})
    assert any("uncommitted" in w and "notes.txt" in w for w in first["warnings"])
    left = first["session"]
    right = (await sidecar.request("codex/session/start", {
        "project": str(project), "name": "right", "isolation": "worktree",
        "prompt": "run: echo right > shared.txt"}))["session"]
    for s in (left, right):
        done = await finished(sidecar, s["id"])
        assert done["report"]["changed"] == ["shared.txt"]
    trees = {s["name"]: s["worktree"] for s in (left, right)}
    assert trees["left"]["branch"] == "codex/left" and left["bufferName"].startswith("*codex:ultra:left:")
    from pathlib import Path
    assert (Path(trees["left"]["path"]) / "shared.txt").read_text() == "left\n"
    assert (Path(trees["right"]["path"]) / "shared.txt").read_text() == "right\n"
    assert not (project / "shared.txt").exists(), "the main tree saw neither"
    assert not (Path(trees["left"]["path"]) / "notes.txt").exists()

    # a file inside a session's work tree belongs to the project, as the editors show it
    inside = await sidecar.request("codex/project/resolve", {"project": trees["left"]["path"] + "/shared.txt"})
    assert inside["project"]["root"] == str(project)
    got = await sidecar.request("codex/session/get", {"project": trees["left"]["path"], "name": "left"})
    assert got["session"]["id"] == left["id"]

    diff = await sidecar.request("codex/session/diff", {"id": left["id"]})
    assert diff["files"] == [{"path": "shared.txt", "status": "added", "added": 1, "removed": 0}]
    assert "+left" in diff["diff"]
    assert diff["overlaps"] == [{"path": "shared.txt", "sessions": [left["id"], right["id"]]}]

    merged = await sidecar.request("codex/session/merge", {"id": left["id"]})
    assert merged["files"] == ["shared.txt"] and "codex-sessions: left" in merged["message"]
    assert git(project, "diff", "--cached", "--name-only").split() == ["shared.txt"]
    assert git(project, "log", "--oneline").count("\n") == 1, "staged, not committed"
    with pytest.raises(RpcError) as info:
        await sidecar.request("codex/session/merge", {"id": right["id"]})
    assert info.value.code == -32007 and "shared.txt" in info.value.message
    assert (project / "shared.txt").read_text() == "left\n", "the refused merge touched nothing"

    shutil_rm = Path(trees["right"]["path"])
    subprocess.run(["rm", "-rf", str(shutil_rm)], check=True)  # deleted by hand: pruned, no error
    for s in (left, right):
        gone = (await sidecar.request("codex/session/discard", {"id": s["id"]}))["session"]
        assert gone["worktree"] is None and gone["status"] == "stopped"
    assert git(project, "worktree", "list").count("\n") == 1
    assert "codex/" not in git(project, "branch", "--list")


async def test_two_shared_sessions_changing_one_file_are_told(sidecar, project):
    a = await start(sidecar, project, "alpha", "run: echo a >> same.txt")
    await finished(sidecar, a["id"])
    b = await start(sidecar, project, "beta", "run: echo b >> same.txt")
    await finished(sidecar, b["id"])
    overlaps = [m["params"] for m in sidecar.notifications if m["method"] == "codex/session/overlap"]
    assert overlaps == [{"path": "same.txt", "sessions": [a["id"], b["id"]], "reason": "sameFile"}]
    for s, other in ((a, "beta"), (b, "alpha")):
        report = (await sidecar.request("codex/session/report", {"id": s["id"]}))["report"]
        assert f"overlap: same.txt was also changed by {other}" in report["blockers"]
        assert report["status"] == "blocked"


async def test_write_scopes_warn_and_flag(sidecar, project):
    first = await sidecar.request("codex/session/start", {
        "project": str(project), "name": "parser", "writeScope": ["src/parser/**"]})
    assert first["warnings"] == []
    second = await sidecar.request("codex/session/start", {
        "project": str(project), "name": "lexer", "writeScope": ["src/**"],
        "prompt": "run: echo hi > README.md"})
    assert any("src/**" in w and "parser" in w for w in second["warnings"])
    done = await finished(sidecar, second["session"]["id"])
    assert any("outside its scope" in b and "README.md" in b for b in done["report"]["blockers"])
    flagged = await sidecar.wait_for("codex/session/overlap", lambda p: p["reason"] == "outOfScope")
    assert flagged == {"path": "README.md", "sessions": [second["session"]["id"]], "reason": "outOfScope"}


async def test_an_explorer_cannot_write(sidecar, project):
    s = await start(sidecar, project, "look", "run: echo x > nope.txt", role="explorer",
                    approvalPolicy="never")
    assert s["sandbox"] == "read-only" and s["role"] == "explorer"
    done = await finished(sidecar, s["id"])
    assert not (project / "nope.txt").exists(), "Codex's read-only sandbox refused the write"
    # Codex 0.169.0 sends no command items for a read-only sandbox's commands: what the
    # sidecar can show is the agent's own account, and that nothing changed
    assert done["report"]["changed"] == [] and "exited with code 1" in done["report"]["summary"]


async def test_worktree_needs_git(sidecar, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(RpcError) as info:
        await sidecar.request("codex/session/start", {"project": str(plain), "isolation": "worktree"})
    assert info.value.code == -32006 and "git" in info.value.message
    assert (await sidecar.request("codex/session/list", {"all": True}))["sessions"] == []


async def test_the_fork_of_a_worktree_session_works_on_a_copy_of_its_files(sidecar, project):
    (project / "gone.txt").write_text("tracked\n")
    (project / "kept.log").write_text("tracked though ignored\n")
    (project / ".gitignore").write_text("*.log\n")
    git(project, "add", "-f", "gone.txt", "kept.log", ".gitignore")
    git(project, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "gone")
    source = (await sidecar.request("codex/session/start", {
        "project": str(project), "name": "solo", "isolation": "worktree",
        "prompt": "run: echo draft > draft.txt && rm gone.txt"}))["session"]
    await finished(sidecar, source["id"])
    fork = (await sidecar.request("codex/session/fork", {"id": source["id"], "newName": "branch"}))["session"]
    from pathlib import Path
    mine, theirs = Path(fork["worktree"]["path"]), Path(source["worktree"]["path"])
    assert fork["isolation"] == "worktree" and mine != theirs
    assert fork["worktree"]["branch"] == "codex/branch"
    assert fork["worktree"]["base"] == source["worktree"]["base"]
    # what the conversation was about is there: the new file, the deletion, uncommitted
    assert (mine / "draft.txt").read_text() == "draft\n" and not (mine / "gone.txt").exists()
    assert (mine / "kept.log").exists()
    await sidecar.wait_status(fork["id"], "idle")
    await sidecar.request("codex/session/send", {"id": fork["id"], "text": "run: echo fork >> draft.txt"})
    await finished(sidecar, fork["id"], turns=2)
    assert (mine / "draft.txt").read_text() == "draft\nfork\n"
    assert (theirs / "draft.txt").read_text() == "draft\n", "the source's files are untouched"
    assert not (project / "draft.txt").exists() and (project / "gone.txt").exists()
    diff = await sidecar.request("codex/session/diff", {"id": fork["id"]})
    assert {(f["path"], f["status"]) for f in diff["files"]} == {("draft.txt", "added"), ("gone.txt", "deleted")}
    # a fork of a shared session stays in the shared tree
    shared = await start(sidecar, project, "plain", "say: hi")
    await finished(sidecar, shared["id"])
    twin = (await sidecar.request("codex/session/fork", {"id": shared["id"], "newName": "twin"}))["session"]
    assert twin["isolation"] == "shared" and twin["worktree"] is None
