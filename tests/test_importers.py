"""``ode import openapi|asyncapi`` on real documents: recursive schemas, several services at once in any order,
every mapping and drop stated, and the sandbox: no network unless asked, no file outside the spec's folder, YAML
bombs refused in bounded time and memory."""

from __future__ import annotations

import http.server
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ode import load_library
from ode.authoring import specs
from ode.authoring.openapi import openapi_contract

from .cli_runner import Ran, ode
from .conftest import ROOT, SAMPLE

SPECS = Path(__file__).parent / "data" / "specs"
SOCIAL = SPECS / "social-media"
#: The five services of the public AsyncAPI example, as folders.
SERVICES = ["backend", "comments-service", "frontend", "notification-service", "public-api"]
ODE = str(Path(sys.executable).parent / "ode")


def one_line_error(result: Ran) -> str:
    """The single ``error:`` line of a refused command (exit 2, no traceback)."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    dest = tmp_path / "contracts"
    shutil.copytree(SAMPLE, dest)
    return dest


# -- OpenAPI: recursion, what is dropped, the wrong kind of document -----------------------------------------------

TREE = """\
openapi: 3.0.3
info: {title: Trees, version: "1.0"}
servers: [{url: "https://api.example.com/v1"}]
paths:
  /tree:
    get:
      responses:
        "200": {description: a tree, content: {application/json: {schema: {$ref: "#/components/schemas/Node"}}}}
  /forest:
    post:
      requestBody: {content: {application/json: {schema: {$ref: "#/components/schemas/Forest"}}}}
      responses: {"201": {description: planted}}
components:
  schemas:
    Node:
      type: object
      required: [name]
      properties:
        name: {type: string}
        children: {type: array, items: {$ref: "#/components/schemas/Node"}}
    Forest:
      type: object
      properties:
        trees: {type: array, items: {$ref: "#/components/schemas/Node"}}
        owner: {$ref: "#/components/schemas/Person"}
    Person: {type: object, properties: {name: {type: string}, friend: {$ref: "#/components/schemas/Friend"}}}
    Friend: {type: object, properties: {of: {$ref: "#/components/schemas/Person"}}}
