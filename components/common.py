"""What every bounded-context component shares: who it is, its tags and physical names, and the least-privilege
IAM that its contract's ``consumes`` entries grant it.

Components take typed args built from these classes and know nothing of YAML or of the orchestrator: the program
(``ode.program``) builds the args from a contract and the producers' outputs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from .kinds import KINDS, Settings
from .names import _HASH_LEN, LIMITS, bucket_name, physical_name  # noqa: F401 - re-exported

#: The tags every taggable resource carries (beside any the provider adds as default tags).
TAG_ENV, TAG_CONTEXT, TAG_OWNER = "ode:env", "ode:context", "ode:owner"

@dataclass(frozen=True)
class Identity:
    """Who a component is: the bounded context, the environment it is deployed in, and that environment's place.

    ``protected`` environments keep their stateful resources (``protect`` and ``retain_on_delete``) and turn on
    point-in-time recovery.
    """

    project: str
    env: str
    context: str
    owner: str
    account: str
    region: str
    protected: bool = False
    partition: str = "aws"

    def tags(self, **extra: str) -> dict[str, str]:
        """The tags of every taggable resource of this context."""
        return {TAG_ENV: self.env, TAG_CONTEXT: self.context, TAG_OWNER: self.owner, **extra}

    def name(self, role: str, limit: str | int) -> str:
        """The physical name of this context's ``role`` resource: ``<project>-<env>-<context>-<role>``, within
        ``limit``."""
        return physical_name((self.project, self.env, self.context, role), limit)

    def bucket_name(self, role: str) -> str:
        """A bucket name unique per account and environment (bucket names share one global namespace)."""
        return bucket_name(self.project, self.env, self.context, role, self.account)

    def stateful(self, parent: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
        """Options of a resource that holds data: protected and kept on delete in protected environments."""
        return pulumi.ResourceOptions(
            parent=parent, protect=self.protected, retain_on_delete=self.protected or None, **kwargs
        )

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        """An ARN in this context's account and region."""
        return (f"arn:{self.partition}:{service}:{self.region if region else ''}:"
                f"{self.account if account else ''}:{resource}")


# ---------------------------------------------------------------------------------------------------------------
# What a consumer is granted


@dataclass(frozen=True)
class Grant:
    """One ``consumes`` entry, resolved: the producer's interface, the access asked for, and the producer's outputs
    for that interface (plain values from stack config, or Outputs from a StackReference)."""

    producer: str
    interface: str
    kind: str
    access: str
    outputs: Mapping[str, pulumi.Input[Any]] = field(default_factory=dict)
    #: For an implicit bus need: the event it serves (the consumer subscribes, it does not publish).
    via: str | None = None
    #: The producer's component kind: an http-api of a container-service is reached through the network, not IAM.
    component: str | None = None
    #: The routes of a consumed http-api (``"GET /products/{id}"``): the consumer may invoke exactly these.
    routes: tuple[str, ...] = ()
    #: For a network attachment: the compute attached must also reach the internet, through the network's NAT
    #: (see :meth:`ContextArgs.internet_needs`); its functions get an egress group for that.
    internet: bool = False

    def output(self, name: str) -> pulumi.Output[Any]:
        """One of the producer's outputs; a clear error when the producer did not hand it over."""
        if name not in self.outputs:
            raise ValueError(f"{self.producer}.{self.interface}: the producer's outputs lack {name!r} "
                             f"(has: {', '.join(sorted(self.outputs)) or 'nothing'})")
        return pulumi.Output.from_input(self.outputs[name])


@dataclass(frozen=True)
class Subscription:
    """An event a context subscribes to: the rule lives on ``bus`` and matches the producer's source and the event's
    detail-type."""

    producer: str
    event: str
    bus_name: pulumi.Input[str]
    bus_arn: pulumi.Input[str]

    @property
    def pattern(self) -> dict[str, list[str]]:
        """The EventBridge event pattern: source = the producing context, detail-type = the event's name."""
        return {"source": [self.producer], "detail-type": [self.event]}


