"""``ode import openapi``: a first draft of a contract from an OpenAPI 2 or 3 document: one http-api, its version
from ``info.version``, its routes from the paths and methods, its payloads from the request and response schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.kinds import KINDS

from ..errors import UsageError
from .contract_files import check_kind, check_name, interface_name, semver_of

HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


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
    check_name(context)
    check_kind(component)
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
        for method in HTTP_METHODS:
            if method in item:
                route = f"{method.upper()} {base}{path}"
                if " " not in route[len(method) + 1:] and route not in routes:
                    routes.append(route)
                    payload = _openapi_payload(item[method])
                    if payload:
                        payloads[route] = payload
    name = interface or f"{context}-api"
    api: dict[str, Any] = {"kind": "http-api", "version": semver_of(info.get("version"), str(spec))}
    if info.get("description") or info.get("title"):
        api["description"] = str(info.get("description") or info.get("title")).strip()
    api["routes"] = routes
    if payloads:
        api["payloads"] = payloads
    return {"context": context, "owner": owner or f"team-{context}", "version": api["version"],
            "description": str(info.get("title") or f"{context}, imported from {spec.name}").strip(),
            "component": component, "provides": {interface_name(name): api}}

