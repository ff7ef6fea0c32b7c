"""What `codex-sessions panel` asks the HTTP API: a one-time login link."""

from __future__ import annotations

from pathlib import Path

import aiohttp


async def login_link(url: str, token_file: Path) -> str:
    """The panel's login link; OSError or ValueError naming the problem."""
    token = token_file.read_text().strip()
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        try:
            async with http.post(f"{url}/api/login-codes",
                                 headers={"Authorization": f"Bearer {token}"}) as answer:
                body = await answer.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise OSError(str(exc)) from None
    if answer.status != 201 or not isinstance(body, dict) or "url" not in body:
        error = body.get("error", {}).get("message") if isinstance(body, dict) else None
        raise ValueError(error or f"HTTP {answer.status}")
    return str(body["url"])
