"""Dispatch's picture of the fleet, kept from each vehicle's VehicleStatus."""
from __future__ import annotations

from dataclasses import dataclass

from dfr_common.fleet import Fleet


@dataclass
class VehicleView:
    vehicle_id: str
    base_id: str
    latitude: float = float("nan")
    longitude: float = float("nan")
    available: bool = False
    last_seen_s: float = float("-inf")


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

    def fresh(self, vehicle_id: str, now_s: float) -> bool:
        view = self.vehicles.get(vehicle_id)
        return view is not None and now_s - view.last_seen_s <= self.stale_after_s