"""


def test_recursive_schemas_are_kept_as_references(lib: Path, tmp_path: Path) -> None:
    spec = tmp_path / "trees.yaml"
    spec.write_text(TREE)
    result = ode("import", "openapi", str(spec), "--context", "trees", "--contracts", str(lib))
    assert result.exit_code == 0, result.output
    assert "recursive schemas kept as JSON Schema references" in result.stderr and "Node" in result.stderr
    text = (lib / "trees.yaml").read_text()
    assert "&id" not in text and "*id" not in text
    api = load_library(lib).contexts["trees"].provides["trees-api"]  # the library validates with it
    assert api.routes == ["GET /v1/tree", "POST /v1/forest"]  # type: ignore[union-attr]
    tree = api.payloads["GET /v1/tree"].response  # type: ignore[union-attr]
    assert tree is not None  # the payload is the recursion's root:
    assert tree["properties"]["children"]["items"] == {"$ref": "#"}
    forest = api.payloads["POST /v1/forest"].request  # type: ignore[union-attr]
    assert forest is not None and forest["properties"]["trees"]["items"] == {"$ref": "#/$defs/Node"}
    assert set(forest["$defs"]) == {"Node", "Person"}  # mutual recursion: Person -> Friend -> Person
    # The kept references mean what the document meant: any depth is valid, a wrong leaf deep down is not.
    deep: dict[str, Any] = {"name": "leaf"}
    for level in range(30):
        deep = {"name": f"n{level}", "children": [deep, {"name": "x"}]}
    jsonschema.validate(deep, tree)
    jsonschema.validate({"trees": [deep], "owner": {"friend": {"of": {"name": "p"}}}}, forest)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "a", "children": [{"children": []}]}, tree)  # a node without its name
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"owner": {"friend": {"of": {"name": 7}}}}, forest)


def test_recursion_across_files(lib: Path, tmp_path: Path) -> None:
    folder = tmp_path / "spec"
    (folder / "schemas").mkdir(parents=True)
    (folder / "api.yaml").write_text(
        "openapi: 3.1.0\ninfo: {title: Menus, version: 2.0.0}\npaths:\n  /menu:\n    get:\n      responses:\n"
        "        '200': {description: ok, content: {application/json: {schema: {$ref: 'schemas/menu.yaml#/Menu'}}}}\n")
    (folder / "schemas" / "menu.yaml").write_text(
        "Menu:\n  type: object\n  properties:\n    label: {type: string}\n"
        "    items: {type: array, items: {$ref: 'item.yaml'}}\n")
    (folder / "schemas" / "item.yaml").write_text(
        "type: object\nproperties:\n  submenu: {$ref: 'menu.yaml#/Menu'}\n  price: {type: number}\n")
    result = ode("import", "openapi", str(folder / "api.yaml"), "--context", "menus", "--contracts", str(lib))
    assert result.exit_code == 0, result.output
    menu = load_library(lib).contexts["menus"].provides["menus-api"].payloads["GET /menu"].response  # type: ignore
    assert menu is not None and menu["properties"]["items"]["items"]["properties"]["submenu"] == {"$ref": "#"}
    jsonschema.validate({"items": [{"submenu": {"items": [{"price": 2}]}}]}, menu)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"items": [{"submenu": {"items": [{"price": "two"}]}}]}, menu)


def test_what_openapi_drops_is_listed(lib: Path) -> None:
    result = ode("import", "openapi", str(SPECS / "tictactoe.yaml"), "--context", "games", "--contracts", str(lib))
    assert result.exit_code == 0, result.output
    header = [line for line in (lib / "games.yaml").read_text().splitlines() if line.startswith("#")]
    for kind, example in (("callbacks", "statusCallback"), ("links", "markSquare"), ("webhooks", "markStatus"),
                          ("security schemes", "defaultApiKey"), ("header parameters", "progressUrl")):
        assert any(f"dropped: {kind}" in line and example in line for line in header), (kind, header)
        assert f"dropped: {kind}" in result.stderr
    api = load_library(lib).contexts["games"].provides["games-api"]
    assert "PUT /board/{row}/{column}" in api.routes  # type: ignore[union-attr]


def test_a_base_path_is_prepended_and_said(lib: Path, tmp_path: Path) -> None:
    spec = tmp_path / "v2.yaml"
    spec.write_text("swagger: '2.0'\ninfo: {title: Old, version: '1.0.0'}\nbasePath: /api/\npaths:\n"
                    "  /things: {get: {responses: {'200': {description: ok, schema: {type: array}}}}}\n")
    result = ode("import", "openapi", str(spec), "--context", "old", "--output", "-", "--contracts", str(lib))
    assert result.exit_code == 0, result.output
    assert "basePath /api prepended to every route" in result.stderr
    assert "- GET /api/things" in result.stdout


@pytest.mark.parametrize("command, text, other", [
    ("openapi", "asyncapi: 3.0.0\ninfo: {title: x, version: 1.0.0}\n", "ode import asyncapi"),
    ("asyncapi", "openapi: 3.0.0\ninfo: {title: x, version: 1.0.0}\npaths: {}\n", "ode import openapi"),
    ("asyncapi", "swagger: '2.0'\ninfo: {title: x, version: 1.0.0}\npaths: {}\n", "ode import openapi"),
])
def test_the_wrong_kind_of_document_names_the_right_command(lib: Path, tmp_path: Path, command: str, text: str,
                                                            other: str) -> None:
    spec = tmp_path / "doc.yaml"
    spec.write_text(text)
    line = one_line_error(ode("import", command, str(spec), "--context", "x", "--contracts", str(lib)))
    assert other in line and "doc.yaml" in line


def _large_spec(folder: Path, paths: int) -> None:
    """A description split as large cloud APIs are: one file per operation, per response, per model, shared
    models; ``paths`` paths with two methods each."""
    for sub in ("ops", "responses", "models"):
        (folder / sub).mkdir(parents=True)
    (folder / "models" / "common.yaml").write_text(
        "Meta: {type: object, properties: {total: {type: integer}, next: {type: string}}}\n"
        "Error: {type: object, required: [id], properties: {id: {type: string}, message: {type: string}}}\n")
    lines = ["openapi: 3.0.0", "info: {title: Cloud, version: '2.0'}", "paths:"]
    for i in range(paths):
        lines.append(f"  /v2/things{i}/{{id}}:")
        lines.append(f"    get: {{$ref: 'ops/get{i}.yaml'}}")
        lines.append(f"    put: {{$ref: 'ops/put{i}.yaml'}}")
        for verb in ("get", "put"):
            body = (f"requestBody: {{content: {{application/json: {{schema: {{$ref: '../models/m{i}.yaml'}}}}}}}}\n"
                    if verb == "put" else "")
            (folder / "ops" / f"{verb}{i}.yaml").write_text(
                f"operationId: {verb}{i}\n{body}parameters: [{{name: id, in: path, required: true}}]\n"
                f"responses:\n  '200': {{$ref: '../responses/r{i}.yaml'}}\n"
                "  default: {description: error, content: {application/json: {schema: "
                "{$ref: '../models/common.yaml#/Error'}}}}\n")
        (folder / "responses" / f"r{i}.yaml").write_text(
            f"description: thing {i}\ncontent:\n  application/json:\n    schema:\n      type: object\n"
            f"      properties:\n        thing: {{$ref: '../models/m{i}.yaml'}}\n"
            "        meta: {$ref: '../models/common.yaml#/Meta'}\n")
        (folder / "models" / f"m{i}.yaml").write_text(
            f"type: object\nproperties:\n  id: {{type: string}}\n  size: {{type: integer, minimum: {i}}}\n"
            "  meta: {$ref: 'common.yaml#/Meta'}\n")
    (folder / "api.yaml").write_text("\n".join(lines) + "\n")


def test_a_large_multi_file_spec_reports_progress(tmp_path: Path) -> None:
    folder = tmp_path / "cloud"
    _large_spec(folder, 450)  # 450 paths in 1,802 files (the large public API of the report: 445 in 2,900)
    lines: list[str] = []
    started = time.monotonic()
    draft = openapi_contract(folder / "api.yaml", "cloud", progress=lines.append, progress_every_s=0)
    took = time.monotonic() - started
    api = draft.contract["provides"]["cloud-api"]
    assert len(api["routes"]) == 900 and draft.documents == 2 + 450 * 4
    assert api["payloads"]["PUT /v2/things7/{id}"]["request"]["properties"]["size"]["minimum"] == 7
    assert any(line.startswith("api.yaml: 450/450 paths") for line in lines)
    print(f"\nimport of 450 paths in {draft.documents} files: {took:.2f} s")


# -- AsyncAPI: a multi-service example, in any order -------------------------------------------------------------


def _import_social(contracts: Path, order: list[str], *extra: str) -> Ran:
    return ode("import", "asyncapi", *(str(SOCIAL / s / "asyncapi.yaml") for s in order),
               "--contracts", str(contracts), *extra)


def _consumes(library_dir: Path) -> dict[str, set[tuple[str, str, str | None]]]:
    library = load_library(library_dir)
    return {name: {(c.context, c.interface, c.access) for c in ctx.consumes} for name, ctx in library.contexts.items()}


def test_a_multi_service_example_imports_the_same_in_any_order(tmp_path: Path) -> None:
    orders = [list(p) for p in itertools.islice(itertools.permutations(SERVICES), 0, 120, 23)]
    orders.append(list(reversed(SERVICES)))
    written: list[dict[str, str]] = []
    for n, order in enumerate(orders):
        contracts = tmp_path / f"run{n}" / "shop" / "contracts"  # one project name for every run
        result = _import_social(contracts, order)
        assert result.exit_code == 0, result.output
        written.append({p.name: p.read_text() for p in sorted(contracts.glob("*.yaml"))})
    assert all(files == written[0] for files in written[1:])  # byte for byte, whatever the order
    files = written[0]
    assert set(files) == {"website-backend.yaml", "comments-service.yaml", "notifications-service.yaml",
                          "event-bus.yaml", "environments.yaml"}
    assert not any("&id" in text or "*id" in text for text in files.values())
    consumes = _consumes(tmp_path / "run0" / "shop" / "contracts")  # validates: load_library raises otherwise
    assert consumes == {
        "website-backend": {("event-bus", "event-bus", "publish"), ("comments-service", "commentChanged", None)},
        "comments-service": {("event-bus", "event-bus", "publish"), ("website-backend", "commentLiked", None)},
        "notifications-service": {("website-backend", "commentLiked", None)},
        "event-bus": set(),
    }


def test_the_imported_services_deploy_with_their_subscriptions(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    assert _import_social(contracts, SERVICES).exit_code == 0
    state = ["--contracts", str(contracts), "--state-dir", str(tmp_path / ".ode")]
    plan = ode("plan", "--env", "dev", "--engine", "simulated", "--json", *state)
    assert plan.exit_code == 0, plan.output
    rules = {r["name"]: json.loads(json.dumps(r["inputs"]["eventPattern"])) for s in json.loads(plan.stdout)["stacks"]
             for r in s["resources"] if r["type"] == "aws:cloudwatch/eventRule:EventRule"}
    patterns = {name: (json.loads(p) if isinstance(p, str) else p) for name, p in rules.items()}
    assert patterns == {
        "comments-service-on-website-backend-commentLiked":
            {"source": ["website-backend"], "detail-type": ["commentLiked"]},
        "notifications-service-on-website-backend-commentLiked":
            {"source": ["website-backend"], "detail-type": ["commentLiked"]},
        "website-backend-on-comments-service-commentChanged":
            {"source": ["comments-service"], "detail-type": ["commentChanged"]},
    }
    up = ode("up", "--env", "dev", "--engine", "simulated", "--json", *state)
    assert up.exit_code == 0, up.output
    stacks = {s["context"]: s["status"] for s in json.loads(up.stdout)["stacks"]}
    assert stacks == dict.fromkeys(["event-bus", "comments-service", "notifications-service", "website-backend"],
                                   "succeeded")


def test_every_mapping_of_the_multi_service_import_is_stated(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    result = _import_social(contracts, SERVICES)
    assert result.exit_code == 0, result.output
    err = result.stderr
    # a client application and an external API are not backend contexts, and it is said how to import them
    assert "'Website WebSocket Client' is a client application" in err
    assert "--component website-websocket-client=event-worker" in err
    assert "'Public API' is an external API" in err and "--component public-api=event-worker" in err
    # protocols become EventBridge events, on a bus the import creates
    assert "channels over mqtt, ws become EventBridge events on event-bus/event-bus" in err
    assert "the library has no event bus" in err and "ode init event-bus --component event-bus" in err
    # what the backend gets from the browser is not an event; what it sends the browser cannot be subscribed to
    backend = (contracts / "website-backend.yaml").read_text()
    assert "# received message 'likeComment': sent by 'Website WebSocket Client'" in backend
    assert "updateCommentLikes is received by 'Website WebSocket Client'" in backend
    # channel addresses and parameters are kept with the event
    changed = load_library(contracts).contexts["comments-service"].provides["commentChanged"]
    meta = changed.event_schema["x-asyncapi"]  # type: ignore[union-attr]
    assert meta == {"protocols": ["mqtt"], "channels": [{
        "channel": "commentCountChange", "address": "comment/{commentId}/changed",
        "parameters": {"commentId": {"description": "ID of the comment"}}}]}
    catalog = ode("catalog", "--contracts", str(contracts))
    assert "comment/{commentId}/changed:" in catalog.stdout  # the portal shows the channel again


def test_a_client_or_external_api_is_imported_when_component_says_so(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    result = _import_social(contracts, SERVICES, "--component", "public-api=event-worker")
    assert result.exit_code == 0, result.output
    assert ("website-backend", "commentLiked", None) in _consumes(contracts)["public-api"]
    assert not (contracts / "website-websocket-client.yaml").exists()


def test_a_lone_client_document_is_refused_with_the_way_to_import_it(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    line = one_line_error(ode("import", "asyncapi", str(SOCIAL / "frontend" / "asyncapi.yaml"), "--ref-root",
                              str(SOCIAL), "--contracts", str(contracts)))
    assert "nothing to import" in line and "--component website-websocket-client=event-worker" in line
    assert not contracts.exists()
    result = ode("import", "asyncapi", str(SOCIAL / "frontend" / "asyncapi.yaml"), "--ref-root", str(SOCIAL),
                 "--component", "event-worker", "--contracts", str(contracts))
    assert result.exit_code == 0, result.output
    assert set(load_library(contracts).contexts) == {"website-websocket-client", "event-bus"}


def test_one_document_at_a_time_says_what_to_do(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    first = ode("import", "asyncapi", str(SOCIAL / "backend" / "asyncapi.yaml"), "--ref-root", str(SOCIAL),
                "--contracts", str(contracts))
    assert first.exit_code == 0, first.output
    assert "received message 'commentChanged': no context of the library or of this import sends it" in first.stderr
    load_library(contracts)  # valid from the first import: the bus is there
    second = ode("import", "asyncapi", str(SOCIAL / "comments-service" / "asyncapi.yaml"), "--ref-root",
                 str(SOCIAL), "--contracts", str(contracts))
    assert second.exit_code == 0, second.output
    assert ("website-backend receives commentChanged, which comments-service now provides: add "
            "{context: comments-service, interface: commentChanged} to website-backend's consumes") in second.stderr
    assert ("website-backend", "commentLiked", None) in _consumes(contracts)["comments-service"]


def test_several_drafts_printed_leave_the_bus_to_its_command(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    result = _import_social(contracts, SERVICES, "--output", "-")
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.stdout))
    assert [d["context"] for d in documents] == ["website-backend", "comments-service", "notifications-service"]
    assert "create it with `ode init event-bus --component event-bus`" in result.stderr
    assert not contracts.exists()
    line = one_line_error(_import_social(contracts, SERVICES, "--output", str(tmp_path / "one.yaml")))
    assert "--output FILE takes the draft of one document" in line


def test_context_names_are_given_in_order_or_refused(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    line = one_line_error(_import_social(contracts, ["backend", "comments-service"], "--context", "web"))
    assert "give one per document (2 documents, 1 names)" in line
    result = _import_social(contracts, ["backend", "comments-service"], "--context", "web", "--context", "comments")
    assert result.exit_code == 0, result.output
    assert ("comments", "commentChanged", None) in _consumes(contracts)["web"]


# -- reserved names ------------------------------------------------------------------------------------------------


def test_import_never_writes_the_library_environments(lib: Path, tmp_path: Path) -> None:
    spec = tmp_path / "api.yaml"
    spec.write_text(TREE)
    before = (lib / "environments.yaml").read_text()
    line = one_line_error(ode("import", "openapi", str(spec), "--context", "environments", "--force",
                              "--contracts", str(lib)))
    assert "'environments' is reserved" in line
    line = one_line_error(ode("import", "openapi", str(spec), "--context", "trees", "--force",
                              "--output", str(lib / "environments.yaml"), "--contracts", str(lib)))
    assert "environments" in line
    assert (lib / "environments.yaml").read_text() == before


# -- the sandbox -----------------------------------------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the server's ``body`` after ``delay`` seconds, and records the path."""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        server: Any = self.server
        server.requests.append(self.path)
        time.sleep(server.delay)
        body = server.body
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Any]:
    """A local HTTP server on 127.0.0.1 that records every request it sees."""
    httpd: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.daemon_threads = True
    httpd.requests = []
    httpd.delay = 0.0
    httpd.body = b'{"type": "object", "properties": {"remote": {"type": "string"}}}'
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _openapi_with_ref(ref: str) -> str:
    return ("openapi: 3.0.3\ninfo: {title: S, version: 1.0.0}\npaths:\n  /x:\n    get:\n      responses:\n"
            f"        '200': {{description: ok, content: {{application/json: {{schema: {{$ref: '{ref}'}}}}}}}}\n")


