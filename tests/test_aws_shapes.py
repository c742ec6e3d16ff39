"""Evidence that what ode deploys is accepted by AWS's API: the whole sample (dev and prod), as the simulated
engine records it, created in moto through boto3 in dependency order, each call checked against botocore's model
first (see tests/aws_deploy.py). Bounded: everything runs in-process (moto's mock_aws), no server, no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ode.contracts import load_library
from ode.engines import ResourceChange
from ode.execution.orchestrator import Orchestrator
from ode.registry.sqlite import Registry

from .aws_deploy import Deployment, Rejected, deploy_stack
from .conftest import SAMPLE
from .test_components import Keeper, SimulatedEngine

moto = pytest.importorskip("moto", reason="moto is in the test extra")


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       # the ECS execution role attaches an AWS-managed policy, which moto loads only when asked
                       "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


_RECORDED: dict[str, tuple[list[str], Keeper]] = {}


def recorded(state: Path, env: str) -> tuple[list[str], Keeper]:
    """The sample's stacks in ``env`` as the simulated engine records them (once per test session)."""
    if env not in _RECORDED:
        library = load_library(SAMPLE)
        engine = Keeper(SimulatedEngine(library, state))
        result = Orchestrator(library, Registry(state), engine, parallel=1).up(env)  # type: ignore[arg-type]
        assert result.ok, [(s.stack, s.error) for s in result.stacks if s.error]
        _RECORDED[env] = ([s.context for s in result.stacks], engine)
    return _RECORDED[env]


@pytest.mark.slow
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_whole_sample_deploys_into_aws_api_shapes(tmp_path: Path, env: str) -> None:
    order_of_stacks, engine = recorded(tmp_path, env)
    place = load_library(SAMPLE).environment(env)
    with moto.mock_aws():
        deployment = Deployment(account=place.account, region=place.region)
        for context in order_of_stacks:
            deploy_stack(deployment, engine.results[context].resources)
        made = sum(len([r for r in engine.results[c].resources if not r.type.startswith(("pulumi:", "ode:"))])
                   for c in order_of_stacks)
        assert deployment.calls >= made
        # what was made is really there, with what the contracts asked for
        functions = deployment.client("lambda").list_functions()["Functions"]
        assert {f["TracingConfig"]["Mode"] for f in functions} == {"Active"}
        # every context with alarms has its encrypted topic, and every context its dashboard
        topics = deployment.client("sns").list_topics()["Topics"]
        assert topics and all(deployment.client("sns").get_topic_attributes(TopicArn=t["TopicArn"])["Attributes"]
                              .get("KmsMasterKeyId") for t in topics)
        dashboards = deployment.client("cloudwatch").list_dashboards()["DashboardEntries"]
        assert len(dashboards) == len(order_of_stacks)
        alarms = deployment.client("cloudwatch").describe_alarms()["MetricAlarms"]
        assert alarms and all(a["AlarmActions"] and a["AlarmActions"] == a["OKActions"] for a in alarms)
        services = deployment.client("ecs").list_services(cluster=f"shop-{env}-storefront-cluster")["serviceArns"]
        assert len(services) == 1
        # the storefront is public: CloudFront in front of the one internet-facing load balancer, which admits
        # CloudFront's origin-facing prefix list and nothing else
        ec2 = deployment.client("ec2")
        (dist,) = deployment.client("cloudfront").list_distributions()["DistributionList"]["Items"]
        balancers = deployment.client("elbv2").describe_load_balancers()["LoadBalancers"]
        public = [lb for lb in balancers if lb["Scheme"] == "internet-facing"]
        assert [lb["DNSName"] for lb in public] == [o["DomainName"] for o in dist["Origins"]["Items"]]
        cloudfront = next(pl["PrefixListId"] for pl in ec2.describe_managed_prefix_lists()["PrefixLists"]
                          if pl["PrefixListName"] == "com.amazonaws.global.cloudfront.origin-facing")
        admitted = ec2.describe_security_groups(GroupIds=public[0]["SecurityGroups"])["SecurityGroups"][0]
        assert [(p["FromPort"], [x["PrefixListId"] for x in p["PrefixListIds"]], p["IpRanges"], p["UserIdGroupPairs"])
                for p in admitted["IpPermissions"]] == [(80, [cloudfront], [], [])]
        # private subnets leave through NAT (one gateway, or one per AZ in prod), public ones through the gateway
        nats = ec2.describe_nat_gateways()["NatGateways"]
        assert len(nats) == (3 if env == "prod" else 1)
        defaults = [r for t in ec2.describe_route_tables()["RouteTables"] for r in t["Routes"]
                    if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        assert sorted({r.get("NatGatewayId") or r.get("GatewayId", "")[:4] for r in defaults}) == sorted(
            ["igw-", *(n["NatGatewayId"] for n in nats)])
    assert os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] == "true"


def test_the_deployer_catches_what_aws_refuses(tmp_path: Path) -> None:
    """The checks the evidence relies on fail where AWS would: an enum AWS does not know, a traced function whose
    role cannot send traces, an ECS service whose target group no listener attaches to a load balancer, a security
    group description EC2 does not accept, a NAT gateway in a VPC without an internet gateway."""
    _, engine = recorded(tmp_path, "dev")
    storefront = engine.results["storefront"].resources
    network = engine.results["network"].resources
    with moto.mock_aws():
        d = Deployment(account="111111111111", region="us-east-1")
        deploy_stack(d, network)
        without_listener = [ResourceChange(r.type, r.name, r.parent, r.inputs, r.op,
                                           [x for x in r.dependencies if x != "storefront-http"])
                            for r in storefront if r.type != "aws:lb/listener:Listener"]
        with pytest.raises(Rejected, match="does not have an associated load balancer"):
            deploy_stack(d, without_listener)
    apostrophe = [ResourceChange(r.type, r.name, r.parent, {**r.inputs, "description": "the network's workloads"}
                                 if r.name == "network-workloads-sg" else r.inputs, r.op, r.dependencies)
                  for r in network]
    no_gateway = [ResourceChange(r.type, r.name, r.parent, r.inputs, r.op,
                                 [x for x in r.dependencies if x != "network-igw"]) for r in network
                  if r.type != "aws:ec2/internetGateway:InternetGateway" and r.name != "network-public-default-route"]
    orders = engine.results["orders"].resources
    untraceable = [ResourceChange(r.type, r.name, r.parent, {**r.inputs, "policy": r.inputs["policy"].replace(
        "xray:PutTraceSegments", "xray:GetSamplingRules")} if r.type == "aws:iam/rolePolicy:RolePolicy"
        else r.inputs, r.op, r.dependencies) for r in orders]
    bad_runtime = [ResourceChange(r.type, r.name, r.parent, {**r.inputs, "billingMode": "ON_DEMAND"}
                                  if r.type == "aws:dynamodb/table:Table" else r.inputs, r.op, r.dependencies)
                   for r in orders]
    for broken, message in ((untraceable, "lacks xray:PutTraceSegments"),
                            (bad_runtime, "'ON_DEMAND' is not one of")):
        with moto.mock_aws():
            d = Deployment(account="111111111111", region="us-east-1")
            deploy_stack(d, engine.results["shared-bus"].resources)  # where its rules live
            with pytest.raises(Rejected, match=message):
                deploy_stack(d, broken)
    for broken, message in ((apostrophe, "InvalidParameterValue: description \"the network's workloads\""),
                            (no_gateway, "without an internet gateway")):
        with moto.mock_aws():
            with pytest.raises(Rejected, match=message):
                deploy_stack(Deployment(account="111111111111", region="us-east-1"), broken)
