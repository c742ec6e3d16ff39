"""The orders service: the team's own code, deployed by ode from `contracts/orders.yaml` (`settings.code`).

One function takes two kinds of input, and tells them apart:

- requests from the HTTP API (payload 2.0): POST /orders stores the order and publishes OrderPlaced on the shared
  bus; GET /orders/{id} reads it back;
- the events orders subscribes to, as SQS batches from its own queue: PaymentCaptured marks the order paid,
  OrderShipped marks it shipped. A record that fails (an order that is not there yet, an event it does not know) is
  reported in ``batchItemFailures``: Lambda retries that record alone, then moves it to the dead-letter queue. An
  event never gets an HTTP response.

Where things are comes from the environment ode injects: ORDERS_ORDERS_TABLE_NAME (this context's table),
CATALOG_PRODUCTS_TABLE_NAME (a consumed table), EVENT_BUS_NAME, EVENT_SOURCE and EVENT_DETAIL_TYPES (where, as whom
and what it may publish), and the plain variables of `settings.environment` (LOG_LEVEL).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError

log = logging.getLogger("orders")
log.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())

#: What each event orders subscribes to does to the order it names: its new status and the fields it records.
ON_EVENT: dict[str, tuple[str, tuple[str, ...]]] = {
    "PaymentCaptured": ("paid", ("amount",)),
    "OrderShipped": ("shipped", ("carrier",)),
}


class UnknownEvent(ValueError):
    """An event orders does not subscribe to: a wrong rule, not something to drop without a trace."""


def _json(value: Any) -> str:
    return json.dumps(value, default=lambda d: float(d) if isinstance(d, Decimal) else str(d))


def _response(status: int, body: Any) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": _json(body)}


def _table() -> Any:
    return boto3.resource("dynamodb").Table(os.environ["ORDERS_ORDERS_TABLE_NAME"])


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The function's entry point: an SQS batch of events, or an HTTP API request."""
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list) and records and all(r.get("eventSource") == "aws:sqs" for r in records):
        return on_events(records)
    return on_request(event)


def on_events(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply each event to its order; report the records that failed, and only them."""
    failures = []
    for record in records:
        try:
            apply(json.loads(record["body"], parse_float=Decimal))
        except (ValueError, KeyError, TypeError, ClientError) as exc:
            log.warning("record %s failed: %s", record.get("messageId"), exc)
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def apply(envelope: dict[str, Any]) -> None:
    """Record one EventBridge event on the order it names (``ConditionalCheckFailedException`` when that order is
    not there: the record is retried, the order may be on its way)."""
    detail_type = envelope["detail-type"]
    if detail_type not in ON_EVENT:
        raise UnknownEvent(f"orders does not handle {envelope.get('source')}/{detail_type}")
    status, fields = ON_EVENT[detail_type]
    detail = envelope["detail"]
    values: dict[str, Any] = {":status": status, ":event": envelope["id"]}
    sets = ["#status = :status", "last_event = :event"]
    for name in fields:
        if name in detail:
            values[f":{name}"] = detail[name]
            sets.append(f"{name} = :{name}")
    _table().update_item(Key={"order_id": detail["order_id"]}, UpdateExpression="SET " + ", ".join(sets),
                         ConditionExpression="attribute_exists(order_id)",
                         ExpressionAttributeNames={"#status": "status"}, ExpressionAttributeValues=values)
    log.info("order %s %s", detail["order_id"], status)


def on_request(event: dict[str, Any]) -> dict[str, Any]:
    """API Gateway HTTP API (payload 2.0)."""
    table = _table()
    method = event.get("requestContext", {}).get("http", {}).get("method", "GET")
    if method == "POST":
        try:
            order = json.loads(event.get("body") or "{}", parse_float=Decimal)
        except json.JSONDecodeError:
            return _response(400, {"error": "the body is not JSON"})
        if not isinstance(order, dict) or "total" not in order:
            return _response(400, {"error": "an order is a JSON object with a total"})
        order.setdefault("order_id", str(uuid.uuid4()))
        order["status"] = "placed"
        table.put_item(Item=order)
        placed = {"order_id": order["order_id"], "total": order["total"]}
        reply = boto3.client("events").put_events(Entries=[{
            "EventBusName": os.environ["EVENT_BUS_NAME"],
            "Source": os.environ.get("EVENT_SOURCE") or os.environ["ODE_CONTEXT"],
            "DetailType": "OrderPlaced", "Detail": _json(placed)}])
        if reply.get("FailedEntryCount"):
            # The order is stored but nobody heard of it: the caller must see a failure and may retry.
            raise RuntimeError(f"OrderPlaced for {order['order_id']} was not published: {reply['Entries']}")
        log.info("order %s placed", order["order_id"])
        return _response(201, order)
    order_id = (event.get("pathParameters") or {}).get("id")
    if not order_id:
        return _response(400, {"error": "no id in the path"})
    found = table.get_item(Key={"order_id": order_id}).get("Item")
    return _response(200, found) if found else _response(404, {"error": f"order {order_id} not found"})
