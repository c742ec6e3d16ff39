"""``ode import asyncapi``: first drafts of contracts from AsyncAPI 2 or 3 documents, one context per document.

Each message a service sends becomes an ``event`` it provides (payload as ``schema``); each message it receives
becomes a ``consumes`` entry for every context that sends it, found among all the documents of the command and the
library, whatever their order. The mappings are stated in each draft's header and to the user:

- **protocols**: whatever carries a channel (MQTT, WebSocket, Kafka, AMQP...), its messages travel as EventBridge
  events on the library's event bus (created when the library has none): source = the context, detail-type = the
  message's name.
- **channels**: each event's channel, address, parameters and protocols are kept in its schema under
  ``x-asyncapi`` (a JSON Schema annotation), where ``ode catalog`` finds them again.
- **client applications and external APIs** (a browser client, a public API others run: told by the document's
  title and description) are not backend contexts: they are left out, unless ``--component`` names their kind.
- **dropped**: bindings, message headers, correlation ids, replies, security and payloads in non-JSON schema
  formats are listed.

No maintained AsyncAPI parser exists for Python; the checks here are the ones the import needs (the ``asyncapi``
version, ``info.version``, channels or operations), each failing with the file named.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.kinds import KINDS

from ..contracts import ContractLibrary
from ..errors import UsageError
from .contract_files import RESERVED_NAMES, Draft, check_kind, check_name, interface_name, semver_of
from .specs import Progress, SpecReader

#: Where an event's channel is kept, inside its schema.
CHANNEL_KEY = "x-asyncapi"
#: The context ``ode import asyncapi`` creates when the library has no event bus.
DEFAULT_BUS = "event-bus"
#: A first line of a draft's header naming a received message no context sends (read back by later imports).
_UNMATCHED = re.compile(r"^# received message '([^']+)'", re.M)

_CLIENT_TITLE = re.compile(r"\b(client|frontend|front-end|browser|web ?app|mobile app|ui)\b", re.I)
_EXTERNAL_TITLE = re.compile(r"\b(public|external|third[- ]party|partner)\b", re.I)
_EXTERNAL_TEXT = re.compile(r"\b(public api|external (api|application|system)|third[- ]party)\b", re.I)
#: Payload formats whose schema is JSON Schema, in JSON or YAML (AsyncAPI's own is a superset of it).
_JSON_FORMATS = ("application/vnd.aai.asyncapi", "application/schema+json", "application/schema+yaml",
                 "application/json")


@dataclass
class Message:
    """One message a document sends or receives, as an event."""

    name: str
    channel: str
    address: str | None
    parameters: dict[str, Any]
    protocols: list[str]
    description: str | None
    schema: dict[str, Any]

    @property
    def key(self) -> str:
        return match_key(self.name)

    def channel_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"channel": self.channel}
        if self.address is not None:
            entry["address"] = self.address
        if self.parameters:
            entry["parameters"] = self.parameters
        return entry


@dataclass
class Service:
    """What one AsyncAPI document says of the application it describes."""

    spec: Path
    title: str
    version: str
    description: str | None
    sent: list[Message]
    received: list[Message]
    protocols: list[str]
    #: Why this is not a backend context ("a client application: its title says 'Client'"), or None.
    outside: str | None = None
    dropped: dict[str, list[str]] = field(default_factory=dict)
    #: Payload schemas that contain themselves (kept as references).
    recursive: list[str] = field(default_factory=list)

    def drop(self, kind: str, item: str) -> None:
        items = self.dropped.setdefault(kind, [])
        if item not in items:
            items.append(item)


def match_key(name: str) -> str:
    """Names matched ignoring case and separators: ``order.placed`` and ``OrderPlaced`` are one event."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def context_name(text: str) -> str:
    """A context name made of a title: ``Website Backend`` -> ``website-backend``."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if name and not name[0].isalpha():
        name = f"svc-{name}"
    while len(name) > 32:
        name = name.rsplit("-", 1)[0] if "-" in name else name[:32]
    return name.strip("-")


# -- reading ------------------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _messages(reader: SpecReader, value: Any, base: str) -> list[tuple[str | None, Any, str]]:
    """(name from the reference or key, message, its document) for each message of an operation or a channel:
    one, a ``oneOf`` list, a list, or a name -> message mapping."""
    outer = SpecReader.ref_name(value)
    value, base = reader.deref(value, base) if not isinstance(value, list) else (value, base)
    if isinstance(value, list):
        items = [(SpecReader.ref_name(m), m) for m in value]
    elif isinstance(value, dict) and isinstance(value.get("oneOf"), list):
        items = [(SpecReader.ref_name(m), m) for m in value["oneOf"]]
    elif isinstance(value, dict) and ({"payload", "name", "messageId", "headers", "title"} & set(value)):
        items = [(outer, value)]
    elif isinstance(value, dict):
        items = [(SpecReader.ref_name(m) or str(k), m) for k, m in value.items()]
    else:
        items = []
    out = []
    for named, written in items:
        message, m_base = reader.deref(written, base)
        if isinstance(message, dict):
            out.append((named, message, m_base))
    return out


def _message_name(named: str | None, message: dict[str, Any], channel: str) -> str:
    for candidate in (message.get("name"), message.get("messageId"), named, message.get("title"), channel):
        if _text(candidate):
            return interface_name(str(candidate).strip())
    return interface_name(channel)


def _event_schema(reader: SpecReader, service: Service, name: str, message: dict[str, Any], base: str,
                  default_format: str | None) -> dict[str, Any]:
    """A message's payload as an event's detail schema: an object; AsyncAPI's JSON Schema kept as written, its
    references inlined; a payload in another schema format (Avro, Protobuf...) is dropped."""
    payload = message.get("payload")
    schema_format = message.get("schemaFormat") or default_format
    if isinstance(payload, dict) and "schemaFormat" in payload and "schema" in payload:  # AsyncAPI 3's multi-format
        schema_format, payload = payload["schemaFormat"], payload["schema"]
    if schema_format and not str(schema_format).startswith(_JSON_FORMATS):
        service.drop("payloads in schema formats other than JSON Schema", f"{name} ({schema_format})")
        return {"type": "object"}
    if not isinstance(payload, dict):
        return {"type": "object"}
    schema = reader.schema(payload, base)
    if not isinstance(schema, dict):
        return {"type": "object"}
    schema = dict(schema)
    schema.pop("$schema", None)
    if schema.get("type", "object") != "object":
        # An event's detail is a JSON object: a scalar payload is carried under `value`.
        defs = schema.pop("$defs", None)
        wrapped: dict[str, Any] = {"type": "object", "required": ["value"], "properties": {"value": schema}}
        if defs:
            wrapped["$defs"] = defs
        return wrapped
    return schema


def _parameters(reader: SpecReader, value: Any, base: str) -> dict[str, Any]:
    """A channel's parameters, each with what describes it (description, enum, default, schema, location)."""
    out: dict[str, Any] = {}
    value, base = reader.deref(value, base)
    for name, written in (value or {}).items() if isinstance(value, dict) else ():
        parameter, p_base = reader.deref(written, base)
        if not isinstance(parameter, dict):
            out[str(name)] = {}
            continue
        kept = {k: v for k, v in parameter.items()
                if k in ("description", "enum", "default", "examples", "location")}
        if isinstance(parameter.get("schema"), dict):
            kept["schema"] = reader.schema(parameter["schema"], p_base)
        out[str(name)] = kept
    return out


