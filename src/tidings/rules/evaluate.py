"""Evaluating a rule for one recipient at one open, with the trace of why.

:func:`evaluate` never raises on facts: a trait of the wrong type, a missing one, a date that
does not parse or a pattern that runs too long make a condition false and say so in its
:class:`Trace`. ``all`` and ``any`` stop at the first child that decides them, so a trace lists
the conditions that were evaluated, in order.

Conventions a marketer can rely on (docs/api.md, "Targeting rules"):

- string comparisons ignore case unless ``case_sensitive`` is set;
- numbers compare as numbers even when a trait holds them as strings (``"49.90"``);
- a missing trait makes every condition false except the negative ones (``ne``, ``not_in``,
  ``not_contains``, ``not_exists``, ``not_within_last``): someone without a ``country`` is
  not in France;
- dates are ISO strings or epoch seconds or milliseconds; a date without a time means midnight
  in the recipient's time zone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

import regex

from .describe import describe, value_text
from .facts import EventFact, Facts, OpenContext, bucket, lookup
from .model import (
    AllRule,
    AlwaysRule,
    AnyRule,
    AudienceRule,
    BucketRule,
    Comparison,
    ContextRule,
    EventRule,
    NotRule,
    Rule,
    StateRule,
    TraitRule,
    parse_duration,
    parse_instant,
    weekday_number,
)

REGEX_TIMEOUT_S: Final = 0.005
MAX_TEXT: Final = 10_000
NEGATIVE_OPS: Final = frozenset({"ne", "not_in", "not_contains", "not_exists", "not_within_last"})
_EPOCH_MS_THRESHOLD: Final = 100_000_000_000  # numbers above are milliseconds, below seconds


@dataclass(slots=True)
class Trace:
    """One evaluated node: its human-readable form, its result and why."""

    path: str
    text: str
    result: bool
    reason: str
    children: list[Trace] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "rule": self.text,
            "result": self.result,
            "reason": self.reason,
        }
        if self.children:
            out["children"] = [c.as_dict() for c in self.children]
        return out


def evaluate(rule: Rule, facts: Facts, ctx: OpenContext, path: str = "rule") -> Trace:
    """Evaluate ``rule``; the returned trace's ``result`` is the answer."""
    if isinstance(rule, AllRule | AnyRule):
        want_all = isinstance(rule, AllRule)
        traces: list[Trace] = []
        for i, child in enumerate(rule.rules):
            t = evaluate(child, facts, ctx, f"{path}.rules[{i}]")
            traces.append(t)
            if t.result != want_all:
                break
        result = all(t.result for t in traces) if want_all else any(t.result for t in traces)
        skipped = len(rule.rules) - len(traces)
        reason = (
            ("all true" if result else f"rules[{len(traces) - 1}] is false")
            if want_all
            else (f"rules[{len(traces) - 1}] is true" if result else "none true")
        )
        if skipped:
            reason += f"; {skipped} not evaluated"
        return Trace(path, describe(rule), result, reason, traces)
    if isinstance(rule, NotRule):
        inner = evaluate(rule.rule, facts, ctx, f"{path}.rule")
        return Trace(
            path, describe(rule), not inner.result, f"inner rule is {inner.result}", [inner]
        )
    if isinstance(rule, AlwaysRule):
        return Trace(path, "always", True, "always true")
    result, reason = _condition(rule, facts, ctx)
    return Trace(path, describe(rule), result, reason)


def _condition(rule: Rule, facts: Facts, ctx: OpenContext) -> tuple[bool, str]:
    try:
        if isinstance(rule, TraitRule):
            found, value = facts.trait(rule.trait)
            return compare(rule, found and value is not None, value, ctx, f"trait {rule.trait}")
        if isinstance(rule, StateRule):
            number = facts.state(rule.field)
            return compare(rule, number is not None, number, ctx, rule.field.replace("_", " "))
        if isinstance(rule, ContextRule):
            return _context(rule, ctx)
        if isinstance(rule, AudienceRule):
            member = rule.audience in facts.audiences()
            if member == rule.member:
                return True, "a member" if member else "not a member"
            return False, "a member" if member else "not a member"
        if isinstance(rule, BucketRule):
            n = bucket(ctx.recipient, ctx.block_id, rule.salt)
            return compare(rule, True, n, ctx, "bucket")
        if isinstance(rule, EventRule):
            return _events(rule, facts, ctx)
    except Exception as exc:
        return False, f"could not be evaluated ({type(exc).__name__})"
    return False, f"unknown rule type {getattr(rule, 'type', '?')}"


