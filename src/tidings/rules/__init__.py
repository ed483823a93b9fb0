"""Targeting rules: who sees which variant of a content block.

A pure library, no HTTP and no database: :mod:`.model` is the rule language (a JSON tree
validated with pydantic), :mod:`.evaluate` evaluates a rule over a recipient's
:class:`~.facts.Facts` and the :class:`~.facts.OpenContext` of an open, with a trace of why,
:mod:`.describe` writes a rule as a person reads it, and :mod:`.waterfall` picks a block's
variant. The content service supplies the facts (a profile's derived state and one indexed
query per behaviour condition) and renders what the waterfall chooses.
"""

from __future__ import annotations

from .describe import describe
from .evaluate import Trace, evaluate
from .facts import EventFact, Facts, OpenContext, ProfileFacts, bucket
from .model import ALWAYS, Rule, parse_rule, rule_json, rule_schema
from .waterfall import Step, WaterfallResult, run_waterfall

__all__ = [
    "ALWAYS",
    "EventFact",
    "Facts",
    "OpenContext",
    "ProfileFacts",
    "Rule",
    "Step",
    "Trace",
    "WaterfallResult",
    "bucket",
    "describe",
    "evaluate",
    "parse_rule",
    "rule_json",
    "rule_schema",
    "run_waterfall",
]