def _asyncapi_with_ref(ref: str) -> str:
    return ("asyncapi: 2.6.0\ninfo: {title: S, version: 1.0.0}\nchannels:\n  x:\n    subscribe:\n"
            f"      message: {{name: Happened, payload: {{$ref: '{ref}'}}}}\n")


@pytest.mark.parametrize("command, writer", [("openapi", _openapi_with_ref), ("asyncapi", _asyncapi_with_ref)])
def test_nothing_is_fetched_unless_asked(lib: Path, tmp_path: Path, server: Any, command: str, writer: Any) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/schema.json"
    spec = tmp_path / "spec.yaml"
    spec.write_text(writer(url))
    line = one_line_error(ode("import", command, str(spec), "--context", "s", "--contracts", str(lib)))
    assert url in line and "--allow-remote-refs" in line
    metadata = tmp_path / "metadata.yaml"
    metadata.write_text(writer("http://169.254.169.254/latest/meta-data/iam/security-credentials/"))
    line = one_line_error(ode("import", command, str(metadata), "--context", "s", "--allow-remote-refs",
                              "--contracts", str(lib)))
    assert "link-local" in line  # never, even when remote references are allowed
    assert server.requests == []  # the server saw nothing
    result = ode("import", command, str(spec), "--context", "s", "--allow-remote-refs", "--output", "-",
                 "--contracts", str(lib))
    assert result.exit_code == 0, result.output
    assert server.requests == ["/schema.json"] and "remote:" in result.stdout


