"""The rule language: a JSON tree, validated with pydantic, stored with each content block.

A rule is one node. Boolean nodes combine others (``all``, ``any``, ``not``, ``always``);
conditions test one fact about the recipient or the open:

``{"type": "trait", "trait": "country", "op": "eq", "value": "FR"}``
    a profile trait (dotted paths reach into objects: ``address.city``);
``{"type": "audience", "audience": "vip"}``
    membership of an audience (``"member": false`` for not a member);
``{"type": "event", "event": "Product Added", "within": "24h", "min": 1, "where": [...],
"since_last": "Order Completed"}``
    behaviour: the person performed ``event`` at least ``min`` (and at most ``max``) times,
    within the window, with property filters, and only counting occurrences after their latest
    ``since_last`` event (``{"max": 0}`` means *did not*);
``{"type": "state", "field": "cart_value", "op": "gt", "value": 50}``
    derived state: cart size and value, orders, revenue, days since the last order, ...;
``{"type": "context", "field": "hour", "op": "between", "value": [18, 23]}``
    the open itself, in the recipient's time zone: hour, weekday, date, month, device, email
    client, country, whether the fetch is a machine's;
``{"type": "bucket", "op": "lt", "value": 10}``
    a stable random bucket 0-99 from a hash of the recipient and the block (holdouts, splits).

Every comparison is an ``op`` and a ``value`` checked here, so a saved rule cannot fail at open
time for being malformed: numeric operators take numbers, ``in`` a list, ``regex`` a pattern
that compiles, ``within_last`` a duration such as ``30m``, ``24h``, ``7d`` or ``2w``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Final, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

MAX_DEPTH: Final = 16
MAX_NODES: Final = 400
MAX_LIST: Final = 1000
MAX_PATTERN: Final = 500

Scalar = str | int | float | bool | None

EQUALITY_OPS: Final = ("eq", "ne")
SET_OPS: Final = ("in", "not_in")
TEXT_OPS: Final = ("contains", "not_contains", "starts_with", "ends_with")
PRESENCE_OPS: Final = ("exists", "not_exists")
NUMERIC_OPS: Final = ("gt", "gte", "lt", "lte", "between")
TIME_OPS: Final = ("before", "after", "within_last", "not_within_last")
Op = Literal[
    "eq",
    "ne",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "exists",
    "not_exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "regex",
    "before",
    "after",
    "within_last",
    "not_within_last",
]

_DURATION = re.compile(r"^\s*(\d{1,6})\s*(s|m|h|d|w)\s*$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION_S: Final = 10 * 366 * 86400


def parse_duration(text: str) -> int:
    """``"30m"``, ``"24h"``, ``"7d"``, ``"2w"`` → seconds; ``ValueError`` with the reason."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use a number and s, m, h, d or w (24h)")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if not 0 < seconds <= MAX_DURATION_S:
        raise ValueError(f"{text!r} must be more than 0 and at most 10 years")
    return seconds


def parse_instant(text: str) -> datetime | date:
    """An ISO date (``2026-12-24``) or date-time (``2026-12-24T18:00:00+01:00``)."""
    if not isinstance(text, str) or not 8 <= len(text) <= 40:
        raise ValueError(f"{text!r} is not an ISO date or date-time")
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date or date-time") from None


