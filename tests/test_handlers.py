"""The sample shop's Lambda handlers, run against moto (no network: moto's in-process mock), and the embedded AWS
that `--target local` starts on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from .conftest import ROOT, SAMPLE

HANDLERS = ROOT / "components" / "handlers"
ORDERS = ROOT / "contracts" / "services" / "orders" / "src" / "app.py"
PAYMENTS = ROOT / "contracts" / "services" / "payments" / "src" / "steps.py"
FULFILMENT = ROOT / "contracts" / "services" / "fulfilment" / "src" / "app.py"
BUS = "shop-dev-shared-bus-bus"
#: A detail any object satisfies: what an event without a `schema` in its contract declares.
ANY = {"type": "object"}


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def unpack(archive: Any, folder: Path) -> Path:
    """The files of a built-in package (a pulumi AssetArchive of files and texts), written into ``folder``."""
    import pulumi

    for name, asset in archive.assets.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(asset, pulumi.StringAsset):
            target.write_text(asset.text)
        else:
            target.write_bytes(Path(str(asset.path)).read_bytes())
    return folder


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., ModuleType]:
    """A built-in handler as its package ships it (``function.code``): its own module beside the shared ones,
    fastjsonschema, and the schemas of the events it may publish (``schemas``: event -> JSON Schema)."""
    from components.function import code

    def made(module: str, schemas: dict[str, Any] | None = None) -> ModuleType:
        folder = unpack(code(module, None, schemas), tmp_path / f"package-{module}")
        monkeypatch.syspath_prepend(str(folder))
        monkeypatch.delitem(sys.modules, "ode_events", raising=False)
        return load(folder / "index.py", f"handler_{module}")

    return made


def sample_schemas(context: str) -> dict[str, Any]:
    """The schema of each event ``context`` of the sample declares, as its contract says."""
    from ode.contracts import load_library

    provides = load_library(SAMPLE).contexts[context].provides
    return {name: iface.event_schema for name, iface in provides.items() if iface.kind == "event"}  # type: ignore


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(key, value)
    for key in ("EVENT_EMITS", "EVENT_DETAIL_TYPES", "EVENT_SOURCE", "TABLE_NAME", "EVENT_BUS_NAME"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        yield


def table(name: str, key: str) -> Any:
    return boto3.resource("dynamodb").create_table(
        TableName=name, KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")


def tap(*detail_types: str, source: str | None = None) -> Callable[[], list[dict[str, Any]]]:
    """A queue subscribed to ``detail_types`` on the bus (made here): a reader of the events put there since."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    if BUS not in [b["Name"] for b in events.list_event_buses()["EventBuses"]]:
        events.create_event_bus(Name=BUS)
    name = f"tap-{len(sqs.list_queues().get('QueueUrls', []))}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern: dict[str, Any] = {"detail-type": list(detail_types)}
    if source:
        pattern["source"] = [source]
    events.put_rule(Name=name, EventBusName=BUS, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, EventBusName=BUS, Targets=[{"Id": "tap", "Arn": arn}])

    def read() -> list[dict[str, Any]]:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in got]

    return read


def publishing(monkeypatch: pytest.MonkeyPatch, context: str, emits: dict[str, list[str]],
               **extra: str) -> None:
    """The variables a component sets for code that publishes ``emits``."""
    declared = sorted({e for names in emits.values() for e in names})
    for key, value in {"EVENT_BUS_NAME": BUS, "ODE_CONTEXT": context, "EVENT_SOURCE": context,
                       "EVENT_DETAIL_TYPES": ",".join(declared), "EVENT_DETAIL_TYPE": declared[0],
                       "EVENT_EMITS": json.dumps(emits), **extra}.items():
        monkeypatch.setenv(key, value)


