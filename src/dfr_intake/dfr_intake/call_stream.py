"""A seeded stream of 999 calls for a simulated shift, from a few published proportions.

A scenario can list its calls one by one, or describe the shift and let this module draw
them: how many calls an hour (with an evening profile), which categories in what shares,
each category's grade mix, where calls come from (hotspots and a background area), and
how often a second caller reports the same event. The same spec and seed always give the
same calls, so a scenario replayed against two dispatch policies sees the same evening.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dfr_common.grading import GRADES


class CallStreamError(ValueError):
    """The call_stream section of a scenario is malformed."""


@dataclass(frozen=True)
class Hotspot:
    name: str
    latitude: float
    longitude: float
    radius_m: float             # one standard deviation of the calls around it
    weight: float = 1.0


@dataclass(frozen=True)
class CategoryMix:
    share: float                                 # of all calls
    grades: Mapping[str, float]                  # grade -> share within the category
    description: str = ""                        # the caller's words, for the record


@dataclass(frozen=True)
class CallStreamSpec:
    seed: int
    start_s: float                               # sim time of the first possible call
    duration_s: float
    calls_per_hour: Sequence[float]              # the rate, hour by hour; the last hour repeats
    categories: Mapping[str, CategoryMix]
    area: tuple[float, float, float, float]      # south, west, north, east (degrees): background calls
    hotspots: Sequence[Hotspot] = ()
    hotspot_share: float = 0.5                   # of calls drawn around a hotspot rather than the whole area
    repeat_call_share: float = 0.1               # calls followed by a second caller about the same event
    repeat_delay_s: tuple[float, float] = (30.0, 300.0)
    location_uncertainty_m: tuple[float, float] = (20.0, 150.0)
    cad_prefix: str = "CAD-GEN"
    extra: dict = field(default_factory=dict)    # free-form notes kept with the spec


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CallStreamError(f"{where} must be a finite number, not {value!r}")
    return float(value)


def _pair(value, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise CallStreamError(f"{where} must be [low, high]")
    low, high = (_number(v, where) for v in value)
    if not 0.0 <= low <= high:
        raise CallStreamError(f"{where} must satisfy 0 <= low <= high, not {value!r}")
    return low, high


def parse_call_stream(data, source: str = "<call_stream>") -> CallStreamSpec:
    if not isinstance(data, Mapping):
        raise CallStreamError(f"{source}: call_stream must be a mapping")
    required = ("seed", "duration_s", "calls_per_hour", "categories", "area")
    missing = [k for k in required if k not in data]
    if missing:
        raise CallStreamError(f"{source}: call_stream lacks {', '.join(missing)}")
    rates = data["calls_per_hour"]
    if isinstance(rates, (int, float)) and not isinstance(rates, bool):
        rates = [rates]
    if not isinstance(rates, list) or not rates:
        raise CallStreamError(f"{source}: calls_per_hour must be a number or a list of hourly rates")
    rates = [_number(r, f"{source}: calls_per_hour") for r in rates]
    if any(r < 0 for r in rates):
        raise CallStreamError(f"{source}: calls_per_hour must not be negative")
    categories = {}
    if not isinstance(data["categories"], Mapping) or not data["categories"]:
        raise CallStreamError(f"{source}: categories must map each category to its share and grades")
    for name, entry in data["categories"].items():
        where = f"{source}: categories.{name}"
        if not isinstance(entry, Mapping) or "share" not in entry or "grades" not in entry:
            raise CallStreamError(f"{where} needs share and grades")
        grades = entry["grades"]
        if not isinstance(grades, Mapping) or not grades:
            raise CallStreamError(f"{where}.grades must map grades to shares")
        unknown = [g for g in grades if g not in GRADES]
        if unknown:
            raise CallStreamError(f"{where}.grades: unknown grade(s) {', '.join(map(str, unknown))}; "
                                  f"use {', '.join(GRADES)}")
        categories[str(name)] = CategoryMix(
            _number(entry["share"], f"{where}.share"),
            {str(g): _number(s, f"{where}.grades.{g}") for g, s in grades.items()},
            str(entry.get("description", "")))
    area = data["area"]
    if not isinstance(area, (list, tuple)) or len(area) != 4:
        raise CallStreamError(f"{source}: area must be [south, west, north, east] in degrees")
    south, west, north, east = (_number(v, f"{source}: area") for v in area)
    if not (-90 <= south < north <= 90 and -180 <= west < east <= 180):
        raise CallStreamError(f"{source}: area [south, west, north, east] is not a box: {list(area)}")
    hotspots = []
    for i, h in enumerate(data.get("hotspots") or []):
        where = f"{source}: hotspots[{i}]"
        if not isinstance(h, Mapping):
            raise CallStreamError(f"{where} must be a mapping")
        try:
            hotspots.append(Hotspot(str(h.get("name", f"hotspot {i}")), _number(h["latitude"], where),
                                    _number(h["longitude"], where), _number(h.get("radius_m", 300.0), where),
                                    _number(h.get("weight", 1.0), where)))
        except KeyError as err:
            raise CallStreamError(f"{where} lacks {err.args[0]}") from None
    spec = CallStreamSpec(
        seed=int(_number(data["seed"], f"{source}: seed")),
        start_s=_number(data.get("start_s", 0.0), f"{source}: start_s"),
        duration_s=_number(data["duration_s"], f"{source}: duration_s"),
        calls_per_hour=tuple(rates), categories=categories, area=(south, west, north, east),
        hotspots=tuple(hotspots),
        hotspot_share=_number(data.get("hotspot_share", 0.5), f"{source}: hotspot_share"),
        repeat_call_share=_number(data.get("repeat_call_share", 0.1), f"{source}: repeat_call_share"),
        repeat_delay_s=_pair(data.get("repeat_delay_s", [30.0, 300.0]), f"{source}: repeat_delay_s"),
        location_uncertainty_m=_pair(data.get("location_uncertainty_m", [20.0, 150.0]),
                                     f"{source}: location_uncertainty_m"),
        cad_prefix=str(data.get("cad_prefix", "CAD-GEN")))
    if spec.duration_s <= 0 or spec.start_s < 0:
        raise CallStreamError(f"{source}: duration_s must be positive and start_s not negative")
    for name in ("hotspot_share", "repeat_call_share"):
        if not 0.0 <= getattr(spec, name) <= 1.0:
            raise CallStreamError(f"{source}: {name} must be in [0, 1]")
    if sum(c.share for c in categories.values()) <= 0:
        raise CallStreamError(f"{source}: category shares sum to zero")
    return spec


def _metres_to_degrees(latitude: float) -> tuple[float, float]:
    """Degrees of latitude and longitude per metre near `latitude` (good to a fraction of a percent here)."""
    per_deg_lat = 111_132.0
    return 1.0 / per_deg_lat, 1.0 / (per_deg_lat * math.cos(math.radians(latitude)))


def generate_calls(spec: CallStreamSpec) -> list[dict]:
    """The calls of the shift as scenario `calls:` entries (at_s, cad_ref, grade, category, ...), by time."""
    rng = np.random.default_rng(spec.seed)
    # Arrival times: a Poisson process whose rate changes hour by hour (thinning of the peak rate).
    peak = max(spec.calls_per_hour)
    times = []
    if peak > 0:
        t = 0.0
        while True:
            t += rng.exponential(3600.0 / peak)
            if t >= spec.duration_s:
                break
            hour = min(int(t // 3600.0), len(spec.calls_per_hour) - 1)
            if rng.random() < spec.calls_per_hour[hour] / peak:
                times.append(t)
    names = sorted(spec.categories)
    shares = np.array([spec.categories[n].share for n in names], dtype=float)
    shares /= shares.sum()
    weights = np.array([h.weight for h in spec.hotspots], dtype=float)
    south, west, north, east = spec.area
    calls = []
    for k, t in enumerate(times):
        category = names[int(rng.choice(len(names), p=shares))]
        mix = spec.categories[category]
        grade_names = sorted(mix.grades, key=GRADES.index)
        grade_p = np.array([mix.grades[g] for g in grade_names], dtype=float)
        grade = grade_names[int(rng.choice(len(grade_names), p=grade_p / grade_p.sum()))]
        if spec.hotspots and rng.random() < spec.hotspot_share:
            h = spec.hotspots[int(rng.choice(len(spec.hotspots), p=weights / weights.sum()))]
            dlat, dlon = _metres_to_degrees(h.latitude)
            lat = h.latitude + rng.normal() * h.radius_m * dlat
            lon = h.longitude + rng.normal() * h.radius_m * dlon
            lat, lon = min(max(lat, south), north), min(max(lon, west), east)
            where = f"near {h.name}"
        else:
            lat, lon = rng.uniform(south, north), rng.uniform(west, east)
            where = "in the borough"
        uncertainty = float(rng.uniform(*spec.location_uncertainty_m))
        entry = {"at_s": round(spec.start_s + t, 1), "cad_ref": f"{spec.cad_prefix}-{k + 1:04d}", "grade": grade,
                 "category": category, "latitude": round(float(lat), 6), "longitude": round(float(lon), 6),
                 "location_uncertainty_m": round(uncertainty, 1), "address": where,
                 "description": mix.description or category.replace("_", " ")}
        calls.append(entry)
        if rng.random() < spec.repeat_call_share:
            # A second caller about the same event: nearby, a little later, the same category.
            dlat, dlon = _metres_to_degrees(lat)
            again = dict(entry)
            again.update(at_s=round(entry["at_s"] + float(rng.uniform(*spec.repeat_delay_s)), 1),
                         cad_ref=f"{entry['cad_ref']}-R",
                         latitude=round(float(lat + rng.normal() * 0.5 * uncertainty * dlat), 6),
                         longitude=round(float(lon + rng.normal() * 0.5 * uncertainty * dlon), 6))
            calls.append(again)
    calls.sort(key=lambda c: c["at_s"])
    return calls
