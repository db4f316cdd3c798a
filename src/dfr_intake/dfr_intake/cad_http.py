"""The CAD call API: a control room's computer-aided dispatch system posts calls as JSON over HTTP.

This module is the HTTP layer only (no rclpy). ``create_app(submit, token)`` builds a FastAPI
application; ``submit`` is given each call that passed the schema, as a ``dfr_intake.calls.Call``,
and answers with a ``SubmitResult``. In the running system ``submit`` forwards the call to intake's
ReportIncident service, so the checks that need intake's configuration (the operating area, the
known categories, how far in the future a call time may lie) stay in one place, ``call_problems``.

What the API answers, per request:

- 401  no ``Authorization: Bearer <token>`` header, or the wrong token. Checked before anything
       of the body is read, on every path except ``/v1/health`` and ``/openapi.json``.
- 429  more requests from one address than ``RequestRate`` allows (a burst, then a steady rate),
       checked first of all: the answer says in Retry-After when to send again. A runaway or
       hostile client neither starves intake of other callers' calls nor guesses tokens at speed.
- 413  a body larger than ``max_body_bytes``: by its Content-Length, or counted as it streams in,
       before any of it is parsed.
- 415  a body that is not sent as ``application/json``.
- 400  a body that is not JSON at all (empty, malformed, not UTF-8, nested absurdly deep).
- 422  a JSON body that is not an acceptable call, or a call that intake refused: one
       ``{field, message}`` per problem. NaN and Infinity, which Python's json module reads, are
       refused here as non-finite numbers.
- 503  intake did not answer; nothing was recorded and the CAD system should send the call again.
- 201  a new call was accepted: it opened an incident or joined (``merged``) an existing one.
- 200  the call repeats one already accepted (the CAD system retried): the same answer as the
       first time, and nothing new is published.

Nothing that is refused reaches ``submit`` unless it passed the schema; nothing that intake refuses
is published (intake's own rule).

The checked-in copy of the OpenAPI description, ``src/dfr_intake/openapi/cad_api.json``, is
rewritten with ``python -m dfr_intake.cad_http`` (``--check`` only compares); a test keeps it
equal to what the application serves.
"""
import argparse
import enum
import hashlib
import hmac
import json
import logging
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dfr_intake.calls import Call, CallRules

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"
CALLS_PATH = "/v1/calls"
HEALTH_PATH = "/v1/health"
OPENAPI_PATH = "/openapi.json"
PUBLIC_PATHS = frozenset({HEALTH_PATH, OPENAPI_PATH})   # everything else needs the token
DEFAULT_MAX_BODY_BYTES = 16384
DEFAULT_REQUESTS_PER_S = 50.0       # far above a borough's or a city's 999 calls, which come a few a minute
DEFAULT_REQUEST_BURST = 200
RETRY_AFTER_S = 5                                       # told to the CAD system with a 503

MAX_CAD_REF_LENGTH = 64                                 # as intake's call_problems
MAX_TEXT_LENGTH = CallRules.max_text_length             # intake's default limit on free text
MAX_UNCERTAINTY_M = 100_000.0   # the schema's bound; intake's configured max_uncertainty_m is lower

# RFC 6750's b64token: what a bearer token may be made of.
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_ISO_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
_BODY_LENGTH_KEY = "dfr.cad_http.body_length"


# --- what submit answers ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SubmitResult:
    """Intake's answer to one call (the fields of ReportIncident's response, plus two of its own).

    ``unavailable``: intake did not answer (no service, a timeout); the call was not recorded.
    ``repeat``: the call repeats one intake had already accepted (a retry by the CAD system).
    """

    accepted: bool
    incident_id: str = ""
    merged: bool = False
    drone_eligible: bool = False
    policy_reason: str = ""
    errors: list[str] = field(default_factory=list)
    unavailable: bool = False
    repeat: bool = False

    @classmethod
    def from_report(cls, response: Any) -> "SubmitResult":
        """From a ReportIncident response (read by attribute, so no ROS import is needed here)."""
        return cls(accepted=bool(response.accepted), incident_id=str(response.incident_id),
                   merged=bool(response.merged), drone_eligible=bool(response.drone_eligible),
                   policy_reason=str(response.policy_reason), errors=[str(e) for e in response.errors],
                   repeat=bool(getattr(response, "repeat", False)))

    @classmethod
    def intake_unavailable(cls) -> "SubmitResult":
        return cls(accepted=False, unavailable=True)


