"""The components and the program, under pulumi's mocks: every context of the sample shop deployed by the
orchestrator through the simulated engine, and the properties the platform promises asserted on the resources'
inputs: encryption, TLS, least privilege with exact ARNs, event rules, tags, names within AWS limits, protection,
dead-letter queues, and outputs named per contract."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from components._common import ACTIONS, LIMITS, ContextArgs, Grant, Identity
from components.kinds import DataStoreSettings, NetworkSettings, ServerlessApiSettings
from ode.contracts import OUTPUT_FIELDS, load_library
from ode.engines import ResourceChange, StackResult, StackSpec
from ode.engines.simulated import SimulatedEngine
from ode.execution.orchestrator import Orchestrator
from ode.registry.sqlite import Registry

from .conftest import SAMPLE

TAGGED = {"aws:s3/bucket:Bucket", "aws:dynamodb/table:Table", "aws:sqs/queue:Queue", "aws:lambda/function:Function",
          "aws:iam/role:Role", "aws:cloudwatch/logGroup:LogGroup", "aws:cloudwatch/eventBus:EventBus",
          "aws:secretsmanager/secret:Secret", "aws:sfn/stateMachine:StateMachine", "aws:ec2/vpc:Vpc",
          "aws:ec2/subnet:Subnet", "aws:ecs/cluster:Cluster", "aws:lb/loadBalancer:LoadBalancer",
          "aws:apigatewayv2/api:Api", "aws:cloudwatch/eventRule:EventRule", "aws:cloudwatch/metricAlarm:MetricAlarm"}

#: Statements that AWS allows on no resource narrower than "*" (each commented where it is written).
STAR_ALLOWED = {"DescribeNetwork", "LogDelivery", "Tracing"}

LONG_ENV = "feature-add-payments-x1z"  # the longest name ode.naming makes (24 characters)


class Keeper:
    """An engine that keeps every StackResult its inner simulated engine returns."""

    def __init__(self, inner: SimulatedEngine):
        self.inner, self.name = inner, inner.name
        self.results: dict[str, StackResult] = {}
        self.specs: dict[str, StackSpec] = {}

    def up(self, spec: StackSpec, progress: Any = None) -> StackResult:
        result = self.inner.up(spec, progress)
        self.results[spec.context], self.specs[spec.context] = result, spec
        return result

    def preview(self, spec: StackSpec, progress: Any = None) -> StackResult:
        return self.inner.preview(spec, progress)

    def destroy(self, spec: StackSpec, progress: Any = None) -> StackResult:
        return self.inner.destroy(spec, progress)

    def refresh(self, spec: StackSpec, progress: Any = None) -> StackResult:
        return self.inner.refresh(spec, progress)

    def outputs(self, spec: StackSpec) -> dict[str, Any]:
        return self.inner.outputs(spec)


def deploy(state: Path, env: str, base: str | None = None, reuse: tuple[str, ...] = ()) -> Keeper:
    library = load_library(SAMPLE)
    engine = Keeper(SimulatedEngine(library, state))
    orchestrator = Orchestrator(library, Registry(state), engine, parallel=4)  # type: ignore[arg-type]
    result = orchestrator.up(env, base_env=base, reuse=reuse)
    assert result.ok, [(s.stack, s.error) for s in result.stacks if s.error]
    return engine


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Keeper:
    return deploy(tmp_path_factory.mktemp("dev"), "dev")


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Keeper:
    return deploy(tmp_path_factory.mktemp("prod"), "prod")


def of_type(result: StackResult, type_token: str) -> list[ResourceChange]:
    return [r for r in result.resources if r.type == type_token]


def policies(result: StackResult) -> dict[str, list[dict[str, Any]]]:
    """Role name -> statements of its inline policies."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in of_type(result, "aws:iam/rolePolicy:RolePolicy"):
        out[r.name] = json.loads(r.inputs["policy"])["Statement"]
    return out


@pytest.mark.slow
def test_every_stack_exports_what_its_contract_promises(dev: Keeper, prod: Keeper) -> None:
    library = load_library(SAMPLE)
    for keeper, env in ((dev, "dev"), (prod, "prod")):
        expected = {c for c, ctx in library.contexts.items() if ctx.deployed_in(env)}
        assert set(keeper.results) == expected
        for context, result in keeper.results.items():
            provides = library.contexts[context].provides
            assert set(result.outputs) == set(provides), context
            for name, iface in provides.items():
                assert set(result.outputs[name]) == set(OUTPUT_FIELDS[iface.kind]), (context, name)
                assert all(v not in (None, "", []) for v in result.outputs[name].values()), (context, name)


