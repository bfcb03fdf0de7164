"""Decide, row by row, whether a ticket may be opened, and build the exact request body.

A row becomes ``valid`` (with the body to send), ``invalid`` (with a stable error code and
a sentence for a person) or ``duplicate``. The rule for phones is to refuse rather than
guess: a number Excel turned into scientific notation has lost digits, and no cleverness
gets them back.
"""

from __future__ import annotations

import hashlib
import json
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, NamedTuple
from urllib.parse import quote

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from . import numbering
from .client import Pipeline
from .codes import ErrorCode, RowStatus
from .config import Config, is_uuid
from .country_names import NAMES
from .index import PhoneIndex
from .mapping import MappedRow
from .phonenumbers_adapter import metadata_for, region_display_name
from .read import UNCALCULATED, fold

_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+$")
_FLOAT_ZERO = re.compile(r"^(\+?\d+)[.,]0+$")
_EXCEL_DIGITS = 15


# The content key's material, exactly as json.dumps(identity, ensure_ascii=False) writes it
# (keys in ledgers must not change), with one encoder made once: json.dumps with an option
# builds a new encoder per call, 10 us a row.
_KEY_JSON = json.JSONEncoder(ensure_ascii=False)


@dataclass
class TicketRequest:
    """What will be sent for one row, and the content key that identifies it across runs.
    (Not frozen: a frozen dataclass pays object.__setattr__ per field on every row.)"""

    phone: str
    body: dict
    has_message: bool
    identity: tuple  # (channel, phone ID, phone, stage ID, message, occurrence)
    path: str | None = None  # the template endpoint's path; None: the ticket endpoint

    @property
    def message(self) -> str | None:
        """The text the customer gets (plain text, or the template's variable), for
        ``reconcile`` to recognise as the contact's last message."""
        message = self.body.get("message")
        return message.get("content") if isinstance(message, dict) else None

    @property
    def key(self) -> str:
        """What identifies the request across runs: what it would do, not where the row
        stands. (Cached by hand: functools.cached_property takes a lock on every call in
        Python 3.11, which tripled the cost of a key.)"""
        try:
            return self._key
        except AttributeError:
            material = _KEY_JSON.encode(self.identity)
            self._key: str = hashlib.sha256(material.encode()).hexdigest()[:32]
            return self._key


class CheckedRow(NamedTuple):
    """A row's verdict: ``valid`` with its request, or ``invalid``/``duplicate`` with a reason."""

    number: int
    status: RowStatus
    phone: str = ""
    error_code: ErrorCode | str = ""
    error: str = ""
    request: TicketRequest | None = None
    written: str = ""  # the phone cell as written (with several columns: the one used)
    column: str = ""  # ...and its header
    name: str = ""  # the contact name as sent (or as it would have been)
    country: str = ""  # the country the phone was read in (the row's or the default)


