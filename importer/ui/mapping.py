"""The mapping step's form, and the TOML config it is: exactly what the CLI reads.

A :class:`Mapping` is read from a config's TOML (init's guesses, or the one saved before) and
from the form, and written back as TOML; ``load_config`` then checks it as it checks any
config, so the page and the CLI can never disagree on what a setting means.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field

_TEMPLATE_PART = re.compile(r"\{([^{}]+)\}")


@dataclass
class Mapping:
    """What the form edits; everything else in a config keeps its default."""

    base_url: str = "https://api.vambe.ai"
    phone_id: str = ""
    rate: float = 5.0
    phone: str = ""
    phone_fallback: str = ""
    name_first: str = ""
    name_last: str = ""
    email: str = ""
    stage: str = ""
    stage_id: str = ""
    country: str = ""
    default_country: str = ""
    contact_metadata: dict[str, str] = field(default_factory=dict)
    ticket_metadata: dict[str, str] = field(default_factory=dict)
    message: str = "none"  # none | text | template
    content: str = ""
    template_id: str = ""
    variable: str = ""
    exclude: str = ""  # an opt-out file, relative to the config's folder
    hours: str = ""  # [schedule] hours; empty: no window
    timezone: str = ""

    @classmethod
    def from_toml(cls, text: str) -> Mapping:
        data = tomllib.loads(text)
        api, columns = data.get("api", {}), data.get("columns", {})
        defaults, message = data.get("defaults", {}), data.get("message") or {}
        phones = columns.get("phone", "")
        phones = phones if isinstance(phones, list) else [phones]
        name = columns.get("contact_name") or ""
        parts = _TEMPLATE_PART.findall(name) or ([name] if name else [])
        email = columns.get("email") or ""
        exclude = data.get("dedupe", {}).get("exclude") or []
        schedule = data.get("schedule") or {}
        return cls(
            base_url=api.get("base_url", cls.base_url), phone_id=str(api.get("phone_id", "")),
            rate=float(api.get("rate_limit_per_second", 5)),
            phone=phones[0] if phones else "", phone_fallback=phones[1] if len(phones) > 1 else "",
            name_first=parts[0] if parts else "", name_last=parts[1] if len(parts) > 1 else "",
            email=email[0] if isinstance(email, list) else email,
            stage=columns.get("stage") or "", stage_id=defaults.get("stage_id", ""),
            country=columns.get("country") or "", default_country=defaults.get("country", ""),
            contact_metadata=_columns_only(data.get("contact_metadata", {})),
            ticket_metadata=_columns_only(data.get("ticket_metadata", {})),
            message=("template" if message.get("template_id") else
                     "text" if message.get("content") else "none"),
            content=message.get("content", ""), template_id=message.get("template_id", ""),
            variable=message.get("variable", ""),
            exclude=exclude[0] if exclude else "",
            hours=schedule.get("hours", ""), timezone=schedule.get("timezone", ""))

    @classmethod
    def from_form(cls, form: dict[str, str]) -> Mapping:
        def text(name: str) -> str:
            return form.get(name, "").strip()

        try:
            rate = float(text("rate") or 5)
        except ValueError:
            rate = 0.0  # load_config names the setting
        return cls(
            base_url=text("base_url") or cls.base_url, phone_id=text("phone_id"), rate=rate,
            phone=text("phone"), phone_fallback=text("phone_fallback"),
            name_first=text("name_first"), name_last=text("name_last"), email=text("email"),
            stage=text("stage"), stage_id=text("stage_id"), country=text("country"),
            default_country=text("default_country").upper(),
            contact_metadata=_pairs(form.get("contact_metadata", "")),
            ticket_metadata=_pairs(form.get("ticket_metadata", "")),
            message=text("message") or "none", content=form.get("content", "").strip(),
            template_id=text("template_id"), variable=text("variable"),
            exclude=text("exclude"), hours=text("hours"), timezone=text("timezone"))

    @property
    def contact_name(self) -> str:
        parts = [part for part in (self.name_first, self.name_last) if part]
        if len(parts) == 1:
            return parts[0]
        return " ".join(f"{{{part}}}" for part in parts)

    def metadata_text(self, section: str) -> str:
        return "\n".join(f"{key} = {value}" for key, value in getattr(self, section).items())


def _columns_only(section: dict) -> dict[str, str]:
    return {key: value for key, value in section.items() if isinstance(value, str)}


def _pairs(text: str) -> dict[str, str]:
    """``key = Column`` lines (blank lines and lines without ``=`` are left out)."""
    pairs = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and value.strip():
            pairs[key.strip()] = value.strip()
    return pairs


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string is JSON's


def config_text(mapping: Mapping) -> str:
    """The config, as TOML the CLI reads (``vambe-import run FILE --config`` this file)."""
    lines = ["# Written by vambe-import ui; the CLI reads it as is.", "", "[api]",
             f"base_url = {_q(mapping.base_url)}", f"phone_id = {_q(mapping.phone_id)}",
             f"rate_limit_per_second = {mapping.rate:g}", "", "[columns]"]
    phones = [phone for phone in (mapping.phone, mapping.phone_fallback) if phone]
    if len(phones) > 1:
        lines.append(f"phone = [{', '.join(_q(phone) for phone in phones)}]")
    else:
        lines.append(f"phone = {_q(phones[0] if phones else '')}")
    for name, value in (("contact_name", mapping.contact_name), ("email", mapping.email),
                        ("stage", mapping.stage), ("country", mapping.country)):
        if value:
            lines.append(f"{name} = {_q(value)}")
    defaults = [(name, value) for name, value in (("stage_id", mapping.stage_id),
                                                  ("country", mapping.default_country))
                if value]
    if defaults:
        lines += ["", "[defaults]"] + [f"{name} = {_q(value)}" for name, value in defaults]
    for section in ("contact_metadata", "ticket_metadata"):
        values = getattr(mapping, section)
        if values:
            lines += ["", f"[{section}]"] + [f"{_q(key)} = {_q(column)}"
                                               for key, column in values.items()]
    if mapping.message == "text" and mapping.content:
        lines += ["", "[message]", f"content = {_q(mapping.content)}"]
    elif mapping.message == "template" and mapping.template_id:
        lines += ["", "[message]", f"template_id = {_q(mapping.template_id)}"]
        if mapping.variable:
            lines.append(f"variable = {_q(mapping.variable)}")
    if mapping.exclude:
        lines += ["", "[dedupe]", f"exclude = [{_q(mapping.exclude)}]"]
    if mapping.hours:
        lines += ["", "[schedule]", f"hours = {_q(mapping.hours)}",
                  f"timezone = {_q(mapping.timezone or 'UTC')}"]
    return "\n".join(lines) + "\n"
