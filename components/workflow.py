"""The ``workflow`` kind: a Step Functions state machine whose steps are Lambda tasks, in order, with retries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from . import _compute, storage
from ._common import ContextArgs, _statement, assume_role_policy, policy_document
from .function import function
from .kinds import WorkflowSettings
from .monitoring import Monitor

#: CloudWatch Logs delivery for Step Functions: these actions accept no resource narrower than "*" (AWS's own
#: documentation for logging state machines says so).
LOG_DELIVERY_ACTIONS = ["logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:DescribeLogGroups",
                        "logs:DescribeResourcePolicies", "logs:GetLogDelivery", "logs:ListLogDeliveries",
                        "logs:PutResourcePolicy", "logs:UpdateLogDelivery"]


@dataclass(frozen=True)
class WorkflowArgs(ContextArgs):
    pass


def definition(arns: list[str], steps: list[str]) -> str:
    """The state machine: each step a Lambda task, retried on service errors, in order."""
    states: dict[str, Any] = {}
    for i, (step, arn) in enumerate(zip(steps, arns)):
        state: dict[str, Any] = {
            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": arn, "Payload.$": "$"}, "OutputPath": "$.Payload",
            "Retry": [{"ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException",
                                       "Lambda.SdkClientException"],
                       "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2}]}
        if i + 1 < len(steps):
            state["Next"] = steps[i + 1]
        else:
            state["End"] = True
        states[step] = state
    return json.dumps({"Comment": "Steps of the workflow, in order", "StartAt": steps[0], "States": states})


class Workflow(pulumi.ComponentResource):
    """A state machine. Provides ``workflow`` (name, arn) and ``event`` interfaces."""

    interfaces: dict[str, pulumi.Output[dict[str, Any]]]

    def __init__(self, name: str, args: WorkflowArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ode:index:Workflow", name, {}, opts)
        args.validate("workflow")
        settings: WorkflowSettings = args.settings  # type: ignore[assignment]
        ident = args.identity
        child = pulumi.ResourceOptions(parent=self)
        monitor = Monitor.of(args, self)
        interfaces: dict[str, pulumi.Output[dict[str, Any]]] = dict(_compute.events(args))
        env = _compute.environment(args, {})
        steps = settings.step_handlers()
        functions = [function(ident, self, step, module="workflow", settings=settings,
                              environment={**env, "STEP_NAME": step}, statements=_compute.statements(args, []),
                              network=args.network, code_dir=args.code_dir, handler=handler, monitor=monitor)
                     for step, handler in steps]
        step_names = [step for step, _ in steps]
        logs = storage.log_group(ident, self, "states", f"/aws/vendedlogs/states/{ident.name('sm', 400)}",
                                 settings.log_retention_days)
        role = aws.iam.Role(f"{name}-states-role", name=ident.name("states", "iam-role"),
                            assume_role_policy=assume_role_policy("states.amazonaws.com"), tags=ident.tags(),
                            opts=child)
        invoke = pulumi.Output.all(*[f.arn for f in functions]).apply(lambda arns: [
            _statement("InvokeSteps", ["lambda:InvokeFunction"], [*arns, *[f"{a}:*" for a in arns]]),
            _statement("LogDelivery", LOG_DELIVERY_ACTIONS, ["*"]),
            _statement("Tracing", ["xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords",
                                   "xray:PutTraceSegments"], ["*"]),  # X-Ray has no resource-level permissions
        ])
        policy = aws.iam.RolePolicy(f"{name}-states-policy", role=role.id, policy=policy_document(invoke), opts=child)
        machines = []
        for wf in args.provided("workflow") or ["workflow"]:
            machine = aws.sfn.StateMachine(
                f"{name}-{wf}", name=ident.name(wf, "state-machine"), role_arn=role.arn, type="STANDARD",
                definition=pulumi.Output.all(*[f.arn for f in functions]).apply(
                    lambda arns: definition(list(arns), step_names)),
                logging_configuration={"log_destination": logs.arn.apply(lambda a: f"{a}:*"),
                                       "include_execution_data": False, "level": "ERROR"},
                tracing_configuration={"enabled": True}, tags=ident.tags(),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))
            storage.alarm(ident, self, f"{wf}-failed", namespace="AWS/States", metric="ExecutionsFailed",
                          dimensions={"StateMachineArn": machine.arn}, topic=monitor.topic())
            monitor.watch(f"state machine {wf}", "AWS/States", [
                ("ExecutionsStarted", "Sum"), ("ExecutionsSucceeded", "Sum"), ("ExecutionsFailed", "Sum"),
                ("ExecutionsTimedOut", "Sum"), ("ExecutionThrottled", "Sum")], {"StateMachineArn": machine.arn})
            monitor.watch(f"execution time of {wf} (ms)", "AWS/States", [("ExecutionTime", "p99")],
                          {"StateMachineArn": machine.arn})
            machines.append(machine)
            if wf in args.provides:
                interfaces[wf] = pulumi.Output.all(name=machine.name, arn=machine.arn)
        if args.subscriptions:
            # Events it subscribes to start an execution of its (first) state machine, through a role that may
            # start exactly that one.
            first = machines[0]
            events_role = aws.iam.Role(f"{name}-events-role", name=ident.name("events", "iam-role"),
                                       assume_role_policy=assume_role_policy("events.amazonaws.com"),
                                       tags=ident.tags(), opts=child)
            events_policy = aws.iam.RolePolicy(
                f"{name}-events-policy", role=events_role.id, opts=child, policy=policy_document(
                    first.arn.apply(lambda arn: [_statement("StartOnEvents", ["states:StartExecution"], [arn])])))
            _compute.subscribe(args, self, name, first.arn, role_arn=events_role.arn, depends_on=[events_policy])
        monitor.dashboard()
        self.interfaces = interfaces
        self.register_outputs({"interfaces": self.interfaces})
