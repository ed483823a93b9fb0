"""The admin UI's parts without HTTP: the chart, the login throttle, sessions, the secret key,
the block editor's form."""

from __future__ import annotations

import os
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tidings.core.clock import FrozenClock
from tidings.core.settings import Settings
from tidings.core.signing import secret_key as load_secret_key
from tidings.web.blocks import BlockForm, error_anchor, rule_form, rule_spec
from tidings.web.charts import Series, minute_chart, nice_ceiling
from tidings.web.sessions import SessionCodec
from tidings.web.throttle import LoginThrottle


def test_nice_ceilings() -> None:
    assert [nice_ceiling(v) for v in (0, 3, 5, 11, 99, 101, 240, 251, 7000)] == [
        4,
        4,
        5,
        20,
        100,
        200,
        250,
        500,
        10000,
    ]


def test_the_chart_draws_each_series_and_escapes_labels() -> None:
    first = int(datetime(2026, 11, 23, 11, 1, tzinfo=UTC).timestamp()) // 60
    values = [0] * 59 + [8]
    svg = str(
        minute_chart(
            [Series("<b>shop</b>", values, "#4f46e5"), Series("app", [2] * 60, "#d55e00")],
            first,
            "Events",
        )
    )
    assert svg.count("<polyline") == 2
    assert "&lt;b&gt;shop&lt;/b&gt; 8 (peak 8/min); app 120 (peak 2/min)" in svg
    assert "<b>" not in svg
    assert re.findall(r">(\d\d:\d\d|now)</text>", svg) == [
        "11:01",
        "11:16",
        "11:31",
        "11:46",
        "now",
    ]
    # The y axis reaches a round number at or above the peak; the last point sits on it.
    assert ">10</text>" in svg
    last_point = svg.split('points="')[1].split('"')[0].split()[-1]
    assert last_point == "708.0,48.0"  # x at the right edge, y at 8/10 of the plot height


def test_the_throttle_counts_per_account_and_address_and_forgets() -> None:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    throttle = LoginThrottle(clock, per_account=3, per_address=5, window=timedelta(minutes=10))
    for _ in range(3):
        assert throttle.retry_after("Ada@x.com", "10.0.0.1") == 0
        throttle.failed("ada@x.com ", "10.0.0.1")
    assert throttle.retry_after("ada@x.com", "10.0.0.2") == 600
    assert throttle.retry_after("bob@x.com", "10.0.0.1") == 0
    clock.advance(timedelta(minutes=4))
    assert throttle.retry_after("ada@x.com", None) == 360
    throttle.failed("bob@x.com", "10.0.0.1")
    throttle.failed("cy@x.com", "10.0.0.1")
    assert throttle.retry_after("dee@x.com", "10.0.0.1") == 360  # 5 from that address
    clock.advance(timedelta(minutes=6))
    assert throttle.retry_after("ada@x.com", "10.0.0.1") == 0
    throttle.failed("ada@x.com", None)
    throttle.succeeded("ada@x.com")
    assert throttle.retry_after("ada@x.com", None) == 0


def test_the_throttle_tracks_a_bounded_number_of_keys() -> None:
    clock = FrozenClock()
    throttle = LoginThrottle(clock, per_account=1, max_keys=100)
    for n in range(1000):
        throttle.failed(f"user{n}@x.com", None)
    assert len(throttle._failures) == 100
    assert throttle.retry_after("user999@x.com", None) > 0
    assert throttle.retry_after("user0@x.com", None) == 0  # the oldest were forgotten


def test_sessions_are_signed_and_expire_by_the_clock() -> None:
    clock = FrozenClock()
    codec = SessionCodec(b"k" * 40, clock, timedelta(hours=1))
    session = codec.signed_in("usr_1", 3)
    value = codec.dumps(session)
    assert codec.loads(value) == session
    assert SessionCodec(b"x" * 40, clock, timedelta(hours=1)).loads(value) is None
    flipped = "A" if value[-6] != "A" else "B"  # inside the signature, not its padding bits
    assert codec.loads(value[:-6] + flipped + value[-5:]) is None
    payload, _, signature = value.partition(".")
    assert codec.loads(payload[:-3] + "xyz." + signature) is None
    assert codec.loads("") is None and codec.loads("x" * 5000) is None
    clock.advance(timedelta(hours=1))
    expired = codec.loads(value)
    assert expired is not None and expired.user_id is None and expired.csrf == session.csrf
    assert session.csrf_matches(session.csrf) and not session.csrf_matches("")
    assert not session.csrf_matches(None)


