"""The worker's handler: each SQS record carries an EventBridge event; it is recorded in TABLE_NAME when the
context has a table. Failed records are reported one by one, so only they are retried (then dead-lettered)."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    table_name = os.environ.get("TABLE_NAME")
    table = boto3.resource("dynamodb").Table(table_name) if table_name else None
    failures = []
    for record in event.get("Records", []):
        try:
            envelope = json.loads(record["body"])
            if table is not None:
                key = next(k["AttributeName"] for k in table.key_schema if k["KeyType"] == "HASH")
                table.put_item(Item={key: envelope["id"], "source": envelope["source"],
                                     "detail_type": envelope["detail-type"], "detail": json.dumps(envelope["detail"])})
        except (KeyError, ValueError, TypeError):
            failures.append({"itemIdentifier": record.get("messageId", "")})
    return {"batchItemFailures": failures}
