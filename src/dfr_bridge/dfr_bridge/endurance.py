"""How long a vehicle can still fly, from how fast its battery has been draining."""
from __future__ import annotations

import math


class EnduranceEstimator:
    """Flight time left down to the reserve, at the drain rate seen lately in flight.

    Until the vehicle has flown long enough to measure a drain rate it assumes the
    nominal endurance (a full battery's hover time); the estimate then follows the
    measured rate, smoothed so that one noisy sample does not swing it.
    """

    def __init__(self, nominal_endurance_s: float, reserve_fraction: float, smoothing_s: float = 60.0):
        self.nominal_rate = 1.0 / nominal_endurance_s
        self.reserve = reserve_fraction
        self.smoothing_s = smoothing_s
        self.rate = self.nominal_rate
        self._last: tuple[float, float] | None = None

    def update(self, now_s: float, battery_fraction: float, flying: bool) -> None:
        if not math.isfinite(battery_fraction):
            return
        if flying and self._last is not None and now_s > self._last[0]:
            dt = now_s - self._last[0]
            measured = (self._last[1] - battery_fraction) / dt
            if measured > 0:
                weight = min(1.0, dt / self.smoothing_s)
                self.rate += weight * (measured - self.rate)
        self._last = (now_s, battery_fraction) if flying else None

    def remaining_s(self, battery_fraction: float) -> float:
        if not math.isfinite(battery_fraction):
            return math.nan
        return max(0.0, battery_fraction - self.reserve) / self.rate