def _protocols(reader: SpecReader, servers: Any, base: str, names: Iterable[Any] | None) -> list[str]:
    """The protocols of the servers a channel uses (``names``: references or names), else of every server."""
    servers, s_base = reader.deref(servers, base)
    if not isinstance(servers, dict):
        return []
    chosen: list[tuple[Any, str]] = []
    if names:
        for entry in names:
            if isinstance(entry, dict):
                chosen.append(reader.deref(entry, base))
            elif isinstance(entry, str) and entry in servers:
                chosen.append(reader.deref(servers[entry], s_base))
    else:
        chosen = [reader.deref(s, s_base) for s in servers.values()]
    found = []
    for server, _ in chosen:
        if isinstance(server, dict) and _text(server.get("protocol")) and server["protocol"] not in found:
            found.append(str(server["protocol"]))
    return found


def _outside(doc: dict[str, Any]) -> str | None:
    """Why a document describes something other than a backend service, from its title and description."""
    info = doc.get("info") or {}
    title, text = str(info.get("title") or ""), str(info.get("description") or "")
    if match := _CLIENT_TITLE.search(title):
        return f"a client application (its title says {match.group(0)!r})"
    if match := _EXTERNAL_TITLE.search(title) or _EXTERNAL_TEXT.search(text):
        return f"an external API (its {'title' if _EXTERNAL_TITLE.search(title) else 'description'} says " \
               f"{match.group(0)!r})"
    return None


