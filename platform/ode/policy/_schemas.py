"""AWS's resource schemas, as the CloudFormation linter ships them, read as data for ``aws-value-constraints``:
patterns, enums, lengths, ranges and item counts that botocore's service models do not carry (a security group
description's character set, a bucket name's pattern, at most 5 security groups on a function).

A Pulumi resource type maps to its CloudFormation type (``aws:ec2/securityGroup:SecurityGroup`` ->
``AWS::EC2::SecurityGroup``) and each input to a property (``description`` -> ``GroupDescription``,
``vpcConfig.securityGroupIds`` -> ``VpcConfig.SecurityGroupIds``) by general rules plus a short table of renames;
an input that maps to nothing, or whose shape differs from the property's, is not judged. ``SUPPLEMENTS`` adds
what AWS enforces and the schemas leave out (EC2's character set on rule descriptions, load balancer names).
The schemas are loaded on first use: ``ode`` itself never imports the linter.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from ._model import Res, _num

#: Pulumi module -> CloudFormation service namespace.
_SERVICES = {
    "ec2": "EC2", "vpc": "EC2", "lambda": "Lambda", "sqs": "SQS", "s3": "S3", "dynamodb": "DynamoDB", "iam": "IAM",
    "lb": "ElasticLoadBalancingV2", "alb": "ElasticLoadBalancingV2", "ecs": "ECS", "apigatewayv2": "ApiGatewayV2",
    "apigateway": "ApiGateway", "sfn": "StepFunctions", "secretsmanager": "SecretsManager", "kms": "KMS",
    "sns": "SNS", "ecr": "ECR", "cloudfront": "CloudFront", "ssm": "SSM", "kinesis": "Kinesis", "efs": "EFS",
    "rds": "RDS", "elasticache": "ElastiCache", "route53": "Route53", "acm": "CertificateManager",
    "appautoscaling": "ApplicationAutoScaling", "wafv2": "WAFv2", "cognito": "Cognito", "athena": "Athena",
    "glue": "Glue", "firehose": "KinesisFirehose", "opensearch": "OpenSearchService", "scheduler": "Scheduler",
    "pipes": "Pipes", "memorydb": "MemoryDB", "ebs": "EC2", "backup": "Backup", "batch": "Batch",
    "codebuild": "CodeBuild",
}

#: Pulumi types whose CloudFormation type the general rule (module -> service, class -> resource) does not find.
_TYPES = {
    "aws:cloudwatch/logGroup:LogGroup": "AWS::Logs::LogGroup",
    "aws:cloudwatch/logStream:LogStream": "AWS::Logs::LogStream",
    "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter": "AWS::Logs::SubscriptionFilter",
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": "AWS::Logs::MetricFilter",
    "aws:cloudwatch/eventBus:EventBus": "AWS::Events::EventBus",
    "aws:cloudwatch/eventRule:EventRule": "AWS::Events::Rule",
    "aws:cloudwatch/eventArchive:EventArchive": "AWS::Events::Archive",
    "aws:cloudwatch/eventConnection:EventConnection": "AWS::Events::Connection",
    "aws:cloudwatch/eventApiDestination:EventApiDestination": "AWS::Events::ApiDestination",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "AWS::CloudWatch::Alarm",
    "aws:cloudwatch/compositeAlarm:CompositeAlarm": "AWS::CloudWatch::CompositeAlarm",
    "aws:cloudwatch/dashboard:Dashboard": "AWS::CloudWatch::Dashboard",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "AWS::EC2::SecurityGroupIngress",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "AWS::EC2::SecurityGroupEgress",
    "aws:ec2/eip:Eip": "AWS::EC2::EIP",
    "aws:ebs/volume:Volume": "AWS::EC2::Volume",
    "aws:sns/topicSubscription:TopicSubscription": "AWS::SNS::Subscription",
    "aws:lb/listenerRule:ListenerRule": "AWS::ElasticLoadBalancingV2::ListenerRule",
    "aws:apigatewayv2/stage:Stage": "AWS::ApiGatewayV2::Stage",
    "aws:iam/instanceProfile:InstanceProfile": "AWS::IAM::InstanceProfile",
    "aws:iam/policy:Policy": "AWS::IAM::ManagedPolicy",
    "aws:rds/instance:Instance": "AWS::RDS::DBInstance",
    "aws:rds/cluster:Cluster": "AWS::RDS::DBCluster",
    "aws:kms/alias:Alias": "AWS::KMS::Alias",
    "aws:acm/certificate:Certificate": "AWS::CertificateManager::Certificate",
}

#: (CloudFormation type, Pulumi input) -> CloudFormation property, where neither the input in PascalCase nor
#: ``<Resource><Input>`` is the property's name.
_RENAMES = {
    ("AWS::EC2::SecurityGroup", "description"): "GroupDescription",
    ("AWS::EC2::SecurityGroup", "name"): "GroupName",
    ("AWS::EC2::SecurityGroup", "ingress"): "SecurityGroupIngress",
    ("AWS::EC2::SecurityGroup", "egress"): "SecurityGroupEgress",
    ("AWS::S3::Bucket", "bucket"): "BucketName",
    ("AWS::EC2::Subnet", "cidrBlock"): "CidrBlock",
    ("AWS::SQS::Queue", "fifoQueue"): "FifoQueue",
    ("AWS::SQS::Queue", "visibilityTimeoutSeconds"): "VisibilityTimeout",
    ("AWS::SQS::Queue", "messageRetentionSeconds"): "MessageRetentionPeriod",
    ("AWS::SQS::Queue", "delaySeconds"): "DelaySeconds",
    ("AWS::SQS::Queue", "receiveWaitTimeSeconds"): "ReceiveMessageWaitTimeSeconds",
    ("AWS::SQS::Queue", "maxMessageSize"): "MaximumMessageSize",
    ("AWS::Lambda::Function", "role"): "Role",
    ("AWS::Lambda::Permission", "function"): "FunctionName",
    ("AWS::Logs::LogGroup", "name"): "LogGroupName",
    ("AWS::CloudWatch::Alarm", "name"): "AlarmName",
    ("AWS::CloudWatch::Dashboard", "dashboardName"): "DashboardName",
    ("AWS::Events::EventBus", "name"): "Name",
    ("AWS::ECS::TaskDefinition", "family"): "Family",
    ("AWS::ECR::Repository", "name"): "RepositoryName",
    ("AWS::SecretsManager::Secret", "name"): "Name",
    ("AWS::StepFunctions::StateMachine", "name"): "StateMachineName",
    ("AWS::ApiGatewayV2::Stage", "name"): "StageName",
    ("AWS::IAM::ManagedPolicy", "name"): "ManagedPolicyName",
}

#: Inputs whose Pulumi shape differs from the CloudFormation property of the same name (never compared).
_NOT_COMPARED = frozenset({"tags", "tagsAll", "policy", "assumeRolePolicy", "containerDefinitions", "definition",
                           "eventPattern", "redrivePolicy", "redriveAllowPolicy", "code", "body", "dashboardBody"})

#: EC2's character set for security group and rule descriptions (CreateSecurityGroup, AuthorizeSecurityGroup*).
EC2_DESCRIPTION = r"^[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*$"
_ALB_NAME = r"^(?!internal-)[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,30}[a-zA-Z0-9])?$"

#: What AWS enforces and the schemas leave out: (CloudFormation type, property path) -> extra keywords.
SUPPLEMENTS: dict[tuple[str, str], dict[str, Any]] = {
    ("AWS::EC2::SecurityGroup", "SecurityGroupIngress[].Description"): {"pattern": EC2_DESCRIPTION, "maxLength": 255},
    ("AWS::EC2::SecurityGroup", "SecurityGroupEgress[].Description"): {"pattern": EC2_DESCRIPTION, "maxLength": 255},
    ("AWS::EC2::SecurityGroup", "GroupName"): {"pattern": EC2_DESCRIPTION, "maxLength": 255},
    ("AWS::EC2::SecurityGroupIngress", "Description"): {"pattern": EC2_DESCRIPTION, "maxLength": 255},
    ("AWS::EC2::SecurityGroupEgress", "Description"): {"pattern": EC2_DESCRIPTION, "maxLength": 255},
    ("AWS::EC2::SecurityGroupRule", "Description"): {"pattern": EC2_DESCRIPTION, "maxLength": 255},
    ("AWS::ElasticLoadBalancingV2::LoadBalancer", "Name"): {"pattern": _ALB_NAME},
    ("AWS::ElasticLoadBalancingV2::TargetGroup", "Name"): {
        "pattern": r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,30}[a-zA-Z0-9])?$"},
    ("AWS::SQS::Queue", "QueueName"): {"pattern": r"^[a-zA-Z0-9_-]{1,80}(\.fifo)?$", "maxLength": 80},
    ("AWS::DynamoDB::Table", "TableName"): {"pattern": r"^[a-zA-Z0-9_.-]+$", "minLength": 3, "maxLength": 255},
    ("AWS::ECS::Cluster", "ClusterName"): {"pattern": r"^[a-zA-Z0-9_-]{1,255}$"},
    ("AWS::ECS::Service", "ServiceName"): {"pattern": r"^[a-zA-Z0-9_-]{1,255}$"},
    ("AWS::ECS::TaskDefinition", "Family"): {"pattern": r"^[a-zA-Z0-9_-]{1,255}$"},
    ("AWS::SNS::Topic", "TopicName"): {"pattern": r"^[a-zA-Z0-9_-]{1,256}(\.fifo)?$"},
    ("AWS::S3::Bucket", "BucketName"): {
        "pattern": r"^(?!xn--|sthree-|amzn-s3-demo-)(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)(?!.*(-s3alias|--ol-s3|--x-s3)$)"
                   r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"},
    ("AWS::ECR::Repository", "RepositoryName"): {
        "pattern": r"^(?=.{2,256}$)((?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*)$"},
}


@functools.lru_cache(maxsize=1)
def _manager() -> Any:
    from cfnlint.schema.manager import PROVIDER_SCHEMA_MANAGER  # heavy (about 0.35 s): only when values are checked

    return PROVIDER_SCHEMA_MANAGER


@functools.lru_cache(maxsize=1)
def _known_types() -> dict[str, str]:
    """Lower-cased CloudFormation type -> its spelling, for every type the shipped schemas know."""
    import json
    from importlib.resources import files

    listing = files("cfnlint.data.schemas.providers").joinpath("us-east-1.json").read_text(encoding="utf-8")
    return {t.lower(): t for t in json.loads(listing)}


def cfn_type(pulumi_type: str) -> str | None:
    """The CloudFormation type of a Pulumi AWS type, where the schemas know one."""
    if pulumi_type in _TYPES:
        return _TYPES[pulumi_type]
    if not pulumi_type.startswith("aws:") or "/" not in pulumi_type:
        return None
    module = pulumi_type.split(":")[1].split("/")[0]
    service = _SERVICES.get(module)
    if service is None:
        return None
    candidate = f"AWS::{service}::{pulumi_type.rsplit(':', 1)[-1]}"
    try:
        return _known_types().get(candidate.lower())
    except Exception:  # noqa: BLE001 - no linter data (a trimmed install): nothing to compare against
        return None


@functools.lru_cache(maxsize=256)
def cfn_schema(type_name: str) -> Mapping[str, Any] | None:
    """The resource schema of a CloudFormation type, with the linter's patches applied."""
    try:
        return _manager().get_resource_schema("us-east-1", type_name).schema  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - a type the installed linter does not ship
        return None


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    import regex  # the linter's own regular expressions (\p{..} classes, look-arounds): installed with it

    try:
        return regex.compile(pattern)
    except regex.error:
        return None


