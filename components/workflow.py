"""The ``workflow`` kind: a Step Functions state machine whose steps are Lambda tasks, in order, with retries; the
events it provides are published when an execution succeeds or fails (``settings.emits``) by a task of its own."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from . import _compute, storage
from .common import ContextArgs, _statement, assume_role_policy, grant_statements, policy_document
from .function import function
from .kinds import WorkflowSettings
from .monitoring import Monitor

#: CloudWatch Logs delivery for Step Functions: these actions accept no resource narrower than "*" (AWS's own
#: documentation for logging state machines says so).
LOG_DELIVERY_ACTIONS = ["logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:DescribeLogGroups",
                        "logs:DescribeResourcePolicies", "logs:GetLogDelivery", "logs:ListLogDeliveries",
                        "logs:PutResourcePolicy", "logs:UpdateLogDelivery"]


#: The function that publishes a workflow's events (a step may not take its name).
PUBLISHER = "emit"
#: Errors of the Lambda service itself, retried before a step counts as failed.
SERVICE_ERRORS = ["Lambda.ServiceException", "Lambda.TooManyRequestsException", "Lambda.SdkClientException"]
#: States of the definition that are not steps (step names cannot contain spaces, so these never collide).
PUBLISH_SUCCESS, PUBLISH_FAILURE, FAILED = "publish on success", "publish on failure", "failed"


def _task(arn: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": arn, **payload},
            "Retry": [{"ErrorEquals": SERVICE_ERRORS, "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2}]}


def definition(arns: list[str], steps: list[str], publisher: str | None = None,
               emits: dict[str, list[str]] | None = None) -> str:
    """The state machine: each step a Lambda task, retried on service errors, in order. With a ``publisher`` and
    the events it ``emits`` on ``success`` and ``failure``: after the last step a task publishes the success
    events; a step that fails for good is caught by a task that publishes the failure events (with the error,
    in ``$.error``), and the execution still fails."""
    emits = emits or {}
    on_success = bool(publisher and emits.get("success"))
    on_failure = bool(publisher and emits.get("failure"))
    states: dict[str, Any] = {}
    for i, (step, arn) in enumerate(zip(steps, arns)):
        state = {**_task(arn, {"Payload.$": "$"}), "OutputPath": "$.Payload"}
        if on_failure:
            state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": PUBLISH_FAILURE}]
        if i + 1 < len(steps):
            state["Next"] = steps[i + 1]
        elif on_success:
            state["Next"] = PUBLISH_SUCCESS
        else:
            state["End"] = True
        states[step] = state
    if on_success:
        # ResultPath null: the execution's output stays what the steps made of it.
        states[PUBLISH_SUCCESS] = {**_task(str(publisher), {"Payload": {"outcome": "success", "state.$": "$"}}),
                                   "ResultPath": None, "End": True}
    if on_failure:
        states[PUBLISH_FAILURE] = {**_task(str(publisher), {"Payload": {"outcome": "failure", "state.$": "$"}}),
                                   "ResultPath": None, "Next": FAILED}
        states[FAILED] = {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    return json.dumps({"Comment": "Steps of the workflow, in order", "StartAt": steps[0], "States": states})


@dataclass(frozen=True)
class WorkflowArgs(ContextArgs):
    def validate(self, kind: str) -> None:
        super().validate(kind)
        settings: WorkflowSettings = self.settings  # type: ignore[assignment]
        if self.provided("event") and PUBLISHER in [step for step, _ in settings.step_handlers()]:
            raise ValueError(f"settings.steps: {PUBLISHER!r} names the function that publishes the workflow's "
                             "events; call the step something else")


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
        emits = _compute.emissions(args)
        steps = settings.step_handlers()
        functions = [function(ident, self, step, module="workflow", settings=settings,
                              environment={**env, "STEP_NAME": step}, statements=_compute.statements(args, []),
                              network=args.network, code_dir=args.code_dir, handler=handler, monitor=monitor)
                     for step, handler in steps]
        step_names = [step for step, _ in steps]
        # The events go out from a function of the platform's own, whatever code the steps run, allowed to put
        # events on the bus and nothing else.
        bus = args.publish_bus
        # The built-in publisher is Python, whatever runtime the team's steps use.
        builtin = settings if settings.runtime.startswith("python") else settings.model_copy(
            update={"runtime": "python3.12"})
        publisher = function(ident, self, PUBLISHER, module="workflow", settings=builtin,
                             environment={**env, "STEP_NAME": PUBLISHER},
                             statements=grant_statements([bus]), network=args.network,
                             handler="index.publish", monitor=monitor, purpose="publish-events",
                             event_schemas=_compute.event_schemas(args),
                             ) if emits and bus is not None else None
        logs = storage.log_group(ident, self, "states", f"/aws/vendedlogs/states/{ident.name('sm', 400)}",
                                 settings.log_retention_days)
        role = aws.iam.Role(f"{name}-states-role", name=ident.name("states", "iam-role"),
                            assume_role_policy=assume_role_policy("states.amazonaws.com"), tags=ident.tags(),
                            opts=child)
        invoked = [*functions, *([publisher] if publisher is not None else [])]
        invoke = pulumi.Output.all(*[f.arn for f in invoked]).apply(lambda arns: [
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
                definition=pulumi.Output.all(*[f.arn for f in invoked]).apply(
                    lambda arns: definition(list(arns[:len(step_names)]), step_names,
                                            arns[len(step_names)] if publisher is not None else None, emits)),
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
