"""Keeping a stream of stamped samples (images, frames) to at most a rate, by their own stamps."""
from __future__ import annotations


def sample_due(last_s: float, stamp_s: float, rate_hz: float) -> bool:
    """Whether a sample stamped stamp_s is due, the last kept being stamped last_s: at least a period
    later, with a millisecond's grace (stamps 0.2 s apart differ by 0.19999... in floating point).
    A rate of 0 or less keeps every sample."""
    return rate_hz <= 0 or stamp_s - last_s >= 1.0 / rate_hz - 1e-3
