"""The sessions over HTTP for other clients (a voice assistant, scripts) and the web panel.

- server.py: where it listens (loopback only by default), the guard (Host,
  token, the panel's cookie), the panel's files; `HttpServer` is what the
  daemon starts and stops.
- api.py: the endpoints, each a protocol method over the core; errors as JSON.
- sse.py: `GET /api/events`, numbered events with a replay buffer.
- auth.py: the token file, the Host check, one-time login codes.
- panel/: the page (plain HTML, CSS and JavaScript over the API and the events).

doc/http.md is the reference.
"""

from .server import Address, HttpServer, HttpSetupError, configured_address, parse_address

__all__ = ["Address", "HttpServer", "HttpSetupError", "configured_address", "parse_address"]
