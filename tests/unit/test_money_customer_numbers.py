"""Money, customer identities and order numbers: the small rules intake relies on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.customers.model import normalise_email, normalise_phone
from orchestrator.order_record.numbers import (
    ALPHABET,
    PATTERN,
    new_order_number,
    normalise_order_number,
)
from orchestrator.platform import money
from orchestrator.platform.errors import InvalidRequest
from orchestrator.platform.money import ISO_4217, check_currency

# --- money -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code, expected", [("EUR", "EUR"), ("eur", "EUR"), ("Usd", "USD"), ("JPY", "JPY")])
def test_currency_codes_are_upper_cased_iso_4217(code: str, expected: str) -> None:
    assert check_currency(code) == expected


@pytest.mark.parametrize("code", ["EUE", "XXX", "", "EURO", "E U", "BTC"])
def test_an_unknown_currency_is_invalid_and_names_the_field(code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_currency(code)
    assert caught.value.field == "currency"
    assert repr(code) in caught.value.detail


def test_the_currency_list_is_three_letter_upper_case_codes() -> None:
    assert len(ISO_4217) > 150
    assert all(len(c) == 3 and c.isalpha() and c.isupper() for c in ISO_4217)
    assert {"EUR", "USD", "GBP", "CHF", "SEK", "PLN"} <= ISO_4217


def test_a_subtotal_is_the_sum_of_line_totals_and_may_not_overflow_an_amount_column() -> None:
    assert money.check_subtotal([(2, 500), (1, 250)]) == 1250
    assert money.check_subtotal([]) == 0
    assert money.check_subtotal([(1, money.MAX_SUBTOTAL)]) == money.MAX_SUBTOTAL
    with pytest.raises(InvalidRequest) as caught:
        money.check_subtotal([(100_000, money.MAX_AMOUNT)] * 200)
    assert caught.value.field == "lines"


# --- customer email --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Jane.Doe@Example.COM", "jane.doe@example.com"),
        ("  jane@example.com \n", "jane@example.com"),
        ("JANE+shop@GMAIL.com", "jane+shop@gmail.com"),
        ("Jürgen@Bücher.de", "jürgen@bücher.de"),
    ],
)
def test_emails_are_trimmed_and_lower_cased(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


def test_two_spellings_of_one_address_normalise_to_the_same_identity() -> None:
    assert normalise_email("Jane@Example.com") == normalise_email(" jane@EXAMPLE.COM")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "jane",
        "jane@",
        "@example.com",
        "jane@@example.com",
        "jane@example",
        "ja ne@example.com",
    ],
)
def test_an_invalid_email_is_refused_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        normalise_email(raw)
    assert caught.value.field == "customer.email"
    assert caught.value.detail.startswith("invalid email")


# --- customer phone --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, region, expected",
    [
        ("+1 415 555 0100", "DE", "+14155550100"),
        ("(415) 555-0100", "US", "+14155550100"),
        ("030 1234567", "DE", "+49301234567"),
        ("0171 1234567", "DE", "+491711234567"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("0044 20 7946 0958", "DE", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
    ],
)
def test_phones_are_normalised_to_e164_reading_local_numbers_in_the_default_region(
    raw: str, region: str, expected: str
) -> None:
    assert normalise_phone(raw, region) == expected


def test_the_same_number_written_two_ways_is_one_identity() -> None:
    assert normalise_phone("+49 30 1234567", "US") == normalise_phone("030/123 45 67", "DE")


def test_an_explicit_country_code_wins_over_the_default_region() -> None:
    assert normalise_phone("+33 1 42 68 53 00", "DE") == "+33142685300"


@pytest.mark.parametrize(
    "raw, region",
    [
        ("abc", "DE"),
        ("", "DE"),
        ("+", "DE"),
        ("030 1234567", "ZZ"),  # no country code and no usable default region
        ("+999 1234567", "DE"),  # no such country code
        ("+49 1", "DE"),  # too short to be a number
        ("+1 415 555 0100 1234 5678", "US"),  # too long
    ],
)
def test_an_invalid_phone_is_refused_naming_the_field(raw: str, region: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        normalise_phone(raw, region)
    assert caught.value.field == "customer.phone"
    assert caught.value.detail.startswith("invalid phone")


@pytest.mark.parametrize("raw, region", [("12", "DE"), ("123", "DE"), ("555 0100", "US"), ("+1 555 0100", "US")])
def test_a_local_number_without_its_area_code_is_not_an_e164_identity(raw: str, region: str) -> None:
    # "+4912" would be no one's number, and every customer who typed "12" would be merged.
    with pytest.raises(InvalidRequest) as caught:
        normalise_phone(raw, region)
    assert caught.value.field == "customer.phone"


# --- order numbers ---------------------------------------------------------------------------


def test_new_order_numbers_have_the_short_human_format() -> None:
    for _ in range(500):
        number = new_order_number()
        assert PATTERN.fullmatch(number), number
        assert len(number) == 8 and number[3] == "-"
        assert set(number.replace("-", "")) <= set(ALPHABET)


def test_order_numbers_never_use_letters_that_are_misread() -> None:
    assert not set("ILOU") & set(ALPHABET)
    assert len(ALPHABET) == 32
    numbers = {new_order_number() for _ in range(2000)}
    assert len(numbers) == 2000  # 32**7 possibilities
    assert not set("".join(numbers)) & set("ILOU")


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("R7K-2Q9M", "R7K-2Q9M"),
        ("r7k-2q9m", "R7K-2Q9M"),
        ("  r7k-2q9m ", "R7K-2Q9M"),
        ("R7K2Q9M", "R7K-2Q9M"),
        ("r7k2q9m", "R7K-2Q9M"),
        ("RO1-IL00", "R01-1100"),
        ("ro1-il00", "R01-1100"),
        ("A0O-1IL5", "A00-1115"),
        ("oooIIII", "000-1111"),
    ],
)
def test_order_numbers_read_out_are_forgiven_case_and_misread_letters(typed: str, expected: str) -> None:
    assert normalise_order_number(typed) == expected
    assert PATTERN.fullmatch(normalise_order_number(typed))


@pytest.mark.parametrize("typed", ["", "R7K-2Q9", "R7K-2Q9MM", "R7K_2Q9M", "R7K-2Q9U"])
def test_text_that_is_not_an_order_number_does_not_become_one(typed: str) -> None:
    assert not PATTERN.fullmatch(normalise_order_number(typed))


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=ALPHABET, min_size=7, max_size=7), st.booleans())
def test_property_normalising_a_real_number_in_any_case_gives_it_back(chars: str, dashed: bool) -> None:
    number = f"{chars[:3]}-{chars[3:]}"
    typed = (number if dashed else chars).lower()
    assert normalise_order_number(typed) == number
    assert normalise_order_number(number) == number
