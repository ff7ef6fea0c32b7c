"""A deliberately slow sidecar for the Emacs tests: `slow_sidecar.py DELAY COMMAND...`.

Runs COMMAND (the real `codex-sessions serve`) and relays stdio both ways. What
the editor sends goes through at once; everything the sidecar sends (answers
and notifications) reaches the editor DELAY seconds late, in order.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time


def main() -> int:
    delay = float(sys.argv[1])
    child = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    held: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def up() -> None:
        while chunk := os.read(0, 65536):
            child.stdin.write(chunk)
            child.stdin.flush()
        child.stdin.close()

    def down() -> None:
        while chunk := os.read(child.stdout.fileno(), 65536):
            held.put((time.monotonic() + delay, chunk))
        held.put((time.monotonic() + delay, b""))

    threading.Thread(target=up, daemon=True).start()
    threading.Thread(target=down, daemon=True).start()
    while True:
        due, chunk = held.get()
        time.sleep(max(0.0, due - time.monotonic()))
        if not chunk:
            break
        os.write(1, chunk)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
