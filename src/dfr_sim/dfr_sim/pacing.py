"""Pacing simulated time against the wall clock.

The simulator is the graph's only clock. It advances in whole ticks (integer
nanoseconds, so that timers in other nodes see exact periods) and tries to keep
sim time at `speed` times the wall time elapsed. When the machine cannot keep up it
runs as fast as it can and reports the real-time factor it achieved, instead of
piling up ticks and then bursting through them, which would starve the other nodes.
"""
from __future__ import annotations

import math


class Pacer:
    def __init__(self, tick_s: float, speed: float, max_lag_s: float = 0.25):
        if not (tick_s > 0 and math.isfinite(tick_s)):
            raise ValueError(f"tick must be a positive number of seconds, got {tick_s}")
        if not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a positive factor, got {speed}")
        self.tick_ns = int(round(tick_s * 1e9))
        self.speed = speed
        self.max_lag_s = max_lag_s     # wall seconds of backlog before the schedule slips
        self.sim_ns = 0
        self._wall_anchor: float | None = None
        self._sim_anchor_ns = 0
        self._wall_start: float | None = None

    @property
    def sim_time_s(self) -> float:
        return self.sim_ns * 1e-9

    def ticks_due(self, wall_now: float) -> int:
        """How many ticks to run now so that sim time catches up with the schedule."""
        if self._wall_anchor is None:
            self._wall_anchor = self._wall_start = wall_now
            return 0
        target_ns = self._sim_anchor_ns + (wall_now - self._wall_anchor) * self.speed * 1e9
        due = int((target_ns - self.sim_ns + 1000) // self.tick_ns)   # 1 us for float rounding
        max_ticks = max(1, int(self.max_lag_s * self.speed * 1e9 // self.tick_ns))
        if due > max_ticks:
            # Behind by more than the allowed lag: slip the schedule rather than burst.
            self._wall_anchor = wall_now
            self._sim_anchor_ns = self.sim_ns + max_ticks * self.tick_ns
            due = max_ticks
        return max(due, 0)

    def resync(self, wall_now: float) -> None:
        """Carry on from now at the set speed, owing nothing for time spent held."""
        if self._wall_anchor is not None:
            self._wall_anchor = wall_now
            self._sim_anchor_ns = self.sim_ns

    def advance(self) -> int:
        """Account for one tick; returns the new sim time in nanoseconds."""
        self.sim_ns += self.tick_ns
        return self.sim_ns

    def real_time_factor(self, wall_now: float) -> float:
        if self._wall_start is None or wall_now <= self._wall_start:
            return 0.0
        return self.sim_time_s / (wall_now - self._wall_start)
