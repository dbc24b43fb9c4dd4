"""Job functions for the backend tests; a module of its own so Ray workers import it by name."""

from __future__ import annotations

from typing import Any


def echo_or_raise(_session: Any, payload: str) -> list[dict[str, Any]]:
    """One row named after the payload; the payload "bad" raises, as a buggy run would."""
    if payload == "bad":
        raise ValueError("this run is broken\non purpose")
    return [{"run_key": payload}]
