"""The TOML config: which API to call and how each spreadsheet column maps to the request.

The model is strict (unknown keys are errors) because a misspelt setting that is silently
ignored is how a campaign goes to the wrong stage. Settings that depend on the input file
(mapped columns, message placeholders) are checked against its headers by
:func:`Config.check_columns` once the file is open.
"""

from __future__ import annotations

import difflib
import io
import ipaddress
import re
import socket
import tomllib
import unicodedata
import uuid
from datetime import time
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .exceptions import ConfigError
from .read import NotAFileError, open_regular

DEFAULT_BASE_URL = "https://api.vambe.ai"
MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; /dev/zero or a pasted log is not one


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


WEB_WHATSAPP_RATE = 0.2  # one message every 5 s: QR numbers get blocked for fast sending
MIN_RATE = 0.001  # one request in about 17 minutes; less is a typo (5e-324 once hung a run)


def is_this_machine(host: str) -> bool:
    """The one rule for whether a host is this machine: ``localhost`` (and its subdomains),
    ``::1``, and all of 127.0.0.0/8 however it is written (``127.1``, ``127.0.0.2``,
    ``2130706433``: the forms the system's resolver accepts). Plain http elsewhere carries the
    key in clear."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        return socket.inet_aton(host)[0] == 127  # shorthand IPv4 forms
    except OSError:
        return False


class ApiSettings(_Section):
    """Where to send and how fast. Defaults are safe for a first campaign, not the fastest."""

    base_url: str = DEFAULT_BASE_URL
    # "whatsapp": the WhatsApp Business API (numeric phone IDs); "web-whatsapp": a WhatsApp
    # Web (QR) connection (string phone IDs such as "phone_abc123", plain text only).
    channel: Literal["whatsapp", "web-whatsapp"] = "whatsapp"
    phone_id: str
    # 5/s: well under WhatsApp's ~80 msg/s per number and kind to an API with no published limit.
    # 0 turns pacing off (benchmarks, APIs that need none); max_concurrency still bounds it.
    # Numbers must be TOML numbers (strict): "5" or true is a typo, not a setting.
    rate_limit_per_second: Annotated[float, Field(ge=0, le=10000, strict=True)] = 5
    # 8 in flight covers 5/s up to 1.6 s of latency (in flight = rate x latency).
    max_concurrency: Annotated[int, Field(ge=1, le=256, strict=True)] = 8
    # Bounds a whole request, first byte out to last byte in; past it the row is unknown.
    timeout_seconds: Annotated[float, Field(gt=0, le=600, strict=True)] = 30
    # Retries of requests that never reached the server (503, refused, connect timeout).
    max_retries: Annotated[int, Field(ge=0, le=20, strict=True)] = 5
    # First backoff before such a retry; doubled each time, with full jitter, capped at 60 s.
    retry_backoff_seconds: Annotated[float, Field(ge=0, le=60, strict=True)] = 1.0
    # How long one row may stay throttled by 429 answers before it is given up as failed.
    max_throttle_seconds: Annotated[float, Field(ge=0, le=86400, strict=True)] = 600
    # WhatsApp's messaging limit tier (250, 2,000, 10,000, 100,000 new customers per rolling
    # 24 hours): rows carrying a message beyond it are skipped, not silently undelivered.
    daily_message_limit: Annotated[int, Field(ge=1, strict=True)] | None = None
    # The business number templates are sent from (the template endpoint's
    # from-phone-number); "vambe-import channels" shows it.
    from_phone_number: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _slow_default_for_web(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("channel") == "web-whatsapp":
            data = {"rate_limit_per_second": WEB_WHATSAPP_RATE, **data}
        return data

    @field_validator("phone_id", mode="before")
    @classmethod
    def _phone_id_text(cls, value: object) -> str:
        text = str(value).strip() if isinstance(value, (str, int)) else ""
        if not text or "/" in text:
            raise ValueError(f"must be the channel's phone ID, got {value!r}")
        return text

    @model_validator(mode="after")
    def _numeric_for_business_api(self) -> ApiSettings:
        if self.channel == "whatsapp" and not self.phone_id.isdigit():
            raise ValueError(
                f"phone_id: must be the numeric WhatsApp Business phone ID, got"
                f' {self.phone_id!r} (for a WhatsApp Web connection, channel = "web-whatsapp")'
            )
        return self

    @field_validator("rate_limit_per_second")
    @classmethod
    def _sane_rate(cls, value: float) -> float:
        if 0 < value < MIN_RATE:
            raise ValueError(f"must be 0 (no pacing) or at least {MIN_RATE:g} requests per"
                             f" second, got {value!r}")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        """http(s), a host, an optional port and path: nothing a typo or a pasted link could
        smuggle in (credentials, a query, control characters)."""
        if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value):
            raise ValueError(f"must be a URL without spaces or control characters, got {value!r}")
        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"has a port outside 1-65535: {value!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be http:// or https:// and a host, got {value!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not hold a user name or password (the key goes in"
                             " VAMBE_API_KEY)")
        if parts.query or parts.fragment or value.endswith(("?", "#")):
            raise ValueError(f"must not hold a query or a fragment, got {value!r}")
        if port == 0:
            raise ValueError(f"has a port outside 1-65535: {value!r}")
        return value.rstrip("/")

    @property
    def plain_http_warning(self) -> str | None:
        """What every command that sends the key says first when it would go in clear."""
        if not self.plain_http_off_machine:
            return None
        return (f"Warning: [api] base_url {self.base_url} is plain http to another machine:"
                " the API key and your customers' data travel unencrypted")

    @property
    def plain_http_off_machine(self) -> bool:
        """http:// to a host that is not this machine: the key would travel in clear."""
        parts = urlsplit(self.base_url)
        return parts.scheme == "http" and not is_this_machine(parts.hostname or "")


