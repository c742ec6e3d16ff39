"""The sample deployed into moto and driven as traffic would drive it, until every event its contracts declare has
been published by its producer's code and received by every subscriber.

The simulated engine records every stack of the sample; ``tests/aws_deploy.py`` creates what it recorded in moto
(in-process); then this test plays the parts of AWS that moto does not play, reading only what was deployed:

- API Gateway: a request (payload 2.0) to each route whose function publishes events (its ``EVENT_EMITS``), found
  through the deployed route and integration, to a function whose resource policy admits API Gateway;
- EventBridge: moto matches the rules and delivers to SQS targets; taught here to refuse a queue whose policy does not
  admit the rule (as AWS does) and to start a Step Functions execution through the target's role (which moto does
  not do);
- Lambda's event source mappings: a queue's messages go to its function as an SQS batch; the records reported in
  ``batchItemFailures`` (with ``ReportBatchItemFailures``) stay on the queue, the others are deleted;
- Step Functions: the deployed definition, state by state (Lambda tasks, Catch, Fail, Succeed).

Each function runs its deployed package (unzipped) with the environment the component set, against moto. The checks
walk the contracts, not a list of names: every provided event must be put on the bus by its producer's code, with a
detail its contract's schema accepts (whoever's code published it: the team's, or ode's built-in handlers), and
every ``consumes`` edge of kind ``event`` must reach its consumer's code and be handled there. A secret gets a value,
as the team that owns it would put one there (the platform never does). Bounded: one process,
no network, no sleeping; a flow that does not settle in a few rounds fails.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import os
import re
import sys
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import jsonschema
import pytest
from moto import mock_aws
from moto.events.models import Rule
from moto.iam.models import iam_backends
from moto.sqs.models import sqs_backends
from moto.stepfunctions.models import stepfunctions_backends

from components.workflow import PUBLISH_SUCCESS
from ode.contracts import ContractLibrary, load_library

from .aws_deploy import Deployment, deploy_stack, zipped
from .conftest import SAMPLE
from .test_aws_shapes import recorded

ENV = "dev"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
#: Rounds of delivery (executions, then every queue) after which a flow that still moves is a loop.
MAX_ROUNDS = 20
#: How a flow test plants a failed payment: the error the last step of each workflow raises.
FAULT = "Declined"


class FlowError(AssertionError):
    """What the flow found wrong, one line per event or subscription."""


# -- IAM and resource policies, as AWS reads them for these calls --------------------------------------------------


def _statements(document: str | dict[str, Any] | None) -> list[dict[str, Any]]:
    if not document:
        return []
    if isinstance(document, str):
        text = document if document.lstrip().startswith("{") else urllib.parse.unquote(document)
        document = json.loads(text)
    found = document.get("Statement", [])  # type: ignore[union-attr]
    return [found] if isinstance(found, dict) else list(found)


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def allows(documents: list[Any], action: str, resource: str, *, service: str | None = None,
           source_arn: str | None = None) -> bool:
    """Whether the policy ``documents`` allow ``action`` on ``resource`` (for the AWS ``service`` principal, from
    ``source_arn``) and deny it nowhere. Conditions other than ``aws:SourceArn`` never match."""
    allowed = False
    for st in (s for d in documents for s in _statements(d)):
        if not any(fnmatchcase(action.lower(), a.lower()) for a in _listed(st.get("Action"))):
            continue
        if not any(fnmatchcase(resource, r) for r in _listed(st.get("Resource", "*"))):
            continue
        if service is not None:
            principal = st.get("Principal")
            if principal != "*" and service not in _listed((principal or {}).get("Service")):
                continue
        matched = True
        for operator, keys in (st.get("Condition") or {}).items():
            for key, values in keys.items():
                if key.lower() != "aws:sourcearn" or operator not in ("ArnEquals", "ArnLike", "StringEquals",
                                                                       "StringLike"):
                    matched = False
                elif not any(fnmatchcase(source_arn or "", v) for v in _listed(values)):
                    matched = False
        if not matched:
            continue
        if st.get("Effect") == "Deny":
            return False
        allowed = True
    return allowed


# -- what was deployed -------------------------------------------------------------------------------------------


@dataclass
class Function:
    """A deployed function: where its code was unpacked, its entry point, the environment Lambda gives it."""

    context: str
    name: str
    arn: str
    role: str
    handler: str
    environment: dict[str, str]
    folder: Path
    entry: Callable[..., Any] | None = None

    @property
    def emits(self) -> dict[str, list[str]]:
        return dict(json.loads(self.environment.get("EVENT_EMITS") or "{}"))


@dataclass(frozen=True)
class Emitted:
    """An event put on a bus while ``emitter``'s code ran."""

    emitter: str
    function: str
    source: str
    detail_type: str
    detail: Any