def read_service(reader: SpecReader, spec: Path) -> Service:
    """One AsyncAPI 2.x or 3.x document, read through ``reader`` (its references inside the import's folder)."""
    base, doc = reader.open(spec)
    label = str(spec)
    before = list(reader.recursive)
    if not isinstance(doc, dict):
        raise UsageError(f"{label}: not an AsyncAPI document (a mapping with `asyncapi: 2.x|3.x`)")
    if "openapi" in doc or "swagger" in doc:
        raise UsageError(f"{label}: not an AsyncAPI document but an OpenAPI one: import it with "
                         f"`ode import openapi {label}`")
    version_text = str(doc.get("asyncapi", ""))
    if not version_text.startswith(("2.", "3.")):
        raise UsageError(f"{label}: not an AsyncAPI 2.x or 3.x document (no `asyncapi: 2.x|3.x` field)")
    info = doc.get("info")
    if not isinstance(info, dict) or "version" not in info:
        raise UsageError(f"{label}: info.version is required")
    service = Service(spec, str(info.get("title") or spec.stem), semver_of(info.get("version"), label),
                      _text(info.get("description")) or _text(info.get("title")), [], [],
                      _protocols(reader, doc.get("servers"), base, None), _outside(doc))
    default_format = doc.get("defaultSchemaFormat") if isinstance(doc.get("defaultSchemaFormat"), str) else None
    if version_text.startswith("2."):
        _read_v2(reader, service, doc, base, default_format)
    else:
        _read_v3(reader, service, doc, base, default_format)
    if doc.get("components", {}).get("securitySchemes") if isinstance(doc.get("components"), dict) else None:
        service.drop("security schemes", ", ".join(doc["components"]["securitySchemes"]))
    service.recursive = [name for name in reader.recursive if name not in before]
    return service


def _add(reader: SpecReader, service: Service, bucket: list[Message], messages: list[tuple[str | None, Any, str]],
         channel: str, address: str | None, parameters: dict[str, Any], protocols: list[str],
         default_format: str | None) -> None:
    for named, message, m_base in messages:
        name = _message_name(named, message, channel)
        for kind in ("headers", "correlationId", "bindings"):
            if message.get(kind):
                service.drop(f"message {kind}", name)
        if message.get("traits"):
            service.drop("message traits (headers, bindings)", name)
        schema = _event_schema(reader, service, name, message, m_base, default_format)
        text = _text(message.get("summary")) or _text(message.get("description")) or _text(message.get("title"))
        bucket.append(Message(name, channel, address, parameters, protocols or service.protocols, text, schema))


def _read_v2(reader: SpecReader, service: Service, doc: dict[str, Any], base: str,
             default_format: str | None) -> None:
    # In 2.x a channel's `subscribe` is what the application sends (the spec speaks from the client's side).
    channels, c_base = reader.deref(doc.get("channels"), base)
    for channel, written in (channels or {}).items() if isinstance(channels, dict) else ():
        item, i_base = reader.deref(written, c_base)
        if not isinstance(item, dict):
            continue
        parameters = _parameters(reader, item.get("parameters"), i_base)
        protocols = _protocols(reader, doc.get("servers"), base, item.get("servers"))
        if item.get("bindings"):
            service.drop("channel bindings", str(channel))
        for op, bucket in (("subscribe", service.sent), ("publish", service.received)):
            operation, o_base = reader.deref(item.get(op), i_base)
            if isinstance(operation, dict):
                if operation.get("bindings"):
                    service.drop("operation bindings", f"{op} {channel}")
                _add(reader, service, bucket, _messages(reader, operation.get("message"), o_base), str(channel),
                     str(channel), parameters, protocols, default_format)


