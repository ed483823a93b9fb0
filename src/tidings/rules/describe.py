"""The human-readable form of a rule, for the UI, the API and traces.

``{"type": "all", "rules": [{"type": "state", "field": "cart_value", "op": "gt", "value": 50},
{"type": "not", "rule": {"type": "trait", "trait": "country", "op": "eq", "value": "FR"}}]}``
reads ``cart value > 50 AND NOT (country = 'FR')``.
"""

from __future__ import annotations

from typing import Any, Final

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
)

OP_TEXT: Final = {
    "eq": "=",
    "ne": "!=",
    "in": "in",
    "not_in": "not in",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "before": "before",
    "after": "after",
    "within_last": "within the last",
    "not_within_last": "not within the last",
}
MAX_SHOWN: Final = 60


def value_text(value: Any) -> str:
    """A value as a rule shows it: strings quoted, lists in parentheses, long ones cut."""
    if isinstance(value, str):
        shown = value if len(value) <= MAX_SHOWN else value[: MAX_SHOWN - 1] + "…"
        return "'" + shown.replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, list | tuple):
        items = [value_text(v) for v in value[:10]]
        if len(value) > 10:
            items.append(f"… {len(value) - 10} more")
        return "(" + ", ".join(items) + ")"
    if isinstance(value, dict):
        return "{…}"
    return str(value)


def comparison_text(subject: str, cmp: Comparison) -> str:
    op, value = cmp.op, cmp.value
    if op == "exists":
        return f"{subject} exists"
    if op == "not_exists":
        return f"{subject} does not exist"
    if op == "between" and isinstance(value, list):
        return f"{subject} between {value_text(value[0])} and {value_text(value[1])}"
    if op == "regex":
        return f"{subject} matches /{value}/"
    if op in ("within_last", "not_within_last"):
        return f"{subject} {OP_TEXT[op]} {value}"
    case = " (case-sensitive)" if cmp.case_sensitive and isinstance(value, str | list) else ""
    return f"{subject} {OP_TEXT[op]} {value_text(value)}{case}"


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def describe(rule: Rule) -> str:
    if isinstance(rule, AllRule | AnyRule):
        joiner = " AND " if isinstance(rule, AllRule) else " OR "
        parts = []
        for child in rule.rules:
            text = describe(child)
            if isinstance(child, AllRule | AnyRule) and len(child.rules) > 1:
                text = f"({text})"
            parts.append(text)
        return joiner.join(parts)
    if isinstance(rule, NotRule):
        return f"NOT ({describe(rule.rule)})"
    if isinstance(rule, AlwaysRule):
        return "always"
    if isinstance(rule, TraitRule):
        return comparison_text(rule.trait, rule)
    if isinstance(rule, StateRule):
        return comparison_text(rule.field.replace("_", " "), rule)
    if isinstance(rule, ContextRule):
        subject = {"hour": "local hour", "date": "local date", "machine": "machine fetch"}.get(
            rule.field, rule.field
        )
        return comparison_text(subject, rule)
    if isinstance(rule, BucketRule):
        salt = f" [{rule.salt}]" if rule.salt else ""
        return comparison_text(f"random bucket{salt}", rule)
    if isinstance(rule, AudienceRule):
        return f"{'in' if rule.member else 'not in'} audience {value_text(rule.audience)}"
    if isinstance(rule, EventRule):
        return _event_text(rule)
    return str(getattr(rule, "type", "?"))


def _event_text(rule: EventRule) -> str:
    low = rule.at_least
    if rule.max == 0:
        text = f"did not perform {value_text(rule.event)}"
    elif rule.max is None:
        text = f"performed {value_text(rule.event)}"
        if low != 1:
            text += f" at least {_times(low)}" if low else " any number of times"
    elif low == rule.max:
        text = f"performed {value_text(rule.event)} exactly {_times(low)}"
    elif low == 0:
        text = f"performed {value_text(rule.event)} at most {_times(rule.max)}"
    else:
        text = f"performed {value_text(rule.event)} {low} to {rule.max} times"
    if rule.where:
        text += " where " + " and ".join(comparison_text(f.property, f) for f in rule.where)
    if rule.within:
        text += f" in the last {rule.within}"
    if rule.since_last:
        text += f" since the last {value_text(rule.since_last)}"
    return text
