"""The ``serverless-api`` kind: an API Gateway HTTP API whose routes (IAM-authorized) invoke one Lambda function,
with the tables and buckets the context provides and the events it publishes (after a write, ``settings.emits``);
the events it subscribes to reach the same function as SQS batches from a queue of its own."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from . import _compute, storage
from .common import ContextArgs
from .function import function
from .kinds import ServerlessApiSettings
from .monitoring import Monitor

ACCESS_LOG_FORMAT = json.dumps({"requestId": "$context.requestId", "ip": "$context.identity.sourceIp",
                                "routeKey": "$context.routeKey", "status": "$context.status",
                                "latency": "$context.responseLatency", "caller": "$context.identity.caller"})


@dataclass(frozen=True)
class ServerlessApiArgs(ContextArgs):
    pass


class ServerlessApi(pulumi.ComponentResource):
    """An HTTP API on Lambda. Provides ``http-api`` (url, id, execution_arn), ``table``, ``bucket`` and ``event``
    interfaces."""

    interfaces: dict[str, pulumi.Output[dict[str, Any]]]

    def __init__(self, name: str, args: ServerlessApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ode:index:ServerlessApi", name, {}, opts)
        args.validate("serverless-api")
        settings: ServerlessApiSettings = args.settings  # type: ignore[assignment]
        ident = args.identity
        child = pulumi.ResourceOptions(parent=self)
        monitor = Monitor.of(args, self)
        interfaces, own_statements, own_env = storage.provided_data(args, self, monitor)
        interfaces.update(_compute.events(args))
        # Events it subscribes to arrive through a queue of its own (with a dead-letter queue), which Lambda polls
        # for the function: a failed event is retried and then kept, not lost as an HTTP answer would lose it.
        inbox = _compute.event_queue(args, self, "events", monitor=monitor, timeout_s=settings.timeout_s) \
            if args.subscriptions else None
        consume = [_compute.consume_statement(inbox, "OwnEventQueue")] if inbox is not None else []
        fn = function(ident, self, "api", module="serverless_api", settings=settings,
                      environment=_compute.environment(args, own_env),
                      statements=_compute.statements(args, [*own_statements, *consume]), network=args.network,
                      code_dir=args.code_dir, monitor=monitor, event_schemas=_compute.event_schemas(args))
        if inbox is not None:
            _compute.deliver(args, self, name, inbox, policy=f"{name}-events-policy")
            _compute.source(self, f"{name}-events-source", inbox, fn)
        for api_name in args.provided("http-api"):
            routes = list(args.provides[api_name].get("routes") or ["ANY /{proxy+}"])
            api = aws.apigatewayv2.Api(f"{name}-{api_name}", name=ident.name(api_name, "api"), protocol_type="HTTP",
                                       tags=ident.tags(), opts=child)
            integration = aws.apigatewayv2.Integration(
                f"{name}-{api_name}-integration", api_id=api.id, integration_type="AWS_PROXY",
                integration_uri=fn.invoke_arn, payload_format_version="2.0", opts=child)
            for i, route in enumerate(routes):
                # Consumers are granted execute-api:Invoke on this API: the routes check that grant.
                aws.apigatewayv2.Route(f"{name}-{api_name}-route-{i}", api_id=api.id, route_key=route,
                                       authorization_type="AWS_IAM",
                                       target=integration.id.apply(lambda i: f"integrations/{i}"), opts=child)
            logs = storage.log_group(ident, self, f"{api_name}-access",
                                     f"/ode/{ident.project}/{ident.env}/{ident.context}/{api_name}",
                                     settings.log_retention_days)
            stage = aws.apigatewayv2.Stage(
                f"{name}-{api_name}-stage", api_id=api.id, name="$default", auto_deploy=True,
                access_log_settings={"destination_arn": logs.arn, "format": ACCESS_LOG_FORMAT},
                default_route_settings={"throttling_rate_limit": settings.throttling_rate_limit,
                                        "throttling_burst_limit": settings.throttling_burst_limit},
                tags=ident.tags(), opts=child)
            aws.lambda_.Permission(f"{name}-{api_name}-invoke", action="lambda:InvokeFunction", function=fn.name,
                                   principal="apigateway.amazonaws.com",
                                   source_arn=api.execution_arn.apply(lambda arn: f"{arn}/*/*"), opts=child)
            storage.alarm(ident, self, f"{api_name}-5xx", namespace="AWS/ApiGateway", metric="5xx",
                          dimensions={"ApiId": api.id, "Stage": "$default"}, topic=monitor.topic())
            monitor.watch(f"API {api_name}", "AWS/ApiGateway", [("Count", "Sum"), ("4xx", "Sum"), ("5xx", "Sum")],
                          {"ApiId": api.id, "Stage": "$default"})
            monitor.watch(f"latency of {api_name} (ms)", "AWS/ApiGateway", [("Latency", "p50"), ("Latency", "p99")],
                          {"ApiId": api.id, "Stage": "$default"})
            interfaces[api_name] = pulumi.Output.all(url=stage.invoke_url, id=api.id,
                                                     execution_arn=api.execution_arn)
        monitor.dashboard()
        self.interfaces = interfaces
        self.register_outputs({"interfaces": self.interfaces})
