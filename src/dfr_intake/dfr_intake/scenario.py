"""Scenario files: the calls of a simulated shift, each at a time after the start.

A scenario replays calls through the same ReportIncident service a control room
uses, so a scenario run exercises the production path, rejections included.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from dfr_common.config_file import load_yaml
from dfr_intake.call_stream import CallStreamError, generate_calls, parse_call_stream
from dfr_intake.calls import Call


class ScenarioError(ValueError):
    """The scenario file is missing or malformed."""


@dataclass(frozen=True)
class ScenarioCall:
    at_s: float                 # sim seconds after the feed starts
    cad_ref: str
    grade: str
    category: str
    latitude: float
    longitude: float
    location_uncertainty_m: float
    address: str = ""
    description: str = ""
    suspect_description: str = ""
    # The simulator actor the call is about, for scoring the chase against ground truth only: never
    # part of the call as reported.
    suspect_actor: str = ""

    def as_call(self, call_time_s: float) -> Call:
        """The call as the control room reports it, at the moment it is reported."""
        return Call(self.cad_ref, call_time_s, self.grade, self.category, self.latitude, self.longitude,
                    self.location_uncertainty_m, self.address, self.description, self.suspect_description)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration_s: float           # the run ends by this sim time, finished or not
    calls: tuple[ScenarioCall, ...]


_TEXT_FIELDS = ("address", "description", "suspect_description", "suspect_actor")


def parse_scenario(data, source: str = "<scenario>") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: expected a mapping at the top level")
    entries = data.get("calls") or []
    if not isinstance(entries, list):
        raise ScenarioError(f"{source}: 'calls' must be a list")
    if data.get("call_stream") is not None:
        # The shift's background calls, drawn from the spec's proportions with its seed; the
        # listed calls (the story's own) come on top.
        try:
            entries = entries + generate_calls(parse_call_stream(data["call_stream"], f"{source}: call_stream"))
        except CallStreamError as err:
            raise ScenarioError(str(err)) from err
    calls = []
    refs = set()
    for i, entry in enumerate(entries):
        where = f"{source}: calls[{i}]"
        if not isinstance(entry, dict):
            raise ScenarioError(f"{where}: expected a mapping")
        missing = [k for k in ("at_s", "cad_ref", "grade", "category", "latitude", "longitude") if k not in entry]
        if missing:
            raise ScenarioError(f"{where}: missing {', '.join(missing)}")
        try:
            # Numbers are taken as given, NaN included: a scenario may test intake's refusals.
            call = ScenarioCall(
                at_s=float(entry["at_s"]), cad_ref=str(entry["cad_ref"]), grade=str(entry["grade"]),
                category=str(entry["category"]), latitude=float(entry["latitude"]),
                longitude=float(entry["longitude"]),
                location_uncertainty_m=float(entry.get("location_uncertainty_m", 50.0)),
                **{k: str(entry.get(k, "")) for k in _TEXT_FIELDS})
        except (TypeError, ValueError) as err:
            raise ScenarioError(f"{where}: {err}") from err
        if not math.isfinite(call.at_s) or call.at_s < 0:
            raise ScenarioError(f"{where}: at_s must be a non-negative number of seconds")
        if call.cad_ref in refs:
            raise ScenarioError(f"{where}: cad_ref {call.cad_ref!r} is used twice; every call has its own")
        refs.add(call.cad_ref)
        calls.append(call)
    duration = data.get("duration_s", 3600.0)
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 < duration < math.inf:
        raise ScenarioError(f"{source}: duration_s must be a positive number of seconds")
    calls.sort(key=lambda c: c.at_s)
    return Scenario(str(data.get("name", Path(source).stem)), str(data.get("description", "")),
                    float(duration), tuple(calls))


def load_scenario(path) -> Scenario:
    return parse_scenario(load_yaml(path, ScenarioError, "scenario"), str(path))