def test_the_secret_key_is_made_once_privately(tmp_path: Path) -> None:
    settings = Settings(database_url="sqlite://", data_dir=tmp_path / "data")
    key = load_secret_key(settings)
    assert len(key) >= 32
    path = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secret_key(settings) == key
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]


def test_a_configured_secret_key_wins_and_must_be_long(tmp_path: Path) -> None:
    configured = Settings(
        database_url="sqlite://", data_dir=tmp_path, secret_key=SecretStr("s" * 40)
    )
    assert load_secret_key(configured) == b"s" * 40
    assert not (tmp_path / "secret_key").exists()
    with pytest.raises(ValueError, match="at least 32"):
        load_secret_key(configured.model_copy(update={"secret_key": SecretStr("short")}))


# -- the block editor's form ---------------------------------------------------------------------
COMMON_RULES = [
    {"type": "state", "field": "cart_quantity", "op": "gt", "value": 0},
    {"type": "state", "field": "cart_value", "op": "gt", "value": 49.5},
    {"type": "event", "event": "Product Viewed", "within": "7d"},
    {"type": "event", "event": "Order Completed", "within": "30d", "max": 0},
    {"type": "trait", "trait": "tier", "op": "eq", "value": "vip"},
    {"type": "audience", "audience": "winter-sale"},
    {"type": "context", "field": "hour", "op": "between", "value": [18, 23]},
    {"type": "bucket", "op": "lt", "value": 10},
]


@pytest.mark.parametrize("rule", COMMON_RULES)
def test_a_common_condition_opens_in_the_form_and_saves_unchanged(rule: dict[str, Any]) -> None:
    form = rule_form(rule)
    assert form.kind not in ("json", "always")
    assert rule_spec(form, "variants.0.rule") == rule


@pytest.mark.parametrize(
    "rule",
    [
        {"type": "trait", "trait": "tier", "op": "eq", "value": "vip", "case_sensitive": True},
        {"type": "trait", "trait": "age", "op": "eq", "value": 30},
        {"type": "event", "event": "Product Viewed", "within": "24h"},
        {"type": "audience", "audience": "vip", "member": False},
        {"type": "not", "rule": {"type": "bucket", "op": "lt", "value": 10}},
    ],
)
def test_any_other_rule_opens_as_json_and_saves_unchanged(rule: dict[str, Any]) -> None:
    form = rule_form(rule)
    assert form.kind == "json"
    assert rule_spec(form, "variants.0.rule") == rule


def test_a_block_survives_the_form_and_its_errors_find_their_input() -> None:
    spec = {
        "name": "Cart",
        "variants": [
            {
                "id": "cart",
                "rule": COMMON_RULES[0],
                "creative": {
                    "app": "cart_items",
                    "config": {"layout": {"columns": 2, "title": "Yours"}, "min_products": 1},
                },
            },
            {"id": "hi", "rule": None, "creative": {"app": "text", "config": {"template": "Hi"}}},
        ],
        "fallback": {
            "kind": "image",
            "image_url": "https://s.example/a.png",
            "link_url": "https://s.example/",
        },
        "utm": {"source": "tidings", "medium": None, "campaign": None, "content": None},
    }
    form = BlockForm.from_spec(spec)
    assert form.variants[0].columns == "2" and '"title": "Yours"' in form.variants[0].config
    out = form.to_spec()
    assert out["variants"][0]["creative"]["config"] == spec["variants"][0]["creative"]["config"]  # type: ignore[index]
    assert out["fallback"] == spec["fallback"] and out["utm"]["medium"] is None
    assert form.apply("down.0") and [v.id for v in form.variants] == ["hi", "cart"]
    assert not form.apply("save")
    assert error_anchor(form, "variants.1.creative.config.layout.columns") == "v1-columns"
    assert error_anchor(form, "variants.1.rule.state") == "v1-rule-kind"
    assert error_anchor(form, "fallback.image.image_url") == "fallback-image"
    assert error_anchor(form, "nowhere.at.all") == "block-name"
