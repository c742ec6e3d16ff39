"""What the contract language can describe, and first drafts of contracts: ``ode components``, ``ode init``,
``ode import openapi|asyncapi`` and ``ode catalog``.

Everything about a component's settings is read from ``components.kinds.KINDS[kind].settings`` (the settings model
is their single source), so a setting added there shows up here without a change.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml
import yaml_rs

from components.kinds import KINDS

from ._versions import is_version
from .contracts import ACCESS, ENVIRONMENTS_FILE, NAME_PATTERN, ContractLibrary, is_deploy_kind
from .errors import UsageError

#: The kinds that run the team's own code in Lambda (``ode init`` writes them a code directory).
FUNCTION_KINDS = ("serverless-api", "event-worker", "workflow")

#: What ``ode init`` makes each kind provide, as (interface suffix, interface kind).
_FIRST_INTERFACE: dict[str, tuple[str, str]] = {
    "network": ("vpc", "network"),
    "event-bus": ("bus", "event-bus"),
    "serverless-api": ("api", "http-api"),
    "event-worker": ("queue", "queue"),
    "workflow": ("workflow", "workflow"),
    "container-service": ("api", "http-api"),
    "data-store": ("table", "table"),
}


# ---------------------------------------------------------------------------------------------------------------
# ode components


def _type_of(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A readable type ("integer", "string | null", "list[string]") and the constraints of one property."""
    if "$ref" in prop:
        target = defs.get(prop["$ref"].rsplit("/", 1)[-1], {})
        merged = {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
        return _type_of(merged, defs)
    if "anyOf" in prop or "oneOf" in prop:
        parts, limits = [], {}
        for option in prop.get("anyOf") or prop.get("oneOf") or []:
            text, more = _type_of(option, defs)
            parts.append(text)
            limits.update(more)
        return " | ".join(dict.fromkeys(parts)), limits
    limits = {k: prop[k] for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
                                    "maxLength", "minItems", "maxItems", "pattern", "enum", "const") if k in prop}
    kind = prop.get("type", "any")
    if kind == "array":
        item, _ = _type_of(prop.get("items", {}), defs)
        return f"list[{item}]", limits
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        value, _ = _type_of(prop["additionalProperties"], defs)
        return f"map[string, {value}]", limits
    return str(kind) if isinstance(kind, str) else " | ".join(kind), limits


def settings_table(kind: str) -> list[dict[str, Any]]:
    """Each setting of ``kind``: name, type, default, limits (minimum, maximum, enum, pattern...), description."""
    model = KINDS[kind].settings
    schema = model.model_json_schema(mode="validation")
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        type_text, limits = _type_of(prop, defs)
        info = model.model_fields.get(name)
        default = prop.get("default")
        if info is not None and not info.is_required() and "default" not in prop:
            # A default_factory is absent from the JSON Schema; the model knows it.
            default = json.loads(json.dumps(info.get_default(call_default_factory=True), default=str))
        rows.append({"name": name, "type": type_text, "default": default, "required": name in required,
                     "limits": limits, "description": prop.get("description", "")})
    return rows


def components_table() -> list[dict[str, Any]]:
    """Every component kind: what it deploys, the interface kinds it can provide, the accesses a consumer may ask
    of each, and its settings."""
    return [{
        "kind": name,
        "description": kind.description,
        "provides": sorted(kind.provides),
        "access": {iface: list(ACCESS[iface]) for iface in sorted(kind.provides)},
        "runs_code": name in FUNCTION_KINDS,
        "settings": settings_table(name),
    } for name, kind in sorted(KINDS.items())]


def components_text() -> str:
    """``ode components`` for people."""
    out = []
    for row in components_table():
        out.append(f"{row['kind']}: {row['description']}")
        provides = "; ".join(f"{k} (access: {', '.join(a)})" for k, a in row["access"].items())
        out.append(f"  provides: {provides}")
        out.append("  settings:")
        for s in row["settings"]:
            limits = ", ".join(f"{k} {v}" for k, v in s["limits"].items())
            default = "required" if s["required"] else f"default {json.dumps(s['default'])}"
            out.append(f"    {s['name']}: {s['type']}, {default}{'; ' + limits if limits else ''}"
                       f"  {s['description']}")
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------------------
# ode init


