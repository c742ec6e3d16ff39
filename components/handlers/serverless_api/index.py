"""The API's handler. Requests (API Gateway, payload 2.0): POST writes the JSON body as an item, PUT and PATCH write
it under the path's id, DELETE removes it, each then publishing the events its route emits (``EVENT_EMITS``), with
the item as their detail: an item that an event's schema refuses is answered 400, naming the event and the field,
and nothing is written; GET reads one item, or a page of them. Events the context subscribes to arrive as SQS
batches: each is recorded in the table, and a record that fails is reported alone (``batchItemFailures``), so only it
is retried. An event is never answered with an HTTP response. Addresses come from the environment the component
sets (TABLE_NAME, EVENT_BUS_NAME...)."""

from __future__ import annotations

import json
import os
import uuid
from decimal import Decimal
from typing import Any

import boto3
import ode_events

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _response(status: int, body: Any) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": ode_events.to_json(body)}


def _table() -> Any:
    name = os.environ.get("TABLE_NAME")
    return boto3.resource("dynamodb").Table(name) if name else None


def _key_name(table: Any) -> str:
    return next(k["AttributeName"] for k in table.key_schema if k["KeyType"] == "HASH")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    records = ode_events.sqs_records(event)
    if records is not None:
        return _on_events(records)
    return _on_request(event)


def _on_events(records: list[dict[str, Any]]) -> dict[str, Any]:
    table = _table()
    failures = []
    for record in records:
        try:
            envelope = ode_events.eventbridge_event(record["body"])
            if envelope is None:
                raise ValueError("not an EventBridge event")
            if table is not None:
                table.put_item(Item={_key_name(table): envelope["id"], "source": envelope["source"],
                                     "detail_type": envelope["detail-type"],
                                     "detail": json.dumps(envelope["detail"])})
        except Exception:  # noqa: BLE001 - whatever failed, this record alone is retried
            failures.append({"itemIdentifier": record.get("messageId", "")})
    return {"batchItemFailures": failures}


def _refused(emitted: list[str], item: dict[str, Any]) -> dict[str, Any] | None:
    """A 400 when the schema of an event the write would publish refuses ``item``: checked before the write, so
    that nothing is stored that could not be announced."""
    try:
        ode_events.check(emitted, item)
    except ode_events.SchemaError as exc:
        return _response(400, {"error": str(exc)})
    return None


def _on_request(event: dict[str, Any]) -> dict[str, Any]:
    table = _table()
    method = event.get("requestContext", {}).get("http", {}).get("method", "GET").upper()
    item_id = (event.get("pathParameters") or {}).get("id")
    if table is None:
        return _response(501, {"error": "this API has no table"})
    key = _key_name(table)
    if method in WRITES:
        emitted = ode_events.emitted_on(event.get("routeKey", ""))
        if method == "DELETE":
            if not item_id:
                return _response(400, {"error": "no id in the path"})
            item: dict[str, Any] = {key: item_id}
            refused = _refused(emitted, item)
            if refused:
                return refused
            table.delete_item(Key=item)
            status = 200
        else:
            try:
                item = json.loads(event.get("body") or "{}", parse_float=Decimal)
            except json.JSONDecodeError:
                return _response(400, {"error": "the body is not JSON"})
            if not isinstance(item, dict):
                return _response(400, {"error": "the body must be a JSON object"})
            if method == "POST":
                item.setdefault(key, str(uuid.uuid4()))
                status = 201
            elif not item_id:
                return _response(400, {"error": "no id in the path"})
            else:
                if method == "PATCH":
                    item = {**table.get_item(Key={key: item_id}).get("Item", {}), **item}
                item[key] = item_id
                status = 200
            refused = _refused(emitted, item)
            if refused:
                return refused
            table.put_item(Item=item)
        # Published after the write: a failure here is an error the caller sees and may retry.
        ode_events.publish(emitted, item)
        return _response(status, item)
    if not item_id:
        page = table.scan(Limit=100)
        return _response(200, {"items": page.get("Items", [])})
    found = table.get_item(Key={key: item_id}).get("Item")
    return _response(200, found) if found else _response(404, {"error": f"{item_id} not found"})
