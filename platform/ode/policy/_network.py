"""The network of an environment as AWS would route it, read from the planned resources of every stack: subnets
and their route tables, internet and NAT gateways, VPC endpoints, security groups with their rules (inline or as
separate rule resources), load balancers and their listeners.

Answers are three-valued: a path is there (``True``), is known to be missing (``False`` with the hop that is
missing), or cannot be judged (``None``: a reference the plan does not resolve, such as a stack that was not
previewed). Rules report only what is known to be missing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._model import EnvView, Res, _json, _last, _list, _num

INTERNET = "0.0.0.0/0"
INTERNET_V6 = "::/0"

#: Services whose gateway endpoints are reached at public addresses that AWS publishes as prefix lists.
GATEWAY_SERVICES = frozenset({"s3", "dynamodb"})

IpNet = ipaddress.IPv4Network | ipaddress.IPv6Network


def _net(text: Any) -> IpNet | None:
    try:
        return ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return None


def _covers(outer: Any, inner: Any) -> bool:
    a, b = _net(outer), _net(inner)
    return a is not None and b is not None and a.version == b.version and b.subnet_of(a)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Rule:
    """One security group rule, whatever resource declared it."""

    group: str
    direction: str  # "ingress" or "egress"
    protocol: str
    from_port: int | None
    to_port: int | None
    cidrs: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    prefix_lists: tuple[str, ...] = ()
    source: Res | None = None

    def carries(self, port: int) -> bool:
        """Whether the rule's protocol and ports let TCP traffic to ``port`` through."""
        proto = str(self.protocol).lower()
        if proto in ("-1", "all"):
            return True
        if proto not in ("tcp", "6"):
            return False
        low = self.from_port if self.from_port is not None else 0
        high = self.to_port if self.to_port is not None else 65535
        return (low == -1 and high == -1) or low <= port <= high


@dataclass(frozen=True)
class Peer:
    """The other end of a connection as security groups see it: its groups, its addresses, a prefix list, or
    the internet."""

    groups: tuple[str, ...] = ()
    cidrs: tuple[str, ...] = ()
    prefix_list: str | None = None
    internet: bool = False

    def matched_by(self, rule: Rule) -> bool:
        if self.internet:
            return any(c in (INTERNET, INTERNET_V6) for c in rule.cidrs)
        if self.groups and set(self.groups) & set(rule.groups):
            return True
        if self.prefix_list and (self.prefix_list in rule.prefix_lists or INTERNET in rule.cidrs):
            return True
        return bool(self.cidrs) and all(any(_covers(c, mine) for c in rule.cidrs) for mine in self.cidrs)


@dataclass
class Verdict:
    """A path's state: ``ok`` True (there), False (``missing`` names the hop), or None (cannot be judged)."""

    ok: bool | None
    missing: str = ""

    @classmethod
    def there(cls) -> Verdict:
        return cls(True)

    @classmethod
    def unknown(cls) -> Verdict:
        return cls(None)

    @classmethod
    def lacks(cls, hop: str) -> Verdict:
        return cls(False, hop)


def _port(value: Any) -> int | None:
    value = _num(value)
    return int(value) if isinstance(value, (int, float)) else None


