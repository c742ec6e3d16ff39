"""The sample shop's Lambda handlers, run against moto (no network: moto's in-process mock), and the embedded AWS
that `--target local` starts on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from .conftest import ROOT

HANDLERS = ROOT / "components" / "handlers"


def handler(module: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"handler_{module}", HANDLERS / module / "index.py")
    assert spec and spec.loader
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


def table(name: str, key: str) -> Any:
    return boto3.resource("dynamodb").create_table(
        TableName=name, KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")


def test_an_order_is_written_and_its_event_reaches_a_subscriber(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    orders = table("shop-dev-orders-orders-table", "order_id")
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name="shop-dev-shared-bus-bus")
    queue_url = sqs.create_queue(QueueName="notifications-outbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="on-order-placed", EventBusName="shop-dev-shared-bus-bus",
                    EventPattern=json.dumps({"source": ["orders"], "detail-type": ["OrderPlaced"]}))
    events.put_targets(Rule="on-order-placed", EventBusName="shop-dev-shared-bus-bus",
                       Targets=[{"Id": "outbox", "Arn": queue_arn}])
    for key, value in {"TABLE_NAME": orders.name, "EVENT_BUS_NAME": "shop-dev-shared-bus-bus",
                       "EVENT_DETAIL_TYPE": "OrderPlaced", "ODE_CONTEXT": "orders"}.items():
        monkeypatch.setenv(key, value)
    api = handler("serverless_api")
    created = api.handler({"requestContext": {"http": {"method": "POST"}},
                           "body": json.dumps({"order_id": "o-1", "total": 12.5})})
    assert created["statusCode"] == 201
    assert orders.get_item(Key={"order_id": "o-1"})["Item"]["total"] == pytest.approx(12.5)
    got = api.handler({"requestContext": {"http": {"method": "GET"}}, "pathParameters": {"id": "o-1"}})
    assert got["statusCode"] == 200 and json.loads(got["body"])["order_id"] == "o-1"
    missing = api.handler({"requestContext": {"http": {"method": "GET"}}, "pathParameters": {"id": "nope"}})
    assert missing["statusCode"] == 404
    assert api.handler({"requestContext": {"http": {"method": "POST"}}, "body": "{"})["statusCode"] == 400
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    envelope = json.loads(messages[0]["Body"])
    assert envelope["source"] == "orders" and envelope["detail-type"] == "OrderPlaced"
    assert envelope["detail"] == {"order_id": "o-1", "total": 12.5}

    # The worker records the event it receives, and reports a broken record alone.
    shipments = table("shop-dev-fulfilment-shipments-table", "shipment_id")
    monkeypatch.setenv("TABLE_NAME", shipments.name)
    worker = handler("event_worker")
    out = worker.handler({"Records": [{"messageId": "m1", "body": messages[0]["Body"]},
                                      {"messageId": "m2", "body": "not json"}]})
    assert out == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    stored = shipments.get_item(Key={"shipment_id": envelope["id"]})["Item"]
    assert stored["detail_type"] == "OrderPlaced" and json.loads(stored["detail"])["order_id"] == "o-1"


def test_workflow_steps_hand_on_their_state(monkeypatch: pytest.MonkeyPatch) -> None:
    step = handler("workflow")
    monkeypatch.setenv("STEP_NAME", "authorize")
    state = step.handler({"order_id": "o-1"})
    monkeypatch.setenv("STEP_NAME", "capture")
    assert step.handler(state) == {"order_id": "o-1", "steps_done": ["authorize", "capture"]}
    with pytest.raises(ValueError):
        step.handler(["not", "an", "object"])  # type: ignore[arg-type]


def test_the_embedded_aws_listens_on_localhost_only_and_stops() -> None:
    from ode.embedded_aws import LocalAws

    local = LocalAws.start()
    try:
        assert local.endpoint.startswith("http://127.0.0.1:")
        # The address changes every run: it reaches the program through the environment, not the stack config
        # (which is part of the fingerprint), so a stack that did not change stays unchanged.
        assert local.stack_config() == {"ode:target": "local"}
        assert local.environment()["ODE_AWS_ENDPOINT"] == local.endpoint
        assert local.environment()["MOTO_IAM_LOAD_MANAGED_POLICIES"] == "true"
        s3 = boto3.client("s3", endpoint_url=local.endpoint, region_name="us-east-1", aws_access_key_id="t",
                          aws_secret_access_key="t")
        s3.create_bucket(Bucket="ode-local-check")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["ode-local-check"]
        with urllib.request.urlopen(f"{local.endpoint}/moto-api/reset", data=b"", timeout=10) as reply:
            assert reply.status == 200
    finally:
        local.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{local.endpoint}/", timeout=2)


def test_handlers_are_packaged_by_the_components() -> None:
    from components.function import HANDLERS as packaged

    assert Path(packaged) == HANDLERS
    assert {p.parent.name for p in HANDLERS.glob("*/index.py")} == {"serverless_api", "event_worker", "workflow"}


def test_target_local_without_moto_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from ode.embedded_aws import LocalAws
    from ode.errors import UsageError

    monkeypatch.setitem(sys.modules, "moto.server", None)  # what a plain install without the extra looks like
    with pytest.raises(UsageError, match=r"ondemandenv\[local\]"):
        LocalAws.start()


def test_ode_up_target_local_without_moto_prints_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from .conftest import SAMPLE

    # a plain install without the `local` extra: moto cannot be imported
    script = ("import sys; sys.modules['moto'] = None; sys.modules['moto.server'] = None; "
              "from ode.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", script, "up", "--env", "dev", "--target", "local", "--contracts",
                           str(SAMPLE), "--state-dir", str(tmp_path / "s")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "ModuleNotFoundError" not in done.stderr
    assert "pip install 'ondemandenv[local]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
