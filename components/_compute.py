"""What the kinds that run code share: the events they publish, and the environment their code is given."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from ._common import ContextArgs, env_var, event_outputs, grant_environment, grant_statements, physical_name


def events(args: ContextArgs) -> dict[str, pulumi.Output[dict[str, Any]]]:
    """The outputs of the events the context provides, on the bus it publishes to; a clear error without one."""
    if not args.provided("event"):
        return {}
    bus = args.publish_bus
    if bus is None:
        raise ValueError(f"provides: {args.identity.context} provides events but consumes no event bus with "
                         "access publish")
    return event_outputs(args, bus.output("name"), bus.output("arn"))


def environment(args: ContextArgs, own: dict[str, pulumi.Output[Any]]) -> dict[str, pulumi.Input[Any]]:
    """Environment variables of the context's code: where its producers' interfaces are, its own data, and the
    conventional short names its handlers read (``TABLE_NAME``, ``EVENT_BUS_NAME``, ``EVENT_DETAIL_TYPE``)."""
    env: dict[str, pulumi.Input[Any]] = {**grant_environment(args.grants), **own}
    tables = args.provided("table")
    if tables and env_var(args.identity.context, tables[0], "name") in own:
        env["TABLE_NAME"] = own[env_var(args.identity.context, tables[0], "name")]
    if args.publish_bus is not None:
        env["EVENT_BUS_NAME"] = args.publish_bus.output("name")
    published = args.provided("event")
    if published:
        env["EVENT_DETAIL_TYPE"] = published[0]
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
