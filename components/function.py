"""One Lambda function the way every kind wants it: its own role with exactly the statements it is given, its own
log group with retention, alarms for errors and throttles, a dead-letter queue for asynchronous invocations, and the
network's private subnets when the context attaches to one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from . import storage
from ._security_groups import egress
from .code import check_directory
from .common import (
    Grant,
    Identity,
    _statement,
    assume_role_policy,
    ec2_description,
    network_statements,
    policy_document,
)
from .kinds import FunctionSettings
from .monitoring import Monitor

HANDLERS = Path(__file__).resolve().parent / "handlers"


#: What a function with active tracing needs to send its traces: AWS rejects CreateFunction without them.
#: X-Ray has no resource-level permissions, so "*" is the only resource AWS accepts.
TRACING_ACTIONS = ("xray:PutTelemetryRecords", "xray:PutTraceSegments")


#: Modules every built-in handler package carries beside its own (publishing the context's events).
SHARED = HANDLERS / "shared"


#: The file of a built-in package that holds the JSON Schema of each event the context declares (``ode_events``
#: reads it): a file, because Lambda's environment variables share 4 KB.
EVENT_SCHEMAS = "ode_event_schemas.json"
#: The schemes a schema's ``$ref`` could be fetched through: refused, an event's schema is self-contained.
REMOTE_SCHEMES = ("http", "https", "ftp", "file", "data")


def _validator_files() -> dict[str, Path]:
    """fastjsonschema's modules, as the package carries them (Lambda's Python runtime has no JSON Schema library;
    fastjsonschema is pure Python, without dependencies)."""
    import fastjsonschema

    root = Path(fastjsonschema.__file__).resolve().parent
    return {f"fastjsonschema/{p.name}": p for p in sorted(root.glob("*.py")) if p.name != "__main__.py"}


def _refuse_remote(uri: str) -> Any:
    from fastjsonschema import JsonSchemaDefinitionException

    raise JsonSchemaDefinitionException(f"$ref {uri}: an event's schema must be self-contained (nothing is fetched)")


def check_event_schemas(schemas: Mapping[str, Mapping[str, Any]]) -> None:
    """``ValueError`` naming ``provides.<event>.schema`` when the publisher could not check details against it (a
    schema fastjsonschema cannot compile, or one that refers to another document)."""
    import re

    import fastjsonschema

    for name, schema in schemas.items():
        try:
            fastjsonschema.compile(dict(schema), handlers={s: _refuse_remote for s in REMOTE_SCHEMES},
                                   use_default=False)
        except (fastjsonschema.JsonSchemaDefinitionException, re.error, TypeError, ValueError) as exc:
            raise ValueError(f"provides.{name}.schema: {exc}") from None


def code(module: str, directory: str | Path | None = None,
         event_schemas: Mapping[str, Mapping[str, Any]] | None = None) -> pulumi.Archive:
    """The code of a function: the team's ``directory`` zipped as it is, or else the built-in handler package of
    a kind (``components/handlers/<module>/``, with ``components/handlers/shared/``, fastjsonschema, and the schema
    of each event the context declares, ``event_schemas``, as :data:`EVENT_SCHEMAS`)."""
    if directory is not None:
        check_directory(directory)  # a link leading out of it would carry that file into the zip
        return pulumi.FileArchive(str(directory))
    files = [*sorted(SHARED.glob("*.py")), *sorted((HANDLERS / module).glob("*.py"))]
    assets: dict[str, pulumi.Asset | pulumi.Archive] = {p.name: pulumi.FileAsset(str(p)) for p in files}
    if event_schemas:
        check_event_schemas(event_schemas)
        assets.update({name: pulumi.FileAsset(str(p)) for name, p in _validator_files().items()})
        assets[EVENT_SCHEMAS] = pulumi.StringAsset(json.dumps(event_schemas, sort_keys=True, indent=1))
    return pulumi.AssetArchive(assets)


def merge_environment(settings_env: dict[str, str], injected: dict[str, pulumi.Input[Any]],
                      ) -> dict[str, pulumi.Input[Any]]:
    """The team's plain variables merged with those ode injects; a clear error when one would hide the other."""
    clash = sorted(set(settings_env) & set(injected))
    if clash:
        raise ValueError(f"settings.environment.{clash[0]}: ode sets this variable itself (it names a consumed "
                         "interface or the context); choose another name")
    return {**settings_env, **injected}


#: Tag of a function the platform adds for its own work, and what it is for (``publish-events``).
PURPOSE_TAG = "ode:purpose"


