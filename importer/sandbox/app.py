"""The sandbox API: Vambe's public endpoints as ``../shared/API.md`` describes them, in memory.

It checks the key, the phone ID and the body as the real API does, finds or creates contacts
by phone digits (same number, same ``aiContactId``), stores every ticket, and records every
request it received so tests can assert on the exact payloads. :class:`Faults` makes it
misbehave on purpose, reproducibly from a seed.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import math
import random
import re
import threading
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TypedDict

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

DEFAULT_API_KEY = "sandbox-key"
DEFAULT_PHONE_ID = "123456789"
DEFAULT_WEB_PHONE_ID = "phone_sandbox"


class _Stage(TypedDict):
    id: str
    name: str
    description: str


class _Pipeline(TypedDict):
    """A pipeline as GET /api/public/pipeline answers it."""

    id: str
    name: str
    description: str
    stages: list[_Stage]


PIPELINES: list[_Pipeline] = [
    {
        "id": "3f2b8a1e-0c4d-4e5f-8a9b-1c2d3e4f5a6b",
        "name": "Ventas",
        "description": "Campañas y seguimiento de pedidos",
        "stages": [
            {"id": "550e8400-e29b-41d4-a716-446655440000", "name": "Nuevo",
             "description": "Primer contacto"},
            {"id": "550e8400-e29b-41d4-a716-446655440001", "name": "Contactado",
             "description": "Ya respondió"},
            {"id": "550e8400-e29b-41d4-a716-446655440002", "name": "Seguimiento",
             "description": "Pedido en curso"},
        ],
    },
    {
        "id": "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
        "name": "Soporte",
        "description": "Casos de postventa",
        "stages": [
            {"id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "name": "Nuevo",
             "description": "Caso abierto"},
            {"id": "7c9e6679-7425-40de-944b-e07fc1f90ae8", "name": "Resuelto",
             "description": "Caso cerrado"},
        ],
    },
]


@dataclass
class Faults:
    """Misbehaviour to inject; fractions are of ticket requests, drawn from ``seed``."""

    rate_limit: float | None = None  # requests allowed in any 1 s window; more get 429
    latency: float = 0.0  # seconds added before answering each ticket request
    throttle: float = 0.0  # answered 429 (Retry-After: 1) without processing
    fail_503: float = 0.0  # answered 503 without processing (safe to retry)
    fail_500: float = 0.0  # processed (ticket created), then answered 500
    fail_500_unprocessed: float = 0.0  # answered 500 without processing
    drop: float = 0.0  # processed, then the connection is dropped mid-answer
    throttle_first: int = 0  # the first N ticket requests answered 429, without processing
    retry_after: str | None = None  # the Retry-After header of 429 and 503 answers, as given
    # Hostile answers to processed tickets (a server that lies, trickles or floods):
    trickle: float = 0.0  # seconds between the bytes of the answer
    huge_body: int = 0  # a 200 whose body is this many bytes
    gzip_bomb: int = 0  # a 200 whose gzip body expands to this many bytes
    broken_gzip: bool = False  # a 200 that says gzip and is not
    echo_key: bool = False  # 401s echo the key received; tickets are answered 400 echoing it
    error_message: str | None = None  # the message of every error answer, as given
    # The account's clock, this many seconds off this machine's: its timestamps (contacts,
    # messages) and every answer's Date header (exact, truncated to the second, as HTTP
    # servers send it).
    clock_offset: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Received:
    """One request as the sandbox saw it."""

    method: str
    path: str
    status: int
    body: object
    idempotency_key: str | None
    at: float  # arrival, time.time()


@dataclass
class SandboxState:
    """Everything the sandbox knows; safe to read from the test's thread."""

    api_key: str = DEFAULT_API_KEY
    phone_ids: tuple[str, ...] = (DEFAULT_PHONE_ID,)
    web_phone_ids: tuple[str, ...] = (DEFAULT_WEB_PHONE_ID,)
    faults: Faults = field(default_factory=Faults)
    pipelines: list = field(default_factory=lambda: json.loads(json.dumps(PIPELINES)))
    contacts: dict[str, str] = field(default_factory=dict)  # phone digits -> contact ID
    profiles: dict[str, dict] = field(default_factory=dict)  # contact ID -> what the API shows
    tickets: list[dict] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(self.faults.seed)
        self._window: deque[float] = deque()
        self.active = 0  # ticket requests being handled right now
        self.paused = False  # tests: ticket requests wait while this is True
        self._throttled = 0  # ticket requests answered 429 by throttle_first

    def reset(self) -> None:
        """Back to a fresh sandbox (no contacts, tickets, faults), so one server can serve
        many tests without the cost of a restart."""
        fresh = SandboxState()
        with self._lock:
            for name in [f.name for f in fields(self)]:
                setattr(self, name, getattr(fresh, name))
            self._random, self._window = fresh._random, fresh._window
            self.paused = False
            self._throttled = 0

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Return once no ticket request is being handled (a test's deadline, not a sleep:
        requests a client gave up on still arrive and are recorded)."""
        deadline = time.monotonic() + timeout
        while self.active:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sandbox was still busy after {timeout:g} s")
            time.sleep(0.01)

    def tickets_per_phone(self) -> Counter:
        """How many tickets each phone (as digits) got: more than one is a duplicate message."""
        with self._lock:
            return Counter(ticket["phone_digits"] for ticket in self.tickets)

    def ticket_bodies(self) -> list[dict]:
        """Every ticket's body, by phone (then name): concurrent requests arrive in any
        order, so arrival order is nothing a test or a demo may rely on."""
        with self._lock:
            bodies = [ticket["body"] for ticket in self.tickets]
        return sorted(bodies, key=lambda body: (
            re.sub(r"\D", "", str(body.get("to_phone_number"))), str(body.get("contact_name")),
            json.dumps(body, sort_keys=True)))

    def seed_contact(self, phone: str, *, name: str = "", open_ticket_stage: str | None = None,
                     created_at: float | None = None, last_message: str | None = None,
                     last_message_at: float | None = None) -> str:
        """A contact that exists before any run (an open ticket, an old conversation)."""
        digits = re.sub(r"\D", "", phone)
        with self._lock:
            contact = self.contacts.setdefault(digits, str(uuid.uuid4()))
            profile = self._profile(contact, digits, name, created_at or self.now())
            if open_ticket_stage is not None:
                profile["active_ticket_v2"] = {"id": str(uuid.uuid4()),
                                               "current_stage_id": open_ticket_stage}
            if last_message is not None:
                profile["last_message_content"] = last_message
                profile["last_message_at"] = _iso(last_message_at or self.now())
        return contact

    def _profile(self, contact: str, digits: str, name: str, created: float) -> dict:
        """The contact's record, made on first sight (call with the lock held)."""
        return self.profiles.setdefault(contact, {
            "id": contact, "name": name, "phone": "+" + digits, "email": None,
            "platform": "whatsapp", "created_at": _iso(created), "last_message_at": None,
            "last_message_content": None, "chat_status": "open", "blocked": False,
            "client_id": "sandbox", "ai_customer_id": contact,
            "default_stage_id": None, "active_ticket_v2": None,
        })

    def stage_ids(self) -> set[str]:
        return {stage["id"] for pipeline in self.pipelines for stage in pipeline["stages"]}

    def _record(self, request: Request, status: int, body: object, arrived: float) -> None:
        with self._lock:
            self.received.append(Received(request.method, request.url.path, status, body,
                                          request.headers.get("idempotency-key"), arrived))

    def now(self) -> float:
        """The account's clock (``clock_offset`` seconds off this machine's)."""
        return time.time() + self.faults.clock_offset

    def _admit(self) -> float | None:
        """Under the rate limit: None. Over it: seconds until a request would be admitted."""
        limit = self.faults.rate_limit
        if limit is None:
            return None
        now = time.monotonic()
        with self._lock:
            while self._window and self._window[0] <= now - 1.0:
                self._window.popleft()
            if len(self._window) >= limit:
                return self._window[0] + 1.0 - now
            self._window.append(now)
        return None

    def _draw(self) -> str:
        faults = self.faults
        with self._lock:
            if self._throttled < faults.throttle_first:
                self._throttled += 1
                return "429"
            roll = self._random.random()
        for name, share in (("429", faults.throttle), ("503", faults.fail_503),
                            ("500", faults.fail_500), ("drop", faults.drop),
                            ("500 unprocessed", faults.fail_500_unprocessed)):
            if roll < share:
                return name
            roll -= share
        return "ok"


