"""Map a spreadsheet row to the API's fields, as the config says, before any checking.

Column positions are looked up once per file, so mapping a row is a handful of tuple
indexings. Empty metadata cells are left out (the API would store an empty string), and
the message is rendered here so the validator can refuse a row whose placeholder is empty.
"""

from __future__ import annotations

from typing import NamedTuple

from .codes import ErrorCode
from .config import Config, Constant, MetadataMap, header_key, is_cell_template, parse_template
from .read import EXCEL_ERRORS, MAX_CELL, UNCALCULATED, SourceRow

_SUSPECT_START = frozenset("#\ue000")

# A template of columns: (column position, True) or (literal text, False) parts. The flag
# says which, and mypy cannot follow that through the unpacking, hence the [index] ignores.
_Parts = list[tuple[int | str, bool]]
_Source = int | _Parts  # where a setting's value comes from: one column, or a template


class MappedRow(NamedTuple):
    """A row's values under the API's names, still unchecked."""

    number: int
    phone: str
    contact_name: str
    email: str
    stage: str
    contact_metadata: dict[str, str]
    ticket_metadata: dict[str, str]
    integration_data: dict[str, str]
    message: str | None  # plain text as rendered, or the template variable's value
    empty_placeholders: tuple[str, ...]
    template_id: str | None = None
    country: str = ""  # the row's country cell ([columns] country), as written
    variables: tuple[tuple[str, str], ...] | None = None  # (name, value) in template order
    cell_problem: tuple[ErrorCode, str] | None = None  # a used cell is not data
    # With several phone (email) columns: each (header, cell), in order of preference;
    # ``phone`` (``email``) is then the first one's cell.
    phones: tuple[tuple[str, str], ...] = ()
    emails: tuple[tuple[str, str], ...] = ()


