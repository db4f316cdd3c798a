"""The dispatch record: what a restarted dispatcher reads back, and what it refuses to read."""
import pytest

from dfr_dispatch.dispatch_record import DispatchRecord, DispatchRecordError


def test_an_incident_recorded_as_attended_is_known_after_the_file_is_opened_again(tmp_path):
    path = tmp_path / "attended.sqlite"
    with DispatchRecord(path) as record:
        record.add("INC-000001", "uav1", "M00001-INC-000001-uav1", 412.5)
        record.add("INC-000001", "uav2", "M00002-INC-000001-uav2", 500.0)     # a second drone adds nothing
        assert "INC-000001" in record and "INC-000002" not in record
    with DispatchRecord(path) as again:
        assert len(again) == 1 and "INC-000001" in again
        again.add("INC-000002", "uav3", "M00003-INC-000002-uav3", 600.0)
    assert len(DispatchRecord(path)) == 2


def test_without_a_path_it_is_kept_in_memory_and_writes_nothing(tmp_path):
    record = DispatchRecord(None)
    record.add("INC-000001", "uav1", "M1", 1.0)
    assert "INC-000001" in record
    record.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, why", [
    (b"not a database at all, just text" * 10, "cannot be read as a dispatch record"),
    (b"", "cannot be read as a dispatch record"),
])
def test_a_file_that_is_not_a_record_is_refused_with_its_path(tmp_path, content, why):
    path = tmp_path / "attended.sqlite"
    path.write_bytes(content)
    with pytest.raises(DispatchRecordError, match=why) as err:
        DispatchRecord(path)
    assert str(path) in str(err.value)


def test_another_projects_sqlite_file_is_refused(tmp_path):
    import sqlite3
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('application', 'dfr_intake journal'), ('schema_version', '1')")
    with pytest.raises(DispatchRecordError, match="is not a version 1 dispatch record"):
        DispatchRecord(path)


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(DispatchRecordError, match="does not exist"):
        DispatchRecord(tmp_path / "nowhere" / "attended.sqlite")


def test_mission_numbers_go_on_across_a_restart(tmp_path):
    path = tmp_path / "record.sqlite"
    with DispatchRecord(path) as record:
        assert record.add_mission("INC-000001", "uav1", 10.0) == "M00001-INC-000001-uav1"
        assert record.add_mission("INC-000001", "uav2", 20.0) == "M00002-INC-000001-uav2"
    with DispatchRecord(path) as again:
        assert again.missions_sent == 2
        assert again.add_mission("INC-000001", "uav1", 30.0) == "M00003-INC-000001-uav1"
        # What the earlier process sent, by incident; not what this one sends.
        assert again.earlier_missions == {"INC-000001": [("M00001-INC-000001-uav1", "uav1"),
                                                         ("M00002-INC-000001-uav2", "uav2")]}


def test_a_failed_write_still_gives_the_id_to_fly_under(tmp_path):
    record = DispatchRecord(tmp_path / "record.sqlite")
    record._failed = "disk full"
    with pytest.raises(DispatchRecordError, match="a write failed earlier") as err:
        record.add_mission("INC-000001", "uav1", 10.0)
    assert err.value.mission_id == "M00001-INC-000001-uav1"
    assert record.missions_sent == 1
