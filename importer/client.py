"""Vambe's public API, as the importer uses it: list pipelines, open tickets.

Every answer and every transport failure is classified here, in one table, because the
classification decides whether a customer can be messaged twice:

=====================================================  =========  =========================
answer                                                  outcome    meaning
=====================================================  =========  =========================
2xx                                                     sent       ticket opened
400 and other 4xx                                       rejected   not processed, fix the row
401, 403 (key), 404 (phone ID)                          fatal      no request can succeed
429                                                     throttled  not processed, send later
503, refused, connect or pool timeout                   retry      never reached the server
500, 502, 504, read/write timeout, dropped connection   unknown    the ticket may exist
=====================================================  =========  =========================

httpx2 is the maintained drop-in fork of httpx; httpx 0.28.1 pays a failed import on every
request without ``sniffio`` and measured 2.6x slower here (docs/design.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import re
import ssl
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, overload

import httpx2 as httpx

from .codes import ErrorCode, Outcome
from .exceptions import ApiUnavailableError, FatalApiError, InvalidApiKeyError
from .timing import MAX_BACKOFF_SECONDS, ClockSkew, clock, parse_retry_after
from .timing import backoff as backoff_delay
from .version import __version__


@dataclass(frozen=True, slots=True)
class Stage:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Pipeline:
    id: str
    name: str
    stages: tuple[Stage, ...]


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request came to, already classified (see the module's table)."""

    outcome: Outcome
    http_status: int | None = None
    ai_contact_id: str = ""
    error_code: ErrorCode | str = ""
    error: str = ""
    retry_after: float | None = None


def classify_status(status: int, text: str | bytes | None, headers: httpx.Headers,
                    redact: Callable[[str], str] = str) -> Answer:
    """The answer's meaning. ``text`` is None when the body was unreadable (too large, a
    compression bomb, a broken encoding): then the status code alone decides. ``redact``
    takes the key out of the server's text before anything cuts it short (a cut key is a
    key no longer recognised)."""
    if 200 <= status < 300:
        if text is None:
            return Answer(Outcome.SENT, status,
                          error=f"HTTP {status} with an unreadable answer ({UNREADABLE}); the"
                                " status code says the ticket was opened")
        try:
            contact = json.loads(text).get("aiContactId") or ""
        except (ValueError, AttributeError, RecursionError):
            contact = ""
        return Answer(Outcome.SENT, status, ai_contact_id=redact(str(contact))[:200])
    reason = (_error_message(text, redact) if text is not None
              else f"(unreadable answer: {UNREADABLE})")
    if status in (401, 403):
        return Answer(Outcome.FATAL, status, error_code=ErrorCode.API_KEY_REJECTED,
                      error=f"API key rejected (HTTP {status}): {reason}")
    if status == 404:
        return Answer(Outcome.FATAL, status, error_code=ErrorCode.PHONE_ID_UNKNOWN,
                      error=f"phone ID not found (HTTP 404): {reason}")
    if status == 429:
        return Answer(Outcome.THROTTLED, status, error_code=ErrorCode.THROTTLED,
                      error=f"throttled by the API (HTTP 429): {reason}",
                      retry_after=parse_retry_after(headers.get("retry-after")))
    if status == 503:
        return Answer(Outcome.RETRY, status, error_code=ErrorCode.API_UNAVAILABLE,
                      error=f"API unavailable (HTTP 503): {reason}",
                      retry_after=parse_retry_after(headers.get("retry-after")))
    if 400 <= status < 500:
        return Answer(Outcome.REJECTED, status, error_code=ErrorCode.API_REJECTED,
                      error=f"API rejected the row (HTTP {status}): {reason}")
    if 300 <= status < 400:  # httpx follows no redirect: a proxy or a wrong base_url
        where = headers.get("location") or "nowhere said"
        return Answer(Outcome.UNKNOWN, status, error_code=ErrorCode.OUTCOME_UNKNOWN,
                      error=f"the API answered with a redirect (HTTP {status} to"
                            f" {redact(where)[:200]}): check [api] base_url")
    return Answer(Outcome.UNKNOWN, status, error_code=ErrorCode.OUTCOME_UNKNOWN,
                  error=f"API error (HTTP {status}) after receiving the request: the ticket"
                        f" may exist: {reason}")


