"""Sources and their write keys. Keys are stored hashed and looked up through a small cache."""

from __future__ import annotations

import time
from dataclasses import dataclass

from tidings.core.clock import Clock, to_ms
from tidings.core.errors import NotFound, TidingsError
from tidings.core.ids import new_id, new_secret, secret_hash, secret_hint

from .store import CollectStore, SourceRecord

WRITE_KEY_PREFIX = "wk"
# A rotated key stops working in other processes within this many seconds.
CACHE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class NewSource:
    source: SourceRecord
    write_key: str


class SourceService:
    def __init__(self, store: CollectStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._by_hash: dict[str, tuple[SourceRecord | None, float]] = {}

    def create(self, name: str, write_key: str | None = None) -> NewSource:
        """Create a source; its write key is returned here and never shown in full again."""
        name = name.strip()
        if not name or len(name) > 200:
            raise TidingsError("invalid_name", "a source needs a name of 1-200 characters", "name")
        key = write_key or new_secret(WRITE_KEY_PREFIX, 18)
        record = SourceRecord(
            id=new_id("src"),
            name=name,
            write_key_hash=secret_hash(key),
            write_key_hint=secret_hint(key),
            created_at=to_ms(self.clock.now()),
            rotated_at=None,
        )
        self.store.insert_source(record)
        return NewSource(record, key)

    def rotate(self, source_id: str) -> NewSource:
        """Replace a source's write key; the old key stops working."""
        key = new_secret(WRITE_KEY_PREFIX, 18)
        if not self.store.update_write_key(
            source_id, secret_hash(key), secret_hint(key), to_ms(self.clock.now())
        ):
            raise NotFound("source_not_found", f"no source with id {source_id!r}", "id")
        self._by_hash.clear()
        record = self.get(source_id)
        return NewSource(record, key)

    def builtin(self, source_id: str, name: str) -> SourceRecord:
        """A source tidings writes its own events under (email tracking, each ESP's webhook),
        made on first use with a fixed id. Its write key is random and never shown: nothing
        outside tidings writes to it."""
        record = self.store.get_source(source_id)
        if record is not None:
            return record
        key = new_secret(WRITE_KEY_PREFIX, 18)
        record = SourceRecord(
            id=source_id,
            name=name,
            write_key_hash=secret_hash(key),
            write_key_hint=secret_hint(key),
            created_at=to_ms(self.clock.now()),
            rotated_at=None,
        )
        if not self.store.insert_source_if_absent(record):
            found = self.store.get_source(source_id)  # another process made it first
            assert found is not None
            return found
        return record

    def get(self, source_id: str) -> SourceRecord:
        record = self.store.get_source(source_id)
        if record is None:
            raise NotFound("source_not_found", f"no source with id {source_id!r}", "id")
        return record

    def list(self) -> list[SourceRecord]:
        return self.store.list_sources()

    def by_write_key(self, write_key: str) -> SourceRecord | None:
        """The source a write key belongs to, or None. Cached, including misses."""
        digest = secret_hash(write_key)
        now = time.monotonic()
        hit = self._by_hash.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        record = self.store.source_by_key_hash(digest)
        if len(self._by_hash) > 10_000:
            self._by_hash.clear()  # a flood of random keys must not grow memory
        # Misses expire fast so a source made by another process is seen within seconds.
        self._by_hash[digest] = (record, now + (CACHE_SECONDS if record else 2.0))
        return record
