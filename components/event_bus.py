"""The ``event-bus`` kind: an EventBridge bus with an archive for replay and a policy that lets only the
environment's own account put events on it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from .common import ContextArgs
from .kinds import EventBusSettings
from .monitoring import Monitor


@dataclass(frozen=True)
class EventBusArgs(ContextArgs):
    pass


class EventBus(pulumi.ComponentResource):
    """An event bus. Provides ``event-bus`` interfaces: ``name``, ``arn``."""

    interfaces: dict[str, pulumi.Output[dict[str, Any]]]

    def __init__(self, name: str, args: EventBusArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ode:index:EventBus", name, {}, opts)
        args.validate("event-bus")
        settings: EventBusSettings = args.settings  # type: ignore[assignment]
        ident = args.identity
        child = pulumi.ResourceOptions(parent=self)
        bus = aws.cloudwatch.EventBus(f"{name}-bus", name=ident.name("bus", "event-bus"), tags=ident.tags(),
                                      opts=ident.stateful(self))
        aws.cloudwatch.EventArchive(f"{name}-archive", name=ident.name("archive", 48), event_source_arn=bus.arn,
                                    retention_days=settings.archive_retention_days,
                                    description=f"Events of {ident.env} for replay", opts=child)
        aws.cloudwatch.EventBusPolicy(f"{name}-policy", event_bus_name=bus.name, opts=child,
                                      policy=bus.arn.apply(lambda arn: json.dumps({
                                          "Version": "2012-10-17", "Statement": [{
                                              "Sid": "OwnAccountOnly", "Effect": "Allow",
                                              "Principal": {"AWS": f"arn:{ident.partition}:iam::{ident.account}:root"},
                                              "Action": "events:PutEvents", "Resource": arn}]})))
        monitor = Monitor.of(args, self)
        monitor.watch("events on the bus", "AWS/Events", [
            ("MatchedEvents", "Sum"), ("Invocations", "Sum"), ("FailedInvocations", "Sum"),
            ("ThrottledRules", "Sum")], {"EventBusName": bus.name})
        monitor.dashboard()
        outputs = pulumi.Output.all(name=bus.name, arn=bus.arn)
        self.interfaces = {iface: outputs for iface in args.provided("event-bus")}
        self.register_outputs({"interfaces": self.interfaces})
