"""The ``container-service`` kind: an ECS Fargate service in the network's private subnets, behind an Application
Load Balancer: internal (reached through the network) by default, or, with ``public: true``, internet-facing in the
network's public subnets behind CloudFront, which gives it HTTPS.

A public service's load balancer admits CloudFront's origin-facing addresses only (AWS's managed prefix list
``com.amazonaws.global.cloudfront.origin-facing``); viewers reach it over HTTPS (CloudFront's default certificate, or
``domain`` with ``certificate_arn``), and plain HTTP is redirected. The tasks leave the private subnets through the
network's NAT only where they must: an image from outside the region's private ECR, or a public API they consume
(an API Gateway API is a public ``execute-api`` endpoint: its ``AWS_IAM`` routes take requests signed with SigV4 by
the task role, which is granted ``execute-api:Invoke`` on exactly the consumed routes).

Names that a replacement would collide on are left to the provider (auto-naming with a random suffix): the load
balancer, the target group (a ``container_port`` change replaces it) and the service, so a replacement is created
before the old one is deleted and the listener and the service move to it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from . import _compute, code, storage
from ._security_groups import egress, ingress
from .common import ContextArgs, assume_role_policy, ec2_description, known, policy_document
from .function import merge_environment
from .kinds import ContainerServiceSettings
from .monitoring import Monitor

EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
#: AWS's managed prefix list of the addresses CloudFront uses to reach origins.
CLOUDFRONT_PREFIX_LIST = "com.amazonaws.global.cloudfront.origin-facing"
#: AWS-managed CloudFront policies: no caching (the service answers every request), every viewer header, cookie and
#: query string forwarded to the origin.
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER = "216adef6-5c7f-47e4-b989-5492eafa07d3"
#: The tag a public service's load balancer carries: an internet-facing origin that only CloudFront may reach.
INGRESS_TAG = "ode:ingress"
#: A private ECR image reference, its registry's region captured.
_PRIVATE_ECR = re.compile(r"^[0-9]{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/")


def image_needs_internet(settings: ContainerServiceSettings, region: str) -> str | None:
    """Why the tasks must reach the internet to pull their image, or None: an image in a private ECR registry of
    the region (a ``build`` pushes there) comes through the network's ``ecr.api``/``ecr.dkr`` endpoints and the S3
    gateway; anything else (ECR Public, Docker Hub, another region) only through NAT."""
    if settings.build is not None:
        return None
    image = settings.image or settings.default_image
    found = _PRIVATE_ECR.match(image)
    if found and found.group(1) == region:
        return None
    field = "settings.image" if settings.image else "the default image (no settings.image or settings.build)"
    return f"{field} {image} is pulled from outside the private ECR of {region}"


def logical(name: str, role: str, limit: int = 24) -> str:
    """A child's logical name that the provider's auto-naming can extend with its random suffix (``-`` and 7
    characters) within AWS's 32 for load balancers and target groups; a long context name is cut and hashed."""
    full = f"{name}-{role}"
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:4]
    return f"{name[: limit - len(role) - 6].rstrip('-')}-{digest}-{role}"


@dataclass(frozen=True)
class ContainerServiceArgs(ContextArgs):
    def validate(self, kind: str) -> None:
        super().validate(kind)
        net = self.network
        if net is None:
            raise ValueError(f"consumes: {self.identity.context} is a container-service and must consume a network "
                             "with access attach (its tasks run in private subnets)")
        settings: ContainerServiceSettings = self.settings  # type: ignore[assignment]
        public_subnets = known(net.outputs.get("public_subnet_ids"))
        if settings.public and public_subnets is not None and not public_subnets:
            raise ValueError(f"settings.public: the network {net.producer}.{net.interface} has no public subnets "
                             "for an internet-facing load balancer; set public_subnets: true (or nat) in the "
                             f"settings of {net.producer}")
        pull = image_needs_internet(settings, self.identity.region)
        if pull and known(net.outputs.get("nat")) == "none":
            raise ValueError(f"{pull}, which the network {net.producer}.{net.interface} reaches only through NAT, "
                             f"and it has none: set nat (one or per-az) in the settings of {net.producer}, or build "
                             "the image into the context's repository (settings.build)")


