"""Every status, outcome, state and error code the importer writes, in one place.

They are ``StrEnum``s: a member is its own text in a CSV cell, a JSON value or a SQLite
column, and the reports, the CLI and the docs test are built from these lists, so a new code
cannot be written without being documented (``tests/test_docs.py``).
"""

from __future__ import annotations

from enum import StrEnum


class RowStatus(StrEnum):
    """The one status each data row ends with in results.csv."""

    SENT = "sent"
    VALID = "valid"  # validate only: would be sent
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    EXCLUDED = "excluded"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


# Rows written to errors.csv: not sent, and something the user can act on.
ERROR_STATUSES = frozenset({RowStatus.INVALID, RowStatus.FAILED, RowStatus.UNKNOWN})


class Outcome(StrEnum):
    """What one API answer means (the table in ``client.py``)."""

    SENT = "sent"  # 2xx: processed
    REJECTED = "rejected"  # 4xx: not processed, fix the row
    FATAL = "fatal"  # 401/403/404: no request can succeed
    THROTTLED = "throttled"  # 429: not processed, send later
    RETRY = "retry"  # 503, no connection: never reached the server
    UNKNOWN = "unknown"  # 500/502/504, timeout, dropped: the ticket may exist


class RequestState(StrEnum):
    """What the ledger knows of one request content key."""

    CLAIMED = "claimed"  # reserved by a live run, not yet sent: released if it dies
    IN_FLIGHT = "in_flight"
    SENT = "sent"
    FAILED = "failed"  # not processed: safe to send again
    UNKNOWN = "unknown"


class ErrorCode(StrEnum):
    """The stable ``error_code`` of a row that was not sent (or not sent this time)."""

    PHONE_MISSING = "phone_missing"
    PHONE_DAMAGED = "phone_damaged"
    PHONE_TOO_SHORT = "phone_too_short"
    PHONE_TOO_LONG = "phone_too_long"
    PHONE_INVALID = "phone_invalid"
    PHONE_NO_COUNTRY = "phone_no_country"
    PHONE_NOT_MOBILE = "phone_not_mobile"
    NOT_A_PERSONAL_NUMBER = "not_a_personal_number"
    COUNTRY_UNKNOWN = "country_unknown"
    CELL_ERROR = "cell_error"
    CELL_TOO_LONG = "cell_too_long"
    EMAIL_INVALID = "email_invalid"
    STAGE_UNKNOWN = "stage_unknown"
    STAGE_AMBIGUOUS = "stage_ambiguous"
    STAGE_MISSING = "stage_missing"
    PLACEHOLDER_EMPTY = "placeholder_empty"
    TEMPLATE_MISSING = "template_missing"
    TEMPLATE_VARIABLE_INVALID = "template_variable_invalid"
    DUPLICATE_PHONE = "duplicate_phone"
    SENT_BEFORE = "sent_before"
    OPTED_OUT = "opted_out"
    API_REJECTED = "api_rejected"
    API_KEY_REJECTED = "api_key_rejected"
    PHONE_ID_UNKNOWN = "phone_id_unknown"
    THROTTLED = "throttled"
    API_UNAVAILABLE = "api_unavailable"
    CONNECTION_FAILED = "connection_failed"
    OUTCOME_UNKNOWN = "outcome_unknown"
    NOT_PROCESSED = "not_processed"
    NOT_ATTEMPTED = "not_attempted"
    IN_PROGRESS = "in_progress"
    OPEN_TICKET = "open_ticket"
    OUTSIDE_WINDOW = "outside_window"
    OVER_LIMIT = "over_limit"
    DAILY_LIMIT = "daily_limit"
