"""The block editor's form, apart from HTTP: a block's JSON as form fields and back.

The editor is one HTML form of flat fields (``variants.1.creative.app``, ``variants.1.rule.kind``,
…) that works without JavaScript: adding, removing and moving variants are submit buttons the
server answers with the form changed (nothing saved). Saving turns the fields into the block's
JSON and sends it through the API's own validation (:func:`~tidings.content.blocks.parse_block`
and the block service), so a 422 names the same field the API would; :func:`error_anchor` finds
the input that field belongs to, so the message shows next to it.

Rules are built in the form for the common conditions (:data:`RULE_KINDS`); any other rule is
edited as JSON. A saved rule the form can express opens in the form, anything else as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from pydantic import ValidationError

from tidings.content.preview import Previewer
from tidings.content.service import ContentService
from tidings.core.errors import TidingsError
from tidings.rules import describe, parse_rule, rule_json

PRODUCT_APPS: Final = ("recently_viewed", "cart_items", "last_order", "recommended")
APPS: Final = (
    ("cart_items", "Cart items"),
    ("recently_viewed", "Recently viewed"),
    ("recommended", "Recommended"),
    ("last_order", "Last order"),
    ("text", "Text headline"),
    ("countdown", "Countdown"),
)
APP_NAMES: Final = dict(APPS)
FORMATS: Final = (("", "The app's default"), ("png", "PNG"), ("jpeg", "JPEG"), ("gif", "GIF"))

# The conditions the form builds, and the inputs each one needs.
RULE_KINDS: Final = (
    ("always", "Always (a catch-all)", ()),
    ("cart_not_empty", "The cart is not empty", ()),
    ("cart_value_gt", "The cart value is more than X", ("x",)),
    ("viewed_within", "Viewed a product in the last N days", ("days",)),
    ("not_ordered_within", "Did not order in the last N days", ("days",)),
    ("trait_eq", "A trait equals a value", ("trait", "value")),
    ("in_audience", "Is in an audience", ("audience",)),
    ("local_hours", "Local time is between two hours", ("from_hour", "to_hour")),
    ("bucket_lt", "Random bucket (0-99) is below N", ("n",)),
    ("json", "Another rule (JSON)", ("json",)),
)
RULE_INPUTS: Final = {kind: inputs for kind, _, inputs in RULE_KINDS}
RULE_PARAMS: Final = (
    "x",
    "days",
    "trait",
    "value",
    "audience",
    "from_hour",
    "to_hour",
    "n",
    "json",
)
MAX_FORM_VARIANTS: Final = 20
VIEWED, ORDERED = "Product Viewed", "Order Completed"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


@dataclass(slots=True)
class RuleForm:
    """One variant's rule as the form holds it: a kind and its inputs (all text)."""

    kind: str = "always"
    params: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        return self.params.get(name, "")


@dataclass(slots=True)
class VariantForm:
    id: str = ""
    app: str = "cart_items"
    format: str = ""
    columns: str = ""
    rows: str = ""
    width: str = ""
    template: str = ""
    deadline: str = ""
    config: str = ""  # the rest of the app's config, as JSON
    rule: RuleForm = field(default_factory=RuleForm)


