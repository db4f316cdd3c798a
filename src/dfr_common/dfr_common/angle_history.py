"""Recent values of a few angles, each with the moment it held: the attitude at a camera image's own time.

An image arrives later than the telemetry of the moment it was taken, and a camera that pans
moves on meanwhile; reading the attitude at the image's stamp rather than the latest keeps the
picture and its geometry together. Values in between samples are interpolated the short way
round the circle; before the first sample the first holds, after the last the last.
"""
from __future__ import annotations

import bisect
import math
from collections import deque


class AngleHistory:
    def __init__(self, depth: int = 50):
        self._times: deque[float] = deque(maxlen=depth)
        self._values: deque[tuple[float, ...]] = deque(maxlen=depth)

    def add(self, t: float, *degrees: float) -> None:
        """Angles (degrees) as they were at time t; a sample older than the newest, or not finite, is dropped."""
        if not math.isfinite(t) or not all(math.isfinite(d) for d in degrees):
            return
        if self._times and t < self._times[-1]:
            if t < self._times[-1] - 1.0:
                self.clear()                    # the clock went back: a new simulation
            else:
                return
        self._times.append(float(t))
        self._values.append(tuple(float(d) for d in degrees))

    def clear(self) -> None:
        self._times.clear()
        self._values.clear()

    @property
    def latest_s(self) -> float:
        """When the newest sample held; -inf before any."""
        return self._times[-1] if self._times else -math.inf

    def __len__(self) -> int:
        return len(self._times)

    def at(self, t: float) -> tuple[float, ...] | None:
        """The angles at time t; None before any sample."""
        if not self._times:
            return None
        times = list(self._times)
        i = bisect.bisect_right(times, t)
        if i == 0:
            return self._values[0]
        if i == len(times):
            return self._values[-1]
        t0, t1 = times[i - 1], times[i]
        a, b = self._values[i - 1], self._values[i]
        share = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
        return tuple(x + share * ((y - x + 180.0) % 360.0 - 180.0) for x, y in zip(a, b))