def test_components_are_parented_and_typed(dev: Keeper) -> None:
    for context, result in dev.results.items():
        components = [r for r in result.resources if r.type.startswith("ode:index:")]
        assert len(components) == 1 and components[0].name == context
        assert re.fullmatch(r"ode:index:[A-Z][A-Za-z]+", components[0].type)
        for r in result.resources:
            if r is not components[0] and r.type != "pulumi:providers:aws":
                assert r.parent == context, (context, r.type, r.name)


def test_every_taggable_resource_is_tagged(dev: Keeper) -> None:
    for context, result in dev.results.items():
        owner = load_library(SAMPLE).contexts[context].owner
        for r in result.resources:
            if r.type in TAGGED:
                assert {"ode:env": "dev", "ode:context": context, "ode:owner": owner}.items() <= r.inputs.get(
                    "tags", {}).items(), (context, r.type, r.name)
        provider = next(r for r in result.resources if r.type == "pulumi:providers:aws")
        assert provider.inputs["region"] == "us-east-1"
        assert json.loads(provider.inputs["allowedAccountIds"]) == ["111111111111"]


def test_data_is_encrypted_private_and_tls_only(dev: Keeper) -> None:
    seen = set()
    for result in dev.results.values():
        buckets = of_type(result, "aws:s3/bucket:Bucket")
        for b in buckets:
            seen.add("bucket")
            sse = next(r for r in of_type(result, "aws:s3/bucketServerSideEncryptionConfiguration:"
                                                   "BucketServerSideEncryptionConfiguration")
                       if r.name == f"{b.name}-sse")
            assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
            block = next(r for r in result.resources if r.name == f"{b.name}-public-access")
            assert all(block.inputs[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                 "restrictPublicBuckets"))
            policy = json.loads(next(r for r in result.resources if r.name == f"{b.name}-tls-only").inputs["policy"])
            deny = policy["Statement"][0]
            assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for t in of_type(result, "aws:dynamodb/table:Table"):
            seen.add("table")
            assert t.inputs["serverSideEncryption"] == {"enabled": True}
        for q in of_type(result, "aws:sqs/queue:Queue"):
            seen.add("queue")
            assert q.inputs["sqsManagedSseEnabled"] is True
        for g in of_type(result, "aws:cloudwatch/logGroup:LogGroup"):
            seen.add("logs")
            assert g.inputs["retentionInDays"] in (30, 7, 14, 90)
        for s in of_type(result, "aws:secretsmanager/secret:Secret"):
            seen.add("secret")
            assert "kmsKeyId" not in s.inputs  # encrypted with aws/secretsmanager
    assert seen == {"bucket", "table", "queue", "logs", "secret"}


def test_no_wildcard_actions_and_star_resources_only_where_aws_allows_nothing_narrower(dev: Keeper) -> None:
    checked = 0
    for result in dev.results.values():
        for statements in policies(result).values():
            for st in statements:
                checked += 1
                assert st["Effect"] == "Allow"
                assert all("*" not in a for a in st["Action"]), st
                if "*" in st["Resource"]:
                    assert st["Sid"] in STAR_ALLOWED, st
    assert checked > 20


