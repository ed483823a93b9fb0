"""Ground truth of a simulation: who is who, who churned, who bought, as JSON beside the data.

The simulator knows what no analytics system can see directly: which anonymous ids (devices)
belong to one person, whether a person stopped coming back, whether they bought. Tests and the
ML issue measure accuracy against it, e.g. that the identity graph recovers the true people.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "tidings-simulation-ground-truth/1"


@dataclass(frozen=True, slots=True)
class PersonTruth:
    """One simulated person.

    ``anonymous_ids``: every device (analytics.js anonymousId) the person used, first first.
    ``linked_anonymous_ids``: those on which the person identified (an ``identify`` with their
    ``user_id`` was sent from that anonymousId), so a correct identity graph joins exactly these
    to the ``user_id``; the others are devices nothing in the data connects to the person.
    ``user_id`` and ``email`` are set once the person signed up or checked out (``None`` for
    visitors who never identified). ``churned``: the person decided never to return on their
    own (a later email may still bring them back once). ``converted``: placed at least one
    order; ``orders`` counts them. ``apple_mail_privacy``: their mail is opened by Apple's
    proxy (Mail Privacy Protection), so their ``Email Opened`` events include machine opens.
    """

    person_id: str
    anonymous_ids: tuple[str, ...]
    linked_anonymous_ids: tuple[str, ...]
    user_id: str | None
    email: str | None
    churned: bool
    converted: bool
    orders: int
    apple_mail_privacy: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "anonymous_ids": list(self.anonymous_ids),
            "linked_anonymous_ids": list(self.linked_anonymous_ids),
            "user_id": self.user_id,
            "email": self.email,
            "churned": self.churned,
            "converted": self.converted,
            "orders": self.orders,
            "apple_mail_privacy": self.apple_mail_privacy,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PersonTruth:
        return cls(
            person_id=str(data["person_id"]),
            anonymous_ids=tuple(data["anonymous_ids"]),
            linked_anonymous_ids=tuple(data["linked_anonymous_ids"]),
            user_id=data["user_id"],
            email=data["email"],
            churned=bool(data["churned"]),
            converted=bool(data["converted"]),
            orders=int(data["orders"]),
            apple_mail_privacy=bool(data["apple_mail_privacy"]),
        )


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """Every person of one simulation run, in person id order, and how the run was made."""

    seed: int
    shoppers: int
    days: int
    start: str
    events: int
    persons: tuple[PersonTruth, ...]

    def __iter__(self) -> Iterator[PersonTruth]:
        return iter(self.persons)

    def __len__(self) -> int:
        return len(self.persons)

    def by_person(self) -> dict[str, PersonTruth]:
        return {p.person_id: p for p in self.persons}

    def person_of(self) -> dict[str, str]:
        """Every identifier value (anonymousId, userId, email) → the person it belongs to."""
        owner: dict[str, str] = {}
        for p in self.persons:
            for value in (*p.anonymous_ids, p.user_id, p.email):
                if value is not None:
                    owner[value] = p.person_id
        return owner

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "seed": self.seed,
            "shoppers": self.shoppers,
            "days": self.days,
            "start": self.start,
            "events": self.events,
            "persons": [p.as_dict() for p in self.persons],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroundTruth:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a ground truth file of format {FORMAT!r}")
        return cls(
            seed=int(data["seed"]),
            shoppers=int(data["shoppers"]),
            days=int(data["days"]),
            start=str(data["start"]),
            events=int(data["events"]),
            persons=tuple(PersonTruth.from_dict(p) for p in data["persons"]),
        )


def write_ground_truth(truth: GroundTruth, path: str | Path) -> Path:
    """Write ``truth`` as JSON (one person per line, so large files still diff and grep)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    head = {k: v for k, v in truth.as_dict().items() if k != "persons"}
    with target.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(head)[:-1] + ', "persons": [\n')
        for i, person in enumerate(truth.persons):
            fh.write(("" if i == 0 else ",\n") + json.dumps(person.as_dict()))
        fh.write("\n]}\n")
    return target


def read_ground_truth(path: str | Path) -> GroundTruth:
    return GroundTruth.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
