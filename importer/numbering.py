"""A fast and exact reading of the phone forms exports hold, for the common case.

``phonenumbers.parse`` plus a validity check costs about 40-55 us a number, mostly in
general machinery: Unicode digit folding, RFC 3966 and extension handling, a pattern-cache
lookup for every regular expression, and the type patterns tried once by
``is_valid_number`` and again by ``number_type``. Most cells are ASCII digits with spaces,
dashes, dots and parentheses, with or without ``+``. For those, :func:`read` takes the
same steps as the library with the patterns compiled once, and answers only where the
library provably takes the plain route; anything else (an international or national prefix
to strip, a leading zero, an extension, another character, a number that is not valid)
returns None, and the caller asks the library. ``tests/test_numbering.py`` pins every
answer to the library over more than 100,000 numbers written the ways exports write them.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Final, NamedTuple, overload

from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    SUPPORTED_REGIONS,
    PhoneMetadata,
    PhoneNumberDesc,
    PhoneNumberType,
    region_code_for_country_code,
)

from .phonenumbers_adapter import MAX_INPUT, MAX_NATIONAL, MIN_NATIONAL, region_metadata

# What the library skips between digits and this path can drop as well: ASCII space,
# no-break space, dash, dot and parentheses (it reads any of them as punctuation).
_FORMATTING = str.maketrans("", "", " \u00a0-.()")


class _Missing(Enum):
    """Not looked up yet (None is a looked-up answer): a sentinel the type checker knows."""

    MISSING = 0


_MISSING: Final = _Missing.MISSING


class Reading(NamedTuple):
    """A valid number: its E.164 form, country calling code and libphonenumber type."""

    e164: str
    country_code: int
    kind: int  # a phonenumbers.PhoneNumberType value


class _Desc(NamedTuple):
    """One number description: possible lengths (empty: any) and the national pattern."""

    lengths: frozenset[int]
    pattern: re.Pattern[str] | None

    def fits(self, national: str) -> bool:
        """libphonenumber's ``_is_number_matching_desc``."""
        if self.lengths and len(national) not in self.lengths:
            return False
        return self.pattern is not None and self.pattern.fullmatch(national) is not None


@overload
def _desc(desc: PhoneNumberDesc) -> _Desc: ...
@overload
def _desc(desc: PhoneNumberDesc | None) -> _Desc | None: ...
def _desc(desc: PhoneNumberDesc | None) -> _Desc | None:
    if desc is None:
        return None
    pattern = desc.national_number_pattern
    return _Desc(frozenset(desc.possible_length), re.compile(pattern) if pattern else None)


_SPECIAL_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
                  "pager", "uan", "voicemail")


class _Plan:
    """One region's numbering plan (libphonenumber metadata), compiled once."""

    def __init__(self, metadata: PhoneMetadata) -> None:
        # A region's metadata always has both (the stubs allow None: a PhoneMetadata built empty).
        assert metadata.country_code is not None and metadata.general_desc is not None
        self.country_code = metadata.country_code
        self.code_text = str(metadata.country_code)
        general = metadata.general_desc
        self.general = _desc(general)
        self.general_pattern = self.general.pattern
        self.lengths = tuple(general.possible_length)
        self.local_lengths = tuple(general.possible_length_local_only or ())
        self.special: list[tuple[int, _Desc]] = [
            (getattr(PhoneNumberType, name.upper()), _desc(getattr(metadata, name)))
            for name in _SPECIAL_TYPES if getattr(metadata, name) is not None]
        # One pattern that any special number fits (lengths aside): most numbers are mobiles
        # and fixed lines, and one failed match then stands for the eight tried in order.
        patterns = [desc.pattern.pattern for _, desc in self.special if desc.pattern is not None]
        self.any_special = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        self.fixed_line = _desc(metadata.fixed_line)
        self.mobile = _desc(metadata.mobile)
        self.same_mobile_and_fixed = metadata.same_mobile_and_fixed_line_pattern
        prefix = metadata.national_prefix_for_parsing
        self.national_prefix = re.compile(prefix) if prefix else None
        self.transform = bool(metadata.national_prefix_transform_rule)
        idd = metadata.international_prefix
        self.idd = re.compile(idd) if idd is not None else None
        leading = metadata.leading_digits
        self.leading_digits = re.compile(leading) if leading is not None else None

    def kind(self, national: str) -> int:
        """libphonenumber's ``_number_type_helper``: the first type whose pattern fits."""
        if not self.general.fits(national):
            return PhoneNumberType.UNKNOWN
        if self.any_special is not None and self.any_special.fullmatch(national):
            for kind, desc in self.special:
                if desc.fits(national):
                    return kind
        if self.fixed_line is not None and self.fixed_line.fits(national):
            if self.same_mobile_and_fixed or (self.mobile is not None
                                              and self.mobile.fits(national)):
                return PhoneNumberType.FIXED_LINE_OR_MOBILE
            return PhoneNumberType.FIXED_LINE
        if (not self.same_mobile_and_fixed and self.mobile is not None
                and self.mobile.fits(national)):
            return PhoneNumberType.MOBILE
        return PhoneNumberType.UNKNOWN

    def general_fits(self, national: str) -> bool:
        """libphonenumber's ``_match_national_number`` against the general description
        (the pattern alone, without the lengths)."""
        return (self.general_pattern is not None
                and self.general_pattern.fullmatch(national) is not None)

    def too_long(self, national: str) -> bool:
        """Whether libphonenumber's ``_test_number_length`` says TOO_LONG."""
        return len(national) not in self.local_lengths and self.lengths[-1] < len(national)

    def keeps(self, national: str) -> bool:
        """Whether stripping a national prefix (and carrier code) certainly leaves the number
        as it is; when it might not, the library must do it."""
        if not national or self.national_prefix is None:
            return True
        match = self.national_prefix.match(national)
        if match is None:
            return True
        if match.end() != 0:
            return False
        groups = match.groups()
        return not self.transform or (bool(groups) and groups[-1] is None)


