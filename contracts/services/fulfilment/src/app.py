"""The fulfilment service: the team's own code, deployed by ode from `contracts/fulfilment.yaml` (`settings.code`).

An event worker: Lambda hands it SQS batches from its work queue, into which EventBridge delivers the events
fulfilment subscribes to. For each PaymentCaptured (from payments) it ships the order:

1. reads the order from orders' table (what to ship; an order that is not there yet fails, and is retried);
2. records the shipment in its own table, keyed by the order, so a retried event ships nothing twice;
3. publishes OrderShipped on the shared bus, with the carrier, which the contract's schema requires;
4. tells analytics, on its ingest queue.

A record that fails (an event it does not handle, a missing order, a call that fails) is reported in
``batchItemFailures``: Lambda retries that record alone, then moves it to the dead-letter queue. A retry may publish
OrderShipped again; its subscribers apply it once (orders marks the order shipped).

Where things are comes from the environment ode injects: FULFILMENT_SHIPMENTS_TABLE_NAME (this context's table),
ORDERS_ORDERS_TABLE_NAME and ANALYTICS_INGEST_QUEUE_URL (what it consumes), EVENT_BUS_NAME and EVENT_SOURCE (where and
as whom it publishes), and the plain variables of `settings.environment` (CARRIER, LOG_LEVEL).
"""

from __future__ import annotations

import json
import logging
import os
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError

log = logging.getLogger("fulfilment")
log.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())


class UnknownEvent(ValueError):
    """An event fulfilment does not subscribe to: a wrong rule, not something to drop without a trace."""


class OrderNotFound(LookupError):
    """A payment for an order orders does not have (yet): the record is retried."""


class NotPublished(RuntimeError):
    """EventBridge did not take OrderShipped: the shipment is recorded, but nobody heard of it; retried."""


def _json(value: Any) -> str:
    return json.dumps(value, default=lambda d: float(d) if isinstance(d, Decimal) else str(d))


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The function's entry point: an SQS batch; the records that failed, and only them, are reported."""
    failures = []
    for record in event.get("Records", []):
        try:
            envelope = json.loads(record["body"], parse_float=Decimal)
            if not isinstance(envelope, dict):
                raise UnknownEvent("a message that is not an EventBridge event")
            if envelope.get("detail-type") != "PaymentCaptured":
                raise UnknownEvent(f"fulfilment does not handle {envelope.get('source')}/{envelope.get('detail-type')}")
            ship(envelope["detail"])
        except (ValueError, LookupError, TypeError, ClientError, NotPublished) as exc:
            log.warning("record %s failed: %s: %s", record.get("messageId"), type(exc).__name__, exc)
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def ship(payment: dict[str, Any]) -> dict[str, Any]:
    """Ship the order a captured payment is for; the shipment."""
    order_id = payment["order_id"]
    order = boto3.resource("dynamodb").Table(os.environ["ORDERS_ORDERS_TABLE_NAME"]).get_item(
        Key={"order_id": order_id}).get("Item")
    if order is None:
        raise OrderNotFound(f"order {order_id} is not in orders' table")
    shipment = {"shipment_id": f"shipment-{order_id}", "order_id": order_id, "carrier": os.environ["CARRIER"],
                "amount": payment.get("amount"), "items": order.get("items", [])}
    boto3.resource("dynamodb").Table(os.environ["FULFILMENT_SHIPMENTS_TABLE_NAME"]).put_item(Item=shipment)
    shipped = {"order_id": order_id, "shipment_id": shipment["shipment_id"], "carrier": shipment["carrier"]}
    reply = boto3.client("events").put_events(Entries=[{
        "EventBusName": os.environ["EVENT_BUS_NAME"],
        "Source": os.environ.get("EVENT_SOURCE") or os.environ["ODE_CONTEXT"],
        "DetailType": "OrderShipped", "Detail": _json(shipped)}])
    if reply.get("FailedEntryCount"):
        raise NotPublished(f"OrderShipped for {order_id} was not published: {reply['Entries']}")
    boto3.client("sqs").send_message(QueueUrl=os.environ["ANALYTICS_INGEST_QUEUE_URL"],
                                     MessageBody=_json({"fact": "order-shipped", **shipped}))
    log.info("order %s shipped with %s", order_id, shipment["carrier"])
    return shipment
