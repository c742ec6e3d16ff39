"""Monitoring that reaches someone: each context's alarm topic and its CloudWatch dashboard.

Where the topic lives. Stacks are per context, and no stack belongs to a whole environment, so the environment's
alarm topic is made **in each context's stack**, named for the environment and the context
(``<project>-<env>-<context>-alarms``), and subscribed to what ``environments.yaml`` lists for the environment
(``alarms.email``, ``alarms.https``). Each stack stays self-contained: it deploys, heals and is destroyed with its
own topic, in any order, with no stack waiting on another for somewhere to send its alarms, and an environment made
on demand takes its topics with it when it goes. Where one place for all alarms is wanted (one confirmation per
address rather than one per context), ``alarms.topic_arn`` names an existing topic that every alarm notifies and no
topic is made; a contract's ``settings.alarm_topic_arn`` wins over both. A context with nothing to alarm on gets no
topic.

The key. The topic is encrypted with a customer-managed KMS key of its own, not the AWS-managed ``aws/sns``: AWS
services that publish to an encrypted topic (CloudWatch alarms among them) must be allowed to use its key, and the
policy of an AWS-managed key cannot be changed, so CloudWatch cannot publish to a topic under ``aws/sns`` and every
alarm would be dropped without a word. The key's policy lets the account administer it through IAM and lets
CloudWatch, for alarms of this account only, use it to publish; the topic's policy lets CloudWatch publish the same
alarms and nothing else.

The dashboard, one per context (``<project>-<env>-<context>``), shows the key metrics of what the context runs:
invocations, errors, duration and throttles of its functions, the age and depth of its queues, requests and 5xx of
its API or load balancer, executions and failures of its state machines, reads, writes and throttles of its tables,
and the rejected flows of a network. The component registers what it made with :meth:`Monitor.watch`, and
:meth:`Monitor.dashboard` writes the body once, when every name is known.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from .common import AlarmRouting, ContextArgs, Identity

#: Where a widget goes on the dashboard: two per row.
WIDGET_WIDTH, WIDGET_HEIGHT = 12, 6


@dataclass
class Widget:
    """One graph: ``metrics`` are CloudWatch dashboard metric rows (namespace, metric, dimension pairs, options)
    whose values may still be Outputs; or, with ``query``, a Logs Insights graph over ``log_group``."""

    title: str
    metrics: list[list[Any]] = field(default_factory=list)
    log_group: pulumi.Input[str] | None = None
    query: str | None = None


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


class Monitor:
    """The alarm topic and the dashboard of one context's component (``parent``)."""

    def __init__(self, identity: Identity, parent: pulumi.Resource, routing: AlarmRouting,
                 override: str | None = None):
        self.identity, self.parent, self.routing, self.override = identity, parent, routing, override
        self.widgets: list[Widget] = []
        self._topic: aws.sns.Topic | None = None
        self.subscriptions: list[aws.sns.TopicSubscription] = []

    @classmethod
    def of(cls, args: ContextArgs, parent: pulumi.Resource) -> Monitor:
        """The monitor of a component built from ``args``: the contract's ``alarm_topic_arn`` wins."""
        return cls(args.identity, parent, args.alarms, getattr(args.settings, "alarm_topic_arn", None))

    # -- the topic -------------------------------------------------------------------------------------------

    def topic(self) -> pulumi.Input[str]:
        """The ARN that this context's alarms notify: the contract's topic, the environment's existing topic, or
        the context's own topic (made on first use)."""
        if self.override:
            return self.override
        if self.routing.topic_arn:
            return self.routing.topic_arn
        if self._topic is None:
            self._topic = self._make_topic()
        return self._topic.arn

    def _make_topic(self) -> aws.sns.Topic:
        ident, parent = self.identity, self.parent
        base = f"{parent._name}-alarms"  # noqa: SLF001 - children are named after their component
        child = pulumi.ResourceOptions(parent=parent)
        key = aws.kms.Key(f"{base}-key", description=f"Alarm topic of {ident.context} in {ident.env}",
                          enable_key_rotation=True, deletion_window_in_days=30 if ident.protected else 7,
                          policy=json.dumps(key_policy(ident)), tags=ident.tags(), opts=child)
        topic = aws.sns.Topic(base, name=ident.name("alarms", "sns"), kms_master_key_id=key.arn,
                              display_name=f"ode {ident.env} {ident.context}"[:100], tags=ident.tags(), opts=child)
        aws.sns.TopicPolicy(f"{base}-policy", arn=topic.arn, opts=child,
                            policy=topic.arn.apply(lambda arn: json.dumps(topic_policy(ident, arn))))
        for protocol, endpoints in (("email", self.routing.email), ("https", self.routing.https)):
            for endpoint in endpoints:
                self.subscriptions.append(aws.sns.TopicSubscription(
                    f"{base}-{protocol}-{_short(endpoint)}", topic=topic.arn, protocol=protocol, endpoint=endpoint,
                    opts=child))
        return topic

    # -- the dashboard ---------------------------------------------------------------------------------------

    def watch(self, title: str, namespace: str, metrics: list[tuple[str, str]],
              dimensions: dict[str, pulumi.Input[str]]) -> None:
        """Add a graph of ``metrics`` (name, statistic) of one resource, found by ``dimensions``."""
        pairs: list[Any] = [x for k, v in dimensions.items() for x in (k, v)]
        self.widgets.append(Widget(title, [[namespace, metric, *pairs, {"stat": stat, "label": f"{metric} ({stat})"}]
                                           for metric, stat in metrics]))

    def watch_logs(self, title: str, log_group: pulumi.Input[str], query: str) -> None:
        """Add a Logs Insights graph of ``query`` over ``log_group``."""
        self.widgets.append(Widget(title, log_group=log_group, query=query))

    def dashboard(self) -> aws.cloudwatch.Dashboard:
        """The context's dashboard, with every graph registered so far."""
        ident, parent = self.identity, self.parent
        region = ident.region
        widgets = self.widgets

        def body(resolved: list[Any]) -> str:
            out: list[dict[str, Any]] = [{
                "type": "text", "x": 0, "y": 0, "width": 24, "height": 2,
                "properties": {"markdown": f"## {ident.context} in {ident.env}\nOwner: {ident.owner}. Alarms: "
                                           f"`{resolved[0]}`" if resolved[0] else
                                           f"## {ident.context} in {ident.env}\nOwner: {ident.owner}."}}]
            for i, (w, value) in enumerate(zip(widgets, resolved[1:])):
                where = {"x": (i % 2) * WIDGET_WIDTH, "y": 2 + (i // 2) * WIDGET_HEIGHT, "width": WIDGET_WIDTH,
                         "height": WIDGET_HEIGHT}
                if w.query is not None:
                    out.append({"type": "log", **where, "properties": {
                        "title": w.title, "region": region, "view": "timeSeries",
                        "query": f"SOURCE '{value}' | {w.query}"}})
                else:
                    out.append({"type": "metric", **where, "properties": {
                        "title": w.title, "region": region, "view": "timeSeries", "stat": "Sum", "period": 300,
                        "metrics": value}})
            return json.dumps({"widgets": out}, sort_keys=True)

        topic: pulumi.Input[str | None] = (self.override or self.routing.topic_arn
                                           or (self._topic.arn if self._topic is not None else None))
        values = [w.log_group if w.query is not None else w.metrics for w in widgets]
        return aws.cloudwatch.Dashboard(
            f"{parent._name}-dashboard", dashboard_name=ident.name("dashboard", "dashboard"),  # noqa: SLF001
            dashboard_body=pulumi.Output.all(topic, *values).apply(body),
            opts=pulumi.ResourceOptions(parent=parent))


def key_policy(ident: Identity) -> dict[str, Any]:
    """The alarm topic key's policy: the account administers it through IAM; CloudWatch may use it to publish
    this account's alarms (what SNS needs of a publisher to an encrypted topic)."""
    root = f"arn:{ident.partition}:iam::{ident.account}:root"
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "AccountAdministersThroughIam", "Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*",
         "Resource": "*"},
        {"Sid": "CloudWatchAlarmsPublish", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
         "Condition": {"StringEquals": {"aws:SourceAccount": ident.account}}},
    ]}


def topic_policy(ident: Identity, topic_arn: str) -> dict[str, Any]:
    """The alarm topic's policy: CloudWatch may publish this account's alarms, in this region, to it."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "CloudWatchAlarmsPublish", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": "sns:Publish", "Resource": topic_arn,
        "Condition": {"StringEquals": {"aws:SourceAccount": ident.account},
                      "ArnLike": {"aws:SourceArn": ident.arn("cloudwatch", "alarm:*")}}}]}