def _check_name(name: str) -> None:
    if not re.fullmatch(NAME_PATTERN.strip("^$"), name):
        raise UsageError(f"{name!r} is not a context name: lowercase letters, digits and '-', starting with a "
                         "letter, at most 32 characters")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UsageError(f"--component: unknown kind {kind!r}; one of {', '.join(sorted(KINDS))}")


_HANDLER = '''"""Handler of the {name} bounded context ({kind}).

ode gives the function its addresses as environment variables: ODE_CONTEXT and ODE_ENV, and for each interface the
contract consumes <PRODUCER>_<INTERFACE>_<OUTPUT> (for example CATALOG_PRODUCTS_TABLE_NAME, SHARED_BUS_BUS_NAME);
TABLE_NAME, EVENT_BUS_NAME and EVENT_DETAIL_TYPE name the context's own table, its bus and its first event.
"""

from __future__ import annotations

import json
import os
from typing import Any

_OWN = ("ODE_CONTEXT", "ODE_ENV", "TABLE_NAME", "EVENT_BUS_NAME", "EVENT_DETAIL_TYPE")


def interfaces() -> dict[str, str]:
    """The addresses ode injected: of this context and of every interface it consumes."""
    return {{k: v for k, v in os.environ.items() if k in _OWN or k.endswith(("_NAME", "_URL", "_ARN"))}}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """{what}"""
    body = {{"context": os.environ.get("ODE_CONTEXT", "{name}"), "env": os.environ.get("ODE_ENV"),
            "interfaces": sorted(interfaces())}}
    return {{"statusCode": 200, "headers": {{"content-type": "application/json"}}, "body": json.dumps(body)}}
'''

_STEP = '''

def {step}(state: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The workflow's `{step}` step: receives the state, returns it for the next step."""
    return {{**state, "{step}": "done"}}
'''


class _Dumper(yaml.SafeDumper):
    """Safe YAML whose multi-line strings (a Backstage API definition) are literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def _yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


def init_contract(name: str, kind: str, directory: Path, code_dir: Path | None = None,
                  owner: str | None = None) -> list[Path]:
    """Write ``DIRECTORY/NAME.yaml``, a valid contract of ``kind`` (and, for function kinds, a code directory
    with a handler that uses the injected variables). Returns the files written; never overwrites one."""
    _check_name(name)
    _check_kind(kind)
    target = directory / f"{name}.yaml"
    if target.exists():
        raise UsageError(f"{target} exists already; ode init never overwrites a contract")
    suffix, iface_kind = _FIRST_INTERFACE.get(kind, (sorted(KINDS[kind].provides - {"event"})[0],) * 2)
    interface: dict[str, Any] = {"kind": iface_kind, "version": "0.1.0",
                                 "description": f"TODO: what {name} offers through this {iface_kind}."}
    if iface_kind == "http-api":
        interface["routes"] = [f"GET /{name}", f"POST /{name}"]
    settings: dict[str, Any] = {}
    fields = KINDS[kind].settings.model_fields
    written: list[Path] = []
    if kind in FUNCTION_KINDS:
        code = code_dir or directory.parent / "services" / name
        if (code / "index.py").exists():
            raise UsageError(f"{code / 'index.py'} exists already; ode init never overwrites code")
        code.mkdir(parents=True, exist_ok=True)
        what = {"serverless-api": "Answer an API Gateway request.", "event-worker": "Handle a batch of messages.",
                "workflow": "Run one task of the state machine."}[kind]
        text = _HANDLER.format(name=name, kind=kind, what=what)
        if kind == "workflow":
            steps = fields["steps"].get_default(call_default_factory=True) if "steps" in fields else []
            for step in steps if isinstance(steps, list) else []:
                step_name = step if isinstance(step, str) else getattr(step, "name", None)
                if isinstance(step_name, str) and step_name.isidentifier():
                    text += _STEP.format(step=step_name)
        (code / "index.py").write_text(text)
        written.append(code / "index.py")
        if "code" in fields:
            settings["code"] = _relative(code, directory)
        if "handler" in fields:
            settings["handler"] = "index.handler"
    contract: dict[str, Any] = {
        "context": name,
        "owner": owner or f"team-{name}",
        "version": "0.1.0",
        "description": f"TODO: what {name} does.",
        "component": kind,
    }
    if settings:
        contract["settings"] = settings
    contract["provides"] = {f"{name}-{suffix}": interface}
    header = (f"# The contract of the bounded context {name!r}: a {kind} ({KINDS[kind].description}).\n"
              f"# Reference: docs/contracts.md. Its settings, with defaults and limits: `ode components`.\n")
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(header + _yaml(contract) + _settings_comment(kind, settings))
    written.insert(0, target)
    environments = directory / ENVIRONMENTS_FILE
    if not environments.exists():
        # A new library: without its environments no contract in it validates.
        environments.write_text(_ENVIRONMENTS.format(project=_project_name(directory)))
        written.append(environments)
    return written


_ENVIRONMENTS = """\
# The environments of this library (docs/contracts.md, "environments.yaml"): put your AWS accounts here.
project: {project}
environments:
  dev: {{account: "111111111111", region: us-east-1}}