def _resolve(root: Mapping[str, Any], node: Any) -> Mapping[str, Any]:
    for _ in range(8):
        if not isinstance(node, Mapping) or "$ref" not in node:
            break
        ref = str(node["$ref"])
        if not ref.startswith("#/"):
            return {}
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        node = target
    return node if isinstance(node, Mapping) else {}


def _property(cfn: str, props: Mapping[str, Any], key: str, top: bool) -> str | None:
    """The CloudFormation property a Pulumi input maps to (None: none)."""
    if top and (cfn, key) in _RENAMES:
        return _RENAMES[(cfn, key)]
    pascal = key[:1].upper() + key[1:]
    lowered = {p.lower(): p for p in props}
    if pascal.lower() in lowered:
        return lowered[pascal.lower()]
    if top:
        short = cfn.rsplit("::", 1)[-1]
        return lowered.get(f"{short}{pascal}".lower())
    return None


def _types(node: Mapping[str, Any]) -> set[str]:
    kind = node.get("type")
    return set(kind) if isinstance(kind, list) else ({kind} if isinstance(kind, str) else set())


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "...'"


def _check(cfn: str, root: Mapping[str, Any], node: Any, value: Any, path: str, cpath: str,
           quiet: bool) -> Iterator[str]:
    """Problems of ``value`` against a schema node (``path`` in Pulumi's names, ``cpath`` in CloudFormation's;
    ``quiet``: never repeat the value, which may be a secret)."""
    node = dict(_resolve(root, node))
    node.update(SUPPLEMENTS.get((cfn, cpath), {}))
    if value is None or not node:
        return
    kinds = _types(node)
    value = _num(value)
    where = f"{cfn}.{cpath}"
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        if kinds and not kinds & {"integer", "number"}:
            return
        if "enum" in node and value not in node["enum"]:
            yield f"{path} {value} is not one of {', '.join(map(str, node['enum'][:12]))} ({where})"
        if "minimum" in node and value < node["minimum"] or "maximum" in node and value > node["maximum"]:
            yield f"{path} {value} is outside {node.get('minimum', '')}..{node.get('maximum', '')} ({where})"
        return
    if isinstance(value, str):
        if kinds and "string" not in kinds:
            return
        shown = "" if quiet else f" {_shown(value)}"
        if "enum" in node and value not in node["enum"]:
            yield f"{path}{shown} is not one of AWS's values ({', '.join(map(str, node['enum'][:12]))}" \
                  f"{', ...' if len(node['enum']) > 12 else ''}) ({where})"
        if "maxLength" in node and len(value) > node["maxLength"]:
            yield f"{path}{shown} is longer than {node['maxLength']} characters ({where})"
        if "minLength" in node and len(value) < node["minLength"]:
            yield f"{path} is shorter than {node['minLength']} characters ({where})"
        pattern = node.get("pattern")
        compiled = _compiled(pattern) if isinstance(pattern, str) else None
        if compiled is not None and not compiled.search(value):
            # A character-set pattern (``^[...]*$``, ``^([...])*$``) names the characters it refuses.
            charset = pattern.startswith("^") and pattern.endswith(("]*$", "])*$", "]+$", "])+$"))
            bad = sorted({c for c in value if not compiled.search(c)}) if charset else []
            chars = f": AWS refuses {', '.join(map(repr, bad))} there" if bad else ""
            yield f"{path}{shown} does not match AWS's pattern {pattern}{chars} ({where})"
        return
    if isinstance(value, (list, tuple)):
        if kinds and "array" not in kinds:
            return
        if "maxItems" in node and len(value) > node["maxItems"]:
            yield f"{path} has {len(value)} items, more than AWS's {node['maxItems']} ({where})"
        items = node.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                yield from _check(cfn, root, items, item, f"{path}[{i}]", f"{cpath}[]", quiet)
        return
    if isinstance(value, Mapping):
        if kinds and "object" not in kinds:
            return
        props = node.get("properties")
        if isinstance(props, Mapping) and props:
            for key, item in value.items():
                prop = _property(cfn, props, str(key), False)
                if prop is not None:
                    yield from _check(cfn, root, props[prop], item, f"{path}.{key}", f"{cpath}.{prop}", quiet)
            return
        patterns = node.get("patternProperties")
        if isinstance(patterns, Mapping) and node.get("additionalProperties") is False:
            compiled_keys = [c for c in (_compiled(p) for p in patterns) if c is not None]
            for key in value:
                if compiled_keys and not any(c.search(str(key)) for c in compiled_keys):
                    yield f"{path}: the name {str(key)!r} does not match AWS's pattern " \
                          f"{' or '.join(patterns)} ({where})"


#: Inputs whose values may hold secrets or data: never repeated in a message.
_QUIET = frozenset({"environment", "variables", "secretString", "value", "password", "masterPassword"})


def schema_findings(res: Res) -> Iterator[str]:
    """What a resource's inputs break in AWS's resource schema (and its supplements)."""
    cfn = cfn_type(res.type)
    if cfn is None:
        return
    schema = cfn_schema(cfn)
    if not schema:
        return
    props = schema.get("properties") or {}
    for key, value in res.props.items():
        if key in _NOT_COMPARED:
            continue
        prop = _property(cfn, props, key, True)
        if prop is None:
            continue
        for problem in _check(cfn, schema, props[prop], value, key, prop, key in _QUIET):
            yield f"{res.short_type} {res.name}: {problem}"
