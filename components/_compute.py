"""What the kinds that run code share: the events they publish and when, the environment their code is given, and
the wiring that delivers the events they subscribe to."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from . import storage
from .common import (
    ACTIONS,
    ContextArgs,
    _statement,
    env_var,
    event_outputs,
    grant_environment,
    grant_statements,
    physical_name,
)
from .emits import DEFAULT_ROUTE, resolve_emits
from .kinds import KINDS
from .monitoring import Monitor


def events(args: ContextArgs) -> dict[str, pulumi.Output[dict[str, Any]]]:
    """The outputs of the events the context provides, on the bus it publishes to; a clear error without one."""
    if not args.provided("event"):
        return {}
    bus = args.publish_bus
    if bus is None:
        raise ValueError(f"provides: {args.identity.context} provides events but consumes no event bus with "
                         "access publish")
    return event_outputs(args, bus.output("name"), bus.output("arn"))


def event_schemas(args: ContextArgs) -> dict[str, dict[str, Any]]:
    """The JSON Schema of each event the context provides (its contract's ``schema``; any object by default): what
    the built-in publisher checks every detail against."""
    return {name: dict(args.provides[name].get("event_schema") or {"type": "object"})
            for name in args.provided("event")}


def kind_of(args: ContextArgs) -> str:
    """The component kind whose settings ``args`` carry ("" for settings of no known kind)."""
    return next((name for name, spec in KINDS.items() if type(args.settings) is spec.settings), "")


def emissions(args: ContextArgs) -> dict[str, list[str]]:
    """Which provided events the context's code publishes at which moment: ``settings.emits`` checked against the
    contract, or its kind's default (``components.emits``). ``ValueError`` names ``settings.emits`` when wrong."""
    routes = [route for api in args.provided("http-api")
              for route in (args.provides[api].get("routes") or [DEFAULT_ROUTE])]
    return resolve_emits(kind_of(args), getattr(args.settings, "emits", None), args.provided("event"), routes,
                         [sub.event for sub in args.subscriptions])


def environment(args: ContextArgs, own: dict[str, pulumi.Output[Any]]) -> dict[str, pulumi.Input[Any]]:
    """Environment variables of the context's code: where its producers' interfaces are, its own data, and the
    conventional short names its handlers read: ``TABLE_NAME``; and, where it publishes events, ``EVENT_BUS_NAME``
    and ``EVENT_SOURCE`` (where and as whom), ``EVENT_DETAIL_TYPES`` (every event it declares, comma-separated),
    ``EVENT_EMITS`` (JSON: moment -> the events published then) and ``EVENT_DETAIL_TYPE`` (its first event)."""
    env: dict[str, pulumi.Input[Any]] = {**grant_environment(args.grants), **own}
    tables = args.provided("table")
    if tables and env_var(args.identity.context, tables[0], "name") in own:
        env["TABLE_NAME"] = own[env_var(args.identity.context, tables[0], "name")]
    if args.publish_bus is not None:
        env["EVENT_BUS_NAME"] = args.publish_bus.output("name")
    published = args.provided("event")
    if published:
        env["EVENT_DETAIL_TYPE"] = published[0]
        env["EVENT_DETAIL_TYPES"] = ",".join(published)
        env["EVENT_SOURCE"] = args.identity.context
        emits = emissions(args)
        if emits:
            env["EVENT_EMITS"] = json.dumps(emits, sort_keys=True, separators=(",", ":"))
    return env


def statements(args: ContextArgs, own: list[pulumi.Output[dict[str, Any]]]) -> pulumi.Output[list[dict[str, Any]]]:
    """The consumer grants' statements plus those on the context's own data."""
    return pulumi.Output.all(grant_statements(args.consumer_grants), *own).apply(
        lambda parts: list(parts[0]) + list(parts[1:]))


def subscribe(args: ContextArgs, parent: pulumi.Resource, name: str, target_arn: pulumi.Input[str], *,
              role_arn: pulumi.Input[str] | None = None, depends_on: list[pulumi.Resource] | None = None,
              **target: Any) -> list[aws.cloudwatch.EventRule]:
    """A rule on the bus of each event the context subscribes to (source = the producer, detail-type = the
    event), delivering to ``target_arn`` (through ``role_arn`` where the target needs one)."""
    ident = args.identity
    child = pulumi.ResourceOptions(parent=parent)
    rules = []
    for sub in args.subscriptions:
        rule_name = physical_name((ident.project, ident.env, ident.context, sub.producer, sub.event), "event-rule")
        rule = aws.cloudwatch.EventRule(f"{name}-on-{sub.producer}-{sub.event}", name=rule_name,
                                        event_bus_name=sub.bus_name, event_pattern=json.dumps(sub.pattern),
                                        tags=ident.tags(), opts=child)
        aws.cloudwatch.EventTarget(f"{name}-on-{sub.producer}-{sub.event}-target", rule=rule.name,
                                   event_bus_name=sub.bus_name, arn=target_arn, role_arn=role_arn,
                                   opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on), **target)
        rules.append(rule)
    return rules


