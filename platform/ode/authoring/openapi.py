"""``ode import openapi``: a first draft of a contract from an OpenAPI 2 or 3 document: one http-api, its version
from ``info.version``, its routes from the paths and methods, its payloads from the request and response schemas.

The document is read by :mod:`~ode.authoring.specs` (files inside the spec's folder only, nothing fetched unless
asked, recursive schemas kept as references) and checked for what the import needs; what a contract cannot carry
(callbacks, links, parameters, security, webhooks...) is listed in the draft's header and told to its user."""

from __future__ import annotations

import functools
import json
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.kinds import KINDS

from ..contracts import MAX_FILE_BYTES
from ..errors import UsageError
from .contract_files import Draft, check_kind, check_name, interface_name, semver_of
from .specs import Progress, SpecReader, without_keywords

#: The methods a contract's route may have (API Gateway's, less ANY).
HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
#: Every method an OpenAPI path item may hold.
_OPENAPI_METHODS = (*HTTP_METHODS, "trace", "query")


def openapi_version(doc: Any, label: str) -> int:
    """2 or 3, the major version of an OpenAPI document; a clear error for anything else (an AsyncAPI document is
    sent to ``ode import asyncapi``)."""
    if not isinstance(doc, dict):
        raise UsageError(f"{label}: not a valid OpenAPI document (a mapping with `openapi: 3.x` or "
                         "`swagger: \"2.0\"`)")
    if "asyncapi" in doc:
        raise UsageError(f"{label}: not a valid OpenAPI document but an AsyncAPI one: import it with "
                         f"`ode import asyncapi {label}`")
    if str(doc.get("openapi", "")).startswith("3."):
        return 3
    if str(doc.get("swagger", "")).strip() == "2.0":
        return 2
    found = f" (openapi: {doc['openapi']!r})" if "openapi" in doc else ""
    raise UsageError(f"{label}: not a valid OpenAPI document: no `openapi: 3.x` or `swagger: \"2.0\"` field{found}")


def _json_schema_of(content: Any) -> tuple[Any, str | None]:
    """The JSON body's schema in an OpenAPI 3 ``content`` map, or (None, the media types found)."""
    if not isinstance(content, dict) or not content:
        return None, None
    for media, body in content.items():
        if "json" in str(media) and isinstance(body, dict) and isinstance(body.get("schema"), dict):
            return body["schema"], None
    if any("json" in str(media) for media in content):
        return None, None  # JSON without a schema (examples only): nothing to carry, nothing lost
    return None, ", ".join(str(m) for m in content)


def _base_path(doc: dict[str, Any], version: int, notes: list[str]) -> str:
    """The path every route starts with: Swagger 2's ``basePath``, or the path the OpenAPI 3 servers share."""
    if version == 2:
        base = str(doc.get("basePath") or "").rstrip("/")
        if base:
            notes.append(f"basePath {base} prepended to every route")
        return base
    paths = []
    for server in doc.get("servers") or []:
        if not isinstance(server, dict) or not isinstance(server.get("url"), str):
            continue
        url = server["url"]
        for name, variable in (server.get("variables") or {}).items():
            if isinstance(variable, dict) and "default" in variable:
                url = url.replace("{" + str(name) + "}", str(variable["default"]))
        path = urllib.parse.urlsplit(url if "://" in url else "http://host" + ("" if url.startswith("/") else "/")
                                     + url).path.rstrip("/")
        paths.append(path)
    distinct = sorted(set(paths))
    if len(distinct) == 1 and distinct[0]:
        notes.append(f"base path {distinct[0]} (from servers[].url) prepended to every route")
        return distinct[0]
    if len(distinct) > 1:
        notes.append(f"dropped: the servers' base paths differ ({', '.join(p or '/' for p in distinct)}): routes "
                     "kept as the paths say")
    return ""


def _progress_line(spec: Path, done: int, total: int, reader: SpecReader) -> str:
    return f"{spec.name}: {done}/{total} paths, {len(reader.documents)} documents read"


