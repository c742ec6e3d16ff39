"""The ``event-worker`` kind: EventBridge rules for the events the context subscribes to, delivering into an
encrypted SQS queue (with its dead-letter queue) that one Lambda function consumes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from . import _compute, storage
from ._common import ACTIONS, ContextArgs, _statement
from .function import function
from .kinds import EventWorkerSettings
from .monitoring import Monitor


@dataclass(frozen=True)
class EventWorkerArgs(ContextArgs):
    def validate(self, kind: str) -> None:
        super().validate(kind)
        settings: EventWorkerSettings = self.settings  # type: ignore[assignment]
        queues = self.provided("queue")
        if queues and self.provides[queues[0]].get("fifo") and settings.batch_size > 10:
            raise ValueError(f"settings.batch_size: {settings.batch_size} is above 10, the most Lambda takes from "
                             f"a FIFO queue ({queues[0]}); allowed: 1..10")


class EventWorker(pulumi.ComponentResource):
    """Work from events. Provides ``queue`` (name, url, arn: the work queue, which other contexts may also send to),
    ``table`` and ``event`` interfaces."""

    interfaces: dict[str, pulumi.Output[dict[str, Any]]]

    def __init__(self, name: str, args: EventWorkerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ode:index:EventWorker", name, {}, opts)
        args.validate("event-worker")
        settings: EventWorkerSettings = args.settings  # type: ignore[assignment]
        ident = args.identity
        child = pulumi.ResourceOptions(parent=self)
        monitor = Monitor.of(args, self)
        interfaces, own_statements, own_env = storage.provided_data(args, self, monitor)
        interfaces.update(_compute.events(args))
        queue_names = args.provided("queue") or ["work"]
        queues = {}
        for qname in queue_names:
            q, _ = storage.queue(ident, self, qname, monitor=monitor, max_receive_count=settings.max_receive_count,
                                 fifo=bool(args.provides.get(qname, {}).get("fifo")),
                                 visibility_timeout_s=max(30, settings.timeout_s * 6))
            queues[qname] = q
            if qname in args.provides:
                interfaces[qname] = pulumi.Output.all(name=q.name, url=q.url, arn=q.arn)
        work = queues[queue_names[0]]
        fifo = bool(args.provides.get(queue_names[0], {}).get("fifo"))
        # EventBridge needs a message group for a FIFO queue; content-based deduplication is set on the queue.
        target: dict[str, Any] = {"sqs_target": {"message_group_id": ident.context}} if fifo else {}
        rules = _compute.subscribe(args, self, name, work.arn, **target)
        if rules:
            aws.sqs.QueuePolicy(f"{name}-work-policy", queue_url=work.url, opts=child, policy=pulumi.Output.all(
                work.arn, *[r.arn for r in rules]).apply(lambda arns: json.dumps({
                    "Version": "2012-10-17", "Statement": [{
                        "Sid": "FromOwnRulesOnly", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage", "Resource": arns[0],
                        "Condition": {"ArnEquals": {"aws:SourceArn": list(arns[1:])}}}]})))
        consume = work.arn.apply(lambda arn: _statement("ConsumeWork", ACTIONS[("queue", "consume")], [arn]))
        fn = function(ident, self, "worker", module="event_worker", settings=settings,
                      environment=_compute.environment(args, own_env),
                      statements=_compute.statements(args, [*own_statements, consume]), network=args.network,
                      code_dir=args.code_dir, monitor=monitor)
        aws.lambda_.EventSourceMapping(f"{name}-worker-source", event_source_arn=work.arn, function_name=fn.name,
                                       batch_size=settings.batch_size,
                                       maximum_batching_window_in_seconds=settings.batching_window_s or None,
                                       function_response_types=["ReportBatchItemFailures"], opts=child)
        storage.alarm(ident, self, "work-age", namespace="AWS/SQS", metric="ApproximateAgeOfOldestMessage",
                      dimensions={"QueueName": work.name}, topic=monitor.topic(), threshold=900,
                      statistic="Maximum")
        monitor.dashboard()
        self.interfaces = interfaces
        self.register_outputs({"interfaces": self.interfaces})
