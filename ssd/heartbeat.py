"""A heartbeat for long silent work: after `every` seconds with nothing written to stderr, one
line says what is still running and for how long (SSD's importance passes, α search, the
evaluation have no progress bar of their own). Progress bars written meanwhile reset the clock,
so the two never talk over each other."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

HEARTBEAT_S = 10.0  # seconds of silence before a line


class _Watched:
    """stderr, remembering when it was last written to."""

    def __init__(self, stream: TextIO) -> None:
        self._stream, self.last = stream, time.monotonic()

    def write(self, text: str) -> int:
        self.last = time.monotonic()
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding… as the real stream
        return getattr(self._stream, name)


@contextmanager
def heartbeat(what: str, *, enabled: bool = True, every: float | None = None) -> Iterator[None]:
    if not enabled:
        yield
        return
    every = HEARTBEAT_S if every is None else every
    real, watched = sys.stderr, _Watched(sys.stderr)
    sys.stderr = watched  # type: ignore[assignment]
    stop, start = threading.Event(), time.monotonic()

    def beat() -> None:
        while not stop.wait(min(1.0, every / 2)):
            if time.monotonic() - watched.last >= every:
                watched.write(f"[{what}] still running: {time.monotonic() - start:.0f} s\n")
                watched.flush()

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sys.stderr = real
