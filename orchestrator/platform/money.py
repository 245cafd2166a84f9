"""Money is integer minor units plus an ISO 4217 code; never floats."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.platform.errors import InvalidRequest

# ISO 4217 codes in use, each with its minor-unit exponent (how many digits after the decimal
# point: JPY 0, USD 2, BHD 3); checked so a typo ("EUE") is a 422, not a silent new currency.
# fmt: off
MINOR_UNIT_EXPONENTS: dict[str, int] = {
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "ANG": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2, "AZN": 2,
    "BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2, "BOB": 2, "BRL": 2,
    "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2, "CAD": 2, "CDF": 2, "CHF": 2, "CLP": 0, "CNY": 2,
    "COP": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2, "DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2, "EGP": 2,
    "ERN": 2, "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2, "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2,
    "GNF": 0, "GTQ": 2, "GYD": 2, "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2,
    "IQD": 3, "IRR": 2, "ISK": 0, "JMD": 2, "JOD": 3, "JPY": 0, "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0,
    "KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2, "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2,
    "LYD": 3, "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2,
    "MVR": 2, "MWK": 2, "MXN": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2,
    "NZD": 2, "OMR": 3, "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0, "QAR": 2,
    "RON": 2, "RSD": 2, "RUB": 2, "RWF": 0, "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2,
    "SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2, "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2, "THB": 2,
    "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2, "UAH": 2, "UGX": 0,
    "USD": 2, "UYU": 2, "UZS": 2, "VES": 2, "VND": 0, "VUV": 0, "WST": 2, "XAF": 0, "XCD": 2, "XOF": 0,
    "XPF": 0, "YER": 2, "ZAR": 2, "ZMW": 2, "ZWL": 2,
}
# fmt: on
ISO_4217 = frozenset(MINOR_UNIT_EXPONENTS)


def check_currency(code: str) -> str:
    upper = code.upper()
    if upper not in ISO_4217:
        raise InvalidRequest(f"unknown ISO 4217 currency {code!r}", field="currency")
    return upper


def minor_unit_exponent(code: str) -> int:
    """How many digits an amount in ``code`` has after the decimal point (ISO 4217): amounts in
    the API are integers in these minor units (1000 is 10.00 USD, 1000 JPY, 1.000 BHD)."""
    return MINOR_UNIT_EXPONENTS[code.upper()]


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


@dataclass(frozen=True, slots=True)
class OrderTotals:
    """An order's money, minor units: the goods (``subtotal``), what is added to them (shipping,
    tax) and what is taken off (discount); ``total`` is what the customer pays."""

    subtotal: int
    shipping_total: int = 0
    tax_total: int = 0
    discount_total: int = 0

    @property
    def total(self) -> int:
        return self.subtotal + self.shipping_total + self.tax_total - self.discount_total

    def fields(self) -> dict[str, int]:
        """Every figure by its name in the API and the events, the total included."""
        return {
            "subtotal": self.subtotal,
            "shipping_total": self.shipping_total,
            "tax_total": self.tax_total,
            "discount_total": self.discount_total,
            "total": self.total,
        }


def check_totals(subtotal: int, shipping_total: int, tax_total: int, discount_total: int) -> OrderTotals:
    """The order's totals, or a 422: none negative, the discount no more than what it is taken
    off (goods, shipping and tax), and goods plus shipping plus tax within an amount column (the
    table's CHECK adds them up)."""
    for field, value in (
        ("shipping_total", shipping_total),
        ("tax_total", tax_total),
        ("discount_total", discount_total),
    ):
        if value < 0:
            raise InvalidRequest(f"{field} may not be negative", field=field)
    before_discount = subtotal + shipping_total + tax_total
    if before_discount > MAX_SUBTOTAL:
        raise InvalidRequest(f"the order's total exceeds {MAX_SUBTOTAL} minor units", field="lines")
    if discount_total > before_discount:
        raise InvalidRequest(
            f"discount_total {discount_total} exceeds subtotal + shipping_total + tax_total ({before_discount})",
            field="discount_total",
        )
    return OrderTotals(subtotal, shipping_total, tax_total, discount_total)


# --- Stripe's amounts ----------------------------------------------------------------------------
# Stripe takes amounts in the currency's smallest unit too, but its own idea of that unit differs
# for a few currencies (https://docs.stripe.com/currencies, "Zero-decimal" and "Special cases"):
# - zero-decimal: BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF (UGX) VND VUV XAF XOF XPF — the amount is
#   whole units (500 JPY is 500). MGA is two-decimal in ISO 4217: its amount must be whole ariary.
# - ISK and UGX "transitioned to a zero-decimal currency, but backwards compatibility requires you
#   to represent it as a two-decimal value, where the decimal amount is always 00": 5 ISK is 500.
#   UGX is on the zero-decimal list too; the special case is the one about charges and wins.
# - HUF and TWD are zero-decimal for payouts only (payout amounts divisible by 100); charges take
#   two-decimal amounts, as ISO does: no conversion.
# - three-decimal (BHD JOD KWD OMR TND): ISO minor units, but the last digit must be 0.
STRIPE_ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
STRIPE_TWO_DECIMAL_BY_COMPATIBILITY = frozenset({"ISK", "UGX"})
STRIPE_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


class UnchargeableAmount(ValueError):
    """An amount Stripe cannot take in that currency (a fraction it does not charge)."""


def stripe_exponent(code: str) -> int:
    """The digits after the decimal point of Stripe's ``amount`` for a charge in ``code``."""
    upper = code.upper()
    if upper in STRIPE_TWO_DECIMAL_BY_COMPATIBILITY:
        return 2
    if upper in STRIPE_ZERO_DECIMAL:
        return 0
    return minor_unit_exponent(upper)


def to_stripe_amount(amount: int, currency: str) -> int:
    """``amount`` (ISO 4217 minor units of ``currency``) as Stripe's ``amount`` for a charge:
    the same number for most currencies; scaled where Stripe's unit differs (ISK, UGX ×100; MGA
    ÷100); refused where Stripe cannot charge the fraction (MGA not whole ariary, a three-decimal
    amount whose last digit is not 0)."""
    if amount < 0:
        raise UnchargeableAmount(f"a negative amount ({amount}) is not charged")
    shift = stripe_exponent(currency) - minor_unit_exponent(currency)
    if shift < 0:
        unit = 10**-shift
        if amount % unit:
            raise UnchargeableAmount(f"Stripe charges {currency.upper()} in whole units: {amount} minor units is not")
        return amount // unit
    if currency.upper() in STRIPE_THREE_DECIMAL and amount % 10:
        raise UnchargeableAmount(f"Stripe needs a {currency.upper()} amount whose last digit is 0, not {amount}")
    return amount * 10**shift