ephemeral:
  base: dev
  ttl: 8h
  max_ttl: 72h
"""


def _project_name(directory: Path) -> str:
    name = directory.resolve().name
    if name in ("contracts", ""):
        name = directory.resolve().parent.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:100] or "project"


def _settings_comment(kind: str, written: dict[str, Any]) -> str:
    lines = ["# Other settings of this component (uncomment under `settings:` to change one):"]
    for s in settings_table(kind):
        if s["name"] not in written and not s["required"]:
            lines.append(f"#   {s['name']}: {json.dumps(s['default'])}    # {s['description']}")
    lines.append("# consumes:")
    lines.append("#   - {context: other-context, interface: its-interface}   # access and version optional")
    return "\n".join(lines) + "\n"


def _relative(path: Path, start: Path) -> str:
    import os.path  # os.path.relpath walks up with '..', which Path.relative_to does not

    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


# ---------------------------------------------------------------------------------------------------------------
# ode import openapi|asyncapi

_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def _semver_of(text: Any, where: str) -> str:
    """``info.version`` as a semantic version: ``1.2`` becomes ``1.2.0``; anything else is an error."""
    value = str(text).strip() if text is not None else ""
    if is_version(value):
        return value
    parts = value.lstrip("v").split(".")
    if 1 <= len(parts) <= 2 and all(p.isdigit() for p in parts):
        return ".".join([str(int(p)) for p in parts] + ["0"] * (3 - len(parts)))
    raise UsageError(f"{where}: info.version {value!r} is not a semantic version (MAJOR.MINOR.PATCH)")


def _interface_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")
    if not name or not name[0].isalpha():
        name = "I" + name
    return name[:64]


def read_openapi(spec: Path) -> dict[str, Any]:
    """An OpenAPI 2 or 3 document, validated and with every ``$ref`` resolved (prance with
    openapi-spec-validator). ``UsageError`` naming the file when it is not a valid one."""
    import prance  # deferred: a heavy import only this command needs

    if not spec.is_file():
        raise UsageError(f"{spec}: no such file")
    try:
        parser = prance.ResolvingParser(str(spec.resolve()), backend="openapi-spec-validator", strict=False)
    except Exception as exc:  # noqa: BLE001 - prance raises many kinds; each is a bad spec, said in one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{spec}: not a valid OpenAPI document: {reason}") from None
    return dict(parser.specification)


def _json_schema_of(content: Any) -> dict[str, Any] | None:
    """The JSON body's schema in an OpenAPI 3 ``content`` map."""
    if isinstance(content, dict):
        for media, body in content.items():
            if "json" in str(media) and isinstance(body, dict) and isinstance(body.get("schema"), dict):
                return dict(body["schema"])
    return None