def test_consumers_get_exactly_their_access_on_exactly_the_producers_arns(dev: Keeper) -> None:
    catalog_table = dev.results["catalog"].outputs["products-table"]["arn"]
    checkout = dev.results["payments"].outputs["checkout"]["arn"]
    bus = dev.results["shared-bus"].outputs["bus"]["arn"]
    statements = policies(dev.results["orders"])["orders-api-policy"]
    by_sid = {s["Sid"]: s for s in statements}
    read = by_sid["catalogproductstable"]
    assert read["Action"] == sorted(ACTIONS[("table", "read")])
    assert read["Resource"] == [catalog_table, f"{catalog_table}/index/*"]
    start = by_sid["paymentscheckout"]
    assert start["Action"] == sorted(ACTIONS[("workflow", "start")])
    assert start["Resource"] == [checkout, checkout.replace(":stateMachine:", ":execution:") + ":*"]
    assert by_sid["sharedbusbus"] == {"Sid": "sharedbusbus", "Effect": "Allow", "Action": ["events:PutEvents"],
                                      "Resource": [bus]}
    # Nothing of any other context: every foreign ARN in the policy is one the contract names.
    allowed = {catalog_table, checkout, bus, dev.results["identity"].outputs["customers-table"]["arn"]}
    foreign = {r.split("/index/")[0] for s in statements if not s["Sid"].startswith(("Own", "DeadLetters", "Tracing"))
               for r in s["Resource"] if ":execution:" not in r}
    assert foreign <= allowed
    # The consumer's code is told where the interfaces are.
    fn = of_type(dev.results["orders"], "aws:lambda/function:Function")[0]
    env = fn.inputs["environment"]["variables"]
    assert env["CATALOG_PRODUCTS_TABLE_NAME"] == dev.results["catalog"].outputs["products-table"]["name"]
    assert env["SHARED_BUS_BUS_NAME"] == dev.results["shared-bus"].outputs["bus"]["name"]
    assert env["EVENT_DETAIL_TYPE"] == "OrderPlaced"


def test_subscriptions_are_rules_on_the_bus_with_the_producers_source_and_detail_type(dev: Keeper) -> None:
    bus = dev.results["shared-bus"].outputs["bus"]["name"]
    rules = of_type(dev.results["notifications"], "aws:cloudwatch/eventRule:EventRule")
    patterns = sorted((json.loads(r.inputs["eventPattern"])["source"][0],
                       json.loads(r.inputs["eventPattern"])["detail-type"][0]) for r in rules)
    assert patterns == [("fulfilment", "OrderShipped"), ("orders", "OrderPlaced"), ("payments", "PaymentFailed")]
    assert {r.inputs["eventBusName"] for r in rules} == {bus}
    targets = of_type(dev.results["notifications"], "aws:cloudwatch/eventTarget:EventTarget")
    work = dev.results["notifications"].outputs["outbox"]["arn"]
    assert {t.inputs["arn"] for t in targets} == {work}
    policy = json.loads(of_type(dev.results["notifications"], "aws:sqs/queuePolicy:QueuePolicy")[0].inputs["policy"])
    sources = policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert len(sources) == 3 and all(f"rule/{bus}/" in arn for arn in sources)