def event_queue(args: ContextArgs, parent: pulumi.Resource, role: str, *, monitor: Monitor, timeout_s: int,
                max_receive_count: int = 5, fifo: bool = False) -> aws.sqs.Queue:
    """The queue a function takes its work from, with its dead-letter queue: its visibility timeout is six times
    the function's timeout (what AWS advises for an event source, and at least the timeout, which it requires)."""
    q, _ = storage.queue(args.identity, parent, role, monitor=monitor, max_receive_count=max_receive_count,
                         fifo=fifo, visibility_timeout_s=max(30, timeout_s * 6))
    return q


def deliver(args: ContextArgs, parent: pulumi.Resource, name: str, queue: aws.sqs.Queue, *, policy: str,
            fifo: bool = False) -> list[aws.cloudwatch.EventRule]:
    """The rules of the events the context subscribes to, delivering into ``queue``, and the queue policy that
    admits exactly those rules (EventBridge cannot send to a queue without one)."""
    # EventBridge needs a message group for a FIFO queue; content-based deduplication is set on the queue.
    target: dict[str, Any] = {"sqs_target": {"message_group_id": args.identity.context}} if fifo else {}
    rules = subscribe(args, parent, name, queue.arn, **target)
    if rules:
        aws.sqs.QueuePolicy(policy, queue_url=queue.url, opts=pulumi.ResourceOptions(parent=parent),
                            policy=pulumi.Output.all(queue.arn, *[r.arn for r in rules]).apply(_from_rules))
    return rules


def _from_rules(arns: list[str]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "FromOwnRulesOnly", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": arns[0],
        "Condition": {"ArnEquals": {"aws:SourceArn": list(arns[1:])}}}]})


def consume_statement(queue: aws.sqs.Queue, sid: str = "ConsumeWork") -> pulumi.Output[dict[str, Any]]:
    """What a function needs to take its work from ``queue`` (and nothing more)."""
    return queue.arn.apply(lambda arn: _statement(sid, ACTIONS[("queue", "consume")], [arn]))


def source(parent: pulumi.Resource, name: str, queue: aws.sqs.Queue, fn: aws.lambda_.Function, *,
           batch_size: int = 10, batching_window_s: int = 0) -> aws.lambda_.EventSourceMapping:
    """Lambda polling ``queue`` for ``fn``. The function reports the records it failed (``batchItemFailures``),
    so only they are retried and then dead-lettered, not the whole batch."""
    return aws.lambda_.EventSourceMapping(name, event_source_arn=queue.arn, function_name=fn.name,
                                          batch_size=batch_size,
                                          maximum_batching_window_in_seconds=batching_window_s or None,
                                          function_response_types=["ReportBatchItemFailures"],
                                          opts=pulumi.ResourceOptions(parent=parent))