def _openapi_payload(operation: Any) -> dict[str, Any]:
    """``{request, response}`` schemas of one operation (OpenAPI 3 ``requestBody``/``content``, Swagger 2 ``in: body``
    and ``schema``); the response is the first 2xx one with a JSON body."""
    if not isinstance(operation, dict):
        return {}
    out: dict[str, Any] = {}
    body = operation.get("requestBody")
    request = _json_schema_of(body.get("content")) if isinstance(body, dict) else None
    for parameter in operation.get("parameters") or []:
        if isinstance(parameter, dict) and parameter.get("in") == "body" and isinstance(parameter.get("schema"), dict):
            request = dict(parameter["schema"])
    if request:
        out["request"] = request
    for status, answer in sorted((operation.get("responses") or {}).items(), key=lambda kv: str(kv[0])):
        if str(status).startswith("2") and isinstance(answer, dict):
            response = _json_schema_of(answer.get("content")) or (
                dict(answer["schema"]) if isinstance(answer.get("schema"), dict) else None)
            if response:
                out["response"] = response
                break
    return out


def openapi_contract(spec: Path, context: str, component: str = "serverless-api",
                     interface: str | None = None, owner: str | None = None) -> dict[str, Any]:
    """A contract whose ``provides`` holds one ``http-api``: version from ``info.version``, routes from the
    paths and their methods."""
    _check_name(context)
    _check_kind(component)
    if "http-api" not in KINDS[component].provides:
        able = ", ".join(k for k, v in sorted(KINDS.items()) if "http-api" in v.provides)
        raise UsageError(f"--component: {component} cannot provide an http-api ({able} can)")
    doc = read_openapi(spec)
    info = doc.get("info") or {}
    routes = []
    payloads: dict[str, dict[str, Any]] = {}
    base = str(doc.get("basePath") or "").rstrip("/")
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method in _METHODS:
            if method in item:
                route = f"{method.upper()} {base}{path}"
                if " " not in route[len(method) + 1:] and route not in routes:
                    routes.append(route)
                    payload = _openapi_payload(item[method])
                    if payload:
                        payloads[route] = payload
    name = interface or f"{context}-api"
    api: dict[str, Any] = {"kind": "http-api", "version": _semver_of(info.get("version"), str(spec))}
    if info.get("description") or info.get("title"):
        api["description"] = str(info.get("description") or info.get("title")).strip()
    api["routes"] = routes
    if payloads:
        api["payloads"] = payloads
    return {"context": context, "owner": owner or f"team-{context}", "version": api["version"],
            "description": str(info.get("title") or f"{context}, imported from {spec.name}").strip(),
            "component": component, "provides": {_interface_name(name): api}}


