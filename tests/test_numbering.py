"""The fast phone path agrees with libphonenumber on every number it answers for.

The corpus: numbers of every Latin American country code, Spain and the US, built from
libphonenumber's example numbers with their last digits drawn at random (so valid and
invalid ones), of every type, written the ways exports write them (spaces, dashes, dots,
parentheses, national prefixes, ``00`` and ``+``, no-break spaces, the country code without
``+``), read with their own country, with another one, and with none.
"""

from __future__ import annotations

import random
from collections import Counter

import phonenumbers
import pytest
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from importer.numbering import Reading, read
from importer.validate import PhoneNormalizer

LATIN_AMERICA = ["AR", "BO", "BR", "CL", "CO", "CR", "CU", "DO", "EC", "SV", "GT", "HT", "HN",
                 "MX", "NI", "PA", "PY", "PE", "PR", "UY", "VE", "BZ", "GY", "SR", "GF", "GP",
                 "MQ", "JM", "TT", "BS", "BB"]
REGIONS = LATIN_AMERICA + ["ES", "US"]
NUMBERS_PER_REGION = 140
# Carrier-selecting international prefixes that are not 00 (each matches its region's
# international_prefix pattern): numbers written after one must go to the library.
CARRIER_IDDS = {"CL": ["1200", "1710"], "PE": ["191100"], "BR": ["0021", "0015"],
                "CO": ["009", "005"], "US": ["011"]}
TYPES = [PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE,
         PhoneNumberType.PREMIUM_RATE, PhoneNumberType.VOIP, PhoneNumberType.SHARED_COST,
         PhoneNumberType.UAN, PhoneNumberType.PERSONAL_NUMBER]


def _national_numbers(region: str, rng: random.Random) -> list[str]:
    """Example numbers of every type with random last digits, some a digit short or long."""
    examples = []
    for kind in TYPES:
        example = phonenumbers.example_number_for_type(region, kind)
        if example is not None:
            examples.append(phonenumbers.national_significant_number(example))
    numbers = []
    for _ in range(NUMBERS_PER_REGION):
        base = rng.choice(examples)
        keep = rng.randint(1, max(1, len(base) - 1))
        number = base[:keep] + "".join(rng.choice("0123456789") for _ in base[keep:])
        roll = rng.random()
        if roll < 0.05:
            number = number[:-1]
        elif roll < 0.10:
            number += rng.choice("0123456789")
        numbers.append(number)
    return numbers


def _forms(region: str, national: str, rng: random.Random) -> list[str]:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    code = str(metadata.country_code)
    prefix = metadata.national_prefix or ""
    idd = metadata.preferred_international_prefix or metadata.international_prefix or "00"
    idd = rng.choice(([idd] if idd.isdigit() else ["00"]) + CARRIER_IDDS.get(region, []))
    cut = rng.randint(1, max(1, len(national) - 1))
    head, tail = national[:cut], national[cut:]
    forms = [
        f"+{code}{national}", f"+{code} {head} {tail}", f"(+{code}) {head}-{tail}",
        f"+{code}-{head}-{tail}", f"+ {code} ({head}) {tail}", f"{idd}{code}{national}",
        f"{idd} {code} {head} {tail}", f"{code}{national}", f"{code} {head} {tail}",
        national, f"{head} {tail}", f"({head}) {tail}", f"{head}.{tail}",
        f"{head}\u00a0{tail}", f"{prefix}{national}", f"{prefix} {head}-{tail}",
        f"({prefix}{head}) {tail}", f"+{code}0{national}",
        national[-7:],  # a local number without its area code ("310 6104" in Trinidad)
    ]
    try:
        number = phonenumbers.parse(f"+{code}{national}")
        written = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        forms.append(written)
        if prefix and written.startswith(prefix):  # "011 15-2345-6789" as "11 15-2345-6789"
            forms.append(written[len(prefix):])
        forms.append(phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL))
    except NumberParseException:
        pass
    return forms


