"""Faults a test or a scenario injects into a simulated vehicle, now or on a schedule.

The same commands arrive through the simulator's `inject_fault` service and from a
scenario's `faults:` list, so what a test proves is what a scenario shows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from dfr_common import px4
from dfr_sim.multirotor import Multirotor

LINK_LOSS = "link_loss"
REFUSE_MODE = "refuse_mode"
REFUSE_ARMING = "refuse_arming"
GPS_LOSS = "gps_loss"
BATTERY_DRAIN = "battery_drain"
BATTERY_LEVEL = "battery_level"
FAULTS = (LINK_LOSS, REFUSE_MODE, REFUSE_ARMING, GPS_LOSS, BATTERY_DRAIN, BATTERY_LEVEL)


class FaultError(ValueError):
    """A fault command that names no such vehicle, fault or mode, or carries a bad value."""


@dataclass(frozen=True)
class FaultCommand:
    vehicle_id: str
    fault: str
    active: bool = True
    argument: str = ""
    value: float = 0.0


def check(command: FaultCommand, vehicle_ids) -> None:
    """Raise FaultError unless the command could be applied."""
    if command.vehicle_id not in vehicle_ids:
        raise FaultError(f"no vehicle '{command.vehicle_id}' (have {', '.join(sorted(vehicle_ids))})")
    if command.fault not in FAULTS:
        raise FaultError(f"unknown fault '{command.fault}' (one of {', '.join(FAULTS)})")
    if command.fault == REFUSE_MODE and command.argument.upper() not in px4.KNOWN_MODES:
        raise FaultError(f"refuse_mode needs a PX4 mode name in 'argument', got '{command.argument}'")
    if command.fault == BATTERY_DRAIN and command.active and not (math.isfinite(command.value)
                                                                  and 0.0 < command.value <= 1000.0):
        raise FaultError(f"battery_drain needs 'value', a drain multiplier in (0, 1000], got {command.value}")
    if command.fault == BATTERY_LEVEL and not (math.isfinite(command.value) and 0.0 <= command.value <= 1.0):
        raise FaultError(f"battery_level needs 'value', a fraction in [0, 1], got {command.value}")


def apply(model: Multirotor, command: FaultCommand, now: float) -> str:
    """Put the fault in force (or lift it); returns what was done, for the log and the caller."""
    fault, active = command.fault, command.active
    if fault == LINK_LOSS:
        model.lose_link(active, now)
        return "link dropped" if active else "link restored"
    if fault == REFUSE_MODE:
        mode = command.argument.upper()
        (model.refused_modes.add if active else model.refused_modes.discard)(mode)
        return f"PX4 {'refuses' if active else 'accepts'} {mode}"
    if fault == REFUSE_ARMING:
        model.arming_fault = (command.argument or "Preflight Fail: injected fault") if active else ""
        return f"arming {'refused: ' + model.arming_fault if active else 'allowed'}"
    if fault == GPS_LOSS:
        model.gps_ok = not active
        model.say(now, "critical" if active else "info", "GPS lost" if active else "GPS regained")
        return "GPS lost" if active else "GPS regained"
    if fault == BATTERY_DRAIN:
        model.drain_multiplier = float(command.value) if active else 1.0
        return f"battery drains {model.drain_multiplier:g} times as fast"
    model.battery_fraction = float(command.value)
    return f"battery set to {command.value:.0%}"


@dataclass(frozen=True)
class ScheduledFault:
    at_s: float
    command: FaultCommand
    duration_s: float | None = None


def parse_schedule(raw, vehicle_ids, where: str = "faults") -> list[ScheduledFault]:
    """A scenario's `faults:` list: [{at_s, vehicle, fault, argument?, value?, duration_s?}]."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise FaultError(f"{where}: expected a list of faults")
    schedule = []
    for i, entry in enumerate(raw):
        here = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise FaultError(f"{here}: expected a mapping")
        unknown = set(entry) - {"at_s", "vehicle", "fault", "argument", "value", "duration_s"}
        if unknown:
            raise FaultError(f"{here}: unknown keys {sorted(unknown)}")
        for key in ("at_s", "vehicle", "fault"):
            if key not in entry:
                raise FaultError(f"{here}: '{key}' is required")
        at_s = _number(entry["at_s"], f"{here}.at_s", low=0.0)
        duration = entry.get("duration_s")
        duration = None if duration is None else _number(duration, f"{here}.duration_s", low=1e-3)
        command = FaultCommand(str(entry["vehicle"]), str(entry["fault"]), True, str(entry.get("argument", "")),
                               _number(entry.get("value", 0.0), f"{here}.value"))
        try:
            check(command, vehicle_ids)
        except FaultError as err:
            raise FaultError(f"{here}: {err}") from None
        schedule.append(ScheduledFault(at_s, command, duration))
    return schedule


def _number(value, where, low=-math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
        raise FaultError(f"{where}: expected a finite number >= {low:g}, got {value!r}")
    return float(value)


class FaultTimeline:
    """Scheduled faults, switched on at `at_s` and off again after `duration_s`."""

    def __init__(self, schedule: list[ScheduledFault]):
        events = []
        for entry in schedule:
            events.append((entry.at_s, entry.command))
            if entry.duration_s is not None:
                c = entry.command
                events.append((entry.at_s + entry.duration_s, FaultCommand(c.vehicle_id, c.fault, False, c.argument,
                                                                           c.value)))
        self._events = sorted(events, key=lambda e: e[0])

    def due(self, now: float) -> list[FaultCommand]:
        due = []
        while self._events and self._events[0][0] <= now + 1e-9:
            due.append(self._events.pop(0)[1])
        return due
