"""The one place phone numbers are parsed: any accepted form in, E.164 out (SPEC §2)."""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from re import Pattern
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumberFormat

from registry.errors import InvalidPhoneError

MAX_INPUT = 64

# The one error type for a number the registry does not accept (SPEC §2's
# ``invalid_phone``): parsing raises the API's own error, naming the field
# ``phone``; a caller reading another field re-raises it with that field's name.
InvalidPhone = InvalidPhoneError


@lru_cache(maxsize=32)
def _mobile_pattern(region: str) -> Pattern[str] | None:
    """Return the metadata's own mobile pattern for a region, if it has one.

    The fast path below accepts exactly what this pattern and the general
    pattern accept, which is how ``phonenumbers.is_valid_number`` decides that a
    number is a valid mobile number, so the two cannot disagree.
    """
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if meta is None or meta.mobile is None or meta.mobile.national_number_pattern is None:
        return None
    if meta.general_desc is None:
        return None
    general = meta.general_desc.national_number_pattern
    mobile = meta.mobile.national_number_pattern
    return re.compile(f"(?=(?:{general})$)(?:{mobile})", re.ASCII)


@lru_cache(maxsize=1)
def _clean_cn_mobile() -> Pattern[str] | None:
    """Return what ``_fast`` accepts as one pattern, matched once per number.

    An optional ``+86``, then exactly eleven digits starting with 1
    (``1\\d{10}``, ASCII digits only), which the metadata's patterns accept as a mobile
    number (``_mobile_pattern``, matched from the national number's start as
    before). The ``\\Z`` look-ahead pins the eleven digits to the end, so the
    metadata's ``$`` sees the national number's end, as when it was matched
    on the national number alone.
    """
    inner = _mobile_pattern("CN")
    if inner is None:
        return None
    # re.ASCII: ``\d`` would otherwise match full-width and other scripts' digits, which
    # the fast path would copy into the "E.164" result instead of normalizing them.
    return re.compile(rf"(?:\+86)?(?=1\d{{10}}\Z)(?:{inner.pattern})", re.ASCII)


def _fast(text: str, region: str) -> str | None:
    """Return E.164 for an already-clean Chinese mobile number, else None (use the slow path).

    Clean input is the common case for dialers and batches; parsing it with
    ``phonenumbers`` costs ~70 µs, this under 1 µs (benchmarks/phones.py).
    """
    if region != "CN":
        return None
    pattern = _clean_cn_mobile()
    if pattern is None or pattern.match(text) is None:
        return None
    return text if len(text) == 14 else "+86" + text


def _none(text: str) -> None:
    return None


def fast_path(region: str) -> Callable[[str], str | None]:
    """Return ``_fast`` for one region, for many numbers (a batch): E.164, or None for the slow path.

    The same answers as ``_fast(text, region)``, with the region's pattern looked up once.
    """
    pattern = _clean_cn_mobile() if region == "CN" else None
    if pattern is None:
        return _none
    match = pattern.match

    def fast(text: str) -> str | None:
        if match(text) is None:
            return None
        return text if len(text) == 14 else "+86" + text

    return fast


