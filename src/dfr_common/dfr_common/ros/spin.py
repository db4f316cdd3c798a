"""Spinning an executor until something holds: the one loop every node test waits on."""
from __future__ import annotations

import time
from collections.abc import Callable


def spin_until(executor, predicate: Callable[[], object], timeout_s: float, what: str,
               where: Callable[[], str] | None = None):
    """Spin until predicate() is truthy and return its value; an AssertionError names what was awaited
    (and where(), e.g. the sim time, says how far the graph got) after timeout_s of wall time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.01)
        value = predicate()
        if value:
            return value
    said = f" ({where()})" if where is not None else ""
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{said}")
