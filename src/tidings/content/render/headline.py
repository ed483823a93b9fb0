"""Headline templates: Jinja2 that block authors write, run safely at open time.

``Still thinking about it, {{ first_name | default('there') }}?`` is rendered for each open with
the recipient's traits and recent activity. The template is untrusted text, so it runs in
Jinja's immutable sandbox (no attribute that starts with ``_``, no mutation of the data) and,
beyond that, may only use a small language that cannot run away:

- checked when the block is saved (:meth:`HeadlineTemplate.validate`): at most
  :data:`MAX_SOURCE` characters; no calls, assignments, macros, blocks, imports or includes;
  no ``**`` or ``%``; no name, attribute or key starting with ``_``; loops not recursive and
  nested at most two deep (loops can only walk data the profile holds: no ``range``); only the
  filters of :data:`FILTERS`;
- while rendering: filters refuse values of more than :data:`MAX_VALUE` characters or items
  and numeric arguments beyond :data:`MAX_ARGUMENT`, ``*`` refuses to repeat text or lists
  more than :data:`MAX_ARGUMENT` times, output stops at the caller's length cap, and a render
  taking longer than its time limit is abandoned.

A template that fails any of this at render time yields :class:`HeadlineRenderError`; the
Text app then shows its default text.
"""

from __future__ import annotations

import functools
import operator
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tidings.core.errors import TidingsError

from .money import normalize_currency

MAX_SOURCE: Final = 2000
MAX_VALUE: Final = 10_000
MAX_ARGUMENT: Final = 1000
MAX_LOOP_DEPTH: Final = 2
DEFAULT_TIME_LIMIT_S: Final = 0.1  # catches runaways; a cold Babel locale takes ~30 ms

FILTERS: Final = frozenset(
    {
        "abs", "capitalize", "count", "d", "default", "first", "float", "int", "join", "last",
        "length", "list", "lower", "map", "max", "min", "money", "reject", "rejectattr",
        "replace", "reverse", "round", "select", "selectattr", "sort", "string", "striptags",
        "sum", "title", "trim", "truncate", "unique", "upper", "wordcount",
    }
)  # fmt: skip
"""Filters a headline may use: none of them makes output much larger than its input."""

_ALLOWED_NODES: Final = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.Getattr,
    nodes.Getitem, nodes.Slice, nodes.Filter, nodes.Test, nodes.CondExpr, nodes.If, nodes.And,
    nodes.Or, nodes.Not, nodes.Neg, nodes.Pos, nodes.Compare, nodes.Operand, nodes.Concat,
    nodes.For, nodes.List, nodes.Tuple, nodes.Dict, nodes.Pair, nodes.Keyword, nodes.Add,
    nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv,
)  # fmt: skip

PRICES_VARIABLE: Final = "_prices"
CURRENCY_VARIABLE: Final = "_currency"
LOCALE_VARIABLE: Final = "locale"


class TemplateError(TidingsError):
    """A headline template that cannot be saved, and why (with the line at fault)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        where = f" (line {line})" if line is not None else ""
        super().__init__("invalid_template", f"{message}{where}", "template")
        self.line = line


class HeadlineRenderError(Exception):
    """A headline could not be rendered for this recipient (the default text is shown)."""


def _guarded(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` refusing oversized values and arguments, and oversized text results."""
    passes = getattr(function, "jinja_pass_arg", None) is not None

    @functools.wraps(function)  # keeps jinja_pass_arg, so Jinja still passes the context
    def guarded(*args: Any, **kwargs: Any) -> Any:
        values = args[1:] if passes else args
        for position, value in enumerate([*values, *kwargs.values()]):
            if isinstance(value, str | list | tuple | dict) and len(value) > MAX_VALUE:
                raise SecurityError(f"{name}: a value of more than {MAX_VALUE} is refused")
            if (
                position > 0
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                and abs(value) > MAX_ARGUMENT
            ):
                raise SecurityError(f"{name}: an argument above {MAX_ARGUMENT} is refused")
        result = function(*args, **kwargs)
        if isinstance(result, str) and len(result) > MAX_VALUE:
            raise SecurityError(f"{name} made more than {MAX_VALUE} characters")
        return result

    return guarded


@pass_context
def _money(context: Context, amount: object, currency: str | None = None) -> str:
    """``{{ cart.value | money }}``: an amount in the recipient's locale (and the cart's or
    the last order's currency, unless one is given)."""
    prices = context.get(PRICES_VARIABLE)
    if prices is None or not isinstance(amount, int | float) or isinstance(amount, bool):
        return "" if amount is None else str(amount)
    code = normalize_currency(currency, context.get(CURRENCY_VARIABLE) or "USD")
    text: str = prices.format(float(amount), code, context.get(LOCALE_VARIABLE))
    return text