def _read_v3(reader: SpecReader, service: Service, doc: dict[str, Any], base: str,
             default_format: str | None) -> None:
    operations, o_base = reader.deref(doc.get("operations"), base)
    for op_id, written in (operations or {}).items() if isinstance(operations, dict) else ():
        operation, op_base = reader.deref(written, o_base)
        if not isinstance(operation, dict):
            continue
        if operation.get("action") not in ("send", "receive"):
            raise UsageError(f"{service.spec}: operations.{op_id}.action must be send or receive")
        bucket = service.sent if operation["action"] == "send" else service.received
        channel_name = SpecReader.ref_name(operation.get("channel")) or str(op_id)
        channel, ch_base = reader.deref(operation.get("channel"), op_base)
        channel = channel if isinstance(channel, dict) else {}
        address = channel.get("address") if isinstance(channel.get("address"), str) else None
        parameters = _parameters(reader, channel.get("parameters"), ch_base)
        protocols = _protocols(reader, doc.get("servers"), base, channel.get("servers"))
        for kind in ("reply", "bindings", "security"):
            if operation.get(kind):
                service.drop(f"operation {kind}", str(op_id))
        if channel.get("bindings"):
            service.drop("channel bindings", channel_name)
        if operation.get("messages"):
            messages = _messages(reader, operation["messages"], op_base)
        else:
            messages = _messages(reader, channel.get("messages") or {}, ch_base)
        _add(reader, service, bucket, messages, channel_name, address, parameters, protocols, default_format)


# -- drafting -----------------------------------------------------------------------------------------------------


@dataclass
class _Producer:
    context: str
    interface: str


def _library_events(library: ContractLibrary | None, skip: set[str]) -> tuple[
        dict[str, list[_Producer]], dict[str, list[_Producer]], list[tuple[str, str]]]:
    """The events of the library's contexts (by name key, by channel address) and its buses, leaving out the
    contexts this import writes again."""
    by_name: dict[str, list[_Producer]] = {}
    by_address: dict[str, list[_Producer]] = {}
    buses: list[tuple[str, str]] = []
    if library is None:
        return by_name, by_address, buses
    for producer, ctx in sorted(library.contexts.items()):
        if producer in skip:
            continue
        for iface_name, iface in ctx.provides.items():
            if iface.kind == "event":
                by_name.setdefault(match_key(iface_name), []).append(_Producer(producer, iface_name))
                meta = getattr(iface, "event_schema", {}).get(CHANNEL_KEY)
                for entry in (meta or {}).get("channels") or [] if isinstance(meta, dict) else ():
                    if isinstance(entry, dict) and isinstance(entry.get("address"), str):
                        by_address.setdefault(entry["address"], []).append(_Producer(producer, iface_name))
            elif iface.kind == "event-bus":
                buses.append((producer, iface_name))
    return by_name, by_address, buses


def _waiting(library: ContractLibrary | None) -> dict[str, list[str]]:
    """Received messages that drafts already in the library found no producer for (their headers list them):
    name key -> the contexts waiting for it."""
    out: dict[str, list[str]] = {}
    if library is None:
        return out
    for name, path in library.files.items():
        try:
            head = path.read_text(encoding="utf-8")[:200_000]
        except OSError:
            continue
        for message in _UNMATCHED.findall(head):
            out.setdefault(match_key(message), []).append(name)
    return out


def _components(component: tuple[str, ...], names: list[str]) -> tuple[str | None, dict[str, str]]:
    """``--component`` values: one KIND for every document, or CONTEXT=KIND for one."""
    every: str | None = None
    each: dict[str, str] = {}
    for value in component:
        if "=" in value:
            context, kind = (part.strip() for part in value.split("=", 1))
            if context not in names:
                raise UsageError(f"--component {value}: no document of this import is context {context!r} "
                                 f"(they are {', '.join(names)})")
            each[context] = kind
        else:
            every = value.strip()
    for kind in [k for k in (every, *each.values()) if k is not None]:
        check_kind(kind)
        if "event" not in KINDS[kind].provides:
            able = ", ".join(k for k, v in sorted(KINDS.items()) if "event" in v.provides)
            raise UsageError(f"--component: {kind} cannot provide events ({able} can)")
    return every, each


def _path_name(spec: Path) -> str:
    """A context name from a document's file: its stem, or its folder's name when the stem says nothing
    (``backend/asyncapi.yaml``)."""
    generic = spec.stem.lower() in ("asyncapi", "spec", "api", "index", "main")
    return context_name(spec.absolute().parent.name if generic else spec.stem)


