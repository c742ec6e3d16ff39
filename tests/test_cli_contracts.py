"""``ode components``, ``ode init``, ``ode diff``, ``ode import`` and ``ode catalog`` as a user types them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.kinds import KINDS
from ode import load_library
from ode.authoring.evolution import schema_changes

from .cli_runner import Ran, ode
from .conftest import SAMPLE, committed_sample, git

# -- ode components ---------------------------------------------------------------------------------------------


def test_components_json_lists_every_kind_with_its_settings() -> None:
    result = ode("components", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["kind"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(KINDS) and len(rows) == 7
    api = rows["serverless-api"]
    assert set(api["provides"]) == set(KINDS["serverless-api"].provides)
    assert api["access"]["table"] == ["read", "write", "read-write"]
    memory = next(s for s in api["settings"] if s["name"] == "memory_mb")
    assert memory["default"] == 256 and memory["limits"]["minimum"] == 128 and memory["description"]
    # Every field of every settings model is there (new fields show up without a change here).
    for name, kind in KINDS.items():
        assert {s["name"] for s in rows[name]["settings"]} == set(kind.settings.model_fields)


def test_components_text_names_settings_and_accesses() -> None:
    out = ode("components").stdout
    assert "data-store:" in out and "table (access: read, write, read-write)" in out
    assert "memory_mb: integer, default 256; minimum 128, maximum 10240" in out


# -- ode init ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_init_writes_a_contract_that_validates_unchanged(tmp_path: Path, kind: str) -> None:
    lib = tmp_path / "contracts"
    shutil.copytree(SAMPLE, lib)
    result = ode("init", "billing", "--component", kind, "--contracts", str(lib))
    assert result.exit_code == 0, result.output
    library = load_library(lib)
    assert library.contexts["billing"].component == kind
    code = lib / "services" / "billing" / "src" / "index.py"  # inside the library, next to the contracts
    assert code.exists() == (kind in ("serverless-api", "event-worker", "workflow"))
    if code.exists():
        text = code.read_text()
        assert "ODE_CONTEXT" in text and "def handler(" in text
        compile(text, str(code), "exec")
        settings = library.contexts["billing"].settings
        if "code" in KINDS[kind].settings.model_fields:
            assert settings["code"] == "services/billing/src"  # the sample's convention (orders, storefront)
    assert not (tmp_path / "services").exists()


def test_init_starts_a_new_library(tmp_path: Path) -> None:
    lib = tmp_path / "fresh"
    result = ode("init", "billing", "--component", "event-worker", "--dir", str(lib))
    assert result.exit_code == 0, result.output
    library = load_library(lib)  # environments.yaml written too: the new library validates as it is
    assert list(library.contexts) == ["billing"] and "dev" in library.environments.environments
    assert (lib / "services" / "billing" / "src" / "index.py").exists()


def test_the_sample_docs_and_init_agree_on_where_code_lives() -> None:
    for name in ("orders", "storefront"):
        settings = yaml.safe_load((SAMPLE / f"{name}.yaml").read_text())["settings"]
        assert (settings.get("code") or settings.get("build")).startswith(f"services/{name}")
    for doc in (SAMPLE.parent / "README.md", SAMPLE.parent / "docs" / "contracts.md"):
        text = doc.read_text()
        assert not re.search(r"(code|build): \.\./services|/\.\./services/NAME", text), doc
        assert "code: services/orders/src" in text, doc


@pytest.mark.parametrize("name, kind, interface", [
    ("bus", "event-bus", "bus"), ("shared-bus", "event-bus", "shared-bus"), ("events", "event-bus", "events-bus"),
    ("billing", "serverless-api", "billing-api"), ("orders-api", "serverless-api", "orders-api"),
])
def test_init_names_the_interface_without_stutter(tmp_path: Path, name: str, kind: str, interface: str) -> None:
    result = ode("init", name, "--component", kind, "--contracts", str(tmp_path / "lib"))
    assert result.exit_code == 0, result.output
    assert list(load_library(tmp_path / "lib").contexts[name].provides) == [interface]


def _one_line(result: Ran) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def test_init_refuses_reserved_names_and_unwritable_places(tmp_path: Path) -> None:
    lib = tmp_path / "contracts"
    shutil.copytree(SAMPLE, lib)
    before = (lib / "environments.yaml").read_text()
    assert "'environments' is reserved" in _one_line(ode("init", "environments", "--component", "data-store",
                                                         "--contracts", str(lib)))
    assert (lib / "environments.yaml").read_text() == before
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert "not a folder" in _one_line(ode("init", "x", "--component", "data-store", "--dir", str(a_file)))
    assert "a-file" in _one_line(ode("init", "x", "--component", "data-store", "--dir", str(a_file / "sub")))
    assert "/proc" in _one_line(ode("init", "x", "--component", "data-store", "--dir", "/proc/ode-new"))
    assert "/proc" in _one_line(ode("init", "x", "--component", "event-worker", "--dir", str(tmp_path / "ok"),
                                    "--code-dir", "/proc/ode-code"))
    assert not (tmp_path / "ok" / "x.yaml").exists()  # checked before anything is written


def test_init_never_writes_through_a_symlink(tmp_path: Path) -> None:
    lib = tmp_path / "contracts"
    lib.mkdir()
    elsewhere = tmp_path / "elsewhere"
    (lib / "billing.yaml").symlink_to(elsewhere / "billing.yaml")  # dangling
    line = _one_line(ode("init", "billing", "--component", "data-store", "--contracts", str(lib)))
    assert "billing.yaml" in line and "symlink" in line
    (lib / "billing.yaml").unlink()
    (lib / "environments.yaml").symlink_to(elsewhere / "environments.yaml")  # dangling too
    line = _one_line(ode("init", "billing", "--component", "data-store", "--contracts", str(lib)))
    assert "environments.yaml" in line and "symlink" in line
    assert not elsewhere.exists() and not (lib / "billing.yaml").exists()


def test_init_refuses_to_overwrite_and_bad_names(tmp_path: Path) -> None:
    lib = tmp_path / "contracts"
    shutil.copytree(SAMPLE, lib)
    again = ode("init", "orders", "--component", "data-store", "--contracts", str(lib))
    assert again.exit_code == 2 and "exists already" in again.stderr
    bad = ode("init", "Bad_Name", "--component", "data-store", "--contracts", str(lib))
    assert bad.exit_code == 2 and "not a context name" in bad.stderr
    kind = ode("init", "x", "--component", "lambda", "--contracts", str(lib))
    assert kind.exit_code == 2 and "unknown kind 'lambda'" in kind.stderr


# -- ode diff ---------------------------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of the sample library, committed once."""
    return committed_sample(tmp_path / "repo")