@dataclass(frozen=True)
class Receipt:
    """An event handed to ``consumer``'s code, and whether that code handled it."""

    consumer: str
    source: str
    detail_type: str
    ok: bool
    why: str = ""


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    saved = os.environ.copy()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _path(data: Any, path: str) -> Any:
    """A JSONPath of the simple kind the definitions use: ``$`` or ``$.a.b``."""
    if path == "$":
        return data
    if not path.startswith("$."):
        raise AssertionError(f"unsupported JSONPath {path!r}")
    for part in path[2:].split("."):
        data = data[part]
    return data


def _set_path(data: Any, path: str | None, value: Any) -> Any:
    """Step Functions' ResultPath: ``$`` replaces, ``None`` (null) discards the result, ``$.a`` sets one field."""
    if path is None:
        return data
    if path == "$":
        return value
    out = copy.deepcopy(data)
    node = out
    parts = path[2:].split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _template(params: Any, data: Any) -> Any:
    """Parameters with ``key.$`` paths resolved against the state's input."""
    if isinstance(params, dict):
        return {(k[:-2] if k.endswith(".$") else k): (_path(data, v) if k.endswith(".$") else _template(v, data))
                for k, v in params.items()}
    return params


def _refusal(detail: Any, schema: dict[str, Any]) -> str:
    """Why ``schema`` refuses ``detail`` (the property and what is wrong with it), or "" when it accepts it."""
    error = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(schema)(schema).iter_errors(detail))
    if error is None:
        return ""
    where = ".".join(str(p) for p in error.absolute_path)
    return f"{error.message} (at {where})" if where else error.message


