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
    """A TOML basic string: JSON's escapes, plus DEL and C1 controls, which TOML forbids
    as they are; a lone surrogate is no text at all."""
    text = json.dumps(value, ensure_ascii=False)
    if any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        raise ValueError(f"{value!r} holds a character that is not text")
    return "".join(f"\\u{ord(char):04x}" if 0x7F <= ord(char) <= 0x9F else char
                   for char in text)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _q(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_q(key)} = {_value(item)}" for key, item in value.items()) + " }"
    raise ValueError(f"cannot write {value!r} in TOML")


def dump_toml(data: dict) -> str:
    """A config as TOML: each section a table, a value inside one inline."""
    lines = ["# Written by vambe-import ui; the CLI reads it as is."]
    for section, values in data.items():
        if not isinstance(values, dict):
            lines.insert(1, f"{_q(section)} = {_value(values)}")
            continue
        lines += ["", f"[{section}]"]
        lines += [f"{_q(key)} = {_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def merged_config(original: str, form: Mapping) -> str:
    """The config ``original`` with what the form changed, and nothing else changed: a
    setting the form does not show (a third phone column, a second opt-out list, a team
    ledger, template columns...) is kept as written."""
    data: dict = tomllib.loads(original) if original.strip() else {}
    before = Mapping.from_toml(original) if original.strip() else Mapping()

    def changed(*names: str) -> bool:
        return any(getattr(form, name) != getattr(before, name) for name in names)

    def put(section: str, key: str, value: object) -> None:
        table = data.setdefault(section, {})
        if value in ("", None, [], {}):
            table.pop(key, None)
        else:
            table[key] = value

    if changed("base_url"):
        put("api", "base_url", form.base_url)
    if changed("phone_id"):
        put("api", "phone_id", form.phone_id)
    if changed("rate"):
        put("api", "rate_limit_per_second", form.rate)
    if changed("phone", "phone_fallback"):
        phones = [phone for phone in (form.phone, form.phone_fallback) if phone]
        put("columns", "phone", phones if len(phones) > 1 else (phones[0] if phones else ""))
    if changed("name_first", "name_last"):
        put("columns", "contact_name", form.contact_name)
    for name in ("email", "stage", "country"):
        if changed(name):
            put("columns", name, getattr(form, name))
    if changed("stage_id"):
        put("defaults", "stage_id", form.stage_id)
    if changed("default_country"):
        put("defaults", "country", form.default_country)
    for section in ("contact_metadata", "ticket_metadata"):
        if changed(section):
            constants = {key: value for key, value in data.get(section, {}).items()
                         if not isinstance(value, str)}
            data[section] = {**constants, **getattr(form, section)}
    if changed("message", "content", "template_id", "variable"):
        kept = {key: value for key, value in (data.get("message") or {}).items()
                if key == "ai_generated"}
        if form.message == "text" and form.content:
            data["message"] = {"content": form.content, **kept}
        elif form.message == "template" and form.template_id:
            data["message"] = {"template_id": form.template_id, **kept}
            if form.variable:
                data["message"]["variable"] = form.variable
        else:
            data.pop("message", None)
    if changed("exclude"):
        exclude = list(data.get("dedupe", {}).get("exclude") or [])
        exclude = [form.exclude] + exclude[1:] if form.exclude else exclude[1:]
        put("dedupe", "exclude", exclude)
    if changed("hours", "timezone"):
        if form.hours:
            put("schedule", "hours", form.hours)
            put("schedule", "timezone", form.timezone or "UTC")
        else:
            data.pop("schedule", None)
    for section in [name for name, values in data.items() if values == {}]:
        data.pop(section)
    return dump_toml(data)
