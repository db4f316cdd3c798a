"""The attended record: what a restarted dispatcher reads back, and what it refuses to read."""
import pytest

from dfr_dispatch.attended_record import AttendedRecord, AttendedRecordError


def test_an_incident_recorded_as_attended_is_known_after_the_file_is_opened_again(tmp_path):
    path = tmp_path / "attended.sqlite"
    with AttendedRecord(path) as record:
        record.add("INC-000001", "uav1", "M00001-INC-000001-uav1", 412.5)
        record.add("INC-000001", "uav2", "M00002-INC-000001-uav2", 500.0)     # a second drone adds nothing
        assert "INC-000001" in record and "INC-000002" not in record
    with AttendedRecord(path) as again:
        assert len(again) == 1 and "INC-000001" in again
        again.add("INC-000002", "uav3", "M00003-INC-000002-uav3", 600.0)
    assert len(AttendedRecord(path)) == 2


def test_without_a_path_it_is_kept_in_memory_and_writes_nothing(tmp_path):
    record = AttendedRecord(None)
    record.add("INC-000001", "uav1", "M1", 1.0)
    assert "INC-000001" in record
    record.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, why", [
    (b"not a database at all, just text" * 10, "cannot be read as an attended record"),
    (b"", "cannot be read as an attended record"),
])
def test_a_file_that_is_not_a_record_is_refused_with_its_path(tmp_path, content, why):
    path = tmp_path / "attended.sqlite"
    path.write_bytes(content)
    with pytest.raises(AttendedRecordError, match=why) as err:
        AttendedRecord(path)
    assert str(path) in str(err.value)


def test_another_projects_sqlite_file_is_refused(tmp_path):
    import sqlite3
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('application', 'dfr_intake journal'), ('schema_version', '1')")
    with pytest.raises(AttendedRecordError, match="is not a version 1 attended record"):
        AttendedRecord(path)


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(AttendedRecordError, match="does not exist"):
        AttendedRecord(tmp_path / "nowhere" / "attended.sqlite")
