"""Deploying recorded resources into moto through boto3, one API call per resource the way the AWS provider would
make it, in dependency order, so that what AWS's API would reject fails here.

Each call's parameters are first checked against botocore's service model (types, required members, enums, ranges
and lengths: what AWS checks before anything else), then made against moto, which checks references (a role that
exists, a subnet of the VPC, a target group with a load balancer...). Rejections that moto does not model are
checked as AWS makes them: CreateFunction with active tracing needs ``xray:PutTraceSegments`` in the role, an ECS
service behind a target group needs the group attached to a load balancer (by a listener) first, a security group's
or rule's description takes only the characters EC2 accepts, and a NAT gateway needs its VPC's internet gateway.

The recorded inputs carry the mocks' ids and ARNs; each created resource maps the mock's values to moto's real ones,
and every later resource's inputs are rewritten with that map (policies and definitions included).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.model import Shape

from ode.engines import ResourceChange
from ode.engines._mocks import OdeMocks

SKIPPED_TYPES = ("pulumi:providers:", "ode:index:")


class Rejected(AssertionError):
    """AWS would reject this resource: names it, the operation and why."""


def shape_errors(shape: Shape | None, value: Any, where: str) -> list[str]:
    """What botocore's model of an operation's input says is wrong with ``value`` (beyond boto3's own type check):
    enums, numeric ranges, string and list lengths, and string patterns AWS publishes."""
    if shape is None or value is None:
        return []
    errors: list[str] = []
    if shape.type_name == "structure":
        if not isinstance(value, dict):
            return [f"{where}: expected a structure"]
        for name in shape.required_members:
            if name not in value:
                errors.append(f"{where}.{name}: required")
        for name, item in value.items():
            if name not in shape.members:
                errors.append(f"{where}.{name}: not a member")
            else:
                errors += shape_errors(shape.members[name], item, f"{where}.{name}")
    elif shape.type_name == "list":
        items = list(value)
        size = shape.metadata
        if "min" in size and len(items) < size["min"] or "max" in size and len(items) > size["max"]:
            errors.append(f"{where}: {len(items)} items, allowed {size.get('min', 0)}..{size.get('max', '')}")
        for i, item in enumerate(items):
            errors += shape_errors(shape.member, item, f"{where}[{i}]")  # type: ignore[attr-defined]
    elif shape.type_name == "map":
        for k, v in value.items():
            errors += shape_errors(shape.value, v, f"{where}.{k}")  # type: ignore[attr-defined]
    elif shape.type_name == "string":
        if shape.enum and value not in shape.enum:
            errors.append(f"{where}: {value!r} is not one of {', '.join(shape.enum[:20])}")
        meta = shape.metadata
        if "min" in meta and len(value) < meta["min"] or "max" in meta and len(value) > meta["max"]:
            errors.append(f"{where}: length {len(value)}, allowed {meta.get('min', 0)}..{meta.get('max', '')}")
    elif shape.type_name in ("integer", "long", "float", "double"):
        meta = shape.metadata
        if "min" in meta and value < meta["min"] or "max" in meta and value > meta["max"]:
            errors.append(f"{where}: {value}, allowed {meta.get('min', '')}..{meta.get('max', '')}")
    return errors


@dataclass
class Deployment:
    """One environment being deployed into moto: clients for its region, and the mock -> real value map."""

    #: the account the recording was made for (its ARNs are rewritten to moto's)
    account: str
    region: str
    #: moto's account
    real_account: str = "123456789012"
    clients: dict[str, Any] = field(default_factory=dict)
    real: dict[str, str] = field(default_factory=dict)
    #: role name -> actions its inline policies allow (for the X-Ray check AWS makes at CreateFunction)
    role_actions: dict[str, set[str]] = field(default_factory=dict)
    #: VPC -> its internet gateway (a NAT gateway needs one)
    gateways: dict[str, str] = field(default_factory=dict)
    calls: int = 0

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = boto3.client(service, region_name=self.region)
        return self.clients[service]

    def call(self, service: str, operation: str, resource: str, **params: Any) -> Any:
        """One API call, its parameters checked against botocore's model first."""
        client = self.client(service)
        model = client.meta.service_model.operation_model(client.meta.method_to_api_mapping[operation])
        problems = shape_errors(model.input_shape, params, operation)
        if problems:
            raise Rejected(f"{resource}: {service}.{operation} rejected: {'; '.join(problems)}")
        self.calls += 1
        try:
            return getattr(client, operation)(**params)
        except Exception as exc:  # noqa: BLE001 - whatever AWS (moto) refused, named with the resource
            raise Rejected(f"{resource}: {service}.{operation} failed: {type(exc).__name__}: {exc}") from exc

    def rewrite(self, value: Any) -> Any:
        """``value`` with every mock id and ARN replaced by the real one (longest first: ARNs contain names)."""
        text = json.dumps(value)
        for mock in sorted(self.real, key=len, reverse=True):
            text = text.replace(mock, self.real[mock])
        return _integral(json.loads(text))

    def learn(self, mock: dict[str, Any], real: dict[str, Any]) -> None:
        for key, value in real.items():
            before = mock.get(key)
            if isinstance(before, str) and isinstance(value, str) and before != value and len(before) >= 6:
                self.real[before] = value


def _integral(value: Any) -> Any:
    """Numbers as the provider sends them: Pulumi's wire format makes every number a float."""
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def order(resources: list[ResourceChange]) -> list[ResourceChange]:
    """Dependency order, ties broken against registration order: a resource is made as soon as what it depends on
    exists, as a parallel engine would, so a missing dependency shows."""
    pending = {r.name: r for r in resources}
    done: set[str] = set()
    out: list[ResourceChange] = []
    while pending:
        ready = [r for r in reversed(list(pending.values()))
                 if all(d in done or d not in pending for d in r.dependencies)]
        if not ready:
            raise AssertionError(f"a dependency cycle among {sorted(pending)}")
        for r in ready:
            out.append(r)
            done.add(r.name)
            del pending[r.name]
    return out


def tags(inputs: dict[str, Any], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in sorted((inputs.get("tags") or {}).items())]


def zipped(code: dict[str, Any]) -> bytes:
    """The deployment package a recorded ``code`` input describes: a directory, or an archive of files."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        if "directory" in code:
            root = Path(code["directory"])
            for path in sorted(root.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    z.write(path, path.relative_to(root).as_posix())
        else:
            for name, asset in code["archive"].items():
                if "text" in asset:
                    z.writestr(name, asset["text"])
                else:
                    z.write(asset["file"], name)
    return buf.getvalue()


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def autoname(name: str) -> str:
    """The physical name the provider gives a resource whose program sets none: its logical name and a suffix."""
    return f"{name}-{_short(name)[:7]}"


#: What EC2 accepts in a security group's and a rule's description (moto accepts anything).
EC2_DESCRIPTION = re.compile(r"^[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*$")


def ec2_description(resource: str, operation: str, text: str) -> str:
    """``text``, or :class:`Rejected` as EC2 answers (InvalidParameterValue) a description it does not accept."""
    if not EC2_DESCRIPTION.match(text) or len(text) > 255:
        raise Rejected(f"{resource}: ec2.{operation} rejected: InvalidParameterValue: description {text!r} has "
                       "characters EC2 does not accept (a-zA-Z0-9 ._-:/()#,@[]+=&;{}!$*) or is over 255")
    return text


Deployer = Callable[[Deployment, str, dict[str, Any]], dict[str, Any]]
DEPLOYERS: dict[str, Deployer] = {}


def deploys(*types: str) -> Callable[[Deployer], Deployer]:
    def register(fn: Deployer) -> Deployer:
        for t in types:
            DEPLOYERS[t] = fn
        return fn
    return register


@deploys("aws:iam/role:Role")
def _role(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    r = d.call("iam", "create_role", name, RoleName=i["name"], AssumeRolePolicyDocument=i["assumeRolePolicy"],
               Tags=tags(i))["Role"]
    return {"id": i["name"], "arn": r["Arn"], "name": i["name"], "uniqueId": r["RoleId"]}


@deploys("aws:iam/rolePolicy:RolePolicy")
def _role_policy(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    d.call("iam", "put_role_policy", name, RoleName=i["role"], PolicyName=name, PolicyDocument=i["policy"])
    statements = json.loads(i["policy"])["Statement"]
    d.role_actions.setdefault(i["role"], set()).update(
        a for s in statements if s["Effect"] == "Allow" for a in ([s["Action"]] if isinstance(s["Action"], str)
                                                                  else s["Action"]))
    return {}


@deploys("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
def _attachment(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    d.call("iam", "attach_role_policy", name, RoleName=i["role"], PolicyArn=i["policyArn"])
    return {}


@deploys("aws:cloudwatch/logGroup:LogGroup")
def _log_group(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    d.call("logs", "create_log_group", name, logGroupName=i["name"], tags=i.get("tags") or {})
    d.call("logs", "put_retention_policy", name, logGroupName=i["name"], retentionInDays=i["retentionInDays"])
    group = d.call("logs", "describe_log_groups", name, logGroupNamePrefix=i["name"])["logGroups"][0]
    return {"arn": group["arn"].removesuffix(":*")}


@deploys("aws:lambda/function:Function")
def _function(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    role = i["role"].rsplit("/", 1)[-1]
    if i.get("tracingConfig", {}).get("mode") == "Active":
        # what AWS answers (InvalidParameterValueException) when the role cannot send traces
        missing = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"} - d.role_actions.get(role, set())
        if missing:
            raise Rejected(f"{name}: lambda.create_function rejected: tracing is Active but role {role} lacks "
                           f"{', '.join(sorted(missing))}")
    params: dict[str, Any] = {
        "FunctionName": i["name"], "Role": i["role"], "Runtime": i["runtime"], "Handler": i["handler"],
        "Code": {"ZipFile": zipped(i["code"])}, "MemorySize": i["memorySize"], "Timeout": i["timeout"],
        "Environment": {"Variables": {k: str(v) for k, v in i["environment"]["variables"].items()}},
        "TracingConfig": {"Mode": i["tracingConfig"]["mode"]}, "Architectures": i["architectures"],
        "LoggingConfig": {"LogFormat": i["loggingConfig"]["logFormat"],
                          "LogGroup": i["loggingConfig"]["logGroup"]},
        "Tags": i.get("tags") or {}}
    if i.get("vpcConfig"):
        params["VpcConfig"] = {"SubnetIds": i["vpcConfig"]["subnetIds"],
                               "SecurityGroupIds": i["vpcConfig"]["securityGroupIds"]}
    if i.get("deadLetterConfig"):
        params["DeadLetterConfig"] = {"TargetArn": i["deadLetterConfig"]["targetArn"]}
    fn = d.call("lambda", "create_function", name, **params)
    if i.get("reservedConcurrentExecutions") is not None:
        d.call("lambda", "put_function_concurrency", name, FunctionName=i["name"],
               ReservedConcurrentExecutions=i["reservedConcurrentExecutions"])
    arn = fn["FunctionArn"]
    return {"arn": arn, "qualifiedArn": f"{arn}:$LATEST",
            "invokeArn": f"arn:aws:apigateway:{d.region}:lambda:path/2015-03-31/functions/{arn}/invocations"}


@deploys("aws:lambda/permission:Permission")
def _permission(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    d.call("lambda", "add_permission", name, FunctionName=i["function"], StatementId=name[:100], Action=i["action"],
           Principal=i["principal"], SourceArn=i["sourceArn"])
    return {}


@deploys("aws:lambda/eventSourceMapping:EventSourceMapping")
def _event_source(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    extra = {"MaximumBatchingWindowInSeconds": i["maximumBatchingWindowInSeconds"]} \
        if i.get("maximumBatchingWindowInSeconds") else {}
    m = d.call("lambda", "create_event_source_mapping", name, EventSourceArn=i["eventSourceArn"],
               FunctionName=i["functionName"], BatchSize=i["batchSize"],
               FunctionResponseTypes=i["functionResponseTypes"], **extra)
    return {"id": m["UUID"]}


@deploys("aws:sqs/queue:Queue")
def _queue(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    attributes = {"SqsManagedSseEnabled": str(i["sqsManagedSseEnabled"]).lower(),
                  "MessageRetentionPeriod": str(i["messageRetentionSeconds"])}
    if i.get("visibilityTimeoutSeconds") is not None:
        attributes["VisibilityTimeout"] = str(i["visibilityTimeoutSeconds"])
    if i.get("fifoQueue"):
        attributes["FifoQueue"] = "true"
    if i.get("contentBasedDeduplication"):
        attributes["ContentBasedDeduplication"] = "true"
    if i.get("redrivePolicy"):
        attributes["RedrivePolicy"] = i["redrivePolicy"]
    url = d.call("sqs", "create_queue", name, QueueName=i["name"], Attributes=attributes,
                 tags=i.get("tags") or {})["QueueUrl"]
    arn = d.call("sqs", "get_queue_attributes", name, QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return {"id": url, "url": url, "arn": arn["QueueArn"]}


@deploys("aws:sqs/queuePolicy:QueuePolicy")
def _queue_policy(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    d.call("sqs", "set_queue_attributes", name, QueueUrl=i["queueUrl"], Attributes={"Policy": i["policy"]})
    return {}


@deploys("aws:dynamodb/table:Table")
def _table(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    keys = [{"AttributeName": i["hashKey"], "KeyType": "HASH"}]
    if i.get("rangeKey"):
        keys.append({"AttributeName": i["rangeKey"], "KeyType": "RANGE"})
    t = d.call("dynamodb", "create_table", name, TableName=i["name"], BillingMode=i["billingMode"],
               AttributeDefinitions=[{"AttributeName": a["name"], "AttributeType": a["type"]}
                                     for a in i["attributes"]],
               KeySchema=keys, SSESpecification={"Enabled": i["serverSideEncryption"]["enabled"]},
               DeletionProtectionEnabled=bool(i.get("deletionProtectionEnabled")), Tags=tags(i))
    if i.get("pointInTimeRecovery", {}).get("enabled"):
        d.call("dynamodb", "update_continuous_backups", name, TableName=i["name"],
               PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    return {"arn": t["TableDescription"]["TableArn"]}


@deploys("aws:s3/bucket:Bucket")
def _bucket(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    extra = {} if d.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": d.region}}
    d.call("s3", "create_bucket", name, Bucket=i["bucket"], **extra)
    d.call("s3", "put_bucket_tagging", name, Bucket=i["bucket"], Tagging={"TagSet": tags(i)})
    return {}


@deploys("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
def _bucket_sse(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    rules = [{"ApplyServerSideEncryptionByDefault": {
        "SSEAlgorithm": r["applyServerSideEncryptionByDefault"]["sseAlgorithm"]},
        "BucketKeyEnabled": r.get("bucketKeyEnabled", False)} for r in i["rules"]]
    d.call("s3", "put_bucket_encryption", name, Bucket=i["bucket"],
           ServerSideEncryptionConfiguration={"Rules": rules})
    return {}


@deploys("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
def _bucket_pab(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    d.call("s3", "put_public_access_block", name, Bucket=i["bucket"], PublicAccessBlockConfiguration={
        "BlockPublicAcls": i["blockPublicAcls"], "IgnorePublicAcls": i["ignorePublicAcls"],
        "BlockPublicPolicy": i["blockPublicPolicy"], "RestrictPublicBuckets": i["restrictPublicBuckets"]})
    return {}


@deploys("aws:s3/bucketVersioning:BucketVersioning")
def _bucket_versioning(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    d.call("s3", "put_bucket_versioning", name, Bucket=i["bucket"],
           VersioningConfiguration={"Status": i["versioningConfiguration"]["status"]})
    return {}


@deploys("aws:s3/bucketPolicy:BucketPolicy")
def _bucket_policy(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    d.call("s3", "put_bucket_policy", name, Bucket=i["bucket"], Policy=i["policy"])
    return {}


@deploys("aws:secretsmanager/secret:Secret")
def _secret(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    s = d.call("secretsmanager", "create_secret", name, Name=i["name"], Description=i["description"],
               Tags=tags(i))
    return {"id": s["ARN"], "arn": s["ARN"]}


@deploys("aws:sfn/stateMachine:StateMachine")
def _state_machine(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    logging = i["loggingConfiguration"]
    m = d.call("stepfunctions", "create_state_machine", name, name=i["name"], definition=i["definition"],
               roleArn=i["roleArn"], type=i["type"],
               loggingConfiguration={"level": logging["level"],
                                     "includeExecutionData": logging["includeExecutionData"],
                                     "destinations": [{"cloudWatchLogsLogGroup": {
                                         "logGroupArn": logging["logDestination"]}}]},
               tracingConfiguration={"enabled": i["tracingConfiguration"]["enabled"]},
               tags=tags(i, "key", "value"))
    return {"id": m["stateMachineArn"], "arn": m["stateMachineArn"]}


@deploys("aws:cloudwatch/eventBus:EventBus")
def _bus(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    b = d.call("events", "create_event_bus", name, Name=i["name"], Tags=tags(i))
    return {"arn": b["EventBusArn"]}


@deploys("aws:cloudwatch/eventArchive:EventArchive")
def _archive(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    a = d.call("events", "create_archive", name, ArchiveName=i["name"], EventSourceArn=i["eventSourceArn"],
               RetentionDays=i["retentionDays"], Description=i["description"])
    return {"arn": a["ArchiveArn"]}


@deploys("aws:cloudwatch/eventBusPolicy:EventBusPolicy")
def _bus_policy(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    d.call("events", "put_permission", name, EventBusName=i["eventBusName"], Policy=i["policy"])
    return {}


@deploys("aws:cloudwatch/eventRule:EventRule")
def _rule(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    r = d.call("events", "put_rule", name, Name=i["name"], EventBusName=i["eventBusName"],
               EventPattern=i["eventPattern"], Tags=tags(i))
    return {"arn": r["RuleArn"]}


@deploys("aws:cloudwatch/eventTarget:EventTarget")
def _target(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    target: dict[str, Any] = {"Id": _short(name), "Arn": i["arn"]}
    if i.get("roleArn"):
        target["RoleArn"] = i["roleArn"]
    if i.get("sqsTarget"):
        target["SqsParameters"] = {"MessageGroupId": i["sqsTarget"]["messageGroupId"]}
    reply = d.call("events", "put_targets", name, Rule=i["rule"], EventBusName=i["eventBusName"], Targets=[target])
    if reply.get("FailedEntryCount"):
        raise Rejected(f"{name}: events.put_targets rejected: {reply['FailedEntries']}")
    return {}


@deploys("aws:cloudwatch/metricAlarm:MetricAlarm")
def _alarm(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    d.call("cloudwatch", "put_metric_alarm", name, AlarmName=i["name"], Namespace=i["namespace"],
           MetricName=i["metricName"], Dimensions=[{"Name": k, "Value": v} for k, v in i["dimensions"].items()],
           Statistic=i["statistic"], Period=i["period"], EvaluationPeriods=i["evaluationPeriods"],
           Threshold=float(i["threshold"]), ComparisonOperator=i["comparisonOperator"],
           TreatMissingData=i["treatMissingData"], AlarmActions=i.get("alarmActions") or [],
           OKActions=i.get("okActions") or [], Tags=tags(i))
    return {}


@deploys("aws:kms/key:Key")
def _key(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    k = d.call("kms", "create_key", name, Description=i.get("description", ""), Policy=i["policy"],
               Tags=tags(i, "TagKey", "TagValue"))["KeyMetadata"]
    if i.get("enableKeyRotation"):
        d.call("kms", "enable_key_rotation", name, KeyId=k["KeyId"])
    return {"id": k["KeyId"], "arn": k["Arn"], "keyId": k["KeyId"]}


@deploys("aws:sns/topic:Topic")
def _topic(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    attributes = {"KmsMasterKeyId": i["kmsMasterKeyId"]} if i.get("kmsMasterKeyId") else {}
    if i.get("displayName"):
        attributes["DisplayName"] = i["displayName"]
    t = d.call("sns", "create_topic", name, Name=i["name"], Attributes=attributes, Tags=tags(i))
    return {"id": t["TopicArn"], "arn": t["TopicArn"]}


@deploys("aws:sns/topicPolicy:TopicPolicy")
def _topic_policy(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    d.call("sns", "set_topic_attributes", name, TopicArn=i["arn"], AttributeName="Policy", AttributeValue=i["policy"])
    return {}


@deploys("aws:sns/topicSubscription:TopicSubscription")
def _subscription(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    s = d.call("sns", "subscribe", name, TopicArn=i["topic"], Protocol=i["protocol"], Endpoint=i["endpoint"],
               ReturnSubscriptionArn=True)
    return {"arn": s["SubscriptionArn"]}


@deploys("aws:cloudwatch/dashboard:Dashboard")
def _dashboard(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    reply = d.call("cloudwatch", "put_dashboard", name, DashboardName=i["dashboardName"],
                   DashboardBody=i["dashboardBody"])
    if reply.get("DashboardValidationMessages"):
        raise Rejected(f"{name}: cloudwatch.put_dashboard: {reply['DashboardValidationMessages']}")
    return {"dashboardArn": f"arn:aws:cloudwatch::{d.real_account}:dashboard/{i['dashboardName']}"}


@deploys("aws:apigatewayv2/api:Api")
def _api(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    a = d.call("apigatewayv2", "create_api", name, Name=i["name"], ProtocolType=i["protocolType"],
               Tags=i.get("tags") or {})
    return {"id": a["ApiId"], "apiEndpoint": a["ApiEndpoint"],
            "executionArn": f"arn:aws:execute-api:{d.region}:{d.real_account}:{a['ApiId']}"}


@deploys("aws:apigatewayv2/integration:Integration")
def _integration(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    x = d.call("apigatewayv2", "create_integration", name, ApiId=i["apiId"], IntegrationType=i["integrationType"],
               IntegrationUri=i["integrationUri"], PayloadFormatVersion=i["payloadFormatVersion"])
    return {"id": x["IntegrationId"]}


@deploys("aws:apigatewayv2/route:Route")
def _route(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    r = d.call("apigatewayv2", "create_route", name, ApiId=i["apiId"], RouteKey=i["routeKey"],
               AuthorizationType=i["authorizationType"], Target=i["target"])
    return {"id": r["RouteId"]}


@deploys("aws:apigatewayv2/stage:Stage")
def _stage(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    routes = i["defaultRouteSettings"]
    d.call("apigatewayv2", "create_stage", name, ApiId=i["apiId"], StageName=i["name"], AutoDeploy=i["autoDeploy"],
           AccessLogSettings={"DestinationArn": i["accessLogSettings"]["destinationArn"],
                              "Format": i["accessLogSettings"]["format"]},
           DefaultRouteSettings={"ThrottlingRateLimit": float(routes["throttlingRateLimit"]),
                                 "ThrottlingBurstLimit": routes["throttlingBurstLimit"]},
           Tags=i.get("tags") or {})
    return {}


@deploys("aws:ec2/vpc:Vpc")
def _vpc(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    v = d.call("ec2", "create_vpc", name, CidrBlock=i["cidrBlock"])["Vpc"]
    d.call("ec2", "modify_vpc_attribute", name, VpcId=v["VpcId"], EnableDnsSupport={"Value": True})
    d.call("ec2", "modify_vpc_attribute", name, VpcId=v["VpcId"], EnableDnsHostnames={"Value": True})
    return {"id": v["VpcId"]}


@deploys("aws:ec2/subnet:Subnet")
def _subnet(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    s = d.call("ec2", "create_subnet", name, VpcId=i["vpcId"], CidrBlock=i["cidrBlock"],
               AvailabilityZone=i["availabilityZone"])["Subnet"]
    return {"id": s["SubnetId"]}


@deploys("aws:ec2/routeTable:RouteTable")
def _route_table(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    return {"id": d.call("ec2", "create_route_table", name, VpcId=i["vpcId"])["RouteTable"]["RouteTableId"]}


@deploys("aws:ec2/routeTableAssociation:RouteTableAssociation")
def _association(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    d.call("ec2", "associate_route_table", name, SubnetId=i["subnetId"], RouteTableId=i["routeTableId"])
    return {}


def _permissions(rules: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rules:
        p: dict[str, Any] = {"IpProtocol": r["protocol"], "FromPort": r["fromPort"], "ToPort": r["toPort"]}
        if r.get("cidrBlocks"):
            p["IpRanges"] = [{"CidrIp": c} for c in r["cidrBlocks"]]
        if r.get("securityGroups"):
            p["UserIdGroupPairs"] = [{"GroupId": g} for g in r["securityGroups"]]
        if r.get("prefixListIds"):
            p["PrefixListIds"] = [{"PrefixListId": x} for x in r["prefixListIds"]]
        out.append(p)
    return out


@deploys("aws:ec2/securityGroup:SecurityGroup")
def _security_group(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    for rule in [*(i.get("ingress") or []), *(i.get("egress") or [])]:
        ec2_description(name, "authorize_security_group_ingress", rule.get("description") or "")
    group = d.call("ec2", "create_security_group", name, GroupName=i.get("name") or autoname(name),
                   Description=ec2_description(name, "create_security_group", i["description"]),
                   VpcId=i["vpcId"])["GroupId"]
    d.call("ec2", "revoke_security_group_egress", name, GroupId=group, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])  # the provider removes AWS's default rule
    if i.get("ingress"):
        d.call("ec2", "authorize_security_group_ingress", name, GroupId=group,
               IpPermissions=_permissions(i["ingress"]))
    if i.get("egress"):
        d.call("ec2", "authorize_security_group_egress", name, GroupId=group,
               IpPermissions=_permissions(i["egress"]))
    return {"id": group}


def _rule_permission(name: str, operation: str, i: dict[str, Any]) -> dict[str, Any]:
    """The IpPermissions entry of one separate rule resource: exactly one source or destination."""
    sources = [k for k in ("cidrIpv4", "cidrIpv6", "referencedSecurityGroupId", "prefixListId") if i.get(k)]
    if len(sources) != 1:
        raise Rejected(f"{name}: ec2.{operation} rejected: a rule takes exactly one of cidrIpv4, cidrIpv6, "
                       f"referencedSecurityGroupId, prefixListId (it has {sources or 'none'})")
    description = ec2_description(name, operation, i.get("description") or "")
    source = sources[0]
    permission: dict[str, Any] = {"IpProtocol": i["ipProtocol"], "FromPort": i["fromPort"], "ToPort": i["toPort"]}
    if source == "cidrIpv4":
        permission["IpRanges"] = [{"CidrIp": i[source], "Description": description}]
    elif source == "cidrIpv6":
        permission["Ipv6Ranges"] = [{"CidrIpv6": i[source], "Description": description}]
    elif source == "referencedSecurityGroupId":
        permission["UserIdGroupPairs"] = [{"GroupId": i[source], "Description": description}]
    else:
        permission["PrefixListIds"] = [{"PrefixListId": i[source], "Description": description}]
    return permission


@deploys("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
def _ingress_rule(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    operation = "authorize_security_group_ingress"
    reply = d.call("ec2", operation, name, GroupId=i["securityGroupId"],
                   IpPermissions=[_rule_permission(name, operation, i)])
    rules = reply.get("SecurityGroupRules") or [{}]
    return {"id": rules[0].get("SecurityGroupRuleId", "")}


@deploys("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
def _egress_rule(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    operation = "authorize_security_group_egress"
    reply = d.call("ec2", operation, name, GroupId=i["securityGroupId"],
                   IpPermissions=[_rule_permission(name, operation, i)])
    rules = reply.get("SecurityGroupRules") or [{}]
    return {"id": rules[0].get("SecurityGroupRuleId", "")}


@deploys("aws:ec2/internetGateway:InternetGateway")
def _internet_gateway(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    gateway = d.call("ec2", "create_internet_gateway", name, TagSpecifications=[
        {"ResourceType": "internet-gateway", "Tags": tags(i)}])["InternetGateway"]["InternetGatewayId"]
    d.call("ec2", "attach_internet_gateway", name, InternetGatewayId=gateway, VpcId=i["vpcId"])
    d.gateways[i["vpcId"]] = gateway
    return {"id": gateway}


@deploys("aws:ec2/eip:Eip")
def _eip(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    a = d.call("ec2", "allocate_address", name, Domain=i["domain"],
               TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": tags(i)}])
    return {"id": a["AllocationId"], "allocationId": a["AllocationId"], "publicIp": a["PublicIp"]}


@deploys("aws:ec2/natGateway:NatGateway")
def _nat_gateway(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    subnet = d.call("ec2", "describe_subnets", name, SubnetIds=[i["subnetId"]])["Subnets"][0]
    if subnet["VpcId"] not in d.gateways:  # AWS makes it, but it never becomes available without a way out
        raise Rejected(f"{name}: ec2.create_nat_gateway: a public NAT gateway in a VPC without an internet gateway "
                       "fails (it must depend on the gateway)")
    n = d.call("ec2", "create_nat_gateway", name, SubnetId=i["subnetId"], AllocationId=i["allocationId"],
               ConnectivityType=i["connectivityType"],
               TagSpecifications=[{"ResourceType": "natgateway", "Tags": tags(i)}])["NatGateway"]
    return {"id": n["NatGatewayId"]}


@deploys("aws:ec2/route:Route")
def _route(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    target = {"GatewayId": i["gatewayId"]} if i.get("gatewayId") else {"NatGatewayId": i["natGatewayId"]}
    d.call("ec2", "create_route", name, RouteTableId=i["routeTableId"],
           DestinationCidrBlock=i["destinationCidrBlock"], **target)
    return {}


@deploys("aws:cloudfront/distribution:Distribution")
def _distribution(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    def items(values: list[Any]) -> dict[str, Any]:
        return {"Quantity": len(values), "Items": values} if values else {"Quantity": 0}

    behaviour = i["defaultCacheBehavior"]
    origins = [{"Id": o["originId"], "DomainName": o["domainName"], "CustomOriginConfig": {
        "HTTPPort": o["customOriginConfig"]["httpPort"], "HTTPSPort": o["customOriginConfig"]["httpsPort"],
        "OriginProtocolPolicy": o["customOriginConfig"]["originProtocolPolicy"],
        "OriginSslProtocols": items(o["customOriginConfig"]["originSslProtocols"])}} for o in i["origins"]]
    certificate = i["viewerCertificate"]
    viewer: dict[str, Any] = {"CloudFrontDefaultCertificate": True} if certificate.get(
        "cloudfrontDefaultCertificate") else {"ACMCertificateArn": certificate["acmCertificateArn"],
                                              "SSLSupportMethod": certificate["sslSupportMethod"],
                                              "MinimumProtocolVersion": certificate["minimumProtocolVersion"]}
    config = {
        "CallerReference": name, "Comment": i["comment"], "Enabled": i["enabled"], "PriceClass": i["priceClass"],
        "HttpVersion": i["httpVersion"], "IsIPV6Enabled": i["isIpv6Enabled"], "Origins": items(origins),
        "Aliases": items(i.get("aliases") or []), "ViewerCertificate": viewer,
        "Restrictions": {"GeoRestriction": {"RestrictionType": i["restrictions"]["geoRestriction"][
            "restrictionType"], "Quantity": 0}},
        "DefaultCacheBehavior": {
            "TargetOriginId": behaviour["targetOriginId"], "ViewerProtocolPolicy": behaviour["viewerProtocolPolicy"],
            "AllowedMethods": {**items(behaviour["allowedMethods"]),
                               "CachedMethods": items(behaviour["cachedMethods"])},
            "CachePolicyId": behaviour["cachePolicyId"], "OriginRequestPolicyId": behaviour["originRequestPolicyId"],
            "Compress": behaviour["compress"]}}
    dist = d.call("cloudfront", "create_distribution_with_tags", name, DistributionConfigWithTags={
        "DistributionConfig": config, "Tags": {"Items": tags(i)}})["Distribution"]
    return {"id": dist["Id"], "arn": dist["ARN"], "domainName": dist["DomainName"]}


@deploys("aws:ecr/repository:Repository")
def _repository(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    r = d.call("ecr", "create_repository", name, repositoryName=i["name"],
               imageTagMutability=i["imageTagMutability"],
               imageScanningConfiguration={"scanOnPush": i["imageScanningConfiguration"]["scanOnPush"]},
               encryptionConfiguration={"encryptionType": i["encryptionConfigurations"][0]["encryptionType"]},
               tags=tags(i))["repository"]
    return {"arn": r["repositoryArn"], "registryId": r["registryId"], "repositoryUrl": r["repositoryUri"]}


@deploys("docker-build:index:Image")
def _image(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    """What the build pushes: an image manifest under its tag, into the repository the tag names (no Docker here:
    the manifest stands for the build context's content; the registry's credentials are a secret input, masked in
    the recording)."""
    tag = i["tags"][0]
    url, _, version = tag.rpartition(":")
    repository = url.partition("/")[2]
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 0,
                                      "digest": "sha256:" + hashlib.sha256(
                                          json.dumps(i["context"]).encode()).hexdigest()},
                           "layers": []})
    pushed = d.call("ecr", "put_image", name, repositoryName=repository, imageManifest=manifest,
                    imageTag=version)["image"]
    digest = pushed["imageId"]["imageDigest"]
    return {"digest": digest, "ref": f"{url}@{digest}"}


@deploys("aws:ec2/vpcEndpoint:VpcEndpoint")
def _endpoint(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"VpcId": i["vpcId"], "ServiceName": i["serviceName"],
                              "VpcEndpointType": i["vpcEndpointType"]}
    if i["vpcEndpointType"] == "Gateway":
        params["RouteTableIds"] = i["routeTableIds"]
    else:
        params.update(SubnetIds=i["subnetIds"], SecurityGroupIds=i["securityGroupIds"],
                      PrivateDnsEnabled=i["privateDnsEnabled"])
    e = d.call("ec2", "create_vpc_endpoint", name, **params)["VpcEndpoint"]
    return {"id": e["VpcEndpointId"]}


@deploys("aws:ec2/flowLog:FlowLog")
def _flow_log(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    f = d.call("ec2", "create_flow_logs", name, ResourceIds=[i["vpcId"]], ResourceType="VPC",
               TrafficType=i["trafficType"], LogDestinationType="cloud-watch-logs",
               LogDestination=i["logDestination"], DeliverLogsPermissionArn=i["iamRoleArn"])
    if f.get("Unsuccessful"):
        raise Rejected(f"{name}: ec2.create_flow_logs rejected: {f['Unsuccessful']}")
    return {"id": f["FlowLogIds"][0]}


@deploys("aws:lb/loadBalancer:LoadBalancer")
def _load_balancer(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    lb = d.call("elbv2", "create_load_balancer", name, Name=i.get("name") or autoname(name)[:32],
                Subnets=i["subnets"],
                SecurityGroups=i["securityGroups"], Scheme="internal" if i["internal"] else "internet-facing",
                Type=i["loadBalancerType"], Tags=tags(i))["LoadBalancers"][0]
    d.call("elbv2", "modify_load_balancer_attributes", name, LoadBalancerArn=lb["LoadBalancerArn"], Attributes=[
        {"Key": "routing.http.drop_invalid_header_fields.enabled",
         "Value": str(i["dropInvalidHeaderFields"]).lower()}])
    arn = lb["LoadBalancerArn"]
    return {"id": arn, "arn": arn, "dnsName": lb["DNSName"], "arnSuffix": arn.split(":loadbalancer/", 1)[1]}


@deploys("aws:lb/targetGroup:TargetGroup")
def _target_group(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    tg = d.call("elbv2", "create_target_group", name, Name=i.get("name") or autoname(name)[:32], Port=i["port"],
                Protocol=i["protocol"],
                TargetType=i["targetType"], VpcId=i["vpcId"], HealthCheckPath=i["healthCheck"]["path"],
                Matcher={"HttpCode": i["healthCheck"]["matcher"]}, Tags=tags(i))["TargetGroups"][0]
    arn = tg["TargetGroupArn"]
    return {"id": arn, "arn": arn, "arnSuffix": arn.split(":", 5)[5]}


@deploys("aws:lb/listener:Listener")
def _listener(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    actions = [{"Type": a["type"], "TargetGroupArn": a["targetGroupArn"]} for a in i["defaultActions"]]
    ln = d.call("elbv2", "create_listener", name, LoadBalancerArn=i["loadBalancerArn"], Port=i["port"],
                Protocol=i["protocol"], DefaultActions=actions, Tags=tags(i))["Listeners"][0]
    return {"id": ln["ListenerArn"], "arn": ln["ListenerArn"]}


@deploys("aws:ecs/cluster:Cluster")
def _cluster(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    c = d.call("ecs", "create_cluster", name, clusterName=i["name"], settings=i["settings"],
               tags=tags(i, "key", "value"))["cluster"]
    return {"id": c["clusterArn"], "arn": c["clusterArn"]}


@deploys("aws:ecs/taskDefinition:TaskDefinition")
def _task(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    platform = i["runtimePlatform"]
    t = d.call("ecs", "register_task_definition", name, family=i["family"], cpu=i["cpu"], memory=i["memory"],
               networkMode=i["networkMode"], requiresCompatibilities=i["requiresCompatibilities"],
               executionRoleArn=i["executionRoleArn"], taskRoleArn=i["taskRoleArn"],
               containerDefinitions=json.loads(i["containerDefinitions"]), volumes=i.get("volumes") or [],
               runtimePlatform={"cpuArchitecture": platform["cpuArchitecture"],
                                "operatingSystemFamily": platform["operatingSystemFamily"]},
               tags=tags(i, "key", "value"))["taskDefinition"]
    return {"arn": t["taskDefinitionArn"]}


@deploys("aws:ecs/service:Service")
def _service(d: Deployment, name: str, i: dict[str, Any]) -> dict[str, Any]:
    for lb in i.get("loadBalancers") or []:
        group = d.call("elbv2", "describe_target_groups", name, TargetGroupArns=[lb["targetGroupArn"]])
        listeners = [ln for arn in group["TargetGroups"][0]["LoadBalancerArns"]
                     for ln in d.call("elbv2", "describe_listeners", name, LoadBalancerArn=arn)["Listeners"]
                     if any(a.get("TargetGroupArn") == lb["targetGroupArn"] for a in ln["DefaultActions"])]
        if not listeners:  # what ECS answers when the service is created before the listener
            raise Rejected(f"{name}: ecs.create_service rejected: target group {lb['targetGroupArn']} does not have "
                           "an associated load balancer")
    net = i["networkConfiguration"]
    breaker = i.get("deploymentCircuitBreaker")
    extra = {"deploymentConfiguration": {"deploymentCircuitBreaker": {
        "enable": breaker["enable"], "rollback": breaker["rollback"]}}} if breaker else {}
    service_name = i.get("name") or autoname(name)
    s = d.call("ecs", "create_service", name, cluster=i["cluster"], serviceName=service_name,
               taskDefinition=i["taskDefinition"], desiredCount=i["desiredCount"], launchType=i["launchType"],
               networkConfiguration={"awsvpcConfiguration": {
                   "subnets": net["subnets"], "securityGroups": net["securityGroups"],
                   "assignPublicIp": "ENABLED" if net.get("assignPublicIp") else "DISABLED"}},
               loadBalancers=[{"targetGroupArn": lb["targetGroupArn"], "containerName": lb["containerName"],
                               "containerPort": lb["containerPort"]} for lb in i.get("loadBalancers") or []],
               propagateTags=i["propagateTags"], tags=tags(i, "key", "value"), **extra)["service"]
    return {"id": s["serviceArn"], "name": service_name}


def deploy_stack(d: Deployment, resources: list[ResourceChange]) -> None:
    """Create every resource of one stack, in dependency order; :class:`Rejected` names the first AWS refuses."""
    mocks = OdeMocks(d.account, d.region)
    from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

    # AWS's managed prefix lists (what the program looked up by name) are moto's own: map the mocks' ids to them.
    for pl in d.client("ec2").describe_managed_prefix_lists()["PrefixLists"]:
        token = "aws:ec2/getManagedPrefixList:getManagedPrefixList"
        mock = mocks.call(MockCallArgs(token, {"name": pl["PrefixListName"]}, ""))[0]
        d.real.setdefault(mock["id"], pl["PrefixListId"])

    for r in order([r for r in resources if not r.type.startswith(SKIPPED_TYPES)]):
        deployer = DEPLOYERS.get(r.type)
        if deployer is None:
            raise AssertionError(f"{r.name}: no deployer for {r.type} (add one to tests/aws_deploy.py)")
        rid, mock_state = mocks.new_resource(MockResourceArgs(r.type, r.name, dict(r.inputs)))
        real = deployer(d, r.name, d.rewrite(r.inputs))
        d.learn({"id": rid, **mock_state}, real)
