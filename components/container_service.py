"""The ``container-service`` kind: an ECS Fargate service in the network's private subnets, behind an internal
Application Load Balancer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from . import _code, _compute, storage
from ._common import ContextArgs, assume_role_policy, policy_document
from .function import merge_environment
from .kinds import ContainerServiceSettings
from .monitoring import Monitor

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
    balancer's ARN) and ``event`` interfaces. Its consumers reach it through the network (the load balancer admits
    the network's workloads security group), not through IAM."""

    interfaces: dict[str, pulumi.Output[dict[str, Any]]]

    def __init__(self, name: str, args: ContainerServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ode:index:ContainerService", name, {}, opts)
        args.validate("container-service")
        settings: ContainerServiceSettings = args.settings  # type: ignore[assignment]
        ident = args.identity
        net = args.network
        assert net is not None
        child = pulumi.ResourceOptions(parent=self)
        monitor = Monitor.of(args, self)
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
        cidr = net.output("cidr")
        port = settings.container_port
        workloads_sg = net.output("security_group_id")
        # Who may call the service: compute attached to the network runs in its workloads security group; the
        # load balancer admits that group (consumers are not granted execute-api:Invoke on a load balancer, which
        # would mean nothing).
        alb_sg = aws.ec2.SecurityGroup(
            f"{name}-alb-sg", vpc_id=vpc_id, description="Internal load balancer: HTTP from the network's workloads",
            ingress=[{"protocol": "tcp", "from_port": 80, "to_port": 80, "security_groups": [workloads_sg],
                      "description": "compute attached to the network"}],
            egress=[{"protocol": "tcp", "from_port": port, "to_port": port, "cidr_blocks": [cidr],
                     "description": "to the tasks"}], tags=ident.tags(), opts=child)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-workloads-to-alb", security_group_id=workloads_sg, referenced_security_group_id=alb_sg.id,
            ip_protocol="tcp", from_port=80, to_port=80, description=f"to the {ident.context} load balancer",
            tags=ident.tags(), opts=child)
        # Tasks reach ECR, CloudWatch Logs and the other AWS APIs through the network's interface endpoints (in the
        # VPC's CIDR) and image layers in S3 through its gateway endpoint (AWS's prefix list, not the CIDR).
        s3_prefix = aws.ec2.get_prefix_list_output(name=f"com.amazonaws.{ident.region}.s3",
                                                   opts=pulumi.InvokeOutputOptions(parent=self))
        task_sg = aws.ec2.SecurityGroup(
            f"{name}-task-sg", vpc_id=vpc_id, description="Tasks: only from the load balancer",
            ingress=[{"protocol": "tcp", "from_port": port, "to_port": port, "security_groups": [alb_sg.id],
                      "description": "from the load balancer"}],
            egress=[{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": [cidr],
                     "description": "AWS services through interface endpoints"},
                    {"protocol": "tcp", "from_port": 443, "to_port": 443, "prefix_list_ids": [s3_prefix.id],
                     "description": "image layers in S3 through the gateway endpoint"}],
            tags=ident.tags(), opts=child)
        # Internal and plain HTTP on port 80: no certificate can be assumed in every account; the load balancer is
        # reachable only from inside the private network.
        alb = aws.lb.LoadBalancer(f"{name}-alb", name=ident.name("alb", "alb"), internal=True,
                                  load_balancer_type="application", subnets=subnets, security_groups=[alb_sg.id],
                                  drop_invalid_header_fields=True, tags=ident.tags(), opts=child)
        target = aws.lb.TargetGroup(f"{name}-targets", name=ident.name("tg", "target-group"),
                                    port=port, protocol="HTTP", target_type="ip", vpc_id=vpc_id,
                                    health_check={"path": settings.health_check_path, "matcher": "200-399"},
                                    tags=ident.tags(), opts=child)
        listener = aws.lb.Listener(f"{name}-http", load_balancer_arn=alb.arn, port=80, protocol="HTTP",
                                   default_actions=[{"type": "forward", "target_group_arn": target.arn}],
                                   tags=ident.tags(), opts=child)
        image = self._image(name, args, settings)
        env = merge_environment(dict(settings.environment), _compute.environment(args, {}))
        volumes = {f"scratch-{i}": path for i, path in enumerate(settings.writable_paths)}
        container = pulumi.Output.all(logs.name, image, pulumi.Output.all(**{k: pulumi.Output.from_input(v)
                                                                             for k, v in env.items()})).apply(
            lambda parts: json.dumps([{
                "name": ident.context, "image": parts[1], "essential": True, "readonlyRootFilesystem": True,
                "portMappings": [{"containerPort": port, "protocol": "tcp"}],
                # the root filesystem is read-only: scratch space on task storage where the image writes
                "mountPoints": [{"sourceVolume": v, "containerPath": p, "readOnly": False}
                                for v, p in volumes.items()],
                "environment": [{"name": k, "value": str(v)} for k, v in sorted(dict(parts[2] or {}).items())],
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": parts[0], "awslogs-region": ident.region, "awslogs-stream-prefix": "task"}}}]))
        task = aws.ecs.TaskDefinition(f"{name}-task", family=ident.name("task", 255), cpu=str(settings.cpu),
                                      memory=str(settings.memory_mb), network_mode="awsvpc",
                                      requires_compatibilities=["FARGATE"], execution_role_arn=exec_role.arn,
                                      task_role_arn=task_role.arn, container_definitions=container,
                                      volumes=[{"name": v} for v in volumes],
                                      runtime_platform={"cpu_architecture": settings.architecture.upper(),
                                                        "operating_system_family": "LINUX"},
                                      tags=ident.tags(), opts=child)
        # ECS refuses a service whose target group has no load balancer yet: the listener attaches them.
        service = aws.ecs.Service(f"{name}-service", name=ident.name("service", "ecs-service"), cluster=cluster.arn,
                        task_definition=task.arn, desired_count=settings.desired_count, launch_type="FARGATE",
                        network_configuration={"subnets": subnets, "security_groups": [task_sg.id],
                                               "assign_public_ip": False},
                        load_balancers=[{"target_group_arn": target.arn, "container_name": ident.context,
                                         "container_port": port}],
                        propagate_tags="SERVICE", tags=ident.tags(),
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[listener]))
        storage.alarm(ident, self, "5xx", namespace="AWS/ApplicationELB", metric="HTTPCode_Target_5XX_Count",
                      dimensions={"LoadBalancer": alb.arn_suffix}, topic=monitor.topic())
        monitor.watch("load balancer", "AWS/ApplicationELB", [
            ("RequestCount", "Sum"), ("HTTPCode_Target_5XX_Count", "Sum"), ("HTTPCode_ELB_5XX_Count", "Sum")],
            {"LoadBalancer": alb.arn_suffix})
        monitor.watch("response time (s)", "AWS/ApplicationELB", [("TargetResponseTime", "p99")],
                      {"LoadBalancer": alb.arn_suffix})
        monitor.watch("service", "AWS/ECS", [("CPUUtilization", "Average"), ("MemoryUtilization", "Average")],
                      {"ClusterName": cluster.name, "ServiceName": service.name})
        monitor.dashboard()
        for api in args.provided("http-api"):
            interfaces[api] = pulumi.Output.all(url=alb.dns_name.apply(lambda d: f"http://{d}"), id=alb.arn,
                                                execution_arn=alb.arn)
        self.interfaces = interfaces
        self.register_outputs({"interfaces": self.interfaces})

    def _image(self, name: str, args: ContainerServiceArgs, settings: ContainerServiceSettings,
               ) -> pulumi.Input[str]:
        """The image the tasks run: ``image`` as given, or ``build`` built with Docker BuildKit and pushed to an
        ECR repository of the context (its digest-pinned reference, so a new build rolls the service)."""
        if args.code_dir is None:
            return settings.image or settings.default_image
        import pulumi_docker_build as docker_build  # only contexts that build an image need the provider

        ident = args.identity
        repo = aws.ecr.Repository(f"{name}-repo", name=ident.name("repo", 256).lower(),
                                  image_tag_mutability="IMMUTABLE",
                                  image_scanning_configuration={"scan_on_push": True},
                                  encryption_configurations=[{"encryption_type": "KMS"}],
                                  force_delete=not ident.protected, tags=ident.tags(), opts=ident.stateful(self))
        auth = aws.ecr.get_authorization_token_output(registry_id=repo.registry_id,
                                                      opts=pulumi.InvokeOutputOptions(parent=self))
        tag = _code.directory_digest(args.code_dir)
        built = docker_build.Image(  # type: ignore[call-overload]
            f"{name}-image", context={"location": args.code_dir}, push=True,
            platforms=["linux/arm64" if settings.architecture == "arm64" else "linux/amd64"],
            tags=[repo.repository_url.apply(lambda url: f"{url}:{tag}")],
            registries=[{"address": repo.repository_url, "username": auth.user_name,
                         "password": pulumi.Output.secret(auth.password)}],
            opts=pulumi.ResourceOptions(parent=self))
        return built.ref
