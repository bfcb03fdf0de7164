"""The API client: every answer and transport failure classified by one table (see
importer/client.py), which decides whether a customer can be messaged twice."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx2
import pytest

from importer.client import Answer, VambeClient, classify_status
from importer.codes import ErrorCode, Outcome
from importer.sandbox import DEFAULT_API_KEY, DEFAULT_PHONE_ID, Faults

from .conftest import PHONES, STAGE_NEW, people


@pytest.mark.parametrize(("status", "outcome", "code"), [
    (200, Outcome.SENT, ""),
    (201, Outcome.SENT, ""),
    (400, Outcome.REJECTED, ErrorCode.API_REJECTED),
    (422, Outcome.REJECTED, ErrorCode.API_REJECTED),
    (401, Outcome.FATAL, ErrorCode.API_KEY_REJECTED),
    (403, Outcome.FATAL, ErrorCode.API_KEY_REJECTED),
    (404, Outcome.FATAL, ErrorCode.PHONE_ID_UNKNOWN),
    (429, Outcome.THROTTLED, ErrorCode.THROTTLED),
    (503, Outcome.RETRY, ErrorCode.API_UNAVAILABLE),
    (500, Outcome.UNKNOWN, ErrorCode.OUTCOME_UNKNOWN),
    (502, Outcome.UNKNOWN, ErrorCode.OUTCOME_UNKNOWN),
    (504, Outcome.UNKNOWN, ErrorCode.OUTCOME_UNKNOWN),
])
def test_every_answer_is_classified_by_the_table(status, outcome, code):
    """Only 429 and 503 are retried; 5xx that may have been processed are unknown."""
    answer = classify_status(status, b'{"message": "m", "aiContactId": "c"}', httpx2.Headers())
    assert (answer.outcome, answer.error_code) == (outcome, code)


def test_a_redirect_is_named_for_what_it_is():
    """Found in issue 20 (item 8): a 302 on the stage listing said "the ticket may exist"."""
    import httpx2

    answer = classify_status(302, b"", httpx2.Headers({"location": "https://api.vambe.me/"}))
    assert answer.error == ("the API answered with a redirect (HTTP 302 to"
                            " https://api.vambe.me/): check [api] base_url")
    assert "ticket" not in answer.error


# ---------------------------------------------------------------- over real HTTP

BODY = {"to_phone_number": PHONES[0], "stage_id": STAGE_NEW, "contact_name": "Ana"}
TICKET_PATH = "/api/public/ticket/open/whatsapp/{}"
UNKNOWN_500 = ("API error (HTTP 500) after receiving the request: the ticket may exist:"
               " Internal server error")


def _open_ticket(url: str, *, phone_id: str = DEFAULT_PHONE_ID, api_key: str = DEFAULT_API_KEY,
                 body: dict = BODY, timeout: float = 10) -> Answer:
    """One ticket request through the client, as a worker of a run sends it."""

    async def main() -> Answer:
        async with VambeClient(url, api_key, phone_id=phone_id, timeout=timeout) as client:
            return await client.open_ticket(json.dumps(body).encode(), "a" * 32)

    return asyncio.run(main())


@pytest.mark.parametrize(("case", "outcome", "status", "error", "opened"), [
    ({}, Outcome.SENT, 200, "", True),
    ({"faults": {"throttle": 1.0}}, Outcome.THROTTLED, 429,
     "throttled by the API (HTTP 429): Too many requests", False),
    ({"faults": {"fail_503": 1.0, "retry_after": "7"}}, Outcome.RETRY, 503,
     "API unavailable (HTTP 503): Service temporarily unavailable", False),
    ({"faults": {"fail_500": 1.0}}, Outcome.UNKNOWN, 500, UNKNOWN_500, True),
    ({"faults": {"fail_500_unprocessed": 1.0}}, Outcome.UNKNOWN, 500, UNKNOWN_500, False),
    ({"body": {**BODY, "to_phone_number": "+56912345678"}}, Outcome.REJECTED, 400,
     "API rejected the row (HTTP 400): Invalid phone number", False),
    ({"api_key": "wrong"}, Outcome.FATAL, 401,
     "API key rejected (HTTP 401): Invalid or missing API key", False),
    ({"phone_id": "999"}, Outcome.FATAL, 404,
     "phone ID not found (HTTP 404): Phone ID 999 not found", False),
], ids=["200", "429", "503", "500-processed", "500-unprocessed", "400", "401", "404"])
def test_each_answer_the_api_gives_is_one_outcome_of_one_request(sandbox, case, outcome,
                                                                  status, error, opened):
    """The module's table over real HTTP: what each answer means for the row, in the words
    the reports show, and the client itself never sends a request twice (only the sender
    may retry, and only what was not processed). A 500 may come after the ticket was opened
    or before: the client cannot tell, so both are unknown."""
    sandbox.state.faults = Faults(**case.get("faults", {}))
    answer = _open_ticket(sandbox.url, **{k: v for k, v in case.items() if k != "faults"})
    assert (answer.outcome, answer.http_status, answer.error) == (outcome, status, error)
    phone_id = case.get("phone_id", DEFAULT_PHONE_ID)
    assert [(r.path, r.idempotency_key, r.body) for r in sandbox.state.received] == [
        (TICKET_PATH.format(phone_id), "a" * 32, case.get("body", BODY))]
    assert len(sandbox.state.tickets) == (1 if opened else 0)
    if outcome == Outcome.SENT:
        assert answer.ai_contact_id == sandbox.state.contacts[PHONES[0][1:]]
    if outcome in (Outcome.THROTTLED, Outcome.RETRY):  # the pause the server asked for
        assert answer.retry_after == float(case.get("faults", {}).get("retry_after", 1))


def test_a_connection_dropped_after_sending_is_unknown(sandbox):
    """The server opened the ticket, then the connection broke before its answer: unknown,
    never "could not connect" (which would be retried)."""
    sandbox.state.faults = Faults(drop=1.0)
    answer = _open_ticket(sandbox.url)
    assert (answer.outcome, answer.http_status, answer.error_code) == (
        Outcome.UNKNOWN, None, ErrorCode.OUTCOME_UNKNOWN)
    assert answer.error.startswith("connection lost after sending (")
    assert answer.error.endswith("): the ticket may exist")
    assert len(sandbox.state.tickets) == 1


def test_a_port_nobody_listens_on_is_retry_not_unknown():
    """A refused connection never reached the server: safe to send again (``retry``)."""
    with socket.socket() as bound:  # bound, never listening: the port refuses and stays ours
        bound.bind(("127.0.0.1", 0))
        answer = _open_ticket(f"http://127.0.0.1:{bound.getsockname()[1]}")
    assert (answer.outcome, answer.error_code) == (Outcome.RETRY, ErrorCode.CONNECTION_FAILED)
    assert answer.error.startswith("could not connect to the API: ")


def test_no_answer_within_the_timeout_is_unknown_and_the_ticket_may_well_exist(sandbox):
    """The sandbox holds the request (it answers nothing until the test lets it): after
    timeout_seconds the row is unknown; let go, the request opens the ticket, which is why
    it must never be sent again blindly. (The second is for the request to reach the
    sandbox on a busy machine; the answer never comes first.)"""
    sandbox.state.paused = True
    try:
        answer = _open_ticket(sandbox.url, timeout=1)
    finally:
        sandbox.state.paused = False
    assert (answer.outcome, answer.error) == (
        Outcome.UNKNOWN, "no complete answer within 1 s after sending: the ticket may exist")
    sandbox.state.wait_idle()
    assert len(sandbox.state.tickets) == 1


@pytest.mark.parametrize(("status", "body", "error"), [
    (400, (b'{"statusCode": 400, "message": ["to_phone_number must be a string",'
           b' "stage_id must be a UUID"], "error": "Bad Request"}'),
     ("API rejected the row (HTTP 400): to_phone_number must be a string; stage_id must be a"
      " UUID")),
    (502, b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n</html>\r\n",
     ("API error (HTTP 502) after receiving the request: the ticket may exist: <html> <head>"
      "<title>502 Bad Gateway</title></head> </html>")),
    (400, b"", "API rejected the row (HTTP 400): (no message)"),
    (422, json.dumps({"message": "x" * 1000}).encode(),
     "API rejected the row (HTTP 422): " + "x" * 300),
])
def test_the_servers_reason_becomes_one_line_of_at_most_300_characters(status, body, error):
    """What a report's error column shows of an answer the sandbox cannot give: a list of
    validation messages (NestJS's shape), a proxy's HTML page, nothing, or a flood."""
    assert classify_status(status, body, httpx2.Headers()).error == error


def test_a_stage_listing_the_importer_cannot_read_stops_before_any_ticket(sandbox,
                                                                         write_config,
                                                                         write_csv, invoke):
    """GET /pipeline answering JSON that is not a list of pipelines: exit 2, one line."""
    sandbox.state.pipelines = {"data": []}
    result = invoke("run", write_csv(people(2)), "--config", write_config(sandbox.url))
    assert (result.exit_code, result.stderr) == (2, ("Error: GET /api/public/pipeline answered"
                                                     " with an unexpected body; nothing was"
                                                     " sent\n"))
    assert [r.path for r in sandbox.state.received] == ["/api/public/pipeline"]


@pytest.mark.parametrize(("path", "pipelines", "said"), [
    ("/v2", None, "HTTP 404"),
    ("", [{"id": "p", "name": "x" * (1 << 20), "stages": []}], "larger than 1 MiB"),
], ids=["404", "unreadable"])
def test_a_failed_stage_listing_is_not_described_as_a_ticket(sandbox, write_config, write_csv,
                                                             invoke, fake_clock, path,
                                                             pipelines, said):
    """Like the redirect of issue 20: the listing involves neither the phone ID nor a
    ticket, and saying so sends the operator to check the wrong setting, or tells them a
    ticket was opened when nothing was sent."""
    if pipelines is not None:
        sandbox.state.pipelines = pipelines  # an answer over the 1 MiB the importer reads
    url = sandbox.url + path
    result = invoke("run", write_csv(people(1)), "--config", write_config(url))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: could not list stages at {url}/api/public/pipeline:")
    assert said in result.stderr and result.stderr.endswith("; nothing was sent\n")
    assert "phone ID" not in result.stderr and "ticket" not in result.stderr
    assert sandbox.state.tickets == []