class _Dropped:
    """What the import leaves out, by kind, with a few examples of each."""

    def __init__(self) -> None:
        self.items: dict[str, list[str]] = {}

    def add(self, kind: str, item: str) -> None:
        self.items.setdefault(kind, []).append(item)

    def notes(self) -> list[str]:
        out = []
        for kind, items in self.items.items():
            shown = ", ".join(items[:4]) + (f" and {len(items) - 4} more" if len(items) > 4 else "")
            out.append(f"dropped: {kind} ({shown})")
        return out


def openapi_contract(spec: Path, context: str, component: str = "serverless-api", interface: str | None = None,
                     owner: str | None = None, *, ref_root: Path | None = None, allow_remote: bool = False,
                     progress: Callable[[str], None] | None = None, progress_every_s: float = 2.0) -> Draft:
    """A draft whose contract ``provides`` one ``http-api``: version from ``info.version``, routes from the paths
    and their methods, payloads from the JSON request and first 2xx response schemas. ``progress`` gets a line now
    and then on a long import."""
    check_name(context)
    check_kind(component)
    if "http-api" not in KINDS[component].provides:
        able = ", ".join(k for k, v in sorted(KINDS.items()) if "http-api" in v.provides)
        raise UsageError(f"--component: {component} cannot provide an http-api ({able} can)")
    reader = SpecReader(ref_root or spec.parent, allow_remote=allow_remote,
                        progress=Progress(progress, progress_every_s))
    base, doc = reader.open(spec)
    version = openapi_version(doc, str(spec))
    info = doc.get("info")
    if not isinstance(info, dict) or "version" not in info:
        raise UsageError(f"{spec}: info.version is required")
    paths = doc.get("paths") or {}
    if not isinstance(paths, dict):
        raise UsageError(f"{spec}: paths is not a mapping of paths")
    notes: list[str] = []
    dropped = _Dropped()
    prefix = _base_path(doc, version, notes)
    routes: list[str] = []
    payloads: dict[str, dict[str, Any]] = {}
    for number, (path, written_item) in enumerate(paths.items(), 1):
        reader.progress.note(functools.partial(_progress_line, spec, number, len(paths), reader))
        item, item_base = reader.deref(written_item, base)
        if not isinstance(item, dict):
            continue
        if not str(path).startswith("/") or re.search(r"\s", str(path)):
            dropped.add("paths a route cannot hold", repr(path))
            continue
        for method in _OPENAPI_METHODS:
            if method not in item:
                continue
            route = f"{method.upper()} {prefix}{path}"
            if method not in HTTP_METHODS:
                dropped.add(f"{method.upper()} operations (no such API Gateway route)", route)
                continue
            if route in routes:
                continue
            routes.append(route)
            operation, op_base = reader.deref(item[method], item_base)
            payload = _payload(reader, operation, op_base, route, version, dropped)
            if payload:
                payloads[route] = payload
    for name in (doc.get("webhooks") or {}) if isinstance(doc.get("webhooks"), dict) else ():
        dropped.add("webhooks (requests the API sends; an http-api declares what it serves)", str(name))
    schemes = (doc.get("components") or {}).get("securitySchemes") if version == 3 else doc.get("securityDefinitions")
    if isinstance(schemes, dict) and schemes:
        dropped.add("security schemes (the routes take the component's authorization: AWS_IAM)",
                    ", ".join(str(s) for s in schemes))
    name = interface_name(interface or f"{context}-api")
    api: dict[str, Any] = {"kind": "http-api", "version": semver_of(info.get("version"), str(spec))}
    text = info.get("description") if isinstance(info.get("description"), str) and info["description"].strip() \
        else info.get("title")
    if isinstance(text, str) and text.strip():
        api["description"] = text.strip()
    api["routes"] = routes
    if payloads:
        api["payloads"] = payloads
    if not routes:
        notes.append("the document has no paths: the http-api has no routes yet")
    if reader.recursive:
        notes.append("recursive schemas kept as JSON Schema references ($ref '#' or '#/$defs/NAME'): "
                     + ", ".join(reader.recursive))
    _fit(api, notes)
    title = info.get("title") if isinstance(info.get("title"), str) and info["title"].strip() else None
    contract = {"context": context, "owner": owner or f"team-{context}", "version": api["version"],
                "description": (title or f"{context}, imported from {spec.name}").strip(),
                "component": component, "provides": {name: api}}
    return Draft(contract, spec, notes + dropped.notes(), documents=len(reader.documents))


