"""Login rate limiting: failed sign-ins counted per account and per client address.

In memory and bounded: at most ``max_keys`` accounts and addresses are tracked (least recently
failed forgotten first), so a flood of made-up emails cannot grow memory. Per process: with
``--workers N`` an attacker gets N times the allowance, still far too little to guess a
password.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from datetime import timedelta

from tidings.core.clock import Clock


class LoginThrottle:
    def __init__(
        self,
        clock: Clock,
        *,
        per_account: int = 5,
        per_address: int = 20,
        window: timedelta = timedelta(minutes=15),
        max_keys: int = 10_000,
    ) -> None:
        self.clock = clock
        self.limits = {"account": per_account, "address": per_address}
        self.window_s = window.total_seconds()
        self.max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _keys(self, email: str, address: str | None) -> list[tuple[str, str]]:
        keys = [("account", email.strip().lower())]
        if address:
            keys.append(("address", address))
        return keys

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, email: str, address: str | None) -> int:
        """Seconds until another attempt is allowed for this account or address; 0 if now."""
        now = self.clock.now().timestamp()
        wait = 0.0
        with self._lock:
            for key in self._keys(email, address):
                times = self._recent(key, now)
                if len(times) >= self.limits[key[0]]:
                    wait = max(wait, times[0] + self.window_s - now)
        return math.ceil(wait)

    def failed(self, email: str, address: str | None) -> None:
        now = self.clock.now().timestamp()
        with self._lock:
            for key in self._keys(email, address):
                times = self._recent(key, now)
                times.append(now)
                self._failures[key] = times
                self._failures.move_to_end(key)
                # Only the latest failures matter: keep at most the limit per key.
                while len(times) > self.limits[key[0]]:
                    times.popleft()
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, email: str) -> None:
        """A correct password clears the account's count (not the address's)."""
        with self._lock:
            self._failures.pop(("account", email.strip().lower()), None)
