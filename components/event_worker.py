"""The ``event-worker`` kind: EventBridge rules for the events the context subscribes to, delivering into an
encrypted SQS queue (with its dead-letter queue) that one Lambda function consumes, reporting the records it failed.
Its function publishes the events the context provides once it has handled what it consumes (``settings.emits``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from . import _compute, storage
from .common import ContextArgs
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
        monitor = Monitor.of(args, self)
        interfaces, own_statements, own_env = storage.provided_data(args, self, monitor)
        interfaces.update(_compute.events(args))
        queue_names = args.provided("queue") or ["work"]
        queues = {}
        for qname in queue_names:
            q = _compute.event_queue(args, self, qname, monitor=monitor, timeout_s=settings.timeout_s,
                                     max_receive_count=settings.max_receive_count,
                                     fifo=bool(args.provides.get(qname, {}).get("fifo")))
            queues[qname] = q
            if qname in args.provides:
                interfaces[qname] = pulumi.Output.all(name=q.name, url=q.url, arn=q.arn)
        work = queues[queue_names[0]]
        _compute.deliver(args, self, name, work, policy=f"{name}-work-policy",
                         fifo=bool(args.provides.get(queue_names[0], {}).get("fifo")))
        fn = function(ident, self, "worker", module="event_worker", settings=settings,
                      environment=_compute.environment(args, own_env),
                      statements=_compute.statements(args, [*own_statements, _compute.consume_statement(work)]),
                      network=args.network, code_dir=args.code_dir, monitor=monitor,
                      event_schemas=_compute.event_schemas(args))
        _compute.source(self, f"{name}-worker-source", work, fn, batch_size=settings.batch_size,
                        batching_window_s=settings.batching_window_s)
        storage.alarm(ident, self, "work-age", namespace="AWS/SQS", metric="ApproximateAgeOfOldestMessage",
                      dimensions={"QueueName": work.name}, topic=monitor.topic(), threshold=900,
                      statistic="Maximum")
        monitor.dashboard()
        self.interfaces = interfaces
        self.register_outputs({"interfaces": self.interfaces})