#: IAM actions of each access, per interface kind: exactly these, and only on the producer's resources.
ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("table", "read"): ("dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query",
                        "dynamodb:Scan"),
    ("table", "write"): ("dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:DescribeTable",
                         "dynamodb:PutItem", "dynamodb:UpdateItem"),
    ("bucket", "read"): ("s3:GetObject", "s3:ListBucket"),
    ("bucket", "write"): ("s3:AbortMultipartUpload", "s3:DeleteObject", "s3:PutObject"),
    ("queue", "send"): ("sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"),
    ("queue", "consume"): ("sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                           "sqs:GetQueueUrl", "sqs:ReceiveMessage"),
    ("event-bus", "publish"): ("events:PutEvents",),
    ("http-api", "invoke"): ("execute-api:Invoke",),
    ("workflow", "start"): ("states:DescribeExecution", "states:StartExecution"),
    ("secret", "read"): ("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"),
    # Lambda and ECS tasks in a VPC need these to manage their network interfaces; see network_statements.
    ("network", "attach"): ("ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface",
                            "ec2:DeleteNetworkInterface", "ec2:UnassignPrivateIpAddresses"),
}
ACTIONS[("table", "read-write")] = tuple(sorted({*ACTIONS[("table", "read")], *ACTIONS[("table", "write")]}))
ACTIONS[("bucket", "read-write")] = tuple(sorted({*ACTIONS[("bucket", "read")], *ACTIONS[("bucket", "write")]}))

#: Accesses that grant nothing to the consumer's role: subscribing creates a rule in the consumer's own stack.
NO_ROLE_ACCESS = frozenset({("event", "subscribe"), ("event-bus", "subscribe")})

#: The producer outputs a consumer's code is told about, as environment variables (see :func:`env_var`).
ENV_FIELDS: dict[str, tuple[str, ...]] = {
    "table": ("name",),
    "bucket": ("name",),
    "queue": ("url",),
    "http-api": ("url",),
    "event-bus": ("name",),
    "workflow": ("arn",),
    "secret": ("arn",),
}


def env_var(producer: str, interface: str, output: str) -> str:
    """The environment variable that carries a producer's output: ``CATALOG_PRODUCTS_TABLE_NAME``."""
    return re.sub(r"[^A-Z0-9]+", "_", f"{producer}_{interface}_{output}".upper()).strip("_")


def _statement(sid: str, actions: Sequence[str], resources: Sequence[str]) -> dict[str, Any]:
    return {"Sid": re.sub(r"[^A-Za-z0-9]", "", sid)[:100], "Effect": "Allow", "Action": sorted(actions),
            "Resource": list(resources)}


def _grant_resources(grant: Grant, outputs: Mapping[str, Any]) -> list[list[str]]:
    """The resources of each statement a grant needs (one list per statement), from the producer's outputs."""
    kind, access = grant.kind, grant.access
    if kind == "table":
        return [[outputs["arn"], f"{outputs['arn']}/index/*"]]
    if kind == "bucket":
        arn = outputs["arn"]
        reads = access in ("read", "read-write")
        object_actions = [a for a in ACTIONS[(kind, access)] if a != "s3:ListBucket"]
        # ListBucket applies to the bucket, object actions to its objects: two statements.
        return [[arn], [f"{arn}/*"]] if reads and object_actions else [[f"{arn}/*"]]
    if kind == "http-api":
        return [route_arns(outputs["execution_arn"], grant.routes)]
    if kind == "workflow":
        arn = outputs["arn"]
        execution = arn.replace(":stateMachine:", ":execution:", 1) + ":*"
        return [[arn, execution]]
    return [[outputs["arn"]]]


def route_arns(execution_arn: str, routes: Sequence[str]) -> list[str]:
    """The ``execute-api:Invoke`` resources of an HTTP API's routes, in any stage: ``GET /products/{id}`` ->
    ``<execution_arn>/*/GET/products/*`` (a path parameter, ``{proxy+}`` and the method ``ANY`` match anything).
    Without routes (or with ``$default``), every route of the API."""
    arns = []
    for route in routes or ("$default",):
        method, _, path = route.partition(" ")
        if route == "$default" or not path:
            arns.append(f"{execution_arn}/*/*")
            continue
        segments = ["*" if s.startswith("{") else s for s in path.strip("/").split("/")]
        arns.append(f"{execution_arn}/*/{'*' if method == 'ANY' else method}/{'/'.join(segments)}")
    return sorted(set(arns))


