"""Who an open is for: the ``u`` of a creative tag, checked, normalized and resolved.

``u`` holds what the ESP substituted for its merge tag: an email address (trimmed and
lower-cased, as the identity graph keeps them), a userId or a configured external id. A ``u``
that is still a merge tag (``*|EMAIL|*``, ``%%emailaddr%%``, ``{{ email }}``, ``${email}``,
``[email]``, ``%email%``, …) or empty means the send is broken: the open gets the fallback and
the block raises an alarm. Anything else unusable (too long, control characters) gets the
fallback quietly.

The render view of a profile is cached for ``ttl_s`` per recipient (so a burst of opens reads
the database once); this process's pipeline batches drop the entries of the profiles they
changed at once, other processes' show within the TTL.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final, Literal

from tidings.profiles.service import ProfileService
from tidings.profiles.state import ProfileState

from .render.profile import RenderProfile
from .tags import is_unsubstituted_merge_tag, restore_plus_signs

MAX_RECIPIENT_CHARS: Final = 320

Problem = Literal["merge_tag", "empty_recipient", "malformed_recipient"]
ALARM_MESSAGES: Final = {
    "merge_tag": "opens carry a literal merge tag in u: the ESP did not substitute it",
    "empty_recipient": "opens carry no recipient in u: the merge tag was empty or missing",
}


@dataclass(frozen=True, slots=True)
class Recipient:
    """A usable ``u``: as given (cut to the stored length) and its lookup key."""

    given: str
    key: str


def read_recipient(u: str | None) -> Recipient | Problem:
    """``u`` as a recipient, or what is wrong with it (see the module)."""
    if u is None or not u.strip():
        return "empty_recipient"
    # An ESP that substitutes the address raw turns its "+" into a space in the query.
    value = restore_plus_signs(u)
    if len(value) > MAX_RECIPIENT_CHARS or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "malformed_recipient"
    if is_unsubstituted_merge_tag(value) is not None:
        return "merge_tag"
    return Recipient(value, recipient_key(value))


def recipient_key(value: str) -> str:
    """How decisions and views key a recipient: email addresses in lower case."""
    return value.lower() if "@" in value else value


@dataclass(frozen=True, slots=True)
class ProfileView:
    profile_id: str
    profile: RenderProfile
    state: ProfileState  # what targeting rules read (derived numbers, traits)


class ProfileViews:
    """Render views of profiles by recipient key, cached for ``ttl_s`` (see the module)."""

    def __init__(
        self,
        profiles: ProfileService,
        ttl_s: float,
        max_entries: int = 50_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profiles = profiles
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._monotonic = monotonic
        self._entries: OrderedDict[str, tuple[float, ProfileView | None]] = OrderedDict()
        self._by_profile: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, recipient: Recipient) -> ProfileView | None:
        """The profile ``recipient`` names, as renders see it; ``None`` when none does."""
        now = self._monotonic()
        with self._lock:
            entry = self._entries.get(recipient.key)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(recipient.key)
                self.hits += 1
                return entry[1]
            self.misses += 1
        found = self.profiles.find_recipient(recipient.given)
        view = (
            ProfileView(found[0], RenderProfile.from_state(found[1]), found[1])
            if found is not None
            else None
        )
        if self.ttl_s > 0:
            self._put(recipient.key, view, now)
        return view

    def _put(self, key: str, view: ProfileView | None, now: float) -> None:
        """Keep ``view`` for the TTL; drop the oldest entries that expired (or exceed
        ``max_entries``). Expired views are dropped at once rather than when the cache is
        full: each holds a parsed profile state (hundreds of objects), and tens of thousands
        of dead ones made every full garbage collection walk them (50–100 ms pauses, the
        render benchmark's p99)."""
        with self._lock:
            self._entries[key] = (now + self.ttl_s, view)
            self._entries.move_to_end(key)
            if view is not None:
                self._by_profile.setdefault(view.profile_id, set()).add(key)
            # Entries are in order of their last use, not their expiry (a hit moves one to the
            # end without renewing it), so an expired one may wait behind a live one for at
            # most one TTL.
            while self._entries:
                oldest, (expires, old) = next(iter(self._entries.items()))
                if expires > now and len(self._entries) <= self.max_entries:
                    break
                del self._entries[oldest]
                if old is not None:
                    keys = self._by_profile.get(old.profile_id)
                    if keys is not None:
                        keys.discard(oldest)
                        if not keys:
                            del self._by_profile[old.profile_id]

    def changed(self, profile_ids: Collection[str]) -> None:
        """Profiles changed (a pipeline batch, a deletion): forget their views, and every
        'no such recipient' (a new profile may hold one now)."""
        with self._lock:
            for pid in profile_ids:
                for key in self._by_profile.pop(pid, ()):
                    self._entries.pop(key, None)
            for key in [k for k, (_, v) in self._entries.items() if v is None]:
                del self._entries[key]
