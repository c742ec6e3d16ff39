"""The ``container-service`` kind: an ECS Fargate service in the network's private subnets, behind an internal
Application Load Balancer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from . import _compute, storage
from ._common import ContextArgs, assume_role_policy, policy_document
from .kinds import ContainerServiceSettings

EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"


@dataclass(frozen=True)
class ContainerServiceArgs(ContextArgs):
    def validate(self, kind: str) -> None:
        super().validate(kind)
        if self.network is None:
            raise ValueError(f"consumes: {self.identity.context} is a container-service and must consume a network "
                             "with access attach (its tasks run in private subnets)")


class ContainerService(pulumi.ComponentResource):
    """Containers behind an internal load balancer. Provides ``http-api`` (url, id and execution_arn: the load
    balancer's ARN) and ``event`` interfaces."""

    interfaces: dict[str, pulumi.Output[dict[str, Any]]]

    def __init__(self, name: str, args: ContainerServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ode:index:ContainerService", name, {}, opts)
        args.validate("container-service")
        settings: ContainerServiceSettings = args.settings  # type: ignore[assignment]
        ident = args.identity
        net = args.network
        assert net is not None
        child = pulumi.ResourceOptions(parent=self)
        interfaces: dict[str, pulumi.Output[dict[str, Any]]] = dict(_compute.events(args))
        vpc_id, subnets = net.output("vpc_id"), net.output("private_subnet_ids")
        logs = storage.log_group(ident, self, "tasks", f"/ode/{ident.project}/{ident.env}/{ident.context}/tasks",
                                 settings.log_retention_days)
        cluster = aws.ecs.Cluster(f"{name}-cluster", name=ident.name("cluster", "ecs-cluster"),
                                  settings=[{"name": "containerInsights", "value": "enabled"}], tags=ident.tags(),
                                  opts=child)
        task_role = aws.iam.Role(f"{name}-task-role", name=ident.name("task", "iam-role"),
                                 assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com"), tags=ident.tags(),
                                 opts=child)
        aws.iam.RolePolicy(f"{name}-task-policy", role=task_role.id, opts=child,
                           policy=policy_document(_compute.statements(args, [])))
        exec_role = aws.iam.Role(f"{name}-execution-role", name=ident.name("task-exec", "iam-role"),
                                 assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com"), tags=ident.tags(),
                                 opts=child)
        aws.iam.RolePolicyAttachment(f"{name}-execution-policy", role=exec_role.name, policy_arn=EXECUTION_POLICY,
                                     opts=child)
        alb_sg = aws.ec2.SecurityGroup(
            f"{name}-alb-sg", vpc_id=vpc_id, description="Internal load balancer: HTTP from the private network",
            ingress=[{"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["10.0.0.0/8"]}],
            egress=[{"protocol": "tcp", "from_port": settings.container_port, "to_port": settings.container_port,
                     "cidr_blocks": ["10.0.0.0/8"]}], tags=ident.tags(), opts=child)
        task_sg = aws.ec2.SecurityGroup(
            f"{name}-task-sg", vpc_id=vpc_id, description="Tasks: only from the load balancer",
            ingress=[{"protocol": "tcp", "from_port": settings.container_port, "to_port": settings.container_port,
                      "security_groups": [alb_sg.id]}],
            egress=[{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["10.0.0.0/8"]}],
            tags=ident.tags(), opts=child)
        # Internal and plain HTTP on port 80: no certificate can be assumed in every account; the load balancer is
        # reachable only from inside the private network.
        alb = aws.lb.LoadBalancer(f"{name}-alb", name=ident.name("alb", "alb"), internal=True,
                                  load_balancer_type="application", subnets=subnets, security_groups=[alb_sg.id],
                                  drop_invalid_header_fields=True, tags=ident.tags(), opts=child)
        target = aws.lb.TargetGroup(f"{name}-targets", name=ident.name("tg", "target-group"),
                                    port=settings.container_port, protocol="HTTP", target_type="ip", vpc_id=vpc_id,
                                    health_check={"path": "/", "matcher": "200-399"}, tags=ident.tags(), opts=child)
        listener = aws.lb.Listener(f"{name}-http", load_balancer_arn=alb.arn, port=80, protocol="HTTP",
                        default_actions=[{"type": "forward", "target_group_arn": target.arn}], tags=ident.tags(),
                        opts=child)
        env = _compute.environment(args, {})
        container = pulumi.Output.all(logs.name, pulumi.Output.all(**{k: pulumi.Output.from_input(v)
                                                                      for k, v in env.items()})).apply(
            lambda parts: json.dumps([{
                "name": ident.context, "image": settings.image, "essential": True, "readonlyRootFilesystem": True,
                "portMappings": [{"containerPort": settings.container_port, "protocol": "tcp"}],
                "environment": [{"name": k, "value": str(v)} for k, v in sorted(parts[1].items())],
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": parts[0], "awslogs-region": ident.region, "awslogs-stream-prefix": "task"}}}]))
        task = aws.ecs.TaskDefinition(f"{name}-task", family=ident.name("task", 255), cpu=str(settings.cpu),
                                      memory=str(settings.memory_mb), network_mode="awsvpc",
                                      requires_compatibilities=["FARGATE"], execution_role_arn=exec_role.arn,
                                      task_role_arn=task_role.arn, container_definitions=container, tags=ident.tags(),
                                      opts=child)
        aws.ecs.Service(f"{name}-service", name=ident.name("service", "ecs-service"), cluster=cluster.arn,
                        task_definition=task.arn, desired_count=settings.desired_count, launch_type="FARGATE",
                        network_configuration={"subnets": subnets, "security_groups": [task_sg.id],
                                               "assign_public_ip": False},
                        load_balancers=[{"target_group_arn": target.arn, "container_name": ident.context,
                                         "container_port": settings.container_port}],
                        propagate_tags="SERVICE", tags=ident.tags(),
                        # AWS refuses a service whose target group no listener forwards to yet.
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[listener]))
        storage.alarm(ident, self, "5xx", namespace="AWS/ApplicationELB", metric="HTTPCode_Target_5XX_Count",
                      dimensions={"LoadBalancer": alb.arn_suffix}, topic=settings.alarm_topic_arn)
        for api in args.provided("http-api"):
            interfaces[api] = pulumi.Output.all(url=alb.dns_name.apply(lambda d: f"http://{d}"), id=alb.arn,
                                                execution_arn=alb.arn)
        self.interfaces = interfaces
        self.register_outputs({"interfaces": self.interfaces})
