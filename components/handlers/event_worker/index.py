"""The worker's handler. Each SQS record carries an EventBridge event the context subscribes to (or a plain JSON
message another context sent): it is recorded in TABLE_NAME when the context has a table, then the events the
context publishes once it has handled it (``EVENT_EMITS``: the consumed event's name, or ``message``) go out with
its detail, which each event's schema must accept (``ode_events.check``). Failed records are reported one by
one, so only they are retried (then dead-lettered), each with its reason in the function's log."""

from __future__ import annotations

import json
import logging
import os
import uuid
from typing import Any

import boto3
import ode_events

log = logging.getLogger("ode.worker")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    table_name = os.environ.get("TABLE_NAME")
    table = boto3.resource("dynamodb").Table(table_name) if table_name else None
    failures = []
    for record in event.get("Records", []):
        try:
            envelope = ode_events.eventbridge_event(record["body"])
            if envelope is None:
                detail, moment = json.loads(record["body"]), ode_events.MESSAGE
                if not isinstance(detail, dict):
                    raise ValueError("a message is a JSON object")
                item = {"id": record.get("messageId") or str(uuid.uuid4()), "source": "message",
                        "detail_type": ode_events.MESSAGE, "detail": json.dumps(detail)}
            else:
                detail, moment = envelope["detail"], envelope["detail-type"]
                item = {"id": envelope["id"], "source": envelope["source"], "detail_type": moment,
                        "detail": json.dumps(detail)}
            emitted = ode_events.emitted_on(moment)
            ode_events.check(emitted, detail)  # before anything is recorded: a refused record changes nothing
            if table is not None:
                key = next(k["AttributeName"] for k in table.key_schema if k["KeyType"] == "HASH")
                table.put_item(Item={key: item.pop("id"), **item})
            ode_events.publish(emitted, detail)
        except Exception as exc:  # noqa: BLE001 - whatever failed, this record alone is retried
            log.warning("record %s failed: %s: %s", record.get("messageId"), type(exc).__name__, exc)
            failures.append({"itemIdentifier": record.get("messageId", "")})
    return {"batchItemFailures": failures}
