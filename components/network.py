"""The ``network`` kind: a VPC with one private subnet per availability zone, VPC endpoints for the AWS services its
workloads use, a security group for those workloads, and flow logs; on request, public subnets behind an internet
gateway (for public load balancers) and NAT gateways that give the private subnets a way out to the internet.

Every security group rule is a resource of its own (``aws.vpc.SecurityGroupIngressRule``/``EgressRule``), never an
inline ``ingress``/``egress`` list: a group with inline rules is managed whole, so the network's next ``up`` would
revoke the rules other stacks add to its workloads group (a container-service admitting it, for example).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from . import storage
from ._security_groups import egress, ingress
from .common import ContextArgs, assume_role_policy, ec2_description, policy_document
from .kinds import NetworkSettings, subnet_layout
from .monitoring import Monitor

#: Services reached through gateway endpoints (free, route-table based); the others get interface endpoints.
GATEWAY_SERVICES = frozenset({"s3", "dynamodb"})


@dataclass(frozen=True)
class NetworkArgs(ContextArgs):
    pass


class Network(pulumi.ComponentResource):
    """A private network, with public subnets and NAT on request. Provides ``network`` interfaces: ``vpc_id``,
    ``private_subnet_ids``, ``security_group_id`` (the group its consumers' compute runs in), ``cidr`` (the VPC's
    address range, for consumers' rules), ``public_subnet_ids`` (empty without public subnets) and ``nat``
    (``none``, ``one`` or ``per-az``)."""

    interfaces: dict[str, pulumi.Output[dict[str, Any]]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ode:index:Network", name, {}, opts)
        args.validate("network")
        settings: NetworkSettings = args.settings  # type: ignore[assignment]
        ident = args.identity
        child = pulumi.ResourceOptions(parent=self)
        private_blocks, public_blocks = subnet_layout(settings.cidr, settings.az_count)
        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=settings.cidr, enable_dns_hostnames=True,
                          enable_dns_support=True, tags=ident.tags(Name=ident.name("vpc", 255)), opts=child)
        zones = aws.get_availability_zones_output(state="available", opts=pulumi.InvokeOutputOptions(parent=self))
        public_subnets: list[aws.ec2.Subnet] = []
        nat_gateways: list[aws.ec2.NatGateway] = []
        if settings.has_public_subnets:
            gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id,
                                              tags=ident.tags(Name=ident.name("igw", 255)), opts=child)
            public_routes = aws.ec2.RouteTable(f"{name}-public-routes", vpc_id=vpc.id,
                                               tags=ident.tags(Name=ident.name("public", 255)), opts=child)
            aws.ec2.Route(f"{name}-public-default-route", route_table_id=public_routes.id,
                          destination_cidr_block="0.0.0.0/0", gateway_id=gateway.id, opts=child)
            for i in range(settings.az_count):
                # No public IPs on launch: what runs here (load balancers, NAT gateways) brings its own address.
                subnet = aws.ec2.Subnet(f"{name}-public-{i}", vpc_id=vpc.id, cidr_block=public_blocks[i],
                                        availability_zone=zones.names[i], map_public_ip_on_launch=False,
                                        tags=ident.tags(Name=ident.name(f"public-{i}", 255)), opts=child)
                aws.ec2.RouteTableAssociation(f"{name}-public-{i}-routes", subnet_id=subnet.id,
                                              route_table_id=public_routes.id, opts=child)
                public_subnets.append(subnet)
            after_gateway = pulumi.ResourceOptions(parent=self, depends_on=[gateway])
            for i in range(settings.az_count if settings.nat == "per-az" else 1 if settings.nat == "one" else 0):
                address = aws.ec2.Eip(f"{name}-nat-{i}-ip", domain="vpc",
                                      tags=ident.tags(Name=ident.name(f"nat-{i}", 255)), opts=after_gateway)
                nat_gateways.append(aws.ec2.NatGateway(
                    f"{name}-nat-{i}", allocation_id=address.id, subnet_id=public_subnets[i].id,
                    connectivity_type="public", tags=ident.tags(Name=ident.name(f"nat-{i}", 255)),
                    opts=after_gateway))
        # One route table per private subnet, so that each AZ can leave through its own NAT gateway (per-az) and
        # changing the NAT setting never re-associates a subnet.
        subnets, private_routes = [], []
        for i in range(settings.az_count):
            routes = aws.ec2.RouteTable(f"{name}-private-{i}-route-table", vpc_id=vpc.id,
                                        tags=ident.tags(Name=ident.name(f"private-{i}", 255)), opts=child)
            subnet = aws.ec2.Subnet(f"{name}-private-{i}", vpc_id=vpc.id, cidr_block=private_blocks[i],
                                    availability_zone=zones.names[i], map_public_ip_on_launch=False,
                                    tags=ident.tags(Name=ident.name(f"private-{i}", 255)), opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{i}-routes", subnet_id=subnet.id,
                                          route_table_id=routes.id, opts=child)
            if nat_gateways:
                nat = nat_gateways[i] if settings.nat == "per-az" else nat_gateways[0]
                aws.ec2.Route(f"{name}-private-{i}-nat-route", route_table_id=routes.id,
                              destination_cidr_block="0.0.0.0/0", nat_gateway_id=nat.id, opts=child)
            subnets.append(subnet)
            private_routes.append(routes)
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg", vpc_id=vpc.id,
            description=ec2_description("HTTPS from the VPC to the AWS service endpoints"), tags=ident.tags(),
            opts=child)
        ingress(f"{name}-endpoints-from-vpc", self, endpoint_sg.id, 443, "HTTPS from the VPC",
                tags=ident.tags(), cidr_ipv4=settings.cidr)
        workloads = aws.ec2.SecurityGroup(
            f"{name}-workloads-sg", vpc_id=vpc.id,
            description=ec2_description("Compute of the contexts attached to this network"), tags=ident.tags(),
            opts=child)
        egress(f"{name}-workloads-to-endpoints", self, workloads.id, 443, "AWS services through interface endpoints",
               tags=ident.tags(), cidr_ipv4=settings.cidr)
        region = ident.region
        for service in settings.endpoints:
            if service in GATEWAY_SERVICES:
                gateway_endpoint = aws.ec2.VpcEndpoint(
                    f"{name}-{service}-endpoint", vpc_id=vpc.id, service_name=f"com.amazonaws.{region}.{service}",
                    vpc_endpoint_type="Gateway", route_table_ids=[r.id for r in private_routes], tags=ident.tags(),
                    opts=child)
                # Gateway endpoints are reached at the service's public addresses, which AWS publishes as a prefix
                # list: the VPC's CIDR does not cover them.
                egress(f"{name}-workloads-to-{service}", self, workloads.id, 443,
                       f"{service} through its gateway endpoint", tags=ident.tags(),
                       prefix_list_id=gateway_endpoint.prefix_list_id)
            else:
                aws.ec2.VpcEndpoint(f"{name}-{service}-endpoint", vpc_id=vpc.id,
                                    service_name=f"com.amazonaws.{region}.{service}", vpc_endpoint_type="Interface",
                                    subnet_ids=[s.id for s in subnets], security_group_ids=[endpoint_sg.id],
                                    private_dns_enabled=True, tags=ident.tags(), opts=child)
        flow_logs = storage.log_group(ident, self, "flow", f"/ode/{ident.project}/{ident.env}/{ident.context}/flow",
                                      settings.log_retention_days)
        flow_role = aws.iam.Role(f"{name}-flow-role", name=ident.name("flow-logs", "iam-role"),
                                 assume_role_policy=assume_role_policy("vpc-flow-logs.amazonaws.com"),
                                 tags=ident.tags(), opts=child)
        aws.iam.RolePolicy(f"{name}-flow-policy", role=flow_role.id, opts=child, policy=policy_document(
            flow_logs.arn.apply(lambda arn: [{
                "Sid": "FlowLogs", "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                "Resource": [arn, f"{arn}:*"]}])))
        aws.ec2.FlowLog(f"{name}-flow", vpc_id=vpc.id, traffic_type="ALL", log_destination=flow_logs.arn,
                        iam_role_arn=flow_role.arn, tags=ident.tags(), opts=child)
        monitor = Monitor.of(args, self)
        monitor.watch_logs("rejected flows", flow_logs.name, "filter action = 'REJECT' | stats count(*) as rejected "
                           "by bin(5m)")
        monitor.dashboard()
        outputs = pulumi.Output.all(vpc_id=vpc.id, private_subnet_ids=pulumi.Output.all(*[s.id for s in subnets]),
                                    security_group_id=workloads.id, cidr=vpc.cidr_block,
                                    public_subnet_ids=pulumi.Output.all(*[s.id for s in public_subnets]),
                                    nat=settings.nat)
        self.interfaces = {iface: outputs for iface in args.provided("network")}
        self.register_outputs({"interfaces": self.interfaces, "summary": json.dumps(
            {"azs": settings.az_count, "public_subnets": settings.has_public_subnets, "nat": settings.nat})})
