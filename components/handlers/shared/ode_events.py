"""What every built-in handler shares: telling events from requests, and publishing the events the context declares.

Where and what to publish comes from the environment the component sets: ``EVENT_BUS_NAME`` and ``EVENT_SOURCE``
(the bus and the source, which is the context), ``EVENT_DETAIL_TYPES`` (the events the contract declares) and
``EVENT_EMITS`` (JSON: moment -> the events published then: a route key, ``success``/``failure``, a consumed
event's name or ``message``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import boto3

#: EventBridge takes at most ten entries per PutEvents call.
BATCH = 10
#: The moment of a worker that handled a queue message which is not an EventBridge event.
MESSAGE = "message"


class PublishError(RuntimeError):
    """EventBridge did not take an event: the caller fails, so that what it handled is retried."""


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


def publish(detail_types: Iterable[str], detail: dict[str, Any]) -> list[str]:
    """Put one event of each detail-type on the context's bus, with ``detail``; the detail-types published.
    An event the contract does not declare is refused, and one EventBridge does not take raises
    :class:`PublishError`."""
    names = list(detail_types)
    if not names:
        return []
    undeclared = sorted(set(names) - set(declared()))
    if undeclared:
        raise PublishError(f"{', '.join(undeclared)}: not declared by this context ({', '.join(declared())})")
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
