"""The middleware settings the runner and the launch files give every process."""
import xml.etree.ElementTree as ET
from pathlib import Path

from dfr_bringup.middleware import middleware_environment

CONFIG = Path(__file__).resolve().parents[3] / "config"


def test_fast_dds_gets_the_profile_with_segments_large_enough_for_an_image():
    env = middleware_environment(CONFIG, {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"})
    profile = Path(env["FASTRTPS_DEFAULT_PROFILES_FILE"])
    assert profile.is_file()
    ns = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    shm = next(d for d in ET.parse(profile).getroot().iterfind(".//f:transport_descriptor", ns)
               if d.findtext("f:type", namespaces=ns) == "SHM")
    assert int(shm.findtext("f:maxMessageSize", namespaces=ns)) > 640 * 480 * 3
    assert int(shm.findtext("f:segment_size", namespaces=ns)) >= 4 * int(shm.findtext("f:maxMessageSize",
                                                                                       namespaces=ns))
    assert middleware_environment(CONFIG, {}) == env          # Fast DDS is Jazzy's default


def test_fast_dds_publishes_asynchronously_unless_told_otherwise():
    assert middleware_environment(CONFIG, {})["RMW_FASTRTPS_PUBLICATION_MODE"] == "ASYNCHRONOUS"
    mine = middleware_environment(CONFIG, {"RMW_FASTRTPS_PUBLICATION_MODE": "SYNCHRONOUS"})
    assert "RMW_FASTRTPS_PUBLICATION_MODE" not in mine and "FASTRTPS_DEFAULT_PROFILES_FILE" in mine


def test_a_user_profile_or_another_middleware_is_left_alone():
    for variable in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"):
        assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in middleware_environment(CONFIG, {variable: "/etc/mine.xml"})
    assert middleware_environment(CONFIG, {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}) == {}
    assert middleware_environment(CONFIG, {"RMW_IMPLEMENTATION": "rmw_zenoh_cpp"}) == {}