def corpus(regions: list[str], seed: int) -> list[tuple[str, str | None]]:
    """(cell text, country the row is read in) pairs."""
    rng = random.Random(seed)
    pairs = []
    for region in regions:
        for national in _national_numbers(region, rng):
            for text in _forms(region, national, rng):
                roll = rng.random()
                read_in = region if roll < 0.8 else rng.choice(REGIONS)
                pairs.append((text, read_in))
                if text.lstrip("(").startswith("+") and roll < 0.3:
                    pairs.append((text, None))
    return pairs


def library(text: str, region: str | None) -> Reading | None:
    """What libphonenumber makes of it: the valid number, or None."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        return None
    return Reading(phonenumbers.format_number(number, PhoneNumberFormat.E164),
                   number.country_code, kind)


GROUPS = [REGIONS[i::4] for i in range(4)]  # four tests, for the suite's four workers


@pytest.mark.parametrize("regions", GROUPS, ids=["-".join(g[:3]) for g in GROUPS])
def test_fast_path_agrees_with_libphonenumber(regions):
    """Every answer of the fast path is libphonenumber's (E.164, country code and type),
    and it answers for most of the valid numbers, or it would be no fast path."""
    pairs = corpus(regions, seed=len(regions) * 7 + ord(regions[0][0]))
    answered: Counter[str | None] = Counter()
    valid: Counter[str | None] = Counter()
    for text, region in pairs:
        fast = read(text, region)
        expected = library(text, region)
        if fast is not None:
            assert fast == expected, (text, region)
            answered[region] += 1
        valid[region] += expected is not None
    assert len(pairs) >= 25_000
    for region in regions:
        assert answered[region] >= 0.5 * valid[region], (region, answered, valid)


def test_corpus_covers_every_country_and_form():
    """The corpus the equivalence test runs on is as large and as varied as it says."""
    total = sum(len(corpus(group, seed=len(group) * 7 + ord(group[0][0]))) for group in GROUPS)
    assert total >= 100_000
    texts = [text for text, _ in corpus(["CL"], seed=1)]
    for mark in ("+", "00", "(", "-", ".", "\u00a0"):
        assert any(mark in text for text in texts), mark


def test_validity_is_a_known_type():
    """The slow path asks for the type once: valid exactly when the type is known."""
    for text, region in corpus(["MX", "US", "AR", "BR"], seed=3)[::3]:
        try:
            number = phonenumbers.parse(text, region)
        except NumberParseException:
            continue
        assert phonenumbers.is_valid_number(number) == (
            phonenumbers.number_type(number) != PhoneNumberType.UNKNOWN), text


@pytest.mark.parametrize("policy", ["valid", "possible", "mobile"])
def test_normalizer_gives_the_same_verdicts_with_and_without_the_fast_path(policy):
    """Row verdicts (E.164, or code and message) do not depend on which path read the phone,
    including the importer's own rules on top (Mexican 044/045 and +52 1, fixed lines)."""
    pairs = corpus(["MX", "CL", "US", "ES"], seed=5)[::4]
    pairs += [("044 55 1234 5678", "MX"), ("+52 1 55 1234 5678", None),
              ("521 55 1234 5678", "MX"), ("2 2345 6789", "CL"), ("+56 2 2345 6789", None)]
    fast = PhoneNormalizer("CL", policy, fast=True)
    slow = PhoneNormalizer("CL", policy, fast=False)
    fast.classify_lines = slow.classify_lines = True
    for text, region in pairs:
        one, other = fast.normalize(text, region), slow.normalize(text, region)
        if isinstance(one, str) or isinstance(other, str):
            assert one == other, (text, region)
        else:
            assert (one.code, one.message) == (other.code, other.message), (text, region)
    assert fast.fixed_lines == slow.fixed_lines
    letters = fast.normalize("044 55 1234 5678 x", "MX")  # never read as 044 + ten digits
    assert not isinstance(letters, str) and "holds letters" in letters.message