class RowProblem(Exception):
    """A reason a row cannot be sent: a stable code for scripts and a sentence for people.
    ``international`` marks a number that ``international_without_plus`` would accept."""

    def __init__(self, code: ErrorCode, message: str, *, international: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.international = international


def _first_email(emails: tuple[tuple[str, str], ...]) -> str:
    """With several email columns: the first non-empty cell that is a valid address; empty
    when every cell is; a problem naming each column when none is valid."""
    problems = []
    for header, cell in emails:
        if cell.strip():
            problem = email_problem(cell)
            if problem is None:
                return cell
            problems.append(f"{header!r}: {cell!r} is not valid: {problem}")
    if problems:
        raise RowProblem(ErrorCode.EMAIL_INVALID, "no valid email: " + "; ".join(problems))
    return ""


# ---------------------------------------------------------------- phones

_LETTERS = re.compile(r"[^\W\d_]")  # any letter, in any script
_MEXICAN_LOCAL_MOBILE = ("044", "045")  # "044 55 1234 5678": a mobile, dialled locally


class PhoneNormalizer:
    """Raw cell text (and the row's country) to E.164, cached: campaign files repeat numbers
    and formats. The rule is to refuse rather than guess: letters are never read as keypad
    digits, and a number that only an international reading makes valid is not taken as one
    unless ``international_without_plus`` says so."""

    def __init__(self, country: str | None, policy: str = "valid", *,
                 international_without_plus: bool = False, cache_size: int = 65536,
                 fast: bool = True, personal_only: bool = True):
        self.country = country
        self.policy = policy
        self.fast = fast  # numbering.read for the common forms (False: the library alone)
        self.international_without_plus = international_without_plus
        # Refuse numbers nobody is a customer on (an opt-out list keeps them: they are
        # never sent anyway, and an entry refused would stop the run)
        self.personal_only = personal_only
        self.normalize = lru_cache(maxsize=cache_size)(self._normalize)
        # validate: the fixed lines met, classified from the number already parsed (a
        # second parse of every phone once doubled validate's phone work)
        self.classify_lines = False
        self.fixed_lines: set[str] = set()
        # The numbers accepted only as international (international_without_plus), to count
        self.read_internationally: set[str] = set()

    def _normalize(self, raw: str, region: str | None) -> str | RowProblem:
        """The E.164 form, or the problem (returned, not raised, so it can be cached)."""
        if not raw:
            return RowProblem(ErrorCode.PHONE_MISSING, "phone is empty")
        text = raw.replace(" ", "")
        if ("E" in text or "e" in text) and _SCIENTIFIC.match(text):
            return RowProblem(
                ErrorCode.PHONE_DAMAGED,
                f"phone {raw!r} is in scientific notation, so Excel has dropped digits;"
                " format the column as text and export again",
            )
        float_zero = _FLOAT_ZERO.match(text) if text[-1] == "0" else None
        if float_zero:
            digits = float_zero.group(1).lstrip("+")
            if len(digits) > _EXCEL_DIGITS:
                return RowProblem(
                    ErrorCode.PHONE_DAMAGED,
                    f"phone {raw!r} was stored as a number with more than {_EXCEL_DIGITS}"
                    " digits, so Excel has changed it; format the column as text",
                )
            raw = float_zero.group(1)  # "56987654321.0": every digit is still there
        if self.fast:  # digits and punctuation only (never 044/045 ...: a leading zero)
            reading = numbering.read(raw, region)
            if reading is not None and not _obsolete_mexican(reading.e164):
                return self._accepted(raw, reading.e164, reading.kind, reading.country_code,
                                      region)
        if _LETTERS.search(raw):
            return RowProblem(ErrorCode.PHONE_INVALID,
                              f"phone {raw!r} holds letters: write the number in digits (letters"
                              " are never turned into digits)")
        written_with_plus = "+" in raw
        if region == "MX" and not written_with_plus:
            digits = re.sub(r"\D", "", raw)
            if len(digits) == 13 and digits.startswith(_MEXICAN_LOCAL_MOBILE):
                raw = digits[3:]
        try:
            number = phonenumbers.parse(raw, region)
        except NumberParseException as error:
            return _parse_problem(raw, region, error)
        assert number.country_code is not None  # parse() sets it, or raises
        _drop_obsolete_mexican_prefix(number)
        read_in = _region_of(number.country_code, region)
        kind = phonenumbers.number_type(number)  # UNKNOWN exactly when not valid
        if kind != phonenumbers.PhoneNumberType.UNKNOWN:
            return self._accepted(raw, _e164(number), kind, number.country_code, region)
        if not written_with_plus and region is not None:
            international = self._international_reading(raw)
            if international is not None:
                assert international.country_code is not None  # a parsed number has one
                if self.international_without_plus:
                    accepted = self._accepted(raw, _e164(international),
                                              phonenumbers.number_type(international),
                                              international.country_code, None)
                    if isinstance(accepted, str):
                        self.read_internationally.add(accepted)
                    return accepted
                shown = phonenumbers.format_number(international,
                                                   PhoneNumberFormat.INTERNATIONAL)
                return RowProblem(
                    ErrorCode.PHONE_INVALID,
                    f"phone {raw!r} is not a valid {region} number; as {shown} it is a valid"
                    f" {_region_of(international.country_code, None)} number: write it with +"
                    " or set [defaults] international_without_plus = true", international=True)
        reason = phonenumbers.is_possible_number_with_reason(number)
        hint = _argentine_hint(raw) if read_in == "AR" and not written_with_plus else ""
        if reason in (ValidationResult.TOO_SHORT, ValidationResult.INVALID_LENGTH,
                      ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
            return RowProblem(ErrorCode.PHONE_TOO_SHORT,
                              f"phone {raw!r} is too short for {read_in}{hint}")
        if reason == ValidationResult.TOO_LONG:
            return RowProblem(ErrorCode.PHONE_TOO_LONG, f"phone {raw!r} is too long for {read_in}")
        if reason == ValidationResult.INVALID_COUNTRY_CODE:
            return RowProblem(ErrorCode.PHONE_INVALID, f"phone {raw!r} has an unknown country code")
        e164 = _e164(number)
        if not _fits_numbering_plan(number):
            # Possible by length only: no hint, since "possible" would not take it either
            # (following such a hint once turned Mexican numbers into wrong Chilean ones).
            return RowProblem(ErrorCode.PHONE_INVALID,
                              f"phone {raw!r} ({e164}) is not a valid number for {read_in}{hint}")
        if self.policy != "possible":
            return RowProblem(
                ErrorCode.PHONE_INVALID,
                f"phone {raw!r} ({e164}) is not a valid number for {read_in}"
                " (if your numbers are newer than the phone data, set"
                ' [defaults] phone_check = "possible")',
            )
        return e164

    def _accepted(self, raw: str, e164: str, kind: int, country_code: int,
                  region: str | None) -> str | RowProblem:
        if kind in _NOT_PERSONAL and self.personal_only:  # under every policy
            return RowProblem(ErrorCode.NOT_A_PERSONAL_NUMBER,
                              f"phone {raw!r} ({e164}) is a {_NOT_PERSONAL[kind]} number in"
                              f" {_region_of(country_code, region)}: no customer is reached"
                              " on it")
        # FIXED_LINE_OR_MOBILE counts as mobile: where the two share ranges, the data
        # cannot tell them apart
        fixed = kind == phonenumbers.PhoneNumberType.FIXED_LINE
        if fixed and self.classify_lines:
            self.fixed_lines.add(e164)
        if fixed and self.policy == "mobile":
            argentine = (" (an Argentine mobile is +54 9 and its area code, nationally"
                         " 0 area code 15)") if country_code == 54 else ""
            return RowProblem(ErrorCode.PHONE_NOT_MOBILE,
                              f"phone {raw!r} ({e164}) is a fixed line in"
                              f" {_region_of(country_code, region)}{argentine}, which WhatsApp"
                              ' rarely reaches; [defaults] phone_check = "valid" sends to'
                              " fixed lines")
        return e164

    @staticmethod
    def _international_reading(raw: str) -> phonenumbers.PhoneNumber | None:
        """The number, if its digits read as an international number are valid."""
        try:
            number = phonenumbers.parse("+" + re.sub(r"\D", "", raw))
        except NumberParseException:
            return None
        _drop_obsolete_mexican_prefix(number)
        return number if phonenumbers.is_valid_number(number) else None


def _argentine_hint(raw: str) -> str:
    """What an Argentine number written locally is missing: the area code before its 15, or
    before the number itself (issue 21: "15 3275 1855" was refused without a word why)."""
    digits = re.sub(r"\D", "", raw).removeprefix("0")
    if digits.startswith("15") and len(digits) == 10:
        return (": a mobile written with 15 needs its area code before the 15 (11 15 ... in"
                " Buenos Aires), or write it +54 9, the area code and the number")
    if len(digits) == 8:
        return ": it needs its area code before it (11 in Buenos Aires)"
    return ""


_KIND = phonenumbers.PhoneNumberType
# Numbers no customer has: refused whatever phone_check says, with what they are.
_NOT_PERSONAL = {_KIND.SHARED_COST: "shared-cost", _KIND.PREMIUM_RATE: "premium-rate",
                 _KIND.TOLL_FREE: "toll-free", _KIND.UAN: "universal access (UAN)",
                 _KIND.VOICEMAIL: "voicemail", _KIND.PAGER: "pager"}


def _fits_numbering_plan(number: phonenumbers.PhoneNumber) -> bool:
    """Whether the number fits its country's numbering plan as a whole (libphonenumber's
    general pattern), as a number newer than the data would; "possible" alone checks only
    the length."""
    assert number.country_code is not None  # a parsed number has one
    region = phonenumbers.region_code_for_country_code(number.country_code)
    metadata = metadata_for(number.country_code, region)
    if metadata is None:
        return True
    assert metadata.general_desc is not None  # every numbering plan has its general one
    pattern = metadata.general_desc.national_number_pattern
    return pattern is None or re.fullmatch(pattern, str(number.national_number)) is not None


def _region_of(country_code: int, region: str | None) -> str:
    """The country a number was read in: the row's when the code is its, else the code's."""
    if region is not None and country_code == phonenumbers.country_code_for_region(region):
        return region
    return phonenumbers.region_code_for_country_code(country_code)


def _parse_problem(raw: str, region: str | None, error: NumberParseException) -> RowProblem:
    where = f" for {region}" if region else ""
    if error.error_type == NumberParseException.INVALID_COUNTRY_CODE:
        if region is None:
            return RowProblem(ErrorCode.PHONE_NO_COUNTRY,
                              f"phone {raw!r} has no country code and [defaults] country is not"
                              " set")
        return RowProblem(ErrorCode.PHONE_INVALID, f"phone {raw!r} has an unknown country code")
    if error.error_type == NumberParseException.NOT_A_NUMBER:
        return RowProblem(ErrorCode.PHONE_INVALID, f"phone {raw!r} is not a phone number")
    if error.error_type in (NumberParseException.TOO_SHORT_NSN,
                            NumberParseException.TOO_SHORT_AFTER_IDD):
        return RowProblem(ErrorCode.PHONE_TOO_SHORT, f"phone {raw!r} is too short{where}")
    return RowProblem(ErrorCode.PHONE_TOO_LONG, f"phone {raw!r} is too long{where}")


# ---------------------------------------------------------------- countries


class CountryReader:
    """A country cell to a region code: ISO code (``MX``, ``MEX``), dialing code (``52``,
    ``+52``) or a name in Spanish or English (``México``, ``Mexico``, ``Perú``, ``Brasil``,
    ``República del Perú``, ``Republic of Peru``, ``Islas Canarias``)."""

    _ALIASES: ClassVar[dict[str, str]] = {
        "eeuu": "US", "ee uu": "US", "usa": "US", "uk": "GB", "espana": "ES",
        "estados unidos mexicanos": "MX",
        # territories written as the country (their numbers are the country's)
        "canarias": "ES", "islas canarias": "ES", "baleares": "ES",
        "islas baleares": "ES", "ceuta": "ES", "melilla": "ES"}
    # Official names in Spanish: "República del Perú", "Estado Plurinacional de Bolivia".
    _OFFICIAL = re.compile(r"^(republica|estado plurinacional|reino|principado|mancomunidad"
                           r"|estado|confederacion)( (de|del))?( (la|las|los|el))? ")

    def __init__(self) -> None:
        self.region = lru_cache(maxsize=1024)(self._region)

    def _region(self, cell: str) -> str | None:
        text = cell.strip()
        if text.upper() in phonenumbers.SUPPORTED_REGIONS:
            return text.upper()
        code = text.removeprefix("+").removeprefix("00").strip()
        if code.isdigit():
            region = phonenumbers.region_code_for_country_code(int(code))
            return None if region == "ZZ" else region
        folded = " ".join(re.split(r"[^a-z0-9]+", fold(text))).strip()
        found = NAMES.get(folded) or self._ALIASES.get(folded)
        if found is None and (short := self._OFFICIAL.sub("", folded)) != folded:
            found = NAMES.get(short) or self._ALIASES.get(short)
        return found or self._iso(text)

    @staticmethod
    def _iso(text: str) -> str | None:
        """ISO 3166 alpha-3 codes (``PER``) and English official names (``Republic of
        Peru``), from pycountry, read only for cells nothing above knew."""
        import pycountry

        try:
            # an alpha-3 code as ISO writes it (upper case): "Sur", "Dom", "Can" are words
            found = (pycountry.countries.get(alpha_3=text) if len(text) == 3 and text.isupper()
                     else None) or (None if len(text) <= 3 else pycountry.countries.lookup(text))
        except LookupError:
            return None
        region = getattr(found, "alpha_2", None)
        return region if region in phonenumbers.SUPPORTED_REGIONS else None


def country_names_from_library() -> dict[str, str]:
    """Folded country names (Spanish and English) from libphonenumber's own locale data, as
    :mod:`.country_names` holds them (loading the data costs 0.6 s a run)."""
    names: dict[str, str] = {}
    for region in phonenumbers.SUPPORTED_REGIONS:
        for language in ("en", "es"):
            name = region_display_name(region, language)
            if name:
                names[" ".join(re.split(r"[^a-z0-9]+", fold(name))).strip()] = region
    return names


def _e164(number: phonenumbers.PhoneNumber) -> str:
    """E.164 without format_number's general machinery, for the common case."""
    if number.italian_leading_zero:
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return f"+{number.country_code}{number.national_number}"


def _obsolete_mexican(e164: str) -> bool:
    """``+52 1`` and ten digits: the library's reading must be corrected (below)."""
    return e164.startswith("+521") and len(e164) == 14


def _drop_obsolete_mexican_prefix(number: phonenumbers.PhoneNumber) -> None:
    """``+52 1 55 1234 5678`` has been ``+52 55 1234 5678`` since 2019."""
    assert number.national_number is not None  # a parsed number has one
    if number.country_code == 52 and 10**10 <= number.national_number < 2 * 10**10:
        number.national_number -= 10**10


# ---------------------------------------------------------------- stages


class StageResolver:
    """Stage cells (a UUID or a stage name) to stage IDs, against the account's pipelines.

    Without a listing (``validate`` with no API key) every cell is taken as written and
    counted in :attr:`unchecked`. A name may be qualified as ``Pipeline / Stage`` when two
    pipelines have a stage of the same name.
    """

    def __init__(self, pipelines: list[Pipeline] | None) -> None:
        self.checked = pipelines is not None
        self.unchecked = 0
        # Without a listing: the distinct names seen (not UUIDs), up to a few, to show
        self.unchecked_names: set[str] = set()
        self._ids: set[str] = set()
        self._names: dict[str, str] = {}
        self._by_name: dict[str, list[str]] = {}
        for pipeline in pipelines or []:
            for stage in pipeline.stages:
                self._ids.add(stage.id.lower())
                self._names[stage.id] = stage.name
                for name in (stage.name, f"{pipeline.name} / {stage.name}"):
                    self._by_name.setdefault(_fold(name), []).append(stage.id)

    def names(self) -> dict[str, str]:
        """Stage ID -> name, for messages."""
        return dict(self._names)

    def exists(self, stage_id: str) -> bool:
        return not self.checked or stage_id.lower() in self._ids

    def resolve(self, cell: str) -> str:
        if not self.checked:
            self.unchecked += 1
            if not is_uuid(cell) and len(self.unchecked_names) <= 1000:
                self.unchecked_names.add(cell)
            return cell  # validate without a key: resolved against the account at run time
        if is_uuid(cell):
            if not self.exists(cell):
                raise RowProblem(ErrorCode.STAGE_UNKNOWN,
                                 f"stage {cell} is not in the account's pipelines")
            return cell
        matches = self._by_name.get(_fold(cell), [])
        if not matches:
            raise RowProblem(ErrorCode.STAGE_UNKNOWN,
                             f"no stage named {cell!r} in the account's pipelines")
        if len(set(matches)) > 1:
            raise RowProblem(ErrorCode.STAGE_AMBIGUOUS,
                f"stage name {cell!r} is in more than one pipeline; write 'Pipeline / Stage'"
                " or the stage UUID",
            )
        return matches[0]


def _fold(name: str) -> str:
    return " ".join(name.split()).casefold()


# ---------------------------------------------------------------- rows

_LONG_SPACE_RUN = re.compile(r" {5,}")


def _check_template_variable(column: str, value: str | None) -> None:
    """WhatsApp refuses template variables that are empty or hold a newline, a tab or more
    than four spaces in a row; such a row would fail at Meta, after Vambe said "ok"."""
    if not value:
        raise RowProblem(ErrorCode.TEMPLATE_VARIABLE_INVALID,
                         f"the template variable {column!r} is empty in this row")
    for bad, what in (("\n", "a line break"), ("\r", "a line break"), ("\t", "a tab")):
        if bad in value:
            raise RowProblem(ErrorCode.TEMPLATE_VARIABLE_INVALID,
                             f"the template variable {column!r} holds {what}, which WhatsApp"
                             " refuses")
    if _LONG_SPACE_RUN.search(value):
        raise RowProblem(ErrorCode.TEMPLATE_VARIABLE_INVALID,
                         f"the template variable {column!r} holds more than four spaces in a"
                         " row, which WhatsApp refuses")


# Plain ASCII addresses that email_validator always accepts: dot-atom local part, letter-digit
# labels without "--" (no Punycode) and an alphabetic top-level domain. Anything else, valid
# or not, goes to email_validator, which costs about 40 us an address (as much as a phone).
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def email_problem(text: str) -> str | None:
    """Why an email address is not valid (syntax only, no DNS), or None when it is."""
    if _PLAIN_EMAIL.fullmatch(text) and len(text) <= 254:
        local, _, domain = text.partition("@")
        if len(local) <= 64 and "--" not in domain and not _special_use(domain.lower()):
            return None
    return _validator_problem(text)


@lru_cache(maxsize=16384)  # only for what the shortcut leaves: a cache miss costs a microsecond
def _validator_problem(text: str) -> str | None:
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        return str(error)
    return None


_SPECIAL_USE_TOP_LEVEL = frozenset(SPECIAL_USE_DOMAIN_NAMES)
assert all("." not in name for name in _SPECIAL_USE_TOP_LEVEL)  # so the last label decides


def _special_use(domain: str) -> bool:
    return domain.rpartition(".")[2] in _SPECIAL_USE_TOP_LEVEL


class OptOuts:
    """Phones never to contact, from the ``[dedupe] exclude`` files, with the file of each."""

    def __init__(self, country: str | None) -> None:
        # Read leniently (any format, possible numbers too): wrongly excluding is safe,
        # wrongly messaging is not.
        self._lenient = PhoneNormalizer(country, "possible", personal_only=False)
        self._phones = PhoneIndex()  # phone -> 1-based index into sources
        self.sources: list[str] = []
        self.notes: list[str] = []  # what the operator should know of the files read

    def learn(self, source: str, cells: Iterable[tuple[int, str, str]]
              ) -> tuple[int, list[tuple[int, str, str]]]:
        """Learn one file's (row, column, cell) entries. Returns how many phones it held and
        the entries that are not phones, as (row, column, why)."""
        index = len(self.sources) + 1
        self.sources.append(source)
        learned = 0
        unreadable = []
        for row, column, raw in cells:
            if raw == UNCALCULATED:
                unreadable.append((row, column, ("a formula Excel never calculated (open the"
                                                 " file in Excel and save it again)")))
                continue
            phone = self._lenient.normalize(raw, self._lenient.country)
            if isinstance(phone, RowProblem):
                unreadable.append((row, column, phone.message))
            else:
                self._phones.put(phone, index)
                learned += 1
        return learned, unreadable

    def source_of(self, phone: str) -> str | None:
        """The opt-out file holding ``phone``, or None."""
        if not self.sources:
            return None
        index = self._phones.get(phone)
        return None if index is None else self.sources[index - 1]


class Validator:
    """Checks mapped rows in file order; holds the only state that grows: phones seen."""

    def __init__(self, config: Config, stages: StageResolver,
                 opt_outs: OptOuts | None = None) -> None:
        self.config = config
        self.stages = stages
        defaults = config.defaults
        self.phones = PhoneNormalizer(
            defaults.country, defaults.phone_check,
            international_without_plus=defaults.international_without_plus)
        self.countries = CountryReader()

        # Per pass: rows international_without_plus would accept, rows with fixed lines.
        self.tallies: Counter[str] = Counter()
        self.policy = config.dedupe.within_file
        self._first_row_of_phone = PhoneIndex()
        self._last_row_of_phone = PhoneIndex()
        self._earlier_rows = array("q")  # "last": rows a later row with their phone supersedes
        self._earlier_phones = array("q")
        self.opt_outs = opt_outs or OptOuts(config.defaults.country)
        self._occurrences: dict[int, int] = {}
        phone_columns = config.columns.phone
        self._phone_header = (phone_columns if isinstance(phone_columns, str)
                              else phone_columns[0])
        self._used = (self._phone_header, "")  # check(): the phone column used, and its cell

    def superseded(self) -> Iterator[tuple[int, int]]:
        """``within_file = "last"``, once every row is checked: (row, last row) for each row
        whose phone a later row holds (the last one is sent; the others are duplicates)."""
        last = self._last_row_of_phone
        for row, phone in zip(self._earlier_rows, self._earlier_phones, strict=True):
            last_row = last.get(f"+{phone}")
            assert last_row is not None  # _repeated_row stored it before setting this row aside
            yield row, last_row

    def check(self, row: MappedRow) -> CheckedRow:
        """The row's verdict, with the phone as written, its column and the name, for
        results.csv. With ``within_file = "last"`` a valid row may still be superseded by a
        later row with its phone (:meth:`superseded`, at the end)."""
        self._used = (self._phone_header, row.phone)
        self._region: str | None = None
        verdict = self._verdict(row)
        column, written = self._used
        return verdict._replace(written=written, column=column, name=row.contact_name,
                                country=self._region or "")

    def _verdict(self, row: MappedRow) -> CheckedRow:
        if row.cell_problem is not None:
            return CheckedRow(row.number, RowStatus.INVALID, "", *row.cell_problem)
        region = self._region = self.phones.country
        if row.country:
            region = self._region = self.countries.region(row.country)
            if region is None:
                return CheckedRow(row.number, RowStatus.INVALID, "", ErrorCode.COUNTRY_UNKNOWN,
                                  f"country {row.country!r} is not one I can read: write an ISO"
                                  " code (MX), a dialing code (+52) or a name (México)")
        phone = self._phone(row, region)
        if isinstance(phone, RowProblem):
            if phone.international:
                self.tallies["international"] += 1
            elif phone.code == ErrorCode.PHONE_NOT_MOBILE:
                self.tallies["fixed_line"] += 1
            return CheckedRow(row.number, RowStatus.INVALID, "", phone.code, phone.message)
        if self.phones.classify_lines and phone in self.phones.fixed_lines:
            self.tallies["fixed_line"] += 1
        if phone in self.phones.read_internationally:
            self.tallies["international_read"] += 1
        if (source := self.opt_outs.source_of(phone)) is not None:
            return CheckedRow(row.number, RowStatus.EXCLUDED, phone,
                              error_code=ErrorCode.OPTED_OUT,
                              error=f"phone is in {source} (opt-outs): never contacted")
        # The customer's other usable numbers (several phone columns): opted out on one, on
        # all; and, below, the same customer when an earlier row has one of them.
        others = [(header, other) for header, cell in row.phones if cell.strip() and isinstance(
            other := self.phones.normalize(cell, region), str) and other != phone]
        for header, other in others:
            if (source := self.opt_outs.source_of(other)) is not None:
                return CheckedRow(row.number, RowStatus.EXCLUDED, phone,
                                  error_code=ErrorCode.OPTED_OUT,
                                  error=f"the row's {header!r} phone is in {source} (opt-outs):"
                                        " never contacted")
        repeated = self._repeated_row(phone, row.number)
        if repeated is not None:
            return CheckedRow(row.number, RowStatus.DUPLICATE, phone,
                              error_code=ErrorCode.DUPLICATE_PHONE,
                              error=f"same phone as row {repeated}")
        if others and self.policy == "first":  # rows [A, B] and [B, A] were both sent
            for _, other in others:
                earlier = self._first_row_of_phone.get(other)
                if earlier is not None and earlier != row.number:
                    return CheckedRow(row.number, RowStatus.DUPLICATE, phone,
                                      error_code=ErrorCode.DUPLICATE_PHONE,
                                      error=f"the same customer as row {earlier} (one of its"
                                            " phones)")
            for _, other in others:
                self._first_row_of_phone.setdefault(other, row.number)
        try:
            request = self._request(row, phone)
        except RowProblem as problem:
            return CheckedRow(row.number, RowStatus.INVALID, phone, problem.code, problem.message)
        return CheckedRow(row.number, RowStatus.VALID, phone, request=request)

    def _phone(self, row: MappedRow, region: str | None) -> str | RowProblem:
        """The row's phone in E.164; with several phone columns, the first non-empty cell
        that is a usable number, else a problem naming each column tried and why."""
        if not row.phones:
            return self.phones.normalize(row.phone, region)
        problems: list[tuple[str, RowProblem]] = []
        for header, cell in row.phones:
            if cell.strip():
                found = self.phones.normalize(cell, region)
                if not isinstance(found, RowProblem):
                    self._used = (header, cell)
                    return found
                if not problems:
                    self._used = (header, cell)  # none usable: the first one written
                problems.append((header, found))
        if not problems:
            return RowProblem(ErrorCode.PHONE_MISSING, "phone is empty in " + " and ".join(
                repr(header) for header, _ in row.phones))
        return RowProblem(problems[0][1].code, "no usable phone: " + "; ".join(
            f"{header!r}: {problem.message}" for header, problem in problems),
            international=any(problem.international for _, problem in problems))

    def _template_request(self, row: MappedRow, phone: str, stage_id: str) -> TicketRequest:
        """A template with several variables, through Vambe's template endpoint: the values
        in order, the contact's metadata as meta_data (no ticket metadata: it takes none)."""
        message = self.config.message
        # config.template_endpoint: [message] variables is set, so the mapping read them.
        assert message is not None and row.variables is not None
        if not row.template_id:
            raise RowProblem(ErrorCode.TEMPLATE_MISSING,
                             f"the template column {message.template_column!r} is"
                             " empty and [message] template_id is not set")
        for name, value in row.variables:
            _check_template_variable(name, value)
        values = [value for _, value in row.variables]
        body: dict = {"variables": values, "meta_data": row.contact_metadata or {}}
        if row.contact_name:
            body["contactName"] = row.contact_name
        if row.email:
            body["email"] = row.email
        body["stageId"] = stage_id
        body["toPhoneNumber"] = phone
        path = (f"/api/public/whatsapp/message/send/{phone.lstrip('+')}/template/"
                f"{quote(row.template_id, safe='')}")
        sent = ("template", row.template_id, tuple(values))
        identity = (self.config.api.channel, self.config.api.phone_id, phone, stage_id, sent,
                    self._occurrence(phone, stage_id, sent))
        return TicketRequest(phone, body, True, identity, path)

    def _occurrence(self, phone: str, stage_id: str, sent: object) -> int:
        """With dedupe "none", identical rows are told apart by their occurrence."""
        if self.policy != "none":
            return 0
        same = hash((phone, stage_id, sent))
        occurrence = self._occurrences.get(same, 0)
        self._occurrences[same] = occurrence + 1
        return occurrence

    def _repeated_row(self, phone: str, number: int) -> int | None:
        """The row this one repeats, per [dedupe]; a phone's first row claims it even if invalid."""
        if self.policy == "none":
            return None
        if self.policy == "last":  # known only at the end of the file: see superseded()
            earlier = self._last_row_of_phone.get(phone)
            self._last_row_of_phone.put(phone, number)
            if earlier is not None:
                self._earlier_rows.append(earlier)
                self._earlier_phones.append(int(phone[1:]))
            return None
        first = self._first_row_of_phone.setdefault(phone, number)
        return first if first != number else None

    def _request(self, row: MappedRow, phone: str) -> TicketRequest:
        config = self.config
        if row.stage:
            stage_id = self.stages.resolve(row.stage)
        elif config.defaults.stage_id is not None:
            stage_id = config.defaults.stage_id
        else:
            raise RowProblem(ErrorCode.STAGE_MISSING,
                             "stage is empty and [defaults] stage_id is not set")
        if row.emails:
            row = row._replace(email=_first_email(row.emails))
        elif row.email:
            problem = email_problem(row.email)
            if problem is not None:
                raise RowProblem(ErrorCode.EMAIL_INVALID,
                                 f"email {row.email!r} is not valid: {problem}")
        if row.empty_placeholders:
            names = ", ".join(repr(name) for name in row.empty_placeholders)
            raise RowProblem(ErrorCode.PLACEHOLDER_EMPTY,
                             f"the message needs {names}, which is empty in this row")
        message = config.message
        if config.template_endpoint:
            return self._template_request(row, phone, stage_id)
        if message is not None and message.is_template:
            if not row.template_id:
                raise RowProblem(ErrorCode.TEMPLATE_MISSING,
                                 f"the template column {message.template_column!r} is empty"
                                 " and [message] template_id is not set")
            if message.variable is not None:
                _check_template_variable(message.variable, row.message)
        body: dict = {"to_phone_number": phone, "stage_id": stage_id}
        if row.contact_name:
            body["contact_name"] = row.contact_name
        if row.email:
            body["email"] = row.email
        for field in ("contact_metadata", "ticket_metadata", "integration_data"):
            values = getattr(row, field)
            if values:
                body[field] = values
        if message is not None and message.is_template:
            body["message"] = {"templateId": row.template_id}
            if row.message is not None:
                body["message"]["content"] = row.message
            body["message"]["ai_generated"] = message.ai_generated
        elif message is not None:
            body["message"] = {"content": row.message, "ai_generated": message.ai_generated}
        sent_message = (row.template_id, row.message) if row.template_id else row.message
        identity = (config.api.channel, config.api.phone_id, phone, stage_id, sent_message,
                    self._occurrence(phone, stage_id, sent_message))
        return TicketRequest(phone, body, message is not None, identity)
