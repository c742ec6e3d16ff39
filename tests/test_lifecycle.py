"""Lifecycle events: they reach an SQS queue through a rule on an EventBridge bus (moto's server), follow their
JSON Schemas, carry no secret value, and a failure to publish is a logged warning, never an exception."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import boto3
import pytest

from ode.publishing.lifecycle_events import DETAIL_TYPES, SCHEMAS, SOURCE, LifecycleEvents, wanted_bus

from .moto_server import REGION, aws, moto_server  # noqa: F401  (pytest fixtures)

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema validates the documented schemas")

BUS = "platform-events"
DOC = Path(__file__).resolve().parent.parent / "docs" / "lifecycle-events.md"


def bus_to_queue(pattern: dict[str, Any]) -> str:
    """A bus, a rule matching ``pattern`` and an SQS queue as its target; returns the queue URL."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=BUS)
    url = sqs.create_queue(QueueName="ode-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="ode-lifecycle", EventBusName=BUS, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="ode-lifecycle", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": arn}])
    return url


def received(url: str, count: int) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    messages: list[dict[str, Any]] = []
    for _ in range(10):  # bounded: moto delivers synchronously, the loop only drains pages of 10
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        messages += [json.loads(m["Body"]) for m in batch]
        if len(messages) >= count or not batch:
            break
    return messages


@pytest.mark.usefixtures("aws")
def test_every_event_reaches_a_queue_through_a_rule_and_follows_its_schema() -> None:
    url = bus_to_queue({"source": [SOURCE]})
    events = LifecycleEvents(BUS, project="shop", region=REGION)
    assert events.stack_succeeded("pr-9", "orders", engine="pulumi", duration_s=4.2, simulated=False,
                                  outputs={"orders-api": {"url": "https://o"}, "db": {"password": "pw-123"}},
                                  secret_outputs=["db"])
    assert events.stack_failed("pr-9", "payments", engine="pulumi", error="boom " * 1000, duration_s=1.0,
                               skipped=["pr-9.fulfilment"])
    assert events.environment_created("pr-9", base="dev", ephemeral=True, owner="ana", contexts=["orders"],
                                      expires_at="2026-01-02T00:00:00+00:00", reuse=["network"], ok=False)
    assert events.environment_expired("pr-9", base="dev", owner="ana", expires_at="2026-01-02T00:00:00+00:00")
    assert events.environment_destroyed("pr-9", base="dev", ephemeral=True, stacks=3)
    assert events.drift_detected("pr-9", "orders", engine="pulumi", resources=[
        {"type": "aws:s3/bucket:Bucket", "name": "orders-files", "properties": ["tags.changed-by"]}])
    assert events.stack_healed("pr-9", "orders", engine="pulumi", duration_s=3.0, resources=1, outputs_changed=False)
    got = received(url, 7)
    by_type = {m["detail-type"]: m for m in got}
    assert len(got) == 7 and sorted(by_type) == sorted(DETAIL_TYPES)  # a standard queue keeps no order
    for message in got:
        assert message["source"] == "ode"
        jsonschema.validate(message["detail"], SCHEMAS[message["detail-type"]])
        assert message["detail"]["project"] == "shop" and message["detail"]["environment"] == "pr-9"
    succeeded = by_type["StackSucceeded"]["detail"]
    assert succeeded["outputs"] == {"orders-api": {"url": "https://o"}} and succeeded["secret_outputs"] == ["db"]
    assert "pw-123" not in json.dumps(got)
    assert len(by_type["StackFailed"]["detail"]["error"]) == 2000


@pytest.mark.usefixtures("aws")
def test_a_rule_can_pick_one_detail_type() -> None:
    url = bus_to_queue({"source": [SOURCE], "detail-type": ["StackFailed"]})
    events = LifecycleEvents(BUS, project="shop", region=REGION)
    events.stack_succeeded("dev", "orders", engine="pulumi", duration_s=1.0, outputs={})
    events.stack_failed("dev", "orders", engine="pulumi", error="boom")
    assert [m["detail-type"] for m in received(url, 2)] == ["StackFailed"]


def test_a_publishing_failure_is_a_warning_not_an_exception(monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    caplog.set_level(logging.WARNING, logger="ode.publishing.lifecycle_events")
    events = LifecycleEvents(BUS, project="shop", region=REGION)
    assert events.stack_failed("dev", "orders", engine="pulumi", error="boom") is False
    assert "could not send lifecycle event StackFailed for dev" in caplog.text


@pytest.mark.usefixtures("aws")
def test_a_missing_bus_is_a_warning_too(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ode.publishing.lifecycle_events")
    events = LifecycleEvents("no-such-bus", project="shop", region=REGION)
    assert events.environment_destroyed("dev", base=None, ephemeral=False, stacks=0) is False
    assert "no-such-bus" in caplog.text


def test_the_bus_comes_from_the_environment_settings() -> None:
    class Events:
        bus = "b1"

    class Env:
        events = Events()

    assert wanted_bus(Env()) == "b1" and wanted_bus(object()) is None
    assert wanted_bus(type("E", (), {"events": {"bus": "b2"}})()) == "b2"


def test_the_documented_schemas_are_the_ones_sent() -> None:
    """docs/lifecycle-events.md carries each schema as a JSON block under its detail-type's heading."""
    text = DOC.read_text()
    for detail_type, schema in SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        found = re.search(rf"## {detail_type}\n.*?```json\n(.*?)\n```", text, re.S)
        assert found, f"{detail_type} is not documented"
        assert json.loads(found.group(1)) == schema, f"the documented schema of {detail_type} is out of date"