def grant_statements(grants: Iterable[Grant]) -> pulumi.Output[list[dict[str, Any]]]:
    """The IAM statements the grants give a consumer's role: exactly the access's actions on exactly the
    producer's resources. Network attachment is left to :func:`network_statements`."""
    # A container-service's API checks no IAM: internal, the network admits its callers; public, CloudFront does.
    wanted = [g for g in grants if (g.kind, g.access) not in NO_ROLE_ACCESS and g.kind != "network"
              and not (g.kind == "http-api" and g.component == "container-service")]
    for g in wanted:
        if (g.kind, g.access) not in ACTIONS:
            raise ValueError(f"consumes {g.producer}.{g.interface}: access {g.access!r} is not defined for a "
                             f"{g.kind} interface")
    resolved = [pulumi.Output.all(**{k: pulumi.Output.from_input(v) for k, v in g.outputs.items()})
                for g in wanted]

    def build(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        statements = []
        for g, outs in zip(wanted, values):
            groups = _grant_resources(g, outs)
            actions = list(ACTIONS[(g.kind, g.access)])
            if g.kind == "bucket" and len(groups) == 2:
                statements.append(_statement(f"{g.producer}{g.interface}Bucket", ["s3:ListBucket"], groups[0]))
                statements.append(_statement(f"{g.producer}{g.interface}Objects",
                                             [a for a in actions if a != "s3:ListBucket"], groups[1]))
            else:
                acts = [a for a in actions if a != "s3:ListBucket"] if g.kind == "bucket" else actions
                statements.append(_statement(f"{g.producer}{g.interface}", acts, groups[0]))
        return statements

    return pulumi.Output.all(*resolved).apply(build) if resolved else pulumi.Output.from_input([])


def known(value: Any) -> Any:
    """A producer's output as a plain value, or None while it is only known later (an Output of a StackReference)."""
    return None if isinstance(value, pulumi.Output) else value


def public_endpoint(grant: Grant) -> bool:
    """Whether a consumed http-api is a public HTTPS endpoint: an API Gateway API (``execute-api``), or a public
    container-service (CloudFront). Compute in private subnets reaches those only through NAT."""
    if grant.kind != "http-api":
        return False
    if grant.component != "container-service":
        return True
    url = known(grant.outputs.get("url"))
    return isinstance(url, str) and url.startswith("https://")


def network_reached(grant: Grant) -> bool:
    """Whether a consumer reaches this interface through the network rather than with IAM: the http-api of an
    internal container-service is a load balancer in the private subnets, which ``execute-api:Invoke`` means nothing
    to. Its security group admits the network's workloads security group instead."""
    return grant.kind == "http-api" and grant.component == "container-service" and not public_endpoint(grant)


#: The characters EC2 accepts in a security group's or a rule's description (its API refuses anything else,
#: an apostrophe included, with InvalidParameterValue; botocore's model carries no pattern for it).
EC2_DESCRIPTION = re.compile(r"^[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}$")


def ec2_description(text: str) -> str:
    """``text`` if EC2 accepts it as a security group (rule) description; ``ValueError`` naming the first character
    it refuses otherwise."""
    if not EC2_DESCRIPTION.match(text):
        bad = next((c for c in text if not EC2_DESCRIPTION.match(c)), None)
        raise ValueError(f"security group description {text!r}: EC2 refuses {bad!r} (allowed: letters, digits, "
                         "spaces and ._-:/()#,@[]+=&;{}!$*; at most 255 characters)")
    return text


def network_statements(identity: Identity, network: Grant | None) -> list[dict[str, Any]]:
    """What compute attached to a VPC needs to manage its network interfaces, on that VPC's resources only
    where AWS allows it."""
    if network is None:
        return []
    eni = identity.arn("ec2", "network-interface/*")
    return [
        _statement("AttachNetwork", ACTIONS[("network", "attach")], [eni, identity.arn("ec2", "subnet/*"),
                                                                       identity.arn("ec2", "security-group/*")]),
        # ec2:Describe* actions support no resource-level permissions: AWS accepts only "*" for them.
        _statement("DescribeNetwork", ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], ["*"]),
    ]


def policy_document(statements: pulumi.Input[list[dict[str, Any]]]) -> pulumi.Output[str]:
    """An IAM policy document (JSON) of the given statements."""
    return pulumi.Output.from_input(statements).apply(
        lambda s: json.dumps({"Version": "2012-10-17", "Statement": s}, sort_keys=True))


def grant_environment(grants: Iterable[Grant]) -> dict[str, pulumi.Output[Any]]:
    """The environment variables that tell a consumer's code where its producers' interfaces are."""
    env: dict[str, pulumi.Output[Any]] = {}
    for g in grants:
        if g.via is not None:
            continue  # an implicit bus need: the subscriber's code does not publish there
        for name in ENV_FIELDS.get(g.kind, ()):
            if name in g.outputs:
                env[env_var(g.producer, g.interface, name)] = g.output(name)
    return env


def assume_role_policy(*services: str) -> str:
    """A trust policy letting only the given AWS services assume a role."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": sorted(services)}, "Action": "sts:AssumeRole"}]})


# ---------------------------------------------------------------------------------------------------------------
# Where alarms go


@dataclass(frozen=True)
class AlarmRouting:
    """Where an environment's alarms go (``environments.yaml``: ``alarms``): e-mail addresses and HTTPS endpoints
    subscribed to the context's own alarm topic, or an existing topic that every alarm notifies instead.
    A contract's ``settings.alarm_topic_arn`` wins over both."""

    email: tuple[str, ...] = ()
    https: tuple[str, ...] = ()
    topic_arn: str | None = None


