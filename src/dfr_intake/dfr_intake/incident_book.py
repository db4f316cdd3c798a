"""The incidents intake has accepted, each with a stable id and a revision."""
from __future__ import annotations

from dataclasses import dataclass, field

from dfr_intake.calls import Call


@dataclass
class IncidentRecord:
    incident_id: str
    calls: list[Call]
    drone_eligible: bool
    policy_reason: str
    revision: int = 1
    open: bool = True

    @property
    def first_call(self) -> Call:
        return self.calls[0]


@dataclass
class IncidentBook:
    id_prefix: str = "INC"
    incidents: dict[str, IncidentRecord] = field(default_factory=dict)
    _by_cad_ref: dict[str, str] = field(default_factory=dict)
    _counter: int = 0

    def open_incident(self, call: Call, eligible: bool, reason: str) -> IncidentRecord:
        self._counter += 1
        record = IncidentRecord(f"{self.id_prefix}-{self._counter:06d}", [call], eligible, reason)
        self.incidents[record.incident_id] = record
        self._by_cad_ref[call.cad_ref] = record.incident_id
        return record

    def find_by_cad_ref(self, cad_ref: str) -> IncidentRecord | None:
        """The incident a call with this CAD reference created or joined, if any."""
        incident_id = self._by_cad_ref.get(cad_ref)
        return self.incidents.get(incident_id) if incident_id else None

    def repeat_of(self, call: Call) -> IncidentRecord | None:
        """The incident of an earlier report of this very call (a retry), or None for a new call.

        A CAD reference names one call: reporting it again with other details is an error,
        not an update, and raises ConflictingCallError.
        """
        record = self.find_by_cad_ref(call.cad_ref)
        if record is None:
            return None
        earlier = next(c for c in record.calls if c.cad_ref == call.cad_ref)
        if earlier != call:
            changed = [f for f in ("call_time_s", "grade", "category", "latitude", "longitude",
                                   "location_uncertainty_m", "address", "description", "suspect_description")
                       if getattr(earlier, f) != getattr(call, f)]
            raise ConflictingCallError(
                f"cad_ref: {call.cad_ref!r} was already reported for {record.incident_id} with a different "
                f"{', '.join(changed)}")
        return record


class ConflictingCallError(ValueError):
    """A CAD reference reported again with different details."""