def test_asynchronous_work_has_dead_letter_queues_and_alarms(dev: Keeper) -> None:
    worker = dev.results["fulfilment"]
    queues = {q.name: q for q in of_type(worker, "aws:sqs/queue:Queue")}
    work = queues["fulfilment-shipments-queue"]
    redrive = json.loads(work.inputs["redrivePolicy"])
    assert redrive["maxReceiveCount"] == 5 and redrive["deadLetterTargetArn"].endswith("shipments-queue-dlq")
    alarms = {a.inputs["metricName"] for a in of_type(worker, "aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert {"Errors", "Throttles", "ApproximateAgeOfOldestMessage"} <= alarms


def test_compute_attached_to_the_network_runs_in_its_private_subnets(dev: Keeper) -> None:
    net = dev.results["network"].outputs["vpc"]
    for fn in of_type(dev.results["payments"], "aws:lambda/function:Function"):
        assert fn.inputs["vpcConfig"]["subnetIds"] == net["private_subnet_ids"]
        assert fn.inputs["vpcConfig"]["securityGroupIds"] == [net["security_group_id"]]
    service = of_type(dev.results["storefront"], "aws:ecs/service:Service")[0]
    assert service.inputs["networkConfiguration"]["subnets"] == net["private_subnet_ids"]
    assert service.inputs["networkConfiguration"]["assignPublicIp"] is False
    assert of_type(dev.results["storefront"], "aws:lb/loadBalancer:LoadBalancer")[0].inputs["internal"] is True
    subnets = of_type(dev.results["network"], "aws:ec2/subnet:Subnet")
    assert len({s.inputs["availabilityZone"] for s in subnets}) == 2
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    assert not of_type(dev.results["network"], "aws:ec2/internetGateway:InternetGateway")


def test_stateful_resources_are_protected_only_in_protected_environments(dev: Keeper, prod: Keeper) -> None:
    # ResourceChange does not carry protect: run prod's program again through the mocks' recording.
    from ode.engines.simulated import record
    from ode.program import build

    library = load_library(SAMPLE)
    for keeper, protected in ((dev, False), (prod, True)):
        spec = keeper.specs["identity"]
        env = library.environment(spec.settings_env)
        rec = record(build(spec, library), project="shop", stack=spec.stack_name, account=env.account,
                     region=env.region)
        for t in ("aws:dynamodb/table:Table", "aws:s3/bucket:Bucket", "aws:secretsmanager/secret:Secret"):
            for r in rec.of_type(t):
                assert r.protect is protected and r.retain_on_delete is protected, (t, r.name)
        table = rec.of_type("aws:dynamodb/table:Table")[0]
        assert table.inputs["pointInTimeRecovery"] == {"enabled": protected}
        assert not any(r.protect for r in rec.of_type("aws:iam/role:Role"))


@pytest.mark.slow
def test_physical_names_from_a_long_environment_name_fit_aws_limits(dev: Keeper, tmp_path: Path) -> None:
    long_env = deploy(tmp_path, LONG_ENV, base="dev")
    limits = {"aws:s3/bucket:Bucket": ("bucket", LIMITS["s3"]), "aws:lambda/function:Function": ("name", 64),
              "aws:iam/role:Role": ("name", 64), "aws:sqs/queue:Queue": ("name", 80),
              "aws:cloudwatch/eventRule:EventRule": ("name", 64), "aws:sfn/stateMachine:StateMachine": ("name", 80),
              "aws:lb/loadBalancer:LoadBalancer": ("name", 32), "aws:lb/targetGroup:TargetGroup": ("name", 32),
              "aws:cloudwatch/eventArchive:EventArchive": ("name", 48)}
    checked = 0
    for result in long_env.results.values():
        for r in result.resources:
            if r.type in limits:
                key, size = limits[r.type]
                assert len(r.inputs[key]) <= size, (r.type, r.inputs[key])
                assert LONG_ENV[:10] in r.inputs[key] or len(r.inputs[key]) == size or r.type.endswith(
                    ("LoadBalancer", "TargetGroup")), r.inputs[key]
                checked += 1
        for r in of_type(result, "aws:s3/bucket:Bucket"):
            assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", r.inputs["bucket"])
    assert checked > 30


# -- args validated apart from resources -----------------------------------------------------------------------


def identity(**over: Any) -> Identity:
    return Identity(**{"project": "shop", "env": "dev", "context": "orders", "owner": "team", "account": "1" * 12,
                       "region": "us-east-1", **over})


def test_args_reject_an_interface_kind_the_component_cannot_provide() -> None:
    args = ContextArgs(identity(), DataStoreSettings(), provides={"api": {"kind": "http-api"}})
    with pytest.raises(ValueError, match=r"provides\.api\.kind: a data-store component cannot provide 'http-api'"):
        args.validate("data-store")


def test_args_reject_settings_of_another_kind() -> None:
    with pytest.raises(ValueError, match="settings: a serverless-api component takes ServerlessApiSettings"):
        ContextArgs(identity(), NetworkSettings()).validate("serverless-api")


def test_args_reject_an_access_the_kind_does_not_have() -> None:
    grant = Grant("catalog", "products-table", "table", "publish", {"arn": "arn:x", "name": "x"})
    with pytest.raises(ValueError, match=r"consumes catalog\.products-table\.access: 'publish'"):
        ContextArgs(identity(), ServerlessApiSettings(), grants=[grant]).validate("serverless-api")


def test_a_container_service_needs_a_network() -> None:
    from components.container_service import ContainerServiceArgs
    from components.kinds import ContainerServiceSettings

    with pytest.raises(ValueError, match="consumes: .* must consume a network"):
        ContainerServiceArgs(identity(), ContainerServiceSettings()).validate("container-service")


def test_validate_rejects_bad_settings_and_kinds_with_file_and_field(tmp_path: Path) -> None:
    from ode.contracts import ContractErrors

    from .conftest import context, write_library

    lib = write_library(tmp_path, [
        context("a", component="data-store", settings={"memory_mb": 512}),
        context("b", component="serverless-api", provides={"v": {"kind": "network", "version": "1.0.0"}}),
        context("c", component="lambda-thing")])
    with pytest.raises(ContractErrors) as caught:
        load_library(lib)
    text = str(caught.value)
    assert "a.yaml" in text and "settings.memory_mb" in text
    assert "b.yaml" in text and "provides.v" in text
    assert "c.yaml" in text and "component" in text