Submit = Callable[[Call], SubmitResult]


# --- the request body -------------------------------------------------------------------------------------------

class Grade(str, enum.Enum):
    """The call's grade in the Met's grading, most urgent first.

    I: immediate (an emergency: attend at once); S: significant (urgent, attend within the hour);
    E: extended (attend later or by appointment); R: referred (dealt with without police attending,
    or by another service).
    """

    IMMEDIATE = "I"
    SIGNIFICANT = "S"
    EXTENDED = "E"
    REFERRED = "R"


GRADE_MEANINGS = {"I": "immediate", "S": "significant", "E": "extended", "R": "referred"}


def _iso_datetime_text(value: Any) -> Any:
    # Without this, pydantic would also read numbers (and strings of digits) as Unix times: s or ms?
    if not isinstance(value, str) or not _ISO_DATETIME_RE.match(value):
        raise ValueError("must be an ISO 8601 date and time with a timezone, e.g. 2026-11-26T14:05:03Z")
    return value


def _text_check(allow_breaks: bool) -> Callable[[str], str]:
    allowed = "\t\n\r" if allow_breaks else ""

    def check(value: str) -> str:
        for ch in value:
            code = ord(ch)
            if (code < 0x20 and ch not in allowed) or 0x7F <= code < 0xA0:
                raise ValueError(f"contains the control character U+{code:04X}; only printable text"
                                 f"{', tabs and line breaks' if allow_breaks else ''} may be sent")
            if 0xD800 <= code < 0xE000:
                raise ValueError(f"contains U+{code:04X}, half of a UTF-16 surrogate pair, which is not text")
        return value
    return check


_identifier_check = AfterValidator(_text_check(allow_breaks=False))
_free_text_check = AfterValidator(_text_check(allow_breaks=True))
_Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH), _free_text_check]
_Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]

_EXAMPLE = {
    "cad_ref": "CAD-20261126-0142",
    "call_time": "2026-11-26T14:05:03Z",
    "grade": "I",
    "category": "dangerous_driving",
    "latitude": 51.5412,
    "longitude": -0.1027,
    "location_uncertainty_m": 40.0,
    "address": "Upper Street, Islington, N1",
    "description": "E-bike ridden at speed on the pavement, pedestrians knocked aside",
    "suspect_description": "Male, black hoodie, red e-bike",
}


class CadCall(BaseModel):
    """One call as the CAD system reports it. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"examples": [_EXAMPLE]})

    cad_ref: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CAD_REF_LENGTH, pattern=r"\S"),
                       _identifier_check, Field(
        description="The CAD system's own reference for this call. Sending the same call again with the "
                    "same reference is a retry and answers as before; the same reference with different "
                    "details is refused.",
        examples=["CAD-20261126-0142"])]
    call_time: Annotated[AwareDatetime, BeforeValidator(_iso_datetime_text), Field(
        description="When the call was received: ISO 8601 date and time with a timezone, UTC preferred "
                    "(e.g. 2026-11-26T14:05:03Z). A time without a timezone is refused; intake refuses a time "
                    "in the future beyond its clock-skew tolerance (5 s by default).",
        examples=["2026-11-26T14:05:03Z"])]
    grade: Annotated[Grade, Field(
        description="The call's grade in the Met's grading: I immediate, S significant, E extended, R referred.",
        examples=["I"])]
    category: Annotated[str, StringConstraints(min_length=1, max_length=64), _identifier_check, Field(
        description="What the call is about: one of intake's configured categories (config/intake.yaml), "
                    "e.g. dangerous_driving, robbery, missing_person. An unknown category is refused.",
        examples=["dangerous_driving"])]
    latitude: Annotated[_Number, Field(
        ge=-90.0, le=90.0,
        description="Latitude of the incident in degrees, WGS 84, north positive. It must lie in the "
                    "operating area (intake checks).",
        examples=[51.5412])]
    longitude: Annotated[_Number, Field(
        ge=-180.0, le=180.0,
        description="Longitude of the incident in degrees, WGS 84, east positive. It must lie in the "
                    "operating area (intake checks).",
        examples=[-0.1027])]
    location_uncertainty_m: Annotated[_Number, Field(
        ge=0.0, le=MAX_UNCERTAINTY_M,
        description="Radius in metres within which the incident lies (0 when exact). Intake refuses one "
                    "above its configured limit (2000 m by default) as too vague to send a drone.",
        examples=[40.0])]
    address: Annotated[_Text, Field(
        description="Free-text address or place as the call taker recorded it; empty when there is none.",
        examples=["Upper Street, Islington, N1"])]
    description: Annotated[_Text, Field(
        description="Free-text account of what is happening; empty when there is none.",
        examples=["E-bike ridden at speed on the pavement, pedestrians knocked aside"])]
    suspect_description: Annotated[_Text | None, Field(
        description="Free-text description of a suspect or vehicle, if the caller gave one; omit it or "
                    "send null otherwise.",
        examples=["Male, black hoodie, red e-bike"])] = None

    def to_call(self) -> Call:
        """As intake's Call: call_time in seconds since the Unix epoch, UTC."""
        return Call(cad_ref=self.cad_ref, call_time_s=self.call_time.timestamp(), grade=self.grade.value,
                    category=self.category, latitude=float(self.latitude), longitude=float(self.longitude),
                    location_uncertainty_m=float(self.location_uncertainty_m), address=self.address,
                    description=self.description, suspect_description=self.suspect_description or "")