class ContainerService(pulumi.ComponentResource):
    """Containers behind a load balancer. Provides ``http-api`` (url, id and execution_arn) and ``event``
    interfaces. Internal: the URL is the load balancer's (``http://internal-...``), id and execution_arn its ARN,
    and consumers reach it through the network (the load balancer admits the network's workloads security group),
    not through IAM. Public: the URL is CloudFront's (``https://...``), id and execution_arn the distribution's."""

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
        # The consumed APIs' grants (execute-api:Invoke on their routes) are what the code signs its requests with.
        aws.iam.RolePolicy(f"{name}-task-policy", role=task_role.id, opts=child,
                           policy=policy_document(_compute.statements(args, [])))
        exec_role = aws.iam.Role(f"{name}-execution-role", name=ident.name("task-exec", "iam-role"),
                                 assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com"), tags=ident.tags(),
                                 opts=child)
        aws.iam.RolePolicyAttachment(f"{name}-execution-policy", role=exec_role.name, policy_arn=EXECUTION_POLICY,
                                     opts=child)
        cidr = net.output("cidr")
        port = settings.container_port
        public = settings.public
        alb_sg = aws.ec2.SecurityGroup(
            f"{name}-alb-sg", vpc_id=vpc_id, tags=ident.tags(), opts=child,
            description=ec2_description("Public load balancer: HTTP from CloudFront only" if public else
                                        "Internal load balancer: HTTP from the network workloads"))
        task_sg = aws.ec2.SecurityGroup(f"{name}-task-sg", vpc_id=vpc_id, tags=ident.tags(), opts=child,
                                        description=ec2_description("Tasks: only from the load balancer"))
        if public:
            # Internet-facing, but only CloudFront may connect: viewers get HTTPS from CloudFront, never the load
            # balancer directly.
            cloudfront = aws.ec2.get_managed_prefix_list_output(name=CLOUDFRONT_PREFIX_LIST,
                                                                opts=pulumi.InvokeOutputOptions(parent=self))
            ingress(f"{name}-alb-from-cloudfront", self, alb_sg.id, 80, "CloudFront origin-facing addresses",
                    tags=ident.tags(), prefix_list_id=cloudfront.id)
        else:
            # Who may call an internal service: compute attached to the network runs in its workloads security
            # group; the load balancer admits that group (consumers are granted no execute-api:Invoke on a load
            # balancer, which would mean nothing), and the group may reach it.
            workloads_sg = net.output("security_group_id")
            ingress(f"{name}-alb-from-workloads", self, alb_sg.id, 80, "compute attached to the network",
                    tags=ident.tags(), referenced_security_group_id=workloads_sg)
            egress(f"{name}-workloads-to-alb", self, workloads_sg, 80, f"to the {ident.context} load balancer",
                   tags=ident.tags(), referenced_security_group_id=alb_sg.id)
        egress(f"{name}-alb-to-tasks", self, alb_sg.id, port, "to the tasks", tags=ident.tags(),
               referenced_security_group_id=task_sg.id)
        ingress(f"{name}-task-from-alb", self, task_sg.id, port, "from the load balancer",
                tags=ident.tags(), referenced_security_group_id=alb_sg.id)
        # Tasks reach ECR, CloudWatch Logs and the other AWS APIs through the network's interface endpoints (in the
        # VPC's CIDR) and image layers in S3 through its gateway endpoint (AWS's prefix list, not the CIDR).
        s3_prefix = aws.ec2.get_prefix_list_output(name=f"com.amazonaws.{ident.region}.s3",
                                                   opts=pulumi.InvokeOutputOptions(parent=self))
        egress(f"{name}-task-to-endpoints", self, task_sg.id, 443, "AWS services through interface endpoints",
               tags=ident.tags(), cidr_ipv4=cidr)
        egress(f"{name}-task-to-s3", self, task_sg.id, 443, "image layers in S3 through the gateway endpoint",
               tags=ident.tags(), prefix_list_id=s3_prefix.id)
        internet = [*args.internet_needs(), *filter(None, [image_needs_internet(settings, ident.region)])]
        if internet:
            # Public endpoints (consumed APIs, a public registry) are reached through the network's NAT gateways.
            egress(f"{name}-task-to-internet", self, task_sg.id, 443, "HTTPS to public endpoints through NAT",
                   tags=ident.tags(), cidr_ipv4="0.0.0.0/0")
        alb = aws.lb.LoadBalancer(
            logical(name, "alb"), internal=not public, load_balancer_type="application",
            subnets=net.output("public_subnet_ids") if public else subnets, security_groups=[alb_sg.id],
            drop_invalid_header_fields=True, tags=ident.tags(**({INGRESS_TAG: "cloudfront"} if public else {})),
            opts=child)
        target = aws.lb.TargetGroup(logical(name, "targets"), port=port, protocol="HTTP", target_type="ip",
                                    vpc_id=vpc_id,
                                    health_check={"path": settings.health_check_path, "matcher": "200-399"},
                                    tags=ident.tags(), opts=child)
        # Plain HTTP on port 80: an internal load balancer is reachable only from inside the private network, a
        # public one only from CloudFront, which serves the viewers HTTPS.
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
        # ECS refuses a service whose target group has no load balancer yet: the listener attaches them. A task that
        # cannot start (an image it cannot pull, a crash, a failing health check) trips the circuit breaker, which
        # rolls the deployment back, and waiting for a steady state turns that into a failed update of the stack.
        service = aws.ecs.Service(
            f"{name}-service", cluster=cluster.arn, task_definition=task.arn, desired_count=settings.desired_count,
            launch_type="FARGATE",
            network_configuration={"subnets": subnets, "security_groups": [task_sg.id], "assign_public_ip": False},
            load_balancers=[{"target_group_arn": target.arn, "container_name": ident.context,
                             "container_port": port}],
            deployment_circuit_breaker={"enable": True, "rollback": True}, wait_for_steady_state=True,
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
        endpoint: pulumi.Output[dict[str, Any]]
        if public:
            cdn = self._distribution(name, args, settings, alb)
            host = pulumi.Output.from_input(settings.domain) if settings.domain else cdn.domain_name
            endpoint = pulumi.Output.all(url=host.apply(lambda h: f"https://{h}"), id=cdn.id, execution_arn=cdn.arn)
        else:
            endpoint = pulumi.Output.all(url=alb.dns_name.apply(lambda d: f"http://{d}"), id=alb.arn,
                                         execution_arn=alb.arn)
        for api in args.provided("http-api"):
            interfaces[api] = endpoint
        self.interfaces = interfaces
        self.register_outputs({"interfaces": self.interfaces})

    def _distribution(self, name: str, args: ContainerServiceArgs, settings: ContainerServiceSettings,
                      alb: aws.lb.LoadBalancer) -> aws.cloudfront.Distribution:
        """CloudFront in front of a public service's load balancer: HTTPS for viewers (HTTP redirected), nothing
        cached, every request forwarded whole to the load balancer."""
        ident = args.identity
        certificate: dict[str, Any] = {"cloudfront_default_certificate": True}
        if settings.certificate_arn:
            certificate = {"acm_certificate_arn": settings.certificate_arn, "ssl_support_method": "sni-only",
                           "minimum_protocol_version": "TLSv1.2_2021"}
        return aws.cloudfront.Distribution(  # type: ignore[call-overload]
            f"{name}-cdn", enabled=True, comment=f"{ident.project} {ident.env} {ident.context}"[:128],
            is_ipv6_enabled=True, http_version="http2and3", price_class="PriceClass_100",
            aliases=[settings.domain] if settings.domain else None,
            origins=[{"origin_id": "load-balancer", "domain_name": alb.dns_name,
                      "custom_origin_config": {"http_port": 80, "https_port": 443,
                                               "origin_protocol_policy": "http-only",
                                               "origin_ssl_protocols": ["TLSv1.2"]}}],
            default_cache_behavior={
                "target_origin_id": "load-balancer", "viewer_protocol_policy": "redirect-to-https",
                "allowed_methods": ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"],
                "cached_methods": ["GET", "HEAD"], "cache_policy_id": CACHING_DISABLED,
                "origin_request_policy_id": ALL_VIEWER, "compress": True},
            restrictions={"geo_restriction": {"restriction_type": "none"}}, viewer_certificate=certificate,
            tags=ident.tags(), opts=pulumi.ResourceOptions(parent=self))

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
        tag = code.directory_digest(args.code_dir)
        built = docker_build.Image(  # type: ignore[call-overload]
            f"{name}-image", context={"location": args.code_dir}, push=True,
            platforms=["linux/arm64" if settings.architecture == "arm64" else "linux/amd64"],
            tags=[repo.repository_url.apply(lambda url: f"{url}:{tag}")],
            registries=[{"address": repo.repository_url, "username": auth.user_name,
                         "password": pulumi.Output.secret(auth.password)}],
            opts=pulumi.ResourceOptions(parent=self))
        return built.ref
