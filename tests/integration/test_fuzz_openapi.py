"""schemathesis against the app's own OpenAPI document: every operation, with and without auth.

Whatever a client sends, the answer is never a 5xx, and its status, content type and body are
the ones the document promises.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tidings.app import create_app
from tidings.core.settings import Settings
from tidings.testing import Credentials, prepare_database

ADMIN_PATHS = (
    "/v1/profiles",
    "/v1/pipeline",
    "/v1/catalog",
    "/v1/blocks",
    "/v1/emails",
    "/v1/campaigns",
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Thirty cases per operation and auth mode (derandomized, so CI runs the same ones each time):
# 144 test items, under two minutes on two cores (make test must stay well under 20 minutes).
FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


class FuzzTarget:
    def __init__(self, root: Path) -> None:
        url = f"sqlite:///{root / 'tidings.db'}"
        self.creds: Credentials = prepare_database(url)
        # A second source, so rotating a key never breaks the write key the other cases use.
        self.spare: Credentials = prepare_database(url, "spare source")
        self.app = create_app(
            Settings(
                database_url=url,
                data_dir=root / "data",
                debugger_poll_s=0.05,
                # One configured webhook, so /v1/webhooks/{esp} reaches its checks.
                webhook_postmark_token=SecretStr("fuzz-token"),
                # Inbound replies configured, so /v1/inbound/* reach their checks.
                inbound_sendgrid_secret=SecretStr("fuzz-secret"),
                inbound_mailgun_signing_key=SecretStr("fuzz-key"),
                smtp_host="127.0.0.1",
                smtp_port=9,  # nothing listens: a send fails per message, never a 5xx
                smtp_security="none",
                smtp_from="fuzz@shop.example",
            )
        )
        # A real block, so half the content cases open, click and read an existing one.
        self.block_id = _make_block(self.app, self.creds.admin_token)
        self.campaign_id = _make_campaign(self.app, self.creds.admin_token)

    def authorize(self, case: schemathesis.Case) -> None:
        """Credentials that get the case past auth, and real ids where the case names one."""
        path = case.operation.path
        params = case.path_parameters if case.path_parameters is not None else {}
        if path.startswith(("/i/", "/c/", "/v1/blocks")):
            for name in ("id", "block"):
                if name in params and _coin(case):
                    params[name] = self.block_id
            if path == "/i/{name}" and _coin(case):
                params["name"] = f"{self.block_id}.png"
        if path.startswith(("/i/", "/c/")):
            return
        if path.startswith("/v1/campaigns/") and "id" in params and _coin(case):
            params["id"] = self.campaign_id
        if path.startswith("/v1/inbound/sendgrid") and _coin(case):
            case.query = {**(case.query or {}), "secret": "fuzz-secret"}
            return
        if path.startswith("/v1/webhooks/") and _coin(case):
            params["esp"] = "postmark"
            case.headers = {**(case.headers or {}), "X-Tidings-Webhook-Token": "fuzz-token"}
            return
        if path.startswith(ADMIN_PATHS):
            case.headers = {
                **(case.headers or {}),
                "Authorization": f"Bearer {self.creds.admin_token}",
            }
            return
        if path.startswith("/v1/sources"):
            if "source_id" in params and _coin(case):
                real = case.operation.method.upper() == "GET"
                params["source_id"] = self.creds.source_id if real else self.spare.source_id
            if path.endswith("/stream"):
                # The stream otherwise runs as long as the case asks: up to a day.
                case.query = {**(case.query or {}), "max_seconds": 0.2}
            case.headers = {
                **(case.headers or {}),
                "Authorization": f"Bearer {self.creds.admin_token}",
            }
            return
        if "write_key" in params and _coin(case):
            params["write_key"] = self.creds.write_key
        basic = base64.b64encode(f"{self.creds.write_key}:".encode()).decode()
        case.headers = {**(case.headers or {}), "Authorization": f"Basic {basic}"}


def _make_block(app: Any, token: str) -> str:
    from starlette.testclient import TestClient

    body = {
        "name": "fuzz",
        "variants": [{"creative": {"app": "recently_viewed"}}],
        "fallback": {"kind": "collapse", "link_url": "https://shop.example/"},
    }
    with TestClient(app) as client:
        r = client.post("/v1/blocks", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def _make_campaign(app: Any, token: str) -> str:
    from starlette.testclient import TestClient

    body = {
        "name": "fuzz",
        "subject": "Hi",
        "html": "<p>Hi {{ first_name | default('there') }}</p>",
        "recipients": {"emails": ["fuzz@example.com"]},
    }
    with TestClient(app) as client:
        r = client.post("/v1/campaigns", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def _coin(case: schemathesis.Case) -> bool:
    """Half of the cases, picked reproducibly from what was generated."""
    return zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode()) % 2 == 0


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    target = FuzzTarget(tmp_path_factory.mktemp("fuzz"))
    try:
        yield target
    finally:
        shutdown_lifespans()  # stops the app's ingest writer and closes its database


def _one_level_of_rules(document: dict[str, Any]) -> dict[str, Any]:
    """The document with the targeting-rule combinators (``all``, ``any``, ``not``) holding
    leaf rules only. Their schemas refer to each other, and generating bodies for a recursive
    schema cost the suite minutes; nested rules are fuzzed by hypothesis in the rules' own
    tests (tests/unit/test_rules.py), and one level here still reaches every rule's checks."""
    schemas = document["components"]["schemas"]
    combinators = {
        name for name in schemas if name.split("-")[0] in ("AllRule", "AnyRule", "NotRule")
    }

    def leaves_only(node: Any) -> Any:
        if isinstance(node, dict):
            if "oneOf" in node and "discriminator" in node:
                refs = [
                    r for r in node["oneOf"] if r.get("$ref", "").split("/")[-1] not in combinators
                ]
                mapping = {
                    k: v
                    for k, v in node["discriminator"].get("mapping", {}).items()
                    if v.split("/")[-1] not in combinators
                }
                return {
                    **node,
                    "oneOf": refs,
                    "discriminator": {**node["discriminator"], "mapping": mapping},
                }
            return {k: leaves_only(v) for k, v in node.items()}
        if isinstance(node, list):
            return [leaves_only(v) for v in node]
        return node

    for name in combinators:
        schemas[name] = leaves_only(schemas[name])
    return document


# The document only: this app never serves a request (its engine never connects).
schema = schemathesis.openapi.from_dict(
    _one_level_of_rules(create_app(Settings(database_url="sqlite:///:memory:")).openapi())
)


@schema.parametrize()
@FUZZ
def test_every_operation_with_valid_auth(case: schemathesis.Case, fuzz_target: FuzzTarget) -> None:
    fuzz_target.authorize(case)
    case.call_and_validate(app=fuzz_target.app, checks=CHECKS, timeout=30)


@schema.parametrize()
@FUZZ
def test_every_operation_without_auth(case: schemathesis.Case, fuzz_target: FuzzTarget) -> None:
    if case.headers:
        case.headers.pop("Authorization", None)
    response = case.call_and_validate(app=fuzz_target.app, checks=CHECKS, timeout=30)
    if (
        case.operation.path.startswith(("/v1/sources", *ADMIN_PATHS))
        and case.method.upper() == case.operation.method.upper()
    ):
        # FastAPI parses a request body before it checks the token, so a body it cannot
        # parse is a 400/422 first; without a body there is nothing but the token to judge.
        allowed = {401} if case.operation.method.upper() == "GET" else {400, 401, 422}
        assert response.status_code in allowed, response.text