CAD_CALL_FIELDS = tuple(CadCall.model_fields)
# Intake names these in its errors besides the fields themselves: latitude and longitude together.
_INTAKE_FIELDS = frozenset(CAD_CALL_FIELDS) | {"location"}


# --- the responses ----------------------------------------------------------------------------------------------

class CallAccepted(BaseModel):
    """Intake accepted the call."""

    incident_id: str = Field(description="The incident the call opened or joined.", examples=["INC-000042"])
    merged: bool = Field(description="True when the call joined an incident that was already open.")
    repeat: bool = Field(description="True when this repeats a call already accepted (status 200); nothing new "
                                     "was recorded.")
    drone_eligible: bool = Field(description="True when the launch policy allows a drone for this incident.")
    policy_reason: str = Field(description="Why the launch policy decided as it did.",
                               examples=["grade I dangerous_driving is eligible"])


class FieldError(BaseModel):
    field: str = Field(description="The field at fault (a name of the call's fields; 'location' for latitude "
                                   "and longitude together; 'body' for the request as a whole).",
                       examples=["latitude"])
    message: str = Field(description="What is wrong with it.", examples=["must be a finite number"])


class ErrorResponse(BaseModel):
    detail: str = Field(description="What happened, in one line.")
    errors: list[FieldError] = Field(default_factory=list, description="One entry per problem found.")


class Health(BaseModel):
    status: Literal["ok"] = Field(description="The HTTP layer is up (it says nothing of intake).")


def _error_response(status: int, detail: str, errors: Sequence[tuple[str, str]] = (),
                    headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(detail=detail, errors=[FieldError(field=f, message=m) for f, m in errors])
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


# --- turning pydantic's and intake's complaints into {field, message} -------------------------------------------

def _shown(value: Any) -> str | None:
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value) if not isinstance(value, float) or value == value else "NaN"
    if isinstance(value, str) and len(value) <= 40:
        return repr(value)
    return None


def _schema_message(error: dict) -> str:
    kind, ctx, given = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        return "not a field of a call; unknown fields are refused (check the spelling)"
    if kind == "finite_number":
        return f"{_shown(given)} is not a finite number; NaN and Infinity are refused"
    if kind in ("float_type", "float_parsing"):
        return "must be a JSON number"
    if kind == "string_type":
        return "must be a JSON string"
    if kind == "string_unicode":
        return "is not valid Unicode text (half of a UTF-16 surrogate pair?)"
    if kind == "enum":
        grades = ", ".join(f"{g} ({meaning})" for g, meaning in GRADE_MEANINGS.items())
        return f"{_shown(given) or 'this'} is not a grade; use one of {grades}"
    if kind == "timezone_aware":
        return "needs a timezone, e.g. 2026-11-26T14:05:03Z for UTC"
    if kind == "string_pattern_mismatch":
        return "must hold more than spaces"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    message = error["msg"]
    message = message[0].lower() + message[1:]
    shown = _shown(given)
    return f"{message} (got {shown})" if shown is not None and kind != "string_too_long" else message


def schema_errors(errors: Sequence[dict]) -> list[tuple[str, str]]:
    """pydantic's errors for the body as (field, message) pairs."""
    out = []
    for error in errors:
        loc = list(error["loc"])[1:] if error["loc"][:1] == ("body",) else list(error["loc"])
        # The first part names the field (or the unknown one); any further parts are pydantic's own.
        name = str(loc[0]) if loc else "body"
        if name not in CAD_CALL_FIELDS and error["type"] != "extra_forbidden":
            name = "body"
        if name == "body" and error["type"] in ("model_attributes_type", "dict_type", "model_type"):
            out.append((name, "must be a JSON object holding the call's fields"))
        else:
            out.append((name, _schema_message(error)))
    unique = []
    for pair in out:
        if pair not in unique:
            unique.append(pair)
    return unique