def test_remote_documents_are_bounded_in_size_and_time(lib: Path, tmp_path: Path, server: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(specs, "LIMITS", specs.Limits(document_bytes=1000, remote_seconds=0.5))
    spec = tmp_path / "spec.yaml"
    spec.write_text(_openapi_with_ref(f"http://127.0.0.1:{server.server_address[1]}/big.json"))
    server.body = b'{"type": "object", "description": "' + b"x" * 5000 + b'"}'
    line = one_line_error(ode("import", "openapi", str(spec), "--context", "s", "--allow-remote-refs",
                              "--contracts", str(lib)))
    assert "larger than" in line
    server.delay = 5.0
    started = time.monotonic()
    line = one_line_error(ode("import", "openapi", str(spec), "--context", "s", "--allow-remote-refs",
                              "--contracts", str(lib)))
    assert "big.json" in line and time.monotonic() - started < 4.5


@pytest.mark.parametrize("command, writer", [("openapi", _openapi_with_ref), ("asyncapi", _asyncapi_with_ref)])
def test_files_outside_the_spec_folder_are_never_read(lib: Path, tmp_path: Path, command: str,
                                                      writer: Any) -> None:
    secret = tmp_path / "credentials.json"
    key = "AKIA" + "IOSFODNN7EXAMPLE"  # assembled here: no access key id is written whole in the repository
    secret.write_text('{"type": "object", "description": "' + key + ' wJalrXUtnFEMI/K7MDENG"}')
    folder = tmp_path / "spec"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "config.json").write_text('{"type": "object", "description": "token"}')
    (folder / "link.json").symlink_to(secret)
    (folder / "schemas").mkdir()
    (folder / "schemas" / "ok.json").write_text('{"type": "object", "properties": {"fine": {"type": "string"}}}')
    cases = {
        str(secret): "is an absolute path",
        secret.as_uri(): "is an absolute path",
        "../credentials.json": "leaves the spec's folder",
        "schemas/../../credentials.json": "leaves the spec's folder",
        "link.json": "symlink leading outside",
        ".git/config.json": "hidden file or folder",
        "ftp://example.com/x.json": "ftp: reference",
    }
    for ref, reason in cases.items():
        spec = folder / "spec.yaml"
        spec.write_text(writer(ref))
        result = ode("import", command, str(spec), "--context", "s", "--contracts", str(lib))
        line = one_line_error(result)
        assert reason in line and repr(ref) in line, (ref, line)
        assert "AKIA" not in result.output
        assert not (lib / "s.yaml").exists()
    spec.write_text(writer("schemas/ok.json"))
    assert ode("import", command, str(spec), "--context", "s", "--contracts", str(lib)).exit_code == 0
    spec.write_text(writer("../credentials.json"))
    result = ode("import", command, str(spec), "--context", "t", "--ref-root", str(tmp_path), "--output", "-",
                 "--contracts", str(lib))
    assert result.exit_code == 0 and "AKIA" in result.stdout  # a folder the user names is read