class InputSettings(_Section):
    sheet: str | None = None
    encoding: str | None = None
    delimiter: str | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            import codecs

            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise ValueError(f"must be a single character, got {value!r}")
        return value


class ColumnSettings(_Section):
    # A header, or several in order of preference (CRM exports keep a mobile and a phone):
    # a row uses the first non-empty cell that is a usable number (an email: a valid one).
    phone: str | list[str]
    contact_name: str | None = None
    email: str | list[str] | None = None
    stage: str | None = None
    # Each row's country (ISO code, dialing code or name), instead of [defaults] country.
    country: str | None = None

    @field_validator("contact_name")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            columns_of(value)  # a brace typo: one line naming the setting
        return value

    @field_validator("phone", "email")
    @classmethod
    def _headers(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if not value or not all(isinstance(header, str) and header for header in value):
                raise ValueError("must be a header, or a list of headers in order of"
                                 " preference")
            if len(set(value)) < len(value):
                raise ValueError("names a column twice")
        return value


class DefaultSettings(_Section):
    stage_id: str | None = None
    country: str | None = None
    # mobile: valid and not a fixed line (WhatsApp lives on mobiles; "fixed line or mobile"
    # passes, as the data cannot tell them apart); valid: valid for its country, fixed
    # lines included; possible: well-formed (numbers newer than the phone data).
    phone_check: Literal["valid", "possible", "mobile"] = "mobile"
    # A number written without + that is not valid in its row's country but is valid read
    # as an international number: refused by default (a guess), accepted when true.
    international_without_plus: Annotated[bool, Field(strict=True)] = False

    @field_validator("stage_id")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        if value is not None and not is_uuid(value):
            raise ValueError(f"must be a stage UUID, got {value!r}")
        return value

    @field_validator("country")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import phonenumbers

        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"must be a two-letter country code such as CL or MX, got {value!r}")
        return region


