"""Each policy rule: a planted violation it must catch, and the sample shop, which must pass it.

Rules are plain functions over resources; these tests build their own resource lists (with dependencies where a
graph rule needs them) and run the sample's programs under mocks once for the clean side.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ode.clock import FrozenClock
from ode.contracts import load_library, read_library
from ode.contracts.policies import RULES, Waiver
from ode.policy import (
    RESOURCE_RULES,
    STACK_RULES,
    Bounds,
    Consumed,
    Policies,
    Res,
    action_exists,
    crossguard_policies,
    resource_findings,
    star_only,
)

from .conftest import SAMPLE, context, write_library

#: AWS's documented example access key id, assembled here so that no key-shaped string is committed.
PLANTED_KEY = "AKIA" + "IOSFODNN7EXAMPLE"

ACCOUNT, REGION = "111111111111", "us-east-1"


def res(type_: str, logical: str, /, *, deps: list[str] | None = None, parent: str | None = None,
        **props: Any) -> Res:
    return Res(type_, logical, props, parent, deps, {})


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


def run_resource_rule(rule: str, resource: Res, **config: Any) -> list[str]:
    return list(RESOURCE_RULES[rule](resource, {**RULES[rule].config, **config}))


def run_stack_rule(rule: str, resources: list[Res], bounds: Bounds | None = None, **config: Any) -> list[str]:
    return [msg for _, msg in STACK_RULES[rule](resources, {**RULES[rule].config, **config}, bounds)]


# ---------------------------------------------------------------------------------------------------------------
# The sample shop passes (its programs run once, under mocks)


@pytest.fixture(scope="module")
def sample_dev() -> Any:
    from ode.policy.environment import check_environment

    return check_environment(load_library(SAMPLE, "dev"), "dev")


#: Findings in the sample that are real and reported, not hidden (none left: the dead-letter queues made by the
#: components' queue helper now alarm on their visible messages).
SAMPLE_KNOWN: dict[str, str] = {}


@pytest.mark.parametrize("rule", [r for r in RULES if RULES[r].scope != "library"] + ["no-plaintext-secrets",
                                                                                       "cross-account-consumption"])
def test_the_sample_is_clean(sample_dev: Any, rule: str) -> None:
    report = sample_dev.report
    assert not report.errors, report.errors
    found = [v for v in report.violations if v.rule == rule]
    if rule in SAMPLE_KNOWN:
        assert all(SAMPLE_KNOWN[rule] in v.message and v.level == "advisory" for v in found), found
    else:
        assert found == [], [v.message for v in found]
    assert report.ok
    assert len(sample_dev.stacks) == 10


# ---------------------------------------------------------------------------------------------------------------
# Resource rules


def test_encryption_at_rest() -> None:
    assert run_resource_rule("encryption-at-rest", res("aws:sqs/queue:Queue", "q", sqsManagedSseEnabled=False))
    assert not run_resource_rule("encryption-at-rest", res("aws:sqs/queue:Queue", "q", sqsManagedSseEnabled=True))
    assert run_resource_rule("encryption-at-rest", res("aws:sns/topic:Topic", "t"))
    assert run_resource_rule("encryption-at-rest", res("aws:rds/instance:Instance", "db", storageEncrypted=False))
    table = res("aws:dynamodb/table:Table", "t", serverSideEncryption={"enabled": False})
    assert not run_resource_rule("encryption-at-rest", table)
    assert run_resource_rule("encryption-at-rest", table, require_kms=True)


def test_no_public_access() -> None:
    rule = "no-public-access"
    assert run_resource_rule(rule, res("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "b",
                                       blockPublicAcls=True, blockPublicPolicy=False, ignorePublicAcls=True,
                                       restrictPublicBuckets=True))
    sg = res("aws:ec2/securityGroup:SecurityGroup", "sg",
             ingress=[{"protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrBlocks": ["0.0.0.0/0"]}])
    assert "0.0.0.0/0" in run_resource_rule(rule, sg)[0]
    assert run_resource_rule(rule, res("aws:lb/loadBalancer:LoadBalancer", "lb", internal=False))
    assert run_resource_rule(rule, res("aws:apigatewayv2/route:Route", "r", routeKey="GET /x"))
    policy = doc({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"})
    assert run_resource_rule(rule, res("aws:s3/bucketPolicy:BucketPolicy", "p", policy=policy))
    assert not run_resource_rule(rule, res("aws:lb/loadBalancer:LoadBalancer", "lb", internal=True))


def test_iam_no_wildcards() -> None:
    rule = "iam-no-wildcards"
    assert run_resource_rule(rule, res("aws:iam/rolePolicy:RolePolicy", "p", role="r",
                                       policy=doc(allow(["s3:*"], [arn("s3", "b")]))))
    star = run_resource_rule(rule, res("aws:iam/rolePolicy:RolePolicy", "p", role="r",
                                       policy=doc(allow(["dynamodb:GetItem"], ["*"]))))
    assert star and "dynamodb:GetItem" in star[0]
    # X-Ray takes no narrower resource than "*": that is not a wildcard anyone chose.
    assert not run_resource_rule(rule, res("aws:iam/rolePolicy:RolePolicy", "p", role="r", policy=doc(
        allow(["xray:PutTraceSegments", "ec2:DescribeNetworkInterfaces"], ["*"]))))
    assert run_resource_rule(rule, res("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "a", role="r",
                                       policyArn="arn:aws:iam::aws:policy/AdministratorAccess"))


def test_iam_actions_exist_uses_the_iam_catalogue_not_botocore() -> None:
    # IAM-only actions that botocore has no operation for.
    for action in ("lambda:InvokeFunction", "s3:ListBucket", "execute-api:Invoke", "logs:CreateLogDelivery"):
        assert action_exists(action), action
    assert not action_exists("dynamodb:GetItems") and not action_exists("nosuch:Thing")
    assert action_exists("sqs:Receive*") and not action_exists("sqs:Nothing*")
    assert star_only("xray:PutTraceSegments") and not star_only("dynamodb:GetItem")
    found = run_resource_rule("iam-actions-exist", res("aws:iam/rolePolicy:RolePolicy", "p", role="r", policy=doc(
        allow(["dynamodb:GetItems", "dynamodb:Query"], [arn("dynamodb", "table/t")]))))
    assert found and "dynamodb:GetItems" in found[0] and "Query" not in found[0]


def test_required_tags_counts_the_providers_default_tags() -> None:
    bucket = Res("aws:s3/bucket:Bucket", "b", {"tags": {"ode:env": "dev"}}, None, None, {})
    assert "ode:context" in run_resource_rule("required-tags", bucket)[0]
    bucket.default_tags = {"ode:context": "c", "ode:owner": "o"}
    assert not run_resource_rule("required-tags", bucket)
    assert run_resource_rule("required-tags", bucket, tags=["cost-center"])


def test_log_retention() -> None:
    group = res("aws:cloudwatch/logGroup:LogGroup", "g", name="/aws/lambda/x", retentionInDays=30.0)
    assert not run_resource_rule("log-retention", group)
    assert "fewer than 365" in run_resource_rule("log-retention", group, minimum_days=365)[0]
    assert "forever" in run_resource_rule("log-retention", res("aws:cloudwatch/logGroup:LogGroup", "g"))[0]


def test_aws_value_constraints_come_from_botocore() -> None:
    rule = "aws-value-constraints"
    fn = res("aws:lambda/function:Function", "f", name="f", runtime="python2.9", memorySize=64.0, timeout=9000.0)
    found = run_resource_rule(rule, fn)
    assert any("python2.9" in m for m in found)
    assert any("memorySize 64" in m for m in found) and any("timeout 9000" in m for m in found)
    assert not run_resource_rule(rule, res("aws:lambda/function:Function", "f", name="f", runtime="python3.12",
                                           memorySize=256.0, timeout=10.0))
    assert run_resource_rule(rule, res("aws:iam/role:Role", "r", name="r" * 65))
    assert run_resource_rule(rule, res("aws:cloudwatch/logGroup:LogGroup", "g", name="g", retentionInDays=31.0))
    assert run_resource_rule(rule, res("aws:dynamodb/table:Table", "t", name="t1t", billingMode="ON_DEMAND"))


# ---------------------------------------------------------------------------------------------------------------
# Stack rules


def _function(name: str, role: str, **props: Any) -> Res:
    return res("aws:lambda/function:Function", name, name=name, role=f"arn:aws:iam::{ACCOUNT}:role/{role}", **props)


def _role(name: str, *statements: dict[str, Any]) -> list[Res]:
    return [res("aws:iam/role:Role", f"{name}-role", name=name),
            res("aws:iam/rolePolicy:RolePolicy", f"{name}-policy", role=name, policy=doc(*statements))]


def test_tracing_permissions() -> None:
    traced = _function("f", "f-role", tracingConfig={"mode": "Active"})
    logs = allow(["logs:PutLogEvents"], [arn("logs", "log-group:/aws/lambda/f:*")])
    found = run_stack_rule("tracing-permissions", [traced, *_role("f-role", logs)])
    assert found and "xray:PutTraceSegments" in found[0]
    xray = allow(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], ["*"])
    assert not run_stack_rule("tracing-permissions", [traced, *_role("f-role", logs, xray)])
    # An AWS-managed policy that carries the actions counts as well.
    attached = res("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "a", role="f-role",
                   policyArn="arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess")
    assert not run_stack_rule("tracing-permissions", [traced, *_role("f-role", logs), attached])


def test_vpc_permissions() -> None:
    fn = _function("f", "f-role", vpcConfig={"subnetIds": ["subnet-1"], "securityGroupIds": ["sg-1"]})
    assert run_stack_rule("vpc-permissions", [fn, *_role("f-role", allow(["ec2:CreateNetworkInterface"], ["*"]))])
    enough = allow(["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces"],
                   ["*"])
    assert not run_stack_rule("vpc-permissions", [fn, *_role("f-role", enough)])


def test_event_source_permissions() -> None:
    queue = arn("sqs", "work")
    fn = _function("f", "f-role")
    mapping = res("aws:lambda/eventSourceMapping:EventSourceMapping", "m", eventSourceArn=queue, functionName="f")
    partial = allow(["sqs:ReceiveMessage", "sqs:DeleteMessage"], [queue])
    found = run_stack_rule("event-source-permissions", [fn, mapping, *_role("f-role", partial)])
    assert found and "sqs:GetQueueAttributes" in found[0]
    other_queue = allow(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], [arn("sqs", "x")])
    assert run_stack_rule("event-source-permissions", [fn, mapping, *_role("f-role", other_queue)])
    full = allow(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], [queue])
    assert not run_stack_rule("event-source-permissions", [fn, mapping, *_role("f-role", full)])


def _ecs(service_deps: list[str] | None) -> list[Res]:
    tg = "arn:aws:elasticloadbalancing:us-east-1:111111111111:targetgroup/tg/1"
    return [
        res("aws:lb/targetGroup:TargetGroup", "svc-targets", parent="svc", name="tg"),
        res("aws:lb/listener:Listener", "svc-http", parent="svc", protocol="HTTP",
            defaultActions=[{"type": "forward", "targetGroupArn": tg}]),
        res("aws:ecs/service:Service", "svc-service", parent="svc", deps=service_deps,
            loadBalancers=[{"targetGroupArn": tg, "containerName": "c", "containerPort": 80.0}]),
    ]


def test_ecs_service_after_listener() -> None:
    found = run_stack_rule("ecs-service-after-listener", _ecs(["svc-targets"]))
    assert found and "svc-http" in found[0]
    assert not run_stack_rule("ecs-service-after-listener", _ecs(["svc-targets", "svc-http"]))
    # Without recorded dependencies the order cannot be judged either way.
    assert not run_stack_rule("ecs-service-after-listener", _ecs(None))


def test_encryption_in_transit() -> None:
    bucket = res("aws:s3/bucket:Bucket", "b", bucket="bkt")
    assert run_stack_rule("encryption-in-transit", [bucket])
    tls = res("aws:s3/bucketPolicy:BucketPolicy", "p", bucket="bkt", policy=doc(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::bkt/*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}))
    assert not run_stack_rule("encryption-in-transit", [bucket, tls])
    lb_arn = "arn:aws:elasticloadbalancing:us-east-1:111111111111:loadbalancer/app/lb1/abc"
    listener = res("aws:lb/listener:Listener", "l", protocol="HTTP", loadBalancerArn=lb_arn,
                   defaultActions=[{"type": "forward"}])
    public = res("aws:lb/loadBalancer:LoadBalancer", "lb", name="lb1", internal=False)
    internal = res("aws:lb/loadBalancer:LoadBalancer", "lb", name="lb1", internal=True)
    assert run_stack_rule("encryption-in-transit", [public, listener])
    assert not run_stack_rule("encryption-in-transit", [internal, listener])
    assert run_stack_rule("encryption-in-transit", [internal, listener], allow_internal_http=False)


def test_dead_letter_queues() -> None:
    plain = res("aws:sqs/queue:Queue", "q", name="q")
    assert run_stack_rule("dead-letter-queues", [plain])
    dlq = res("aws:sqs/queue:Queue", "q-dlq", name="q-dlq")
    redriven = res("aws:sqs/queue:Queue", "q", name="q",
                   redrivePolicy=json.dumps({"deadLetterTargetArn": arn("sqs", "q-dlq"), "maxReceiveCount": 5}))
    assert not run_stack_rule("dead-letter-queues", [redriven, dlq])
    fn = _function("f", "r")
    permission = res("aws:lambda/permission:Permission", "p", function="f", principal="events.amazonaws.com")
    assert run_stack_rule("dead-letter-queues", [fn, permission])
    with_dlq = _function("f", "r", deadLetterConfig={"targetArn": arn("sqs", "f-dlq")})
    assert not run_stack_rule("dead-letter-queues", [with_dlq, permission])


def test_alarms() -> None:
    fn = _function("f", "r")
    assert run_stack_rule("alarms", [fn])
    alarm = res("aws:cloudwatch/metricAlarm:MetricAlarm", "a", dimensions={"FunctionName": "f"})
    assert not run_stack_rule("alarms", [fn, alarm])


def test_iam_least_privilege_keeps_each_context_inside_its_bounds() -> None:
    table = arn("dynamodb", "table/shop-dev-catalog-products")
    bounds = Bounds("orders", (Consumed("catalog", "products", "table", "read", (table, "shop-dev-catalog-products"),
                                        frozenset({"dynamodb:GetItem", "dynamodb:Query"})),))
    own_table = res("aws:dynamodb/table:Table", "t", name="shop-dev-orders-table")
    ok = _role("orders-fn", allow(["dynamodb:GetItem"], [table, f"{table}/index/*"]),
               allow(["dynamodb:PutItem"], [arn("dynamodb", "table/shop-dev-orders-table")]))
    assert not run_stack_rule("iam-least-privilege", [own_table, *ok], bounds)
    write = _role("orders-fn", allow(["dynamodb:PutItem"], [table]))
    found = run_stack_rule("iam-least-privilege", [own_table, *write], bounds)
    assert found and "dynamodb:PutItem" in found[0] and "catalog/products (read)" in found[0]
    foreign = _role("orders-fn", allow(["dynamodb:GetItem"], [arn("dynamodb", "table/shop-dev-payments-ledger")]))
    found = run_stack_rule("iam-least-privilege", [own_table, *foreign], bounds)
    assert found and "payments-ledger" in found[0] and "neither" in found[0]


# ---------------------------------------------------------------------------------------------------------------
# Library rules, levels, waivers


def _library(tmp_path: Path, contexts: list[dict[str, Any]], environments: dict[str, Any] | None = None) -> Any:
    library, errors = read_library(write_library(tmp_path / "lib", contexts, environments))
    assert library is not None and not errors, errors
    return library


def test_no_plaintext_secrets_finds_an_aws_key_in_settings_environment(tmp_path: Path) -> None:
    leaky = context("leaky", "event-worker", provides={}, settings={
        "environment": {"LOG_LEVEL": "info", "PSP_ACCESS_KEY": PLANTED_KEY}})
    library = _library(tmp_path, [leaky, context("clean")])
    found = Policies(library, "dev").check_stack("leaky", None)
    assert [v.rule for v in found] == ["no-plaintext-secrets"]
    assert "settings.environment.PSP_ACCESS_KEY" in found[0].message and "AWS Access Key" in found[0].message
    assert PLANTED_KEY not in found[0].message  # the secret itself is never repeated
    assert found[0].file.endswith("leaky.yaml") and found[0].line is not None and found[0].line > 1
    assert Policies(library, "dev").check_stack("clean", None) == []


def test_no_plaintext_secrets_in_event_schema_examples(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"token": {"type": "string",
                                                         "examples": ["ghp_1234567890abcdefghijklmnopqrstuvwxyzAB"]}}}
    ctx = context("bus", "event-bus", provides={"bus": {"kind": "event-bus", "version": "1.0.0"},
                                                "E": {"kind": "event", "version": "1.0.0", "schema": schema}})
    library = _library(tmp_path, [ctx])
    found = Policies(library, "dev").check_stack("bus", None)
    assert found and found[0].rule == "no-plaintext-secrets" and "GitHub Token" in found[0].message


def test_cross_account_consumption_needs_the_producers_allow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    envs: dict[str, Any] = {"project": "t", "environments": {
        "dev": {"account": "111111111111", "region": "us-east-1"}}}
    producer = context("producer")
    consumer = context("consumer", provides={}, consumes=[{"context": "producer", "interface": "t"}])
    library = _library(tmp_path, [producer, consumer], envs)
    assert Policies(library, "dev").check_stack("consumer", None) == []
    # A producer that lives in another environment (another account) must allow the consumer's account. The
    # contract language has no way yet to place a producer elsewhere: the rule's hook for it is set directly.
    monkeypatch.setattr("ode.policy._library_rules._producer_env", lambda library, producer, env: "shared")
    envs["environments"]["shared"] = {"account": "999999999999", "region": "us-east-1"}
    library = _library(tmp_path, [producer, consumer], envs)
    found = Policies(library, "dev").check_stack("consumer", None)
    assert [v.rule for v in found] == ["cross-account-consumption"] and "999999999999" in found[0].message
    envs["environments"]["shared"]["policies"] = {"cross-account-consumption": {"level": "mandatory",
                                                                                "allow": ["111111111111"]}}
    library = _library(tmp_path, [producer, consumer], envs)
    assert Policies(library, "dev").check_stack("consumer", None) == []


def _retention_library(tmp_path: Path, waivers: list[dict[str, Any]] | None = None) -> Any:
    envs: dict[str, Any] = {"project": "t", "environments": {
        "prod": {"account": "333333333333", "region": "eu-west-1",
                 "policies": {"log-retention": {"level": "mandatory", "minimum_days": 365}, "alarms": "disabled"}}}}
    extra = {"waivers": waivers} if waivers else {}
    return _library(tmp_path, [context("audit", settings={"log_retention_days": 30}, **extra)], envs)


def _group() -> list[Res]:
    return [res("aws:cloudwatch/logGroup:LogGroup", "audit-logs", name="/ode/audit", retentionInDays=30.0)]


def test_environment_levels_configuration_and_waivers(tmp_path: Path) -> None:
    clock = FrozenClock(datetime(2027, 1, 15, tzinfo=UTC))
    found = Policies(_retention_library(tmp_path), "prod", clock=clock).check_stack("audit", _group())
    retention = [v for v in found if v.rule == "log-retention"]
    assert retention and retention[0].blocking and "fewer than 365" in retention[0].message
    assert retention[0].line is not None and retention[0].line > 1  # at settings.log_retention_days
    assert not any(v.rule == "alarms" for v in found)

    waiver = {"rule": "log-retention", "reason": "debug stream", "expires": "2027-03-31"}
    found = Policies(_retention_library(tmp_path, [waiver]), "prod", clock=clock).check_stack("audit", _group())
    retention = [v for v in found if v.rule == "log-retention"]
    assert retention[0].waived and not retention[0].blocking

    clock.now = datetime(2027, 4, 1, tzinfo=UTC)
    found = Policies(_retention_library(tmp_path, [waiver]), "prod", clock=clock).check_stack("audit", _group())
    retention = [v for v in found if v.rule == "log-retention"]
    assert retention[0].blocking and "expired on 2027-03-31" in retention[0].message


def test_a_waiver_needs_a_reason_and_a_known_rule(tmp_path: Path) -> None:
    from ode.contracts import ContractErrors

    with pytest.raises(ValueError):
        Waiver(rule="log-retention", reason="  ", expires="2027-01-01")  # type: ignore[arg-type]
    bad = context("audit", waivers=[{"rule": "log-retention", "expires": "2027-03-31"},
                                    {"rule": "no-such-rule", "reason": "x", "expires": "2027-03-31"}])
    root = write_library(tmp_path / "lib", [bad])
    with pytest.raises(ContractErrors) as caught:
        load_library(root)
    text = str(caught.value)
    assert "waivers[0].reason" in text and "waivers[1].rule" in text and "no-such-rule" in text


def test_an_unknown_rule_or_level_in_environments_is_an_error(tmp_path: Path) -> None:
    from ode.contracts import ContractErrors

    envs: dict[str, Any] = {"project": "t", "environments": {"dev": {
        "account": "111111111111", "region": "us-east-1", "policies": {"log-retension": "mandatory",
                                                                       "alarms": "sometimes"}}}}
    with pytest.raises(ContractErrors) as caught:
        load_library(write_library(tmp_path / "lib", [context("a")], envs))
    assert "log-retension" in str(caught.value) and "alarms" in str(caught.value)


def test_every_rule_is_documented_and_implemented_once() -> None:
    from ode.policy import ENVIRONMENT_RULES, LIBRARY_RULES

    implemented = [*RESOURCE_RULES, *STACK_RULES, *LIBRARY_RULES, *ENVIRONMENT_RULES]
    assert sorted(implemented) == sorted(RULES) and len(implemented) == len(set(implemented)) == 21
    assert all(RULES[r].scope == "environment" for r in ENVIRONMENT_RULES)
    assert all(r.help and r.description for r in RULES.values())


def test_rule_findings_skip_disabled_rules() -> None:
    settings = {rule: (info.level, dict(info.config)) for rule, info in RULES.items()}
    group = _group()[0]
    group.props = {"name": "/x"}
    assert any(f[0] == "log-retention" for f in resource_findings([group], settings))
    settings["log-retention"] = ("disabled", {})
    assert not any(f[0] == "log-retention" for f in resource_findings([group], settings))


# ---------------------------------------------------------------------------------------------------------------
# The same rules inside the CrossGuard pack


def _captured(validate: Any, args: Any) -> Iterator[str]:
    reports: list[str] = []
    validate(args, lambda message, urn=None: reports.append(message))
    yield from reports


def test_the_pack_runs_the_same_rule_functions() -> None:
    from pulumi_policy import (
        PolicyCustomTimeouts,
        PolicyResource,
        PolicyResourceOptions,
        ResourceValidationArgs,
        StackValidationArgs,
    )

    from ode.policy import ENVIRONMENT_RULES

    policies = {p.name: p for p in crossguard_policies()}
    assert sorted(policies) == sorted([*RESOURCE_RULES, *STACK_RULES, *ENVIRONMENT_RULES])
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    group = ResourceValidationArgs("aws:cloudwatch/logGroup:LogGroup", {"name": "/x", "retentionInDays": 30},
                                   "urn:pulumi:dev::shop::aws:cloudwatch/logGroup:LogGroup::g", "g", opts, None,
                                   {"minimum_days": 365})
    assert any("fewer than 365" in m for m in _captured(policies["log-retention"].validate, group))

    def resource(type_: str, name: str, props: dict[str, Any], deps: list[Any]) -> Any:
        return PolicyResource(type_, props, f"urn:pulumi:dev::shop::{type_}::{name}", name, opts, None, None, deps, {})

    tg = "arn:aws:elasticloadbalancing:us-east-1:111111111111:targetgroup/tg/1"
    listener = resource("aws:lb/listener:Listener", "http", {"defaultActions": [{"targetGroupArn": tg}]}, [])
    service = resource("aws:ecs/service:Service", "svc", {"loadBalancers": [{"targetGroupArn": tg}]}, [])
    stack = StackValidationArgs([listener, service], {})
    assert list(_captured(policies["ecs-service-after-listener"].validate, stack))
    after = resource("aws:ecs/service:Service", "svc", {"loadBalancers": [{"targetGroupArn": tg}]}, [listener])
    assert not list(_captured(policies["ecs-service-after-listener"].validate, StackValidationArgs([listener, after],
                                                                                                   {})))


def test_the_pack_folder_is_a_python_crossguard_pack() -> None:
    root = Path(__file__).resolve().parent.parent / "policies"
    meta = yaml.safe_load((root / "PulumiPolicy.yaml").read_text())
    assert meta["runtime"] == "python"
    main = (root / "__main__.py").read_text()
    assert "PolicyPack(" in main and "crossguard_policies()" in main
    assert "pulumi-policy" in (root / "requirements.txt").read_text()


def test_the_pack_starts_the_analyzer_the_cli_talks_to() -> None:
    """``python policies/__main__.py`` is what the CLI launches: it serves on a port it prints, and is stopped."""
    import subprocess
    import sys

    main = Path(__file__).resolve().parent.parent / "policies" / "__main__.py"
    server = subprocess.Popen([sys.executable, str(main)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        assert port.isdigit() and 0 < int(port) < 65536, (port, server.stderr.read() if server.poll() else "")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_value_out_of_aws_limits_is_located_at_its_setting(tmp_path: Path) -> None:
    library = _library(tmp_path, [context("api", "serverless-api", provides={}, settings={"memory_mb": 256,
                                                                                         "timeout_s": 10})])
    fn = res("aws:lambda/function:Function", "api", name="api", runtime="python3.12", timeout=9000.0)
    found = [v for v in Policies(library, "dev").check_stack("api", [fn]) if v.rule == "aws-value-constraints"]
    assert found and found[0].line is not None
    lines = (tmp_path / "lib" / "api.yaml").read_text().splitlines()
    assert "timeout_s" in lines[found[0].line - 1]


def test_least_privilege_bounds_leave_secret_outputs_out(tmp_path: Path) -> None:
    from ode.policy import bounds_for

    producer = context("vault", provides={"key": {"kind": "secret", "version": "1.0.0"}})
    consumer = context("app", provides={}, consumes=[{"context": "vault", "interface": "key"}])
    library = _library(tmp_path, [producer, consumer])
    secret_arn = arn("secretsmanager", "secret:vault-key-abc123")
    upstream = {"vault": {"key": {"name": "vault-key", "arn": secret_arn}}}
    written = bounds_for(library, "app", upstream, {("vault", "key", "arn"), ("vault", "key", "name")})
    assert secret_arn not in json.dumps(written.to_dict())
    read = _role("app-fn", allow(["secretsmanager:GetSecretValue"], [secret_arn]))
    assert not run_stack_rule("iam-least-privilege", read, written)  # matched by its access alone
    delete = _role("app-fn", allow(["secretsmanager:DeleteSecret"], [secret_arn]))
    assert run_stack_rule("iam-least-privilege", delete, written)
    assert run_stack_rule("iam-least-privilege", delete, bounds_for(library, "app", upstream))


@pytest.mark.parametrize("setting, message", [
    ({"log-retention": {"level": "mandatory", "minimum_days": "a lot"}}, "log-retention.minimum_days"),
    ({"log-retention": {"level": "mandatory", "minimum_dayz": 365}}, "it takes minimum_days"),
    ({"required-tags": {"level": "mandatory", "tags": "cost-center"}}, "a list of strings"),
])
def test_a_rule_option_of_the_wrong_name_or_type_is_a_contract_error(tmp_path: Path, setting: dict[str, Any],
                                                                      message: str) -> None:
    from ode.contracts import ContractErrors

    envs: dict[str, Any] = {"project": "t", "environments": {"dev": {
        "account": "111111111111", "region": "us-east-1", "policies": setting}}}
    with pytest.raises(ContractErrors) as caught:
        load_library(write_library(tmp_path / "lib", [context("a")], envs))
    assert message in str(caught.value) and "environments.yaml" in str(caught.value)


def test_the_json_schema_takes_both_forms_of_a_rule_setting_and_requires_a_waivers_reason() -> None:
    import jsonschema

    from ode.contracts import json_schema

    envs = json_schema("environments")
    doc: dict[str, Any] = {"project": "p", "environments": {"prod": {
        "account": "333333333333", "region": "eu-west-1",
        "policies": {"alarms": "mandatory", "log-retention": {"level": "mandatory", "minimum_days": 365}}}}}
    jsonschema.validate(doc, envs)
    doc["environments"]["prod"]["policies"]["alarms"] = "sometimes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, envs)
    ctx = {"context": "a", "owner": "t", "version": "1.0.0", "component": "data-store",
           "waivers": [{"rule": "log-retention", "expires": "2027-03-31"}]}
    with pytest.raises(jsonschema.ValidationError, match="reason"):
        jsonschema.validate(ctx, json_schema("context"))
