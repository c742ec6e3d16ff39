"""Security group rules, one resource each.

Every rule is an ``aws.vpc.SecurityGroupIngressRule`` or ``SecurityGroupEgressRule`` of its own, never an inline
``ingress``/``egress`` list on the group: a group with inline rules is managed whole, so the next ``up`` of the stack
that owns it would revoke the rules other stacks add to it (the network's workloads group, which a container-service
opens towards its load balancer, is one). Descriptions are checked against the characters EC2 accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

from .common import ec2_description


def ingress(name: str, parent: pulumi.Resource, group: pulumi.Input[str], port: int, description: str, *,
            tags: Mapping[str, str] | None = None, **source: Any) -> aws.vpc.SecurityGroupIngressRule:
    """One TCP ingress rule on ``group`` from one source (``cidr_ipv4``, ``referenced_security_group_id`` or
    ``prefix_list_id``)."""
    return aws.vpc.SecurityGroupIngressRule(name, security_group_id=group, ip_protocol="tcp", from_port=port,
                                            to_port=port, description=ec2_description(description), tags=tags,
                                            opts=pulumi.ResourceOptions(parent=parent), **source)


def egress(name: str, parent: pulumi.Resource, group: pulumi.Input[str], port: int, description: str, *,
           tags: Mapping[str, str] | None = None, **destination: Any) -> aws.vpc.SecurityGroupEgressRule:
    """One TCP egress rule from ``group`` to one destination (``cidr_ipv4``, ``referenced_security_group_id`` or
    ``prefix_list_id``)."""
    return aws.vpc.SecurityGroupEgressRule(name, security_group_id=group, ip_protocol="tcp", from_port=port,
                                           to_port=port, description=ec2_description(description), tags=tags,
                                           opts=pulumi.ResourceOptions(parent=parent), **destination)