class Constant(_Section):
    value: str

    @field_validator("value", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> str:
        return str(value)


MetadataMap = dict[str, str | Constant]


class MessageSettings(_Section):
    """A plain-text ``content`` with placeholders, or an approved WhatsApp template."""

    content: str | None = None
    template_id: str | None = None  # the template for every row...
    template_column: str | None = None  # ...or a column naming it per row (empty: template_id)
    # The column filling the template's one variable, sent as ``content`` with the ticket
    # (Vambe's ticket endpoint shows one variable)...
    variable: str | None = None
    # ...or several, in the template's order ({{1}}, {{2}}...): columns or { value = "..." }.
    # These go through Vambe's template endpoint, which takes them all.
    variables: list[str | Constant] | None = None
    ai_generated: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> MessageSettings:
        templated = self.template_id is not None or self.template_column is not None
        if templated and self.content is not None:
            raise ValueError("give content (plain text) or a template, not both")
        if not templated and self.content is None:
            raise ValueError("needs content, or template_id / template_column")
        if self.variable is not None and not templated:
            raise ValueError("variable goes with a template; plain content uses {Column}"
                             " placeholders")
        if self.variables is not None:
            if not templated:
                raise ValueError("variables go with a template (template_id or template_column)")
            if self.variable is not None:
                raise ValueError("give variable (one) or variables (several), not both")
            if not self.variables:
                raise ValueError("variables: give at least one, in the template's order")
        return self

    @property
    def is_template(self) -> bool:
        return self.content is None


class DedupeSettings(_Section):
    within_file: Literal["first", "last", "none"] = "first"
    # Files of phones never to contact (opt-outs), relative to the config file's folder.
    exclude: list[str] = []
    # A request the ledger holds as sent, from another folder, within this many days, is
    # not sent again (a re-imported file, another working directory). 30 covers a monthly
    # campaign's re-runs; 0 turns it off (a resumed run never re-sends, whatever this says).
    across_runs_days: Annotated[float, Field(ge=0, le=3650, strict=True)] = 30
    # Look each phone up before sending; a contact with an active ticket is skipped. The
    # look-ups share the configured rate with the tickets (half as many tickets a second).
    skip_open_tickets: Annotated[bool, Field(strict=True)] = False


Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScheduleSettings(_Section):
    """Send only inside this window, in each customer's own time (docs/sending-and-resume.md)."""

    hours: str  # "09:00-20:00", in the customer's local time; "22:00-06:00" crosses midnight
    days: list[Day] = list(DAYS)
    # The zone of numbers whose own zone the phone data does not know.
    timezone: str

    @field_validator("hours")
    @classmethod
    def _span(cls, value: str) -> str:
        match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)",
                             value.replace(" ", ""))
        if not match or match.group(1, 2) == match.group(3, 4):
            raise ValueError(f'must be "HH:MM-HH:MM" (24-hour, start and end differ), got'
                             f" {value!r}")
        return value.replace(" ", "")

    @field_validator("days")
    @classmethod
    def _some_days(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one day")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'must be an IANA time zone such as "America/Santiago", got'
                             f" {value!r}") from None
        return value

    def window(self) -> tuple[time, time]:
        start, end = self.hours.split("-")
        return time.fromisoformat(start), time.fromisoformat(end)


class LedgerSettings(_Section):
    # The send ledger (docs/ledger-and-teams.md); relative to the config file's folder. Default:
    # $VAMBE_IMPORT_LEDGER, else ledger.sqlite in the user's data folder.
    path: str | None = None
    # A team ledger on PostgreSQL, shared by everyone who sends to the account
    # (docs/ledger-and-teams.md, "Teams"): "postgresql://host/db", never with a password
    # (libpq reads PGPASSWORD, ~/.pgpass or a service file). Also $VAMBE_IMPORT_LEDGER.
    url: str | None = None
    # Another ledger on this machine has recorded this account: send anyway without asking
    # (docs/ledger-and-teams.md: one ledger per account).
    others_ok: Annotated[bool, Field(strict=True)] = False


