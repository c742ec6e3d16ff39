"""Stack outputs in SSM Parameter Store (moto's server): published by one environment, read by a consumer whose
registry does not know its producers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import boto3
import pytest

from ode.clock import iso, utcnow
from ode.publishing.ssm_outputs import ProducerOutputs, PublishError, SsmOutputs, parameter_name, wants_ssm
from ode.registry.sqlite import Registry

from .moto_server import REGION, aws, moto_server  # noqa: F401  (pytest fixtures)

OUTPUTS = {"orders-api": {"url": "https://orders.example", "arn": "arn:aws:execute-api:x"},
           "db-credentials": {"secret_arn": "arn:aws:secretsmanager:x", "password": "s3cret-value"}}
SECRET = {"db-credentials"}


def test_parameter_names_follow_the_documented_path() -> None:
    assert parameter_name("shop", "pr-9", "orders", "orders-api") == "/ode/shop/pr-9/orders/orders-api"
    with pytest.raises(PublishError, match="interface 'a b'"):
        parameter_name("shop", "dev", "orders", "a b")


def test_publishing_is_asked_for_by_the_environment() -> None:
    class Env:
        publish = "ssm"

    assert wants_ssm(Env()) and not wants_ssm(object())


@pytest.mark.usefixtures("aws")
def test_outputs_are_published_as_json_and_secret_ones_as_secure_strings() -> None:
    ssm = SsmOutputs("shop", region=REGION)
    written = ssm.publish("dev", "orders", OUTPUTS, SECRET)
    assert written == ["/ode/shop/dev/orders/db-credentials", "/ode/shop/dev/orders/orders-api"]
    client = boto3.client("ssm")
    public = client.get_parameter(Name="/ode/shop/dev/orders/orders-api")["Parameter"]
    assert public["Type"] == "String"
    secret = client.get_parameter(Name="/ode/shop/dev/orders/db-credentials")["Parameter"]
    assert secret["Type"] == "SecureString"
    plain = json.dumps(OUTPUTS["db-credentials"], sort_keys=True)
    assert secret["Value"] != plain  # not given back in clear unless asked WithDecryption
    decrypted = client.get_parameter(Name="/ode/shop/dev/orders/db-credentials", WithDecryption=True)["Parameter"]
    assert decrypted["Value"] == plain
    assert ssm.read("dev", "orders") == (OUTPUTS, frozenset(SECRET))
    assert ssm.read("dev", "payments") is None


@pytest.mark.usefixtures("aws")
def test_republishing_removes_interfaces_a_stack_lost_and_unpublish_removes_all() -> None:
    ssm = SsmOutputs("shop", region=REGION)
    ssm.publish("dev", "orders", OUTPUTS, SECRET)
    ssm.publish("dev", "orders", {"orders-api": {"url": "https://v2"}})
    assert ssm.read("dev", "orders") == ({"orders-api": {"url": "https://v2"}}, frozenset())
    ssm.publish("dev", "catalog", {"products-table": {"name": "t"}})
    assert ssm.unpublish("dev", "orders") == ["/ode/shop/dev/orders/orders-api"]
    assert ssm.read("dev", "orders") is None
    assert ssm.read("dev", "catalog") is not None  # another stack's parameters are left alone


@pytest.mark.usefixtures("aws")
def test_a_consumer_reads_producers_its_registry_lacks_from_ssm(tmp_path: Path) -> None:
    """The producer's environment publishes (its own registry); a consumer in another repository, with an
    empty registry of its own, gets the outputs from SSM, and its registry's own stacks still win."""
    producer_registry = Registry(tmp_path / "producer")
    producer_registry.record_success("dev", "orders", fingerprint="f", inputs={}, outputs={"orders-api": OUTPUTS[
        "orders-api"]}, secret_outputs=sorted(SECRET), engine="pulumi", simulated=False, started_at=iso(utcnow()) or "",
        finished_at=iso(utcnow()) or "", duration_s=1.0)
    SsmOutputs("shop", region=REGION).publish("dev", "orders", OUTPUTS, SECRET)

    consumer_registry = Registry(tmp_path / "consumer")
    view = ProducerOutputs(consumer_registry, SsmOutputs("shop", region=REGION))
    got = view.outputs("dev", "orders")
    assert got == (OUTPUTS, frozenset(SECRET), "ssm")
    assert view.outputs("dev", "nobody") is None
    assert ProducerOutputs(consumer_registry, None).outputs("dev", "orders") is None
    consumer_registry.record_success("dev", "orders", fingerprint="f", inputs={}, outputs={"orders-api": {"url": "l"}},
                                     secret_outputs=[], engine="pulumi", simulated=False, started_at="",
                                     finished_at="", duration_s=0.0)
    assert view.outputs("dev", "orders") == ({"orders-api": {"url": "l"}}, frozenset(), "registry")
    # what the consumer read stays out of its registry file
    assert b"s3cret-value" not in (tmp_path / "consumer" / "registry.db").read_bytes()


def test_an_unreachable_ssm_is_one_line_without_the_values(monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    caplog.set_level(logging.DEBUG)
    from botocore.config import Config

    client = boto3.session.Session(region_name=REGION).client("ssm", config=Config(retries={"max_attempts": 1}))
    with pytest.raises(PublishError, match="cannot publish the outputs of dev.orders to SSM") as err:
        SsmOutputs("shop", client=client).publish("dev", "orders", OUTPUTS, SECRET)
    assert "\n" not in str(err.value) and "s3cret-value" not in str(err.value)
