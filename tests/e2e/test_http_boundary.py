"""What holds for every request, routed or not: capped headers (431), errors as problem+json
(unknown paths, wrong methods, documentation paths), OPTIONS naming every method of a path; the
documentation pages work offline; the document carries the constraints the service enforces."""

from __future__ import annotations

import re

from orchestrator.app import create_app
from orchestrator.platform import observability
from tests.e2e.conftest import serving
from tests.e2e.support import PROBLEM, Recorder, assert_problem

METHODS = ("get", "put", "post", "patch", "delete")
UUID = "00000000-0000-4000-8000-000000000000"


async def spec_of(client) -> dict:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200, r.text
    return r.json()


def concrete(path: str, op: dict) -> str:
    params = {p["name"]: UUID if p["schema"].get("format") == "uuid" else "x" for p in op.get("parameters", [])}
    return path.format(**params)


async def test_request_headers_over_the_cap_are_a_431_problem_routed_or_not(shop, settings):
    cap = settings.max_header_bytes
    for path in ("/v1/orders", "/health/live", "/no-such-path"):
        r = await shop.client.get(path, headers={**shop.admin, "X-Padding": "x" * cap})
        problem = assert_problem(r, 431, "request-headers-too-large")
        assert str(cap) in problem["detail"]
    r = await shop.client.get("/v1/orders", headers={**shop.admin, "X-Padding": "x" * (cap // 2)})
    assert r.status_code == 200, r.text
    r = await shop.client.get("/health/live", headers={"X-Padding": "x" * 1024 * 1024})
    assert_problem(r, 431, "request-headers-too-large")


async def test_errors_outside_the_handlers_are_problems(shop):
    for path in ("/nope", "/schema/nope", "/schema/nope/deeper", "/schema/assets/swagger-ui/missing.js"):
        r = await shop.client.get(path)
        assert_problem(r, 404, "not-found")
    r = await shop.client.post("/health/live")
    assert_problem(r, 405, "method-not-allowed")
    r = await shop.client.delete("/schema/openapi.json")
    assert_problem(r, 405, "method-not-allowed")


async def test_options_allows_every_method_of_every_path(shop):
    spec = await spec_of(shop.client)
    wrong = []
    for path, item in spec["paths"].items():
        methods = sorted({m.upper() for m in item if m in METHODS} | {"OPTIONS"})
        op = next(item[m] for m in item if m in METHODS)
        r = await shop.client.options(concrete(path, op))
        assert r.status_code == 204, (path, r.status_code, r.text)
        allow = sorted(m.strip() for m in r.headers["allow"].split(","))
        if allow != methods:
            wrong.append((path, allow, methods))
    assert not wrong, wrong


async def test_documentation_pages_load_only_local_assets_that_answer(shop):
    for page, script in (
        ("/schema", "swagger-ui-bundle.js"),
        ("/schema/swagger", "swagger-ui-bundle.js"),
        ("/schema/redoc", "redoc.standalone.js"),
    ):
        r = await shop.client.get(page)
        assert r.status_code == 200, (page, r.text)
        assert r.headers["content-type"].startswith("text/html")
        assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", r.text)
        assert any(a.endswith(script) for a in assets), (page, assets)
        assert not re.search(r"https?://", " ".join(assets)), (page, assets)
        assert "fonts.googleapis" not in r.text and "cdn." not in r.text, page
        for asset in assets:
            fetched = await shop.client.get(asset)
            assert fetched.status_code == 200, (page, asset, fetched.status_code)
            assert len(fetched.content) > 100, asset


def branch(spec: dict, schema: dict, kind: str) -> dict:
    """The non-null branch of a (possibly nullable) schema."""
    for option in schema.get("oneOf") or schema.get("anyOf") or [schema]:
        if "$ref" in option:
            option = spec["components"]["schemas"][option["$ref"].rsplit("/", 1)[1]]
        if option.get("type") == kind:
            return option
    raise AssertionError(f"no {kind} branch in {schema}")


def parameter(spec: dict, operation_id: str, name: str) -> dict:
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                return next(p for p in op["parameters"] if p["name"] == name)
    raise AssertionError(operation_id)


async def test_the_document_carries_the_constraints_the_service_enforces(client):
    spec = await spec_of(client)
    schemas = spec["components"]["schemas"]
    # The store queue's cursor is an opaque string like every other list's (issue 8).
    cursor = parameter(spec, "fulfillmentQueue", "cursor")["schema"]
    assert cursor == parameter(spec, "listOrders", "cursor")["schema"], cursor
    branch(spec, cursor, "string")
    safety = branch(spec, schemas["StockSet"]["properties"]["safety_stock"], "integer")
    assert safety.get("minimum") == 0, safety
    capacity = branch(spec, schemas["LocationPatch"]["properties"]["daily_capacity"], "integer")
    assert (capacity.get("minimum"), capacity.get("maximum")) == (0, 1_000_000), capacity
    exclude = schemas["SimulateIn"]["properties"]["exclude"]["items"]
    assert exclude.get("pattern") == "^[A-Za-z0-9_.:-]+$" and exclude.get("maxLength") == 40, exclude
    if_matches = [
        p
        for item in spec["paths"].values()
        for op in item.values()
        if isinstance(op, dict)
        for p in op.get("parameters", [])
        if p["name"] == "If-Match"
    ]
    assert len(if_matches) >= 10
    for p in if_matches:
        pattern = branch(spec, p["schema"], "string").get("pattern")
        assert pattern, p
        assert all(re.search(pattern, v) for v in ('"3"', 'W/"3"', "3")), pattern
        assert not any(re.search(pattern, v) for v in ("banana", "W/", "")), pattern


async def test_every_operation_with_a_body_documents_400_and_415_problems(client):
    spec = await spec_of(client)
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "requestBody" in op:
                for status in ("400", "415"):
                    content = op["responses"].get(status, {}).get("content", {})
                    assert list(content) == [PROBLEM], (method, path, status)


def referenced(spec: dict, schema: object, seen: set[str]) -> set[str]:
    """The names of the components ``schema`` refers to, directly or through others."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and (name := ref.rsplit("/", 1)[1]) not in seen:
            seen.add(name)
            referenced(spec, spec["components"]["schemas"][name], seen)
        for value in schema.values():
            referenced(spec, value, seen)
    elif isinstance(schema, list):
        for value in schema:
            referenced(spec, value, seen)
    return seen


async def test_request_body_schemas_say_unknown_fields_are_refused(client):
    spec = await spec_of(client)
    bodies: set[str] = set()
    for item in spec["paths"].values():
        for method in METHODS:
            if body := item.get(method, {}).get("requestBody"):
                referenced(spec, body, bodies)
    objects = [n for n in bodies if spec["components"]["schemas"][n].get("type") == "object"]
    assert {"CreateOrder", "ArrivalIn"} <= set(objects), objects
    open_ = [n for n in objects if spec["components"]["schemas"][n].get("additionalProperties") is not False]
    assert not open_, open_


async def test_a_request_refused_for_its_key_is_logged_with_the_status_it_got(shop, settings, monkeypatch):
    access = Recorder()
    monkeypatch.setattr(observability, "access_log", access)
    app = create_app(settings.model_copy(update={"access_log": True}), db=shop.db)
    async with serving(app) as client:
        for headers in ({}, {"Authorization": "Bearer oo_c_not-a-key"}):
            assert_problem(await client.get("/v1/orders", headers=headers), 401, "unauthenticated")
    assert [kw["status"] for _, event, kw in access.calls if event == "request"] == [401, 401], access.calls