def parse_slow(text: str, region: str) -> str:
    """Parse with ``phonenumbers`` after NFKC; raise InvalidPhone."""
    if not isinstance(text, str):
        raise InvalidPhone("a phone number must be a string", field="phone")
    if len(text) > MAX_INPUT:
        raise InvalidPhone("the phone number is too long", field="phone")
    normalized = unicodedata.normalize("NFKC", text).strip()
    if not normalized:
        raise InvalidPhone("the phone number is empty", field="phone")
    try:
        number = phonenumbers.parse(normalized, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {text!r}", field="phone") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"not a valid phone number: {text!r}", field="phone")
    # phonenumbers reads letters as a keypad spelling ("1-800-FLOWERS"), which turns
    # text into somebody's real number; consent must name the number that was given.
    if str(number.national_number) not in phonenumbers.normalize_digits_only(normalized):
        raise InvalidPhone(f"letters are not a phone number: {text!r}", field="phone")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def to_e164(text: str, region: str = "CN") -> str:
    """Return the E.164 form of ``text`` or raise InvalidPhone."""
    if isinstance(text, str):
        fast = _fast(text, region)
        if fast is not None:
            return fast
    return parse_slow(text, region)


def is_clean_cn_mobile(text: str) -> bool:
    """Tell whether the fast path handles this text (for tests and benchmarks)."""
    return _fast(text, "CN") is not None


def time_zone_of(e164: str) -> str | None:
    """Return the number's time zone when the metadata names exactly one."""
    zone = _country_zone(_country_code(e164))
    return zone if zone is not None else _time_zone_full(e164)


def zone_of(e164: str, default: str) -> ZoneInfo:
    """Return the number's local zone (SPEC §3 step 8), ``default`` where the metadata names none."""
    name = time_zone_of(e164) or default
    zone = _ZONES.get(name)
    if zone is None:
        zone = _ZONES[name] = ZoneInfo(name)
    return zone


_ZONES: dict[str, ZoneInfo] = {}


def zone_finder(default: str) -> Callable[[str], ZoneInfo]:
    """Return ``zone_of`` for many numbers (a batch), remembering single-zone countries' zones.

    A number's country code is read from its first four characters
    (``_country_code``); where that country has one zone, every number
    starting with them has it, and the zone is looked up once per prefix.
    Other numbers are looked up one by one, as ``zone_of`` does.
    """
    by_prefix: dict[str, ZoneInfo | None] = {}

    def find(e164: str) -> ZoneInfo:
        prefix = e164[:4]
        try:
            zone = by_prefix[prefix]
        except KeyError:
            name = _country_zone(_country_code(e164))
            zone = by_prefix[prefix] = zone_of(e164, default) if name is not None else None
        return zone if zone is not None else zone_of(e164, default)

    return find


def _country_code(e164: str) -> int:
    for size in (1, 2, 3):
        code = int(e164[1 : 1 + size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code
    return 0


@lru_cache(maxsize=512)
def _country_zone(country_code: int) -> str | None:
    """Return the zone of a country code whose every number has one zone (CN, ...).

    Looking the zone up per number costs a parse; for single-zone countries the
    answer is the same for all of them, so it is computed once.
    """
    from phonenumbers import timezone as pn_timezone

    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    if len(regions) != 1:
        return None
    example = phonenumbers.example_number(regions[0])
    if example is None:
        return None
    zones = pn_timezone.time_zones_for_number(example)
    prefix_zones = {
        z
        for key, value in pn_timezone.TIMEZONE_DATA.items()  # type: ignore[attr-defined]
        if key.startswith(str(country_code))
        for z in value
    }
    if len(zones) == 1 and prefix_zones <= set(zones):
        return str(zones[0])
    return None


@lru_cache(maxsize=65536)
def _time_zone_full(e164: str) -> str | None:
    from phonenumbers import timezone as pn_timezone

    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    zones = pn_timezone.time_zones_for_number(number)
    if len(zones) == 1 and zones[0] != "Etc/Unknown":
        return str(zones[0])
    return None


# SMS ports (106…) and short service numbers are kept as their digits: 106
# numbers are SMS ports in China's numbering plan even where ``phonenumbers``
# would read ten of their digits as a Beijing landline written without its 0.
_PORT = re.compile(r"106[0-9]{1,17}", re.ASCII)
_DIGITS = re.compile(r"[0-9]{3,20}", re.ASCII)
_SEPARATORS = str.maketrans("", "", " -().")


def to_address(text: str, region: str = "CN") -> str:
    """Return a calling address as stored: E.164 for a phone number, digits for a port or short code.

    Any form ``to_e164`` accepts becomes E.164; digits that are an SMS port
    (106…) or that no numbering plan reads as a phone number (95588, 12345)
    stay digits. Anything else raises InvalidPhone.
    """
    if not isinstance(text, str):
        raise InvalidPhone("an address must be a string")
    fast = _fast(text, region)
    if fast is not None:
        return fast
    if len(text) > MAX_INPUT:
        raise InvalidPhone("the address is too long")
    cleaned = unicodedata.normalize("NFKC", text).translate(_SEPARATORS)
    if _PORT.fullmatch(cleaned):
        return cleaned
    try:
        return parse_slow(cleaned, region)
    except InvalidPhone:
        if _DIGITS.fullmatch(cleaned):
            return cleaned
        raise InvalidPhone(f"not a calling number, SMS port or short code: {text!r}") from None


# A calling address as senders register it: a number, or an SMS port / short code in digits.
_ADDRESS_DIGITS = re.compile(r"\+?[0-9]{3,20}", re.ASCII)
_ADDRESS_PUNCTUATION = re.compile(r"[\s\-().]")


def calling_number_forms(text: str, region: str = "CN") -> tuple[str, ...]:
    """Return the forms a calling number may be registered under, E.164 first; raise InvalidPhone.

    A calling address is a number (any form ``phonenumbers`` accepts, to E.164)
    or an SMS port, a 95/96 service number or a short code, which
    ``phonenumbers`` does not know: those are kept as their digits. Senders
    registered addresses as typed (without spaces and dashes), so both forms
    are candidates: ``021 6000 0001`` finds ``+862160000001``, and
    ``1069 0001`` finds ``10690001``.
    """
    if not isinstance(text, str):
        raise InvalidPhone("a calling number must be a string")
    if len(text) > MAX_INPUT:
        raise InvalidPhone("the calling number is too long")
    normalized = unicodedata.normalize("NFKC", text).strip()
    forms: list[str] = []
    with contextlib.suppress(InvalidPhone):  # not a number phonenumbers knows: maybe a port
        forms.append(to_e164(normalized, region))
    digits = _ADDRESS_PUNCTUATION.sub("", normalized)
    if _ADDRESS_DIGITS.fullmatch(digits) and digits not in forms:
        forms.append(digits)
    if not forms:
        raise InvalidPhone(f"not a calling number or SMS port: {text!r}")
    return tuple(forms)
