"""Unit tests of dfr_intake.incident_book: incident ids, lookup by CAD reference, repeated calls."""
from __future__ import annotations

import pytest

from dfr_intake.calls import Call
from dfr_intake.incident_book import IncidentBook, IncidentRecord


def call(cad_ref: str) -> Call:
    return Call(cad_ref=cad_ref, call_time_s=100.0, grade="I", category="robbery", latitude=51.5,
                longitude=-0.1, location_uncertainty_m=10.0)


def test_ids_are_sequential_and_zero_padded():
    book = IncidentBook()
    ids = [book.open_incident(call(f"CAD-{i}"), True, "ok").incident_id for i in range(12)]
    assert ids[:3] == ["INC-000001", "INC-000002", "INC-000003"]
    assert ids[-1] == "INC-000012"
    assert len(set(ids)) == 12


def test_id_prefix_is_configurable():
    book = IncidentBook(id_prefix="TEST")
    assert book.open_incident(call("A"), False, "no").incident_id == "TEST-000001"


def test_books_count_independently():
    first, second = IncidentBook(), IncidentBook()
    first.open_incident(call("A"), True, "ok")
    first.open_incident(call("B"), True, "ok")
    assert second.open_incident(call("C"), True, "ok").incident_id == "INC-000001"


def test_ids_past_six_digits_keep_counting():
    book = IncidentBook(_counter=999_999)
    assert book.open_incident(call("A"), True, "ok").incident_id == "INC-1000000"


def test_open_incident_records_the_call_and_decision():
    book = IncidentBook()
    first = call("CAD-7")
    record = book.open_incident(first, False, "grade R is not eligible")
    assert isinstance(record, IncidentRecord)
    assert record.calls == [first]
    assert record.first_call is first
    assert record.drone_eligible is False
    assert record.policy_reason == "grade R is not eligible"
    assert record.revision == 1
    assert record.open is True
    assert book.incidents == {"INC-000001": record}


def test_find_by_cad_ref():
    book = IncidentBook()
    a = book.open_incident(call("CAD-A"), True, "ok")
    b = book.open_incident(call("CAD-B"), False, "no")
    assert book.find_by_cad_ref("CAD-A") is a
    assert book.find_by_cad_ref("CAD-B") is b


@pytest.mark.parametrize("cad_ref", ["CAD-C", "", "cad-a", "CAD-A "])
def test_find_by_unknown_cad_ref_gives_none(cad_ref):
    book = IncidentBook()
    book.open_incident(call("CAD-A"), True, "ok")
    assert book.find_by_cad_ref(cad_ref) is None


def test_find_in_an_empty_book_gives_none():
    assert IncidentBook().find_by_cad_ref("CAD-A") is None


def test_a_repeated_call_is_recognised_and_a_new_one_is_not():
    book = IncidentBook()
    record = book.open_incident(call("CAD-1"), True, "ok")
    assert book.repeat_of(call("CAD-1")) is record
    assert book.repeat_of(call("CAD-2")) is None


def test_a_reference_reused_with_other_details_is_a_conflict_naming_them():
    from dataclasses import replace

    from dfr_intake.incident_book import ConflictingCallError
    book = IncidentBook()
    book.open_incident(call("CAD-1"), True, "ok")
    with pytest.raises(ConflictingCallError, match=r"INC-000001 with a different grade, latitude"):
        book.repeat_of(replace(call("CAD-1"), grade="S", latitude=51.6))
