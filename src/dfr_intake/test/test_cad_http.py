"""Tests of dfr_intake.cad_http: the CAD call API, served by a real uvicorn on 127.0.0.1, asked by httpx.

Behind the API stands a fake intake that applies intake's own checks (call_problems, with the
operating area and categories of config/) and keeps a book of accepted calls, so the errors
that only intake can find (outside the area, in the future, unknown category) come back
through the HTTP layer as they will in the running system.
"""
from __future__ import annotations

import json
import math
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from dfr_common.areas import load_areas
from dfr_common.grading import GRADES
from dfr_intake import cad_http
from dfr_intake.cad_http import (
    CAD_CALL_FIELDS,
    DEFAULT_MAX_BODY_BYTES,
    BackgroundServer,
    RequestRate,
    SubmitResult,
    create_app,
    intake_errors,
)
from dfr_intake.calls import Call, CallRules, call_problems

REPO = Path(__file__).resolve().parents[3]
OPENAPI_COPY = REPO / "src" / "dfr_intake" / "openapi" / "cad_api.json"
TOKEN = "cad-test-token-6f1d2a"
LIMIT = DEFAULT_MAX_BODY_BYTES
JSON = {"Content-Type": "application/json"}
REQUIRED = ("cad_ref", "call_time", "grade", "category", "latitude", "longitude", "location_uncertainty_m",
            "address", "description")
TEXT_LIMIT = 2000


def intake_rules() -> CallRules:
    config = yaml.safe_load((REPO / "config" / "intake.yaml").read_text())["/dfr/intake"]["ros__parameters"]
    area = load_areas(REPO / "config" / "airspace" / "operating_area.geojson")[0]
    return CallRules(frozenset(config["categories"]), area, config["max_uncertainty_m"],
                     config["future_tolerance_s"])


# Hypothesis keeps caches in .hypothesis/ of the working directory unless told otherwise.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "dfr-hypothesis")
RULES = intake_rules()
CATEGORIES = tuple(sorted(RULES.categories))


class FakeIntake:
    """submit() for the API: intake's checks and a book of accepted calls, or no answer when told."""

    def __init__(self, rules: CallRules):
        self.rules = rules
        self.lock = threading.Lock()
        self.reset()

    def reset(self, mode: str = "intake") -> None:
        with self.lock:
            self.mode = mode
            self.calls: list[Call] = []
            self.book: dict[str, tuple[Call, str]] = {}

    def __call__(self, call: Call) -> SubmitResult:
        with self.lock:
            self.calls.append(call)
            if self.mode == "unavailable":
                return SubmitResult.intake_unavailable()
            if self.mode == "broken":
                raise RuntimeError("a bug in submit")
            problems = call_problems(call, self.rules, time.time())
            if problems:
                return SubmitResult(accepted=False, errors=problems)
            if call.cad_ref in self.book:
                earlier, incident_id = self.book[call.cad_ref]
                if earlier != call:
                    return SubmitResult(accepted=False, errors=[
                        f"cad_ref: {call.cad_ref!r} was already reported for {incident_id} with different details"])
                return SubmitResult(True, incident_id, False, True, "repeat", repeat=True)
            incident_id = f"INC-{len(self.book) + 1:06d}"
            self.book[call.cad_ref] = (call, incident_id)
            eligible = call.grade in ("I", "S")
            return SubmitResult(True, incident_id, False, eligible, f"grade {call.grade} {call.category}")


@pytest.fixture(scope="module")
def intake():
    return FakeIntake(RULES)


@pytest.fixture(scope="module")
def server(intake):
    # The fuzz tests below send hundreds of requests a second from one address: a rate far above the default.
    unlimited = RequestRate(per_s=1e6, burst=1_000_000)
    running = BackgroundServer(create_app(intake, TOKEN, LIMIT, unlimited), host="127.0.0.1", port=0).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10.0) as c:
        yield c


@pytest.fixture(scope="module")
def anonymous(server):
    with httpx.Client(base_url=server.url, timeout=10.0) as c:
        yield c


def recent(seconds_ago: float = 60.0) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).isoformat()


def good_body(**changes) -> dict:
    body = {"cad_ref": "CAD-20261126-0142", "call_time": recent(), "grade": "I", "category": "dangerous_driving",
            "latitude": 51.5412, "longitude": -0.1027, "location_uncertainty_m": 40.0,
            "address": "Upper Street, Islington, N1", "description": "E-bike on the pavement",
            "suspect_description": "Male, black hoodie, red e-bike"}
    body.update(changes)
    return body


