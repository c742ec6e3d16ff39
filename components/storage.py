"""Builders of the stateful and supporting resources every kind uses: buckets, tables, queues, secrets, log groups
and alarms, each secure by default.

Encryption at rest uses AWS-managed keys (``aws/s3``, ``aws/dynamodb``, ``aws/secretsmanager``, SQS-managed SSE,
CloudWatch Logs' own encryption): a consumer granted read on a producer's table or bucket then needs no KMS grant
beside it, and EventBridge can deliver to the queues. Every resource is a child of the component that asks for it.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pulumi
import pulumi_aws as aws

from .common import Identity
from .monitoring import Monitor


def bucket(identity: Identity, parent: pulumi.Resource, role: str, *, versioning: bool = True) -> aws.s3.Bucket:
    """A private bucket: KMS encryption, every public access blocked, TLS only, versioned unless told not to."""
    name = f"{parent._name}-{role}"  # noqa: SLF001 - children are named after their component
    opts = pulumi.ResourceOptions(parent=parent)
    b = aws.s3.Bucket(name, bucket=identity.bucket_name(role), tags=identity.tags(),
                      force_destroy=not identity.protected, opts=identity.stateful(parent))
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-sse", bucket=b.id, opts=opts,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"}, "bucket_key_enabled": True}])
    access = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access", bucket=b.id, block_public_acls=True, block_public_policy=True,
        ignore_public_acls=True, restrict_public_buckets=True, opts=opts)
    aws.s3.BucketVersioning(f"{name}-versioning", bucket=b.id, opts=opts,
                            versioning_configuration={"status": "Enabled" if versioning else "Suspended"})
    aws.s3.BucketPolicy(f"{name}-tls-only", bucket=b.id, policy=b.arn.apply(tls_only_policy),
                        opts=pulumi.ResourceOptions(parent=parent, depends_on=[access]))
    return b


def tls_only_policy(arn: str) -> str:
    """A bucket policy that refuses every request not made over TLS."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})


def table(identity: Identity, parent: pulumi.Resource, role: str, *, partition_key: str = "id",
          sort_key: str | None = None, stream: bool = False) -> aws.dynamodb.Table:
    """An on-demand table with server-side KMS encryption; point-in-time recovery and deletion protection in
    protected environments."""
    attributes = [{"name": partition_key, "type": "S"}]
    if sort_key:
        attributes.append({"name": sort_key, "type": "S"})
    extra: dict[str, Any] = {"stream_enabled": True, "stream_view_type": "NEW_AND_OLD_IMAGES"} if stream else {}
    return aws.dynamodb.Table(  # type: ignore[call-overload]
        f"{parent._name}-{role}", name=identity.name(role, "dynamodb"), billing_mode="PAY_PER_REQUEST",  # noqa: SLF001
        hash_key=partition_key, range_key=sort_key, attributes=attributes,
        server_side_encryption={"enabled": True},
        point_in_time_recovery={"enabled": identity.protected},
        deletion_protection_enabled=identity.protected, tags=identity.tags(), opts=identity.stateful(parent), **extra)


