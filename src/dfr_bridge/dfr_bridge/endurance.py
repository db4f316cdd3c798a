"""How long a vehicle can still fly, from how fast its battery has been draining."""
from __future__ import annotations

import math


class EnduranceEstimator:
    """Flight time left down to the reserve, at the drain rate seen lately in flight.

    Until the vehicle has flown long enough to measure a drain rate it assumes the
    nominal endurance (a full battery's hover time). Batteries report in steps (MAVLink
    gives a whole percent), so the rate is measured from one drop to the next, over the
    time between them, and smoothed so that one noisy step does not swing it.
    """

    def __init__(self, nominal_endurance_s: float, reserve_fraction: float, smoothing_s: float = 60.0):
        self.nominal_rate = 1.0 / nominal_endurance_s
        self.reserve = reserve_fraction
        self.smoothing_s = smoothing_s
        self.rate = self.nominal_rate
        self._reference: tuple[float, float] | None = None     # (time, level) of the last change

    def update(self, now_s: float, battery_fraction: float, flying: bool) -> None:
        if not math.isfinite(battery_fraction):
            return
        if not flying:
            self._reference = None
            return
        if self._reference is None or battery_fraction > self._reference[1] or now_s <= self._reference[0]:
            self._reference = (now_s, battery_fraction)        # start, or a reading that went up: restart
            return
        since, level = self._reference
        if battery_fraction < level:
            dt = now_s - since
            measured = (level - battery_fraction) / dt
            weight = min(1.0, dt / self.smoothing_s)
            self.rate += weight * (measured - self.rate)
            self._reference = (now_s, battery_fraction)

    def remaining_s(self, battery_fraction: float) -> float:
        if not math.isfinite(battery_fraction):
            return math.nan
        return max(0.0, battery_fraction - self.reserve) / self.rate