def classify_exception(error: Exception, timeout: float) -> Answer:
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return Answer(Outcome.RETRY, error_code=ErrorCode.CONNECTION_FAILED,
                      error=f"could not connect to the API: {_describe(error)}")
    if isinstance(error, httpx.TimeoutException):
        return Answer(Outcome.UNKNOWN, error_code=ErrorCode.OUTCOME_UNKNOWN,
                      error=f"no answer within {timeout:g} s after sending: the ticket may exist")
    return Answer(Outcome.UNKNOWN, error_code=ErrorCode.OUTCOME_UNKNOWN,
                  error=f"connection lost after sending ({_describe(error)}): the ticket may exist")


def _error_message(text: str | bytes, redact: Callable[[str], str] = str) -> str:
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        body = None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if isinstance(body, dict) and body.get("message"):
        message = body["message"]
        if isinstance(message, list):
            message = "; ".join(str(part) for part in message)
        return " ".join(redact(str(message)).split())[:300]
    return " ".join(redact(text).split())[:300] or "(no message)"


def _describe(error: Exception) -> str:
    return str(error) or type(error).__name__


MAX_ANSWER_BYTES = 1 << 20  # Vambe's answers are a few hundred bytes
UNREADABLE = "larger than 1 MiB, a compression bomb or a broken encoding"


async def read_bounded(response: httpx.Response) -> bytes | None:
    """At most :data:`MAX_ANSWER_BYTES` of an answer's body, decompressed here (gzip or
    deflate) with the output capped at every step, so neither a huge body nor a compression
    bomb can flood memory. None when the body is larger, a bomb, or broken."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    elif encoding in ("", "identity"):
        decoder = None
    else:
        return None  # an encoding we never asked for
    body = bytearray()
    raw = 0
    try:
        async for chunk in response.aiter_raw():
            raw += len(chunk)
            if raw > MAX_ANSWER_BYTES:
                return None
            if decoder is None:
                body += chunk
                continue
            pending = chunk
            while pending:
                body += decoder.decompress(pending, MAX_ANSWER_BYTES + 1 - len(body))
                if len(body) > MAX_ANSWER_BYTES:
                    return None
                pending = decoder.unconsumed_tail
        if decoder is not None:
            if not decoder.eof:
                return None  # truncated or not compressed at all
            body += decoder.flush()
    except zlib.error:
        return None
    return bytes(body) if len(body) <= MAX_ANSWER_BYTES else None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx2's default TLS context (certificates verified), made once per process: loading
    the CA bundle costs ~0.1 s of CPU, which every client paid again."""
    return httpx.create_ssl_context()


def checked_api_key(key: str) -> str:
    """The key without surrounding whitespace; a key that an HTTP header cannot carry stops
    here, before it can be echoed in a library's error message."""
    key = key.strip()
    if not key or any(not ("\x21" <= char <= "\x7e") for char in key):
        raise InvalidApiKeyError("VAMBE_API_KEY holds characters an HTTP header cannot carry"
                                 " (spaces inside, control or non-ASCII characters); copy it"
                                 " again from Vambe")
    return key


def _date(headers: httpx.Headers) -> str | None:
    """The answer's Date header; the first if there are several (a proxy adding its own):
    joined, they would not parse, or parse wrong."""
    found = headers.get_list("date")
    return found[0] if found else None