class Config(_Section):
    api: ApiSettings
    input: InputSettings = InputSettings()
    columns: ColumnSettings
    defaults: DefaultSettings = DefaultSettings()
    contact_metadata: MetadataMap = {}
    ticket_metadata: MetadataMap = {}
    integration_data: MetadataMap = {}
    message: MessageSettings | None = None
    dedupe: DedupeSettings = DedupeSettings()
    ledger: LedgerSettings = LedgerSettings()
    schedule: ScheduleSettings | None = None

    @model_validator(mode="after")
    def _metadata_templates(self) -> Config:
        for section in ("contact_metadata", "ticket_metadata", "integration_data"):
            for key, source in getattr(self, section).items():
                if isinstance(source, str):
                    try:
                        columns_of(source)
                    except ValueError as error:
                        raise ValueError(f"[{section}] {key}: {error}") from None
        return self

    @model_validator(mode="after")
    def _templates_need_the_business_api(self) -> Config:
        if self.api.channel == "web-whatsapp" and self.message and self.message.is_template:
            raise ValueError("[message] template_id: WhatsApp Web (QR) connections send plain"
                             ' text only; templates need channel = "whatsapp"')
        if self.message is not None and self.message.variables is not None:
            refused = [f"[{name}]" for name in ("ticket_metadata", "integration_data")
                       if getattr(self, name)]
            if refused:
                raise ValueError(
                    f"[message] variables: templates with several variables go through Vambe's"
                    f" template endpoint, which takes no ticket metadata or integration data;"
                    f" remove {' and '.join(refused)}, or use a single variable")
        return self

    @property
    def template_endpoint(self) -> bool:
        """Rows go through the template endpoint (several variables), not the ticket one."""
        return self.message is not None and self.message.variables is not None

    source: str = Field(default="config", exclude=True)
    folder: Path = Field(default=Path("."), exclude=True)  # where relative paths start

    def exclude_paths(self) -> list[Path]:
        return [self.folder / name for name in self.dedupe.exclude]

    def ledger_path(self) -> Path | None:
        if self.ledger.path is None:
            return None
        return self.folder / Path(self.ledger.path).expanduser()

    def mapped_columns(self) -> list[tuple[str, str]]:
        """Every (setting, column header) pair the config reads from the file."""
        pairs = [
            (f"[columns] {name}", column)
            for name, header in self.columns.model_dump().items()
            if header is not None
            for column in (columns_of(header) if name == "contact_name"
                           else header if isinstance(header, list) else [header])
        ]
        for section in ("contact_metadata", "ticket_metadata", "integration_data"):
            for key, source in getattr(self, section).items():
                if isinstance(source, str):
                    pairs.extend((f"[{section}] {key}", column) for column in columns_of(source))
        message = self.message
        if message is not None and message.content is not None:
            pairs.extend(("[message] content", header)
                         for header in parse_template(message.content).columns)
        if message is not None:
            pairs.extend((f"[message] {name}", getattr(message, name))
                         for name in ("template_column", "variable")
                         if getattr(message, name) is not None)
            pairs.extend(("[message] variables", source) for source in message.variables or []
                         if isinstance(source, str))
        return pairs

    def check_columns(self, headers: list[str], file_name: str) -> None:
        """Fail before anything is sent if a setting names a column the file does not have,
        or one it has twice. Names match after trimming spaces (non-breaking ones too) and
        Unicode normalisation; a near miss gets a suggestion."""
        keys = [header_key(h) for h in headers]
        for setting, header in self.mapped_columns():
            key = header_key(header)
            places = [index + 1 for index, found in enumerate(keys) if found == key]
            if len(places) > 1:
                raise ConfigError(
                    f"{self.source}: {setting}: {file_name} has {len(places)} columns named"
                    f" {header!r} (columns {', '.join(map(str, places))}): rename all but one,"
                    " so the right one is read")
            if not places:
                shown = ", ".join(repr(h) for h in headers[:12])
                close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
                hint = f"; did you mean {headers[keys.index(close[0])]!r}?" if close else ""
                raise ConfigError(
                    f"{self.source}: {setting}: column {header!r} is not in {file_name}"
                    f" (its columns: {shown}{', ...' if len(headers) > 12 else ''}){hint}"
                )
        if self.defaults.stage_id is None and self.columns.stage is None:
            raise ConfigError(
                f"{self.source}: [defaults] stage_id: required when [columns] has no stage"
            )


def header_key(header: str) -> str:
    """How a column name is matched: trimmed (non-breaking spaces too) and NFC-normalised,
    so ``"Celular "`` and a decomposed ``"Teléfono"`` find their columns."""
    return unicodedata.normalize("NFC", header).strip()


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


