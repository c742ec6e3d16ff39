"""``aws-combinations``: what AWS refuses about resources together, across the stacks of an environment (a load
balancer in subnets of another stack that are too small, reserved concurrency summed over every function of the
account, private DNS on an endpoint of a VPC without DNS hostnames...)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from ._model import EnvFinding, EnvView, Res, _json, _last, _list, _num
from ._network import Network

#: Addresses AWS keeps in every subnet (network, router, DNS, future use, broadcast).
RESERVED_ADDRESSES = 5
#: The smallest subnet (prefix length) a load balancer takes, and the free addresses it needs there.
LB_PREFIX, LB_FREE = 27, 8
#: Concurrent executions Lambda always leaves unreserved in an account, and an account's default limit.
UNRESERVED_MINIMUM, DEFAULT_CONCURRENCY = 100, 1000
#: Security groups an ENI (a task's, a function's) may carry.
GROUPS_PER_ENI = 5


def _owner(view: EnvView, res: Res) -> str:
    return view.owner(res) or ""


def _subnet_findings(view: EnvView, net: Network) -> Iterator[EnvFinding]:
    used: dict[str, int] = {}
    for e in net.endpoints:
        if net.endpoint_type(e) == "Interface":
            for s in _list(e.props.get("subnetIds")):
                used[str(s)] = used.get(str(s), 0) + 1
    for nat in net.nats.values():
        if nat.props.get("subnetId"):
            used[str(nat.props["subnetId"])] = used.get(str(nat.props["subnetId"]), 0) + 1
    for lb in view.of_type("aws:lb/loadBalancer:LoadBalancer"):
        subnets = [str(s) for s in _list(lb.props.get("subnets"))]
        subnets += [str((m or {}).get("subnetId")) for m in _list(lb.props.get("subnetMappings")) if m]
        known = [net.subnets[s] for s in subnets if s in net.subnets]
        for sub in known:
            block = _network(sub.props.get("cidrBlock"))
            if block is None:
                continue
            free = block.num_addresses - RESERVED_ADDRESSES - used.get(sub.id or "", 0)
            if block.prefixlen > LB_PREFIX:
                yield _owner(view, lb), lb, f"load balancer {lb.name} is placed in subnet {sub.name} " \
                                            f"({block}), smaller than the /{LB_PREFIX} AWS requires (the " \
                                            "network's cidr leaves subnets too small)", None
            elif free < LB_FREE:
                yield _owner(view, lb), lb, f"load balancer {lb.name}: subnet {sub.name} ({block}) has {free} " \
                                            f"free addresses, fewer than the {LB_FREE} AWS requires", None
        zones = {str(s.props.get("availabilityZone")) for s in known if s.props.get("availabilityZone")}
        kind = str(lb.props.get("loadBalancerType") or "application")
        if kind == "application" and len(known) == len(subnets) and known and len(zones) < 2:
            yield _owner(view, lb), lb, f"load balancer {lb.name} has subnets in {len(zones)} availability zone; " \
                                        "an application load balancer needs two or more", None


def _network(text: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(text), strict=True)
    except ValueError:
        return None


def _vpc_findings(view: EnvView, net: Network) -> Iterator[EnvFinding]:
    by_vpc: dict[str, list[Res]] = {}
    for sub in net.subnets.values():
        by_vpc.setdefault(str(sub.props.get("vpcId")), []).append(sub)
    for vpc_id, subs in by_vpc.items():
        vpc = net.vpcs.get(vpc_id)
        outer = _network(vpc.props.get("cidrBlock")) if vpc is not None else None
        for i, a in enumerate(subs):
            block = _network(a.props.get("cidrBlock"))
            if block is None:
                if a.props.get("cidrBlock"):
                    yield _owner(view, a), a, f"subnet {a.name}: cidrBlock {a.props.get('cidrBlock')} is not a " \
                                              "network address AWS accepts", None
                continue
            if outer is not None and block.version == outer.version and not block.subnet_of(outer):  # type: ignore[arg-type]
                yield _owner(view, a), a, f"subnet {a.name}: {block} is outside its VPC's {outer}", None
            for b in subs[i + 1:]:
                other = _network(b.props.get("cidrBlock"))
                if other is not None and block.overlaps(other):
                    yield _owner(view, b), b, f"subnet {b.name}: {other} overlaps subnet {a.name} ({block})", None
    seen: dict[tuple[str, str], Res] = {}
    for e in net.endpoints:
        if net.endpoint_type(e) != "Interface" or not e.props.get("privateDnsEnabled"):
            continue
        vpc_id = str(e.props.get("vpcId"))
        vpc = net.vpcs.get(vpc_id)
        if vpc is not None and (vpc.props.get("enableDnsSupport") is False or not vpc.props.get("enableDnsHostnames")):
            yield _owner(view, e), e, f"endpoint {e.name} enables private DNS, which AWS refuses in a VPC without " \
                                      "enableDnsSupport and enableDnsHostnames", None
        key = (vpc_id, str(e.props.get("serviceName")))
        if key in seen:
            yield _owner(view, e), e, f"endpoint {e.name}: {key[1]} already has an endpoint with private DNS in " \
                                      f"this VPC ({seen[key].name}); AWS refuses a second one", None
        seen.setdefault(key, e)


def _placement_findings(view: EnvView, net: Network) -> Iterator[EnvFinding]:
    """Subnets and security groups of one ENI in one VPC; at most five groups on it; rules referencing groups of
    the same VPC."""

    def check(res: Res, subnets: list[str], groups: list[str], what: str) -> Iterator[EnvFinding]:
        if len(groups) > GROUPS_PER_ENI:
            yield _owner(view, res), res, f"{what} {res.name} has {len(groups)} security groups; an ENI takes at " \
                                          f"most {GROUPS_PER_ENI}", None
        vpcs = {net.vpc_of(s) for s in subnets if s in net.subnets}
        group_vpcs = {str(net.groups[g].props.get("vpcId")) for g in groups if g in net.groups
                      and net.groups[g].props.get("vpcId")}
        if len(vpcs) > 1:
            yield _owner(view, res), res, f"{what} {res.name} has subnets in {len(vpcs)} VPCs", None
        elif vpcs and group_vpcs and not group_vpcs <= vpcs:
            yield _owner(view, res), res, f"{what} {res.name} uses a security group of another VPC than its " \
                                          "subnets", None

    for r in view.resources():
        if r.type == "aws:lambda/function:Function":
            cfg = r.props.get("vpcConfig") or {}
            yield from check(r, [str(s) for s in _list(cfg.get("subnetIds"))],
                             [str(g) for g in _list(cfg.get("securityGroupIds"))], "function")
        elif r.type == "aws:ecs/service:Service":
            cfg = r.props.get("networkConfiguration") or {}
            yield from check(r, [str(s) for s in _list(cfg.get("subnets"))],
                             [str(g) for g in _list(cfg.get("securityGroups"))], "service")
        elif r.type == "aws:lb/loadBalancer:LoadBalancer":
            yield from check(r, [str(s) for s in _list(r.props.get("subnets"))],
                             [str(g) for g in _list(r.props.get("securityGroups"))], "load balancer")
    for group, rules in net.rules.items():
        home = net.groups.get(group)
        for rule in rules:
            for other in rule.groups:
                them = net.groups.get(other)
                if home is not None and them is not None and home.props.get("vpcId") != them.props.get("vpcId"):
                    where = rule.source or home
                    yield _owner(view, where), where, f"a rule of security group {home.name} refers to group " \
                                                      f"{them.name} of another VPC", None


def _rule_style_findings(view: EnvView, net: Network) -> Iterator[EnvFinding]:
    """A group that lists a direction's rules inline while separate rule resources add to it: pulumi-aws owns the
    inline list whole, so a refresh and the next update of the group revoke the separate rules."""
    for group, rules in net.rules.items():
        home = net.groups.get(group)
        managed = net.inline.get(group, set())
        for rule in rules:
            if rule.source is None or rule.source is home or rule.direction not in managed or home is None:
                continue
            yield _owner(view, rule.source), rule.source, f"security group {home.name} lists its {rule.direction} " \
                                                          f"rules inline, and {rule.source.name} adds one as a " \
                                                          "separate resource: the next update of the group revokes " \
                                                          "it (use separate rule resources only)", None


def _concurrency_findings(view: EnvView, config: Mapping[str, Any]) -> Iterator[EnvFinding]:
    limit = int(config.get("account_concurrency") or DEFAULT_CONCURRENCY)
    reserved = [(r, int(_num(r.props.get("reservedConcurrentExecutions")))) for r in
                view.of_type("aws:lambda/function:Function")
                if isinstance(_num(r.props.get("reservedConcurrentExecutions")), int)
                and _num(r.props.get("reservedConcurrentExecutions")) > 0]
    total = sum(n for _, n in reserved)
    if total > limit - UNRESERVED_MINIMUM:
        biggest = max(reserved, key=lambda item: item[1])[0]
        yield _owner(view, biggest), biggest, f"the functions of {view.env} reserve {total} concurrent executions: " \
                                              f"AWS keeps {UNRESERVED_MINIMUM} of the account's {limit} unreserved, " \
                                              f"so at most {limit - UNRESERVED_MINIMUM} can be reserved " \
                                              "(reserved_concurrency; quotas.lambda_concurrency gives the account's " \
                                              "real limit)", "reserved_concurrency"


def _source_findings(view: EnvView) -> Iterator[EnvFinding]:
    for m in view.of_type("aws:lambda/eventSourceMapping:EventSourceMapping"):
        source = str(m.props.get("eventSourceArn") or "")
        queue = view.by_id(source) if ":sqs:" in source else None
        fn = next((f for f in view.of_type("aws:lambda/function:Function")
                   if str(f.get("name")) == _last(m.props.get("functionName"))
                   or f.outputs.get("arn") == m.props.get("functionName")), None)
        if queue is None or fn is None:
            continue
        visibility = _num(queue.props.get("visibilityTimeoutSeconds"))
        timeout = _num(fn.props.get("timeout")) or 3
        if isinstance(visibility, int) and visibility < timeout:
            yield _owner(view, m), m, f"event source {m.name}: queue {queue.name} hides a message {visibility} s, " \
                                      f"less than function {fn.name}'s timeout of {timeout} s: Lambda refuses the " \
                                      "mapping", "timeout_s"
    for tg in view.of_type("aws:lb/targetGroup:TargetGroup"):
        for svc in view.of_type("aws:ecs/service:Service"):
            uses = any(str((b or {}).get("targetGroupArn")) == str(tg.outputs.get("arn"))
                       for b in _list(svc.props.get("loadBalancers")))
            if uses and svc.props.get("launchType") == "FARGATE" and str(tg.props.get("targetType") or
                                                                          "instance") != "ip":
                yield _owner(view, tg), tg, f"target group {tg.name} registers instances, but Fargate tasks of " \
                                            f"{svc.name} register only as targetType ip", None
    for task in view.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        containers = _json(task.props.get("containerDefinitions"))
        declared = {(str((c or {}).get("name")), int(_num(m.get("containerPort")))) for c in _list(containers)
                    if isinstance(c, Mapping) for m in _list(c.get("portMappings"))
                    if isinstance(m, Mapping) and isinstance(_num(m.get("containerPort")), int)}
        arn = task.outputs.get("arn")
        for svc in view.of_type("aws:ecs/service:Service"):
            if arn is None or str(svc.props.get("taskDefinition")) != str(arn):
                continue
            for b in _list(svc.props.get("loadBalancers")):
                key = (str((b or {}).get("containerName")), int(_num((b or {}).get("containerPort") or 0)))
                if declared and key not in declared:
                    yield _owner(view, svc), svc, f"service {svc.name} sends load balancer traffic to " \
                                                  f"{key[0]}:{key[1]}, which its task definition does not map", \
                        "container_port"


def _alarm_findings(view: EnvView) -> Iterator[EnvFinding]:
    if not view.region:
        return
    for alarm in view.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        for action in [*_list(alarm.props.get("alarmActions")), *_list(alarm.props.get("okActions"))]:
            parts = str(action).split(":")
            if len(parts) > 3 and parts[2] == "sns" and parts[3] != view.region:
                yield _owner(view, alarm), alarm, f"alarm {alarm.name} notifies {action}, a topic in {parts[3]}: " \
                                                  f"alarms in {view.region} notify only topics of their region", \
                    "alarm_topic_arn"
                break


def aws_combinations(view: EnvView, config: Mapping[str, Any]) -> Iterator[EnvFinding]:
    """What AWS refuses about resources together: load balancer subnets and zones, overlapping subnets, private
    DNS without DNS hostnames, ENIs across VPCs, reserved concurrency beyond the account's unreserved minimum,
    event sources whose queue hides messages for less than the function's timeout."""
    net = Network.of(view)
    yield from _subnet_findings(view, net)
    yield from _vpc_findings(view, net)
    yield from _placement_findings(view, net)
    yield from _rule_style_findings(view, net)
    yield from _concurrency_findings(view, config)
    yield from _source_findings(view)
    yield from _alarm_findings(view)