def sample(schema: dict[str, Any], name: str, n: int) -> Any:
    """A value a JSON Schema accepts, made up for traffic."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {k: sample(v, k, n) for k, v in (schema.get("properties") or {}).items()}
    return {"number": 42.5, "integer": 42, "boolean": True, "array": []}.get(str(kind), f"flow-{name}-{n}")


class Flow:
    """The sample's dev environment deployed into moto, and AWS's part played around it (see the module)."""

    def __init__(self, library: ContractLibrary, deployment: Deployment, recorded_stacks: dict[str, Any],
                 root: Path):
        self.library, self.d = library, deployment
        self.contexts = [c for c, ctx in library.contexts.items() if ctx.deployed_in(ENV)]
        self.functions: dict[str, Function] = {}
        for context in self.contexts:
            for r in recorded_stacks[context].resources:
                if r.type != "aws:lambda/function:Function":
                    continue
                name = r.inputs["name"]
                config = self.client("lambda").get_function_configuration(FunctionName=name)
                folder = root / name
                with zipfile.ZipFile(io.BytesIO(zipped(r.inputs["code"]))) as package:
                    package.extractall(folder)
                self.functions[config["FunctionArn"]] = Function(
                    context, name, config["FunctionArn"], config["Role"].rsplit("/", 1)[-1], config["Handler"],
                    dict(config["Environment"]["Variables"]), folder)
        self.machines = {m["stateMachineArn"]: m for m in self.client("stepfunctions").list_state_machines()[
            "stateMachines"]}
        #: state machine -> the context that deployed it
        self.owner = {arn: next(c for c in self.contexts for r in recorded_stacks[c].resources
                                if r.type == "aws:sfn/stateMachine:StateMachine" and r.inputs["name"] == m["name"])
                      for arn, m in self.machines.items()}
        self.mappings = self.client("lambda").list_event_source_mappings()["EventSourceMappings"]
        # moto would hand each message sent to a mapped queue to Docker (there is none here), counting a receive each
        # time; this test plays Lambda's poller instead.
        for queue in sqs_backends[deployment.real_account][deployment.region].queues.values():
            queue.lambda_event_source_mappings.clear()
        self.emitted: list[Emitted] = []
        self.received: list[Receipt] = []
        self.defects: list[str] = []
        self.pending: list[tuple[str, dict[str, Any]]] = []
        #: (state machine, state) whose task fails, as a declined payment does
        self.faults: set[tuple[str, str]] = set()
        #: tap queue URL -> the bus it listens to
        self.taps = {self._tap(bus["Name"]): bus["Arn"] for bus in self.client("events").list_event_buses()[
            "EventBuses"] if bus["Name"] != "default"}

    def client(self, service: str) -> Any:
        return self.d.client(service)

    # -- the bus, as seen from a tap of this test's own ------------------------------------------------------------

    def _tap(self, bus: str) -> str:
        """A rule on ``bus`` matching every event of the account, into a queue of this test's own."""
        sqs, events = self.client("sqs"), self.client("events")
        url = sqs.create_queue(QueueName=f"flow-tap-{bus}"[:80])["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule = events.put_rule(Name=f"flow-tap-{bus}"[:64], EventBusName=bus,
                               EventPattern=json.dumps({"account": [self.d.real_account]}))["RuleArn"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Statement": [{
            "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": arn, "Condition": {"ArnEquals": {"aws:SourceArn": rule}}}]})})
        events.put_targets(Rule=f"flow-tap-{bus}"[:64], EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
        return str(url)

    def _collect(self, fn: Function) -> None:
        """The events put on a bus while ``fn`` ran: its context's code published them, with its role."""
        sqs = self.client("sqs")
        for url, bus in self.taps.items():
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                for m in messages:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                    event = json.loads(m["Body"])
                    self.emitted.append(Emitted(fn.context, fn.name, event["source"], event["detail-type"],
                                                event["detail"]))
                    if not allows(self.role_policies(fn.role), "events:PutEvents", bus):
                        self.defects.append(f"{fn.name} published {event['detail-type']} but its role {fn.role} "
                                            f"may not events:PutEvents on {bus}")

    def role_policies(self, role: str) -> list[Any]:
        return list(iam_backends[self.d.real_account]["global"].get_role(role).policies.values())

    # -- Lambda -------------------------------------------------------------------------------------------------

    def _entry(self, fn: Function) -> Callable[..., Any]:
        """The function's entry point, imported from its own package as Lambda would (its modules are its own:
        another package's module of the same name is not reused)."""
        if fn.entry is None:
            module_name, attr = fn.handler.rsplit(".", 1)
            own = {p.stem for p in fn.folder.glob("*.py")}
            for name in own:
                sys.modules.pop(name, None)
            sys.path.insert(0, str(fn.folder))
            try:
                with environ(self._lambda_env(fn)):
                    spec = importlib.util.spec_from_file_location(f"flow_{fn.name}_{module_name}",
                                                                  fn.folder / f"{module_name}.py")
                    assert spec and spec.loader, f"{fn.name}: no module {module_name} in its package"
                    module = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(fn.folder))
                for name in own:
                    sys.modules.pop(name, None)
            fn.entry = getattr(module, attr)
        return fn.entry

    def _lambda_env(self, fn: Function) -> dict[str, str]:
        return {**fn.environment, "AWS_REGION": self.d.region, "AWS_DEFAULT_REGION": self.d.region,
                "AWS_LAMBDA_FUNCTION_NAME": fn.name}

    def invoke(self, fn: Function, event: Any) -> Any:
        """Run ``fn``'s code on ``event`` with its environment; what it published is collected as its context's."""
        entry = self._entry(fn)
        try:
            with environ(self._lambda_env(fn)):
                return entry(copy.deepcopy(event), None)
        finally:
            self._collect(fn)

    # -- API Gateway --------------------------------------------------------------------------------------------

    def requests(self, n: int) -> None:
        """One request to each route whose function publishes events after it, through what was deployed."""
        api = self.client("apigatewayv2")
        routes = {(a["ApiId"], r["RouteKey"]): (a, r) for a in api.get_apis()["Items"]
                  for r in api.get_routes(ApiId=a["ApiId"])["Items"]}
        for fn in self.functions.values():
            if self.library.contexts[fn.context].component != "serverless-api":
                continue
            for route_key, events in fn.emits.items():
                found = [(a, r) for (_, key), (a, r) in routes.items() if key == route_key
                         and fn.arn in api.get_integration(ApiId=a["ApiId"], IntegrationId=r["Target"].split("/")[-1])[
                             "IntegrationUri"]]
                if not found:
                    self.defects.append(f"{fn.context}: no deployed route {route_key} leads to {fn.name}")
                    continue
                api_id = found[0][0]["ApiId"]
                execution = f"arn:aws:execute-api:{self.d.region}:{self.d.real_account}:{api_id}"
                policy = json.loads(self.client("lambda").get_policy(FunctionName=fn.name)["Policy"])
                method, path = route_key.split(" ", 1)
                if not allows([policy], "lambda:InvokeFunction", fn.arn, service="apigateway.amazonaws.com",
                              source_arn=f"{execution}/$default/{method}{path}"):
                    self.defects.append(f"{fn.context}: API Gateway may not invoke {fn.name} for {route_key}")
                    continue
                self.invoke(fn, self._request(fn, route_key, events, api_id, n))

    def _request(self, fn: Function, route_key: str, events: list[str], api_id: str, n: int) -> dict[str, Any]:
        """An HTTP API request (payload 2.0) whose body the route's request schema, or else the schemas of the
        events it emits, accept."""
        method, path = route_key.split(" ", 1)
        ctx = self.library.contexts[fn.context]
        body: dict[str, Any] = {}
        for name in events:
            body.update(sample(ctx.provides[name].event_schema, name, n))  # type: ignore[union-attr]
        for iface in ctx.provides.values():
            payload = getattr(iface, "payloads", {}).get(route_key)
            if payload is not None and payload.request:
                body.update(sample(payload.request, "body", n))
        params = {p: f"flow-{p}-{n}" for p in re.findall(r"{(\w+)\+?}", path)}
        raw = re.sub(r"{(\w+)\+?}", lambda m: params[m.group(1)], path)
        http_method = "POST" if method == "ANY" else method
        return {"version": "2.0", "routeKey": route_key, "rawPath": raw, "rawQueryString": "",
                "headers": {"content-type": "application/json"}, "pathParameters": params or None,
                "requestContext": {"accountId": self.d.real_account, "apiId": api_id, "routeKey": route_key,
                                   "stage": "$default", "requestId": f"flow-{n}",
                                   "http": {"method": http_method, "path": raw, "protocol": "HTTP/1.1",
                                            "sourceIp": "127.0.0.1", "userAgent": "flow-test"}},
                "body": json.dumps(body), "isBase64Encoded": False}

    # -- EventBridge's deliveries, as AWS makes them ------------------------------------------------------------

    @contextlib.contextmanager
    def eventbridge(self) -> Iterator[None]:
        """moto's rules, with what AWS also does: a queue whose policy does not admit the rule gets nothing, and a
        state machine target starts an execution through the target's role."""
        original = Rule.send_to_targets
        flow = self

        def send(rule: Rule, event: dict[str, Any], transform_input: bool = True) -> None:
            if not rule.event_pattern.matches_event(event):
                return
            kept = []
            for target in rule.targets:
                service = target["Arn"].split(":")[2]
                if service == "sqs":
                    queue = sqs_backends[flow.d.real_account][flow.d.region].get_queue(target["Arn"].split(":")[-1])
                    if allows([queue.policy], "sqs:SendMessage", target["Arn"], service="events.amazonaws.com",
                              source_arn=rule.arn):
                        kept.append(target)
                    else:
                        flow.defects.append(f"rule {rule.name} cannot deliver to {target['Arn']}: the queue's "
                                            "policy does not admit it")
                elif service == "states":
                    flow._start(rule, target, event)
                else:
                    kept.append(target)
            every = rule.targets
            rule.targets = kept
            try:
                original(rule, event, transform_input)
            finally:
                rule.targets = every

        with mock.patch.object(Rule, "send_to_targets", send):
            yield

    def _start(self, rule: Rule, target: dict[str, Any], event: dict[str, Any]) -> None:
        role = target.get("RoleArn", "").rsplit("/", 1)[-1]
        iam = iam_backends[self.d.real_account]["global"]
        trusted = role and allows([iam.get_role(role).assume_role_policy_document], "sts:AssumeRole", "*",
                                  service="events.amazonaws.com")
        if not trusted or not allows(self.role_policies(role), "states:StartExecution", target["Arn"]):
            self.defects.append(f"rule {rule.name} cannot start {target['Arn']}: role {role or 'none'} may not")
            return
        payload = copy.deepcopy(event)
        if isinstance(payload.get("time"), int | float):
            payload["time"] = datetime.fromtimestamp(payload["time"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        payload.pop("ingestion-time", None)
        stepfunctions_backends[self.d.real_account][self.d.region].start_execution(
            target["Arn"], name="", execution_input=json.dumps(payload))
        self.pending.append((target["Arn"], payload))

    # -- Lambda's event source mappings -------------------------------------------------------------------------

    def _poll(self, mapping: dict[str, Any]) -> bool:
        """One batch from a mapping's queue to its function; False when the queue had nothing."""
        sqs = self.client("sqs")
        queue_arn = mapping["EventSourceArn"]
        url = sqs.get_queue_url(QueueName=queue_arn.split(":")[-1])["QueueUrl"]
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, mapping["BatchSize"]),
                                       AttributeNames=["All"]).get("Messages", [])
        if not messages:
            return False
        fn = self.functions[mapping["FunctionArn"]]
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
            if not allows(self.role_policies(fn.role), action, queue_arn):
                self.defects.append(f"{fn.name} reads {queue_arn} but its role may not {action}")
        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                    "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": self.d.region}
                   for m in messages]
        lost: set[str] = set()  # deleted by Lambda, yet not handled
        try:
            result = self.invoke(fn, {"Records": records})
        except Exception as exc:  # noqa: BLE001 - a function error: Lambda retries the whole batch
            failed, why = {r["messageId"] for r in records}, f"{type(exc).__name__}: {exc}"
        else:
            reports = "ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or [])
            failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])} if reports else set()
            why = "reported in batchItemFailures"
            if isinstance(result, dict) and "statusCode" in result:
                # Lambda counts any answer as success and deletes the batch: those events are lost.
                self.defects.append(f"{fn.name} answered an SQS batch with HTTP status {result['statusCode']}")
                lost, why = {r["messageId"] for r in records}, f"answered with HTTP {result['statusCode']}"
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            body = json.loads(m["Body"])
            if isinstance(body, dict) and "detail-type" in body:
                ok = m["MessageId"] not in failed | lost
                self.received.append(Receipt(fn.context, body["source"], body["detail-type"], ok, "" if ok else why))
        return True

    # -- Step Functions -----------------------------------------------------------------------------------------

    def _execute(self, machine_arn: str, event: dict[str, Any]) -> None:
        """An execution of the deployed definition, started by ``event``."""
        described = self.client("stepfunctions").describe_state_machine(stateMachineArn=machine_arn)
        definition = json.loads(described["definition"])
        may_invoke = self.role_policies(described["roleArn"].rsplit("/", 1)[-1])
        context = self.owner[machine_arn]
        data: Any = event
        name = definition["StartAt"]
        first = True
        for _ in range(100):
            state = definition["States"][name]
            if state["Type"] in ("Succeed", "Fail"):
                return
            if state["Type"] != "Task" or state["Resource"] != LAMBDA_INVOKE:
                raise AssertionError(f"{machine_arn}: state {name!r} is a {state['Type']} {state.get('Resource')}, "
                                     "which this flow does not run")
            params = _template(state["Parameters"], data)
            fn = self.functions[params["FunctionName"]]
            if not allows(may_invoke, "lambda:InvokeFunction", fn.arn):
                self.defects.append(f"{machine_arn}: its role may not invoke {fn.name} (state {name!r})")
                return
            error = None
            planted = (machine_arn, name) in self.faults
            try:
                if planted:
                    raise RuntimeError(f"a failure planted in {name} by the flow test")
                result = {"Payload": self.invoke(fn, params["Payload"]), "StatusCode": 200}
            except Exception as exc:  # noqa: BLE001 - a task's error, which the state's Catch may handle
                error = {"Error": FAULT if planted else type(exc).__name__,
                         "Cause": json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__})}
            if first:
                self.received.append(Receipt(context, event.get("source", ""), event.get("detail-type", ""),
                                             error is None or planted, json.dumps(error or "")))
                first = False
            if error is not None:
                catch = next((c for c in state.get("Catch", []) if {"States.ALL", error["Error"]}
                              & set(c["ErrorEquals"])), None)
                if catch is None:
                    if not planted:
                        cause = json.loads(error["Cause"])
                        self.defects.append(f"{machine_arn}: state {name!r} failed, and so did the execution: "
                                            f"{cause['errorType']}: {cause['errorMessage']}")
                    return
                data, name = _set_path(data, catch.get("ResultPath", "$"), error), catch["Next"]
                continue
            data = _set_path(data, state.get("ResultPath", "$"), result)
            if "OutputPath" in state:
                data = _path(data, state["OutputPath"])
            if state.get("End"):
                return
            name = state["Next"]
        raise AssertionError(f"{machine_arn}: more than 100 states in one execution")

    # -- the whole flow -----------------------------------------------------------------------------------------

    def settle(self) -> None:
        """Deliver until nothing moves: executions started, then one batch from every mapped queue, in rounds."""
        for _ in range(MAX_ROUNDS):
            moved = False
            while self.pending:
                self._execute(*self.pending.pop(0))
                moved = True
            for mapping in self.mappings:
                moved = self._poll(mapping) or moved
            if not moved:
                return
        raise AssertionError(f"the flow still moves after {MAX_ROUNDS} rounds: events keep causing events")

    def run(self, n: int) -> None:
        """Traffic: one request to each publishing route, then everything it causes."""
        with self.eventbridge():
            self.requests(n)
            self.settle()

    def plant_failures(self) -> list[str]:
        """Make the last step of every workflow fail from now on, as a declined payment does; the events the
        workflows publish on failure (what their functions were told: ``EVENT_EMITS``)."""
        failing = []
        for arn in self.machines:
            definition = json.loads(self.client("stepfunctions").describe_state_machine(
                stateMachineArn=arn)["definition"])
            self.faults |= {(arn, name) for name, s in definition["States"].items() if s.get("Next") == PUBLISH_SUCCESS}
            failing += sorted({e for fn in self.functions.values() if fn.context == self.owner[arn]
                               for e in fn.emits.get("failure", [])})
        return failing

    def problems(self) -> list[str]:
        """Every declared event its producer's code did not publish, every event subscription whose consumer's code
        never handled it, and every defect met on the way."""
        out = list(dict.fromkeys(self.defects))
        for context in self.contexts:
            ctx = self.library.contexts[context]
            for name, iface in ctx.provides.items():
                if iface.kind != "event":
                    continue
                on_bus = [e for e in self.emitted if (e.source, e.detail_type) == (context, name)]
                if not on_bus:
                    out.append(f"{context}.{name}: emitted by nobody")
                elif not [e for e in on_bus if e.emitter == context]:
                    out.append(f"{context}.{name}: put on the bus by {on_bus[0].emitter}'s code, not {context}'s")
                # every detail on the bus, whoever's code published it, is what the contract's schema says
                refused = next((r for r in (_refusal(e.detail, iface.event_schema)  # type: ignore[attr-defined]
                                            for e in on_bus) if r), None)
                if refused:
                    out.append(f"{context}.{name}: a detail its schema refuses: {refused}")
            for link in self.library.links(context):
                if link.kind != "event" or link.producer not in self.contexts:
                    continue
                got = [r for r in self.received if (r.consumer, r.source, r.detail_type) == (
                    context, link.producer, link.interface)]
                if not got:
                    out.append(f"{context} <- {link.producer}.{link.interface}: never received")
                elif not any(r.ok for r in got):
                    out.append(f"{context} <- {link.producer}.{link.interface}: received, but the code of {context} "
                               f"failed it ({got[0].why})")
        return out

    def check(self) -> None:
        found = self.problems()
        if found:
            raise FlowError("\n".join(found))