class Template:
    """A message with ``{Column header}`` placeholders, parsed once; ``{{`` and ``}}`` are
    braces."""

    _TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")

    def __init__(self, text: str) -> None:
        self.parts: list[tuple[bool, str]] = []  # (is_column, literal text or header)
        position = 0
        for match in self._TOKEN.finditer(text):
            self.parts.append((False, text[position : match.start()]))
            token = match.group(0)
            if token in ("{{", "}}"):
                self.parts.append((False, token[0]))
            elif match.group(1) is None or not match.group(1).strip():
                raise ValueError(
                    f"unbalanced or empty brace at character {match.start() + 1}"
                    " (write {{ or }} for a literal brace)"
                )
            else:
                self.parts.append((True, match.group(1).strip()))
            position = match.end()
        self.parts.append((False, text[position:]))
        self.parts = [(is_col, value) for is_col, value in self.parts if is_col or value]
        self.columns = [value for is_col, value in self.parts if is_col]


def parse_template(text: str) -> Template:
    return Template(text)


def is_cell_template(text: str) -> bool:
    """Whether a column setting is a template of columns (``"{First Name} {Last Name}"``)
    rather than one column's header."""
    return ("{" in text or "}" in text) and bool(parse_template(text).columns)


def columns_of(text: str) -> list[str]:
    """The headers a column setting reads: one, or each of a template's (a brace typo
    raises ValueError, which the config turns into a line naming the setting)."""
    return parse_template(text).columns if is_cell_template(text) else [text]


def load_config(path: str | Path) -> Config:
    """Read and check a config file; every problem becomes one :class:`ConfigError` line."""
    path = Path(path)
    name = path.name
    try:
        raw = tomllib.loads(_read_config(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except NotAFileError as error:
        raise ConfigError(f"{path}: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config file ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{name}: not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(f"{name}: not a config: its tables or arrays are nested hundreds of"
                          " levels deep") from None
    if "api_key" in raw.get("api", {}):
        raise ConfigError(
            f"{name}: [api] api_key: the key is read from the VAMBE_API_KEY environment"
            " variable, never from the config; remove it from the file"
        )
    try:
        config = Config.model_validate({**raw, "source": name, "folder": path.parent})
    except ValidationError as error:
        raise ConfigError(f"{name}: {_first_problem(error)}") from None
    if config.message is not None and config.message.content is not None:
        try:
            parse_template(config.message.content)
        except ValueError as error:
            raise ConfigError(f"{name}: [message] content: {error}") from None
    return config


def _read_config(path: Path) -> str:
    """The config's text (newlines as read_text gives them), read bounded: a FIFO, a device
    or a huge file is refused at once instead of blocking or filling memory."""
    with open_regular(path) as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: config file larger than {MAX_CONFIG_BYTES >> 20} MiB")
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()


def _suggestion(location: list[str]) -> str:
    """"; did you mean [columns]?" for a misspelt section or setting, when one is close."""
    model: type[BaseModel] = Config
    for part in location[:-1]:
        annotation = model.model_fields.get(part)
        section = getattr(annotation, "annotation", None)
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            return ""
        model = section
    names = [name for name, field in model.model_fields.items() if not field.exclude]
    close = difflib.get_close_matches(location[-1], names, n=1, cutoff=0.6)
    if not close:
        return ""
    return f"; did you mean [{close[0]}]?" if len(location) == 1 else (
        f"; did you mean {close[0]}?")


def _first_problem(error: ValidationError) -> str:
    problems = error.errors()
    # A misspelt section also makes the real one "missing": name the misspelling first.
    problem = next((p for p in problems if p["type"] == "extra_forbidden"), problems[0])
    location = [str(part) for part in problem["loc"]]
    # Union members (str | Constant) add their type names to the location; drop them.
    location = [part for part in location if part not in ("str", "Constant")]
    if len(location) >= 2:
        where = f"[{location[0]}] {'.'.join(location[1:])}"
    elif location:
        where = f"[{location[0]}]"
    else:
        where = "config"
    kind = problem["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown {'section' if len(location) == 1 else 'setting'}" + (
            _suggestion(location))
    if kind == "missing":
        return f"{where}: required setting is missing"
    message = problem["msg"].removeprefix("Value error, ")
    if not location:
        return message  # a whole-config rule names its settings itself
    named = re.match(r"^(\w+): (.*)$", message)
    if len(location) == 1 and named:  # a section rule about one of its settings
        return f"[{location[0]}] {named.group(1)}: {named.group(2)}"
    return f"{where}: {message}"