def _iso(moment: float) -> str:
    """A time as the API writes it: ISO 8601 in UTC with milliseconds."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds"
                                                         ).replace("+00:00", "Z")


def _error(status: int, message: str, error: str) -> JSONResponse:
    return JSONResponse({"statusCode": status, "message": message, "error": error}, status)


class _StreamedAnswer(Response):
    """A 200 written in pieces, each after ``pause`` seconds: a trickle or a flood."""

    def __init__(self, pieces: Iterable[bytes], *, headers: dict[str, str],
                 pause: float = 0.0) -> None:
        super().__init__(status_code=200)
        self._pieces, self._pause = pieces, pause
        self.raw_headers = [(name.encode(), value.encode()) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        for piece in self._pieces:
            if self._pause:
                await asyncio.sleep(self._pause)
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


_BOMBS: dict[int, bytes] = {}


def _gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzipped (about 1,000 to 1): made once per size."""
    if size not in _BOMBS:
        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block = bytes(1 << 20)
        parts = [packer.compress(block) for _ in range(size >> 20)]
        _BOMBS[size] = b"".join(parts) + packer.compress(bytes(size % (1 << 20))) + packer.flush()
    return _BOMBS[size]


def _with_message(response: Response, message: str | None) -> Response:
    """An error answer with its message replaced (a server that says anything at all)."""
    if message is None or response.status_code < 400:
        return response
    replaced = _error(response.status_code, message, "Error")
    if "retry-after" in response.headers:
        replaced.headers["retry-after"] = response.headers["retry-after"]
    return replaced


