"""The sessions over HTTP for other clients (a voice assistant, scripts) and the web panel.

- address.py: where it listens (loopback only unless --http-allow-remote).
- server.py: `HttpServer`, what the daemon starts and stops: the guard (Host,
  token, the panel's cookie) and the panel's files.
- api.py: the endpoints, each a protocol method over the core; errors as JSON.
- sse.py: `GET /api/events`, numbered events with a replay buffer.
- auth.py: the token file, the Host check, one-time login codes.
- client.py: what `codex-sessions panel` asks the API (a login link).
- panel/: the page (plain HTML, CSS and JavaScript over the API and the events).

doc/http.md is the reference.
"""