def compile_pattern(pattern: str) -> regex.Pattern[str]:
    if not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_PATTERN:
        raise ValueError(f"a pattern must be a string of 1 to {MAX_PATTERN} characters")
    try:
        return regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)
    except regex.error as exc:
        raise ValueError(f"the pattern does not compile: {exc}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Comparison(_Node):
    """An operator and the value it compares with (``exists`` takes none)."""

    op: Op
    value: Scalar | list[Scalar] = None
    case_sensitive: bool = False

    @model_validator(mode="after")
    def _check_value(self) -> Comparison:
        check_comparison(self.op, self.value)
        return self


def check_comparison(op: str, value: Any) -> None:
    """Raises ``ValueError`` saying why ``value`` does not fit ``op``."""
    if op in PRESENCE_OPS:
        if value is not None:
            raise ValueError(f"{op} takes no value")
    elif op in SET_OPS:
        if not isinstance(value, list) or not 0 < len(value) <= MAX_LIST:
            raise ValueError(f"{op} needs a list of 1 to {MAX_LIST} values")
        if any(isinstance(v, list) for v in value):
            raise ValueError(f"{op} needs a flat list of values")
    elif op == "between":
        if not (isinstance(value, list) and len(value) == 2 and all(map(_is_number, value))):
            raise ValueError("between needs [low, high], two numbers")
        if value[0] > value[1]:
            raise ValueError("between needs low <= high")
    elif op in NUMERIC_OPS:
        if not _is_number(value):
            raise ValueError(f"{op} needs a number")
    elif op == "regex":
        compile_pattern(value)
    elif op in ("before", "after"):
        parse_instant(value)
    elif op in ("within_last", "not_within_last"):
        parse_duration(value)
    elif op in TEXT_OPS:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{op} needs a non-empty string")
    elif isinstance(value, list):
        raise ValueError(f"{op} compares with one value; use in for a list")


class AllRule(_Node):
    """True when every rule is (``AND``)."""

    type: Literal["all"]
    rules: list[Rule] = Field(min_length=1, max_length=100)


class AnyRule(_Node):
    """True when at least one rule is (``OR``)."""

    type: Literal["any"]
    rules: list[Rule] = Field(min_length=1, max_length=100)


class NotRule(_Node):
    type: Literal["not"]
    rule: Rule


class AlwaysRule(_Node):
    """Always true: a catch-all variant."""

    type: Literal["always"]


class TraitRule(Comparison):
    type: Literal["trait"]
    trait: str = Field(min_length=1, max_length=200)


StateField = Literal[
    "cart_quantity",
    "cart_items",
    "cart_value",
    "order_count",
    "lifetime_revenue",
    "days_since_last_order",
    "days_since_first_seen",
    "days_since_last_seen",
    "event_count",
    "viewed_count",
]
STATE_FIELDS: Final = StateField.__args__  # type: ignore[attr-defined]


class StateRule(Comparison):
    type: Literal["state"]
    field: StateField

    @model_validator(mode="after")
    def _numeric(self) -> StateRule:
        if self.op not in (*NUMERIC_OPS, *EQUALITY_OPS, *PRESENCE_OPS, *SET_OPS):
            raise ValueError(f"{self.field} is a number: use eq, ne, gt, gte, lt, lte, between")
        return self


ContextField = Literal[
    "hour", "weekday", "date", "month", "device", "client", "country", "machine", "timezone"
]
WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class ContextRule(Comparison):
    """A fact about the open, read in the recipient's time zone."""

    type: Literal["context"]
    field: ContextField

    @model_validator(mode="after")
    def _fits_field(self) -> ContextRule:
        if self.field == "weekday":
            values = self.value if isinstance(self.value, list) else [self.value]
            for v in values:
                if self.op not in PRESENCE_OPS and weekday_number(v) is None:
                    raise ValueError(f"{v!r} is not a weekday (monday ... sunday, or mon ... sun)")
            if self.op in NUMERIC_OPS or self.op in TIME_OPS:
                raise ValueError("weekday takes eq, ne, in or not_in")
        if self.field in ("hour", "month") and self.op in TIME_OPS:
            raise ValueError(f"{self.field} is a number: use eq, in, gt, lt or between")
        if self.field == "date" and self.op in (*NUMERIC_OPS, *TEXT_OPS, "regex"):
            raise ValueError("date takes eq, in, before, after (an ISO date such as 2026-12-24)")
        if self.field == "date" and self.op in (*EQUALITY_OPS, *SET_OPS):
            for v in self.value if isinstance(self.value, list) else [self.value]:
                parse_instant(v)  # type: ignore[arg-type]
        return self


def weekday_number(value: Any) -> int | None:
    """``"monday"``/``"mon"`` → 0 ... ``"sunday"``/``"sun"`` → 6; ``None`` if not a weekday."""
    if not isinstance(value, str) or len(value) < 3:
        return None
    value = value.strip().lower()
    for n, name in enumerate(WEEKDAYS):
        if name.startswith(value):
            return n
    return None


class AudienceRule(_Node):
    type: Literal["audience"]
    audience: str = Field(min_length=1, max_length=200)
    member: bool = True


class PropertyFilter(Comparison):
    """A condition on one property of an event (dotted paths reach into objects)."""

    property: str = Field(min_length=1, max_length=200)


class EventRule(_Node):
    """The person performed ``event`` between ``min`` and ``max`` times (inclusive)."""

    type: Literal["event"]
    event: str = Field(min_length=1, max_length=500)
    min: int | None = Field(
        default=None, ge=0, le=100_000, description="Default 1; 0 when max is 0 (did not)"
    )
    max: int | None = Field(default=None, ge=0, le=100_000)
    within: str | None = Field(default=None, description="A duration: 30m, 24h, 7d, 2w")
    since_last: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Count only occurrences after the latest one of this event",
    )
    where: list[PropertyFilter] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _window(self) -> EventRule:
        if self.within is not None:
            parse_duration(self.within)
        if self.max is not None and self.max < self.at_least:
            raise ValueError("max must be at least min")
        return self

    @property
    def at_least(self) -> int:
        if self.min is not None:
            return self.min
        return 0 if self.max == 0 else 1

    @property
    def within_s(self) -> int | None:
        return parse_duration(self.within) if self.within is not None else None


