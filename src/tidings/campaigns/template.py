"""A campaign's HTML as a Jinja2 template, rendered per recipient in Jinja's immutable sandbox.

Variables are the recipient's traits (``{{ first_name | default('there') }}``; a trait that is
missing is undefined, so ``default`` applies), plus ``email``, ``unsubscribe_url`` and the
function ``block(id, alt=None, slot=None)``, which inserts the creative tag of a content
block with tidings itself as the ESP: the real address and the send id are in its URLs.

Autoescaping is on: a trait holding ``<script>`` arrives as text. The output of ``block()`` is
markup. A template that does not compile is refused when the campaign is saved (a 422 naming
the line); one that fails for one recipient (a filter on the wrong type) fails that message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

BlockTag = Callable[[str, str | None, int | None], str]


class TemplateError(ValueError):
    """The template cannot be compiled or rendered; the message says where."""


def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(autoescape=True, undefined=Undefined)


class CampaignTemplate:
    """One campaign's compiled HTML."""

    def __init__(self, source: str) -> None:
        self.env = _environment()
        try:
            self.template = self.env.from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"line {exc.lineno}: {exc.message}") from None
        self.blocks = _blocks_named(self.env, source)

    def render(
        self, traits: Mapping[str, Any], extra: Mapping[str, Any], block_tag: BlockTag
    ) -> str:
        def block(block_id: str, alt: str | None = None, slot: int | None = None) -> Markup:
            return Markup(block_tag(str(block_id), alt, slot))  # noqa: S704 (our own HTML)

        values = {k: v for k, v in traits.items() if isinstance(k, str) and k.isidentifier()}
        values.update(extra)
        values["block"] = block
        try:
            return self.template.render(values)
        except Exception as exc:  # a filter on the wrong type, a sandbox refusal, ...
            raise TemplateError(f"{type(exc).__name__}: {exc}") from None


def _blocks_named(env: ImmutableSandboxedEnvironment, source: str) -> list[str]:
    """The block ids the template names literally (``block('blk_…')``), in order."""
    from jinja2 import nodes

    found: list[str] = []
    for call in env.parse(source).find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name == "block" and call.args:
            first = call.args[0]
            value = first.value if isinstance(first, nodes.Const) else None
            if isinstance(value, str) and value not in found:
                found.append(value)
    return found