_plans: dict[str, _Plan | None] = {}


def _plan(region: str) -> _Plan | None:
    plan = _plans.get(region, _MISSING)
    if plan is _MISSING:
        metadata = region_metadata(region)
        plan = _plans[region] = None if metadata is None else _Plan(metadata)
    return plan


def _region_of(country_code: int, national: str) -> str | None:
    """libphonenumber's ``region_code_for_number``, for geographic country codes."""
    regions = COUNTRY_CODE_TO_REGION_CODE[country_code]
    if len(regions) == 1:
        return regions[0]
    for region in regions:
        plan = _plan(region)
        if plan is None:
            continue
        if plan.leading_digits is not None:
            if plan.leading_digits.match(national):
                return region
        elif plan.kind(national) != PhoneNumberType.UNKNOWN:
            return region
    return None


def _finish(country_code: int, national: str, prefix_plan: _Plan) -> Reading | None:
    if not MIN_NATIONAL <= len(national) <= MAX_NATIONAL or national[0] == "0":
        return None  # too short/long, or an Italian leading zero: the library's way
    if not prefix_plan.keeps(national):
        return None
    region = _region_of(country_code, national)
    if region is None:
        return None
    plan = _plan(region)
    kind = PhoneNumberType.UNKNOWN if plan is None else plan.kind(national)
    if kind == PhoneNumberType.UNKNOWN:
        return None  # not valid: the library says why
    return Reading(f"+{country_code}{national}", country_code, kind)


_home_plans: dict[int, _Plan | None] = {}


def _home_plan(country_code: int) -> _Plan | None:
    """The plan of a country code's main region; None for non-geographic codes."""
    plan = _home_plans.get(country_code, _MISSING)
    if plan is _MISSING:
        regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
        plan = None if not regions or regions[0] == "001" else _plan(
            region_code_for_country_code(country_code))
        _home_plans[country_code] = plan
    return plan


def read(raw: str, region: str | None) -> Reading | None:
    """The valid number ``raw`` is in ``region``, exactly as ``phonenumbers.parse`` then
    ``number_type`` read it; None when this path cannot be sure (ask the library)."""
    if len(raw) > MAX_INPUT:
        return None
    text = raw.translate(_FORMATTING)
    if text[:1] == "+":
        digits = text[1:]
        if len(digits) <= MIN_NATIONAL or not (digits.isascii() and digits.isdigit()) \
                or digits[0] == "0":
            return None
        for size in (1, 2, 3):
            country_code = int(digits[:size])
            if country_code in COUNTRY_CODE_TO_REGION_CODE:
                break
        else:
            return None
        home = _home_plan(country_code)
        return None if home is None else _finish(country_code, digits[size:], home)
    if region is None or region not in SUPPORTED_REGIONS:
        return None
    plan = _plan(region)
    if plan is None or not plan.lengths or not (text.isascii() and text.isdigit()):
        return None
    if plan.idd is not None and plan.idd.match(text):
        return None  # an international prefix (00, 011, ...) to strip
    if text.startswith(plan.code_text):
        rest = text[len(plan.code_text):]
        if not plan.keeps(rest):
            return None
        if (not plan.general_fits(text) and plan.general_fits(rest)) or plan.too_long(text):
            home = _home_plan(plan.country_code)
            return None if home is None else _finish(plan.country_code, rest, home)
    return _finish(plan.country_code, text, plan)