@pytest.fixture
def flow(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flow]:
    """The sample's dev environment, deployed into moto; its functions unpacked into a directory of their own."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    order, engine = recorded(tmp_path_factory.mktemp("recording"), ENV)
    library = load_library(SAMPLE)
    place = library.environment(ENV)
    with mock_aws():
        deployment = Deployment(account=place.account, region=place.region)
        for context in order:
            deploy_stack(deployment, engine.results[context].resources)
        secrets = deployment.client("secretsmanager")
        for secret in secrets.list_secrets()["SecretList"]:
            secrets.put_secret_value(SecretId=secret["ARN"], SecretString=f"flow-test-value-of-{secret['Name']}")
        yield Flow(library, deployment, engine.results, tmp_path_factory.mktemp("functions"))


@pytest.mark.slow
def test_every_declared_event_is_emitted_by_its_producer_and_received_by_every_subscriber(flow: Flow) -> None:
    flow.run(1)
    failure_events = flow.plant_failures()
    assert failure_events, "a workflow of the sample publishes an event when it fails"
    assert not [e for e in flow.emitted if e.detail_type in failure_events], "nothing failed, yet"
    flow.run(2)
    failed = [e for e in flow.emitted if e.detail_type in failure_events]
    assert {e.detail_type for e in failed} == set(failure_events)
    assert all(FAULT in e.detail["reason"] for e in failed)  # why, for whoever hears it
    flow.check()
    # what the events did where they arrived: the order placed by the first request is paid, then shipped
    orders = [fn for fn in flow.functions.values() if fn.context == "orders"][0]
    table = orders.environment["ORDERS_ORDERS_TABLE_NAME"]
    item = boto3.resource("dynamodb", region_name=flow.d.region).Table(table).get_item(
        Key={"order_id": "flow-order_id-1"})["Item"]
    assert item["status"] == "shipped"


@pytest.mark.slow
def test_an_event_nobody_publishes_and_the_subscriptions_it_starves_are_named(flow: Flow) -> None:
    """A planted defect: the workflow's publisher stops publishing."""
    for fn in flow.functions.values():
        if fn.handler == "index.publish":
            fn.entry = lambda event, context: {"published": []}
    flow.run(1)
    flow.plant_failures()
    flow.run(2)
    with pytest.raises(FlowError) as caught:
        flow.check()
    lines = str(caught.value).splitlines()
    for expected in ("payments.PaymentCaptured: emitted by nobody", "payments.PaymentFailed: emitted by nobody",
                     "fulfilment <- payments.PaymentCaptured: never received",
                     "orders <- payments.PaymentCaptured: never received",
                     "notifications <- payments.PaymentFailed: never received",
                     # nothing captured, nothing shipped: the defect starves the next producer too
                     "fulfilment.OrderShipped: emitted by nobody"):
        assert expected in lines, lines
    assert "orders.OrderPlaced: emitted by nobody" not in lines


