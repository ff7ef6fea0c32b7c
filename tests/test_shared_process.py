"""Ten sessions in one Codex process: apart, concurrent, each approval to its own session."""

from __future__ import annotations


from codex_sessions.testing.client import SidecarClient

from test_sidecar import finished, start


async def test_ten_sessions_of_a_project_share_one_codex_and_stay_apart(offline, project):
    client = SidecarClient(env=offline.env())
    await client.start(maxRunning=10)
    try:
        # long enough to be running still when s7 is cancelled, however busy the machine
        slow = [await start(client, project, f"s{i}", f"slow: {30 if i == 7 else 6 + i * 0.2:.1f}")
                for i in range(8)]
        asks = [await start(client, project, f"a{i}", f"run-approved: touch asked{i}.txt")
                for i in range(2)]
        everyone = slow + asks
        requests = {}
        for s in asks:
            requests[s["id"]] = await client.wait_for("codex/session/request", lambda p, s=s: p["id"] == s["id"])
        for s in slow:
            await client.wait_status(s["id"], "running")
        pids = {(await client.request("codex/session/get", {"id": s["id"]}))["session"]["pid"]
                for s in everyone}
        assert len(pids) == 1, "one Codex process for the project"
        # the approvals reach the right sessions: accept one, decline the other
        for s, decision in zip(asks, ("accept", "decline")):
            await client.request("codex/session/respond", {
                "id": s["id"], "requestId": requests[s["id"]]["request"]["requestId"],
                "decision": decision})
        # cancelling one leaves the others running
        await client.request("codex/session/cancel", {"id": slow[7]["id"]})
        cancelled = await finished(client, slow[7]["id"])
        assert cancelled["session"]["lastTurn"]["status"] == "interrupted"
        for s in slow[:7]:
            got = (await client.request("codex/session/get", {"id": s["id"]}))["session"]
            assert got["status"] == "running", got["name"]
        reports = {s["name"]: (await finished(client, s["id"], timeout=90))["report"] for s in everyone}
        # each transcript holds its own turn only: session i streamed its own number of ticks
        for i, s in enumerate(slow[:7]):
            text = "".join(it["text"] for it in client.output_items(s["id"]) if it["kind"] == "agent")
            assert text.count("tick") == round((6 + i * 0.2) / 0.2), (s["name"], text)
        assert (project / "asked0.txt").exists() and not (project / "asked1.txt").exists()
        assert reports["a0"]["status"] == "done" and reports["a1"]["status"] == "blocked"
    finally:
        await client.stop()
