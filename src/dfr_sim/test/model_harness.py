"""Driving the vehicle model in tests as a MAVROS client would, one physics step at a time."""
import math

from dfr_common import px4
from dfr_sim.multirotor import Multirotor

DT = 0.05


class Clock:
    """Sim time, starting once the estimator has settled after boot."""

    def __init__(self):
        self.now = 10.0


def run(model: Multirotor, clock: Clock, seconds: float, setpoint=None, velocity=None, rate_hz=10.0):
    """Step the model; stream a setpoint at rate_hz if one is given."""
    next_setpoint = clock.now
    for _ in range(int(round(seconds / DT))):
        if (setpoint is not None or velocity is not None) and clock.now >= next_setpoint - 1e-9:
            model.setpoint(clock.now, position=setpoint, velocity=velocity)
            next_setpoint += 1.0 / rate_hz
        clock.now += DT
        model.step(clock.now, DT)


def events(model):
    return [e.text for e in model.events]


def take_off(model, clock, hover_s=6.0):
    assert model.arm(True, clock.now) == (True, px4.MAV_RESULT_ACCEPTED)
    assert model.takeoff(clock.now, math.nan) == (True, px4.MAV_RESULT_ACCEPTED)
    run(model, clock, hover_s)


def enter_offboard(model, clock, height=10.0):
    """Stream a hold setpoint for a second, then switch to OFFBOARD, as a well-behaved client does."""
    run(model, clock, 1.0, setpoint=(0.0, 0.0, height))
    model.set_mode(px4.OFFBOARD, clock.now)