# ---------------------------------------------------------------------------------------------------------------
# The args every bounded-context component takes


@dataclass(frozen=True)
class ContextArgs:
    """What every bounded-context component is built from.

    ``provides`` maps interface names to their kinds (and options such as ``routes``, ``partition_key``);
    ``grants`` are the resolved ``consumes`` entries; ``subscriptions`` the events it listens to; ``settings`` the
    component kind's settings model (``components.kinds``), already merged with the environment's overrides.
    """

    identity: Identity
    settings: Settings
    provides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    grants: Sequence[Grant] = ()
    subscriptions: Sequence[Subscription] = ()
    #: The team's own code: the resolved ``settings.code`` (function kinds) or ``settings.build`` directory.
    code_dir: str | None = None
    #: Where the context's alarms go (the environment's ``alarms`` in environments.yaml).
    alarms: AlarmRouting = AlarmRouting()

    def validate(self, kind: str) -> None:
        """Raise ``ValueError`` naming the field when these args do not fit a component of ``kind``."""
        spec = KINDS[kind]
        if not isinstance(self.settings, spec.settings):
            raise ValueError(f"settings: a {kind} component takes {spec.settings.__name__}, "
                             f"not {type(self.settings).__name__}")
        for name, iface in self.provides.items():
            if iface.get("kind") not in spec.provides:
                raise ValueError(f"provides.{name}.kind: a {kind} component cannot provide "
                                 f"{iface.get('kind')!r} (it provides {', '.join(sorted(spec.provides))})")
        net = self.network
        reasons = self.internet_needs()
        if net is not None and reasons and known(net.outputs.get("nat")) == "none":
            raise ValueError(f"consumes {net.producer}.{net.interface}: {reasons[0]}, which compute in private "
                             "subnets reaches only through NAT, and that network has none; set nat (one or per-az) "
                             f"in the settings of {net.producer}")
        for g in self.grants:
            if network_reached(g) and self.network is None:
                raise ValueError(f"consumes {g.producer}.{g.interface}: a container-service's API is an internal "
                                 "load balancer reached through the network; consume the network with access attach")
            if (g.kind, g.access) not in ACTIONS and (g.kind, g.access) not in NO_ROLE_ACCESS:
                raise ValueError(f"consumes {g.producer}.{g.interface}.access: {g.access!r} is not defined for "
                                 f"a {g.kind} interface")

    def provided(self, kind: str) -> list[str]:
        """Names of the interfaces of ``kind`` this context provides, in contract order."""
        return [name for name, iface in self.provides.items() if iface.get("kind") == kind]

    @property
    def network(self) -> Grant | None:
        """The network this context's compute attaches to, if it consumes one (``internet`` set when that compute
        must also reach public endpoints through it)."""
        found = next((g for g in self.grants if g.kind == "network"), None)
        if found is not None and self.internet_needs():
            return dataclasses.replace(found, internet=True)
        return found

    @property
    def publish_bus(self) -> Grant | None:
        """The event bus this context publishes on, if it consumes one with ``publish``."""
        return next((g for g in self.grants if g.kind == "event-bus" and g.access == "publish"), None)

    def internet_needs(self) -> list[str]:
        """Why this context's compute, attached to a network, must reach the internet (through NAT): the public
        APIs it consumes. Empty when it attaches to no network (compute outside a VPC has its own way out)."""
        if not any(g.kind == "network" for g in self.grants):
            return []
        return [f"{g.producer}.{g.interface} is a public HTTPS endpoint" for g in self.grants if public_endpoint(g)]

    @property
    def consumer_grants(self) -> list[Grant]:
        """The grants that give this context's code IAM permissions (not subscriptions, not the network)."""
        return [g for g in self.grants if (g.kind, g.access) not in NO_ROLE_ACCESS and g.kind != "network"]


def event_outputs(args: ContextArgs, bus_name: pulumi.Input[str], bus_arn: pulumi.Input[str],
                  ) -> dict[str, pulumi.Output[dict[str, Any]]]:
    """The outputs of each event a context provides: the bus it travels on, its source and detail-type."""
    source = args.identity.context

    def fields(bus: list[Any], detail_type: str) -> dict[str, Any]:
        return {"bus_name": bus[0], "bus_arn": bus[1], "source": source, "detail_type": detail_type}

    return {name: pulumi.Output.all(bus_name, bus_arn).apply(functools.partial(fields, detail_type=name))
            for name in args.provided("event")}