@dataclass(slots=True)
class BlockForm:
    """A block as the editor's fields hold it."""

    name: str = ""
    lock_after_first_open: bool = False
    machine_opens: str = "render"
    timezone: str = "UTC"
    utm: dict[str, str] = field(default_factory=lambda: {"source": "tidings", "medium": "email"})
    fallback_kind: str = "collapse"
    fallback_image_url: str = ""
    fallback_link_url: str = ""
    variants: list[VariantForm] = field(default_factory=list)

    @classmethod
    def new(cls) -> BlockForm:
        return cls(variants=[VariantForm(id="default")])

    # -- from a saved block ---------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> BlockForm:
        """The fields showing a block's JSON (as :class:`BlockIn` dumps it)."""
        fallback = spec.get("fallback") or {}
        utm = spec.get("utm") or {}
        return cls(
            name=str(spec.get("name", "")),
            lock_after_first_open=bool(spec.get("lock_after_first_open")),
            machine_opens=str(spec.get("machine_opens", "render")),
            timezone=str(spec.get("timezone", "UTC")),
            utm={k: _text(utm.get(k)) for k in ("source", "medium", "campaign", "content")},
            fallback_kind=str(fallback.get("kind", "collapse")),
            fallback_image_url=_text(fallback.get("image_url")),
            fallback_link_url=_text(fallback.get("link_url")),
            variants=[_variant_form(v) for v in spec.get("variants") or []],
        )

    # -- from the submitted form ----------------------------------------------------------
    @classmethod
    def from_form(cls, form: Mapping[str, Any]) -> BlockForm:
        def get(name: str, default: str = "") -> str:
            value = form.get(name)
            return value.strip() if isinstance(value, str) else default

        indices = sorted(
            {
                int(key.split(".")[1])
                for key in form
                if key.startswith("variants.") and key.split(".")[1].isdigit()
            }
        )[:MAX_FORM_VARIANTS]
        variants = []
        for i in indices:
            p = f"variants.{i}."
            kind = get(p + "rule.kind", "always")
            params = {n: get(p + "rule." + n) for n in RULE_PARAMS}
            variants.append(
                VariantForm(
                    id=get(p + "id"),
                    app=get(p + "creative.app", "cart_items"),
                    format=get(p + "creative.format"),
                    columns=get(p + "columns"),
                    rows=get(p + "rows"),
                    width=get(p + "width"),
                    template=get(p + "template"),
                    deadline=get(p + "deadline"),
                    config=get(p + "config"),
                    rule=RuleForm(kind, params),
                )
            )
        return cls(
            name=get("name"),
            lock_after_first_open=get("lock_after_first_open") == "on",
            machine_opens=get("machine_opens", "render"),
            timezone=get("timezone") or "UTC",
            utm={k: get(f"utm.{k}") for k in ("source", "medium", "campaign", "content")},
            fallback_kind=get("fallback.kind", "collapse"),
            fallback_image_url=get("fallback.image_url"),
            fallback_link_url=get("fallback.link_url"),
            variants=variants,
        )

    # -- the editor's buttons ---------------------------------------------------------------
    def apply(self, op: str) -> bool:
        """Add, remove or move a variant (``add``, ``remove.2``, ``up.2``, ``down.2``); False
        for anything else (``save``)."""
        name, _, index = op.partition(".")
        if name == "add":
            if len(self.variants) < MAX_FORM_VARIANTS:
                self.variants.append(VariantForm(id=self._free_id(), app="text"))
            return True
        if not index.isdigit() or int(index) >= len(self.variants):
            return False
        i = int(index)
        if name == "remove" and len(self.variants) > 1:
            del self.variants[i]
        elif name == "up" and i > 0:
            self.variants[i - 1], self.variants[i] = self.variants[i], self.variants[i - 1]
        elif name == "down" and i + 1 < len(self.variants):
            self.variants[i + 1], self.variants[i] = self.variants[i], self.variants[i + 1]
        return name in ("remove", "up", "down")

    def _free_id(self) -> str:
        taken = {v.id for v in self.variants}
        n = len(self.variants) + 1
        while f"variant-{n}" in taken:
            n += 1
        return f"variant-{n}"

    # -- to the block's JSON ------------------------------------------------------------------
    def to_spec(self) -> dict[str, Any]:
        """The block's JSON, for :func:`parse_block`; raises 422 for a field the form itself
        cannot read (a number that is not one, JSON that does not parse)."""
        fallback: dict[str, Any] = {"kind": self.fallback_kind}
        if self.fallback_kind == "image":
            fallback["image_url"] = self.fallback_image_url
        if self.fallback_link_url or self.fallback_kind == "image":
            fallback["link_url"] = self.fallback_link_url
        return {
            "name": self.name,
            "lock_after_first_open": self.lock_after_first_open,
            "machine_opens": self.machine_opens,
            "timezone": self.timezone,
            "utm": {k: (v or None) for k, v in self.utm.items()},
            "fallback": fallback,
            "variants": [_variant_spec(v, f"variants.{i}") for i, v in enumerate(self.variants)],
        }


