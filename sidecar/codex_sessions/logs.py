"""Logging for the sidecar and the daemon: warnings by default, never on stdout.

A log file is created 0600. Transcript text (prompts, answers, command output)
stays out of the log unless the user asks for it with `--verbose`: a command's
output can hold secrets.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


class _QuietProtocolErrors(logging.Filter):
    """pygls logs every error answer with a traceback; ours are expected answers."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        from .errors import ProtocolError  # not at import: `serve` (the relay) starts light
        return not isinstance(exc, ProtocolError)


def setup_logging(log_file: Path | str | None, verbose: bool) -> None:
    if log_file:
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        handler: logging.Handler = logging.StreamHandler(os.fdopen(fd, "a", buffering=1))
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_QuietProtocolErrors())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO if log_file
                        else logging.WARNING, handlers=[handler], force=True)
    if not verbose:  # pygls logs whole messages at INFO and DEBUG
        logging.getLogger("pygls").setLevel(logging.ERROR)
        logging.getLogger("aiosqlite").setLevel(logging.WARNING)
        logging.getLogger("asyncio").setLevel(logging.WARNING)