# -- comparisons ---------------------------------------------------------------------------------


def compare(
    cmp: Comparison, found: bool, actual: Any, ctx: OpenContext, what: str
) -> tuple[bool, str]:
    """Apply ``cmp`` to ``actual`` (``found`` false: there is no value)."""
    op, expected = cmp.op, cmp.value
    shown = f"{what} is {value_text(actual)}" if found else f"{what} is not set"
    if op == "exists":
        ok = found and actual != ""
        return ok, shown
    if op == "not_exists":
        return not found or actual == "", shown
    if not found:
        return op in NEGATIVE_OPS, shown
    try:
        ok = _apply(op, expected, actual, cmp.case_sensitive, ctx)
    except TimeoutError:
        return op in NEGATIVE_OPS, f"{shown}; the pattern timed out after {REGEX_TIMEOUT_S}s"
    if ok is None:
        return op in NEGATIVE_OPS, f"{shown}, which {op} cannot compare"
    return ok, shown


def _apply(op: str, expected: Any, actual: Any, case: bool, ctx: OpenContext) -> bool | None:
    """The comparison's result, or ``None`` when ``actual`` has the wrong kind of value."""
    if op == "eq":
        return _equal(actual, expected, case)
    if op == "ne":
        return not _equal(actual, expected, case)
    if op == "in":
        return any(_equal(actual, e, case) for e in expected)
    if op == "not_in":
        return not any(_equal(actual, e, case) for e in expected)
    if op in ("contains", "not_contains"):
        hit = _contains(actual, expected, case)
        if hit is None:
            return None
        return hit if op == "contains" else not hit
    if op in ("starts_with", "ends_with"):
        if not isinstance(actual, str):
            return None
        a, e = (actual, expected) if case else (actual.casefold(), expected.casefold())
        return a.startswith(e) if op == "starts_with" else a.endswith(e)
    if op in ("gt", "gte", "lt", "lte", "between"):
        number = as_number(actual)
        if number is None:
            return None
        if op == "between":
            return bool(expected[0] <= number <= expected[1])
        limit = float(expected)
        if op == "gt":
            return number > limit
        if op == "gte":
            return number >= limit
        return number < limit if op == "lt" else number <= limit
    if op == "regex":
        text = _as_text(actual)
        if text is None:
            return None
        return _pattern(expected).search(text[:MAX_TEXT], timeout=REGEX_TIMEOUT_S) is not None
    if op in ("before", "after"):
        when = as_instant(actual, ctx.zone())
        if when is None:
            return None
        bound = _bound(parse_instant(expected), ctx.zone())
        return when < bound if op == "before" else when > bound
    if op in ("within_last", "not_within_last"):
        when = as_instant(actual, ctx.zone())
        if when is None:
            return None
        age = ctx.now.astimezone(UTC) - when
        inside = timedelta(0) <= age <= timedelta(seconds=parse_duration(expected))
        return inside if op == "within_last" else not inside
    return None


@lru_cache(maxsize=512)
def _pattern(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)


def _norm(value: Any, case: bool) -> Any:
    if isinstance(value, str):
        return value if case else value.strip().casefold()
    return value


def _equal(actual: Any, expected: Any, case: bool) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return _as_bool(actual) is not None and _as_bool(actual) == _as_bool(expected)
    if isinstance(expected, int | float):
        number = as_number(actual)
        return number is not None and number == expected
    if expected is None:
        return actual is None
    if isinstance(actual, int | float) and isinstance(expected, str):
        number = as_number(expected)
        return number is not None and number == actual
    return bool(_norm(actual, case) == _norm(expected, case))


