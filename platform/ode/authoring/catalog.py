"""The catalogue: what the contract language can describe (``ode components``: each component kind, the
interfaces it provides, its settings) and what a library holds, as a developer portal reads it (``ode catalog``:
Backstage descriptors).

What a component's settings are is read from ``components.kinds.KINDS[kind].settings`` (the settings model is their
single source), so a setting added there shows up here without a change.
"""

from __future__ import annotations

import json
import re
from typing import Any

from components.kinds import KINDS

from ..contracts import ACCESS, ContractLibrary, is_deploy_kind
from .asyncapi import CHANNEL_KEY
from .contract_files import as_yaml
from .openapi import HTTP_METHODS

#: The kinds that run the team's own code in Lambda (``ode init`` writes them a code directory).
FUNCTION_KINDS = ("serverless-api", "event-worker", "workflow")


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
            methods = [method.lower()] if method != "ANY" else list(HTTP_METHODS)
            payload = iface.payloads.get(route)
            for m in methods:
                operation: dict[str, Any] = {"responses": {"default": {"description": "response"}}}
                if payload is not None and payload.request is not None:
                    operation["requestBody"] = {"content": {"application/json": {"schema": payload.request}}}
                if payload is not None and payload.response is not None:
                    operation["responses"]["default"]["content"] = {"application/json": {"schema": payload.response}}
                paths.setdefault(path, {})[m] = operation
        doc = {"openapi": "3.0.3", "info": {"title": name, "version": iface.version}, "paths": paths}
        return "openapi", as_yaml(doc)
    if iface.kind == "event":
        return "asyncapi", as_yaml(_asyncapi_definition(name, iface.version, iface.event_schema))
    return f"ode-{iface.kind}", as_yaml(iface.model_dump(by_alias=True, exclude_none=True))


def _asyncapi_definition(name: str, version: str, event_schema: dict[str, Any]) -> dict[str, Any]:
    """An event as an AsyncAPI 2.6 document: on the channels ``ode import asyncapi`` kept in its schema
    (``x-asyncapi``: address, parameters), else on a channel named after the event."""
    payload = dict(event_schema)
    meta = payload.pop(CHANNEL_KEY, None)
    entries = [e for e in (meta.get("channels") or []) if isinstance(e, dict)] if isinstance(meta, dict) else []
    channels: dict[str, Any] = {}
    for entry in entries or [{}]:
        item: dict[str, Any] = {"subscribe": {"message": {"name": name, "payload": payload}}}
        parameters = {}
        for param, spec in (entry.get("parameters") or {}).items():
            spec = spec if isinstance(spec, dict) else {}
            schema = dict(spec.get("schema") or {"type": "string"})
            schema.update({k: spec[k] for k in ("enum", "default", "examples") if k in spec})
            parameters[param] = {**({"description": spec["description"]} if "description" in spec else {}),
                                 "schema": schema,
                                 **({"location": spec["location"]} if "location" in spec else {})}
        if parameters:
            item["parameters"] = parameters
        channels[str(entry.get("address") or entry.get("channel") or name)] = item
    doc: dict[str, Any] = {"asyncapi": "2.6.0", "info": {"title": name, "version": version}, "channels": channels}
    return doc


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
    return "---\n".join(as_yaml(e) for e in entities)