def intake_errors(errors: Sequence[str]) -> list[tuple[str, str]]:
    """Intake's 'field: reason' strings as (field, message) pairs; 'call' where no field is named."""
    out = []
    for text in errors:
        name, sep, message = text.partition(": ")
        if sep and name in _INTAKE_FIELDS:
            out.append((name, message))
        else:
            out.append(("call", text))
    return out or [("call", "refused by intake without a reason")]


# --- the token and the size of the body, before anything is parsed ----------------------------------------------

class TokenCheck:
    """``Authorization: Bearer <token>``, compared in constant time (digests, so the length does not show)."""

    def __init__(self, token: str):
        if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
            raise ValueError("the CAD API token must be a non-empty bearer token (letters, digits, -._~+/ and "
                             "trailing =)")
        self._digest = hashlib.sha256(token.encode("ascii")).digest()

    def credentials_ok(self, credentials: bytes | str | None) -> bool:
        if credentials is None:
            return False
        if isinstance(credentials, str):
            credentials = credentials.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(hashlib.sha256(credentials).digest(), self._digest)

    def header_ok(self, values: Sequence[bytes]) -> bool:
        """The raw values of every Authorization header in the request: exactly one, a Bearer one, right."""
        if len(values) != 1:
            return False
        scheme, _, credentials = values[0].strip().partition(b" ")
        return scheme.lower() == b"bearer" and self.credentials_ok(credentials.strip())


def _unauthorized(invalid: bool) -> JSONResponse:
    challenge = 'Bearer realm="dfr-intake"' + (', error="invalid_token"' if invalid else "")
    return _error_response(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>'",
                           [("authorization", "a valid bearer token is required")],
                           headers={"WWW-Authenticate": challenge, "Connection": "close"})


def _too_large(limit: int) -> JSONResponse:
    return _error_response(413, f"the body is larger than {limit} bytes",
                           [("body", f"larger than {limit} bytes; a call is far smaller")],
                           headers={"Connection": "close"})


