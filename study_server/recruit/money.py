"""Money as exact decimals in whole minor units (cents, pence), never floats.

Plans state amounts in USD. An amount that is not a whole number of cents (``1.005``) is refused with the
two nearest amounts that are, before anything is posted or paid. A conversion to another platform currency
(Prolific in GBP, ``--usd-rate``) rounds half up to a whole minor unit once, when the ledger row is made; the
ledger keeps that converted amount, and the platform's records are matched against it, never converted back.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from study_server.recruit import PayRefused

HUNDRED = Decimal(100)


def decimal_of(amount: Any, what: str) -> Decimal:
    """An amount as a Decimal from its written form (``0.45`` stays 0.45, not 0.450000000000000011...)."""
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
    except (InvalidOperation, ValueError):
        raise PayRefused(f"{what}: {amount!r} is not an amount of money (write it like 1.50)") from None
    if not value.is_finite() or value < 0:
        raise PayRefused(f"{what}: {amount!r} is not an amount of money (write it like 1.50)")
    return value


def to_minor(amount: Any, what: str, currency: str = "USD") -> int:
    """A whole number of minor units (cents): ``1.50`` -> 150; ``1.005`` refused with 1.00 and 1.01."""
    value = decimal_of(amount, what) * HUNDRED
    if value != value.to_integral_value():
        lo = value.to_integral_value(rounding=ROUND_FLOOR)
        hi = value.to_integral_value(rounding=ROUND_CEILING)
        raise PayRefused(f"{what}: {amount} {currency} is not a whole number of cents; platforms pay whole "
                         f"cents: use {fmt(int(lo))} or {fmt(int(hi))} {currency}")
    return int(value)


def fmt(minor: int) -> str:
    """Minor units as the platforms write amounts: 45 -> "0.45", 100 -> "1.00" (no float on the way)."""
    minor = int(minor)
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{minor // 100}.{minor % 100:02d}"


def convert(cents_usd: int, currency: str, usd_rate: Any) -> int:
    """USD cents -> the platform currency's minor unit, rounded half up once (45 cents at 0.79 -> 36 pence)."""
    if currency == "USD":
        return int(cents_usd)
    if not usd_rate:
        raise PayRefused(f"the platform pays in {currency} but the plan's amounts are in USD: pass --usd-rate "
                         f"(how many {currency} one USD is worth today) so amounts are converted, not sent as USD")
    rate = decimal_of(usd_rate, "--usd-rate")
    return int((Decimal(int(cents_usd)) * rate).to_integral_value(rounding=ROUND_HALF_UP))


def parse_minor(text: Any) -> int | None:
    """A platform's written amount ("0.45", 45 as minor units elsewhere) -> minor units; None when it is not
    an exact whole number of minor units (the row then stays for a person)."""
    try:
        value = Decimal(str(text).strip()) * HUNDRED
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or value != value.to_integral_value():
        return None
    return int(value)