def read_asyncapi(spec: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """An AsyncAPI 2.x or 3.x document with its ``$ref``s resolved (prance's resolver: local and relative files),
    and as written.

    No maintained AsyncAPI parser exists for Python; the checks here are the ones the import needs (the
    ``asyncapi`` version, ``info.version``, channels or operations), each failing with the file named."""
    from prance.util.resolver import RefResolver  # deferred: a heavy import only this command needs

    if not spec.is_file():
        raise UsageError(f"{spec}: no such file")
    try:
        doc = yaml_rs.loads(spec.read_text(encoding="utf-8-sig"))
    except (yaml_rs.YAMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise UsageError(f"{spec}: cannot be read as YAML or JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not str(doc.get("asyncapi", "")).startswith(("2.", "3.")):
        raise UsageError(f"{spec}: not an AsyncAPI 2.x or 3.x document (no `asyncapi: 2.x|3.x` field)")
    if not isinstance(doc.get("info"), dict) or "version" not in doc["info"]:
        raise UsageError(f"{spec}: info.version is required")
    try:
        resolver = RefResolver(copy.deepcopy(doc), spec.resolve().as_uri())
        resolver.resolve_references()
    except Exception as exc:  # noqa: BLE001 - a broken $ref is the document's mistake, said in one line
        raise UsageError(f"{spec}: a $ref cannot be resolved: {str(exc).splitlines()[0]}") from None
    return dict(resolver.specs), doc


def _messages(value: Any) -> list[dict[str, Any]]:
    """The messages of an operation or a channel: one, a ``oneOf`` list, or a name -> message mapping."""
    if not isinstance(value, dict):
        return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []
    if "oneOf" in value and isinstance(value["oneOf"], list):
        return [m for m in value["oneOf"] if isinstance(m, dict)]
    if "payload" in value or "name" in value:
        return [value]
    return [{"name": k, **m} for k, m in value.items() if isinstance(m, dict)]


def _ref_name(item: Any) -> str | None:
    """The name a ``$ref`` gives its target: the last part of ``#/components/messages/Name``."""
    if isinstance(item, dict) and isinstance(item.get("$ref"), str):
        return item["$ref"].rstrip("/").rsplit("/", 1)[-1] or None
    return None


def asyncapi_messages(doc: dict[str, Any], raw: dict[str, Any] | None = None
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(sent, received) messages of the application an AsyncAPI document describes (``doc`` resolved, ``raw`` as
    written: a message referenced by ``$ref`` is named by it). In 2.x a channel's ``subscribe`` is what the
    application sends (the spec speaks from the client's side); 3.x says ``send`` and ``receive``."""
    raw = raw or doc
    sent: list[dict[str, Any]] = []
    received: list[dict[str, Any]] = []

    def named(messages: list[dict[str, Any]], written: Any, channel: str) -> list[dict[str, Any]]:
        refs = written if isinstance(written, list) else written.get("oneOf") if isinstance(written, dict) else None
        out = []
        for i, message in enumerate(messages):
            ref = _ref_name(refs[i]) if isinstance(refs, list) and i < len(refs) else _ref_name(written)
            out.append({"channel": channel, **({"name": ref} if ref and "name" not in message else {}), **message})
        return out

    if str(doc.get("asyncapi")).startswith("2."):
        for channel, item in (doc.get("channels") or {}).items():
            if not isinstance(item, dict):
                continue
            raw_item = (raw.get("channels") or {}).get(channel) or {}
            for op, bucket in (("subscribe", sent), ("publish", received)):
                operation = item.get(op)
                if isinstance(operation, dict):
                    written = (raw_item.get(op) or {}).get("message") if isinstance(raw_item, dict) else None
                    bucket.extend(named(_messages(operation.get("message")), written, channel))
    else:
        for op_id, operation in (doc.get("operations") or {}).items():
            if not isinstance(operation, dict):
                continue
            bucket = sent if operation.get("action") == "send" else received
            raw_op = (raw.get("operations") or {}).get(op_id) or {}
            messages, written = operation.get("messages"), raw_op.get("messages") if isinstance(raw_op, dict) else None
            if not messages and isinstance(operation.get("channel"), dict):
                messages, written = operation["channel"].get("messages"), None
            bucket.extend(named(_messages(messages), written, op_id))
    return sent, received


def _message_name(message: dict[str, Any]) -> str:
    for key in ("name", "messageId", "title"):
        if isinstance(message.get(key), str) and message[key].strip():
            return _interface_name(message[key].strip())
    return _interface_name(str(message.get("channel", "Message")))


def _event_schema(payload: Any) -> dict[str, Any]:
    """A message's payload as an event's detail schema (an object; AsyncAPI's JSON Schema kept as written)."""
    if not isinstance(payload, dict):
        return {"type": "object"}
    schema = copy.deepcopy(payload)
    schema.pop("$schema", None)
    if schema.get("type", "object") != "object":
        # An event's detail is a JSON object: a scalar payload is carried under `value`.
        return {"type": "object", "required": ["value"], "properties": {"value": schema}}
    return schema


def _match_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def asyncapi_contract(spec: Path, context: str, library: ContractLibrary | None, component: str = "event-worker",
                      owner: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """A contract with one ``event`` per message the application sends (payload as ``schema``) and ``consumes``
    for the messages it receives that a context of ``library`` provides as an event. Returns the contract and the
    names of the received messages that no context provides."""
    _check_name(context)
    _check_kind(component)
    if "event" not in KINDS[component].provides:
        able = ", ".join(k for k, v in sorted(KINDS.items()) if "event" in v.provides)
        raise UsageError(f"--component: {component} cannot provide events ({able} can)")
    doc, raw = read_asyncapi(spec)
    info = doc["info"]
    version = _semver_of(info.get("version"), str(spec))
    sent, received = asyncapi_messages(doc, raw)
    provides: dict[str, Any] = {}
    for message in sent:
        name = _message_name(message)
        event: dict[str, Any] = {"kind": "event", "version": version}
        text = message.get("summary") or message.get("description") or message.get("title")
        if isinstance(text, str) and text.strip():
            event["description"] = text.strip()
        event["schema"] = _event_schema(message.get("payload"))
        provides.setdefault(name, event)
    # Matched by name, ignoring case and separators: `order.placed` and `OrderPlaced` are one event.
    events: dict[str, list[tuple[str, str]]] = {}
    buses: list[tuple[str, str]] = []
    if library is not None:
        for producer, ctx in sorted(library.contexts.items()):
            for iface_name, iface in ctx.provides.items():
                if iface.kind == "event":
                    events.setdefault(_match_key(iface_name), []).append((producer, iface_name))
                elif iface.kind == "event-bus":
                    buses.append((producer, iface_name))
    consumes: list[dict[str, Any]] = []
    if provides and buses:
        consumes.append({"context": buses[0][0], "interface": buses[0][1], "access": "publish"})
    unmatched: list[str] = []
    for message in received:
        name = _message_name(message)
        producers = [p for p in events.get(_match_key(name), []) if p[0] != context]
        if not producers:
            if name not in unmatched:
                unmatched.append(name)
            continue
        entry = {"context": producers[0][0], "interface": producers[0][1]}
        if entry not in consumes:
            consumes.append(entry)
    contract: dict[str, Any] = {
        "context": context, "owner": owner or f"team-{context}", "version": version,
        "description": str(info.get("description") or info.get("title") or f"{context}, imported from {spec.name}")
        .strip(),
        "component": component,
    }
    if provides:
        contract["provides"] = provides
    if consumes:
        contract["consumes"] = consumes
    return contract, unmatched


def contract_text(contract: dict[str, Any], source: Path, unmatched: list[str] | None = None) -> str:
    """A contract as YAML, with a header saying where it came from and what is left to do."""
    head = [f"# Imported from {source.name} by `ode import`; review it, then `ode validate`."]
    for name in unmatched or []:
        head.append(f"# received message {name!r}: no context of the library provides it as an event")
    return "\n".join(head) + "\n" + _yaml(contract)


def write_contract(text: str, target: Path, force: bool = False) -> None:
    """Write a contract file; refuse to replace one unless ``force``."""
    if target.exists() and not force:
        raise UsageError(f"{target} exists already; pass --force to replace it, or --output - to print")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


# ---------------------------------------------------------------------------------------------------------------
# ode catalog --format backstage


def _entity_name(text: str) -> str:
    """A Backstage entity name: letters, digits, '-', '_' and '.', at most 63 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-._")[:63] or "unnamed"


def api_name(context: str, interface: str) -> str:
    """The Backstage API entity of one interface: ``<context>-<interface>``."""
    return _entity_name(f"{context}-{interface}")


def _api_definition(library: ContractLibrary, context: str, name: str, iface: Any) -> tuple[str, str]:
    """(spec type, definition) of an interface for Backstage: OpenAPI for an http-api, AsyncAPI for an event,
    the contract's own words for the others."""
    if iface.kind == "http-api":
        paths: dict[str, Any] = {}
        for route in iface.routes:
            method, path = route.split(" ", 1)
            methods = [method.lower()] if method != "ANY" else list(_METHODS)
            payload = iface.payloads.get(route)
            for m in methods:
                operation: dict[str, Any] = {"responses": {"default": {"description": "response"}}}
                if payload is not None and payload.request is not None:
                    operation["requestBody"] = {"content": {"application/json": {"schema": payload.request}}}
                if payload is not None and payload.response is not None:
                    operation["responses"]["default"]["content"] = {"application/json": {"schema": payload.response}}
                paths.setdefault(path, {})[m] = operation
        doc = {"openapi": "3.0.3", "info": {"title": name, "version": iface.version}, "paths": paths}
        return "openapi", _yaml(doc)
    if iface.kind == "event":
        doc = {"asyncapi": "2.6.0", "info": {"title": name, "version": iface.version},
               "channels": {name: {"subscribe": {"message": {"name": name, "payload": iface.event_schema}}}}}
        return "asyncapi", _yaml(doc)
    return f"ode-{iface.kind}", _yaml(iface.model_dump(by_alias=True, exclude_none=True))


def _most_common(values: list[str]) -> str | None:
    return max(sorted(set(values)), key=values.count) if values else None


def backstage_catalog(library: ContractLibrary) -> list[dict[str, Any]]:
    """Backstage descriptors: one ``System`` for the project, one ``Component`` per context (owner,
    ``providesApis``, ``consumesApis``, ``dependsOn``) and one ``API`` per interface."""
    system = _entity_name(library.project)
    entities: list[dict[str, Any]] = [{
        "apiVersion": "backstage.io/v1alpha1", "kind": "System",
        "metadata": {"name": system, "description": f"The bounded contexts of {library.project}."},
        "spec": {"owner": _most_common([c.owner for c in library.contexts.values()]) or "unknown"},
    }]
    for name, ctx in sorted(library.contexts.items()):
        consumed = sorted({api_name(link.producer, link.interface) for link in library.links(name)
                           if link.via is None})
        depends = sorted({f"component:{_entity_name(link.producer)}" for link in library.links(name)
                          if is_deploy_kind(link.kind) and link.producer != name})
        metadata: dict[str, Any] = {"name": _entity_name(name), "annotations": {
            "ondemandenv.io/component": ctx.component, "ondemandenv.io/contract-version": ctx.version}}
        if ctx.description:
            metadata["description"] = ctx.description
        metadata["tags"] = [ctx.component]
        entities.append({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": metadata,
            "spec": {"type": "service", "lifecycle": "production", "owner": ctx.owner, "system": system,
                     "providesApis": [api_name(name, i) for i in ctx.provides], "consumesApis": consumed,
                     "dependsOn": depends},
        })
        for iface_name, iface in ctx.provides.items():
            spec_type, definition = _api_definition(library, name, iface_name, iface)
            meta: dict[str, Any] = {"name": api_name(name, iface_name), "title": f"{name}/{iface_name}",
                                    "annotations": {"ondemandenv.io/kind": iface.kind,
                                                    "ondemandenv.io/version": iface.version}}
            if iface.description:
                meta["description"] = iface.description
            entities.append({
                "apiVersion": "backstage.io/v1alpha1", "kind": "API", "metadata": meta,
                "spec": {"type": spec_type, "lifecycle": "production", "owner": ctx.owner, "system": system,
                         "definition": definition},
            })
    return entities


def catalog_yaml(entities: list[dict[str, Any]]) -> str:
    """Entities as one multi-document YAML file (what a Backstage location reads)."""
    return "---\n".join(_yaml(e) for e in entities)