class RequestRate:
    """A token bucket per client address: `burst` requests at once, then `per_s` a second.

    At most `max_clients` addresses are remembered; when more come, those whose buckets have
    refilled (they would be allowed a full burst anyway) are forgotten first, so memory stays
    bounded whatever the traffic.
    """

    def __init__(self, per_s: float = DEFAULT_REQUESTS_PER_S, burst: int = DEFAULT_REQUEST_BURST,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = 4096):
        if not (per_s > 0 and burst >= 1 and max_clients >= 1):
            raise ValueError(f"the request rate needs per_s > 0, burst >= 1 and max_clients >= 1, got per_s={per_s}, "
                             f"burst={burst}, max_clients={max_clients}")
        self.per_s, self.burst, self.clock, self.max_clients = float(per_s), float(burst), clock, max_clients
        self._buckets: dict[str, tuple[float, float]] = {}      # address -> (tokens, when counted)
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """0 when a request from `client` may go ahead now (and it is counted), else the seconds until one may."""
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.per_s)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                if len(self._buckets) > self.max_clients:
                    self._forget(now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.per_s

    def _forget(self, now: float) -> None:
        full = [c for c, (tokens, then) in self._buckets.items()
                if tokens + (now - then) * self.per_s >= self.burst]
        for client in full or sorted(self._buckets, key=lambda c: self._buckets[c][1])[: len(self._buckets) // 2]:
            del self._buckets[client]


def _too_many(wait_s: float) -> JSONResponse:
    retry = max(1, math.ceil(wait_s))
    return _error_response(429, "too many requests from this address: send again later",
                           [("request", f"over the rate allowed; retry after {retry} s")],
                           headers={"Retry-After": str(retry)})


class RequestGate:
    """Pure ASGI, outermost: the request rate, the token, then the body's size, before the application reads
    anything.

    The whole body (at most ``max_body_bytes``) is read here and handed on, so nothing larger
    is ever parsed; the Content-Length is checked before reading.
    """

    def __init__(self, app: ASGIApp, tokens: TokenCheck, max_body_bytes: int, rate: RequestRate):
        self.app = app
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes
        self.rate = rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        client = (scope.get("client") or ("?", 0))[0]
        if scope.get("path") not in PUBLIC_PATHS:
            wait_s = self.rate.wait_s(client)
            if wait_s > 0.0:
                log.warning("CAD API: refused %s %s from %s: over the request rate", scope.get("method"),
                            scope.get("path"), client)
                await _too_many(wait_s)(scope, receive, send)
                return
            auth = [value for name, value in headers if name.lower() == b"authorization"]
            if not self.tokens.header_ok(auth):
                log.warning("CAD API: refused %s %s from %s: %s bearer token", scope.get("method"),
                            scope.get("path"), client, "wrong" if auth else "no")
                await _unauthorized(bool(auth))(scope, receive, send)
                return
        lengths = [value for name, value in headers if name.lower() == b"content-length"]
        if lengths:
            try:
                declared = int(lengths[0])
            except ValueError:
                declared = -1
            if declared < 0 or any(v != lengths[0] for v in lengths):
                await _error_response(400, "bad Content-Length", [("body", "the Content-Length is not a number")],
                                      headers={"Connection": "close"})(scope, receive, send)
                return
            if declared > self.max_body_bytes:
                log.warning("CAD API: refused %s bytes from %s (limit %s)", declared, client, self.max_body_bytes)
                await _too_large(self.max_body_bytes)(scope, receive, send)
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                log.warning("CAD API: refused a streamed body over %s bytes from %s", self.max_body_bytes, client)
                await _too_large(self.max_body_bytes)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        scope[_BODY_LENGTH_KEY] = len(body)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# --- the application --------------------------------------------------------------------------------------------

_DESCRIPTION = """\
Calls from a control room's computer-aided dispatch (CAD) system into intake, which checks
every field, de-duplicates repeat calls about the same event, applies the launch policy and
publishes the incident to dispatch.

Every request except `GET /v1/health` and `GET /openapi.json` needs the token:
`Authorization: Bearer <token>`. A body larger than the configured limit (16 KiB by default)
is refused with 413 before it is read. More requests from one address than the configured
rate (by default a burst of 200, then 50 a second) are refused with 429 and a Retry-After.
Every refusal names the fields at fault, one
`{field, message}` per problem; a refused call is not recorded and nothing is published.
"""

_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "Accepted, a new call: it opened an incident, or joined one (merged)."},
    200: {"model": CallAccepted, "description": "The call repeats one already accepted (a retry): the same "
                                                "answer as the first time; nothing new was recorded."},
    400: {"model": ErrorResponse, "description": "The body is not JSON (empty, malformed, not UTF-8)."},
    401: {"model": ErrorResponse, "description": "No bearer token, or the wrong one."},
    413: {"model": ErrorResponse, "description": "The body is larger than the configured limit."},
    415: {"model": ErrorResponse, "description": "The body was not sent as application/json."},
    429: {"model": ErrorResponse, "description": "Too many requests from this address: send again after "
                                                 "Retry-After seconds. Nothing was recorded."},
    422: {"model": ErrorResponse, "description": "The call is not acceptable: the schema or intake refused it. "
                                                 "One {field, message} per problem."},
    503: {"model": ErrorResponse, "description": "Intake did not answer. Nothing was recorded: send the call "
                                                 "again (see Retry-After)."},
}


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def create_app(submit: Submit, token: str, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               rate: RequestRate | None = None) -> FastAPI:
    """The CAD call API. ``submit`` is called (in a worker thread) with each call that passed the schema."""
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be positive, not {max_body_bytes}")
    tokens = TokenCheck(token)
    bearer = HTTPBearer(scheme_name="CadToken", auto_error=False,
                        description="The token the CAD system was given: `Authorization: Bearer <token>`.")

    def require_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> None:
        # RequestGate has already checked; this keeps every route that declares it safe without the gate too.
        if credentials is None or not tokens.credentials_ok(credentials.credentials):
            raise HTTPException(401, "missing or wrong bearer token")

    app = FastAPI(title="DFR intake: CAD call API", version=API_VERSION, description=_DESCRIPTION,
                  openapi_url=OPENAPI_PATH, docs_url=None, redoc_url=None)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e["type"] == "json_invalid" for e in errors):
            detail = next(e for e in errors if e["type"] == "json_invalid")
            reason = (detail.get("ctx") or {}).get("error", "not JSON")
            position = detail["loc"][-1] if len(detail["loc"]) > 1 else "?"
            return _error_response(400, "the body is not valid JSON",
                                   [("body", f"malformed JSON: {reason} (at character {position})")])
        if request.scope.get(_BODY_LENGTH_KEY) == 0:
            return _error_response(400, "the body is empty", [("body", "empty; send the call as a JSON object")])
        if not _is_json(request.headers.get("content-type")):
            return _error_response(415, "send the call as application/json",
                                   [("body", f"Content-Type is {request.headers.get('content-type') or 'missing'}"
                                             f"; application/json is required")])
        pairs = schema_errors(errors)
        log.info("CAD API: refused a call: %s", "; ".join(f"{f}: {m}" for f, m in pairs))
        return _error_response(422, "the call was refused; see errors", pairs)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 401:
            return _unauthorized(True)
        if exc.status_code == 400:   # the body could not be decoded at all (not UTF-8, nested too deep)
            return _error_response(400, "the body is not valid JSON", [("body", "could not be read as JSON text")])
        return _error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.post(CALLS_PATH, status_code=201, response_model=CallAccepted, responses=_RESPONSES,
              summary="Report a call", description="Report one call to intake. 201: accepted, a new call; 200: "
              "a repeat of a call already accepted.", dependencies=[Security(require_token)])
    def post_call(call: CadCall) -> JSONResponse:
        intake_call = call.to_call()
        try:
            result = submit(intake_call)
        except Exception:
            log.exception("CAD API: submitting call %s failed", intake_call.cad_ref)
            return _error_response(500, "internal error: the call was not recorded; send it again")
        if result.unavailable:
            log.warning("CAD API: intake did not answer for call %s", intake_call.cad_ref)
            return _error_response(503, "intake did not answer: the call was not recorded; send it again",
                                   headers={"Retry-After": str(RETRY_AFTER_S)})
        if not result.accepted:
            pairs = intake_errors(result.errors)
            log.info("CAD API: intake refused call %s: %s", intake_call.cad_ref, "; ".join(result.errors))
            return _error_response(422, "intake refused the call; see errors", pairs)
        answer = CallAccepted(incident_id=result.incident_id, merged=result.merged, repeat=result.repeat,
                              drone_eligible=result.drone_eligible, policy_reason=result.policy_reason)
        return JSONResponse(answer.model_dump(), status_code=200 if result.repeat else 201)

    @app.get(HEALTH_PATH, response_model=Health, summary="Is the HTTP layer up", description="Needs no token.")
    def health() -> Health:
        return Health(status="ok")

    app.add_middleware(RequestGate, tokens=tokens, max_body_bytes=max_body_bytes, rate=rate or RequestRate())
    return app