def queue(identity: Identity, parent: pulumi.Resource, role: str, *, monitor: Monitor, retention_s: int = 345600,
          max_receive_count: int = 5, fifo: bool = False, visibility_timeout_s: int = 60,
          ) -> tuple[aws.sqs.Queue, aws.sqs.Queue]:
    """A queue with server-side encryption and its dead-letter queue (which keeps messages 14 days), an alarm as
    soon as a message lands in the dead-letter queue, and both on the context's dashboard."""
    suffix = ".fifo" if fifo else ""
    base = f"{parent._name}-{role}"  # noqa: SLF001
    dlq = aws.sqs.Queue(f"{base}-dlq", name=identity.name(f"{role}-dlq", 80 - len(suffix)) + suffix,
                        fifo_queue=fifo or None, sqs_managed_sse_enabled=True, message_retention_seconds=1209600,
                        tags=identity.tags(), opts=identity.stateful(parent))
    q = aws.sqs.Queue(base, name=identity.name(role, 80 - len(suffix)) + suffix, fifo_queue=fifo or None,
                      content_based_deduplication=fifo or None,
                      sqs_managed_sse_enabled=True, message_retention_seconds=retention_s,
                      visibility_timeout_seconds=visibility_timeout_s,
                      redrive_policy=dlq.arn.apply(lambda arn: json.dumps(
                          {"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count})),
                      tags=identity.tags(), opts=identity.stateful(parent))
    # A message in a dead-letter queue is work that failed for good: someone must look at it.
    alarm(identity, parent, f"{role}-dlq-visible", namespace="AWS/SQS", metric="ApproximateNumberOfMessagesVisible",
          dimensions={"QueueName": dlq.name}, topic=monitor.topic(), statistic="Maximum")
    monitor.watch(f"queue {role}", "AWS/SQS", [("ApproximateAgeOfOldestMessage", "Maximum"),
                                               ("ApproximateNumberOfMessagesVisible", "Maximum"),
                                               ("NumberOfMessagesSent", "Sum")], {"QueueName": q.name})
    monitor.watch(f"dead letters of {role}", "AWS/SQS", [("ApproximateNumberOfMessagesVisible", "Maximum")],
                  {"QueueName": dlq.name})
    return q, dlq


def secret(identity: Identity, parent: pulumi.Resource, role: str) -> aws.secretsmanager.Secret:
    """A secret, KMS-encrypted; its value is set outside the platform (never in a contract or a stack's state)."""
    return aws.secretsmanager.Secret(
        f"{parent._name}-{role}", name=f"{identity.project}/{identity.env}/{identity.context}/{role}",  # noqa: SLF001
        description=f"{role} of {identity.context} in {identity.env}",
        recovery_window_in_days=30 if identity.protected else 0, tags=identity.tags(),
        opts=identity.stateful(parent))


def log_group(identity: Identity, parent: pulumi.Resource, role: str, name: str, retention_days: int,
              ) -> aws.cloudwatch.LogGroup:
    """A log group that keeps its events ``retention_days`` (CloudWatch Logs encrypts them at rest)."""
    return aws.cloudwatch.LogGroup(f"{parent._name}-{role}-logs", name=name,  # noqa: SLF001
                                   retention_in_days=retention_days, tags=identity.tags(),
                                   opts=pulumi.ResourceOptions(parent=parent))


def alarm(identity: Identity, parent: pulumi.Resource, role: str, *, namespace: str, metric: str,
          dimensions: dict[str, pulumi.Input[str]], topic: pulumi.Input[str] | None, threshold: float = 1,
          statistic: str = "Sum") -> aws.cloudwatch.MetricAlarm:
    """An alarm when ``metric`` reaches ``threshold`` in five minutes, notifying ``topic`` (see
    :meth:`Monitor.topic`) when it goes off and when it is back to normal."""
    actions = [topic] if topic else None
    return aws.cloudwatch.MetricAlarm(
        f"{parent._name}-{role}-alarm", name=identity.name(f"{role}-alarm", "alarm"),  # noqa: SLF001
        namespace=namespace, metric_name=metric, dimensions=dimensions, statistic=statistic, period=300,
        evaluation_periods=1, threshold=threshold, comparison_operator="GreaterThanOrEqualToThreshold",
        treat_missing_data="notBreaching", alarm_actions=actions, ok_actions=actions, tags=identity.tags(),
        opts=pulumi.ResourceOptions(parent=parent))


Provided = tuple[dict[str, pulumi.Output[dict[str, Any]]], list[pulumi.Output[dict[str, Any]]],
                 dict[str, pulumi.Output[Any]]]


def provided_data(args: Any, parent: pulumi.Resource, monitor: Monitor, *, queues: bool = False) -> Provided:
    """The tables, buckets, secrets (and with ``queues``, queues) a context provides: their interface outputs,
    the statements that let the context's own code use them (read-write on its own data), and the environment
    variables naming them."""
    from .common import ACTIONS, env_var

    identity: Identity = args.identity
    interfaces: dict[str, pulumi.Output[dict[str, Any]]] = {}
    statements: list[pulumi.Output[dict[str, Any]]] = []
    env: dict[str, pulumi.Output[Any]] = {}
    for name, iface in args.provides.items():
        kind = iface.get("kind")
        if kind == "table":
            t = table(identity, parent, name, partition_key=iface.get("partition_key") or "id",
                      sort_key=iface.get("sort_key"))
            monitor.watch(f"table {name}", "AWS/DynamoDB", [
                ("ConsumedReadCapacityUnits", "Sum"), ("ConsumedWriteCapacityUnits", "Sum"),
                ("ReadThrottleEvents", "Sum"), ("WriteThrottleEvents", "Sum")], {"TableName": t.name})
            interfaces[name] = pulumi.Output.all(name=t.name, arn=t.arn)
            statements.append(t.arn.apply(functools.partial(_own, name, ACTIONS[("table", "read-write")],
                                                            "/index/*")))
            env[env_var(identity.context, name, "name")] = t.name
        elif kind == "bucket":
            b = bucket(identity, parent, name, versioning=getattr(args.settings, "versioning", True))
            interfaces[name] = pulumi.Output.all(name=b.bucket, arn=b.arn)
            statements.append(b.arn.apply(functools.partial(_own, name, ACTIONS[("bucket", "read-write")],
                                                            "/*")))
            env[env_var(identity.context, name, "name")] = b.bucket
        elif kind == "queue" and queues:
            q, _ = queue(identity, parent, name, monitor=monitor, fifo=bool(iface.get("fifo")),
                         retention_s=getattr(args.settings, "queue_retention_s", 345600))
            interfaces[name] = pulumi.Output.all(name=q.name, url=q.url, arn=q.arn)
        elif kind == "secret":
            s = secret(identity, parent, name)
            interfaces[name] = pulumi.Output.all(name=s.name, arn=s.arn)
    return interfaces, statements, env


def _own(name: str, actions: tuple[str, ...], below: str, arn: str) -> dict[str, Any]:
    """The statement that lets a context's code use its own ``arn`` and what is below it (objects, indexes)."""
    from .common import _statement

    return _statement(f"Own{name}", list(actions), [arn, f"{arn}{below}"])
