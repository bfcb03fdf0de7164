"""Every status, outcome, state and error code the importer writes, in one place.

They are ``StrEnum``s: a member is its own text in a CSV cell, a JSON value or a SQLite
column, and the reports, the CLI and the docs test are built from these lists, so a new code
cannot be written without being documented (``tests/test_docs.py``).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


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


class ExitCode(IntEnum):
    """How a command ended, as its exit code (``docs/reports.md`` lists them)."""

    OK = 0
    NOT_ALL_SENT = 1  # rows not sent, none of them settleable by running again; or declined
    COULD_NOT_START = 2  # every ImporterError's own code; nothing was sent
    FATAL_API = 3
    LOCAL_ERROR = 4
    SETTLEABLE = 5  # rows that --resume or reconcile can still settle
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        return _EXIT_MEANINGS[self]


_EXIT_MEANINGS = {
    ExitCode.OK: "finished: every row sent, a duplicate of one that was, or opted out",
    ExitCode.NOT_ALL_SENT: "finished: the rows not sent need fixing in the file (or the plan"
                           " was declined)",
    ExitCode.COULD_NOT_START: "could not start: nothing was sent",
    ExitCode.FATAL_API: "stopped: the API refused the key or the phone ID",
    ExitCode.LOCAL_ERROR: "stopped by a local error (a full disk, a database gone...)",
    ExitCode.SETTLEABLE: "finished with rows that --resume or reconcile can still settle",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C or SIGTERM)",
}


# What each error code means and what to do about it, for report.html (the reference table
# is docs/reports.md; tests/test_docs.py keeps both covering every code).
ERROR_HELP: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.PHONE_MISSING: ("the phone cell is empty", ("fill it in errors.csv and import"
                              " it again")),
    ErrorCode.PHONE_DAMAGED: ("scientific notation or a float: the spreadsheet lost digits",
                              "format the column as text and type the number again"),
    ErrorCode.PHONE_TOO_SHORT: ("too short for its country", ("check the number and its"
                                " country")),
    ErrorCode.PHONE_TOO_LONG: ("too long for its country", "check the number and its country"),
    ErrorCode.PHONE_INVALID: ("not a phone number for its country", ("check the number and"
                              " its country")),
    ErrorCode.PHONE_NO_COUNTRY: ("no country code and no default country", ("write +code, or"
                                 " set [defaults] country or [columns] country")),
    ErrorCode.PHONE_NOT_MOBILE: ("a fixed line (phone_check = \"mobile\")", ("use the"
                                 " customer's mobile, or phone_check = \"valid\"")),
    ErrorCode.NOT_A_PERSONAL_NUMBER: ("shared-cost, premium, toll-free, UAN, voicemail or pager",
                                      "use the customer's own number"),
    ErrorCode.COUNTRY_UNKNOWN: ("the country cell cannot be read", ("write an ISO code (MX),"
                                " a dialing code (+52) or a name")),
    ErrorCode.CELL_ERROR: ("a used cell holds an Excel error or an uncalculated formula",
                           "recalculate or fix the cell"),
    ErrorCode.CELL_TOO_LONG: ("a used cell is longer than 64 KiB", "shorten the cell"),
    ErrorCode.EMAIL_INVALID: ("the email address is not valid", "fix or empty the cell"),
    ErrorCode.STAGE_UNKNOWN: ("no such stage in the account", ("use a stage name or ID that"
                              " `vambe-import stages` lists")),
    ErrorCode.STAGE_AMBIGUOUS: ("the stage name is in several pipelines", "use the stage ID"),
    ErrorCode.STAGE_MISSING: ("no stage cell and no default stage", ("fill the cell or set"
                              " [defaults] stage_id")),
    ErrorCode.PLACEHOLDER_EMPTY: ("the message needs a cell that is empty", "fill the cell"),
    ErrorCode.TEMPLATE_MISSING: ("no template for the row", ("fill the template column or set"
                                 " [message] template_id")),
    ErrorCode.TEMPLATE_VARIABLE_INVALID: ("a template variable is empty or has line breaks",
                                          "fix the cell"),
    ErrorCode.DUPLICATE_PHONE: ("the same phone as another row", "nothing: one is sent"),
    ErrorCode.SENT_BEFORE: ("sent from another folder recently", ("nothing, or"
                            " [dedupe] across_runs_days")),
    ErrorCode.OPTED_OUT: ("the phone is on an opt-out list", "nothing: never contacted"),
    ErrorCode.API_REJECTED: ("the API refused the row (4xx)", ("read its message, fix the row"
                             " and import errors.csv again")),
    ErrorCode.API_KEY_REJECTED: ("the API refused the key", ("check VAMBE_API_KEY, then"
                                 " --resume")),
    ErrorCode.PHONE_ID_UNKNOWN: ("the API does not know the phone ID", ("check [api] phone_id,"
                                 " then --resume")),
    ErrorCode.THROTTLED: ("throttled (429) for too long; not processed", ("--resume later,"
                          " or lower the rate")),
    ErrorCode.API_UNAVAILABLE: ("503 after every retry; not processed", "--resume later"),
    ErrorCode.CONNECTION_FAILED: ("no connection after every retry; not processed",
                                  "--resume when the network is back"),
    ErrorCode.OUTCOME_UNKNOWN: ("the ticket may exist (500, timeout, connection lost)",
                                "reconcile, or run --resume --reconcile --until-settled"),
    ErrorCode.NOT_PROCESSED: ("reconcile found it was not processed", "--resume sends it"),
    ErrorCode.NOT_ATTEMPTED: ("the run stopped before this row", "--resume sends it"),
    ErrorCode.IN_PROGRESS: ("another run is sending it now", "--resume if that run does not"),
    ErrorCode.OPEN_TICKET: ("the contact has an open ticket, or the look-up failed",
                            "nothing, or --resume to look again"),
    ErrorCode.OUTSIDE_WINDOW: ("the customer's send window is closed", ("--resume (or"
                               " --wait) when it opens")),
    ErrorCode.OVER_LIMIT: ("beyond --limit", "--resume sends it"),
    ErrorCode.DAILY_LIMIT: ("beyond the daily message limit", "--resume when the error says"),
}