def _names(services: list[Service], given: tuple[str, ...]) -> list[str]:
    """The context of each document: ``--context`` in order, else from its title; documents whose titles give
    the same name (or none) are named from their files instead, whatever their order."""
    if given:
        if len(given) != len(services):
            raise UsageError(f"--context: give one per document ({len(services)} documents, {len(given)} names), "
                             "or none to name each from its info.title")
        names = list(given)
    else:
        titled = [context_name(service.title) for service in services]
        names = [title if title and title not in RESERVED_NAMES and titled.count(title) == 1
                 else _path_name(service.spec) for title, service in zip(titled, services)]
        for name, service in zip(names, services):
            if not name or names.count(name) > 1:
                raise UsageError(f"{service.spec}: cannot be named from its title {service.title!r} or its file "
                                 "(taken or empty): name every document with --context, in order")
    for name in names:
        check_name(name)
    if len(set(names)) != len(names):
        raise UsageError(f"--context: a name is given twice ({', '.join(names)})")
    return names


def asyncapi_contracts(specs: list[Path], library: ContractLibrary | None, *, contexts: tuple[str, ...] = (),
                       component: tuple[str, ...] = (), owner: str | None = None, bus: str = DEFAULT_BUS,
                       ref_root: Path | None = None, allow_remote: bool = False,
                       progress: Callable[[str], None] | None = None) -> tuple[list[Draft], list[str]]:
    """Drafts for the AsyncAPI documents ``specs`` (one context each, plus an event bus when ``library`` has
    none), and notes for the import as a whole. ``consumes`` is predicted across every document and the library."""
    if not specs:
        raise UsageError("no AsyncAPI document given")
    root = ref_root or _common_folder(specs)
    reader = SpecReader(root, allow_remote=allow_remote, progress=Progress(progress))
    services = [read_service(reader, spec) for spec in specs]
    names = _names(services, contexts)
    every, each = _components(component, names)
    imported: list[tuple[str, Service, str]] = []
    notes: list[str] = []
    for name, service in zip(names, services):
        kind = each.get(name) or every
        if service.outside and kind is None:
            notes.append(f"{service.spec}: {service.title!r} is {service.outside}: not a backend context, not "
                         f"imported (pass --component {name}=event-worker to import it as one)")
            continue
        imported.append((name, service, kind or "event-worker"))
    if not imported:
        raise UsageError("nothing to import: " + "; ".join(notes))
    importing = {name for name, _, _ in imported}
    by_name, by_address, buses = _library_events(library, importing)
    for name, service, _ in imported:
        for message in service.sent:
            by_name.setdefault(message.key, []).append(_Producer(name, message.name))
            if message.address is not None:
                by_address.setdefault(message.address, []).append(_Producer(name, message.name))
    outside_senders: dict[str, list[Service]] = {}
    outside_receivers: dict[str, list[Service]] = {}
    for name, service in zip(names, services):
        if name not in importing:
            for message in service.sent:
                outside_senders.setdefault(message.key, []).append(service)
            for message in service.received:
                outside_receivers.setdefault(message.key, []).append(service)

    drafts: list[Draft] = []
    needs_bus = any(s.sent or s.received for _, s, _ in imported)
    bus_draft: Draft | None = None
    if buses:
        bus_ref = buses[0]
    elif needs_bus:
        check_name(bus)
        if library is not None and bus in library.contexts:
            raise UsageError(f"--bus {bus}: context {bus!r} exists and provides no event bus; name another")
        bus_ref = (bus, bus)
        bus_draft = _bus_draft(bus, specs)
    waiting = _waiting(library)
    for name, service, kind in imported:
        drafts.append(_draft(name, service, kind, owner, bus_ref, by_name, by_address, outside_senders,
                             outside_receivers, waiting, len(buses) > 1))
    if bus_draft is not None:
        drafts.append(bus_draft)
        notes.append(f"the library has no event bus: {bus}.yaml provides one ({bus}/{bus}) for the imported "
                     f"events (`ode init {bus} --component event-bus` makes the same)")
    return drafts, notes


def _common_folder(specs: list[Path]) -> Path:
    """The folder every spec of the import lies in: what their file references may read, unless ``--ref-root``."""
    import os.path

    folders = [str(spec.absolute().parent) for spec in specs]
    common = Path(os.path.commonpath(folders))
    home = Path.home()
    if len(set(folders)) > 1 and (common == Path(common.anchor) or common in (home, *home.parents)):
        raise UsageError(f"the documents have no folder in common below {common}: name the folder their "
                         "references may read with --ref-root DIR")
    return common