class VambeClient:
    """An async session with one account; open it with ``async with``.

    Text from the server never carries the key further: any answer that echoes it has it
    replaced by ``[redacted]`` before it reaches a report, the journal or the terminal."""

    def __init__(self, base_url: str, api_key: str, *, phone_id: str, channel: str = "whatsapp",
                 timeout: float = 30, max_connections: int = 8,
                 from_phone_number: str | None = None, skew: ClockSkew | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        # The account's clock against ours, from every answer's Date header: reconcile
        # compares the account's timestamps with our send times through it, never directly.
        self.skew = skew if skew is not None else ClockSkew()
        self.timeout = timeout
        self._secret = checked_api_key(api_key)
        # The key's first 8 characters and as much of the rest as follows: the longest echo.
        head, rest = self._secret[:8], self._secret[8:]
        self._echo = re.compile(re.escape(head) + "".join(
            f"(?:{re.escape(char)}" for char in rest) + ")?" * len(rest))
        self._timeout = httpx.Timeout(timeout)
        self._timeout_extension = self._timeout.as_dict()
        self._ticket_url = httpx.URL(f"{self.base_url}/api/public/ticket/open/{channel}/{phone_id}")
        self._template_query = ({"from-phone-number": from_phone_number}
                                if from_phone_number else None)
        self._headers = {"x-api-key": self._secret, "user-agent": f"vambe-import/{__version__}",
                         "accept": "*/*", "accept-encoding": "identity",
                         "content-type": "application/json"}
        # One connection pool: tickets go straight to it, the pipeline listing through the
        # client (which closes it).
        self._transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
            verify=_tls_context(),
        )
        self._http = httpx.AsyncClient(headers=self._headers, timeout=self._timeout,
                                       transport=self._transport)

    async def __aenter__(self) -> VambeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    async def open_ticket(self, body: bytes, idempotency_key: str,
                          path: str | None = None) -> Answer:
        """POST one ticket (or, with ``path``, one template message); never raises for HTTP
        or network trouble, it classifies it."""
        # Straight to the transport (public httpx2 API, which still maps every httpcore
        # error to an httpx2 exception): a ticket needs no auth flow, redirects, cookies or
        # per-call header merging, and skipping them cut the client's CPU per request by
        # a fifth (bench/bench_overhead.py).
        url = self._ticket_url if path is None else httpx.URL(
            f"{self.base_url}{path}", params=self._template_query)
        request = httpx.Request("POST", url, content=body,
                                headers={**self._headers, "idempotency-key": idempotency_key},
                                extensions={"timeout": self._timeout_extension})
        try:
            # timeout_seconds bounds the whole request, first byte out to last byte in: a
            # server that trickles one byte a second never resets it.
            async with asyncio.timeout(self.timeout):
                sent = clock().time()
                response = await self._transport.handle_async_request(request)
                self.skew.observe(sent, clock().time(), _date(response.headers))
                try:
                    content = await read_bounded(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            return self._redacted(Answer(
                Outcome.UNKNOWN, error_code=ErrorCode.OUTCOME_UNKNOWN,
                error=f"no complete answer within {self.timeout:g} s after sending: the ticket"
                      " may exist"))
        except httpx.TransportError as error:
            return self._redacted(classify_exception(error, self.timeout))
        return self._redacted(classify_status(response.status_code, content, response.headers,
                                              self.redact))

    def _redacted(self, answer: Answer) -> Answer:
        if self._echo.search(answer.error) or self._echo.search(answer.ai_contact_id):
            return dataclasses.replace(answer, error=self.redact(answer.error),
                                       ai_contact_id=self.redact(answer.ai_contact_id))
        return answer

    def redact(self, text: str) -> str:
        """``text`` with the API key, and any run of its first 8 or more characters (an echo
        cut short), replaced by ``[redacted]``."""
        return self._echo.sub("[redacted]", text)

    async def list_pipelines(self, *, retries: int = 3, backoff: float = 1.0) -> list[Pipeline]:
        """The account's pipelines; a rejected key raises, as it would for every ticket."""
        content = await self.get("/api/public/pipeline", what="list stages", retries=retries,
                                 backoff=backoff)
        return _parse_pipelines(content)

    async def search_contacts(self, phone: str, *, retries: int = 3,
                              backoff: float = 1.0) -> list[dict]:
        """Contacts the account finds for ``phone`` (a fuzzy search: compare digits exactly
        before trusting one). Never opens a ticket."""
        content = await self.get("/api/public/contacts/search", params={"phone": phone},
                                 what="search contacts", retries=retries, backoff=backoff)
        found = _json(content, "GET /api/public/contacts/search")
        if isinstance(found, dict):
            found = found.get("contacts") or found.get("data") or [found]
        return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []

    async def contact_info(self, contact_id: str, *, retries: int = 3,
                           backoff: float = 1.0) -> dict:
        content = await self.get(f"/api/public/contact/{contact_id}/info", what="read a contact",
                                 retries=retries, backoff=backoff)
        found = _json(content, "GET /api/public/contact/{id}/info")
        return found if isinstance(found, dict) else {}

    async def list_channels(self, kind: str, *, retries: int = 3,
                            backoff: float = 1.0) -> list[dict]:
        """The account's channels of one type (a single object or a list, as documented)."""
        content = await self.get(f"/api/public/channels/{kind}", what="list channels",
                                 retries=retries, backoff=backoff, missing_ok=True)
        if content is None:
            return []
        found = _json(content, f"GET /api/public/channels/{kind}")
        found = found if isinstance(found, list) else [found]
        return [item for item in found if isinstance(item, dict) and item.get("id") is not None]

    @overload
    async def get(self, path: str, *, what: str, params: dict | None = None, retries: int = 3,
                  backoff: float = 1.0, missing_ok: Literal[False] = False) -> bytes: ...
    @overload
    async def get(self, path: str, *, what: str, params: dict | None = None, retries: int = 3,
                  backoff: float = 1.0, missing_ok: bool) -> bytes | None: ...
    async def get(self, path: str, *, what: str, params: dict | None = None, retries: int = 3,
                  backoff: float = 1.0, missing_ok: bool = False) -> bytes | None:
        """A GET's body (bounded, like every answer). A GET is safe to repeat, so 429, 5xx
        and network trouble are retried; a rejected key raises :class:`FatalApiError`;
        a 404 is None with ``missing_ok``."""
        url = f"{self.base_url}{path}"
        for attempt in range(retries + 1):
            try:
                async with asyncio.timeout(self.timeout):
                    sent = clock().time()
                    async with self._http.stream("GET", url, params=params) as response:
                        self.skew.observe(sent, clock().time(), _date(response.headers))
                        content = await read_bounded(response)
            except TimeoutError:
                answer = Answer(Outcome.UNKNOWN, error=f"no complete answer within"
                                                       f" {self.timeout:g} s")
                reason = answer.error
            except httpx.TransportError as error:
                answer = self._redacted(classify_exception(error, self.timeout))
                reason = f"the connection failed ({type(error).__name__})"
            else:
                answer = self._redacted(classify_status(response.status_code, content,
                                                        response.headers, self.redact))
                # Said as a GET's, not a ticket's: a listing involves no phone ID and
                # opens no ticket, whatever classify_status would say of a POST.
                reason = f"HTTP {response.status_code}" + (
                    f" with an answer {UNREADABLE}" if content is None else "")
                if answer.outcome == Outcome.SENT and content is not None:
                    return content
                if answer.http_status == 404 and missing_ok:
                    return None
                if answer.outcome == Outcome.FATAL and answer.http_status in (401, 403):
                    raise FatalApiError(f"{answer.error}; check VAMBE_API_KEY; nothing was sent")
            if (answer.outcome not in (Outcome.RETRY, Outcome.THROTTLED, Outcome.UNKNOWN)
                    or attempt == retries):
                break
            delay = min(max(backoff_delay(backoff, attempt), answer.retry_after or 0.0),
                        MAX_BACKOFF_SECONDS)
            await clock().sleep(delay)
        hint = "; check [api] base_url" if answer.http_status == 404 else ""
        raise ApiUnavailableError(f"could not {what} at {url}: {reason}{hint}; nothing was sent")


def _json(content: bytes, what: str) -> object:
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        raise ApiUnavailableError(f"{what} answered with an unexpected body") from None


def _parse_pipelines(text: str | bytes) -> list[Pipeline]:
    try:
        return [
            Pipeline(
                str(item["id"]), str(item.get("name") or ""),
                tuple(Stage(str(stage["id"]), str(stage.get("name") or ""))
                      for stage in item.get("stages") or []),
            )
            for item in json.loads(text)
        ]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise ApiUnavailableError(
            "GET /api/public/pipeline answered with an unexpected body; nothing was sent"
        ) from None
