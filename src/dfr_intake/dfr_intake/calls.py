"""A reported call, checked field by field before anything is published.

Intake is where the public and the control room meet the system: every field of a
call is checked and each problem gets its own message, so a CAD integrator or an
operator can fix the call rather than guess.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from dfr_common.areas import Area
from dfr_common.grading import GRADES


@dataclass(frozen=True)
class Call:
    cad_ref: str
    call_time_s: float
    grade: str
    category: str
    latitude: float
    longitude: float
    location_uncertainty_m: float
    address: str = ""
    description: str = ""
    suspect_description: str = ""


@dataclass(frozen=True)
class CallRules:
    categories: frozenset[str]
    operating_area: Area
    max_uncertainty_m: float = 2000.0
    future_tolerance_s: float = 5.0     # clock skew allowed between CAD and the system
    max_text_length: int = 2000


def call_problems(call: Call, rules: CallRules, now_s: float | None) -> list[str]:
    """Every reason to refuse the call, as 'field: reason'; empty when it is acceptable.

    now_s None: the system's own time is not known yet (sim time before the first /clock), so a call
    cannot be judged to lie in the future; refusing it then rejected a good call at start-up."""
    problems = []
    if not call.cad_ref.strip():
        problems.append("cad_ref: missing; every call needs the CAD reference it came with")
    elif len(call.cad_ref) > 64:
        problems.append("cad_ref: longer than 64 characters")
    if not math.isfinite(call.call_time_s) or call.call_time_s <= 0.0:
        problems.append(f"call_time: {call.call_time_s!r} is not a valid time")
    elif now_s is not None and call.call_time_s > now_s + rules.future_tolerance_s:
        problems.append(f"call_time: {call.call_time_s - now_s:.1f} s in the future")
    if call.grade not in GRADES:
        problems.append(f"grade: {call.grade!r} is not one of {', '.join(GRADES)}")
    if call.category not in rules.categories:
        problems.append(f"category: {call.category!r} is not a known category")
    position_ok = True
    for name, value, limit in (("latitude", call.latitude, 90.0), ("longitude", call.longitude, 180.0)):
        if not math.isfinite(value):
            problems.append(f"{name}: {value!r} is not a finite number")
            position_ok = False
        elif abs(value) > limit:
            problems.append(f"{name}: {value} is outside [-{limit:g}, {limit:g}]")
            position_ok = False
    if position_ok and not rules.operating_area.contains(call.latitude, call.longitude):
        problems.append(f"location: {call.latitude:.5f}, {call.longitude:.5f} is outside the operating "
                        f"area ({rules.operating_area.name})")
    if not math.isfinite(call.location_uncertainty_m) or call.location_uncertainty_m < 0.0:
        problems.append(f"location_uncertainty_m: {call.location_uncertainty_m!r} is not a non-negative number")
    elif call.location_uncertainty_m > rules.max_uncertainty_m:
        problems.append(f"location_uncertainty_m: {call.location_uncertainty_m:g} m is more than "
                        f"{rules.max_uncertainty_m:g} m: too vague to send a drone")
    for name in ("address", "description", "suspect_description"):
        if len(getattr(call, name)) > rules.max_text_length:
            problems.append(f"{name}: longer than {rules.max_text_length} characters")
    return problems
