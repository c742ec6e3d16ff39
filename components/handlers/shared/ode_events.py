"""What every built-in handler shares: telling events from requests, and publishing the events the context declares.

Where and what to publish comes from the environment the component sets: ``EVENT_BUS_NAME`` and ``EVENT_SOURCE``
(the bus and the source, which is the context), ``EVENT_DETAIL_TYPES`` (the events the contract declares) and
``EVENT_EMITS`` (JSON: moment -> the events published then: a route key, ``success``/``failure``, a consumed
event's name or ``message``).

What each event's detail must be comes with the package: ``ode_event_schemas.json`` beside this module holds the JSON
Schema the contract declares for each of its events (a file rather than a variable: Lambda's variables share 4 KB).
A detail its schema refuses is never published; the caller fails, naming the event and what is wrong. The schemas
are checked with fastjsonschema, packaged beside this module too (Lambda's Python runtime has no JSON Schema library).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3

#: EventBridge takes at most ten entries per PutEvents call.
BATCH = 10
#: The moment of a worker that handled a queue message which is not an EventBridge event.
MESSAGE = "message"
#: The JSON Schema of each event the context declares (event name -> schema), packaged by the component.
SCHEMAS = Path(__file__).with_name("ode_event_schemas.json")
#: What a schema's ``$ref`` could fetch through (urllib's schemes): an event's schema is self-contained, and a
#: function never fetches one at run time.
REMOTE_SCHEMES = ("http", "https", "ftp", "file", "data")


class PublishError(RuntimeError):
    """EventBridge did not take an event, or it was not sent: the caller fails, so that what it handled is
    retried."""


class SchemaError(PublishError):
    """A detail that its event's declared schema refuses: nothing was published. (An event whose schema this
    function does not know, or cannot use, is a :class:`PublishError`: the package is at fault, not the detail.)"""


def to_json(value: Any) -> str:
    """JSON of what DynamoDB and json(parse_float=Decimal) give back: whole numbers stay whole."""
    return json.dumps(value, default=lambda d: (int(d) if d == d.to_integral_value() else float(d))
                      if isinstance(d, Decimal) else str(d))


def declared() -> list[str]:
    """The events the context's contract declares."""
    return [e for e in os.environ.get("EVENT_DETAIL_TYPES", "").split(",") if e]


def emitted_on(moment: str) -> list[str]:
    """The events published at ``moment``."""
    return list(json.loads(os.environ.get("EVENT_EMITS") or "{}").get(moment, []))


def _refuse_remote(uri: str) -> Any:
    from fastjsonschema import JsonSchemaDefinitionException

    raise JsonSchemaDefinitionException(f"$ref {uri}: an event's schema is self-contained; nothing is fetched")


@functools.cache
def _schemas() -> dict[str, Any]:
    try:
        return dict(json.loads(SCHEMAS.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {}


@functools.cache
def _validator(name: str) -> Callable[[Any], Any]:
    import fastjsonschema

    schemas = _schemas()
    if name not in schemas:
        raise PublishError(f"{name}: this function knows no schema of it ({SCHEMAS.name} lacks it), and publishes "
                          "nothing it cannot check")
    try:
        # use_default=False: checking a detail never changes it.
        return fastjsonschema.compile(schemas[name], handlers={s: _refuse_remote for s in REMOTE_SCHEMES},
                                      use_default=False)
    except (fastjsonschema.JsonSchemaDefinitionException, re.error, TypeError, ValueError) as exc:
        raise PublishError(f"{name}: its schema cannot be used: {exc}") from None


def _explain(exc: Any) -> str:
    """What a fastjsonschema error says, about ``detail`` (the name its messages give the value is ``data``); for a
    missing property, the properties that are missing, not every one the schema requires."""
    name = str(exc.name)
    where = "the detail" if name == "data" else f"the detail's {name.removeprefix('data.')}"
    if exc.rule == "required" and isinstance(exc.value, dict):
        missing = [p for p in exc.rule_definition if p not in exc.value]
        return f"{where} lacks {', '.join(map(repr, missing))}, which its schema requires"
    message = str(exc.message)
    return where + message[len(name):] if message.startswith(name) else message


def check(detail_types: Iterable[str], detail: dict[str, Any]) -> None:
    """Raise :class:`SchemaError` unless the schema of each of ``detail_types`` accepts ``detail`` as it would be
    published (its JSON); the message names the event and the field. :class:`PublishError` when this function
    has no usable schema of one of them."""
    from fastjsonschema import JsonSchemaValueException

    published = json.loads(to_json(detail))
    for name in detail_types:
        try:
            _validator(name)(published)
        except JsonSchemaValueException as exc:
            raise SchemaError(f"{name}: {_explain(exc)}") from None


def publish(detail_types: Iterable[str], detail: dict[str, Any]) -> list[str]:
    """Put one event of each detail-type on the context's bus, with ``detail``; the detail-types published.
    An event the contract does not declare, or a detail its schema refuses, is refused before anything is put
    (:class:`SchemaError` names the event and the field), and one EventBridge does not take raises
    :class:`PublishError`."""
    names = list(detail_types)
    if not names:
        return []
    undeclared = sorted(set(names) - set(declared()))
    if undeclared:
        raise PublishError(f"{', '.join(undeclared)}: not declared by this context ({', '.join(declared())})")
    check(names, detail)
    bus = os.environ["EVENT_BUS_NAME"]
    source = os.environ.get("EVENT_SOURCE") or os.environ["ODE_CONTEXT"]
    body = to_json(detail)
    client = boto3.client("events")
    for start in range(0, len(names), BATCH):
        reply = client.put_events(Entries=[{"EventBusName": bus, "Source": source, "DetailType": name,
                                            "Detail": body} for name in names[start:start + BATCH]])
        if reply.get("FailedEntryCount"):
            failed = [e.get("ErrorCode", "?") for e in reply.get("Entries", []) if e.get("ErrorCode")]
            raise PublishError(f"EventBridge refused {reply['FailedEntryCount']} event(s): {', '.join(failed)}")
    return names


def sqs_records(event: Any) -> list[dict[str, Any]] | None:
    """The records of an SQS batch as Lambda delivers it; None when ``event`` is something else (an HTTP request,
    a workflow's state)."""
    if not isinstance(event, dict):
        return None
    records = event.get("Records")
    if isinstance(records, list) and records and all(
            isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records):
        return records
    return None


def eventbridge_event(body: str) -> dict[str, Any] | None:
    """The EventBridge event an SQS message body carries; None for a plain message. ``ValueError`` when the body
    is not JSON."""
    value = json.loads(body)
    if isinstance(value, dict) and {"source", "detail-type", "detail"} <= value.keys():
        return value
    return None
