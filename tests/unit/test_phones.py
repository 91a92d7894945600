"""``registry.phones``: the accepted forms, the rejected ones, and the fast path against phonenumbers."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import phones
from registry.phones import InvalidPhone, is_clean_cn_mobile, parse_slow, time_zone_of, to_e164

CN = "+8613100000042"  # fake, in the shape of a Chinese mobile


@pytest.mark.parametrize(
    ("text", "e164"),
    [
        ("13100000042", CN),
        ("+8613100000042", CN),
        ("008613100000042", CN),
        ("0086 131 0000 0042", CN),
        ("+86 131-0000-0042", CN),
        ("(+86) 131 0000 0042", CN),
        ("131-0000-0042", CN),
        ("  13100000042  ", CN),
        ("１３１００００００４２", CN),  # full-width digits
        ("＋８６　１３１　００００　００４２", CN),  # full-width plus and ideographic spaces
        ("010 1234 5678", "+861012345678"),  # a Beijing fixed line
        ("+1 201-555-0123", "+12015550123"),  # phonenumbers' US example
        ("+44 7400 123456", "+447400123456"),  # GB example mobile
        ("+81 90-1234-5678", "+819012345678"),  # JP example mobile
        ("+49 151 23456789", "+4915123456789"),  # DE example mobile
    ],
)
def test_accepted_forms_come_out_as_e164(text: str, e164: str) -> None:
    assert to_e164(text) == e164
    assert parse_slow(text, "CN") == e164


def test_the_default_region_decides_numbers_without_a_country_code() -> None:
    assert to_e164("(201) 555-0123", "US") == "+12015550123"
    assert to_e164("+8613100000042", "US") == CN
    # The same digits under the default region CN are a Guangzhou (020) fixed line.
    assert to_e164("(201) 555-0123", "CN") == "+862015550123"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "None",
        "null",
        "call me",
        "1310000004x",
        "1-800-FLOWERS",  # a keypad spelling would become somebody's real number
        "131 0000 FLOW",
        "1310000004",  # too short
        "131000000421",  # too long
        "+86 131 0000 0042 1234",
        "+8613100000042" + "0" * 60,
        "1" * 10_000,
        " " * 200 + "13100000042",
        "+999 1234 5678",  # no such country code
        "12345",
        "0",
        "+",
        "--",
    ],
)
def test_rejected_inputs_raise_invalid_phone(text: str) -> None:
    with pytest.raises(InvalidPhone) as info:
        to_e164(text)
    assert info.value.code == "invalid_phone"


@pytest.mark.parametrize("value", [None, 13100000042, 8.6e12, b"13100000042", ["13100000042"], {}])
def test_non_strings_raise_invalid_phone(value: object) -> None:
    with pytest.raises(InvalidPhone):
        to_e164(value)  # type: ignore[arg-type]


def test_the_fast_path_takes_clean_mobiles_only() -> None:
    assert is_clean_cn_mobile("13100000042")
    assert is_clean_cn_mobile("+8613100000042")
    assert not is_clean_cn_mobile("131 0000 0042")
    assert not is_clean_cn_mobile("008613100000042")
    assert not is_clean_cn_mobile("12000000042")  # not a mobile prefix: phonenumbers decides


def agree(text: str, region: str = "CN") -> None:
    """Assert the fast and the slow path give the same number, or both reject."""
    try:
        slow: str | None = parse_slow(text, region)
    except InvalidPhone:
        slow = None
    try:
        fast: str | None = to_e164(text, region)
    except InvalidPhone:
        fast = None
    assert fast == slow, text
    if slow is not None:
        # and both agree with phonenumbers itself
        number = phonenumbers.parse(text, region)
        assert phonenumbers.is_valid_number(number)
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == slow


digits = st.text(alphabet="0123456789", min_size=10, max_size=10)
cn_mobile_shaped = st.builds(
    lambda prefix, first, rest: f"{prefix}{first}{rest}",
    st.sampled_from(["", "+86", "86", "0086", "+", "+85", "+1"]),
    st.sampled_from(["1", "0", "2", "9"]),
    digits,
)


# Digits the slow path normalizes: full-width (NFKC) and Arabic-Indic (phonenumbers).
OTHER_DIGITS = (
    [str(d) for d in range(10)],
    [chr(0xFF10 + d) for d in range(10)],
    [chr(0x0660 + d) for d in range(10)],
)


@st.composite
def mixed_digits(draw: st.DrawFn) -> str:
    """Return a valid-looking mobile with a few digits written in another script."""
    text = draw(st.sampled_from(["", "+86"])) + "1" + draw(st.sampled_from("3456789"))
    text += draw(st.text(alphabet="0123456789", min_size=9, max_size=9))
    script = draw(st.sampled_from(OTHER_DIGITS[1:]))
    changed = draw(st.sets(st.integers(0, len(text) - 1), min_size=1, max_size=3))
    return "".join(
        script[int(ch)] if i in changed and ch.isdigit() else ch for i, ch in enumerate(text)
    )


@pytest.mark.parametrize(
    "text", ["13１00000042", "1310000004２", "+86131000000٤٢", "+8613100000042"]
)
def test_digits_of_other_scripts_come_out_as_ascii(text: str) -> None:
    assert to_e164(text) == CN


@settings(max_examples=100, deadline=None)
@given(text=mixed_digits())
def test_the_fast_path_agrees_with_phonenumbers_on_digits_of_other_scripts(text: str) -> None:
    agree(text)
    try:
        result = to_e164(text)
    except InvalidPhone:
        return
    assert result.isascii()


@settings(max_examples=300, deadline=None)
@given(text=cn_mobile_shaped)
def test_the_fast_path_agrees_with_phonenumbers_on_mobile_shaped_strings(text: str) -> None:
    agree(text)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="+0123456789", max_size=18))
def test_the_fast_path_agrees_with_phonenumbers_on_any_digit_string(text: str) -> None:
    agree(text)


@pytest.mark.parametrize("prefix", [f"1{a}{b}" for a in range(10) for b in range(10)])
def test_the_fast_path_agrees_on_every_mobile_prefix(prefix: str) -> None:
    for number in (prefix + "00000042", prefix + "99999999", prefix + "12345678"):
        agree(number)
        agree("+86" + number)


def test_time_zone_of_a_single_zone_country() -> None:
    assert time_zone_of(CN) == "Asia/Shanghai"
    assert time_zone_of("+442079460000") == "Europe/London"


def test_time_zone_of_a_us_number_follows_its_area_code() -> None:
    assert time_zone_of("+12015550123") == "America/New_York"  # New Jersey
    assert time_zone_of("+14155550123") == "America/Los_Angeles"  # San Francisco


def test_time_zone_of_a_number_spanning_zones_is_unknown() -> None:
    # Russian and Australian mobiles are not tied to one zone: the registry's zone applies.
    assert time_zone_of("+79123456789") is None
    assert time_zone_of("+61412345678") is None


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("+8613100001111", "+8613100001111"),  # the fast path
        ("131 0000 1111", "+8613100001111"),
        ("0086 21 6000 0001", "+862160000001"),
        ("(021) 6000-0001", "+862160000001"),
        ("400 800 1234", "+864008001234"),
        ("１０６９００１", "1069001"),  # full-width digits, NFKC
        ("1069 0123 45", "1069012345"),  # an SMS port, though phonenumbers reads a Beijing line
        ("95588", "95588"),  # a short service number: digits
        ("+1 202-555-0123", "+12025550123"),
    ],
)
def test_to_address_normalises_numbers_and_keeps_ports(raw: str, stored: str) -> None:
    assert phones.to_address(raw) == stored


@pytest.mark.parametrize("raw", ["", "hello", "+86", "12", "+86 1", "1" * 25, "10690001x", 5])
def test_to_address_refuses_what_is_no_address(raw: object) -> None:
    with pytest.raises(phones.InvalidPhone):
        phones.to_address(raw)  # type: ignore[arg-type]