def post_raw(client: httpx.Client, text: str | bytes, **kwargs) -> httpx.Response:
    return client.post("/v1/calls", content=text, headers=JSON, **kwargs)


def post_json(client: httpx.Client, value) -> httpx.Response:
    """As Python's json writes it: NaN and Infinity included, lone surrogates escaped."""
    return post_raw(client, json.dumps(value))


def error_fields(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


def messages(response: httpx.Response) -> dict[str, str]:
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def assert_valid_call(call: Call) -> None:
    """What the schema promises of every call that reaches submit."""
    assert isinstance(call, Call)
    for name in ("call_time_s", "latitude", "longitude", "location_uncertainty_m"):
        value = getattr(call, name)
        assert type(value) is float and math.isfinite(value), (name, value)
    assert -90.0 <= call.latitude <= 90.0 and -180.0 <= call.longitude <= 180.0
    assert 0.0 <= call.location_uncertainty_m <= cad_http.MAX_UNCERTAINTY_M
    assert call.grade in GRADES
    assert 1 <= len(call.cad_ref) <= 64 and call.cad_ref.strip()
    assert 1 <= len(call.category) <= 64
    for name in ("cad_ref", "category", "address", "description", "suspect_description"):
        text = getattr(call, name)
        assert type(text) is str and len(text) <= TEXT_LIMIT
        text.encode("utf-8")    # no lone surrogates
        allowed = "" if name in ("cad_ref", "category") else "\t\n\r"
        assert not any((ord(c) < 0x20 and c not in allowed) or 0x7F <= ord(c) < 0xA0 for c in text), (name, text)


# --- the accepted path ------------------------------------------------------------------------------------------

def test_accepted_call_reaches_intake_as_a_call(client, intake):
    intake.reset()
    response = client.post("/v1/calls", json=good_body(call_time="2026-01-05T10:00:00+01:00"))
    assert response.status_code == 201, response.text
    assert response.json() == {"incident_id": "INC-000001", "merged": False, "repeat": False, "drone_eligible": True,
                               "policy_reason": "grade I dangerous_driving"}
    [call] = intake.calls
    nine_utc = datetime(2026, 1, 5, 9, tzinfo=timezone.utc).timestamp()
    assert call == Call(cad_ref="CAD-20261126-0142", call_time_s=nine_utc, grade="I", category="dangerous_driving",
                        latitude=51.5412, longitude=-0.1027, location_uncertainty_m=40.0,
                        address="Upper Street, Islington, N1", description="E-bike on the pavement",
                        suspect_description="Male, black hoodie, red e-bike")


def test_optional_suspect_description_and_integers_for_numbers(client, intake):
    intake.reset()
    body = good_body(longitude=0, location_uncertainty_m=0)
    del body["suspect_description"]
    assert client.post("/v1/calls", json=body).status_code == 201
    assert client.post("/v1/calls", json=good_body(cad_ref="B", suspect_description=None)).status_code == 201
    assert [c.suspect_description for c in intake.calls] == ["", ""]
    assert intake.calls[0].longitude == 0.0 and type(intake.calls[0].longitude) is float


def test_a_retry_answers_200_with_the_same_incident(client, intake):
    intake.reset()
    body = good_body()
    first = client.post("/v1/calls", json=body)
    again = client.post("/v1/calls", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["incident_id"] == first.json()["incident_id"] and again.json()["repeat"] is True


def test_same_reference_with_other_details_is_refused_by_intake(client, intake):
    intake.reset()
    assert client.post("/v1/calls", json=good_body()).status_code == 201
    response = client.post("/v1/calls", json=good_body(grade="S"))
    assert response.status_code == 422
    assert error_fields(response) == ["cad_ref"] and "already reported" in messages(response)["cad_ref"]


def test_health_and_openapi_need_no_token(anonymous):
    assert anonymous.get("/v1/health").json() == {"status": "ok"}
    assert anonymous.get("/openapi.json").status_code == 200


# --- 401 ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}",
    TOKEN, f"Token {TOKEN}", f"Bearer {TOKEN.upper()}",
    "Bearer \u00e9t\u00e9".encode("latin-1"), f"Bearer {TOKEN}\u00e9".encode("latin-1"),
])
def test_without_the_right_token_401_and_nothing_submitted(anonymous, intake, authorization):
    intake.reset()
    headers = {} if authorization is None else {"Authorization": authorization}
    response = anonymous.post("/v1/calls", json=good_body(), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert error_fields(response) == ["authorization"]
    assert intake.calls == []


def test_bearer_scheme_is_case_insensitive(anonymous, intake):
    intake.reset()
    response = anonymous.post("/v1/calls", json=good_body(), headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 201


def test_two_authorization_headers_are_refused(server, intake):
    intake.reset()
    headers = [("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer wrong"),
               ("Content-Type", "application/json")]
    response = httpx.post(f"{server.url}/v1/calls", content=json.dumps(good_body()), headers=headers)
    assert response.status_code == 401 and intake.calls == []


def test_token_is_checked_before_the_body_is_read(anonymous, intake):
    intake.reset()
    assert anonymous.post("/v1/calls", content=b"x" * (LIMIT + 1), headers=JSON).status_code == 401
    assert anonymous.post("/v1/calls", content=b"{not json", headers=JSON).status_code == 401
    assert anonymous.get("/v1/no-such-path").status_code == 401
    assert intake.calls == []


def test_create_app_refuses_an_unusable_token():
    for token in ("", " ", "two words", "t\u00f6ken", None):
        with pytest.raises(ValueError, match="token"):
            create_app(FakeIntake(RULES), token)


# --- 429 ----------------------------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_address_gets_its_burst_then_its_rate():
    clock = FakeClock()
    rate = RequestRate(per_s=2.0, burst=3, clock=clock)
    assert [rate.wait_s("10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rate.wait_s("10.0.0.1") == pytest.approx(0.5)          # one more token in half a second
    assert rate.wait_s("10.0.0.2") == 0.0                          # another address is not held back
    clock.now += 0.5
    assert rate.wait_s("10.0.0.1") == 0.0 and rate.wait_s("10.0.0.1") > 0.0
    clock.now += 60.0                                              # refilled to the burst, no further
    assert [rate.wait_s("10.0.0.1") for _ in range(4)][-1] > 0.0


def test_memory_stays_bounded_under_many_addresses():
    clock = FakeClock()
    rate = RequestRate(per_s=1.0, burst=2, clock=clock, max_clients=100)
    for n in range(10_000):
        rate.wait_s(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
        clock.now += 0.001
    assert len(rate._buckets) <= 101


@pytest.mark.parametrize("kwargs", [{"per_s": 0.0}, {"burst": 0}, {"max_clients": 0}])
def test_a_rate_that_allows_nothing_is_refused(kwargs):
    with pytest.raises(ValueError, match="request rate"):
        RequestRate(**kwargs)


def test_a_flood_from_one_address_gets_429_with_retry_after_and_nothing_is_recorded():
    intake = FakeIntake(RULES)
    app = create_app(intake, TOKEN, LIMIT, RequestRate(per_s=0.5, burst=2))
    server = BackgroundServer(app, host="127.0.0.1", port=0).start()
    try:
        c = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10.0)
        answers = [c.post("/v1/calls", json=good_body(cad_ref=f"CAD-FLOOD-{n}")) for n in range(5)]
        assert [a.status_code for a in answers] == [201, 201, 429, 429, 429]
        assert answers[2].headers["Retry-After"] == "2" and error_fields(answers[2]) == ["request"]
        assert [call.cad_ref for call in intake.calls] == ["CAD-FLOOD-0", "CAD-FLOOD-1"]
        assert c.get("/v1/health").status_code == 200                # the health check is never held back
        # Wrong tokens count against the rate too: they cannot be tried at line speed.
        assert c.post("/v1/calls", json=good_body(), headers={"Authorization": "Bearer wrong"}).status_code == 429
        c.close()
    finally:
        server.stop()


# --- 413, 400, 415 ------------------------------------------------------------------------------------------------

def test_body_over_the_limit_by_content_length_413(client, intake):
    intake.reset()
    body = json.dumps(good_body(description="x" * 10)).encode()
    oversized = body[:-1] + b" " * (LIMIT + 1 - len(body)) + b"}"
    assert len(oversized) == LIMIT + 1
    response = post_raw(client, oversized)
    assert response.status_code == 413 and error_fields(response) == ["body"]
    assert intake.calls == []


def test_streamed_body_over_the_limit_413(client, intake):
    intake.reset()

    def chunks():   # no Content-Length: sent chunked, counted as it arrives
        for _ in range(5):
            yield b" " * (LIMIT // 4)

    response = client.post("/v1/calls", content=chunks(), headers=JSON)
    assert response.status_code == 413 and intake.calls == []


def test_body_of_exactly_the_limit_is_read(client, intake):
    intake.reset()
    body = json.dumps(good_body()).encode()
    padded = body[:-1] + b" " * (LIMIT - len(body)) + b"}"
    assert len(padded) == LIMIT
    assert post_raw(client, padded).status_code == 201


@pytest.mark.parametrize("text", [b"{", b'{"cad_ref": "A",}', b"not json", b"", b"\xff\xfe{}", b"{'a': 1}",
                                  b"[" * 5000 + b"]" * 5000, b'{"latitude": 1' + b"0" * 5000 + b"}"])
def test_malformed_json_400(client, intake, text):
    intake.reset()
    response = post_raw(client, text)
    assert response.status_code == 400, response.text
    assert error_fields(response) == ["body"] and intake.calls == []


def test_malformed_json_names_the_position(client):
    message = messages(post_raw(client, b'{"cad_ref": "A" "grade": "I"}'))["body"]
    assert "malformed JSON" in message and "character 16" in message


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_body_not_sent_as_json_415(client, intake, content_type):
    intake.reset()
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/v1/calls", content=json.dumps(good_body()), headers=headers)
    assert response.status_code == 415 and intake.calls == []


# --- 422 from the schema --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", REQUIRED)
def test_each_missing_field_is_named(client, intake, name):
    intake.reset()
    body = good_body()
    del body[name]
    response = client.post("/v1/calls", json=body)
    assert response.status_code == 422
    assert messages(response) == {name: "required, but missing"}
    assert intake.calls == []


def test_every_missing_field_is_named_at_once(client):
    response = client.post("/v1/calls", json={})
    assert response.status_code == 422 and error_fields(response) == list(REQUIRED)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
@pytest.mark.parametrize("name", ["latitude", "longitude", "location_uncertainty_m"])
def test_non_finite_numbers_are_refused_per_field(client, intake, name, token):
    intake.reset()
    text = json.dumps(good_body(**{name: "@@"})).replace('"@@"', token)
    response = post_raw(client, text)
    assert response.status_code == 422, response.text
    assert list(messages(response)) == [name] and "not a finite number" in messages(response)[name]
    assert intake.calls == []


@pytest.mark.parametrize("grade", ["X", "i", "", "Immediate", 1, None, ["I"]])
def test_unknown_grade(client, intake, grade):
    intake.reset()
    response = client.post("/v1/calls", json=good_body(grade=grade))
    assert response.status_code == 422 and error_fields(response) == ["grade"]
    assert "I (immediate), S (significant), E (extended), R (referred)" in messages(response)["grade"]
    assert intake.calls == []


@pytest.mark.parametrize("name, value", [("latitude", 90.0001), ("latitude", -91), ("longitude", 180.5),
                                         ("longitude", -1000), ("location_uncertainty_m", -1),
                                         ("location_uncertainty_m", 1e6), ("latitude", "51.5"),
                                         ("longitude", True), ("latitude", None), ("latitude", [51.5])])
def test_numbers_out_of_range_or_of_the_wrong_type(client, intake, name, value):
    intake.reset()
    response = client.post("/v1/calls", json=good_body(**{name: value}))
    assert response.status_code == 422 and error_fields(response) == [name], response.text
    assert intake.calls == []


@pytest.mark.parametrize("value", ["2026-01-05T10:00:00", "2026-01-05", "10:00", 1767607200, "1767607200",
                                   "yesterday", "2026-13-05T10:00:00Z", None])
def test_call_time_must_be_iso_8601_with_a_timezone(client, intake, value):
    intake.reset()
    response = client.post("/v1/calls", json=good_body(call_time=value))
    assert response.status_code == 422 and error_fields(response) == ["call_time"], response.text
    assert intake.calls == []


@pytest.mark.parametrize("name, value", [("cad_ref", ""), ("cad_ref", "   "), ("cad_ref", "x" * 65),
                                         ("cad_ref", "A\nB"), ("category", ""), ("address", 12),
                                         ("description", "x" * (TEXT_LIMIT + 1)), ("description", "a\x00b"),
                                         ("suspect_description", "\ud800"), ("suspect_description", 0)])
def test_text_fields(client, intake, name, value):
    intake.reset()
    response = post_json(client, good_body(**{name: value}))
    assert response.status_code == 422 and error_fields(response) == [name], response.text
    assert intake.calls == []


def test_unknown_fields_are_refused(client, intake):
    intake.reset()
    response = client.post("/v1/calls", json=good_body(lat=51.5, Grade="I"))
    assert response.status_code == 422 and sorted(error_fields(response)) == ["Grade", "lat"]
    assert intake.calls == []


@pytest.mark.parametrize("text", [b"[]", b"null", b"42", b'"call"', b"true"])
def test_body_must_be_an_object(client, text):
    response = post_raw(client, text)
    assert response.status_code == 422 and error_fields(response) == ["body"]


# --- 422 from intake, 503, 500 ----------------------------------------------------------------------------------------

def test_future_call_time_is_refused_by_intake(client, intake):
    intake.reset()
    response = client.post("/v1/calls", json=good_body(call_time=recent(-3600)))
    assert response.status_code == 422
    assert error_fields(response) == ["call_time"] and "in the future" in messages(response)["call_time"]
    assert len(intake.calls) == 1 and intake.book == {}


def test_location_outside_the_operating_area_is_refused_by_intake(client, intake):
    intake.reset()
    response = client.post("/v1/calls", json=good_body(latitude=48.8566, longitude=2.3522))
    assert response.status_code == 422
    assert error_fields(response) == ["location"] and "outside the operating area" in messages(response)["location"]
    assert intake.book == {}


def test_several_intake_problems_each_get_a_field(client, intake):
    intake.reset()
    response = client.post("/v1/calls", json=good_body(category="littering", location_uncertainty_m=5000))
    assert response.status_code == 422
    assert error_fields(response) == ["category", "location_uncertainty_m"]
    assert intake.book == {}


def test_intake_error_strings_map_to_fields():
    assert intake_errors(["location: 1.0, 2.0 is outside", "grade: 'X' is not one of I", "something odd",
                          "nonsense: not a field"]) == [
        ("location", "1.0, 2.0 is outside"), ("grade", "'X' is not one of I"), ("call", "something odd"),
        ("call", "nonsense: not a field")]
    assert intake_errors([]) == [("call", "refused by intake without a reason")]


def test_intake_unavailable_503(client, intake):
    intake.reset("unavailable")
    response = client.post("/v1/calls", json=good_body())
    assert response.status_code == 503 and response.headers["Retry-After"] == str(cad_http.RETRY_AFTER_S)
    assert "not recorded" in response.json()["detail"]
    intake.reset()


def test_a_failing_submit_answers_500_in_json(client, intake):
    intake.reset("broken")
    response = client.post("/v1/calls", json=good_body())
    assert response.status_code == 500 and "not recorded" in response.json()["detail"]
    intake.reset()


def test_submit_result_from_a_report_incident_response():
    response = SimpleNamespace(accepted=True, errors=[], incident_id="INC-7", merged=True, drone_eligible=False,
                               policy_reason="grade E is not eligible")
    assert SubmitResult.from_report(response) == SubmitResult(True, "INC-7", True, False, "grade E is not eligible")
    response.repeat = True
    assert SubmitResult.from_report(response).repeat


# --- the OpenAPI description ----------------------------------------------------------------------------------------

def test_checked_in_openapi_is_what_the_server_serves(anonymous):
    served = anonymous.get("/openapi.json").json()
    assert json.loads(OPENAPI_COPY.read_text(encoding="utf-8")) == served, \
        "src/dfr_intake/openapi/cad_api.json is out of date: run python -m dfr_intake.cad_http"
    assert OPENAPI_COPY.read_text(encoding="utf-8") == cad_http.openapi_text()
    assert cad_http.main(["--check", str(OPENAPI_COPY)]) == 0


def test_openapi_documents_the_token_and_every_field():
    doc = cad_http.openapi_document()
    scheme = doc["components"]["securitySchemes"]["CadToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "Authorization: Bearer" in scheme["description"]
    operation = doc["paths"]["/v1/calls"]["post"]
    assert operation["security"] == [{"CadToken": []}]
    assert {"200", "201", "400", "401", "413", "415", "422", "503"} <= set(operation["responses"])
    schema = doc["components"]["schemas"]["CadCall"]
    assert schema["additionalProperties"] is False and schema["required"] == list(REQUIRED)
    assert tuple(schema["properties"]) == CAD_CALL_FIELDS
    for name, prop in schema["properties"].items():
        assert prop.get("description") and prop.get("examples"), name
    assert schema["properties"]["latitude"]["minimum"] == -90 and schema["properties"]["longitude"]["maximum"] == 180
    assert doc["components"]["schemas"]["Grade"]["enum"] == list(GRADES)
    assert "security" not in doc["paths"]["/v1/health"]["get"]


def test_openapi_check_reports_a_stale_copy(tmp_path):
    stale = tmp_path / "cad_api.json"
    stale.write_text("{}\n")
    assert cad_http.main(["--check", str(stale)]) == 1
    assert cad_http.main([str(stale)]) == 0 and cad_http.main(["--check", str(stale)]) == 0


# --- fuzzing --------------------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_scalars = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.floats()
                | st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
json_objects = st.dictionaries(st.sampled_from(CAD_CALL_FIELDS) | st.text(max_size=10), json_values, max_size=12)

free_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")) | st.sampled_from("\t\n\r"),
                    max_size=60)
offsets = st.sampled_from([timezone.utc, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5)),
                           timezone(timedelta(hours=5, minutes=30))])
valid_bodies = st.fixed_dictionaries({
    "cad_ref": st.from_regex(r"[A-Z0-9][A-Z0-9/-]{0,63}", fullmatch=True),
    "call_time": st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2025, 12, 31),
                              timezones=offsets).map(datetime.isoformat),
    "grade": st.sampled_from(GRADES),
    "category": st.sampled_from(CATEGORIES),
    "latitude": st.floats(51.29, 51.68),
    "longitude": st.floats(-0.50, 0.33),
    "location_uncertainty_m": st.floats(0.0, 2000.0) | st.integers(0, 2000),
    "address": free_text,
    "description": free_text,
}, optional={"suspect_description": st.none() | free_text})
nasty_values = (json_values | st.floats() | st.text(max_size=80)
                | st.sampled_from([math.nan, math.inf, -math.inf, 91.0, -181.0, 1e6, -1, "", " ", "51.5", True, None,
                                   10 ** 30, "2026-01-01", "2026-01-01T00:00:00", "1700000000", "9999-12-31T23:59:59Z",
                                   "X", "i", "\x00", "\ud800", "a\u0085b", [], {}, "x" * (TEXT_LIMIT + 1)]))


@st.composite
def near_valid_bodies(draw):
    """A valid body with one field deleted, replaced by something else, or one unknown field added."""
    body = draw(valid_bodies)
    how = draw(st.sampled_from(["delete", "replace", "add"]))
    if how == "add":
        key = draw(st.text(max_size=12).filter(lambda k: k not in CAD_CALL_FIELDS))
        body[key] = draw(json_values)
    else:
        key = draw(st.sampled_from(CAD_CALL_FIELDS))
        if how == "delete":
            body.pop(key, None)
        else:
            body[key] = draw(nasty_values)
    return body, key


def check_exchange(intake: FakeIntake, response: httpx.Response, allowed: set[int]) -> None:
    assert response.status_code in allowed, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if response.status_code >= 400:
        assert body["errors"] and all(isinstance(e["field"], str) and e["message"] for e in body["errors"])
    for call in intake.calls:
        assert_valid_call(call)
    if response.status_code in (200, 201):
        assert len(intake.calls) == 1 and call_problems(intake.calls[0], RULES, time.time()) == []


@FUZZ
@given(value=json_values | json_objects)
def test_fuzz_any_json_value(client, intake, value):
    intake.reset()
    response = post_json(client, value)
    check_exchange(intake, response, {400, 413, 422})


@settings(FUZZ, max_examples=60)
@given(data=st.binary(max_size=300))
def test_fuzz_any_bytes(client, intake, data):
    intake.reset()
    check_exchange(intake, post_raw(client, data), {400, 422})


@FUZZ
@given(body=valid_bodies)
def test_fuzz_valid_calls_are_submitted_as_sent(client, intake, body):
    intake.reset()
    response = client.post("/v1/calls", json=body)
    check_exchange(intake, response, {201})
    [call] = intake.calls
    assert call.latitude == body["latitude"] and call.longitude == body["longitude"]
    assert call.call_time_s == datetime.fromisoformat(body["call_time"]).timestamp()
    assert call.suspect_description == (body.get("suspect_description") or "")


@settings(FUZZ, max_examples=250)
@given(mutated=near_valid_bodies())
def test_fuzz_near_valid_calls(client, intake, mutated):
    intake.reset()
    body, key = mutated
    response = post_json(client, body)
    check_exchange(intake, response, {201, 422})
    if response.status_code == 422:
        # Only the field that was changed is at fault (intake names latitude and longitude 'location').
        fields = set(error_fields(response))
        assert fields <= {key, "location"} and fields, (key, response.text)


def test_fuzz_server_is_still_serving(client, intake):
    intake.reset()
    assert client.post("/v1/calls", json=good_body()).status_code == 201
