"""The orders service: the team's own code, deployed by ode from `contracts/orders.yaml` (`settings.code`).

POST /orders stores the order and publishes OrderPlaced on the shared bus; GET /orders/{id} reads it back. Where
things are comes from the environment ode injects: ORDERS_ORDERS_TABLE_NAME (this context's table),
CATALOG_PRODUCTS_TABLE_NAME (a consumed table), EVENT_BUS_NAME and EVENT_DETAIL_TYPE (where and what to publish),
and the plain variables of `settings.environment` (LOG_LEVEL).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from decimal import Decimal
from typing import Any

import boto3

log = logging.getLogger("orders")
log.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())


def _json(value: Any) -> str:
    return json.dumps(value, default=lambda d: float(d) if isinstance(d, Decimal) else str(d))


def _response(status: int, body: Any) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": _json(body)}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """API Gateway HTTP API (payload 2.0) entry point."""
    table = boto3.resource("dynamodb").Table(os.environ["ORDERS_ORDERS_TABLE_NAME"])
    method = event.get("requestContext", {}).get("http", {}).get("method", "GET")
    if method == "POST":
        try:
            order = json.loads(event.get("body") or "{}", parse_float=Decimal)
        except json.JSONDecodeError:
            return _response(400, {"error": "the body is not JSON"})
        if not isinstance(order, dict) or "total" not in order:
            return _response(400, {"error": "an order is a JSON object with a total"})
        order.setdefault("order_id", str(uuid.uuid4()))
        table.put_item(Item=order)
        boto3.client("events").put_events(Entries=[{
            "EventBusName": os.environ["EVENT_BUS_NAME"], "Source": os.environ["ODE_CONTEXT"],
            "DetailType": os.environ["EVENT_DETAIL_TYPE"], "Detail": _json(order)}])
        log.info("order %s placed", order["order_id"])
        return _response(201, order)
    order_id = (event.get("pathParameters") or {}).get("id")
    if not order_id:
        return _response(400, {"error": "no id in the path"})
    found = table.get_item(Key={"order_id": order_id}).get("Item")
    return _response(200, found) if found else _response(404, {"error": f"order {order_id} not found"})
