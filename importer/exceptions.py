"""The importer's own errors, each with the exit code the CLI turns it into.

Every error here is something a user can act on, so its message is one line that names the
file, row, column or setting at fault. The CLI prints ``str(error)`` and exits with
``error.exit_code``; library callers catch :class:`ImporterError`.

    ImporterError                exit 2: could not start
    ├── ConfigError              the TOML config is unreadable or a setting is wrong
    ├── InputFileError           the spreadsheet is missing, empty or not what it claims
    ├── MissingApiKeyError       VAMBE_API_KEY is not set
    ├── InvalidApiKeyError       VAMBE_API_KEY holds characters a header cannot carry
    ├── OutputFolderError        the output folder holds another run, or cannot be written
    │   ├── LedgerMovedError     the send ledger was deleted or replaced mid-run
    │   └── LedgerUnreachableError  the team ledger's database cannot be reached
    ├── ApiUnavailableError      the API could not be reached before anything was sent
    ├── FatalApiError            exit 3: the API refused the key or the phone ID
    └── LocalError               exit 4: a local failure (a full disk...) after sending began
"""

from __future__ import annotations


class ImporterError(Exception):
    """Base of every error the importer reports to a user."""

    exit_code = 2


class ConfigError(ImporterError):
    """The config file cannot be used as written."""


class InputFileError(ImporterError):
    """The input spreadsheet cannot be read."""


class MissingApiKeyError(ImporterError):
    """Sending needs VAMBE_API_KEY in the environment."""


class InvalidApiKeyError(ImporterError):
    """VAMBE_API_KEY cannot be sent as an HTTP header; it is never echoed."""


class OutputFolderError(ImporterError):
    """The output folder cannot take this run (it holds another run, or is not writable)."""


class LedgerMovedError(OutputFolderError):
    """The send ledger file was deleted, replaced or moved while a run used it."""


class LedgerUnreachableError(OutputFolderError):
    """The team ledger's database cannot be reached: before sending, nothing is sent (exit
    2); mid-run, no request goes out without a committed claim and the run stops (exit 4)."""


class ApiUnavailableError(ImporterError):
    """The API did not answer before anything was sent; nothing happened."""


class FatalApiError(ImporterError):
    """The API rejected the key (401/403) or the phone ID (404): no request can succeed."""

    exit_code = 3


class LocalError(ImporterError):
    """Something on this machine failed after sending began (a full disk, a bug): the run
    stopped as it does for a fatal answer; ``--resume`` finishes it once the cause is fixed."""

    exit_code = 4
