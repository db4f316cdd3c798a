"""Pacing simulated time against the wall clock.

The simulator is the graph's only clock. It advances in whole ticks (integer
nanoseconds, so that timers in other nodes see exact periods) and tries to keep
sim time at `speed` times the wall time elapsed. When the machine cannot keep up it
runs as fast as it can and reports the real-time factor it achieved, instead of
piling up ticks and then bursting through them, which would starve the other nodes.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


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


@dataclass(frozen=True)
class HoldDecision:
    hold: bool                                              # keep sim time where it is for now
    resume: bool = False                                    # a hold just ended: carry on, owing nothing
    released: tuple[tuple[str, float, float], ...] = ()     # (client, sim s behind, wall s held) let go now


class LateHold:
    """Hold sim time while a client has fallen behind it, for at most `max_wall_s` per lapse.

    Faster than real time, a client's scheduling hiccup of a tenth of a wall second is a
    second of sim time: enough for a setpoint stream to look lost, or for perception to
    miss the frames a chase needs. A client still behind after the wall limit is let go
    until it next shows progress, so that one that has died cannot stop the clock.
    """

    def __init__(self, max_lag_s: float, max_wall_s: float):
        self.max_lag_s = max_lag_s
        self.max_wall_s = max_wall_s
        self._since: float | None = None
        self._released: dict[str, float] = {}     # client -> the progress mark it was let go at

    def check(self, wall_now: float, sim_now: float, progress: Mapping[str, float]) -> HoldDecision:
        """`progress`: each client's latest mark in sim time (its last setpoint, its last frame done)."""
        late = {client: mark for client, mark in progress.items()
                if sim_now - mark > self.max_lag_s and mark != self._released.get(client)}
        if not late:
            resume = self._since is not None
            self._since = None
            return HoldDecision(False, resume)
        if self._since is None:
            self._since = wall_now
        held = wall_now - self._since
        if held <= self.max_wall_s:
            return HoldDecision(True)
        self._released.update(late)
        self._since = None
        return HoldDecision(False, True, tuple((client, sim_now - mark, held) for client, mark in late.items()))