def _variant_form(spec: Mapping[str, Any]) -> VariantForm:
    creative = spec.get("creative") or {}
    app = str(creative.get("app", "cart_items"))
    config = dict(creative.get("config") or {})
    form = VariantForm(id=str(spec.get("id", "")), app=app, format=_text(creative.get("format")))
    if app in PRODUCT_APPS or app in ("text", "countdown"):
        part = "layout" if app in PRODUCT_APPS else "style"
        inner = dict(config.get(part) or {})
        form.width = _text(inner.pop("width", None))
        if app in PRODUCT_APPS:
            form.columns = _text(inner.pop("columns", None))
            form.rows = _text(inner.pop("rows", None))
        if inner:
            config[part] = inner
        else:
            config.pop(part, None)
        if app == "text":
            form.template = _text(config.pop("template", None))
        if app == "countdown":
            form.deadline = _text(config.pop("deadline", None))
    form.config = _json_text(config) if config else ""
    form.rule = rule_form(spec.get("rule"))
    return form


def rule_form(rule: Any) -> RuleForm:
    """The form's fields for a saved rule: a common condition in its own inputs, anything
    else as JSON."""
    if rule is None:
        return RuleForm("always")
    try:
        r = rule_json(parse_rule(rule))  # defaults left out: the shapes below are exact
    except ValidationError:
        return RuleForm("json", {"json": _json_text(rule)})
    kind: str | None = None
    params: dict[str, str] = {}
    t, op, value, keys = r.get("type"), r.get("op"), r.get("value"), set(r)
    if t == "always":
        kind = "always"
    elif t == "state" and keys == {"type", "field", "op", "value"} and op == "gt":
        if r["field"] in ("cart_quantity", "cart_items") and value == 0:
            kind = "cart_not_empty"
        elif r["field"] == "cart_value":
            kind, params = "cart_value_gt", {"x": _text(value)}
    elif t == "event" and str(r.get("within", "")).endswith("d"):
        days = str(r["within"])[:-1]
        if keys == {"type", "event", "within"} and r["event"] == VIEWED:
            kind, params = "viewed_within", {"days": days}
        elif keys == {"type", "event", "within", "max"} and (r["event"], r["max"]) == (ORDERED, 0):
            kind, params = "not_ordered_within", {"days": days}
    elif t == "trait" and op == "eq" and keys == {"type", "trait", "op", "value"}:
        if isinstance(value, str):
            kind, params = "trait_eq", {"trait": str(r["trait"]), "value": value}
    elif t == "audience" and keys == {"type", "audience"}:
        kind, params = "in_audience", {"audience": str(r["audience"])}
    elif t == "context" and keys == {"type", "field", "op", "value"} and isinstance(value, list):
        if r["field"] == "hour" and op == "between":
            kind = "local_hours"
            params = {"from_hour": _text(value[0]), "to_hour": _text(value[1])}
    elif t == "bucket" and op == "lt" and keys == {"type", "op", "value"}:
        kind, params = "bucket_lt", {"n": _text(value)}
    if kind is None:
        return RuleForm("json", {"json": _json_text(rule)})
    return RuleForm(kind, params)


def _number(text: str, where: str, what: str) -> int | float:
    try:
        number = float(text)
    except ValueError:
        raise TidingsError("invalid_number", f"{what}: enter a number", where, status=422) from None
    return int(number) if number.is_integer() else number


