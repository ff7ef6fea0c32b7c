"""Baseline: drive one `codex app-server` directly (newline-delimited JSON-RPC on stdio),
as sidecar/codex_sessions/appserver.py does, with the same scripted model."""

from __future__ import annotations

import asyncio
import fcntl
import json
import time
from pathlib import Path
from typing import Any

from codex_sessions.codex.appserver import PIPE_BYTES


class DirectCodex:
    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.argv, self.cwd, self.env = [*argv, "app-server"], cwd, env
        self.proc: asyncio.subprocess.Process | None = None
        self._id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._listeners: list[Any] = []  # callables (stamp, method, params)
        self._reader: asyncio.Task[None] | None = None
        self.thread_id: str | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=self.cwd, env=self.env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, limit=1 << 27)
        # the same 1 MiB stdout pipe as the sidecar asks for (appserver.PIPE_BYTES)
        fcntl.fcntl(self.proc.stdout._transport.get_extra_info("pipe").fileno(),  # type: ignore[union-attr]
                    fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._reader = asyncio.create_task(self._read())
        await self.request("initialize", {"clientInfo": {"name": "bench", "title": "bench",
                                                         "version": "0"}})
        self._send({"method": "initialized", "params": {}})
        result = await self.request("thread/start", {"cwd": str(self.cwd),
                                                     "approvalPolicy": "on-request",
                                                     "sandbox": "workspace-write"})
        self.thread_id = result["thread"]["id"]

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")

    def request(self, method: str, params: dict[str, Any]) -> asyncio.Future[Any]:
        self._id += 1
        future = asyncio.get_running_loop().create_future()
        self._pending[self._id] = future
        self._send({"id": self._id, "method": method, "params": params})
        return future

    async def _read(self) -> None:
        assert self.proc and self.proc.stdout
        while line := await self.proc.stdout.readline():
            stamp = time.monotonic()
            msg = json.loads(line)
            method = msg.get("method")
            if method is None:
                future = self._pending.pop(msg.get("id"), None)
                if future and not future.done():
                    if "error" in msg:
                        future.set_exception(RuntimeError(str(msg["error"])))
                    else:
                        future.set_result(msg.get("result"))
            elif "id" in msg:  # a server request: decline, the benchmarks never need one
                self._send({"id": msg["id"], "result": {"decision": "decline"}})
            else:
                for listener in list(self._listeners):
                    listener(stamp, method, msg.get("params") or {})

    async def turn(self, prompt: str, on_event: Any = None, timeout: float = 300) -> dict[str, Any]:
        """Run one turn; return {start, first_text, first_output, end, events}."""
        done = asyncio.get_running_loop().create_future()
        info: dict[str, Any] = {"first_text": None, "first_output": None, "output_bytes": 0,
                                "output_stamps": [], "events": 0}

        def listen(stamp: float, method: str, params: dict[str, Any]) -> None:
            info["events"] += 1
            if method == "item/agentMessage/delta" and info["first_text"] is None:
                info["first_text"] = stamp
            elif method == "item/commandExecution/outputDelta":
                if info["first_output"] is None:
                    info["first_output"] = stamp
                info["output_bytes"] += len(params.get("delta", ""))
                info["output_stamps"].append(stamp)
            elif method == "turn/completed" and not done.done():
                info["end"] = stamp
                done.set_result(None)
            if on_event:
                on_event(stamp, method, params)

        self._listeners.append(listen)
        try:
            info["start"] = time.monotonic()
            await self.request("turn/start", {"threadId": self.thread_id,
                                              "input": [{"type": "text", "text": prompt}]})
            info["accepted"] = time.monotonic()
            await asyncio.wait_for(done, timeout)
        finally:
            self._listeners.remove(listen)
        return info

    async def close(self) -> None:
        if self.proc and self.proc.returncode is None:
            assert self.proc.stdin
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader:
            self._reader.cancel()
