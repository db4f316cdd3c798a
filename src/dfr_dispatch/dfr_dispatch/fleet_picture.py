"""Dispatch's picture of the fleet, kept from each vehicle's VehicleStatus."""
from __future__ import annotations

from dataclasses import dataclass

from dfr_common.fleet import Fleet
from dfr_common.mission import Phase


@dataclass
class VehicleView:
    vehicle_id: str
    base_id: str
    latitude: float = float("nan")
    longitude: float = float("nan")
    available: bool = False
    last_seen_s: float = float("-inf")
    not_ready: str = ""          # why the vehicle reports itself unavailable, in words (not_ready_reason)


def not_ready_reason(connected: bool, armed: bool, on_ground: bool, phase: int, incident_id: str,
                     battery_fraction: float) -> str:
    """Why a vehicle whose status says unavailable is: the first of the bridge's launch conditions it fails
    that its status shows (GPS fix, home and the launch battery threshold are the bridge's to judge)."""
    if not connected:
        return "no link to its autopilot"
    if phase != Phase.IDLE.value:
        name = Phase(phase).name.lower() if phase in Phase._value2member_map_ else f"phase {phase}"
        return f"in {name}" + (f" on {incident_id}" if incident_id else "")
    if armed or not on_ground:
        return "armed or off the ground"
    battery = f"battery {battery_fraction:.0%}" if battery_fraction == battery_fraction else "battery unknown"
    return f"not fit to launch ({battery}, or no GPS fix or home yet)"


class FleetPicture:
    def __init__(self, fleet: Fleet, stale_after_s: float):
        self.fleet = fleet
        self.stale_after_s = stale_after_s
        self.vehicles = {vid: VehicleView(vid, v.base_id) for vid, v in fleet.vehicles.items()}
        self.reserved: dict[str, str] = {}     # vehicle -> incident it was just sent to

    def update(self, view: VehicleView) -> None:
        if view.vehicle_id not in self.vehicles:
            raise KeyError(f"status from unknown vehicle '{view.vehicle_id}'")
        self.vehicles[view.vehicle_id] = view

    def idle(self, now_s: float) -> list[VehicleView]:
        """Vehicles free for a new mission: reported available, recently, and not just sent out."""
        return [v for v in self.vehicles.values()
                if v.available and now_s - v.last_seen_s <= self.stale_after_s
                and v.vehicle_id not in self.reserved]

    def reserve(self, vehicle_id: str, incident_id: str) -> None:
        self.reserved[vehicle_id] = incident_id

    def release(self, vehicle_id: str, incident_id: str | None = None) -> None:
        """Free the vehicle; with `incident_id`, only if it is still reserved for that incident (a vehicle
        retasked in flight is reserved for its new incident while its old mission ends)."""
        if incident_id is None or self.reserved.get(vehicle_id) == incident_id:
            self.reserved.pop(vehicle_id, None)

    def why_not_free(self, vehicle_id: str, now_s: float) -> str:
        """Why a vehicle is not among idle(now_s), for the record of an assignment it was left out of."""
        view = self.vehicles[vehicle_id]
        if view.last_seen_s == float("-inf"):
            return "no status from it yet"
        if now_s - view.last_seen_s > self.stale_after_s:
            return f"no status for {now_s - view.last_seen_s:.0f} s"
        if vehicle_id in self.reserved:
            return f"sent to {self.reserved[vehicle_id]}"
        if not view.available:
            return view.not_ready or "reports itself unavailable"
        return "free, and not weighed by the policy"

    def fresh(self, vehicle_id: str, now_s: float) -> bool:
        view = self.vehicles.get(vehicle_id)
        return view is not None and now_s - view.last_seen_s <= self.stale_after_s
