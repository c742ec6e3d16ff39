"""The ``network`` kind: a VPC with one private subnet per availability zone, no internet gateway, VPC endpoints
for the AWS services its workloads use, a security group for those workloads, and flow logs."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from . import storage
from ._common import ContextArgs, assume_role_policy, policy_document
from .kinds import NetworkSettings
from .monitoring import Monitor

#: Services reached through gateway endpoints (free, route-table based); the others get interface endpoints.
GATEWAY_SERVICES = frozenset({"s3", "dynamodb"})


@dataclass(frozen=True)
class NetworkArgs(ContextArgs):
    pass


class Network(pulumi.ComponentResource):
    """A private network. Provides ``network`` interfaces: ``vpc_id``, ``private_subnet_ids``, ``security_group_id``
    (the group its consumers' compute runs in) and ``cidr`` (the VPC's address range, for consumers' rules)."""

    interfaces: dict[str, pulumi.Output[dict[str, Any]]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ode:index:Network", name, {}, opts)
        args.validate("network")
        settings: NetworkSettings = args.settings  # type: ignore[assignment]
        ident = args.identity
        child = pulumi.ResourceOptions(parent=self)
        cidr = ipaddress.ip_network(settings.cidr)
        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=settings.cidr, enable_dns_hostnames=True,
                          enable_dns_support=True, tags=ident.tags(Name=ident.name("vpc", 255)), opts=child)
        zones = aws.get_availability_zones_output(state="available", opts=pulumi.InvokeOutputOptions(parent=self))
        routes = aws.ec2.RouteTable(f"{name}-private-routes", vpc_id=vpc.id, tags=ident.tags(), opts=child)
        blocks = list(cidr.subnets(new_prefix=min(cidr.prefixlen + 4, 28)))
        subnets = []
        for i in range(settings.az_count):
            subnet = aws.ec2.Subnet(f"{name}-private-{i}", vpc_id=vpc.id, cidr_block=str(blocks[i]),
                                    availability_zone=zones.names[i], map_public_ip_on_launch=False,
                                    tags=ident.tags(Name=ident.name(f"private-{i}", 255)), opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{i}-routes", subnet_id=subnet.id,
                                          route_table_id=routes.id, opts=child)
            subnets.append(subnet)
        https_in_vpc: dict[str, Any] = {"protocol": "tcp", "from_port": 443, "to_port": 443,
                                        "cidr_blocks": [settings.cidr]}
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg", vpc_id=vpc.id, description="HTTPS from the VPC to the AWS service endpoints",
            ingress=[https_in_vpc], egress=[], tags=ident.tags(), opts=child)  # type: ignore[list-item]
        region = ident.region
        prefix_lists: list[pulumi.Output[str]] = []
        for service in settings.endpoints:
            if service in GATEWAY_SERVICES:
                gateway = aws.ec2.VpcEndpoint(
                    f"{name}-{service}-endpoint", vpc_id=vpc.id, service_name=f"com.amazonaws.{region}.{service}",
                    vpc_endpoint_type="Gateway", route_table_ids=[routes.id], tags=ident.tags(), opts=child)
                prefix_lists.append(gateway.prefix_list_id)
            else:
                aws.ec2.VpcEndpoint(f"{name}-{service}-endpoint", vpc_id=vpc.id,
                                    service_name=f"com.amazonaws.{region}.{service}", vpc_endpoint_type="Interface",
                                    subnet_ids=[s.id for s in subnets], security_group_ids=[endpoint_sg.id],
                                    private_dns_enabled=True, tags=ident.tags(), opts=child)
        egress: list[dict[str, Any]] = [{**https_in_vpc, "description": "AWS services through interface endpoints"}]
        if prefix_lists:
            # Gateway endpoints (S3, DynamoDB) are reached at the services' public addresses, which AWS publishes
            # as prefix lists: the VPC's CIDR does not cover them.
            egress.append({"protocol": "tcp", "from_port": 443, "to_port": 443, "prefix_list_ids": prefix_lists,
                           "description": "S3 and DynamoDB through the gateway endpoints"})
        workloads = aws.ec2.SecurityGroup(
            f"{name}-workloads-sg", vpc_id=vpc.id, description="Compute of the contexts attached to this network",
            ingress=[], egress=egress, tags=ident.tags(), opts=child)  # type: ignore[arg-type]
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
                                    security_group_id=workloads.id, cidr=vpc.cidr_block)
        self.interfaces = {iface: outputs for iface in args.provided("network")}
        self.register_outputs({"interfaces": self.interfaces, "summary": json.dumps({"azs": settings.az_count})})
