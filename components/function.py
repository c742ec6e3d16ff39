"""One Lambda function the way every kind wants it: its own role with exactly the statements it is given, its own
log group with retention, alarms for errors and throttles, a dead-letter queue for asynchronous invocations, and the
network's private subnets when the context attaches to one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from . import storage
from ._common import Grant, Identity, _statement, assume_role_policy, network_statements, policy_document
from .kinds import FunctionSettings

HANDLERS = Path(__file__).resolve().parent / "handlers"


def code(module: str) -> pulumi.AssetArchive:
    """The handler package of a kind: ``components/handlers/<module>/``."""
    folder = HANDLERS / module
    return pulumi.AssetArchive({p.name: pulumi.FileAsset(str(p)) for p in sorted(folder.glob("*.py"))})


def function(identity: Identity, parent: pulumi.Resource, role: str, *, module: str, settings: FunctionSettings,
             environment: dict[str, pulumi.Input[Any]], statements: pulumi.Input[list[dict[str, Any]]],
             network: Grant | None, asynchronous: bool = False) -> aws.lambda_.Function:
    """A function running ``components/handlers/<module>/index.py``, allowed ``statements`` and nothing else from
    other contexts."""
    base = f"{parent._name}-{role}"  # noqa: SLF001
    opts = pulumi.ResourceOptions(parent=parent)
    fn_name = identity.name(role, "lambda")
    logs = storage.log_group(identity, parent, role, f"/aws/lambda/{fn_name}", settings.log_retention_days)
    exec_role = aws.iam.Role(f"{base}-role", name=identity.name(f"{role}-fn", "iam-role"),
                             assume_role_policy=assume_role_policy("lambda.amazonaws.com"), tags=identity.tags(),
                             opts=opts)
    dlq = None
    if asynchronous:
        dlq, _ = storage.queue(identity, parent, f"{role}-failed", max_receive_count=1)
    own = pulumi.Output.all(logs.arn, dlq.arn if dlq else None).apply(
        lambda arns: [_statement("OwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [f"{arns[0]}:*"]),
                      # Active tracing: AWS rejects the function without these; they take no narrower resource.
                      _statement("Tracing", ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], ["*"])]
        + ([_statement("DeadLetters", ["sqs:SendMessage"], [arns[1]])] if arns[1] else []))
    every = pulumi.Output.all(own, statements).apply(
        lambda parts: parts[0] + parts[1] + network_statements(identity, network))
    policy = aws.iam.RolePolicy(f"{base}-policy", role=exec_role.id, policy=policy_document(every), opts=opts)
    variables = {"ODE_ENV": identity.env, "ODE_CONTEXT": identity.context, **environment}
    extra: dict[str, Any] = {}
    if network is not None:
        extra["vpc_config"] = {"subnet_ids": network.output("private_subnet_ids"),
                               "security_group_ids": [network.output("security_group_id")]}
    if dlq is not None:
        extra["dead_letter_config"] = {"target_arn": dlq.arn}
    fn = aws.lambda_.Function(
        base, name=fn_name, role=exec_role.arn, runtime=settings.runtime, handler="index.handler",
        code=code(module), memory_size=settings.memory_mb, timeout=settings.timeout_s,
        reserved_concurrent_executions=settings.reserved_concurrency,
        environment={"variables": variables}, tracing_config={"mode": "Active"},
        logging_config={"log_format": "JSON", "log_group": logs.name}, tags=identity.tags(),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[policy, logs]), **extra)
    for metric in ("Errors", "Throttles"):
        storage.alarm(identity, parent, f"{role}-{metric.lower()}", namespace="AWS/Lambda", metric=metric,
                      dimensions={"FunctionName": fn.name}, topic=settings.alarm_topic_arn)
    return fn