def function(identity: Identity, parent: pulumi.Resource, role: str, *, module: str, settings: FunctionSettings,
             environment: dict[str, pulumi.Input[Any]], statements: pulumi.Input[list[dict[str, Any]]],
             network: Grant | None, monitor: Monitor, asynchronous: bool = False,
             code_dir: str | Path | None = None, handler: str | None = None,
             purpose: str | None = None, event_schemas: Mapping[str, Mapping[str, Any]] | None = None,
             ) -> aws.lambda_.Function:
    """A function running the team's code in ``code_dir`` (entry point ``handler``, default the settings' handler)
    or else ``components/handlers/<module>/index.py``, allowed ``statements`` and nothing else from other
    contexts. ``purpose`` tags a function of the platform's own (``publish-events``: it only puts the context's
    events on the bus), so that the rules do not expect it to use what the context consumes. ``event_schemas``
    (event -> JSON Schema) go into the built-in package, whose publisher checks every detail against them."""
    base = f"{parent._name}-{role}"  # noqa: SLF001
    opts = pulumi.ResourceOptions(parent=parent)
    fn_name = identity.name(role, "lambda")
    logs = storage.log_group(identity, parent, role, f"/aws/lambda/{fn_name}", settings.log_retention_days)
    exec_role = aws.iam.Role(f"{base}-role", name=identity.name(f"{role}-fn", "iam-role"),
                             assume_role_policy=assume_role_policy("lambda.amazonaws.com"), tags=identity.tags(),
                             opts=opts)
    dlq = None
    if asynchronous:
        dlq, _ = storage.queue(identity, parent, f"{role}-failed", max_receive_count=1, monitor=monitor)
        # What Lambda gives up on after its retries lands here: as much a failure as its own dead letters.
        storage.alarm(identity, parent, f"{role}-failed-visible", namespace="AWS/SQS",
                      metric="ApproximateNumberOfMessagesVisible", dimensions={"QueueName": dlq.name},
                      topic=monitor.topic(), statistic="Maximum")
    own = pulumi.Output.all(logs.arn, dlq.arn if dlq else None).apply(
        lambda arns: [_statement("OwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [f"{arns[0]}:*"]),
                      _statement("Tracing", TRACING_ACTIONS, ["*"])]
        + ([_statement("DeadLetters", ["sqs:SendMessage"], [arns[1]])] if arns[1] else []))
    every = pulumi.Output.all(own, statements).apply(
        lambda parts: parts[0] + parts[1] + network_statements(identity, network))
    policy = aws.iam.RolePolicy(f"{base}-policy", role=exec_role.id, policy=policy_document(every), opts=opts)
    variables = merge_environment(dict(settings.environment),
                                  {"ODE_ENV": identity.env, "ODE_CONTEXT": identity.context, **environment})
    extra: dict[str, Any] = {}
    if network is not None:
        groups = [network.output("security_group_id")]
        if network.internet:
            # The public endpoints it calls (an API Gateway API) are reached through the network's NAT: a group of
            # its own opens HTTPS to the internet for this function alone, beside the network's workloads group.
            out = aws.ec2.SecurityGroup(f"{base}-egress-sg", vpc_id=network.output("vpc_id"), tags=identity.tags(),
                                        description=ec2_description("Function: HTTPS to public endpoints through NAT"),
                                        opts=opts)
            egress(f"{base}-to-internet", parent, out.id, 443, "HTTPS to public endpoints through NAT",
                   tags=identity.tags(), cidr_ipv4="0.0.0.0/0")
            groups.append(out.id)
        extra["vpc_config"] = {"subnet_ids": network.output("private_subnet_ids"), "security_group_ids": groups}
    if dlq is not None:
        extra["dead_letter_config"] = {"target_arn": dlq.arn}
    fn = aws.lambda_.Function(
        base, name=fn_name, role=exec_role.arn, runtime=settings.runtime,
        handler=handler or (settings.handler if code_dir is not None else "index.handler"),
        code=code(module, code_dir, event_schemas), architectures=[settings.architecture],
        memory_size=settings.memory_mb, timeout=settings.timeout_s,
        reserved_concurrent_executions=settings.reserved_concurrency,
        environment={"variables": variables}, tracing_config={"mode": "Active"},
        logging_config={"log_format": "JSON", "log_group": logs.name},
        tags=identity.tags(**({PURPOSE_TAG: purpose} if purpose else {})),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[policy, logs]), **extra)
    for metric in ("Errors", "Throttles"):
        storage.alarm(identity, parent, f"{role}-{metric.lower()}", namespace="AWS/Lambda", metric=metric,
                      dimensions={"FunctionName": fn.name}, topic=monitor.topic())
    monitor.watch(f"function {role}", "AWS/Lambda", [("Invocations", "Sum"), ("Errors", "Sum"),
                                                     ("Throttles", "Sum")], {"FunctionName": fn.name})
    monitor.watch(f"duration of {role} (ms)", "AWS/Lambda", [("Duration", "Average"), ("Duration", "p99")],
                  {"FunctionName": fn.name})
    return fn