@dataclass
class Network:
    """Every network resource of an environment's previewed stacks, indexed by id."""

    view: EnvView
    subnets: dict[str, Res] = field(default_factory=dict)
    vpcs: dict[str, Res] = field(default_factory=dict)
    groups: dict[str, Res] = field(default_factory=dict)
    rules: dict[str, list[Rule]] = field(default_factory=dict)
    route_of_subnet: dict[str, str] = field(default_factory=dict)
    routes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    nats: dict[str, Res] = field(default_factory=dict)
    igws: dict[str, Res] = field(default_factory=dict)
    igw_vpcs: dict[str, set[str]] = field(default_factory=dict)
    endpoints: list[Res] = field(default_factory=list)
    endpoint_tables: dict[str, set[str]] = field(default_factory=dict)
    main_tables: dict[str, str] = field(default_factory=dict)
    #: Directions ("ingress", "egress") whose rules a security group lists inline (pulumi-aws then owns all of them).
    inline: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, view: EnvView) -> Network:
        net = cls(view)
        for r in view.resources():
            net._index(r)
        for r in view.resources():
            net._index_rules(r)
        return net

    # -- indexing --------------------------------------------------------------------------------------------

    def _index(self, r: Res) -> None:
        t, rid = r.type, r.id
        if t == "aws:ec2/subnet:Subnet" and rid:
            self.subnets[rid] = r
        elif t == "aws:ec2/vpc:Vpc" and rid:
            self.vpcs[rid] = r
            main = r.outputs.get("mainRouteTableId") or r.outputs.get("defaultRouteTableId")
            if main:
                self.main_tables[rid] = str(main)
        elif t == "aws:ec2/securityGroup:SecurityGroup" and rid:
            self.groups[rid] = r
        elif t == "aws:ec2/routeTable:RouteTable" and rid:
            self.routes.setdefault(rid, []).extend(
                {"destination": x.get("cidrBlock") or x.get("ipv6CidrBlock"), "gateway": x.get("gatewayId"),
                 "nat": x.get("natGatewayId"), "endpoint": x.get("vpcEndpointId")}
                for x in _list(r.props.get("routes")) if isinstance(x, Mapping))
        elif t == "aws:ec2/defaultRouteTable:DefaultRouteTable":
            table = r.props.get("defaultRouteTableId")
            if table:
                self.routes.setdefault(str(table), []).extend(
                    {"destination": x.get("cidrBlock"), "gateway": x.get("gatewayId"), "nat": x.get("natGatewayId"),
                     "endpoint": x.get("vpcEndpointId")}
                    for x in _list(r.props.get("routes")) if isinstance(x, Mapping))
        elif t == "aws:ec2/route:Route":
            table = r.props.get("routeTableId")
            if table:
                self.routes.setdefault(str(table), []).append(
                    {"destination": r.props.get("destinationCidrBlock") or r.props.get("destinationIpv6CidrBlock"),
                     "gateway": r.props.get("gatewayId"), "nat": r.props.get("natGatewayId"),
                     "endpoint": r.props.get("vpcEndpointId")})
        elif t == "aws:ec2/routeTableAssociation:RouteTableAssociation":
            if r.props.get("subnetId") and r.props.get("routeTableId"):
                self.route_of_subnet[str(r.props["subnetId"])] = str(r.props["routeTableId"])
        elif t == "aws:ec2/mainRouteTableAssociation:MainRouteTableAssociation":
            if r.props.get("vpcId") and r.props.get("routeTableId"):
                self.main_tables[str(r.props["vpcId"])] = str(r.props["routeTableId"])
        elif t == "aws:ec2/natGateway:NatGateway" and rid:
            self.nats[rid] = r
        elif t == "aws:ec2/internetGateway:InternetGateway" and rid:
            self.igws[rid] = r
            if r.props.get("vpcId"):
                self.igw_vpcs.setdefault(rid, set()).add(str(r.props["vpcId"]))
        elif t == "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment":
            gw, vpc = r.props.get("internetGatewayId"), r.props.get("vpcId")
            if gw and vpc:
                self.igw_vpcs.setdefault(str(gw), set()).add(str(vpc))
        elif t == "aws:ec2/vpcEndpoint:VpcEndpoint":
            self.endpoints.append(r)
            if rid:
                self.endpoint_tables.setdefault(rid, set()).update(str(x) for x in _list(r.props.get("routeTableIds")))
        elif t == "aws:ec2/vpcEndpointRouteTableAssociation:VpcEndpointRouteTableAssociation":
            ep, table = r.props.get("vpcEndpointId"), r.props.get("routeTableId")
            if ep and table:
                self.endpoint_tables.setdefault(str(ep), set()).add(str(table))

    def _index_rules(self, r: Res) -> None:
        p, t = r.props, r.type
        if t == "aws:ec2/securityGroup:SecurityGroup" and r.id:
            for direction in ("ingress", "egress"):
                if p.get(direction) is not None:
                    self.inline.setdefault(r.id, set()).add(direction)
                for x in _list(p.get(direction)):
                    if not isinstance(x, Mapping):
                        continue
                    groups = [str(g) for g in _list(x.get("securityGroups"))] + ([r.id] if x.get("self") else [])
                    self._add(Rule(r.id, direction, str(x.get("protocol", "-1")), _port(x.get("fromPort")),
                                   _port(x.get("toPort")),
                                   tuple(str(c) for c in [*_list(x.get("cidrBlocks")),
                                                          *_list(x.get("ipv6CidrBlocks"))]),
                                   tuple(groups), tuple(str(p_) for p_ in _list(x.get("prefixListIds"))), r))
        elif t in ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                   "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"):
            direction = "ingress" if "Ingress" in t else "egress"
            if p.get("securityGroupId"):
                self._add(Rule(str(p["securityGroupId"]), direction, str(p.get("ipProtocol", "-1")),
                               _port(p.get("fromPort")), _port(p.get("toPort")),
                               tuple(str(c) for c in (p.get("cidrIpv4"), p.get("cidrIpv6")) if c),
                               tuple(str(g) for g in [p.get("referencedSecurityGroupId")] if g),
                               tuple(str(x) for x in [p.get("prefixListId")] if x), r))
        elif t == "aws:ec2/securityGroupRule:SecurityGroupRule":
            group = p.get("securityGroupId")
            if group:
                groups = [str(g) for g in [p.get("sourceSecurityGroupId")] if g]
                groups += [str(group)] if p.get("self") else []
                self._add(Rule(str(group), str(p.get("type", "ingress")), str(p.get("protocol", "-1")),
                               _port(p.get("fromPort")), _port(p.get("toPort")),
                               tuple(str(c) for c in [*_list(p.get("cidrBlocks")), *_list(p.get("ipv6CidrBlocks"))]),
                               tuple(groups), tuple(str(x) for x in _list(p.get("prefixListIds"))), r))

    def _add(self, rule: Rule) -> None:
        self.rules.setdefault(rule.group, []).append(rule)

    # -- questions -------------------------------------------------------------------------------------------

    def known_groups(self, groups: Iterable[str]) -> bool:
        return all(g in self.groups for g in groups)

    def rules_of(self, group: str, direction: str) -> list[Rule]:
        return [r for r in self.rules.get(group, []) if r.direction == direction]

    def allows(self, groups: Sequence[str], direction: str, port: int, peer: Peer) -> bool | None:
        """Whether any of ``groups`` lets TCP traffic on ``port`` out to (egress) or in from (ingress) ``peer``;
        None when a group is not in the plan."""
        if not groups or not self.known_groups(groups):
            return None
        return any(rule.carries(port) and peer.matched_by(rule) for g in groups for rule in self.rules_of(g, direction))

    def cidrs_of(self, subnets: Iterable[str]) -> tuple[str, ...] | None:
        found = []
        for s in subnets:
            sub = self.subnets.get(s)
            if sub is None or not sub.props.get("cidrBlock"):
                return None
            found.append(str(sub.props["cidrBlock"]))
        return tuple(found)

    def vpc_of(self, subnet: str) -> str | None:
        sub = self.subnets.get(subnet)
        return str(sub.props.get("vpcId")) if sub is not None and sub.props.get("vpcId") else None

    def table_of(self, subnet: str) -> str | None:
        table = self.route_of_subnet.get(subnet)
        if table is None:
            vpc = self.vpc_of(subnet)
            table = self.main_tables.get(vpc) if vpc else None
        return table

    def default_route(self, subnet: str) -> tuple[str, str] | None:
        """The route of a subnet to the internet as (``igw``|``nat``|``other``, target id), or None."""
        table = self.table_of(subnet)
        for route in self.routes.get(table or "", []):
            if route["destination"] in (INTERNET, INTERNET_V6):
                if route.get("nat"):
                    return "nat", str(route["nat"])
                gateway = str(route.get("gateway") or "")
                if gateway in self.igws or gateway.startswith("igw-"):
                    return "igw", gateway
                return "other", gateway
        return None

    def public_subnet(self, subnet: str) -> bool | None:
        """Whether a subnet routes to an internet gateway attached to its VPC (None: the subnet or its VPC's
        routes are not in the plan)."""
        if subnet not in self.subnets:
            return None
        route = self.default_route(subnet)
        if route is None or route[0] != "igw":
            return False if self.vpc_of(subnet) in self.vpcs else None
        attached = self.igw_vpcs.get(route[1])
        return None if attached is None else self.vpc_of(subnet) in attached

    def internet_from(self, subnets: Sequence[str], public_ip: bool = False) -> Verdict:
        """Whether compute in ``subnets`` reaches the internet: through a NAT gateway that sits in a public
        subnet, or (``public_ip``) straight through an internet gateway."""
        if not subnets or any(s not in self.subnets for s in subnets):
            return Verdict.unknown()
        for s in subnets:
            route = self.default_route(s)
            if route is None:
                if self.vpc_of(s) not in self.vpcs:
                    return Verdict.unknown()
                return Verdict.lacks(f"subnet {self.subnets[s].name} has no route to the internet (no NAT gateway)")
            kind, target = route
            if kind == "nat":
                nat = self.nats.get(target)
                if nat is None:
                    return Verdict.unknown()
                if str(nat.props.get("connectivityType", "public")) == "private":
                    return Verdict.lacks(f"NAT gateway {nat.name} is private: it does not reach the internet")
                home = str(nat.props.get("subnetId") or "")
                public = self.public_subnet(home)
                if public is None:
                    return Verdict.unknown()
                if not public:
                    return Verdict.lacks(f"NAT gateway {nat.name} is not in a public subnet (no route to an "
                                         "internet gateway)")
            elif kind == "igw":
                if not public_ip:
                    return Verdict.lacks(f"subnet {self.subnets[s].name} routes to an internet gateway, but the "
                                         "compute has no public IP (it needs a NAT gateway)")
                if self.public_subnet(s) is False:
                    return Verdict.lacks(f"the internet gateway of subnet {self.subnets[s].name} is not attached "
                                         "to its VPC")
            else:
                return Verdict.unknown()
        return Verdict.there()

    def endpoint_for(self, vpc: str | None, service: str) -> list[Res]:
        """The VPC endpoints of ``vpc`` serving ``service`` (``s3``, ``ecr.dkr``, ``execute-api``...)."""
        return [e for e in self.endpoints if (vpc is None or str(e.props.get("vpcId")) == vpc)
                and str(e.props.get("serviceName", "")).split(".", 3)[-1] == service]

    def endpoint_type(self, endpoint: Res) -> str:
        # pulumi-aws creates a Gateway endpoint when no type is given
        return str(endpoint.props.get("vpcEndpointType") or "Gateway")

    def reaches_service(self, subnets: Sequence[str], groups: Sequence[str], service: str,
                        public_ip: bool = False) -> Verdict:
        """Whether compute in ``subnets`` with ``groups`` reaches an AWS service's API on 443: through a gateway
        endpoint (route tables and an egress rule to its prefix list), an interface endpoint with private DNS
        (egress to it, and its group admitting the compute), or the internet (NAT and an egress rule)."""
        if not subnets or any(s not in self.subnets for s in subnets) or not self.known_groups(groups):
            return Verdict.unknown()
        vpc = self.vpc_of(subnets[0])
        mine = self.cidrs_of(subnets) or ()
        problems: list[str] = []
        for endpoint in self.endpoint_for(vpc, service):
            if self.endpoint_type(endpoint) == "Gateway":
                tables = self.endpoint_tables.get(endpoint.id or "", set())
                if not all(self.table_of(s) in tables for s in subnets):
                    problems.append(f"gateway endpoint {endpoint.name} is not in the route tables of the subnets")
                    continue
                prefix = endpoint.get("prefixListId")
                if prefix is None:
                    return Verdict.unknown()
                if self.allows(groups, "egress", 443, Peer(prefix_list=str(prefix))):
                    return Verdict.there()
                problems.append(f"no egress rule allows 443 to the {service} prefix list of {endpoint.name}")
            elif endpoint.props.get("privateDnsEnabled"):
                their_groups = [str(g) for g in _list(endpoint.props.get("securityGroupIds"))]
                their_subnets = [str(s) for s in _list(endpoint.props.get("subnetIds"))]
                theirs = self.cidrs_of(their_subnets)
                if theirs is None or not self.known_groups(their_groups):
                    return Verdict.unknown()
                out = self.allows(groups, "egress", 443, Peer(groups=tuple(their_groups), cidrs=theirs))
                into = self.allows(their_groups, "ingress", 443, Peer(groups=tuple(groups), cidrs=mine)) \
                    if their_groups else False
                if out and into:
                    return Verdict.there()
                problems.append(f"{'the compute may not send 443 to' if not out else 'the group of'} "
                                f"{service} endpoint {endpoint.name}{'' if not out else ' does not admit it'}")
        internet = self.internet_from(subnets, public_ip)
        if internet.ok and self.allows(groups, "egress", 443, Peer(internet=True)):
            return Verdict.there()
        if internet.ok is None:
            return Verdict.unknown()
        if internet.ok:
            problems.append("no egress rule allows 443 to the internet (0.0.0.0/0)")
        elif not problems:
            problems.append(f"no VPC endpoint for {service} and {internet.missing}")
        else:
            problems.append(internet.missing)
        return Verdict.lacks("; ".join(problems))

    def reaches_internet(self, subnets: Sequence[str], groups: Sequence[str], port: int = 443,
                         public_ip: bool = False) -> Verdict:
        if not self.known_groups(groups):
            return Verdict.unknown()
        internet = self.internet_from(subnets, public_ip)
        if not internet.ok:
            return internet
        if not self.allows(groups, "egress", port, Peer(internet=True)):
            return Verdict.lacks(f"no egress rule allows {port} to the internet (0.0.0.0/0)")
        return Verdict.there()

    def reaches_group(self, subnets: Sequence[str], groups: Sequence[str], target_subnets: Sequence[str],
                      target_groups: Sequence[str], port: int, what: str) -> Verdict:
        """Whether compute reaches ``what`` (a load balancer) inside the VPC: same VPC, the compute's egress and
        the target's ingress both admitting the other on ``port``."""
        if not self.known_groups([*groups, *target_groups]) or any(
                s not in self.subnets for s in [*subnets, *target_subnets]):
            return Verdict.unknown()
        if {self.vpc_of(s) for s in subnets} != {self.vpc_of(s) for s in target_subnets}:
            return Verdict.lacks(f"{what} is in another VPC")
        mine, theirs = self.cidrs_of(subnets) or (), self.cidrs_of(target_subnets) or ()
        if not self.allows(groups, "egress", port, Peer(groups=tuple(target_groups), cidrs=theirs)):
            return Verdict.lacks(f"no egress rule of the compute's security groups allows {port} to {what}")
        if not self.allows(target_groups, "ingress", port, Peer(groups=tuple(groups), cidrs=mine)):
            return Verdict.lacks(f"the security groups of {what} do not admit the compute on {port}")
        return Verdict.there()


