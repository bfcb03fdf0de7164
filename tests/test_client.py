"""The API client: every answer and transport failure classified by one table (see
importer/client.py), which decides whether a customer can be messaged twice."""

from __future__ import annotations

import httpx2
import pytest

from importer.client import classify_status
from importer.codes import ErrorCode, Outcome


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