# --- serving it -------------------------------------------------------------------------------------------------

class BackgroundServer:
    """uvicorn serving an application in a daemon thread: for the gateway node and for tests.

    ``port=0`` takes a free port; ``port`` tells which once ``start`` returns. Extra keyword
    arguments go to ``uvicorn.Config`` (``ssl_certfile``, ``ssl_keyfile`` for TLS, for example).
    uvicorn leaves the process's logging configuration alone (``log_config=None``).
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, **config: Any):
        options = {"log_config": None, "access_log": False, "server_header": False, "lifespan": "off",
                   "timeout_keep_alive": 5, "limit_concurrency": 64}
        options.update(config)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))
        self.thread = threading.Thread(target=self.server.run, name="cad-http", daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout_s: float = 10.0) -> "BackgroundServer":
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the CAD API server did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        scheme = "https" if self.server.config.ssl_certfile else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)


# --- the checked-in OpenAPI description -------------------------------------------------------------------------

OPENAPI_FILE = Path(__file__).resolve().parents[1] / "openapi" / "cad_api.json"


def _no_intake(call: Call) -> SubmitResult:
    return SubmitResult.intake_unavailable()


def openapi_document() -> dict:
    """The OpenAPI description the application serves (it depends on neither the token nor the limit)."""
    return create_app(_no_intake, token="unused").openapi()


def openapi_text() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dfr_intake.cad_http",
                                     description="Write (or check) the checked-in OpenAPI description of the "
                                                 "CAD call API.")
    parser.add_argument("path", nargs="?", type=Path, default=OPENAPI_FILE, help=f"default: {OPENAPI_FILE}")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the file differs")
    args = parser.parse_args(argv)
    text = openapi_text()
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else None
        if current != text:
            print(f"{args.path} is out of date: run python -m dfr_intake.cad_http", file=sys.stderr)
            return 1
        print(f"{args.path} is current")
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
