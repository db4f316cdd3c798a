"""Wind and GPS error: the slow, correlated disturbances a real vehicle lives with.

Both are first-order Gauss-Markov processes: white noise would average out within a
second, while wind gusts and GPS error wander over seconds to minutes, which is what
makes a hover drift and a ground track wobble. Seeded, so a run can be repeated.
"""
from __future__ import annotations

import math

import numpy as np


class GaussMarkov:
    """A vector process with standard deviation `sigma` and correlation time `tau_s`."""

    def __init__(self, sigma, tau_s: float, rng: np.random.Generator):
        self.sigma = np.asarray(sigma, dtype=float)
        self.tau_s = float(tau_s)
        self._rng = rng
        self.active = bool(np.any(self.sigma))
        # Start in the stationary distribution, so there is no warm-up transient.
        self.value = self.sigma * rng.standard_normal(self.sigma.shape)

    def step(self, dt: float) -> np.ndarray:
        if not self.active:
            return self.value
        decay = math.exp(-dt / self.tau_s)
        self.value = decay * self.value + self.sigma * math.sqrt(1.0 - decay * decay) * \
            self._rng.standard_normal(self.sigma.shape)
        return self.value


class Wind:
    """A mean wind plus gusts, east-north-up m/s; the vehicle's speed limit is an airspeed limit."""

    def __init__(self, mean_east: float, mean_north: float, gust_sigma: float, gust_tau_s: float,
                 rng: np.random.Generator):
        self.mean = np.array([mean_east, mean_north, 0.0])
        self._gust = GaussMarkov((gust_sigma, gust_sigma, 0.3 * gust_sigma), gust_tau_s, rng)
        self.velocity = self.mean + self._gust.value

    def step(self, dt: float) -> np.ndarray | None:
        """Advance; returns the change in wind velocity, which pushes the airframe (None: no gusts)."""
        if not self._gust.active:
            return None
        previous = self.velocity
        self.velocity = self.mean + self._gust.step(dt)
        return self.velocity - previous


class GpsError:
    """What the position estimate gets wrong: horizontal and vertical, metres."""

    def __init__(self, horizontal_sigma: float, vertical_sigma: float, tau_s: float, rng: np.random.Generator):
        self._process = GaussMarkov((horizontal_sigma, horizontal_sigma, vertical_sigma), tau_s, rng)

    @property
    def value(self) -> np.ndarray:
        return self._process.value

    def step(self, dt: float) -> np.ndarray:
        return self._process.step(dt)
