"""The environment rules (``contract-reachable``, ``ingress-reachable``, ``aws-combinations``) and the refusals of
``aws-value-constraints`` beyond botocore, each on a planted resource graph: the working shape passes, and each
missing hop or refused value is found and named."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from components.constraints import exposed_ports, name_errors
from ode.contracts.policies import RULES
from ode.policy import ENVIRONMENT_RULES, RESOURCE_RULES, Edge, EnvView, Report, Res, crossguard_policies

ACCOUNT, REGION = "111111111111", "us-east-1"


def res(type_: str, logical: str, rid: str | None = None, outputs: dict[str, Any] | None = None, /,
        **props: Any) -> Res:
    return Res(type_, logical, props, None, [], {}, {**(outputs or {}), **({"id": rid} if rid else {})})


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def run(rule: str, view: EnvView, **config: Any) -> list[str]:
    return [message for _, _, message, _ in ENVIRONMENT_RULES[rule](view, {**RULES[rule].config, **config})]


def value_findings(resource: Res, today: date | None = None) -> list[str]:
    config = {**RULES["aws-value-constraints"].config, **({"today": today} if today else {})}
    return list(RESOURCE_RULES["aws-value-constraints"](resource, config))


# ---------------------------------------------------------------------------------------------------------------
# A planted network: a VPC with private subnets, optional NAT, endpoints and a workloads group


def network(*, nat: bool = False, endpoints: tuple[str, ...] = ("dynamodb", "sqs"), egress_internet: bool = True,
            egress_vpc: bool = True, public_subnets: bool = True, prefix: int = 20) -> list[Res]:
    vpc = res("aws:ec2/vpc:Vpc", "vpc", "vpc-1", cidrBlock="10.0.0.0/16", enableDnsHostnames=True)
    items = [vpc]
    for i, zone in enumerate("ab"):
        items.append(res("aws:ec2/subnet:Subnet", f"private-{i}", f"subnet-p{i}", vpcId="vpc-1",
                         cidrBlock=f"10.0.{i * 16}.0/{prefix}", availabilityZone=f"us-east-1{zone}"))
        items.append(res("aws:ec2/routeTableAssociation:RouteTableAssociation", f"private-{i}-rt",
                         subnetId=f"subnet-p{i}", routeTableId="rtb-private"))
    items.append(res("aws:ec2/routeTable:RouteTable", "private-routes", "rtb-private", vpcId="vpc-1"))
    if public_subnets:
        items += [res("aws:ec2/internetGateway:InternetGateway", "igw", "igw-1", vpcId="vpc-1"),
                  res("aws:ec2/routeTable:RouteTable", "public-routes", "rtb-public", vpcId="vpc-1"),
                  res("aws:ec2/route:Route", "public-default", routeTableId="rtb-public",
                      destinationCidrBlock="0.0.0.0/0", gatewayId="igw-1")]
        for i, zone in enumerate("ab"):
            items.append(res("aws:ec2/subnet:Subnet", f"public-{i}", f"subnet-u{i}", vpcId="vpc-1",
                             cidrBlock=f"10.0.{128 + i * 16}.0/20", availabilityZone=f"us-east-1{zone}"))
            items.append(res("aws:ec2/routeTableAssociation:RouteTableAssociation", f"public-{i}-rt",
                             subnetId=f"subnet-u{i}", routeTableId="rtb-public"))
    if nat:
        items += [res("aws:ec2/natGateway:NatGateway", "nat", "nat-1", subnetId="subnet-u0"),
                  res("aws:ec2/route:Route", "private-default", routeTableId="rtb-private",
                      destinationCidrBlock="0.0.0.0/0", natGatewayId="nat-1")]
    items.append(res("aws:ec2/securityGroup:SecurityGroup", "endpoints-sg", "sg-endpoints", vpcId="vpc-1",
                     description="HTTPS from the VPC"))
    items.append(res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "endpoints-in",
                     securityGroupId="sg-endpoints", ipProtocol="tcp", fromPort=443, toPort=443,
                     cidrIpv4="10.0.0.0/16"))
    for service in endpoints:
        if service in ("s3", "dynamodb"):
            items.append(res("aws:ec2/vpcEndpoint:VpcEndpoint", f"{service}-endpoint", f"vpce-{service}",
                             {"prefixListId": f"pl-{service}"}, vpcId="vpc-1", vpcEndpointType="Gateway",
                             serviceName=f"com.amazonaws.{REGION}.{service}", routeTableIds=["rtb-private"]))
        else:
            items.append(res("aws:ec2/vpcEndpoint:VpcEndpoint", f"{service}-endpoint", f"vpce-{service}",
                             vpcId="vpc-1", vpcEndpointType="Interface", privateDnsEnabled=True,
                             serviceName=f"com.amazonaws.{REGION}.{service}", subnetIds=["subnet-p0", "subnet-p1"],
                             securityGroupIds=["sg-endpoints"]))
    items.append(res("aws:ec2/securityGroup:SecurityGroup", "workloads-sg", "sg-work", vpcId="vpc-1",
                     description="Compute"))
    if egress_vpc:
        items.append(res("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "work-to-vpc",
                         securityGroupId="sg-work", ipProtocol="tcp", fromPort=443, toPort=443, cidrIpv4="10.0.0.0/16"))
        for service in endpoints:
            if service in ("s3", "dynamodb"):
                items.append(res("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", f"work-to-{service}",
                                 securityGroupId="sg-work", ipProtocol="tcp", fromPort=443, toPort=443,
                                 prefixListId=f"pl-{service}"))
    if egress_internet:
        items.append(res("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "work-to-internet",
                         securityGroupId="sg-work", ipProtocol="tcp", fromPort=443, toPort=443, cidrIpv4="0.0.0.0/0"))
    return items


NET_OUTPUTS = {"vpc_id": "vpc-1", "private_subnet_ids": ["subnet-p0", "subnet-p1"], "security_group_id": "sg-work",
               "public_subnet_ids": ["subnet-u0", "subnet-u1"]}


def worker(statements: list[dict[str, Any]], *, vpc: bool = True) -> list[Res]:
    """A consumer with one function in the network (or outside any VPC) and the given role statements."""
    fn = res("aws:lambda/function:Function", "app-fn", None, {"arn": arn("lambda", "function:app-fn")},
             name="app-fn", role=f"arn:aws:iam::{ACCOUNT}:role/app-role", runtime="python3.12",
             **({"vpcConfig": {"subnetIds": ["subnet-p0", "subnet-p1"], "securityGroupIds": ["sg-work"]}}
                if vpc else {}))
    return [fn, res("aws:iam/role:Role", "app-role", name="app-role"),
            res("aws:iam/rolePolicy:RolePolicy", "app-policy", role="app-role", policy=policy(*statements))]


TABLE_ARN = arn("dynamodb", "table/orders")
READ = ("dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan")


def table_view(net: list[Res], consumer: list[Res]) -> EnvView:
    edges = [Edge("app", "network", "vpc", "network", "attach", "network", NET_OUTPUTS, frozenset(), None,
                  "consumes[0]"),
             Edge("app", "orders", "orders-table", "table", "read", "serverless-api",
                  {"name": "orders", "arn": TABLE_ARN}, frozenset(READ), None, "consumes[1]")]
    return EnvView("dev", {"network": net, "app": consumer}, edges, region=REGION)


def grant(actions: tuple[str, ...] = READ, resource: str = TABLE_ARN) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": list(actions), "Resource": [resource]}


# ---------------------------------------------------------------------------------------------------------------
# contract-reachable: network, auth, the producer's permission


def test_a_consumer_reaches_a_table_through_its_gateway_endpoint() -> None:
    assert run("contract-reachable", table_view(network(egress_internet=False), worker([grant()]))) == []


def test_without_endpoint_or_nat_the_table_is_out_of_reach_and_the_hop_is_named() -> None:
    found = run("contract-reachable", table_view(network(endpoints=("sqs",)), worker([grant()])))
    assert len(found) == 1
    assert "app -> orders/orders-table (table, read)" in found[0]
    assert "no VPC endpoint for dynamodb" in found[0] and "no route to the internet" in found[0]


def test_nat_with_an_egress_rule_is_a_path_and_without_the_rule_it_is_not() -> None:
    assert run("contract-reachable", table_view(network(endpoints=(), nat=True), worker([grant()]))) == []
    found = run("contract-reachable", table_view(network(endpoints=(), nat=True, egress_internet=False),
                                                 worker([grant()])))
    assert found and "no egress rule allows 443 to the internet" in found[0]


def test_a_gateway_endpoint_needs_an_egress_rule_to_its_prefix_list() -> None:
    net = [r for r in network(egress_internet=False) if r.name != "work-to-dynamodb"]
    found = run("contract-reachable", table_view(net, worker([grant()])))
    assert found and "prefix list" in found[0]


def test_an_interface_endpoint_must_admit_the_compute() -> None:
    edges = [Edge("app", "payments", "checkout", "queue", "send", "data-store",
                  {"arn": arn("sqs", "work")}, frozenset({"sqs:SendMessage"}), None, "consumes[1]")]
    sqs = [{"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": [arn("sqs", "work")]}]
    ok = EnvView("dev", {"network": network(egress_internet=False), "app": worker(sqs)}, edges, region=REGION)
    assert run("contract-reachable", ok) == []
    closed = [r for r in network(egress_internet=False) if r.name != "endpoints-in"]
    found = run("contract-reachable", EnvView("dev", {"network": closed, "app": worker(sqs)}, edges, region=REGION))
    assert found and "sqs endpoint" in found[0] and "does not admit" in found[0]


def test_the_iam_grant_is_a_hop() -> None:
    found = run("contract-reachable", table_view(network(), worker([grant(("dynamodb:GetItem",))])))
    assert len(found) == 1 and "auth: role app-role lacks" in found[0] and "dynamodb:Query" in found[0]


def test_a_stack_not_in_the_view_is_not_judged() -> None:
    view = table_view(network(endpoints=()), worker([grant()]))
    view.stacks.pop("network")
    assert run("contract-reachable", view) == []


def test_compute_outside_the_network_fails_the_attach_edge() -> None:
    found = run("contract-reachable", table_view(network(), worker([grant()], vpc=False)))
    assert found == ["app -> network/vpc (network, attach): function app-fn does not run in the network (no VPC "
                     "configuration)"]


def _api(producer_permission: bool = True, auth: str = "AWS_IAM") -> list[Res]:
    fn_arn = arn("lambda", "function:api-fn")
    invoke = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{fn_arn}/invocations"
    items = [res("aws:apigatewayv2/api:Api", "api", "api1", {"executionArn": arn("execute-api", "api1")},
                 protocolType="HTTP"),
             res("aws:lambda/function:Function", "api-fn", None, {"arn": fn_arn, "invokeArn": invoke}, name="api-fn",
                 role=f"arn:aws:iam::{ACCOUNT}:role/api-role"),
             res("aws:apigatewayv2/integration:Integration", "integration", "int1", apiId="api1",
                 integrationUri=invoke, integrationType="AWS_PROXY"),
             res("aws:apigatewayv2/route:Route", "route", "r1", apiId="api1", routeKey="GET /products",
                 authorizationType=auth, target="integrations/int1")]
    if producer_permission:
        items.append(res("aws:lambda/permission:Permission", "invoke", function="api-fn",
                         principal="apigateway.amazonaws.com", sourceArn=arn("execute-api", "api1") + "/*/*"))
    return items


def _task(image: str, role_statements: list[dict[str, Any]]) -> list[Res]:
    containers = json.dumps([{"name": "web", "image": image, "portMappings": [{"containerPort": 8080}]}])
    return [res("aws:ecs/taskDefinition:TaskDefinition", "task", None, {"arn": arn("ecs", "task-definition/t:1")},
                family="t", taskRoleArn=f"arn:aws:iam::{ACCOUNT}:role/task-role", networkMode="awsvpc",
                containerDefinitions=containers),
            res("aws:ecs/service:Service", "web", None, None, taskDefinition=arn("ecs", "task-definition/t:1"),
                launchType="FARGATE", networkConfiguration={"subnets": ["subnet-p0"], "securityGroups": ["sg-work"]}),
            res("aws:iam/role:Role", "task-role", name="task-role"),
            res("aws:iam/rolePolicy:RolePolicy", "task-policy", role="task-role", policy=policy(*role_statements))]


def _api_edge() -> Edge:
    return Edge("web", "catalog", "catalog-api", "http-api", "invoke", "serverless-api",
                {"url": f"https://api1.execute-api.{REGION}.amazonaws.com", "id": "api1",
                 "execution_arn": arn("execute-api", "api1")}, frozenset({"execute-api:Invoke"}), None, "consumes[1]")


INVOKE = {"Effect": "Allow", "Action": ["execute-api:Invoke"], "Resource": [arn("execute-api", "api1") + "/*/*"]}


def test_an_iam_api_needs_nat_and_code_that_signs() -> None:
    own = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/web@sha256:abc"
    ok = EnvView("dev", {"network": network(nat=True), "catalog": _api(), "web": _task(own, [INVOKE])},
                 [_api_edge()], region=REGION)
    assert run("contract-reachable", ok) == []
    stock = EnvView("dev", {"network": network(nat=False), "catalog": _api(),
                            "web": _task("public.ecr.aws/nginx/nginx:stable", [INVOKE])}, [_api_edge()],
                    region=REGION)
    found = run("contract-reachable", stock)
    assert any("network: subnet private-0 has no route to the internet" in m for m in found)
    assert any("auth: the routes require SigV4" in m and "public.ecr.aws/nginx" in m for m in found)
    assert all(m.startswith("web -> catalog/catalog-api (http-api, invoke)") for m in found)


def test_an_api_integration_without_the_lambda_permission_is_named_on_the_producer() -> None:
    view = EnvView("dev", {"catalog": _api(producer_permission=False)}, [_api_edge()], region=REGION)
    found = run("contract-reachable", view)
    assert found == ["catalog/catalog-api (consumed by web): API Gateway may not invoke function api-fn: no lambda "
                     "permission for apigateway.amazonaws.com on this API"]


def _subscriber(*, queue_policy: bool = True, mapping: bool = True, source_arn: str | None = None) -> list[Res]:
    rule_arn = arn("events", "rule/bus/on-paid")
    queue_arn = arn("sqs", "work")
    items = [res("aws:cloudwatch/eventRule:EventRule", "on-paid", None, {"arn": rule_arn}, name="on-paid",
                 eventBusName="bus", eventPattern=json.dumps({"source": ["payments"],
                                                              "detail-type": ["PaymentCaptured"]})),
             res("aws:cloudwatch/eventTarget:EventTarget", "on-paid-target", rule="on-paid", eventBusName="bus",
                 arn=queue_arn),
             res("aws:sqs/queue:Queue", "work", None, {"arn": queue_arn, "url": "https://sqs/work"}, name="work")]
    if queue_policy:
        items.append(res("aws:sqs/queuePolicy:QueuePolicy", "work-policy", queueUrl="https://sqs/work", policy=policy(
            {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
             "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": source_arn or rule_arn}}})))
    if mapping:
        items.append(res("aws:lambda/eventSourceMapping:EventSourceMapping", "source", eventSourceArn=queue_arn,
                         functionName="app-fn"))
    return items


def _subscription_view(consumer: list[Res]) -> EnvView:
    edge = Edge("app", "payments", "PaymentCaptured", "event", "subscribe", "workflow",
                {"bus_name": "bus", "bus_arn": arn("events", "event-bus/bus")}, frozenset(), None, "consumes[2]")
    return EnvView("dev", {"app": consumer}, [edge], region=REGION)


def test_an_event_subscription_is_rule_target_queue_policy_and_mapping() -> None:
    assert run("contract-reachable", _subscription_view(_subscriber())) == []
    found = run("contract-reachable", _subscription_view(_subscriber(queue_policy=False)))
    assert found and "app -> payments/PaymentCaptured (event, subscribe)" in found[0]
    assert "no queue policy letting event rule on-paid send to it" in found[0]
    other_rule = run("contract-reachable", _subscription_view(_subscriber(source_arn=arn("events", "rule/bus/x"))))
    assert other_rule and "queue policy" in other_rule[0]
    assert any("no event source mapping" in m for m in run("contract-reachable",
                                                           _subscription_view(_subscriber(mapping=False))))
    rules_only = [r for r in _subscriber() if r.type != "aws:cloudwatch/eventRule:EventRule"]
    assert "no event rule on bus bus matches" in run("contract-reachable", _subscription_view(rules_only))[0]


# ---------------------------------------------------------------------------------------------------------------
# ingress-reachable


def _public_service(*, cloudfront: bool = True, prefix_list: bool = True, open_to_all: bool = False,
                    internal: bool = False) -> list[Res]:
    dns = "web-alb-1.us-east-1.elb.amazonaws.com"
    items = [res("aws:lb/loadBalancer:LoadBalancer", "web-alb", None, {"arn": arn("elasticloadbalancing", "lb/1"),
                                                                       "dnsName": dns},
                 internal=internal, subnets=["subnet-u0", "subnet-u1"], securityGroups=["sg-alb"]),
             res("aws:ec2/securityGroup:SecurityGroup", "alb-sg", "sg-alb", vpcId="vpc-1", description="ALB"),
             res("aws:lb/targetGroup:TargetGroup", "tg", None, {"arn": arn("elasticloadbalancing", "tg/1")},
                 targetType="ip", port=8080),
             res("aws:lb/listener:Listener", "http", None, None, loadBalancerArn=arn("elasticloadbalancing", "lb/1"),
                 port=80, protocol="HTTP",
                 defaultActions=[{"type": "forward", "targetGroupArn": arn("elasticloadbalancing", "tg/1")}]),
             res("aws:ecs/service:Service", "svc", None, None, launchType="FARGATE",
                 loadBalancers=[{"targetGroupArn": arn("elasticloadbalancing", "tg/1")}])]
    if prefix_list:
        items.append(res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "from-cloudfront",
                         securityGroupId="sg-alb", ipProtocol="tcp", fromPort=80, toPort=80, prefixListId="pl-cf"))
    if open_to_all:
        items.append(res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "from-anyone",
                         securityGroupId="sg-alb", ipProtocol="tcp", fromPort=80, toPort=80, cidrIpv4="0.0.0.0/0"))
    if cloudfront:
        items.append(res("aws:cloudfront/distribution:Distribution", "cdn", None, None, enabled=True,
                         origins=[{"domainName": dns, "customOriginConfig": {"originProtocolPolicy": "http-only",
                                                                             "httpPort": 80}}],
                         defaultCacheBehavior={"viewerProtocolPolicy": "redirect-to-https"}))
    return items


def _ingress(web: list[Res], public: bool = True, net: list[Res] | None = None) -> EnvView:
    return EnvView("dev", {"network": net if net is not None else network(), "web": web}, [],
                   components={"web": "container-service", "network": "network"},
                   settings={"web": {"public": public}, "network": {}}, region=REGION,
                   provides={"web": {"site": "http-api"}},
                   outputs={"web": {"site": {"url": "https://d123.cloudfront.net"}}})


def test_a_public_service_behind_cloudfront_is_reachable_and_nothing_else_is() -> None:
    assert run("ingress-reachable", _ingress(_public_service())) == []


def test_a_public_service_needs_public_subnets_and_cloudfronts_prefix_list() -> None:
    found = run("ingress-reachable", _ingress(_public_service(prefix_list=False)))
    assert found == ["the security groups of web-alb do not admit CloudFront's origin-facing managed prefix list "
                     "on 80"]
    private_only = [r for r in network() if "public" not in r.name and r.name != "igw"]
    placed = [r for r in _public_service() if r.type != "aws:lb/loadBalancer:LoadBalancer"] + [
        res("aws:lb/loadBalancer:LoadBalancer", "web-alb", None, {"dnsName": "web-alb-1.us-east-1.elb.amazonaws.com"},
            internal=False, subnets=["subnet-p0", "subnet-p1"], securityGroups=["sg-alb"])]
    found = run("ingress-reachable", _ingress(placed, net=private_only))
    assert any("has no route to an internet gateway" in m for m in found)
    assert run("ingress-reachable", _ingress(_public_service(internal=True))) == [
        "web is public (settings.public) but none of its load balancers is internet-facing"]


def test_nothing_but_the_public_path_is_open() -> None:
    found = run("ingress-reachable", _ingress(_public_service(open_to_all=True)))
    assert found == ["security group alb-sg admits the whole internet beside CloudFront: admit only CloudFront's "
                     "origin-facing prefix list"]
    found = run("ingress-reachable", _ingress(_public_service(), public=False))
    assert "load balancer web-alb is internet-facing, but web is not public (settings.public)" in found
    assert any("CloudFront distribution cdn serves web, which is not public" in m for m in found)
    open_route = EnvView("dev", {"api": [res("aws:apigatewayv2/route:Route", "r", routeKey="GET /x",
                                             authorizationType="NONE")]}, [])
    assert run("ingress-reachable", open_route) == [
        "route GET /x of api needs no authorization: only a public container-service is reachable from the internet"]


# ---------------------------------------------------------------------------------------------------------------
# aws-combinations


def test_a_load_balancer_in_slash_28_subnets_is_refused() -> None:
    lb = res("aws:lb/loadBalancer:LoadBalancer", "alb", internal=True, subnets=["subnet-p0", "subnet-p1"],
             securityGroups=["sg-work"])
    assert run("aws-combinations", EnvView("dev", {"network": network(prefix=20), "web": [lb]})) == []
    found = run("aws-combinations", EnvView("dev", {"network": network(prefix=28), "web": [lb]}))
    assert found and "smaller than the /27 AWS requires" in found[0] and "10.0.0.0/28" in found[0]


def test_reserved_concurrency_is_summed_over_the_environment() -> None:
    def fn(name: str, n: int) -> Res:
        return res("aws:lambda/function:Function", name, name=name, reservedConcurrentExecutions=n)

    view = EnvView("dev", {"a": [fn("a1", 500)], "b": [fn("b1", 300), fn("b2", 150)]})
    found = run("aws-combinations", view)
    assert found and "reserve 950 concurrent executions" in found[0] and "at most 900" in found[0]
    assert run("aws-combinations", view, account_concurrency=3000) == []


def test_private_dns_needs_dns_hostnames_and_one_endpoint_per_service() -> None:
    net = network(endpoints=("sqs",))
    net[0] = res("aws:ec2/vpc:Vpc", "vpc", "vpc-1", cidrBlock="10.0.0.0/16")
    found = run("aws-combinations", EnvView("dev", {"network": net}))
    assert any("enableDnsHostnames" in m for m in found)


# ---------------------------------------------------------------------------------------------------------------
# aws-value-constraints beyond botocore


def test_an_apostrophe_in_a_security_group_description_is_refused_inline_and_in_rules() -> None:
    group = res("aws:ec2/securityGroup:SecurityGroup", "alb-sg", description="Load balancer: the network's workloads")
    found = value_findings(group)
    assert found and "description" in found[0] and "AWS::EC2::SecurityGroup.GroupDescription" in found[0]
    assert "AWS refuses \"'\" there" in found[0]
    inline = res("aws:ec2/securityGroup:SecurityGroup", "sg", description="fine",
                 ingress=[{"protocol": "tcp", "fromPort": 80, "toPort": 80, "description": "the team's"}])
    assert any("ingress[0].description" in m for m in value_findings(inline))
    rule = res("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "r", securityGroupId="sg-1",
               ipProtocol="tcp", description="to the team's load balancer")
    assert any("description" in m and "AWS::EC2::SecurityGroupEgress.Description" in m for m in value_findings(rule))
    assert value_findings(res("aws:ec2/securityGroup:SecurityGroup", "ok", description="HTTPS from the VPC (443)"))\
        == []


def test_a_batching_window_on_a_fifo_source_is_refused() -> None:
    mapping = res("aws:lambda/eventSourceMapping:EventSourceMapping", "m", eventSourceArn=arn("sqs", "work.fifo"),
                  functionName="f", batchSize=10, maximumBatchingWindowInSeconds=5)
    assert any("maximumBatchingWindowInSeconds 5: Lambda refuses a batching window on a FIFO queue" in m
               for m in value_findings(mapping))
    standard = res("aws:lambda/eventSourceMapping:EventSourceMapping", "m", eventSourceArn=arn("sqs", "work"),
                   functionName="f", batchSize=10, maximumBatchingWindowInSeconds=5)
    assert value_findings(standard) == []


def test_lambda_environment_names_reserved_names_and_size() -> None:
    def fn(variables: dict[str, str]) -> Res:
        return res("aws:lambda/function:Function", "f", name="f", runtime="python3.12",
                   environment={"variables": variables})

    assert any("AWS_REGION is reserved by Lambda" in m for m in value_findings(fn({"AWS_REGION": "x"})))
    assert any("LAMBDA_TASK_ROOT is reserved" in m for m in value_findings(fn({"LAMBDA_TASK_ROOT": "/x"})))
    assert any("'X' is not a name Lambda accepts" in m for m in value_findings(fn({"X": "1"})))
    big = value_findings(fn({"A1": "a" * 3000, "B1": "b" * 1200}))
    assert any("more than Lambda's 4096" in m for m in big)
    assert not any("a" * 50 in m for m in big)  # values are never repeated
    assert value_findings(fn({"LOG_LEVEL": "info"})) == []


def test_a_runtime_closed_to_new_functions_is_refused_and_a_deprecated_one_is_advisory() -> None:
    fn = res("aws:lambda/function:Function", "f", name="f", runtime="python3.11")
    assert value_findings(fn, date(2026, 12, 1)) == []
    blocked = value_findings(fn, date(2027, 8, 1))
    assert blocked and "no longer accepts new functions" in blocked[0] and "python3.14" in blocked[0]
    advisory = list(RESOURCE_RULES["runtime-deprecation"](fn, {"today": date(2027, 7, 1)}))
    assert advisory and "deprecated on 2027-06-30" in advisory[0]
    assert RULES["runtime-deprecation"].level == "advisory"


def test_the_schemas_map_pulumi_inputs_generally() -> None:
    six = res("aws:lambda/function:Function", "f", name="f", runtime="python3.12",
              vpcConfig={"subnetIds": ["subnet-1"], "securityGroupIds": [f"sg-{i}" for i in range(6)]})
    assert any("vpcConfig.securityGroupIds has 6 items, more than AWS's 5" in m for m in value_findings(six))
    bucket = res("aws:s3/bucket:Bucket", "b", bucket="Shop_Reports")
    assert any("AWS::S3::Bucket.BucketName" in m for m in value_findings(bucket))
    alb = res("aws:lb/loadBalancer:LoadBalancer", "lb", name="internal-dev-web", internal=True)
    assert any("name" in m for m in value_findings(alb))
    rule = res("aws:cloudwatch/eventRule:EventRule", "r", name="on paid")
    assert any("AWS::Events::Rule.Name" in m for m in value_findings(rule))
    queue = res("aws:sqs/queue:Queue", "q", name="work", fifoQueue=True)
    assert any("must end with .fifo" in m for m in value_findings(queue))
    target = res("aws:cloudwatch/eventTarget:EventTarget", "t", rule="r", arn=arn("sqs", "work.fifo"))
    assert any("messageGroupId is required" in m for m in value_findings(target))


# ---------------------------------------------------------------------------------------------------------------
# Registration, reports and the contract-level helpers


def test_the_new_rules_are_in_sarif_and_in_the_pack() -> None:
    sarif = Report("dev").to_sarif()
    rules = {r["id"]: r for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    for rule in ("contract-reachable", "ingress-reachable", "aws-combinations", "runtime-deprecation"):
        assert rule in rules and rules[rule]["help"]["text"] == RULES[rule].help
    assert RULES["contract-reachable"].scope == RULES["ingress-reachable"].scope == "environment"
    assert {p.name for p in crossguard_policies()} >= set(ENVIRONMENT_RULES)


def test_the_pack_runs_an_environment_rule_over_one_stack() -> None:
    from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, StackValidationArgs

    policies = {p.name: p for p in crossguard_policies()}
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    route = PolicyResource("aws:apigatewayv2/route:Route", {"routeKey": "GET /x", "authorizationType": "NONE"},
                           "urn:pulumi:dev::shop::aws:apigatewayv2/route:Route::r", "r", opts, None, None, [], {})
    reports: list[str] = []
    policies["ingress-reachable"].validate(StackValidationArgs([route], {"context": "api"}),
                                           lambda message, urn=None: reports.append(message))
    assert reports and "needs no authorization" in reports[0]


@pytest.mark.parametrize("text, port, exposed", [
    ("FROM python:3.12\nEXPOSE 8080\n", 8080, True),
    ("FROM python:3.12\nEXPOSE 8080/tcp 9000/udp\n", 9000, False),
    ("FROM python:3.12\nEXPOSE 7000-7002\n", 7001, True),
    ("FROM python:3.12\nEXPOSE 80 \\\n  443\n", 443, True),
    ("FROM python:3.12\nARG PORT=8081\nEXPOSE $PORT\n", 8081, True),
    ("FROM python:3.12 AS base\nEXPOSE 5000\nFROM base\nENV X=1\n", 5000, True),
    ("FROM python:3.12 AS build\nEXPOSE 5000\nFROM python:3.12-slim\nEXPOSE 8080\n", 5000, False),
])
def test_what_a_dockerfile_exposes(tmp_path: Path, text: str, port: int, exposed: bool) -> None:
    (tmp_path / "Dockerfile").write_text(text)
    ports = exposed_ports(tmp_path / "Dockerfile")
    assert ports is not None and ((port, "tcp") in ports) is exposed


@pytest.mark.parametrize("text", ["FROM nginx\n", "FROM python:3.12\nEXPOSE ${PORT}\n"])
def test_an_unknown_exposure_is_not_judged(tmp_path: Path, text: str) -> None:
    (tmp_path / "Dockerfile").write_text(text)
    assert exposed_ports(tmp_path / "Dockerfile") is None


def test_project_names_that_aws_naming_rules_refuse() -> None:
    assert name_errors("shop", "dev", "orders", ACCOUNT) == []
    assert any("S3 bucket names" in p for p in name_errors("my_shop", "dev", "orders", ACCOUNT))
    assert any("never start with 'internal-'" in p for p in name_errors("internal", "dev", "orders", ACCOUNT))
    assert any("Lambda function names" in p for p in name_errors("my.shop", "dev", "orders", ACCOUNT))


def test_the_check_judges_runtimes_against_odes_clock(tmp_path: Path) -> None:
    from ode.clock import FrozenClock
    from ode.contracts import load_library
    from ode.policy import Policies

    from .conftest import context, write_library

    library = load_library(write_library(tmp_path / "lib", [context("api", "serverless-api", provides={})]))
    fn = res("aws:lambda/function:Function", "api", name="api", runtime="python3.11")
    later = Policies(library, "dev", clock=FrozenClock(datetime(2027, 8, 2, tzinfo=UTC))).check_stack("api", [fn])
    assert any(v.rule == "aws-value-constraints" and "no longer accepts" in v.message for v in later)
    now = Policies(library, "dev", clock=FrozenClock(datetime(2026, 12, 4, tzinfo=UTC))).check_stack("api", [fn])
    assert not any("python3.11" in v.message for v in now)


# ---------------------------------------------------------------------------------------------------------------
# ode validate: what the contracts alone show


def _validate(tmp_path: Path, contexts: list[dict[str, Any]], dockerfile: str | None = None) -> list[str]:
    from ode.contracts import ContractErrors, load_library

    from .conftest import write_library

    root = tmp_path / "lib"
    if dockerfile is not None:
        (root / "web").mkdir(parents=True)
        (root / "web" / "Dockerfile").write_text(dockerfile)
    try:
        load_library(write_library(root, contexts))
    except ContractErrors as exc:
        return [str(e) for e in exc.errors]
    return []


def _net(**settings: Any) -> dict[str, Any]:
    from .conftest import context

    return context("net", "network", {"vpc": {"kind": "network", "version": "1.0.0"}}, settings=settings)


def _web(**settings: Any) -> dict[str, Any]:
    from .conftest import context

    return context("web", "container-service", {"site": {"kind": "http-api", "version": "1.0.0"}},
                   consumes=[{"context": "net", "interface": "vpc", "access": "attach"}], settings=settings)


def test_validate_refuses_a_port_the_dockerfile_does_not_expose(tmp_path: Path) -> None:
    found = _validate(tmp_path, [_net(), _web(build="web", container_port=9090)], "FROM python:3.12\nEXPOSE 8080\n")
    assert any("settings.container_port" in e and "9090 is not a port the image exposes" in e for e in found)
    assert _validate(tmp_path / "ok", [_net(), _web(build="web", container_port=8080)],
                     "FROM python:3.12\nEXPOSE 8080/tcp\n") == []


def test_validate_refuses_a_network_that_cannot_serve_a_container_service(tmp_path: Path) -> None:
    found = _validate(tmp_path, [_net(endpoints=["s3", "dynamodb"]), _web(build="web")], "FROM x\nEXPOSE 8080\n")
    assert any("consumes[0]" in e and "ecr.api, ecr.dkr, logs" in e for e in found)
    found = _validate(tmp_path / "hub", [_net(), _web(image="docker.io/library/nginx:1.27")])
    assert any("settings.image" in e and "outside the context's own ECR" in e for e in found)


def test_validate_refuses_an_internal_api_consumed_from_outside_its_network(tmp_path: Path) -> None:
    from .conftest import context

    own = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/web:1"
    caller = context("caller", "serverless-api", provides={}, consumes=[{"context": "web", "interface": "site"}])
    found = _validate(tmp_path, [_net(), _web(image=own), caller])
    assert any("caller.yaml" in e and "consumes[0]" in e and "consume that network" in e for e in found)


def test_validate_refuses_lambda_variables_lambda_refuses(tmp_path: Path) -> None:
    from .conftest import context

    api = context("api", "serverless-api", provides={}, settings={"environment": {
        "_HANDLER": "x", "LAMBDA_TASK_ROOT": "/x", "X": "1", "BIG": "a" * 4000, "MORE": "b" * 200}})
    found = _validate(tmp_path, [api])
    for name in ("_HANDLER is reserved", "LAMBDA_TASK_ROOT is reserved", "'X' is not a name Lambda accepts",
                 "more than Lambda's 4096"):
        assert any(name in e and "settings.environment" in e for e in found), (name, found)


def test_the_deploy_gate_runs_the_environment_rules_on_the_stack_it_deploys(tmp_path: Path) -> None:
    from ode.contracts import load_library
    from ode.engines import ResourceChange, StackSpec
    from ode.policy import PolicyViolationError
    from ode.policy.gate import PolicyGate

    from .conftest import context, write_library

    library = load_library(write_library(tmp_path / "lib", [context("api", "data-store")]))
    spec = StackSpec(project="test", env="dev", context="api", contracts_dir=library.root)
    gate = PolicyGate(library, tmp_path / "state")
    tags = {"ode:env": "dev", "ode:context": "api", "ode:owner": "team"}
    open_route = ResourceChange("aws:apigatewayv2/route:Route", "open", None,
                                {"routeKey": "GET /x", "authorizationType": "NONE", "tags": tags})
    with pytest.raises(PolicyViolationError) as caught:
        gate(spec, [open_route])
    assert "ingress-reachable" in str(caught.value) and "needs no authorization" in str(caught.value)
    gate(spec, [ResourceChange("aws:apigatewayv2/route:Route", "closed", None,
                               {"routeKey": "GET /x", "authorizationType": "AWS_IAM", "tags": tags})])


def test_inline_rules_and_separate_rules_on_one_group_are_refused() -> None:
    group = res("aws:ec2/securityGroup:SecurityGroup", "work-sg", "sg-w", vpcId="vpc-1", description="x",
                egress=[{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["10.0.0.0/16"]}])
    extra = res("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "to-alb", securityGroupId="sg-w",
                ipProtocol="tcp", fromPort=80, toPort=80, referencedSecurityGroupId="sg-w")
    found = run("aws-combinations", EnvView("dev", {"network": [group], "web": [extra]}))
    assert found == ["security group work-sg lists its egress rules inline, and to-alb adds one as a separate "
                     "resource: the next update of the group revokes it (use separate rule resources only)"]
    separate = res("aws:ec2/securityGroup:SecurityGroup", "work-sg", "sg-w", vpcId="vpc-1", description="x")
    assert run("aws-combinations", EnvView("dev", {"network": [separate], "web": [extra]})) == []