class _HeadlineEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # ``cart.items`` means the cart's items, not dict.items: keys win over methods.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ != "*":
            raise SecurityError(f"the {operator_} operator is not allowed")
        for repeated, times in ((left, right), (right, left)):
            if (
                isinstance(repeated, str | list | tuple)
                and isinstance(times, int)
                and times > MAX_ARGUMENT
            ):
                raise SecurityError(f"repeating more than {MAX_ARGUMENT} times is refused")
        return operator.mul(left, right)


def _environment() -> _HeadlineEnvironment:
    environment = _HeadlineEnvironment(autoescape=False, undefined=ChainableUndefined)
    environment.globals.clear()  # range, dict, lipsum, cycler…: nothing a headline needs
    kept = {name: environment.filters[name] for name in FILTERS if name in environment.filters}
    environment.filters.clear()
    environment.filters.update({name: _guarded(name, f) for name, f in kept.items()})
    environment.filters["money"] = _guarded("money", _money)
    return environment


def _problems(tree: nodes.Template) -> Iterator[tuple[str, int | None]]:
    """Every construct of ``tree`` outside the headline language, with its line."""

    def walk(node: nodes.Node, loops: int) -> Iterator[tuple[str, int | None]]:
        line = getattr(node, "lineno", None)
        if not isinstance(node, _ALLOWED_NODES):
            yield f"{type(node).__name__.lower()} is not allowed in a headline", line
            return
        if isinstance(node, nodes.Name) and node.name.startswith("_"):
            yield f"'{node.name}' is internal and cannot be read", line
        elif isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            yield f"attribute '{node.attr}' is internal and cannot be read", line
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
            and node.arg.value.startswith("_")
        ):
            yield f"key '{node.arg.value}' is internal and cannot be read", line
        elif isinstance(node, nodes.Filter) and node.name not in FILTERS:
            allowed = ", ".join(sorted(FILTERS))
            yield f"filter '{node.name}' is not allowed (allowed: {allowed})", line
        elif isinstance(node, nodes.For):
            if node.recursive:
                yield "recursive loops are not allowed", line
            loops += 1
            if loops > MAX_LOOP_DEPTH:
                yield f"loops may be nested at most {MAX_LOOP_DEPTH} deep", line
        for child in node.iter_child_nodes():
            yield from walk(child, loops)

    yield from walk(tree, 0)


class HeadlineTemplate:
    """A compiled headline template; :meth:`render` it for each recipient (thread-safe)."""

    __slots__ = ("_compiled", "_environment", "error", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._environment = _environment()
        self._compiled = None
        self.error: TemplateError | None = None
        try:
            self._compiled = self._compile()
        except TemplateError as error:
            self.error = error

    def _compile(self) -> Any:
        if len(self.source) > MAX_SOURCE:
            raise TemplateError(f"a headline template has at most {MAX_SOURCE} characters")
        try:
            tree = self._environment.parse(self.source)
        except TemplateSyntaxError as error:
            raise TemplateError(f"syntax error: {error.message}", error.lineno) from None
        for message, line in _problems(tree):
            raise TemplateError(message, line)
        try:
            return self._environment.from_string(tree)
        except TemplateSyntaxError as error:  # e.g. a test that does not exist
            raise TemplateError(f"syntax error: {error.message}", error.lineno) from None

    def validate(self) -> None:
        """Raise :class:`TemplateError` (code ``invalid_template``) if the template cannot be
        used; call it when the block is saved."""
        if self.error is not None:
            raise self.error

    def render(
        self,
        variables: Mapping[str, Any],
        *,
        max_length: int,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    ) -> str:
        """The template's text for ``variables``, cut at ``max_length`` characters; raises
        :class:`HeadlineRenderError` for an invalid template, an error, or a render slower
        than ``time_limit_s``."""
        if self._compiled is None:
            raise HeadlineRenderError(str(self.error))
        deadline = time.perf_counter() + time_limit_s
        parts: list[str] = []
        length = 0
        try:
            for part in self._compiled.generate(variables):
                parts.append(part)
                length += len(part)
                if length >= max_length:
                    break
                if time.perf_counter() > deadline:
                    raise HeadlineRenderError("the headline took too long to render")
        except HeadlineRenderError:
            raise
        except Exception as error:  # anything a template does wrong is the template's fault
            raise HeadlineRenderError(f"{type(error).__name__}: {error}") from error
        if time.perf_counter() > deadline:
            raise HeadlineRenderError("the headline took too long to render")
        return "".join(parts)[:max_length]
