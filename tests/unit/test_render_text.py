"""The Text app and its sandboxed headline templates."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from PIL import Image

from tidings.content.render import (
    PNG,
    HeadlineTemplate,
    RenderCaches,
    RenderContext,
    RenderProfile,
    TemplateError,
    TextApp,
    TextConfig,
    TextStyle,
)
from tidings.content.render.headline import HeadlineRenderError
from tidings.content.render.testing import InMemoryCatalog, InMemoryImages
from tidings.content.render.text import _fit, variables

GREETING = "Still thinking about it, {{ first_name | default('there') }}?"


def ctx(traits: dict[str, Any] | None = None, **parts: Any) -> RenderContext:
    profile = RenderProfile.from_traits(traits or {}, **parts)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    return RenderContext(profile, InMemoryCatalog(), InMemoryImages(), now, RenderCaches())


def app(template: str = GREETING, **config: Any) -> TextApp:
    return TextApp(TextConfig(template=template, **config))


@pytest.mark.parametrize(
    ("traits", "expected"),
    [
        ({"first_name": "Ada"}, "Still thinking about it, Ada?"),
        ({"firstName": "Grace"}, "Still thinking about it, Grace?"),
        ({"name": "Alan Turing"}, "Still thinking about it, Alan?"),
        ({}, "Still thinking about it, there?"),
        ({"first_name": None}, "Still thinking about it, there?"),
    ],
)
def test_the_headline_is_personalised(traits: dict[str, Any], expected: str) -> None:
    assert app().text_for(ctx(traits)) == expected


def test_templates_read_traits_cart_and_activity_in_the_recipients_locale() -> None:
    cart = {
        "items": [{"name": "Tote"}, {"name": "Scarf"}],
        "quantity": 2,
        "value": 49.5,
        "currency": "EUR",
    }
    viewed = [{"product_id": "p1", "name": "Wool Coat"}]
    template = (
        "{{ plan | upper }}: {{ cart.items | map(attribute='name') | join(' & ') }} "
        "({{ cart.value | money }}), then {{ last_viewed.name }}"
        "{% if last_order %}!{% endif %}"
    )
    context = ctx({"locale": "de_DE", "plan": "gold"}, cart=cart, recently_viewed=viewed)
    assert app(template).text_for(context) == "GOLD: Tote & Scarf (49,50 €), then Wool Coat"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ traits.__class__ }}", "attribute '__class__' is internal"),
        ("{{ ''.__class__.__mro__ }}", "internal"),
        ("{{ traits['__globals__'] }}", "key '__globals__' is internal"),
        ("{{ _secret }}", "'_secret' is internal"),
        ("{{ range(10) | list }}", "call is not allowed"),
        ("{{ traits.update({}) }}", "call is not allowed"),
        ("{% set x = 1 %}{{ x }}", "assign is not allowed"),
        ("{% macro m() %}{% endmacro %}", "macro is not allowed"),
        ("{% include 'secrets.txt' %}", "include is not allowed"),
        ("{{ 9 ** 9 }}", "pow is not allowed"),
        ("{{ '%999999999s' % 'x' }}", "mod is not allowed"),
        ("{{ 'x' | center(80) }}", "filter 'center' is not allowed"),
        ("{{ x | attr('__class__') }}", "filter 'attr' is not allowed"),
        ("{% for a in b recursive %}{{ loop(a) }}{% endfor %}", "not allowed"),
        (
            "{% for a in x %}{% for b in a %}{% for c in b %}{% endfor %}{% endfor %}{% endfor %}",
            "nested at most 2 deep",
        ),
        ("Hello {{ first_name ", "syntax error"),
        ("{{ x is nosuchtest }}", "syntax error"),
        ("x" * 2001, "at most 2000 characters"),
    ],
)
def test_validate_refuses_templates_outside_the_headline_language(
    template: str, reason: str
) -> None:
    text_app = TextApp(TextConfig.model_construct(template=template))
    with pytest.raises(TemplateError, match=reason) as raised:
        text_app.validate()
    assert raised.value.error.code == "invalid_template"
    assert raised.value.error.field == "template"
    assert raised.value.status == 400


def test_a_valid_template_validates() -> None:
    app().validate()
    listing = (
        "{% for p in recently_viewed %}{{ p.name }}{% if not loop.last %}, {% endif %}{% endfor %}"
    )
    app(listing).validate()
    assert app(listing).text_for(ctx(recently_viewed=[{"name": "A"}, {"name": "B"}])) == "A, B"


def test_errors_line_numbers() -> None:
    with pytest.raises(TemplateError, match=r"line 3"):
        HeadlineTemplate("Hi\nthere\n{{ x.__dict__ }}").validate()


def test_a_bad_template_renders_the_default_text() -> None:
    unsafe = app("{{ traits.__class__ }}", default_text="Still thinking about it?")
    assert unsafe.text_for(ctx({"first_name": "Ada"})) == "Still thinking about it?"
    failing = app("{{ 10 // zero }}", default_text="Fallback")
    assert failing.text_for(ctx({"zero": 0})) == "Fallback"
    assert app("{{ nothing }}", default_text="").render(ctx()).empty


def test_the_sandbox_reads_no_internals_even_by_computed_keys() -> None:
    template = HeadlineTemplate("[{{ traits[key] }}][{{ key | length }}]")
    text = template.render({"traits": {"a": 1}, "key": "__class__"}, max_length=100)
    assert text == "[][9]"


def test_output_is_capped_and_runaway_work_refused() -> None:
    long_name = {"first_name": "A" * 500}
    assert len(app(max_length=40).text_for(ctx(long_name))) == 40
    with pytest.raises(HeadlineRenderError, match="repeating more than 1000"):
        HeadlineTemplate("{{ 'ab' * n }}").render({"n": 10**9}, max_length=100)
    assert HeadlineTemplate("{{ 'ab' * n }}").render({"n": 3}, max_length=100) == "ababab"
    with pytest.raises(HeadlineRenderError, match="argument above 1000"):
        HeadlineTemplate("{{ s | truncate(n) }}").render({"s": "x", "n": 10**9}, max_length=9)
    blowup = "{{ s" + " | replace('a', 'aaaaaaaaaa')" * 6 + " }}"
    with pytest.raises(HeadlineRenderError, match="more than 10000"):
        HeadlineTemplate(blowup).render({"s": "aaaa"}, max_length=100)
    with pytest.raises(HeadlineRenderError, match="value of more than 10000"):
        HeadlineTemplate("{{ s | upper }}").render({"s": "x" * 20_000}, max_length=100)
    with pytest.raises(HeadlineRenderError, match="too long"):
        HeadlineTemplate("{% for x in xs %}{{ x }}{% endfor %}").render(
            {"xs": list(range(100))}, max_length=1000, time_limit_s=0
        )


def test_variables_leave_null_and_reserved_traits_out() -> None:
    profile = RenderProfile.from_traits({"first_name": None, "cart": "mine", "bad key": 1, "a": 2})
    found = variables(profile, None)
    assert "first_name" not in found
    assert found["cart"] is profile.cart
    assert "bad key" not in found
    assert found["a"] == 2


def test_the_headline_is_drawn_and_cached_by_text() -> None:
    caches = RenderCaches()
    style = TextStyle(width=500, height=70, scale=2)
    text_app = app(style=style, url="https://shop.example/cart")
    profile = RenderProfile.from_traits({"first_name": "Ada"})
    now = datetime(2026, 11, 23, tzinfo=UTC)
    context = RenderContext(profile, InMemoryCatalog(), InMemoryImages(), now, caches)
    rendered = text_app.render(context)
    assert rendered.content_type == PNG
    assert (rendered.width, rendered.height, rendered.display_width) == (1000, 140, 500)
    assert Image.open(io.BytesIO(rendered.data)).size == (1000, 140)
    assert rendered.slots[0].url == "https://shop.example/cart"
    assert rendered.slots[0].name == "Still thinking about it, Ada?"
    assert text_app.render(context).data is rendered.data
    assert caches.texts.hits == 1


def test_long_headlines_shrink_then_end_with_an_ellipsis() -> None:
    style = TextStyle(height=60, max_lines=1, font_size=30, min_font_size=12)
    fonts = RenderCaches().fonts
    short_font, short = _fit("Hi Ada", style, fonts)
    medium_font, medium = _fit("Still thinking about it, Bartholomew?", style, fonts)
    long_font, long = _fit("Still thinking about it? " * 6, style, fonts)
    assert short == ("Hi Ada",) and short_font.size == 30
    assert medium == ("Still thinking about it, Bartholomew?",) and medium_font.size < 30
    assert long_font.size == 12 and len(long) == 1 and long[0].endswith("…")
    rendered = app("{{ first_name }} " * 9, style=style).render(ctx({"first_name": "Maximilian"}))
    assert (rendered.width, rendered.height) == (600, 60)
