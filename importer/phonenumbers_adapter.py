"""Every use of phonenumbers' internals, in one place: its per-country metadata (which
:mod:`importer.numbering` compiles into a fast path), its length constants, and its locale
names for countries.

phonenumbers is pinned below its next major version in pyproject.toml; :func:`check_shape`
(run by ``tests/test_adapters.py``) fails loudly, naming this module, if a release moves
what is used here.
"""

from __future__ import annotations

from phonenumbers import PhoneMetadata
from phonenumbers import phonenumberutil as _util

# The library's own limits: an input longer than MAX_INPUT is refused, and a national
# number has MIN_NATIONAL to MAX_NATIONAL digits (read from it, so they move with it).
MAX_INPUT: int = _util._MAX_INPUT_STRING_LENGTH
MIN_NATIONAL: int = _util._MIN_LENGTH_FOR_NSN
MAX_NATIONAL: int = _util._MAX_LENGTH_FOR_NSN

# The attributes of a region's metadata that numbering.py reads.
METADATA_FIELDS = (
    "country_code", "general_desc", "fixed_line", "mobile", "premium_rate", "toll_free",
    "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
    "same_mobile_and_fixed_line_pattern", "national_prefix_for_parsing",
    "national_prefix_transform_rule", "international_prefix", "leading_digits")
DESC_FIELDS = ("national_number_pattern", "possible_length", "possible_length_local_only")


def region_metadata(region: str) -> PhoneMetadata | None:
    """A region's numbering plan as the library holds it (None: no such region)."""
    return PhoneMetadata.metadata_for_region(region, None)


def metadata_for(country_code: int, region: str) -> PhoneMetadata | None:
    """The numbering plan of a region, or of a non-geographic calling code."""
    return PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)


def region_display_name(region: str, language: str) -> str:
    """The country's name in ``language`` from the library's geocoder data ("" if none)."""
    from phonenumbers import geocoder

    return geocoder._region_display_name(region, language, None, None) or ""


def check_shape() -> None:
    """Raise, naming this adapter, if phonenumbers no longer has what is used here."""
    missing = [name for name in ("_MAX_INPUT_STRING_LENGTH", "_MIN_LENGTH_FOR_NSN",
                                 "_MAX_LENGTH_FOR_NSN") if not hasattr(_util, name)]
    metadata = region_metadata("CL")
    if metadata is None:
        missing.append("PhoneMetadata.metadata_for_region('CL')")
    else:
        missing += [f"PhoneMetadata.{name}" for name in METADATA_FIELDS
                    if not hasattr(metadata, name)]
        missing += [f"PhoneNumberDesc.{name}" for name in DESC_FIELDS
                    if not hasattr(metadata.general_desc, name)]
    from phonenumbers import geocoder

    if not hasattr(geocoder, "_region_display_name"):
        missing.append("geocoder._region_display_name")
    elif region_display_name("CL", "es") != "Chile":
        missing.append("geocoder._region_display_name(region, language, script, country)")
    if missing:
        raise RuntimeError(f"importer/phonenumbers_adapter.py: this phonenumbers release no"
                           f" longer has {', '.join(missing)}; the phone reader must be"
                           " adapted to it")