# ---------------------------------------------------------------------------------------------------------------
# Compute: what runs code, with its role, network placement and image


@dataclass
class Compute:
    """A Lambda function or an ECS service: the resource, its role's name, its subnets and security groups
    (None: not in a VPC), whether its tasks get public IPs, and the images of its containers."""

    res: Res
    kind: str
    role: str | None
    subnets: list[str] | None
    groups: list[str]
    public_ip: bool = False
    images: list[str] = field(default_factory=list)
    logs: bool = False
    execution_role: str | None = None
    #: What a function of the platform's own is for (its ``ode:purpose`` tag): ``publish-events`` only puts the
    #: context's events on the bus, so it uses none of the other interfaces the context consumes.
    purpose: str | None = None

    @property
    def label(self) -> str:
        return f"{'function' if self.kind == 'lambda' else 'service'} {self.res.name}"


def compute_of(resources: Sequence[Res]) -> Iterator[Compute]:
    """The compute of one stack's resources."""
    tasks = {}
    for r in resources:
        if r.type == "aws:ecs/taskDefinition:TaskDefinition":
            for key in (r.outputs.get("arn"), r.props.get("family"), r.name):
                if key:
                    tasks[str(key)] = r
    for r in resources:
        if r.type == "aws:lambda/function:Function":
            vpc = r.props.get("vpcConfig") or {}
            subnets = [str(s) for s in _list(vpc.get("subnetIds"))]
            raw_tags = r.props.get("tags")
            tags: Mapping[str, Any] = raw_tags if isinstance(raw_tags, Mapping) else {}
            yield Compute(r, "lambda", _last(r.props.get("role")) or None, subnets or None,
                          [str(g) for g in _list(vpc.get("securityGroupIds"))],
                          purpose=str(tags["ode:purpose"]) if tags.get("ode:purpose") else None)
        elif r.type == "aws:ecs/service:Service":
            net = r.props.get("networkConfiguration") or {}
            ref = str(r.props.get("taskDefinition") or "")
            task = tasks.get(ref) or tasks.get(_last(ref).split(":")[0])
            containers = _json(task.props.get("containerDefinitions")) if task is not None else None
            images = [str(c.get("image")) for c in _list(containers) if isinstance(c, Mapping) and c.get("image")]
            logs = any(((c.get("logConfiguration") or {}).get("logDriver") == "awslogs") for c in _list(containers)
                       if isinstance(c, Mapping))
            yield Compute(r, "task", _last(task.props.get("taskRoleArn")) or None if task is not None else None,
                          [str(s) for s in _list(net.get("subnets"))],
                          [str(g) for g in _list(net.get("securityGroups"))],
                          bool(net.get("assignPublicIp")), images, logs,
                          _last(task.props.get("executionRoleArn")) or None if task is not None else None)