class RowMapper:
    """Turns :class:`SourceRow` into :class:`MappedRow` for one file's headers."""

    def __init__(self, config: Config, headers: tuple[str, ...]) -> None:
        keyed: dict[str, int] = {}
        for index, header in enumerate(headers):
            keyed.setdefault(header_key(header), index)  # (a used one is never repeated)

        class _Positions(dict[str, int]):
            def __missing__(self, header: str) -> int:
                return keyed[header_key(header)]

        position = _Positions()
        self._position = position

        def column(header: str | None) -> int | None:
            return None if header is None else position[header]

        columns = config.columns
        self._headers = headers
        self._used = sorted({position[header] for _, header in config.mapped_columns()})
        self._country = column(columns.country)
        phones = columns.phone if isinstance(columns.phone, list) else [columns.phone]
        self._phone = position[phones[0]]
        self._phones = [(header, position[header]) for header in phones] if len(phones) > 1 \
            else []
        emails = columns.email if isinstance(columns.email, list) else []
        self._emails = [(header, position[header]) for header in emails] if len(emails) > 1 \
            else []
        self._name = None if columns.contact_name is None else self._source(columns.contact_name)
        self._email = column(columns.email[0] if isinstance(columns.email, list)
                             else columns.email)
        self._stage = column(columns.stage)
        self._contact = self._metadata(config.contact_metadata)
        self._ticket = self._metadata(config.ticket_metadata)
        self._integration = self._metadata(config.integration_data)
        self._message: _Parts | None = None
        message = config.message
        self._template_id = None if message is None else message.template_id
        self._template_column = column(None if message is None else message.template_column)
        self._variable = column(None if message is None else message.variable)
        self._variables = None
        if message is not None and message.variables is not None:
            self._variables = [
                (f"variable {number}", source.value) if isinstance(source, Constant)
                else (source, position[source])
                for number, source in enumerate(message.variables, start=1)]
        if message is not None and message.content is not None:
            parts = parse_template(message.content).parts
            self._message = [(position[value] if is_column else value, is_column)
                             for is_column, value in parts]
            self._message_headers = {position[value]: value for is_column, value in parts
                                     if is_column}

    def _source(self, setting: str) -> _Source:
        """Where a setting's value comes from: one column's position, or a template of
        columns as (position or literal text, is a column) parts."""
        if not is_cell_template(setting):
            return self._position[setting]
        return [(self._position[value] if is_column else value, is_column)
                for is_column, value in parse_template(setting).parts]

    @staticmethod
    def _value(cells: tuple[str, ...], source: _Source) -> str:
        """A column's cell, or a template filled in with spaces collapsed and trimmed
        (``"{First Name} {Last Name}"`` with no last name is the first name alone; with no
        part at all, empty)."""
        if isinstance(source, int):
            return cells[source]
        if not any(cells[part].strip() for part, is_column in source  # type: ignore[index]
                   if is_column):
            return ""  # every part empty: no value, not the template's punctuation
        return " ".join("".join(cells[part] if is_column else part  # type: ignore[index,misc]
                                for part, is_column in source).split())

    def _metadata(self, mapping: MetadataMap) -> list[tuple[str, Constant | _Source]]:
        return [
            (key, source if isinstance(source, Constant) else self._source(source))
            for key, source in mapping.items()
        ]

    def _fill(self, cells: tuple[str, ...],
              fields: list[tuple[str, Constant | _Source]]) -> dict[str, str]:
        values = {}
        for key, source in fields:
            value = source.value if isinstance(source, Constant) else self._value(
                cells, source)
            if value:
                values[key] = value
        return values

    def _cell_problem(self, cells: tuple[str, ...]) -> tuple[ErrorCode, str] | None:
        """An Excel error value, a formula never calculated, or a cell too long to be data,
        in a cell the config uses: the row is refused, naming the column."""
        for index in self._used:
            cell = cells[index]
            if not cell or (cell[0] not in _SUSPECT_START and len(cell) <= MAX_CELL):
                continue
            column = self._headers[index]
            if cell in EXCEL_ERRORS:
                return (ErrorCode.CELL_ERROR,
                        f"column {column!r} holds the Excel error {cell}: fix the formula")
            if cell == UNCALCULATED:
                return (ErrorCode.CELL_ERROR,
                        (f"column {column!r} holds a formula without a value: open the file in"
                         " Excel and save it again"))
            if len(cell) > MAX_CELL:
                return (ErrorCode.CELL_TOO_LONG,
                        (f"column {column!r} holds {len(cell):,} characters, more than"
                         f" {MAX_CELL // 1024} KiB: not data anyone meant to send"))
        return None

    def map(self, row: SourceRow) -> MappedRow:
        cells = row.cells
        message = None
        empty: tuple[str, ...] = ()
        template_id = self._template_id
        if self._template_column is not None:
            template_id = cells[self._template_column] or template_id
        if self._variable is not None:
            message = cells[self._variable]
        if self._message is not None:
            pieces: list[str] = []
            for source, is_column in self._message:
                pieces.append(cells[source] if is_column else source)  # type: ignore[index,arg-type]
            message = "".join(pieces)
            empty = tuple(
                header for index, header in self._message_headers.items() if not cells[index]
            )
        return MappedRow(
            number=row.number,
            phone=cells[self._phone],
            contact_name="" if self._name is None else self._value(cells, self._name),
            email="" if self._email is None else cells[self._email],
            stage="" if self._stage is None else cells[self._stage],
            contact_metadata=self._fill(cells, self._contact),
            ticket_metadata=self._fill(cells, self._ticket),
            integration_data=self._fill(cells, self._integration),
            message=message,
            empty_placeholders=empty,
            template_id=template_id,
            country="" if self._country is None else cells[self._country],
            variables=None if self._variables is None else tuple(
                (name, source if isinstance(source, str) else cells[source])
                for name, source in self._variables),
            cell_problem=self._cell_problem(cells),
            phones=tuple((header, cells[index]) for header, index in self._phones),
            emails=tuple((header, cells[index]) for header, index in self._emails),
        )
