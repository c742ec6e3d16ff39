"""The API's handler: POST writes the JSON body as an item and publishes the context's event; GET /<x>/{id} reads
one item back. Addresses come from the environment the component sets (TABLE_NAME, EVENT_BUS_NAME...)."""

from __future__ import annotations

import json
import os
import uuid
from decimal import Decimal
from typing import Any

import boto3


def _response(status: int, body: Any) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": json.dumps(body, default=lambda d: float(d) if isinstance(d, Decimal) else str(d))}


def _key_name(table: Any) -> str:
    return next(k["AttributeName"] for k in table.key_schema if k["KeyType"] == "HASH")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
    method = event.get("requestContext", {}).get("http", {}).get("method", "GET")
    key = _key_name(table)
    if method == "POST":
        try:
            item = json.loads(event.get("body") or "{}", parse_float=Decimal)
        except json.JSONDecodeError:
            return _response(400, {"error": "the body is not JSON"})
        if not isinstance(item, dict):
            return _response(400, {"error": "the body must be a JSON object"})
        item.setdefault(key, str(uuid.uuid4()))
        table.put_item(Item=item)
        bus, detail_type = os.environ.get("EVENT_BUS_NAME"), os.environ.get("EVENT_DETAIL_TYPE")
        if bus and detail_type:
            detail = json.dumps(item, default=lambda d: float(d) if isinstance(d, Decimal) else str(d))
            boto3.client("events").put_events(Entries=[{
                "EventBusName": bus, "Source": os.environ["ODE_CONTEXT"], "DetailType": detail_type,
                "Detail": detail}])
        return _response(201, item)
    item_id = (event.get("pathParameters") or {}).get("id")
    if not item_id:
        return _response(400, {"error": "no id in the path"})
    found = table.get_item(Key={key: item_id}).get("Item")
    return _response(200, found) if found else _response(404, {"error": f"{item_id} not found"})
