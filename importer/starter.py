"""Write a commented starter config from a spreadsheet's headers and a sample of its rows.

Columns are guessed from common Spanish and English headers, and the phone column and the
default country from what the sample's numbers parse as. Everything else is listed, commented,
ready to map to metadata. The IDs it cannot know (stage, phone ID) are Vambe's own
documentation examples, which the sandbox serves: the config runs there unchanged, and against
a real account it stops before sending until they are replaced.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import phonenumbers

from .client import Pipeline
from .codes import ErrorCode
from .config import DEFAULT_BASE_URL, columns_of
from .exceptions import ConfigError, InputFileError
from .read import PHONE_WORDS, Table, fold, open_table

SAMPLE_ROWS = 200
EXAMPLE_STAGE_ID = "550e8400-e29b-41d4-a716-446655440000"
EXAMPLE_PHONE_ID = "123456789"
# Regions tried for numbers written without a country code: Vambe's markets first.
REGIONS = ("CL", "MX", "AR", "CO", "PE", "BR", "EC", "UY", "PY", "BO", "VE", "ES", "US")
GUESSES = {
    "phone": tuple(PHONE_WORDS),
    "contact_name": ("nombre", "name", "cliente", "contacto", "razon social"),
    "email": ("correo", "email", "e-mail", "mail"),
    "stage": ("etapa", "stage"),
    "country": ("pais", "country", "nacionalidad"),
}
# Names kept in parts (CRM exports): contact_name becomes a template of both.
FIRST_NAMES = ("first name", "firstname", "given name", "nombre", "nombres", "primer nombre")
LAST_NAMES = ("last name", "lastname", "surname", "family name", "apellido", "apellidos")
# The headers exports give the customer's own phones; any other phone-like column (a
# company's, an emergency contact's) is never a fallback: it reaches someone else.
PERSONAL_PHONES = frozenset((
    "phone", "phone number", "mobile", "mobile phone", "mobile phone number", "cell phone",
    "default address phone", "billing address phone", "shipping address phone", "whatsapp",
    "celular", "movil", "telefono", "telefono movil", "telefono celular", "telefono fijo",
    "fono", "cel"))
# A phone column whose header says mobile comes first when there are several.
MOBILE_WORDS = ("mobile", "movil", "celular", "cel", "whatsapp")


@dataclass(frozen=True)
class Starter:
    """What init found, and the config text it wrote."""

    columns: dict[str, str]
    country: str | None
    country_votes: int
    sampled_phones: int
    text: str
    countries: tuple[tuple[str, int], ...] = ()  # every region the sample's numbers are in
    phone_id_found: bool = False  # the account's only WhatsApp channel was written
    # The sample's [columns] country cells, read as regions ("?" for unreadable), most first
    column_countries: tuple[tuple[str, int], ...] = ()

    @property
    def several_countries(self) -> bool:
        """The sample's numbers (or its country cells) belong to more than one country, each
        a tenth or more."""
        counted = self.column_countries or self.countries
        total = sum(count for _, count in counted)
        return sum(votes * 10 >= total for _, votes in counted) > 1


def _matches(header: str, words: tuple[str, ...]) -> int:
    """How well a header fits: 2 for the whole header, 1 for a word of it, 0 for none."""
    folded = fold(header)
    if folded in words:
        return 2
    return int(any(word in re.split(r"[\s_/.-]+", folded) for word in words))


def _guess_columns(headers: tuple[str, ...], sample: list[tuple[str, ...]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for field, words in GUESSES.items():
        ranked = sorted(((_matches(h, words), -i, h) for i, h in enumerate(headers)
                         if h not in found.values()), reverse=True)
        if ranked and ranked[0][0] > 0:
            candidates = [h for score, _, h in ranked if score == ranked[0][0]]
            if field == "phone" and len(candidates) > 1:
                candidates.sort(key=lambda h: -_phone_like(sample, headers.index(h)))
            found[field] = candidates[0]
    if "phone" not in found:  # no header says phone: the column whose cells look like phones
        best = max(range(len(headers)), key=lambda i: _phone_like(sample, i), default=None)
        if best is not None and _phone_like(sample, best) > len(sample) // 2:
            found["phone"] = headers[best]
    return found


def _phone_columns(headers: tuple[str, ...], sample: list[tuple[str, ...]], first: str,
                   taken: set[str]) -> list[str]:
    """Every column that says phone and holds numbers, the mobile-sounding first (Shopify's
    Phone and Default Address Phone, HubSpot's Mobile Phone Number and Phone Number)."""
    found = [first] + [header for index, header in enumerate(headers)
                       if header != first and header not in taken
                       and " ".join(re.split(r"[\s_/.-]+", fold(header))) in PERSONAL_PHONES
                       and _phone_like(sample, index) > 0]
    return sorted(found, key=lambda header: -_matches(header, MOBILE_WORDS))


def _name_parts(headers: tuple[str, ...]) -> str | None:
    """``{First Name} {Last Name}`` when the file keeps names in parts."""
    first = next((h for h in headers if fold(h).strip() in FIRST_NAMES), None)
    last = next((h for h in headers if fold(h).strip() in LAST_NAMES), None)
    return f"{{{first}}} {{{last}}}" if first and last else None


def _stage_column_note(header: str, table: Table, sample: list[tuple[str, ...]],
                       account: Account | None) -> str | None:
    """None to map a stage column: with the account read, when most of its sample values are
    its stage names or IDs. Else the commented-out line saying why (HubSpot's Lifecycle Stage
    holds "customer" and "lead": mapped, every row had been stage_unknown)."""
    from .validate import RowProblem, StageResolver

    index = table.headers.index(header)
    values = [cells[index] for cells in sample if cells[index].strip()]
    if not values:
        return f"# stage = {_quote(header)}    # not mapped: empty in the sample"
    shown = ", ".join(repr(value) for value in sorted(set(values))[:3])
    if account is None:
        return (f"# stage = {_quote(header)}    # not mapped: its values ({shown}) can be"
                " checked against the account's stages only with VAMBE_API_KEY set; uncomment"
                " if they are stage names or IDs")
    resolver = StageResolver(account.pipelines)
    known = 0
    for value in values:
        try:
            resolver.resolve(value)
            known += 1
        except RowProblem as problem:  # a name two pipelines share is still a stage name
            known += problem.code == ErrorCode.STAGE_AMBIGUOUS
    if known * 2 > len(values):
        return None
    return (f"# stage = {_quote(header)}    # not mapped: {len(values) - known} of"
            f" {len(values)} sample values ({shown}) are not stages of the account")


def _phone_like(sample: list[tuple[str, ...]], index: int) -> int:
    return sum(len(re.sub(r"\D", "", row[index])) >= 8 for row in sample)


_REACHABLE = (phonenumbers.PhoneNumberType.MOBILE,
              phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def _guess_country(values: list[str]) -> Counter:
    """How many sample numbers belong to each region: an explicit country code votes for
    its own; a number written without one votes only if it is a number the default
    phone_check sends to (mobile) in exactly one of Vambe's markets. A number valid in
    several (a Spanish 612 345 678 is a valid Chilean number too) votes for none: it is
    counted under "?", so it can keep any country from
    holding most of the sample (found by review: Spanish mobiles defaulted to CL)."""
    votes: Counter = Counter()
    for value in values:
        found = set()
        for region in REGIONS:
            try:
                number = phonenumbers.parse(value, region)
            except phonenumbers.NumberParseException:
                break
            if phonenumbers.number_type(number) in _REACHABLE:  # a number it would send to
                found.add(phonenumbers.region_code_for_number(number) or region)
            if "+" in value:
                break  # written with its country code: one reading
        if len(found) == 1:
            votes[found.pop()] += 1
        elif found:
            votes["?"] += 1
    return votes


def _key(header: str) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", fold(header)).strip("_")
    return key or "campo"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


@dataclass(frozen=True)
class Account:
    """What init read from the account (with VAMBE_API_KEY): its channels and stages."""

    base_url: str
    channels: list[dict]
    pipelines: list[Pipeline]


def _api_lines(account: Account | None) -> tuple[list[str], bool]:
    """The [api] phone_id line (and comments): the account's only WhatsApp channel, else
    the documentation example with the account's channels listed."""
    example = (f"phone_id = {_quote(EXAMPLE_PHONE_ID)}    # REPLACE: your numeric WhatsApp"
               " Business phone ID (Vambe dashboard, WhatsApp channels); this is Vambe's"
               " documentation example")
    if account is None:
        return [example], False
    base = [] if account.base_url == DEFAULT_BASE_URL else [
        f"base_url = {_quote(account.base_url)}"]
    channels = account.channels
    if len(channels) == 1:
        channel = channels[0]
        phone_id = (f"phone_id = {_quote(str(channel['id']))}    # your WhatsApp channel"
                    f" {channel.get('name', '')!s} ({channel.get('phone_number', '')!s})")
        return [*base, phone_id], True
    listed = [f"#   {channel['id']}: {channel.get('name', '')} ({channel.get('phone_number', '')})"
              for channel in channels]
    say = ("# The account's WhatsApp channels (choose one):" if channels else
           "# The account has no WhatsApp Business channel (vambe-import channels lists them)")
    return base + [say, *listed, example], False


def _stage_lines(account: Account | None) -> list[str]:
    example = (f"stage_id = {_quote(EXAMPLE_STAGE_ID)}    # REPLACE: a stage of yours"
               " (vambe-import stages lists them); this is Vambe's documentation example")
    if account is None or not account.pipelines:
        return [example]
    listed = [f"#   {stage.id}  {pipeline.name} / {stage.name}"
              for pipeline in account.pipelines for stage in pipeline.stages]
    return ["# The account's stages (pick one for stage_id):", *listed, example]


def starter_config(table: Table, account: Account | None = None) -> Starter:
    """Guess a config for ``table`` and return it with the reasons; with ``account``, its
    real phone ID (when it has one WhatsApp channel) and its stages, as comments."""
    sample = [row.cells for row in islice(table.rows(), SAMPLE_ROWS)]
    columns = _guess_columns(table.headers, sample)
    if "phone" not in columns:
        shown = ", ".join(repr(h) for h in table.headers)
        raise InputFileError(f"{table.path.name}: no column looks like a phone (columns: {shown});"
                             " write the config by hand from config.example.toml")
    phone_headers = _phone_columns(table.headers, sample, columns["phone"],
                                   set(columns.values()))
    phone_indexes = [table.headers.index(header) for header in phone_headers]
    country_index = (table.headers.index(columns["country"]) if "country" in columns
                     else None)

    def first_phone(cells: tuple[str, ...]) -> str | None:
        return next((cells[i] for i in phone_indexes if cells[i]), None)

    phones = [phone for cells in sample if (phone := first_phone(cells))]
    tally = _guess_country(phones)
    # The default country is for the rows without a country cell: counted on their numbers
    # (found by review: counted on the cells, 7 Mexican numbers went to the US).
    homeless = [phone for cells in sample if (phone := first_phone(cells))
                and (country_index is None or not cells[country_index].strip())]
    default_tally = tally if country_index is None else _guess_country(homeless)
    used = {*columns.values(), *phone_headers}
    if (parts := _name_parts(table.headers)) is not None:
        columns["contact_name"] = parts
        used |= set(columns_of(parts))
    if len(phone_headers) > 1:
        # Only phone may be several headers ([columns] phone); every other setting is one.
        columns["phone"] = phone_headers  # type: ignore[assignment]
    cells_seen: Counter = Counter()
    if "country" in columns:
        from .validate import CountryReader

        reader, index = CountryReader(), table.headers.index(columns["country"])
        cells_seen = Counter(reader.region(cells[index]) or "?" for cells in sample
                             if cells[index].strip())
    # A default country only where one country holds most of the numbers it would read:
    # else the other rows would be read in it.
    counted, total = default_tally, sum(default_tally.values())
    country, votes = counted.most_common(1)[0] if counted else (None, 0)
    if country == "?" or votes * 2 <= total:
        country, votes = None, 0
    stage_note = None
    if "stage" in columns:
        stage_note = _stage_column_note(columns["stage"], table, sample, account)
        if stage_note is not None:
            del columns["stage"]  # written commented out, with the reason
    others = [h for h in table.headers if h and h not in used]
    api_lines, phone_id_found = _api_lines(account)
    lines = [
        f"# Starter config for {table.path.name}, written by vambe-import init.",
        "# Check every line, then: vambe-import validate FILE --config THIS_FILE",
        "# The API key is never written here: export VAMBE_API_KEY=...",
        "",
        "[api]",
        '# base_url = "https://api.vambe.ai"',
        'channel = "whatsapp"',
        *api_lines,
        "rate_limit_per_second = 5",
        "max_concurrency = 8",
        "",
    ]
    if table.kind == "xlsx":
        lines += ["[input]", f"sheet = {_quote(table.sheet or '')}", ""]
    lines += ["[columns]"]
    for field in ("phone", "contact_name", "email", "stage", "country"):
        if field in columns:
            lines.append(f"{field} = {_quote(columns[field])}")
        elif field == "stage" and stage_note is not None:
            lines.append(stage_note)
        else:
            lines.append(f"# {field} = \"...\"    # no column looked like it")
    lines += [
        "",
        "[defaults]",
        *_stage_lines(account),
    ]
    if country and cells_seen:
        lines.append(f"country = {_quote(country)}    # for rows with no country cell: {votes}"
                     f" of their {total} sample numbers are valid only there")
    elif cells_seen and not homeless:
        lines.append('# country = "CL"    # every sample row has a country cell')
    elif country:
        lines.append(f"country = {_quote(country)}    # {votes} of {len(phones)} sample numbers"
                     " are valid there")
    else:
        seen = ", ".join(f"{region} {count}" for region, count in counted.most_common(5))
        lines.append('# country = "CL"    # for numbers written without a country code; no'
                     f" country holds most of the sample{f' ({seen})' if seen else ''}"
                     " (?: valid in several countries)")
    lines += ["", "[contact_metadata]    # API field = column header; uncomment what to send"]
    lines += [f"# {_key(header)} = {_quote(header)}" for header in others]
    lines += [
        "",
        "# [message]    # no [message]: no first message, the AI assistant starts",
        '# template_id = "your_approved_template"',
        f"# variable = {_quote(columns_of(columns.get('contact_name', 'Nombre'))[0])}",
        "# ai_generated = false",
        "",
        "[dedupe]",
        'within_file = "first"',
        "",
    ]
    return Starter(columns, country, votes, total, "\n".join(lines),
                   tuple(tally.most_common()), phone_id_found,
                   tuple(cells_seen.most_common()))


def write_starter(input_path: str | Path, output: str | Path, *, sheet: str | None = None,
                  force: bool = False, account: Account | None = None) -> Starter:
    """Write a starter config for ``input_path`` to ``output``; never overwrites unless forced."""
    output = Path(output)
    if output.exists() and not force:
        raise ConfigError(f"{output} already exists; choose another -o path or add --force")
    starter = starter_config(open_table(input_path, sheet=sheet), account)
    output.write_text(starter.text, encoding="utf-8")
    return starter