def _bus_draft(bus: str, specs: list[Path]) -> Draft:
    contract = {
        "context": bus, "owner": f"team-{bus}", "version": "0.1.0",
        "description": "The event bus the imported services publish their events on.",
        "component": "event-bus",
        "provides": {bus: {"kind": "event-bus", "version": "0.1.0",
                           "description": "Every event of the imported services travels here."}},
    }
    return Draft(contract, specs[0], [], made_bus=True)


def _draft(name: str, service: Service, kind: str, owner: str | None, bus: tuple[str, str],
           by_name: dict[str, list[_Producer]], by_address: dict[str, list[_Producer]],
           outside_senders: dict[str, list[Service]], outside_receivers: dict[str, list[Service]],
           waiting: dict[str, list[str]], several_buses: bool) -> Draft:
    provides: dict[str, Any] = {}
    notes: list[str] = []
    unmatched: list[str] = []
    for message in service.sent:
        event = provides.get(message.name)
        if event is None:
            event = {"kind": "event", "version": service.version}
            if message.description:
                event["description"] = message.description
            event["schema"] = {**message.schema, CHANNEL_KEY: {"protocols": message.protocols, "channels": []}}
            provides[message.name] = event
        channels = event["schema"][CHANNEL_KEY]["channels"]
        if message.channel_entry() not in channels:
            channels.append(message.channel_entry())
        for client in sorted(outside_receivers.get(message.key, []), key=lambda s: str(s.spec)):
            notes.append(f"{message.name} is received by {client.title!r} ({client.spec}), {client.outside}: "
                         "it cannot subscribe to EventBridge; reach it another way (a WebSocket or HTTP API)")
        for context in waiting.get(message.key, []):
            if context != name:
                notes.append(f"{context} receives {message.name}, which {name} now provides: add "
                             f"{{context: {name}, interface: {message.name}}} to {context}'s consumes, or import "
                             "the documents together")
    consumes: list[dict[str, Any]] = []
    if provides:
        consumes.append({"context": bus[0], "interface": bus[1], "access": "publish"})
    protocols = sorted({p for m in [*service.sent, *service.received] for p in m.protocols})
    if service.sent or service.received:
        notes.append(f"channels{' over ' + ', '.join(protocols) if protocols else ''} become EventBridge events on "
                     f"{bus[0]}/{bus[1]}{' (the first of the library buses)' if several_buses else ''}: source "
                     f"{name}, detail-type the message's name; each channel's address and parameters are kept in "
                     f"the event's schema under {CHANNEL_KEY}")
    for message in service.received:
        producers = [p for p in by_name.get(message.key, []) if p.context != name]
        how = "name"
        if not producers and message.address is not None:
            producers = [p for p in by_address.get(message.address, []) if p.context != name]
            how = f"channel address {message.address}"
        if not producers:
            senders = outside_senders.get(message.key, [])
            if senders:
                reason = "; ".join(f"sent by {s.title!r} ({s.spec}), {s.outside}"
                                   for s in sorted(senders, key=lambda s: str(s.spec)))
                reason += f": not an EventBridge event; {name} receives it through its own API"
            else:
                reason = ("no context of the library or of this import sends it (import its sender's document "
                          "with this one, or add its producer to consumes once it exists)")
            if message.name not in unmatched:
                unmatched.append(message.name)
                notes.insert(0, f"received message {message.name!r}: {reason}")
            continue
        for producer in sorted(producers, key=lambda p: (p.context, p.interface)):
            entry = {"context": producer.context, "interface": producer.interface}
            if entry not in consumes:
                consumes.append(entry)
                if how != "name":
                    notes.append(f"{message.name} matched {producer.context}/{producer.interface} by {how}")
    if service.recursive:
        notes.append("recursive schemas kept as JSON Schema references ($ref '#' or '#/$defs/NAME'): "
                     + ", ".join(service.recursive))
    for dropped_kind, items in service.dropped.items():
        shown = ", ".join(items[:4]) + (f" and {len(items) - 4} more" if len(items) > 4 else "")
        notes.append(f"dropped: {dropped_kind} ({shown})")
    contract: dict[str, Any] = {
        "context": name, "owner": owner or f"team-{name}", "version": service.version,
        "description": service.description or f"{name}, imported from {service.spec.name}",
        "component": kind,
    }
    if provides:
        contract["provides"] = provides
    if consumes:
        contract["consumes"] = consumes
    return Draft(contract, service.spec, notes)
