"""The waterfall: the first variant whose rule matches, and whose content is not empty, wins.

A block's variants are tried in order. A variant whose rule is false is passed over; one whose
rule is true is offered to ``accept`` (the content service renders it): ``accept`` answers
``None`` to take it, or a reason to fall through (``"no recently viewed products"``), and the
next variant is tried. When none is taken, the block's fallback is shown. Every step is kept,
so a preview can show why each variant was or was not chosen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .evaluate import Trace, evaluate
from .facts import Facts, OpenContext
from .model import Rule

Outcome = Literal["chosen", "no_match", "fell_through"]


@dataclass(slots=True)
class Step:
    index: int
    name: str
    outcome: Outcome
    trace: Trace
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "outcome": self.outcome,
            "reason": self.reason or self.trace.reason,
            "trace": self.trace.as_dict(),
        }


@dataclass(slots=True)
class WaterfallResult:
    chosen: int | None  # the index of the variant shown; None: the fallback
    steps: list[Step] = field(default_factory=list)
    rules_ms: float = 0.0  # time spent evaluating rules (rendering excluded)

    def as_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "rules_ms": round(self.rules_ms, 3),
            "steps": [s.as_dict() for s in self.steps],
        }


def run_waterfall(
    variants: Sequence[tuple[str, Rule]],
    facts: Facts,
    ctx: OpenContext,
    accept: Callable[[int], str | None] | None = None,
) -> WaterfallResult:
    """Walk ``variants`` (name, rule) in order; see the module's description."""
    result = WaterfallResult(None)
    for index, (name, rule) in enumerate(variants):
        started = time.perf_counter()
        trace = evaluate(rule, facts, ctx, f"variants[{index}].rule")
        result.rules_ms += (time.perf_counter() - started) * 1000
        if not trace.result:
            result.steps.append(Step(index, name, "no_match", trace))
            continue
        refused = accept(index) if accept is not None else None
        if refused is not None:
            result.steps.append(Step(index, name, "fell_through", trace, refused))
            continue
        result.steps.append(Step(index, name, "chosen", trace))
        result.chosen = index
        break
    return result