@pytest.mark.slow
def test_a_subscription_whose_queue_refuses_its_rule_is_named(flow: Flow) -> None:
    """A planted defect: one subscriber's queue policy no longer admits the rules that deliver to it."""
    sqs = flow.client("sqs")
    worker = next(m for m in flow.mappings if flow.functions[m["FunctionArn"]].context == "notifications")
    url = sqs.get_queue_url(QueueName=worker["EventSourceArn"].split(":")[-1])["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})
    flow.run(1)
    with pytest.raises(FlowError) as caught:
        flow.check()
    lines = str(caught.value).splitlines()
    assert "notifications <- orders.OrderPlaced: never received" in lines
    assert "notifications <- fulfilment.OrderShipped: never received" in lines
    assert any(line.startswith("rule ") and "the queue's policy does not admit it" in line for line in lines)
    assert "fulfilment <- payments.PaymentCaptured: never received" not in lines


@pytest.mark.slow
def test_a_handler_that_answers_events_as_requests_is_named(flow: Flow) -> None:
    """A planted defect: the API function of a subscriber answers the SQS batches it is given as if they were
    HTTP requests (400), which Lambda counts as success."""
    api = next(fn for fn in flow.functions.values() if fn.context == "orders")
    entry = flow._entry(api)  # noqa: SLF001 - the deployed code, wrapped

    def as_request(event: dict[str, Any], context: Any) -> Any:
        if "Records" in event:
            return {"statusCode": 400, "body": "{}"}
        return entry(event, context)

    api.entry = as_request
    flow.run(1)
    with pytest.raises(FlowError) as caught:
        flow.check()
    lines = str(caught.value).splitlines()
    assert f"{api.name} answered an SQS batch with HTTP status 400" in lines
    assert "orders <- payments.PaymentCaptured: received, but the code of orders failed it (answered with HTTP " \
           "400)" in lines


def _hand_on_a_total(flow: Flow) -> None:
    """A planted defect: payments' last step hands on the order's ``total`` where PaymentCaptured requires
    ``amount``."""
    capture = next(fn for fn in flow.functions.values() if fn.context == "payments" and fn.name.endswith("-capture"))
    entry = flow._entry(capture)  # noqa: SLF001 - the deployed code, wrapped

    def renamed(event: dict[str, Any], context: Any) -> Any:
        out = dict(entry(event, context))
        out["total"] = out.pop("amount")
        return out

    capture.entry = renamed


@pytest.mark.slow
def test_a_detail_its_schema_refuses_is_named_whoever_published_it(flow: Flow, monkeypatch: pytest.MonkeyPatch,
                                                                   ) -> None:
    """Planted: a payment handed on without its amount, and ode's publisher (payments has no publishing code of its
    own) made to skip its check, as a publisher without one would; and a contract whose schema changed under the
    team's code (fulfilment's OrderShipped now requires a tracking number its code does not send)."""
    _hand_on_a_total(flow)
    publisher = next(fn for fn in flow.functions.values() if fn.handler == "index.publish")
    monkeypatch.setattr(flow._entry(publisher).__globals__["ode_events"], "check",  # noqa: SLF001
                        lambda detail_types, detail: None)
    shipped = flow.library.contexts["fulfilment"].provides["OrderShipped"]
    schema = copy.deepcopy(shipped.event_schema)  # type: ignore[union-attr]
    schema["required"].append("tracking_number")
    monkeypatch.setattr(shipped, "event_schema", schema)
    flow.run(1)
    with pytest.raises(FlowError) as caught:
        flow.check()
    lines = str(caught.value).splitlines()
    assert "payments.PaymentCaptured: a detail its schema refuses: 'amount' is a required property" in lines, lines
    assert "fulfilment.OrderShipped: a detail its schema refuses: 'tracking_number' is a required property" in lines
    refused = [line.split(":")[0] for line in lines if "a detail its schema refuses" in line]
    # orders' OrderPlaced is as declared
    assert sorted(refused) == ["fulfilment.OrderShipped", "payments.PaymentCaptured"]


@pytest.mark.slow
def test_the_built_in_publisher_refuses_a_detail_its_schema_refuses_and_the_flow_names_it(flow: Flow) -> None:
    """Planted: a payment handed on without its amount. ode's publisher refuses to publish PaymentCaptured: the
    execution fails naming the event and the field, and what depends on the event never happens."""
    _hand_on_a_total(flow)
    flow.run(1)
    with pytest.raises(FlowError) as caught:
        flow.check()
    lines = str(caught.value).splitlines()
    assert any(line.endswith("state 'publish on success' failed, and so did the execution: SchemaError: "
                             "PaymentCaptured: the detail lacks 'amount', which its schema requires")
               for line in lines), lines
    for expected in ("payments.PaymentCaptured: emitted by nobody",
                     "fulfilment <- payments.PaymentCaptured: never received",
                     "orders <- payments.PaymentCaptured: never received"):
        assert expected in lines, lines
    assert not [e for e in flow.emitted if e.detail_type == "PaymentCaptured"]