def _hostile_answer(faults: Faults, contact: str) -> Response | None:
    """The misbehaving answer the faults ask for, once the ticket was processed."""
    body = json.dumps({"aiContactId": contact, "status": "ok"}).encode()
    if faults.trickle:
        return _StreamedAnswer([body[i:i + 1] for i in range(len(body))], pause=faults.trickle,
                               headers={"content-type": "application/json",
                                        "content-length": str(len(body))})
    if faults.huge_body:
        chunk = 1 << 16
        count, rest = divmod(faults.huge_body, chunk)
        return _StreamedAnswer(
            itertools.chain(itertools.repeat(bytes(chunk), count), [bytes(rest)]),
            headers={"content-type": "application/json",
                     "content-length": str(faults.huge_body)})
    if faults.gzip_bomb:
        bomb = _gzip_bomb(faults.gzip_bomb)
        return Response(bomb, 200, headers={"content-encoding": "gzip"},
                        media_type="application/json")
    if faults.broken_gzip:
        return Response(body, 200, headers={"content-encoding": "gzip"},
                        media_type="application/json")
    return None


def _too_many(wait: float, retry_after: str | None = None) -> JSONResponse:
    return JSONResponse({"statusCode": 429, "message": "Too many requests"}, 429,
                        headers={"retry-after": retry_after or str(max(1, math.ceil(wait)))})


class _DroppedResponse(Response):
    """Starts an answer, then breaks the connection: the client cannot know what happened."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"100")]})
        raise ConnectionAbortedError("sandbox fault: connection dropped after processing")


def _check_body(body: object, state: SandboxState) -> str | None:
    """The API's body validation; returns the 400 message, or None when the body is good."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    phone = body.get("to_phone_number")
    if not isinstance(phone, (str, int)) or isinstance(phone, bool):
        return "to_phone_number is required"
    digits = re.sub(r"\D", "", str(phone))
    try:
        number = phonenumbers.parse("+" + digits)
        if not phonenumbers.is_valid_number(number):
            return "Invalid phone number"
    except phonenumbers.NumberParseException:
        return "Invalid phone number"
    if body.get("stage_id") not in state.stage_ids():
        return "Invalid stage ID"
    for name in ("contact_name", "email"):
        if name in body and not isinstance(body[name], str):
            return f"{name} must be a string"
    if "email" in body:
        try:
            validate_email(body["email"], check_deliverability=False)
        except EmailNotValidError:
            return "email must be an email"
    for name in ("contact_metadata", "ticket_metadata", "integration_data"):
        if name in body and not isinstance(body[name], dict):
            return f"{name} must be an object"
    if "message" in body:
        message = body["message"]
        if not isinstance(message, dict) or not isinstance(message.get("ai_generated"), bool):
            return "message.ai_generated must be a boolean"
        for name in ("content", "templateId"):
            if name in message and not isinstance(message[name], str):
                return f"message.{name} must be a string"
    return None


