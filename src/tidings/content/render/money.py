"""Prices as the recipient reads them: ``$1,234.50`` in ``en_US``, ``49,50 €`` in ``de_DE``.

Formatting is Babel's (CLDR data), for the profile's locale and the product's currency. An
unknown locale reads as :data:`DEFAULT_LOCALE`; a currency that is not a three-letter code reads
as the caller's default. Babel takes tens of microseconds per call and the same few prices come
back all the time, so formatted amounts are remembered.
"""

from __future__ import annotations

import math
import threading
from decimal import Decimal
from typing import Final

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency

DEFAULT_LOCALE: Final = "en_US"
DEFAULT_CURRENCY: Final = "USD"


def parse_amount(value: object) -> float | None:
    """A price as a finite, non-negative float (feeds write ``"1,299.00"`` as often as
    1299.0), or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip().replace(",", ""))
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def normalize_currency(code: object, default: str = DEFAULT_CURRENCY) -> str:
    """``code`` upper-cased when it looks like an ISO 4217 code, else ``default``."""
    if isinstance(code, str):
        code = code.strip().upper()
        if len(code) == 3 and code.isascii() and code.isalpha():
            return code
    return default


class Prices:
    """Formats amounts of money for a locale, remembering up to ``maxsize`` of them."""

    __slots__ = ("_formatted", "_locales", "_lock", "maxsize")

    def __init__(self, maxsize: int = 50_000) -> None:
        self.maxsize = maxsize
        self._formatted: dict[tuple[float, str, str], str] = {}
        self._locales: dict[str, Locale] = {}
        self._lock = threading.Lock()

    def locale(self, name: str | None) -> Locale:
        """The Babel locale for ``name`` (``de_DE`` or ``de-DE``); ``en_US`` if unknown."""
        key = name or DEFAULT_LOCALE
        found = self._locales.get(key)
        if found is not None:
            return found
        try:
            found = Locale.parse(key.strip().replace("-", "_"))
        except (ValueError, TypeError, UnknownLocaleError):
            found = Locale.parse(DEFAULT_LOCALE)
        with self._lock:
            if len(self._locales) < 10_000:  # locales come from traits: bound what they cost
                self._locales[key] = found
        return found

    def format(self, amount: float, currency: str, locale: str | None) -> str:
        """``amount`` of ``currency`` written for ``locale``."""
        key = (amount, currency, locale or DEFAULT_LOCALE)
        text = self._formatted.get(key)
        if text is not None:
            return text
        # Decimal of the float's shortest repr: 19.99 stays 19.99, never 19.989999…
        text = format_currency(Decimal(repr(float(amount))), currency, locale=self.locale(locale))
        with self._lock:
            if len(self._formatted) >= self.maxsize:
                self._formatted.clear()  # rare, and cheaper than ordering every hit
            self._formatted[key] = text
        return text
