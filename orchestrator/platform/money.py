"""Money is integer minor units plus an ISO 4217 code; never floats."""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.platform.errors import InvalidRequest

# ISO 4217 codes in use; checked so a typo ("EUE") is a 422, not a silent new currency.
ISO_4217 = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWL",
    ]
)


def check_currency(code: str) -> str:
    upper = code.upper()
    if upper not in ISO_4217:
        raise InvalidRequest(f"unknown ISO 4217 currency {code!r}", field="currency")
    return upper


def line_total(quantity: int, unit_price: int) -> int:
    return quantity * unit_price


# A single price or threshold: a trillion minor units is beyond any retail basket line.
MAX_AMOUNT = 10**12
# Amount columns are 64-bit integers.
MAX_SUBTOTAL = 2**63 - 1


def check_subtotal(lines: Iterable[tuple[int, int]]) -> int:
    """An order's subtotal from (quantity, unit price) pairs; a 422, not a database error, when
    it is more than an amount column holds."""
    subtotal = sum(line_total(quantity, unit_price) for quantity, unit_price in lines)
    if subtotal > MAX_SUBTOTAL:
        raise InvalidRequest(f"the order's subtotal exceeds {MAX_SUBTOTAL} minor units", field="lines")
    return subtotal
