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