def edit(path: Path, change: Any) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def drop_total(version: str) -> Any:
    def change(data: dict[str, Any]) -> None:
        event = data["provides"]["OrderPlaced"]
        event["version"] = version
        del event["schema"]["properties"]["total"]
        event["schema"]["required"] = ["order_id"]
    return change


def test_diff_breaking_change_without_major_version_fails(repo: Path) -> None:
    edit(repo / "contracts" / "orders.yaml", drop_total("1.1.0"))
    result = ode("diff", "--since", "HEAD", "--contracts", str(repo / "contracts"))
    assert result.exit_code == 1
    assert "orders/OrderPlaced" in result.stdout and "property total removed" in result.stdout
    assert "consumers: notifications, payments" in result.stdout
    assert "orders/OrderPlaced" in result.stderr
    data = json.loads(ode("diff", "--since", "HEAD", "--format", "json", "--contracts",
                          str(repo / "contracts")).stdout)
    (report,) = data["interfaces"]
    assert report["verdict"] == "error" and report["consumers"] == ["notifications", "payments"]
    assert [c["rule"] for c in report["changes"]] == ["property-removed"]


def test_diff_with_major_version_names_consumers_that_must_move(repo: Path) -> None:
    edit(repo / "contracts" / "orders.yaml", drop_total("2.0.0"))
    result = ode("diff", "--since", "HEAD", "--contracts", str(repo / "contracts"))
    assert result.exit_code == 0, result.output
    # payments asks for 1.x; notifications takes any version.
    assert "consumers that must move: payments" in result.stdout
    sarif = json.loads(ode("diff", "--since", "HEAD", "--format", "sarif", "--contracts",
                           str(repo / "contracts")).stdout)
    (found,) = sarif["runs"][0]["results"]
    assert found["ruleId"] == "property-removed" and found["properties"]["mustMove"] == ["payments"]
    assert found["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("orders.yaml")


def test_diff_compatible_changes_and_needless_major(repo: Path) -> None:
    def add(data: dict[str, Any]) -> None:
        data["provides"]["OrderPlaced"]["schema"]["properties"]["currency"] = {"type": "string"}
        data["provides"]["orders-api"]["routes"].append("DELETE /orders/{id}")
        data["provides"]["orders-api"]["version"] = "2.0.0"
    edit(repo / "contracts" / "orders.yaml", add)
    result = ode("diff", "--since", "HEAD", "--format", "json", "--contracts", str(repo / "contracts"))
    assert result.exit_code == 0
    verdicts = {r["interface"]: r["verdict"] for r in json.loads(result.stdout)["interfaces"]}
    assert verdicts == {"OrderPlaced": "compatible", "orders-api": "needless-major"}


def test_diff_removed_route_interface_and_kind(repo: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["provides"]["orders-api"]["routes"] = ["POST /orders"]
        del data["provides"]["orders-table"]
    edit(repo / "contracts" / "orders.yaml", change)
    result = ode("diff", "--since", "HEAD", "--format", "json", "--contracts", str(repo / "contracts"))
    assert result.exit_code == 1
    reports = {r["interface"]: r for r in json.loads(result.stdout)["interfaces"]}
    assert reports["orders-api"]["changes"][0]["rule"] == "route-removed"
    assert reports["orders-table"]["verdict"] == "error" and "fulfilment" in reports["orders-table"]["consumers"]


def test_diff_unknown_ref_and_no_repository(repo: Path, tmp_path: Path) -> None:
    result = ode("diff", "--since", "nope", "--contracts", str(repo / "contracts"))
    assert result.exit_code == 2 and "does not know the ref 'nope'" in result.stderr
    plain = tmp_path / "plain"
    shutil.copytree(SAMPLE, plain)
    outside = ode("diff", "--since", "HEAD", "--contracts", str(plain))
    assert outside.exit_code == 2 and "git" in outside.stderr


@pytest.mark.parametrize(("old", "new", "rule"), [
    ({"type": "object", "properties": {"a": {"type": "string"}}}, {"type": "object", "properties": {}},
     "property-removed"),
    ({"properties": {"a": {"type": "string"}}}, {"properties": {"a": {"type": "integer"}}}, "property-retyped"),
    ({"properties": {"a": {"enum": ["x", "y"]}}}, {"properties": {"a": {"enum": ["x"]}}}, "enum-narrowed"),
    ({"properties": {"a": {"type": "string"}}}, {"properties": {"a": {"type": "string"}}, "required": ["a"]},
     "required-added"),
    ({"properties": {"a": {"type": "string", "maxLength": 10}}},
     {"properties": {"a": {"type": "string", "maxLength": 5}}}, "constraint-tightened"),
    ({"properties": {"a": {"type": "integer"}}}, {"properties": {"a": {"type": "number"}}}, "constraint-relaxed"),
    ({"properties": {"a": {"enum": ["x"]}}}, {"properties": {"a": {"enum": ["x", "y"]}}}, "enum-widened"),
])
def test_schema_rules(old: dict[str, Any], new: dict[str, Any], rule: str) -> None:
    assert rule in [r for r, _ in schema_changes(old, new)]


# -- ode import -------------------------------------------------------------------------------------------------

OPENAPI = """\
openapi: 3.0.3
info: {title: Billing API, version: "2.1"}
paths:
  /invoices:
    get:
      responses: {"200": {description: ok, content: {application/json: {schema: {$ref: "#/components/schemas/I"}}}}}
    post: {responses: {"201": {description: created}}}
  /invoices/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    delete: {responses: {"204": {description: gone}}}
components:
  schemas:
    I: {type: object}
"""

ASYNCAPI = """\
asyncapi: 2.6.0
info: {title: Invoicing, version: 1.2.0}
channels:
  invoices/issued:
    subscribe:
      message: {$ref: "#/components/messages/InvoiceIssued"}
  orders/placed:
    publish:
      message: {name: order.placed, payload: {type: object}}
  mystery:
    publish:
      message: {name: SomethingElse, payload: {type: object}}
components:
  messages:
    InvoiceIssued:
      summary: An invoice went out.
      payload:
        type: object
        required: [invoice_id]
        properties:
          invoice_id: {type: string}
          amount: {type: number, minimum: 0}
"""

ASYNCAPI_3 = """\
asyncapi: 3.0.0
info: {title: Shipping, version: 0.3.0}
channels:
  shipped:
    address: shipping.shipped
    messages:
      ParcelShipped: {payload: {type: object, properties: {parcel_id: {type: string}}}}
  captured:
    address: payments.captured
    messages:
      PaymentCaptured: {payload: {type: object}}
operations:
  sendShipped:
    action: send
    channel: {$ref: "#/channels/shipped"}
    messages: [{$ref: "#/channels/shipped/messages/ParcelShipped"}]
  onCaptured:
    action: receive
    channel: {$ref: "#/channels/captured"}
"""


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    dest = tmp_path / "contracts"
    shutil.copytree(SAMPLE, dest)
    return dest


def test_import_openapi(lib: Path, tmp_path: Path) -> None:
    spec = tmp_path / "billing.yaml"
    spec.write_text(OPENAPI)
    result = ode("import", "openapi", str(spec), "--context", "billing", "--contracts", str(lib))
    assert result.exit_code == 0, result.output
    api = load_library(lib).contexts["billing"].provides["billing-api"]
    assert api.kind == "http-api" and api.version == "2.1.0"
    assert api.routes == ["GET /invoices", "POST /invoices", "DELETE /invoices/{id}"]  # type: ignore[union-attr]
    again = ode("import", "openapi", str(spec), "--context", "billing", "--contracts", str(lib))
    assert again.exit_code == 2 and "exists already" in again.stderr


def test_import_openapi_rejects_what_is_not_openapi(lib: Path, tmp_path: Path) -> None:
    spec = tmp_path / "x.yaml"
    spec.write_text(ASYNCAPI)
    result = ode("import", "openapi", str(spec), "--context", "billing", "--contracts", str(lib))
    assert result.exit_code == 2 and "not a valid OpenAPI document" in result.stderr
    assert "ode import asyncapi" in result.stderr


def test_import_asyncapi_into_a_library(lib: Path, tmp_path: Path) -> None:
    spec = tmp_path / "invoicing.yaml"
    spec.write_text(ASYNCAPI)
    result = ode("import", "asyncapi", str(spec), "--context", "invoicing", "--contracts", str(lib))
    assert result.exit_code == 0, result.output
    assert "SomethingElse" in result.stderr
    library = load_library(lib)  # the library with the imported contract is valid
    ctx = library.contexts["invoicing"]
    event = ctx.provides["InvoiceIssued"]
    assert event.kind == "event" and event.version == "1.2.0"
    assert event.event_schema["required"] == ["invoice_id"]  # type: ignore[union-attr]
    consumed = {(c.context, c.interface) for c in ctx.consumes}
    assert ("orders", "OrderPlaced") in consumed and ("shared-bus", "bus") in consumed
    assert "SomethingElse" in (lib / "invoicing.yaml").read_text()  # listed in the file for its reviewer


def test_import_asyncapi_3(lib: Path, tmp_path: Path) -> None:
    spec = tmp_path / "shipping.yaml"
    spec.write_text(ASYNCAPI_3)
    result = ode("import", "asyncapi", str(spec), "--context", "shipping", "--contracts", str(lib))
    assert result.exit_code == 0, result.output
    ctx = load_library(lib).contexts["shipping"]
    assert list(ctx.provides) == ["ParcelShipped"]
    assert ("payments", "PaymentCaptured") in {(c.context, c.interface) for c in ctx.consumes}


def test_import_asyncapi_bad_documents(lib: Path, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("asyncapi: 2.6.0\ninfo: {title: x, version: 1.0.0}\nchannels:\n  a:\n    subscribe:\n"
                    "      message: {$ref: '#/components/messages/Nope'}\n")
    result = ode("import", "asyncapi", str(spec), "--context", "x", "--contracts", str(lib))
    assert result.exit_code == 2 and "bad.yaml" in result.stderr
    spec.write_text("openapi: 3.0.0\n")
    result = ode("import", "asyncapi", str(spec), "--context", "x", "--contracts", str(lib))
    assert result.exit_code == 2 and "not an AsyncAPI" in result.stderr and "ode import openapi" in result.stderr


# -- ode catalog ------------------------------------------------------------------------------------------------


def test_catalog_backstage() -> None:
    result = ode("catalog", "--format", "backstage", "--contracts", str(SAMPLE))
    assert result.exit_code == 0, result.output
    entities = list(yaml.safe_load_all(result.stdout))
    components = {e["metadata"]["name"]: e for e in entities if e["kind"] == "Component"}
    apis = {e["metadata"]["name"]: e for e in entities if e["kind"] == "API"}
    library = load_library(SAMPLE)
    assert set(components) == set(library.contexts)
    assert len(apis) == sum(len(c.provides) for c in library.contexts.values())
    orders = components["orders"]["spec"]
    assert orders["owner"] == "team-orders"
    assert "orders-OrderPlaced" in orders["providesApis"]
    assert "payments-PaymentCaptured" in orders["consumesApis"]
    assert "component:catalog" in orders["dependsOn"]
    assert "component:fulfilment" not in orders["dependsOn"]  # events are not deploy edges
    assert "fulfilment-OrderShipped" in orders["consumesApis"]
    assert apis["orders-orders-api"]["spec"]["type"] == "openapi"
    assert "/orders/{id}" in yaml.safe_load(apis["orders-orders-api"]["spec"]["definition"])["paths"]
    assert apis["orders-OrderPlaced"]["spec"]["type"] == "asyncapi"
    for api in apis.values():
        assert api["spec"]["owner"] and api["spec"]["definition"]


def test_catalog_json_goes_to_the_output_file(tmp_path: Path) -> None:
    target = tmp_path / "catalog.json"
    result = ode("catalog", "--json", "--output", str(target), "--contracts", str(SAMPLE))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    entities = json.loads(target.read_text())
    assert {e["kind"] for e in entities} == {"System", "Component", "API"}
    yaml_target = tmp_path / "catalog.yaml"
    assert ode("catalog", "--output", str(yaml_target), "--contracts", str(SAMPLE)).exit_code == 0
    assert list(yaml.safe_load_all(yaml_target.read_text())) == entities


def test_catalog_output_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    line = _one_line(ode("catalog", "--output", str(tmp_path / "no" / "such" / "catalog.yaml"),
                         "--contracts", str(SAMPLE)))
    assert "does not exist" in line and str(tmp_path / "no" / "such") in line


# -- the reference ----------------------------------------------------------------------------------------------


def test_reference_is_in_the_repository_and_documents_every_diff_rule() -> None:
    from ode.authoring.evolution import RULES

    root = SAMPLE.parent
    assert "(docs/contracts.md)" in (root / "README.md").read_text()
    reference = (root / "docs" / "contracts.md").read_text()
    for rule in RULES:
        assert f"`{rule}`" in reference, rule
    for heading in ("## A bounded context", "## Interface kinds", "## environments.yaml", "## What is an error",
                    "## Versions and ranges", "## Evolving an interface"):
        assert heading in reference


def test_diff_refuses_a_working_tree_file_with_errors(repo: Path) -> None:
    def break_routes(data: dict[str, Any]) -> None:
        data["provides"]["orders-api"]["routes"] = ["FETCH /orders"]
    edit(repo / "contracts" / "orders.yaml", break_routes)
    result = ode("diff", "--since", "HEAD", "--contracts", str(repo / "contracts"))
    assert result.exit_code != 0
    assert "orders.yaml" in result.stderr and "routes" in result.stderr
    assert "removed" not in result.stdout  # not mistaken for a removed interface


def test_diff_of_a_library_at_the_repository_root(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "lib"
    shutil.copytree(SAMPLE, root)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "library")
    edit(root / "payments.yaml", lambda d: d["provides"].pop("PaymentCaptured"))
    data = json.loads(ode("diff", "--since", "HEAD", "--format", "json", "--contracts", str(root)).stdout)
    (report,) = data["interfaces"]
    assert report["interface"] == "PaymentCaptured" and report["verdict"] == "error"
    assert {"orders", "fulfilment"} <= set(report["consumers"])


def test_diff_of_http_payloads(repo: Path) -> None:
    def describe(data: dict[str, Any]) -> None:
        data["provides"]["orders-api"]["payloads"] = {"POST /orders": {
            "request": {"type": "object", "required": ["items"], "properties": {
                "items": {"type": "array"}, "note": {"type": "string"}}},
            "response": {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}},
        }}
    edit(repo / "contracts" / "orders.yaml", describe)
    git(repo, "commit", "-qam", "payloads")

    def change(data: dict[str, Any]) -> None:
        payload = data["provides"]["orders-api"]["payloads"]["POST /orders"]
        payload["request"]["required"] = ["items", "customer"]  # what consumers send must now carry more
        payload["request"]["properties"]["customer"] = {"type": "string"}
        del payload["response"]["properties"]["order_id"]  # what consumers read is gone
        payload["response"]["required"] = []
    edit(repo / "contracts" / "orders.yaml", change)
    result = ode("diff", "--since", "HEAD", "--format", "json", "--contracts", str(repo / "contracts"))
    assert result.exit_code == 1
    (report,) = json.loads(result.stdout)["interfaces"]
    found = {(c["rule"], c["detail"].split(":")[0]) for c in report["changes"]}
    assert ("required-added", "POST /orders request") in found
    assert ("property-removed", "POST /orders response") in found
    assert "storefront" in report["consumers"]


def test_payloads_name_listed_routes(lib: Path) -> None:
    edit(lib / "orders.yaml", lambda d: d["provides"]["orders-api"].update(
        payloads={"GET /order": {"response": {"type": "object"}}}))
    result = ode("validate", "--contracts", str(lib))
    assert result.exit_code != 0
    assert "provides.orders-api.payloads: 'GET /order' is not one of the routes" in result.stderr


def test_import_openapi_keeps_request_and_response_schemas(lib: Path, tmp_path: Path) -> None:
    spec = tmp_path / "billing.yaml"
    spec.write_text(OPENAPI.replace(
        "    post: {responses: {\"201\": {description: created}}}",
        "    post:\n      requestBody: {content: {application/json: {schema: {type: object, required: [amount]}}}}\n"
        "      responses: {\"201\": {description: created}}"))
    assert ode("import", "openapi", str(spec), "--context", "billing", "--contracts", str(lib)).exit_code == 0
    api = load_library(lib).contexts["billing"].provides["billing-api"]
    payloads = api.payloads  # type: ignore[union-attr]
    assert payloads["POST /invoices"].request == {"type": "object", "required": ["amount"]}
    assert payloads["GET /invoices"].response == {"type": "object"}  # the $ref resolved
