"""Map a spreadsheet row to the API's fields, as the config says, before any checking.

Column positions are looked up once per file, so mapping a row is a handful of tuple
indexings. Empty metadata cells are left out (the API would store an empty string), and
the message is rendered here so the validator can refuse a row whose placeholder is empty.
"""

from __future__ import annotations

from typing import NamedTuple

from .config import Config, Constant, MetadataMap, parse_template
from .read import SourceRow


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


class RowMapper:
    """Turns :class:`SourceRow` into :class:`MappedRow` for one file's headers."""

    def __init__(self, config: Config, headers: tuple[str, ...]) -> None:
        position = {}
        for index, header in enumerate(headers):
            position.setdefault(header, index)  # a repeated header maps to its first column
        self._position = position

        def column(header: str | None) -> int | None:
            return None if header is None else position[header]

        columns = config.columns
        self._phone = position[columns.phone]
        self._name = column(columns.contact_name)
        self._email = column(columns.email)
        self._stage = column(columns.stage)
        self._contact = self._metadata(config.contact_metadata)
        self._ticket = self._metadata(config.ticket_metadata)
        self._integration = self._metadata(config.integration_data)
        self._message = None
        message = config.message
        self._template_id = None if message is None else message.template_id
        self._template_column = column(None if message is None else message.template_column)
        self._variable = column(None if message is None else message.variable)
        if message is not None and message.content is not None:
            parts = parse_template(message.content).parts
            self._message = [(position[value] if is_column else value, is_column)
                             for is_column, value in parts]
            self._message_headers = {position[value]: value for is_column, value in parts
                                     if is_column}

    def _metadata(self, mapping: MetadataMap) -> list[tuple[str, int | str]]:
        return [
            (key, source.value if isinstance(source, Constant) else self._position[source])
            for key, source in mapping.items()
        ]

    @staticmethod
    def _fill(cells: tuple[str, ...], fields: list[tuple[str, int | str]]) -> dict[str, str]:
        values = {}
        for key, source in fields:
            value = source if isinstance(source, str) else cells[source]
            if value:
                values[key] = value
        return values

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
            pieces = []
            for source, is_column in self._message:
                pieces.append(cells[source] if is_column else source)
            message = "".join(pieces)
            empty = tuple(
                header for index, header in self._message_headers.items() if not cells[index]
            )
        return MappedRow(
            number=row.number,
            phone=cells[self._phone],
            contact_name="" if self._name is None else cells[self._name],
            email="" if self._email is None else cells[self._email],
            stage="" if self._stage is None else cells[self._stage],
            contact_metadata=self._fill(cells, self._contact),
            ticket_metadata=self._fill(cells, self._ticket),
            integration_data=self._fill(cells, self._integration),
            message=message,
            empty_placeholders=empty,
            template_id=template_id,
        )