def _contains(actual: Any, expected: Any, case: bool) -> bool | None:
    if isinstance(actual, str):
        if not isinstance(expected, str):
            expected = value_text(expected)
        return _norm(expected, case) in _norm(actual, case)
    if isinstance(actual, list | tuple):
        return any(_equal(item, expected, case) for item in actual)
    if isinstance(actual, Mapping):
        return str(expected) in actual
    return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "yes", "1"):
            return True
        if low in ("false", "no", "0"):
            return False
    if isinstance(value, int | float):
        return bool(value) if value in (0, 1) else None
    return None


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def as_number(value: Any) -> float | None:
    """A finite number from a number or a numeric string; ``None`` otherwise (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and 0 < len(value) <= 64:
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_instant(value: Any, zone: ZoneInfo) -> datetime | None:
    """An aware UTC instant from an ISO string, a date, or epoch seconds or milliseconds."""
    try:
        if isinstance(value, datetime):
            when = value
        elif isinstance(value, date):
            when = datetime.combine(value, time(), zone)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                return None
            seconds = value / 1000 if abs(value) >= _EPOCH_MS_THRESHOLD else value
            return datetime.fromtimestamp(seconds, UTC)
        elif isinstance(value, str):
            parsed = parse_instant(value.strip())
            return as_instant(parsed, zone)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.astimezone(UTC)


def _bound(instant: datetime | date, zone: ZoneInfo) -> datetime:
    found = as_instant(instant, zone)
    assert found is not None  # validated when the rule was saved
    return found


# -- the open's context --------------------------------------------------------------------------


def _context(rule: ContextRule, ctx: OpenContext) -> tuple[bool, str]:
    local = ctx.local()
    what = f"{rule.field} ({ctx.zone().key})" if rule.field in ("hour", "date") else rule.field
    if rule.field == "weekday":
        actual = local.weekday()
        expected: Iterable[Any] = rule.value if isinstance(rule.value, list) else [rule.value]
        days = {weekday_number(v) for v in expected}
        inside = actual in days
        ok = inside if rule.op in ("eq", "in") else not inside
        return ok, f"weekday is {local.strftime('%A').lower()}"
    value: Any
    if rule.field == "hour":
        value = local.hour
    elif rule.field == "month":
        value = local.month
    elif rule.field == "date":
        value = local.date().isoformat()
        if rule.op in ("before", "after"):
            bound = parse_instant(rule.value)  # type: ignore[arg-type]
            day = bound.date() if isinstance(bound, datetime) else bound
            ok = local.date() < day if rule.op == "before" else local.date() > day
            return ok, f"date ({ctx.zone().key}) is {value}"
    elif rule.field == "machine":
        value = ctx.machine
    elif rule.field == "timezone":
        value = ctx.zone().key
    else:
        value = {"device": ctx.device, "client": ctx.client, "country": ctx.country}[rule.field]
    return compare(rule, value is not None, value, ctx, what)


# -- behaviour -----------------------------------------------------------------------------------


def _events(rule: EventRule, facts: Facts, ctx: OpenContext) -> tuple[bool, str]:
    now_ms = ctx.now_ms
    since: int | None = None
    window = rule.within_s
    if window is not None:
        since = now_ms - window * 1000
    after = ""
    if rule.since_last is not None:
        last = _latest(facts.events(rule.since_last, None), now_ms)
        if last is not None:
            since = max(since or last + 1, last + 1)
            after = f" after the last {rule.since_last}"
    events = [
        e
        for e in facts.events(rule.event, since)
        if e.timestamp_ms <= now_ms and (since is None or e.timestamp_ms >= since)
    ]
    if rule.where:
        events = [e for e in events if _matches(rule, e, ctx)]
    n = len(events)
    ok = n >= rule.at_least and (rule.max is None or n <= rule.max)
    span = f" in the last {rule.within}" if rule.within else ""
    return ok, f"{n} × {rule.event}{span}{after}"


def _latest(events: Sequence[EventFact], now_ms: int) -> int | None:
    times = [e.timestamp_ms for e in events if e.timestamp_ms <= now_ms]
    return max(times) if times else None


def _matches(rule: EventRule, event: EventFact, ctx: OpenContext) -> bool:
    for f in rule.where:
        found, value = lookup(event.properties, f.property)
        if not compare(f, found and value is not None, value, ctx, f.property)[0]:
            return False
    return True