def rule_spec(rule: RuleForm, where: str) -> Any:
    """The rule's JSON from the form's fields (``None``: always); raises 422 at the input."""
    kind, get = rule.kind, rule.get
    if kind == "always":
        return None
    if kind == "cart_not_empty":
        return {"type": "state", "field": "cart_quantity", "op": "gt", "value": 0}
    if kind == "cart_value_gt":
        x = _number(get("x"), f"{where}.x", "the cart value")
        return {"type": "state", "field": "cart_value", "op": "gt", "value": x}
    if kind in ("viewed_within", "not_ordered_within"):
        days = _number(get("days"), f"{where}.days", "the number of days")
        if not isinstance(days, int) or days < 1:
            raise TidingsError(
                "invalid_number",
                "the number of days: a whole number, 1 or more",
                f"{where}.days",
                status=422,
            )
        if kind == "viewed_within":
            return {"type": "event", "event": VIEWED, "within": f"{days}d"}
        return {"type": "event", "event": ORDERED, "within": f"{days}d", "max": 0}
    if kind == "trait_eq":
        return {"type": "trait", "trait": get("trait"), "op": "eq", "value": get("value")}
    if kind == "in_audience":
        return {"type": "audience", "audience": get("audience")}
    if kind == "local_hours":
        low = _number(get("from_hour"), f"{where}.from_hour", "the first hour")
        high = _number(get("to_hour"), f"{where}.to_hour", "the last hour")
        return {"type": "context", "field": "hour", "op": "between", "value": [low, high]}
    if kind == "bucket_lt":
        return {"type": "bucket", "op": "lt", "value": _number(get("n"), f"{where}.n", "N")}
    if kind == "json":
        text = get("json")
        if not text:
            return None
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise TidingsError(
                "invalid_json", f"the rule is not JSON: {exc}", f"{where}.json", status=422
            ) from None
    raise TidingsError("invalid_rule", f"unknown condition {kind!r}", f"{where}.kind", status=422)


def check_rule(rule: RuleForm) -> dict[str, Any]:
    """The rule in words, or why it cannot be saved: what the editor shows as it is typed."""
    try:
        data = rule_spec(rule, "rule")
        parsed = parse_rule(data) if data is not None else None
    except TidingsError as exc:
        return {"ok": False, "field": exc.error.field, "message": exc.error.message}
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(["rule", *(str(p) for p in first.get("loc", ()))])
        return {"ok": False, "field": where, "message": first.get("msg", "invalid value")}
    if parsed is None:
        return {"ok": True, "text": "always", "rule": None}
    return {"ok": True, "text": describe(parsed), "rule": rule_json(parsed)}


