"""The payments service's steps: the team's own code, deployed by ode from `contracts/payments.yaml` (`settings.code`).

The `checkout` workflow runs once per order: the OrderPlaced event, as EventBridge delivers it, is an execution's
input (an order `{"order_id", "total"}` started directly works too). Its two steps, in order:

- `authorize` takes the order and hands on a payment, `{"order_id", "amount", "authorization_id"}`, or fails with
  PaymentDeclined;
- `capture` takes that payment and hands it on, captured.

The steps never publish. ode's publisher runs after them: what `capture` returns is the detail of PaymentCaptured,
and when a step fails, PaymentFailed carries the state that step was given, plus the `reason` (the step's error).
So every step hands on what both events' schemas require (`order_id`, `amount`; `reason` is ode's). The publisher
checks each detail against its schema: a missing field fails the execution, naming the event and the field.

This sample has no payment provider to call. `authorize` reads the provider's key from the secret it consumes (where
a real integration sends it with its request) and approves any amount above 0 and up to PAYMENT_LIMIT.

Where things are comes from the environment ode injects: IDENTITY_PSP_CREDENTIALS_ARN (the consumed secret) and the
plain variables of `settings.environment` (PAYMENT_LIMIT, LOG_LEVEL).
"""

from __future__ import annotations

import functools
import logging
import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError

log = logging.getLogger("payments")
log.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())


class PaymentDeclined(Exception):
    """The payment is refused: the execution fails, and PaymentFailed says why."""


@functools.cache
def _provider_key() -> str:
    """The payment provider's key, read once per container (never logged). Identity provides the secret; its value
    is put there by whoever holds the provider account, never by a contract or a stack."""
    arn = os.environ["IDENTITY_PSP_CREDENTIALS_ARN"]
    try:
        return str(boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
    except ClientError as exc:
        raise RuntimeError(f"the payment provider's key cannot be read from {arn}: "
                           f"{exc.response['Error']['Code']}") from None


def _order(event: dict[str, Any]) -> dict[str, Any]:
    """The order an execution was started with: an EventBridge event's detail, or the input itself."""
    if {"detail-type", "detail"} <= event.keys():
        return dict(event["detail"])
    return event


def authorize(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Step 1: the order's total, authorized."""
    order = _order(event)
    order_id, amount = order.get("order_id"), order.get("total")
    if not isinstance(order_id, str) or not order_id:
        raise ValueError("an order to pay has an order_id")
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise PaymentDeclined(f"order {order_id}: the total {amount!r} is not an amount")
    limit = Decimal(os.environ["PAYMENT_LIMIT"])
    if not 0 < Decimal(str(amount)) <= limit:
        raise PaymentDeclined(f"order {order_id}: {amount} is not in (0, {limit}]")
    _provider_key()
    log.info("order %s: %s authorized", order_id, amount)
    return {"order_id": order_id, "amount": amount, "authorization_id": f"auth-{uuid.uuid4()}"}


def capture(payment: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Step 2: the authorized payment, captured. What this returns is PaymentCaptured's detail."""
    missing = [k for k in ("order_id", "amount", "authorization_id") if k not in payment]
    if missing:
        raise ValueError(f"capture takes what authorize hands on; {', '.join(missing)} missing")
    log.info("order %s: %s captured", payment["order_id"], payment["amount"])
    return {**payment, "captured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
