"""The components and the program, under pulumi's mocks: every context of the sample shop deployed by the
orchestrator through the simulated engine, and the properties the platform promises asserted on the resources'
inputs: encryption, TLS, least privilege with exact ARNs, event rules, tags, names within AWS limits, protection,
dead-letter queues, and outputs named per contract."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from components.common import ACTIONS, LIMITS, ContextArgs, Grant, Identity
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
    # the storefront is public: its load balancer (not its tasks) stands in the public subnets
    balancer = of_type(dev.results["storefront"], "aws:lb/loadBalancer:LoadBalancer")[0]
    assert balancer.inputs["internal"] is False and balancer.inputs["subnets"] == net["public_subnet_ids"]
    subnets = of_type(dev.results["network"], "aws:ec2/subnet:Subnet")
    assert len({s.inputs["availabilityZone"] for s in subnets}) == 2 and len(subnets) == 4
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    assert len(of_type(dev.results["network"], "aws:ec2/internetGateway:InternetGateway")) == 1


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
            if r.type.endswith(("LoadBalancer", "TargetGroup")):
                # named by the provider (a replacement must not collide): the logical name and 7 characters
                assert "name" not in r.inputs and len(r.name) + 8 <= size_of(limits, r.type), r.name
                checked += 1
            elif r.type in limits:
                key, size = limits[r.type]
                assert len(r.inputs[key]) <= size, (r.type, r.inputs[key])
                assert LONG_ENV[:10] in r.inputs[key] or len(r.inputs[key]) == size, r.inputs[key]
                checked += 1
        for r in of_type(result, "aws:s3/bucket:Bucket"):
            assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", r.inputs["bucket"])
    assert checked >= 28  # 14 groups and rules per environment


def size_of(limits: dict[str, tuple[str, int]], type_token: str) -> int:
    return limits[type_token][1]


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


# -- network paths: public subnets, NAT, one rule style, public ingress ---------------------------------------

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
SOURCES = ("cidrIpv4", "cidrIpv6", "referencedSecurityGroupId", "prefixListId")
#: What EC2 accepts in a security group's or rule's description (its API; botocore has no pattern for it).
EC2_DESCRIPTION = re.compile(r"^[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}$")


def test_every_security_group_rule_stands_alone_with_a_description_ec2_accepts(dev: Keeper, prod: Keeper) -> None:
    checked = 0
    for keeper in (dev, prod):
        for result in keeper.results.values():
            for r in result.resources:
                if r.type == "aws:ec2/securityGroup:SecurityGroup":
                    # inline rules would make the group's owner revoke every rule other stacks add to it
                    assert "ingress" not in r.inputs and "egress" not in r.inputs, r.name
                if r.type in ("aws:ec2/securityGroup:SecurityGroup", INGRESS, EGRESS):
                    assert EC2_DESCRIPTION.match(r.inputs["description"]), (r.name, r.inputs["description"])
                    checked += 1
                if r.type in (INGRESS, EGRESS):
                    assert [k for k in SOURCES if k in r.inputs] and len([k for k in SOURCES if k in r.inputs]) == 1
                    assert r.inputs["ipProtocol"] == "tcp" and r.inputs["fromPort"] == r.inputs["toPort"]
    assert checked >= 28  # 14 groups and rules per environment


def test_private_subnets_leave_through_nat_and_public_ones_through_the_gateway(dev: Keeper, prod: Keeper) -> None:
    import ipaddress
    from itertools import combinations

    for keeper, env, azs in ((dev, "dev", 2), (prod, "prod", 3)):
        net = keeper.results["network"]
        by_name = {r.name: r for r in net.resources}
        vpc = ipaddress.ip_network(of_type(net, "aws:ec2/vpc:Vpc")[0].inputs["cidrBlock"])
        subnets = of_type(net, "aws:ec2/subnet:Subnet")
        blocks = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in subnets]
        # room for a load balancer (/27 or larger) in every subnet, inside the VPC, no two overlapping
        assert all(b.prefixlen <= 27 and b.subnet_of(vpc) for b in blocks)  # type: ignore[arg-type]
        assert not any(a.overlaps(b) for a, b in combinations(blocks, 2))
        public = [s for s in subnets if "-public-" in s.name]
        private = [s for s in subnets if "-private-" in s.name]
        assert len(public) == len(private) == azs
        outputs = net.outputs["vpc"]
        assert outputs["nat"] == ("per-az" if env == "prod" else "one") and len(outputs["public_subnet_ids"]) == azs
        nats = of_type(net, "aws:ec2/natGateway:NatGateway")
        assert len(nats) == (azs if env == "prod" else 1)
        assert all("network-igw" in n.dependencies for n in nats)  # a NAT gateway needs the way out first
        routes = of_type(net, "aws:ec2/route:Route")
        assert all(r.inputs["destinationCidrBlock"] == "0.0.0.0/0" for r in routes)
        to_gateway = [r for r in routes if "gatewayId" in r.inputs]
        assert len(to_gateway) == 1 and "network-igw" in to_gateway[0].dependencies
        for subnet in private:
            association = by_name[f"{subnet.name}-routes"]
            table = next(d for d in association.dependencies if by_name[d].type == "aws:ec2/routeTable:RouteTable")
            (route,) = [r for r in routes if table in r.dependencies]
            nat = by_name[next(d for d in route.dependencies if by_name[d].type == "aws:ec2/natGateway:NatGateway")]
            if env == "prod":  # each AZ through the NAT gateway of its own AZ
                nat_subnet = by_name[next(d for d in nat.dependencies if d.startswith("network-public-"))]
                assert nat_subnet.inputs["availabilityZone"] == subnet.inputs["availabilityZone"]


def test_the_storefront_is_public_over_https_through_cloudfront_only(dev: Keeper) -> None:
    front = dev.results["storefront"]
    (balancer,) = of_type(front, "aws:lb/loadBalancer:LoadBalancer")
    (cdn,) = of_type(front, "aws:cloudfront/distribution:Distribution")
    assert balancer.inputs["internal"] is False
    assert balancer.name in cdn.dependencies
    assert [o["domainName"].endswith(".elb.amazonaws.com") for o in cdn.inputs["origins"]] == [True]
    assert cdn.inputs["defaultCacheBehavior"]["viewerProtocolPolicy"] == "redirect-to-https"
    assert cdn.inputs["viewerCertificate"] == {"cloudfrontDefaultCertificate": True}
    admits = [r.inputs for r in of_type(front, INGRESS)
              if r.inputs["securityGroupId"] in balancer.inputs["securityGroups"]]
    cloudfront = "pl-" + hashlib.sha256(b"com.amazonaws.global.cloudfront.origin-facing").hexdigest()[:8]
    assert [(a["fromPort"], a.get("prefixListId")) for a in admits] == [(80, cloudfront)]
    url = front.outputs["web"]["url"]
    assert url.startswith("https://") and url.endswith(".cloudfront.net")
    # every other HTTP API of the environment is an API Gateway API whose routes all need SigV4
    for context, result in dev.results.items():
        assert not [r for r in of_type(result, "aws:lb/loadBalancer:LoadBalancer")
                    if context != "storefront" and not r.inputs["internal"]]
        assert {r.inputs["authorizationType"] for r in of_type(result, "aws:apigatewayv2/route:Route")} <= {"AWS_IAM"}


def test_the_storefront_may_invoke_exactly_the_routes_it_consumes_and_reach_them_through_nat(dev: Keeper) -> None:
    front = dev.results["storefront"]
    catalog = dev.results["catalog"].outputs["catalog-api"]["execution_arn"]
    orders = dev.results["orders"].outputs["orders-api"]["execution_arn"]
    invoke = [s for s in policies(front)["storefront-task-policy"] if s["Action"] == ["execute-api:Invoke"]]
    assert sorted(r for s in invoke for r in s["Resource"]) == sorted([
        f"{catalog}/*/GET/products", f"{catalog}/*/GET/products/*", f"{catalog}/*/PUT/products/*",
        f"{orders}/*/GET/orders/*", f"{orders}/*/POST/orders"])
    (service,) = of_type(front, "aws:ecs/service:Service")
    (task_group,) = service.inputs["networkConfiguration"]["securityGroups"]
    out = [r.inputs for r in of_type(front, EGRESS) if r.inputs["securityGroupId"] == task_group]
    assert {"cidrIpv4": "0.0.0.0/0", "fromPort": 443} in [{k: o[k] for k in ("cidrIpv4", "fromPort") if k in o}
                                                          for o in out]
    assert service.inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service.inputs["waitForSteadyState"] is True
    (task,) = of_type(front, "aws:ecs/taskDefinition:TaskDefinition")
    env = {e["name"]: e["value"] for e in json.loads(task.inputs["containerDefinitions"])[0]["environment"]}
    assert env["CATALOG_CATALOG_API_URL"] == dev.results["catalog"].outputs["catalog-api"]["url"]
    assert env["ORDERS_ORDERS_API_URL"] == dev.results["orders"].outputs["orders-api"]["url"]


def test_the_public_access_rules_accept_this_ingress_and_refuse_an_open_load_balancer(dev: Keeper) -> None:
    from ode.contracts.policies import RULES
    from ode.policy import RESOURCE_RULES, STACK_RULES, Res, resources_from

    def findings(resources: list[Res]) -> list[str]:
        found = [f"no-public-access: {m}" for r in resources for m in RESOURCE_RULES["no-public-access"](
            r, RULES["no-public-access"].config)]
        found += [f"encryption-in-transit: {m}" for _, m in STACK_RULES["encryption-in-transit"](
            resources, RULES["encryption-in-transit"].config, None)]
        return found

    shape = resources_from(dev.results["storefront"].resources)
    assert findings(shape) == []
    balancer = next(r for r in shape if r.type == "aws:lb/loadBalancer:LoadBalancer")
    group = balancer.props["securityGroups"][0]

    def changed(name: str, **props: Any) -> list[Res]:
        return [Res(r.type, r.name, {**r.props, **props}, r.parent, r.dependencies) if r.name == name else r
                for r in shape]

    open_rule = Res(INGRESS, "anyone", {"securityGroupId": group, "ipProtocol": "tcp", "fromPort": 80,
                                        "toPort": 80, "cidrIpv4": "0.0.0.0/0"})
    opened = findings([*shape, open_rule])
    assert any(f.startswith("no-public-access: ingress rule anyone admits the whole internet") for f in opened)
    assert any("encryption-in-transit: listener storefront-http" in f and "0.0.0.0/0" in f for f in opened)
    no_cdn = findings([r for r in shape if r.type != "aws:cloudfront/distribution:Distribution"])
    assert any("no CloudFront distribution" in f for f in no_cdn), no_cdn
    untagged = findings(changed(balancer.name, tags={}))
    assert any(f.startswith(f"no-public-access: load balancer {balancer.name} is internet-facing") for f in untagged)
    cdn = next(r for r in shape if r.type == "aws:cloudfront/distribution:Distribution")
    plain = findings(changed(cdn.name, defaultCacheBehavior={**cdn.props["defaultCacheBehavior"],
                                                             "viewerProtocolPolicy": "allow-all"}))
    assert any("lets viewers use plain HTTP" in f for f in plain), plain


def test_auto_named_children_leave_room_for_the_providers_suffix() -> None:
    from components.container_service import logical

    assert logical("storefront", "alb") == "storefront-alb"
    long_names = {logical(("c" * 31) + str(i), role) for i in range(10) for role in ("alb", "targets")}
    assert len(long_names) == 20 and all(len(n) + 8 <= 32 for n in long_names)  # "-" and 7 characters