def _variant_spec(v: VariantForm, where: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if v.config:
        try:
            loaded = orjson.loads(v.config)
        except orjson.JSONDecodeError as exc:
            raise TidingsError(
                "invalid_json",
                f"the other settings are not JSON: {exc}",
                f"{where}.creative.config",
                status=422,
            ) from None
        if not isinstance(loaded, dict):
            raise TidingsError(
                "invalid_json",
                "the other settings must be a JSON object",
                f"{where}.creative.config",
                status=422,
            )
        config = loaded
    part = "layout" if v.app in PRODUCT_APPS else "style"
    inner = dict(config.get(part) or {}) if isinstance(config.get(part, {}), dict) else {}
    managed = {"width": v.width}
    if v.app in PRODUCT_APPS:
        managed |= {"columns": v.columns, "rows": v.rows}
    for key, text in managed.items():
        if text:
            inner[key] = _number(text, f"{where}.creative.config.{part}.{key}", key)
    if inner:
        config[part] = inner
    if v.app == "text":
        config["template"] = v.template
    if v.app == "countdown" and v.deadline:
        config["deadline"] = v.deadline
    creative: dict[str, Any] = {"app": v.app, "config": config}
    if v.format:
        creative["format"] = v.format
    return {"id": v.id, "rule": rule_spec(v.rule, f"{where}.rule"), "creative": creative}


# -- where an error shows -----------------------------------------------------------------------
def anchors(form: BlockForm) -> dict[str, str]:
    """Each API field path the form shows, and the id of the input that shows it."""
    out = {
        "name": "block-name",
        "lock_after_first_open": "block-lock",
        "machine_opens": "block-machine",
        "timezone": "block-timezone",
        "utm": "block-utm-source",
        "fallback": "fallback-kind",
        "fallback.kind": "fallback-kind",
        "variants": "variants-title",
    }
    for k in ("source", "medium", "campaign", "content"):
        out[f"utm.{k}"] = f"block-utm-{k}"
    for kind in ("image", "collapse"):
        out[f"fallback.{kind}"] = "fallback-kind"
        out[f"fallback.{kind}.link_url"] = "fallback-link"
    out["fallback.link_url"] = "fallback-link"
    out["fallback.image.image_url"] = out["fallback.image_url"] = "fallback-image"
    for i, variant in enumerate(form.variants):
        p, v = f"variants.{i}", f"v{i}"
        out[p] = f"{v}-id"
        out[f"{p}.id"] = f"{v}-id"
        kind = variant.rule.kind
        out[f"{p}.rule"] = f"{v}-rule-json" if kind == "json" else f"{v}-rule-kind"
        out[f"{p}.rule.kind"] = f"{v}-rule-kind"
        for name in RULE_INPUTS.get(kind, ()):
            out[f"{p}.rule.{name}"] = f"{v}-rule-{name.replace('_', '-')}"
        out[f"{p}.creative"] = out[f"{p}.creative.app"] = f"{v}-app"
        out[f"{p}.creative.format"] = f"{v}-format"
        out[f"{p}.creative.config"] = f"{v}-config"
        for part in ("layout", "style"):
            out[f"{p}.creative.config.{part}.width"] = f"{v}-width"
            out[f"{p}.creative.config.{part}.format"] = f"{v}-format"
        out[f"{p}.creative.config.layout.columns"] = f"{v}-columns"
        out[f"{p}.creative.config.layout.rows"] = f"{v}-rows"
        out[f"{p}.creative.config.template"] = f"{v}-template"
        out[f"{p}.creative.config.deadline"] = f"{v}-deadline"
    return out


def error_anchor(form: BlockForm, field_path: str | None) -> str:
    """The id of the input a 422's ``field`` belongs to: the longest path the form shows that
    the field is, or is inside; ``block-name`` when none is."""
    known = anchors(form)
    parts = (field_path or "").split(".")
    for n in range(len(parts), 0, -1):
        found = known.get(".".join(parts[:n]))
        if found is not None:
            return found
    return "block-name"


# -- reading blocks for the pages -----------------------------------------------------------------
MAX_PROFILE_BLOCKS: Final = 20


def block_rows(content: ContentService) -> list[dict[str, Any]]:
    """The blocks list: each block with its variants' apps and its alarms (flush the decision
    log first)."""
    return [
        {
            "id": b.id,
            "name": b.name,
            "apps": [(v.id, APP_NAMES.get(v.kind, v.kind)) for v in b.variants],
            "format": b.main.format,
            "version": b.version,
            "updated_at": b.updated_at,
            "alarms": content.alarms(b.id),
        }
        for b in content.blocks.list()
    ]


def blocks_for(content: ContentService, recipient: str) -> list[dict[str, Any]]:
    """What each block shows ``recipient`` now (at most :data:`MAX_PROFILE_BLOCKS`): the
    block, the variant the waterfall picks (or the fallback and why) and the image."""
    previewer = Previewer(content)
    return [
        {"id": b.id, "name": b.name, "preview": previewer.preview(b.id, recipient)}
        for b in content.blocks.list()[:MAX_PROFILE_BLOCKS]
    ]