def sqs_batch(*bodies: str) -> dict[str, Any]:
    """An SQS batch as Lambda's event source mapping delivers it."""
    return {"Records": [{"messageId": f"m{i}", "receiptHandle": f"r{i}", "body": body, "attributes": {},
                         "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}
                        for i, body in enumerate(bodies, 1)]}


def envelope(source: str, detail_type: str, detail: dict[str, Any], event_id: str = "e-1") -> str:
    return json.dumps({"version": "0", "id": event_id, "detail-type": detail_type, "source": source,
                       "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
                       "resources": [], "detail": detail})


def request(method: str, route: str, body: Any = None, item_id: str | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API request (payload 2.0)."""
    event: dict[str, Any] = {"version": "2.0", "routeKey": route, "requestContext": {"http": {"method": method}}}
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    if item_id is not None:
        event["pathParameters"] = {"id": item_id}
    return event


def test_the_api_writes_and_publishes_what_each_route_emits(aws: None, handler: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    products = table("shop-dev-catalog-products-table", "product_id")
    read = tap("ProductPriceChanged", "ProductRetired", source="catalog")
    publishing(monkeypatch, "catalog", {"PUT /products/{id}": ["ProductPriceChanged"],
                                        "DELETE /products/{id}": ["ProductRetired"]}, TABLE_NAME=products.name)
    api = handler("serverless_api", {**sample_schemas("catalog"), "ProductRetired": ANY})
    put = api.handler(request("PUT", "PUT /products/{id}", {"price": 9.5}, "p-1"))
    assert put["statusCode"] == 200 and products.get_item(Key={"product_id": "p-1"})["Item"]["price"] == Decimal("9.5")
    [changed] = read()
    assert (changed["source"], changed["detail-type"], changed["detail"]) == (
        "catalog", "ProductPriceChanged", {"product_id": "p-1", "price": 9.5})
    # a write through a route that emits nothing publishes nothing; a read never does
    assert api.handler(request("POST", "POST /products", {"product_id": "p-2", "price": 1}))["statusCode"] == 201
    assert json.loads(api.handler(request("GET", "GET /products/{id}", item_id="p-2"))["body"])["price"] == 1
    assert {i["product_id"] for i in json.loads(api.handler(request("GET", "GET /products"))["body"])["items"]} \
        == {"p-1", "p-2"}
    assert api.handler(request("GET", "GET /products/{id}", item_id="nope"))["statusCode"] == 404
    assert api.handler(request("POST", "POST /products", "{"))["statusCode"] == 400
    assert read() == []
    assert api.handler(request("DELETE", "DELETE /products/{id}", item_id="p-1"))["statusCode"] == 200
    assert "Item" not in products.get_item(Key={"product_id": "p-1"})
    assert [(e["detail-type"], e["detail"]) for e in read()] == [("ProductRetired", {"product_id": "p-1"})]


def test_the_api_records_events_from_its_queue_and_never_answers_them_over_http(
        aws: None, handler: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = table("shop-dev-catalog-products-table", "product_id")
    monkeypatch.setenv("TABLE_NAME", inbox.name)
    api = handler("serverless_api")
    out = api.handler(sqs_batch(envelope("pricing", "PriceListChanged", {"list": "summer"}), "not json",
                                json.dumps({"plain": "message"})))
    assert out == {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]}
    assert "statusCode" not in out
    assert inbox.get_item(Key={"product_id": "e-1"})["Item"]["detail_type"] == "PriceListChanged"


def test_the_worker_publishes_what_it_emits_once_it_has_handled_an_event(aws: None, handler: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    shipments = table("shop-dev-fulfilment-shipments-table", "shipment_id")
    read = tap("OrderShipped", source="fulfilment")
    publishing(monkeypatch, "fulfilment", {"PaymentCaptured": ["OrderShipped"]}, TABLE_NAME=shipments.name)
    worker = handler("event_worker", {"OrderShipped": {"type": "object", "required": ["order_id"]}})
    captured = envelope("payments", "PaymentCaptured", {"order_id": "o-1", "amount": 12.5})
    out = worker.handler(sqs_batch(captured, "not json", envelope("orders", "OrderPlaced", {"order_id": "o-2"}, "e-2")))
    assert out == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    stored = shipments.get_item(Key={"shipment_id": "e-1"})["Item"]
    assert stored["detail_type"] == "PaymentCaptured" and json.loads(stored["detail"])["order_id"] == "o-1"
    # the event it handled is published on with its detail; the one that emits nothing publishes nothing
    assert [(e["source"], e["detail-type"], e["detail"]) for e in read()] == [
        ("fulfilment", "OrderShipped", {"order_id": "o-1", "amount": 12.5})]


def test_a_record_whose_event_cannot_be_published_is_retried_alone(aws: None, handler: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    publishing(monkeypatch, "fulfilment", {"message": ["OrderShipped"]})
    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")
    worker = handler("event_worker", {"OrderShipped": ANY})
    out = worker.handler(sqs_batch(json.dumps({"order_id": "o-1"})))
    assert out == {"batchItemFailures": [{"itemIdentifier": "m1"}]}


def test_built_in_code_never_publishes_an_event_its_contract_does_not_declare(aws: None, handler: Any,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    read = tap("OrderShipped", "Surprise")
    publishing(monkeypatch, "fulfilment", {"message": ["OrderShipped"]})
    monkeypatch.setenv("EVENT_EMITS", json.dumps({"message": ["OrderShipped", "Surprise"]}))
    events = handler("event_worker", {"OrderShipped": ANY}).handler.__globals__["ode_events"]
    with pytest.raises(events.PublishError, match="Surprise: not declared"):
        events.publish(["OrderShipped", "Surprise"], {"order_id": "o-1"})
    assert read() == []


def test_workflow_steps_hand_on_their_state(handler: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    step = handler("workflow")
    monkeypatch.setenv("STEP_NAME", "authorize")
    state = step.handler({"order_id": "o-1"})
    monkeypatch.setenv("STEP_NAME", "capture")
    assert step.handler(state) == {"order_id": "o-1", "steps_done": ["authorize", "capture"]}
    with pytest.raises(ValueError):
        step.handler(["not", "an", "object"])  # type: ignore[arg-type]


def test_the_workflow_publishes_its_success_and_failure_events(aws: None, handler: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    read = tap("PaymentCaptured", "PaymentFailed", source="payments")
    publishing(monkeypatch, "payments", {"success": ["PaymentCaptured"], "failure": ["PaymentFailed"]})
    wf = handler("workflow", sample_schemas("payments"))
    started_by = json.loads(envelope("orders", "OrderPlaced", {"order_id": "o-1", "total": 12.5}))
    paid = {"order_id": "o-1", "amount": 12.5, "authorization_id": "a-1"}
    assert wf.publish({"outcome": "success", "state": {**paid, "steps_done": ["authorize", "capture"]}}) == {
        "published": ["PaymentCaptured"]}
    [captured] = read()
    assert (captured["source"], captured["detail-type"], captured["detail"]) == ("payments", "PaymentCaptured", paid)
    # a step that failed on the order itself: the event that started the execution, and why
    error = {"Error": "CardDeclined", "Cause": json.dumps({"errorMessage": "card declined", "errorType": "X"})}
    assert wf.publish({"outcome": "failure", "state": {**started_by, "error": error}}) == {
        "published": ["PaymentFailed"]}
    [failed] = read()
    assert failed["detail"] == {"order_id": "o-1", "total": 12.5, "reason": "CardDeclined: card declined"}
    with pytest.raises(ValueError, match="outcome"):
        wf.publish({"outcome": "maybe", "state": paid})


def test_the_workflow_never_publishes_a_detail_its_event_schema_refuses(aws: None, handler: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps that hand on the order as they received it (a total, no amount): PaymentCaptured is refused, the task
    fails naming the event and the field, and nothing reaches the bus."""
    read = tap("PaymentCaptured", "PaymentFailed", source="payments")
    publishing(monkeypatch, "payments", {"success": ["PaymentCaptured"], "failure": ["PaymentFailed"]})
    wf = handler("workflow", sample_schemas("payments"))
    events = wf.publish.__globals__["ode_events"]
    started_by = json.loads(envelope("orders", "OrderPlaced", {"order_id": "o-1", "total": 12.5}))
    with pytest.raises(events.SchemaError) as caught:
        wf.publish({"outcome": "success", "state": {**started_by, "steps_done": ["authorize", "capture"]}})
    assert str(caught.value) == "PaymentCaptured: the detail lacks 'amount', which its schema requires"
    with pytest.raises(events.SchemaError, match=r"^PaymentCaptured: the detail's amount must be number"):
        wf.publish({"outcome": "success", "state": {"order_id": "o-1", "amount": "12.5"}})
    assert read() == []


def test_a_built_in_handler_without_the_schema_of_an_event_publishes_nothing(aws: None, handler: Any,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    read = tap("OrderShipped")
    publishing(monkeypatch, "fulfilment", {"message": ["OrderShipped"]})
    events = handler("event_worker", {"SomethingElse": ANY}).handler.__globals__["ode_events"]
    with pytest.raises(events.PublishError, match="OrderShipped: this function knows no schema of it") as caught:
        events.publish(["OrderShipped"], {"order_id": "o-1"})
    assert not isinstance(caught.value, events.SchemaError)  # the package is at fault, not the detail
    assert read() == []


def test_the_worker_records_and_publishes_nothing_for_a_detail_its_schema_refuses(
        aws: None, handler: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    shipments = table("shop-dev-fulfilment-shipments-table", "shipment_id")
    read = tap("OrderShipped", source="fulfilment")
    publishing(monkeypatch, "fulfilment", {"PaymentCaptured": ["OrderShipped"]}, TABLE_NAME=shipments.name)
    worker = handler("event_worker", sample_schemas("fulfilment"))
    captured = envelope("payments", "PaymentCaptured", {"order_id": "o-1", "amount": 12.5})
    assert worker.handler(sqs_batch(captured)) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert read() == [] and shipments.scan()["Items"] == []
    assert "OrderShipped: the detail lacks 'carrier', which its schema requires" in caplog.text


def test_the_api_refuses_a_write_whose_event_its_schema_refuses(aws: None, handler: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    products = table("shop-dev-catalog-products-table", "product_id")
    read = tap("ProductPriceChanged", source="catalog")
    publishing(monkeypatch, "catalog", {"PUT /products/{id}": ["ProductPriceChanged"]}, TABLE_NAME=products.name)
    api = handler("serverless_api", sample_schemas("catalog"))
    out = api.handler(request("PUT", "PUT /products/{id}", {"name": "kettle"}, "p-1"))
    assert out["statusCode"] == 400
    assert json.loads(out["body"]) == {"error": "ProductPriceChanged: the detail lacks 'price', which its schema "
                                                "requires"}
    assert "Item" not in products.get_item(Key={"product_id": "p-1"}) and read() == []


def test_orders_tells_events_from_requests(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    orders = table("shop-dev-orders-orders-table", "order_id")
    read = tap("OrderPlaced", source="orders")
    publishing(monkeypatch, "orders", {"POST /orders": ["OrderPlaced"]}, ORDERS_ORDERS_TABLE_NAME=orders.name)
    app = load(ORDERS, "orders_app")
    created = app.handler(request("POST", "POST /orders", {"order_id": "o-1", "total": 12.5}))
    assert created["statusCode"] == 201
    [placed] = read()
    assert (placed["source"], placed["detail-type"], placed["detail"]) == (
        "orders", "OrderPlaced", {"order_id": "o-1", "total": 12.5})
    assert app.handler(request("POST", "POST /orders", "{"))["statusCode"] == 400
    assert app.handler(request("GET", "GET /orders/{id}", item_id="nope"))["statusCode"] == 404

    out = app.handler(sqs_batch(envelope("payments", "PaymentCaptured", {"order_id": "o-1", "amount": 12.5}),
                                envelope("payments", "PaymentCaptured", {"order_id": "o-9", "amount": 1}, "e-2"),
                                envelope("payments", "PaymentRefunded", {"order_id": "o-1"}, "e-3"),
                                "not json"))
    # an event is never answered as a request; what failed is reported, record by record, for Lambda to retry
    assert out == {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"},
                                         {"itemIdentifier": "m4"}]}
    order = json.loads(app.handler(request("GET", "GET /orders/{id}", item_id="o-1"))["body"])
    assert (order["status"], order["amount"], order["last_event"]) == ("paid", 12.5, "e-1")
    assert "Item" not in orders.get_item(Key={"order_id": "o-9"})  # an event does not make up an order
    assert app.handler(sqs_batch(envelope("fulfilment", "OrderShipped", {"order_id": "o-1", "carrier": "ups"},
                                          "e-4"))) == {"batchItemFailures": []}
    assert orders.get_item(Key={"order_id": "o-1"})["Item"]["status"] == "shipped"


def test_payments_steps_hand_on_what_its_events_require(aws: None, handler: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The team's steps, then ode's publisher with the contract's schemas, as the state machine runs them."""
    read = tap("PaymentCaptured", "PaymentFailed", source="payments")
    key = boto3.client("secretsmanager").create_secret(Name="shop/dev/identity/psp-credentials",
                                                       SecretString="psp-key-for-tests")
    publishing(monkeypatch, "payments", {"success": ["PaymentCaptured"], "failure": ["PaymentFailed"]},
               IDENTITY_PSP_CREDENTIALS_ARN=key["ARN"], PAYMENT_LIMIT="100")
    steps = load(PAYMENTS, "payments_steps")
    publisher = handler("workflow", sample_schemas("payments"))
    placed = json.loads(envelope("orders", "OrderPlaced", {"order_id": "o-1", "total": 12.5}))
    payment = steps.capture(steps.authorize(placed))
    assert (payment["order_id"], payment["amount"]) == ("o-1", 12.5) and payment["authorization_id"].startswith("auth-")
    assert publisher.publish({"outcome": "success", "state": payment}) == {"published": ["PaymentCaptured"]}
    [captured] = read()
    assert captured["detail"] == payment
    # started with an order rather than an event; a total over the limit, or none, is declined
    assert steps.authorize({"order_id": "o-2", "total": 3})["amount"] == 3
    for total in (250, 0, "12", None):
        with pytest.raises(steps.PaymentDeclined, match="order o-3"):
            steps.authorize({"order_id": "o-3", "total": total})
    # a declined payment: what the state machine hands the publisher (the step's input and its error)
    error = {"Error": "PaymentDeclined", "Cause": json.dumps({"errorMessage": "order o-3: 250 is not in (0, 100]"})}
    declined = json.loads(envelope("orders", "OrderPlaced", {"order_id": "o-3", "total": 250}))
    assert publisher.publish({"outcome": "failure", "state": {**declined, "error": error}}) == {
        "published": ["PaymentFailed"]}
    [failed] = read()
    assert failed["detail"] == {"order_id": "o-3", "total": 250,
                                "reason": "PaymentDeclined: order o-3: 250 is not in (0, 100]"}
    with pytest.raises(ValueError, match="authorization_id missing"):
        steps.capture({"order_id": "o-1", "amount": 1})


def test_payments_cannot_authorize_without_the_providers_key(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The secret is there, its value is not (it is put outside the platform): the step fails naming the secret."""
    key = boto3.client("secretsmanager").create_secret(Name="shop/dev/identity/psp-credentials")
    monkeypatch.setenv("IDENTITY_PSP_CREDENTIALS_ARN", key["ARN"])
    monkeypatch.setenv("PAYMENT_LIMIT", "100")
    steps = load(PAYMENTS, "payments_steps")
    with pytest.raises(RuntimeError, match=f"cannot be read from {key['ARN']}: ResourceNotFoundException"):
        steps.authorize({"order_id": "o-1", "total": 5})


def test_fulfilment_ships_a_captured_payment_and_says_so_with_its_carrier(aws: None,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import jsonschema

    orders = table("shop-dev-orders-orders-table", "order_id")
    orders.put_item(Item={"order_id": "o-1", "total": Decimal("12.5"), "items": ["kettle"], "status": "paid"})
    shipments = table("shop-dev-fulfilment-shipments-table", "shipment_id")
    sqs = boto3.client("sqs")
    ingest = sqs.create_queue(QueueName="shop-dev-analytics-ingest-queue")["QueueUrl"]
    read = tap("OrderShipped", source="fulfilment")
    publishing(monkeypatch, "fulfilment", {"PaymentCaptured": ["OrderShipped"]}, CARRIER="parcel-post",
               FULFILMENT_SHIPMENTS_TABLE_NAME=shipments.name, ORDERS_ORDERS_TABLE_NAME=orders.name,
               ANALYTICS_INGEST_QUEUE_URL=ingest)
    app = load(FULFILMENT, "fulfilment_app")
    captured = envelope("payments", "PaymentCaptured", {"order_id": "o-1", "amount": 12.5})
    out = app.handler(sqs_batch(captured,
                                envelope("payments", "PaymentCaptured", {"order_id": "o-9", "amount": 1}, "e-2"),
                                envelope("orders", "OrderPlaced", {"order_id": "o-1", "total": 12.5}, "e-3"),
                                "not json", "[1]"))
    # only what failed is reported: an order orders does not have, an event it does not handle, a bad body
    assert out == {"batchItemFailures": [{"itemIdentifier": f"m{i}"} for i in (2, 3, 4, 5)]}
    [shipped] = read()
    assert (shipped["source"], shipped["detail-type"]) == ("fulfilment", "OrderShipped")
    assert shipped["detail"] == {"order_id": "o-1", "shipment_id": "shipment-o-1", "carrier": "parcel-post"}
    jsonschema.validate(shipped["detail"], sample_schemas("fulfilment")["OrderShipped"])
    item = shipments.get_item(Key={"shipment_id": "shipment-o-1"})["Item"]
    assert (item["carrier"], item["amount"], item["items"]) == ("parcel-post", Decimal("12.5"), ["kettle"])
    [fact] = sqs.receive_message(QueueUrl=ingest)["Messages"]
    assert json.loads(fact["Body"]) == {"fact": "order-shipped", **shipped["detail"]}
    # the same event again (Lambda retries): still one shipment
    assert app.handler(sqs_batch(captured)) == {"batchItemFailures": []}
    assert len(shipments.scan()["Items"]) == 1


def test_the_embedded_aws_listens_on_localhost_only_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    from ode.embedded_aws import LocalAws

    monkeypatch.delenv("MOTO_IAM_LOAD_MANAGED_POLICIES", raising=False)
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
    # moto's switch for AWS's managed policies was on for the server's life only: this process (ode run in-process)
    # goes on without it
    assert "MOTO_IAM_LOAD_MANAGED_POLICIES" not in os.environ


def test_handlers_are_packaged_by_the_components() -> None:
    from components.function import HANDLERS as packaged
    from components.function import SHARED

    assert Path(packaged) == HANDLERS and SHARED == HANDLERS / "shared"
    assert {p.parent.name for p in HANDLERS.glob("*/index.py")} == {"serverless_api", "event_worker", "workflow"}
    assert (SHARED / "ode_events.py").is_file()


def test_a_built_in_package_carries_the_schemas_of_its_events_and_a_validator() -> None:
    from components.function import EVENT_SCHEMAS, code

    schemas = sample_schemas("payments")
    assets = code("workflow", None, schemas).assets  # type: ignore[attr-defined]
    assert json.loads(assets[EVENT_SCHEMAS].text) == schemas
    assert {"index.py", "ode_events.py", "fastjsonschema/__init__.py", "fastjsonschema/draft07.py"} <= set(assets)
    assert set(code("workflow").assets) == {"index.py", "ode_events.py"}  # type: ignore[attr-defined]
    # what the publisher could not check with is refused when the stack is planned, naming the schema
    for schema, why in (({"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}},
                         "must be self-contained"),
                        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}},
                         "unterminated subpattern")):
        with pytest.raises(ValueError, match=rf"^provides\.Changed\.schema: .*{why}"):
            code("serverless_api", None, {"Changed": schema})


def test_target_local_without_moto_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from ode.embedded_aws import LocalAws
    from ode.errors import UsageError

    monkeypatch.setitem(sys.modules, "moto.server", None)  # what a plain install without the extra looks like
    with pytest.raises(UsageError, match=r"ondemandenv\[local\]"):
        LocalAws.start()


def test_ode_up_target_local_without_moto_prints_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from .cli_runner import ode
    from .conftest import SAMPLE

    # a plain install without the `local` extra: moto cannot be imported
    monkeypatch.setitem(sys.modules, "moto", None)
    monkeypatch.setitem(sys.modules, "moto.server", None)
    done = ode("up", "--env", "dev", "--target", "local", "--contracts", str(SAMPLE), "--state-dir",
               str(tmp_path / "s"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "ModuleNotFoundError" not in done.stderr
    assert "pip install 'ondemandenv[local]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# -- what a context's code is told to publish ------------------------------------------------------------------


def test_each_kind_publishes_every_declared_event_by_default() -> None:
    from components.emits import default_emits

    assert default_emits("serverless-api", ["OrderPlaced"], ["POST /orders", "GET /orders/{id}"]) == {
        "POST /orders": ["OrderPlaced"]}
    assert default_emits("serverless-api", ["Changed"]) == {"ANY /{proxy+}": ["Changed"]}
    assert default_emits("workflow", ["PaymentCaptured", "PaymentFailed", "PaymentDeclined"]) == {
        "success": ["PaymentCaptured"], "failure": ["PaymentFailed", "PaymentDeclined"]}
    assert default_emits("event-worker", ["OrderShipped"], consumed=["PaymentCaptured"]) == {
        "PaymentCaptured": ["OrderShipped"], "message": ["OrderShipped"]}
    assert default_emits("workflow", []) == {}


def test_validate_names_settings_emits_and_what_is_wrong_in_it(tmp_path: Path) -> None:
    from ode.contracts import ContractErrors, load_library

    from .conftest import context, write_library

    event = {"kind": "event", "version": "1.0.0"}
    api = context("api", "serverless-api", {
        "x": {"kind": "http-api", "version": "1.0.0", "routes": ["POST /x", "GET /x/{id}"]}, "A": event, "B": event,
        "bus": {"kind": "event-bus", "version": "1.0.0"}}, settings={"emits": {"GET /y": ["A", "Z"]}})
    flow = context("flow", "workflow", {"w": {"kind": "workflow", "version": "1.0.0"}, "Done": event},
                   consumes=[{"context": "api", "interface": "bus", "access": "publish"}],
                   settings={"emits": {"finished": ["Done"]}})
    worker = context("worker", "event-worker", {"q": {"kind": "queue", "version": "1.0.0"}, "C": event},
                     consumes=[{"context": "api", "interface": "bus", "access": "publish"},
                               {"context": "api", "interface": "A"}],
                     settings={"emits": {"B": ["C"]}})
    with pytest.raises(ContractErrors) as caught:
        load_library(write_library(tmp_path, [api, flow, worker]))
    found = [str(e) for e in caught.value.errors]
    emits = next(e for e in found if "api.yaml" in e and "settings.emits" in e)
    assert "'Z' is not an event this context provides (A, B)" in emits
    assert "GET /y: not a route of this context's HTTP APIs (POST /x, GET /x/{id})" in emits
    assert "B: provided, but no moment here publishes it" in emits
    assert any("flow.yaml" in e and "settings.emits" in e and "'success'" in e for e in found), found
    assert any("worker.yaml" in e and "settings.emits" in e and "B: not an event this context consumes" in e
               for e in found), found


def test_a_workflow_that_publishes_keeps_the_name_of_its_publisher() -> None:
    from components.common import Identity
    from components.kinds import WorkflowSettings
    from components.workflow import WorkflowArgs

    ident = Identity("shop", "dev", "payments", "team", "1" * 12, "us-east-1")
    args = WorkflowArgs(ident, WorkflowSettings(steps=["authorize", "emit"]),
                        provides={"PaymentCaptured": {"kind": "event"}})
    with pytest.raises(ValueError, match="settings.steps: 'emit' names the function that publishes"):
        args.validate("workflow")
    WorkflowArgs(ident, WorkflowSettings(steps=["authorize", "emit"])).validate("workflow")  # publishes nothing
