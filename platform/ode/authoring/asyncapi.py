"""``ode import asyncapi``: a first draft of a contract from an AsyncAPI 2 or 3 document: one event per message
the application sends, and ``consumes`` for the messages it receives that a context of the library provides."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml_rs

from components.kinds import KINDS

from ..contracts import ContractLibrary
from ..errors import UsageError
from .contract_files import check_kind, check_name, interface_name, semver_of


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
            return interface_name(message[key].strip())
    return interface_name(str(message.get("channel", "Message")))


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
    check_name(context)
    check_kind(component)
    if "event" not in KINDS[component].provides:
        able = ", ".join(k for k, v in sorted(KINDS.items()) if "event" in v.provides)
        raise UsageError(f"--component: {component} cannot provide events ({able} can)")
    doc, raw = read_asyncapi(spec)
    info = doc["info"]
    version = semver_of(info.get("version"), str(spec))
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