def _bomb(header: str) -> str:
    lines = [header, "x-bomb:", '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghi":  # nine levels: 9**9 strings once expanded
        lines.append(f"  {name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
        previous = name
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("command, header", [
    ("openapi", 'openapi: 3.0.3\ninfo: {title: b, version: "1.0"}\npaths: {}'),
    ("asyncapi", "asyncapi: 2.6.0\ninfo: {title: b, version: 1.0.0}\nchannels: {}"),
])
def test_an_anchor_bomb_is_refused_in_bounded_memory(tmp_path: Path, command: str, header: str) -> None:
    spec = tmp_path / "bomb.yaml"
    spec.write_text(_bomb(header))
    limit = 512 << 20  # expanded, the bomb needs gigabytes

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "platform"), str(ROOT)])}
    result = subprocess.run([ODE, "import", command, str(spec), "--context", "b", "--output", "-",
                             "--contracts", str(tmp_path)], capture_output=True, text=True, timeout=60,
                            preexec_fn=cap, env=env)
    assert result.returncode == 2, result.stderr
    assert "anchors and aliases expand too much" in result.stderr and "Traceback" not in result.stderr


def test_nesting_size_and_reference_bombs_are_refused(lib: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text('openapi: 3.0.3\ninfo: {title: d, version: "1.0"}\npaths: {}\nx: ' + "[" * 5000 + "]" * 5000)
    assert "nested too deeply" in one_line_error(ode("import", "openapi", str(deep), "--context", "d",
                                                     "--contracts", str(lib)))
    # References that fan out nine times over nine levels: 9**9 values once inlined, refused while counting.
    schemas = ["    s0: {type: string}"] + [
        f"    s{i}: {{type: object, properties: {{" + ", ".join(f"p{j}: {{$ref: '#/components/schemas/s{i - 1}'}}"
                                                                for j in range(9)) + "}}"
        for i in range(1, 10)]
    refs = tmp_path / "refs.yaml"
    refs.write_text(_openapi_with_ref("#/components/schemas/s9") + "components:\n  schemas:\n" + "\n".join(schemas))
    started = time.monotonic()
    line = one_line_error(ode("import", "openapi", str(refs), "--context", "r", "--contracts", str(lib)))
    assert "expand to more than" in line
    print(f"\nreference bomb refused in {time.monotonic() - started:.2f} s")
    monkeypatch.setattr(specs, "LIMITS", specs.Limits(document_bytes=100))
    assert "larger than" in one_line_error(ode("import", "openapi", str(refs), "--context", "r",
                                               "--contracts", str(lib)))