def create_app(state: SandboxState) -> _Dated:
    """The ASGI app serving ``state``."""

    async def guarded(request: Request) -> Response | None:
        wait = state._admit()
        if wait is not None:
            return _too_many(wait)
        key = request.headers.get("x-api-key")
        if key != state.api_key:
            echoed = f": {key}" if state.faults.echo_key else ""
            return _error(401, f"Invalid or missing API key{echoed}", "Unauthorized")
        return None

    async def open_ticket(request: Request) -> Response:
        arrived = time.time()
        state.active += 1
        try:
            raw = await request.body()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            if state.faults.latency:
                await asyncio.sleep(state.faults.latency)
            while state.paused:  # a test holds this request in flight
                await asyncio.sleep(0.005)
            refusal = await guarded(request)
            if refusal is None:
                refusal = await _open_ticket(request, body)
            state._record(request, refusal.status_code, body, arrived)
            return _with_message(refusal, state.faults.error_message)
        finally:
            state.active -= 1

    async def _open_ticket(request: Request, body: object) -> Response:
        phone_id, channel = request.path_params["phone_id"], request.path_params["channel"]
        if channel not in ("whatsapp", "web-whatsapp"):
            return _error(404, f"Cannot POST {request.url.path}", "Not Found")
        web = channel == "web-whatsapp"
        known = phone_id in state.web_phone_ids if web else (
            phone_id.isdigit() and phone_id in state.phone_ids)
        if not known:
            return _error(404, f"Phone ID {phone_id} not found", "Not Found")
        if web and isinstance(body, dict) and isinstance(body.get("message"), dict) and (
                "templateId" in body["message"]):
            return _error(400, "Templates are not supported on WhatsApp Web connections",
                          "Bad Request")
        if state.faults.echo_key:
            return _error(400, f"Bad request for key {request.headers.get('x-api-key')}",
                          "Bad Request")
        fault = state._draw()
        if fault == "429":
            return _too_many(1.0, state.faults.retry_after)
        if fault == "503":
            response = _error(503, "Service temporarily unavailable", "Service Unavailable")
            if state.faults.retry_after:
                response.headers["retry-after"] = state.faults.retry_after
            return response
        if fault == "500 unprocessed":
            return _error(500, "Internal server error", "Internal Server Error")
        problem = _check_body(body, state)
        if problem is not None:
            return _error(400, problem, "Bad Request")
        assert isinstance(body, dict)  # _check_body refuses any other body
        digits = re.sub(r"\D", "", str(body["to_phone_number"]))
        now = state.now()
        with state._lock:
            contact = state.contacts.setdefault(digits, str(uuid.uuid4()))
            ticket = str(uuid.uuid4())
            state.tickets.append({"id": ticket, "contact_id": contact,
                                  "phone_digits": digits, "body": body, "created_at": now})
            profile = state._profile(contact, digits, body.get("contact_name", ""), now)
            profile["active_ticket_v2"] = {"id": ticket, "current_stage_id": body["stage_id"]}
            message = body.get("message")
            if isinstance(message, dict):
                profile["last_message_content"] = message.get("content") or (
                    f"[template {message.get('templateId')}]")
                profile["last_message_at"] = _iso(now)
        if fault == "500":
            return _error(500, "Internal server error", "Internal Server Error")
        if fault == "drop":
            return _DroppedResponse()
        return _hostile_answer(state.faults, contact) or JSONResponse(
            {"aiContactId": contact, "status": "ok"})

    async def send_template(request: Request) -> Response:
        """``POST /api/public/whatsapp/message/send/{phone}/template/{templateId}``: an approved
        template with several variables (Vambe's SendTemplateDto), recorded as a message."""
        arrived = time.time()
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        response = await guarded(request) or _send_template(request, body)
        state._record(request, response.status_code, body, arrived)
        return _with_message(response, state.faults.error_message)

    def _send_template(request: Request, body: object) -> Response:
        fault = state._draw()
        if fault == "429":
            return _too_many(1.0, state.faults.retry_after)
        if fault == "503":
            return _error(503, "Service temporarily unavailable", "Service Unavailable")
        if fault == "500 unprocessed":
            return _error(500, "Internal server error", "Internal Server Error")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object", "Bad Request")
        variables = body.get("variables")
        if (not isinstance(variables, list) or not variables
                or not all(isinstance(value, str) for value in variables)):
            return _error(400, "variables must be a non-empty array of strings", "Bad Request")
        if not isinstance(body.get("meta_data"), dict):
            return _error(400, "meta_data must be an object", "Bad Request")
        if "stageId" in body and body["stageId"] not in state.stage_ids():
            return _error(400, "Invalid stage ID", "Bad Request")
        digits = re.sub(r"\D", "", request.path_params["phone"])
        try:
            valid = phonenumbers.is_valid_number(phonenumbers.parse("+" + digits))
        except phonenumbers.NumberParseException:
            valid = False
        if not valid:
            return _error(400, "Invalid phone number", "Bad Request")
        now = state.now()
        template = request.path_params["template_id"]
        with state._lock:
            contact = state.contacts.setdefault(digits, str(uuid.uuid4()))
            state.tickets.append({"id": str(uuid.uuid4()), "contact_id": contact,
                                  "phone_digits": digits, "created_at": now,
                                  "body": {**body, "templateId": template,
                                           "from": request.query_params.get("from-phone-number")}})
            profile = state._profile(contact, digits, body.get("contactName", ""), now)
            profile["last_message_content"] = " | ".join(variables)
            profile["last_message_at"] = _iso(now)
        if fault == "500":
            return _error(500, "Internal server error", "Internal Server Error")
        if fault == "drop":
            return _DroppedResponse()
        return JSONResponse({"success": True, "aiContactId": contact}, 201)

    async def list_pipelines(request: Request) -> Response:
        refusal = await guarded(request)
        response = refusal or JSONResponse(state.pipelines)
        state._record(request, response.status_code, None, time.time())
        return response

    async def list_channels(request: Request) -> Response:
        refusal = await guarded(request)
        web = request.url.path.endswith("/web-whatsapp")
        response = refusal or JSONResponse([
            {"id": phone_id, "name": f"Sandbox WhatsApp {phone_id}",
             "phone_number": "+56 9 8765 4321", "client_id": "sandbox"}
            for phone_id in (state.web_phone_ids if web else state.phone_ids)
        ])
        state._record(request, response.status_code, None, time.time())
        return response

    async def search_contacts(request: Request) -> Response:
        """Fuzzy, as Vambe's: every contact whose number ends with the query's last eight
        digits, up to 50 (a client must compare digits exactly)."""
        refusal = await guarded(request)
        if refusal is None:
            digits = re.sub(r"\D", "", request.query_params.get("phone", ""))
            if not digits:
                refusal = _error(400, "phone or email is required", "Bad Request")
            else:
                with state._lock:
                    found = [dict(profile) for profile in state.profiles.values()
                             if re.sub(r"\D", "", profile["phone"]).endswith(digits[-8:])]
                refusal = JSONResponse(found[:50])
        state._record(request, refusal.status_code, None, time.time())
        return refusal

    async def contact_info(request: Request) -> Response:
        refusal = await guarded(request)
        if refusal is None:
            with state._lock:
                profile = state.profiles.get(request.path_params["contact_id"])
            refusal = (JSONResponse(dict(profile)) if profile is not None
                       else _error(404, "Contact not found", "Not Found"))
        state._record(request, refusal.status_code, None, time.time())
        return refusal

    async def received(request: Request) -> Response:
        """What the sandbox saw (time, status, path), for benchmarks run against a separate
        sandbox process; bodies are left out. It needs the key like every endpoint (a sandbox
        bound beyond loopback would otherwise show anyone what it received)."""
        if request.headers.get("x-api-key") != state.api_key:
            return _error(401, "Invalid or missing API key", "Unauthorized")
        with state._lock:
            seen = [[r.at, r.status, r.path] for r in state.received]
        return JSONResponse({"received": seen, "tickets": len(state.tickets),
                             "contacts": len(state.contacts)})

    return _Dated(state, Starlette(routes=[
        Route("/_sandbox/received", received, methods=["GET"]),
        Route("/api/public/ticket/open/{channel:str}/{phone_id}", open_ticket, methods=["POST"]),
        Route("/api/public/whatsapp/message/send/{phone}/template/{template_id}",
              send_template, methods=["POST"]),
        Route("/api/public/pipeline", list_pipelines, methods=["GET"]),
        Route("/api/public/contacts/search", search_contacts, methods=["GET"]),
        Route("/api/public/contact/{contact_id}/info", contact_info, methods=["GET"]),
        Route("/api/public/channels/whatsapp", list_channels, methods=["GET"]),
        Route("/api/public/channels/web-whatsapp", list_channels, methods=["GET"]),
    ]))


class _Dated:
    """Every answer carries the account's ``Date`` (the sandbox's own clock, exact to the
    second: uvicorn's is refreshed once a second, so up to a second stale)."""

    def __init__(self, state: SandboxState, app: Starlette) -> None:
        self._state, self._app = state, app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                date = email.utils.formatdate(self._state.now(), usegmt=True)
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"date", date.encode())]}
            await send(message)

        await self._app(scope, receive, dated)