class BucketRule(Comparison):
    """The recipient's stable bucket, 0-99, for this block (``salt`` makes another split)."""

    type: Literal["bucket"]
    salt: str = Field(default="", max_length=100)

    @model_validator(mode="after")
    def _numeric(self) -> BucketRule:
        if self.op not in (*NUMERIC_OPS, *EQUALITY_OPS, *SET_OPS):
            raise ValueError("bucket is a number 0-99: use lt, gte, between, eq or in")
        return self


Rule = Annotated[
    AllRule
    | AnyRule
    | NotRule
    | AlwaysRule
    | TraitRule
    | StateRule
    | ContextRule
    | AudienceRule
    | EventRule
    | BucketRule,
    Field(discriminator="type"),
]
CONDITION_TYPES: Final = ("trait", "state", "context", "audience", "event", "bucket")

for _model in (AllRule, AnyRule, NotRule):
    _model.model_rebuild()

_ADAPTER: TypeAdapter[Rule] = TypeAdapter(Rule)


def children(rule: Rule) -> list[Rule]:
    if isinstance(rule, AllRule | AnyRule):
        return list(rule.rules)
    if isinstance(rule, NotRule):
        return [rule.rule]
    return []


def check_size(rule: Rule) -> None:
    """Raises ``ValueError`` when a tree is deeper than :data:`MAX_DEPTH` or has more than
    :data:`MAX_NODES` nodes: evaluation cost stays bounded."""
    nodes = 0
    stack = [(rule, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"a rule may nest at most {MAX_DEPTH} levels")
        if nodes > MAX_NODES:
            raise ValueError(f"a rule may have at most {MAX_NODES} nodes")
        stack.extend((child, depth + 1) for child in children(node))


def parse_rule(data: Any) -> Rule:
    """A rule from JSON data; ``pydantic.ValidationError`` names the bad node and the reason."""
    rule = _ADAPTER.validate_python(data)
    check_size(rule)
    return rule


def rule_json(rule: Rule) -> dict[str, Any]:
    """The rule as stored: defaults left out, so stored rules stay short."""
    out: dict[str, Any] = _ADAPTER.dump_python(rule, mode="json", exclude_defaults=True)
    out["type"] = rule.type
    return out


def rule_schema() -> dict[str, Any]:
    return _ADAPTER.json_schema()


ALWAYS: Final = AlwaysRule(type="always")