#: What is left out of the payloads, in turn, while a draft is larger than a contract may be.
_TRIMS = (
    (frozenset({"example", "examples"}), "examples inside payload schemas"),
    (frozenset({"description", "title", "externalDocs"}), "descriptions inside payload schemas (types, required "
                                                          "fields, enums and bounds kept)"),
)


def _fit(api: dict[str, Any], notes: list[str]) -> None:
    """Keep a draft within the size a contract file may have (a large API inlines the same schemas in many
    payloads): examples, then descriptions inside payload schemas, then the payloads themselves are left out."""
    def too_big() -> bool:
        # YAML of nested schemas is about twice their compact JSON (measured on a 445-path public API: 1.95).
        return len(json.dumps(api, separators=(",", ":"), default=str)) * 2.2 > MAX_FILE_BYTES

    if not api.get("payloads") or not too_big():
        return
    for keywords, what in _TRIMS:
        api["payloads"] = {route: {part: without_keywords(schema, keywords) for part, schema in payload.items()}
                           for route, payload in api["payloads"].items()}
        notes.append(f"dropped: {what}: the draft would be larger than a contract may be "
                     f"({MAX_FILE_BYTES >> 20} MB)")
        if not too_big():
            return
    del api["payloads"]
    notes.append(f"dropped: every payload: the draft would be larger than a contract may be ({MAX_FILE_BYTES >> 20} "
                 "MB); routes kept")


def _payload(reader: SpecReader, operation: Any, base: str, route: str, version: int,
             dropped: _Dropped) -> dict[str, Any]:
    """``{request, response}`` schemas of one operation (OpenAPI 3 ``requestBody``/``content``, Swagger 2
    ``in: body`` and ``schema``); the response is the first 2xx one with a JSON body. Callbacks, links and
    parameters other than the body are noted as dropped."""
    if not isinstance(operation, dict):
        return {}
    out: dict[str, Any] = {}
    for name in operation.get("callbacks") or {} if isinstance(operation.get("callbacks"), dict) else ():
        dropped.add("callbacks (requests the API sends back)", f"{route} -> {name}")
    body, body_base = reader.deref(operation.get("requestBody"), base)
    if isinstance(body, dict):
        schema, media = _json_schema_of(body.get("content"))
        if schema is not None:
            out["request"] = reader.schema(schema, body_base)
        elif media:
            dropped.add("request bodies that are not JSON", f"{route} ({media})")
    for written in operation.get("parameters") or [] if isinstance(operation.get("parameters"), list) else ():
        parameter, p_base = reader.deref(written, base)
        if not isinstance(parameter, dict):
            continue
        where = parameter.get("in")
        if where == "body" and isinstance(parameter.get("schema"), dict):
            out["request"] = reader.schema(parameter["schema"], p_base)
        elif where in ("query", "header", "cookie", "formData"):
            dropped.add(f"{where} parameters", f"{route} {parameter.get('name')}")
    responses: dict[str, Any] = operation["responses"] if isinstance(operation.get("responses"), dict) else {}
    for status, written in sorted(responses.items(), key=lambda kv: str(kv[0])):
        answer, a_base = reader.deref(written, base)
        if not isinstance(answer, dict):
            continue
        for link in answer.get("links") or {} if isinstance(answer.get("links"), dict) else ():
            dropped.add("links (how responses lead to other operations)", f"{route} {status} -> {link}")
        if "response" in out or not str(status).startswith("2"):
            continue
        schema, media = (_json_schema_of(answer.get("content")) if version == 3
                         else (answer.get("schema"), None))
        if isinstance(schema, dict):
            out["response"] = reader.schema(schema, a_base)
        elif media:
            dropped.add("responses that are not JSON", f"{route} {status} ({media})")
    return out
