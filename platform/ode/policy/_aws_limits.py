"""What AWS refuses about one resource that neither botocore's models nor the resource schemas say: reserved
names, aggregate sizes, dates, and settings that one service refuses in combination (a batching window on a FIFO
source). Each check names the resource and the input."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

# One list of Lambda's reserved names and limits for `ode validate` (settings) and the rules (planned functions).
from components.constraints import LAMBDA_ENV_BYTES, LAMBDA_ENV_NAME, LAMBDA_RESERVED, lambda_environment_problems

from ._model import Res, _json, _last, _list, _num

__all__ = ["LAMBDA_ENV_BYTES", "LAMBDA_ENV_NAME", "LAMBDA_RESERVED", "lambda_environment_problems", "limit_findings",
           "runtime_lifecycle", "runtime_state", "today_of"]

@functools.lru_cache(maxsize=1)
def runtime_lifecycle() -> Mapping[str, Mapping[str, Any]]:
    """Lambda runtimes with their deprecation, block-create and block-update dates: the table the CloudFormation
    linter keeps from AWS's "Lambda runtimes" page (``LmbdRuntimeLifecycle.json``)."""
    from importlib.resources import files

    try:
        text = files("cfnlint.data.AdditionalSpecs").joinpath("LmbdRuntimeLifecycle.json").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):  # a trimmed install without the linter's data
        return {}
    return json.loads(text)  # type: ignore[no-any-return]


def _day(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def runtime_state(runtime: str, today: date) -> tuple[str, Mapping[str, Any]] | None:
    """``("blocked", data)`` when AWS no longer creates functions on ``runtime``, ``("deprecated", data)`` when it
    is deprecated but still creatable, None otherwise (or unknown)."""
    data = runtime_lifecycle().get(runtime)
    if not data:
        return None
    blocked, deprecated = _day(data.get("create-block")), _day(data.get("deprecated"))
    if blocked is not None and today >= blocked:
        return "blocked", data
    if deprecated is not None and today >= deprecated:
        return "deprecated", data
    return None


def today_of(config: Mapping[str, Any]) -> date:
    """The day rules judge dates against: ode's clock (given as ``today`` by the caller), else the system's."""
    given = config.get("today")
    if isinstance(given, date):
        return given
    return _day(given) or date.today()


def _fifo_arn(arn: Any) -> bool:
    return str(arn).endswith(".fifo")


def limit_findings(res: Res, today: date) -> Iterator[str]:
    """What AWS refuses about one resource beyond enums, patterns and lengths."""
    p, t = res.props, res.type
    if t == "aws:lambda/function:Function":
        variables = (p.get("environment") or {}).get("variables") or {}
        if isinstance(variables, Mapping):
            for _, problem in lambda_environment_problems(variables):
                yield f"Function {res.name}: environment.variables: {problem}"
        runtime = p.get("runtime")
        state = runtime_state(str(runtime), today) if runtime else None
        if state and state[0] == "blocked":
            data = state[1]
            yield f"Function {res.name}: runtime {runtime!r} no longer accepts new functions (deprecated " \
                  f"{data.get('deprecated')}, creation blocked since {data.get('create-block')}); use " \
                  f"{data.get('successor') or 'a supported runtime'}"
    elif t == "aws:lambda/eventSourceMapping:EventSourceMapping":
        source = str(p.get("eventSourceArn") or "")
        window = _num(p.get("maximumBatchingWindowInSeconds")) or 0
        batch = _num(p.get("batchSize"))
        if ":sqs:" in source:
            if _fifo_arn(source) and window:
                yield f"EventSourceMapping {res.name}: maximumBatchingWindowInSeconds {window}: Lambda refuses a " \
                      f"batching window on a FIFO queue ({_last(source)})"
            if _fifo_arn(source) and isinstance(batch, int) and batch > 10:
                yield f"EventSourceMapping {res.name}: batchSize {batch} is above 10, the most Lambda takes from " \
                      f"a FIFO queue ({_last(source)})"
            elif isinstance(batch, int) and batch > 10 and not window:
                yield f"EventSourceMapping {res.name}: batchSize {batch} is above 10 without a batching window " \
                      "(maximumBatchingWindowInSeconds of at least 1)"
    elif t == "aws:cloudwatch/eventTarget:EventTarget":
        if ":sqs:" in str(p.get("arn") or "") and _fifo_arn(p.get("arn")) and not (
                p.get("sqsTarget") or {}).get("messageGroupId"):
            yield f"EventTarget {res.name}: sqsTarget.messageGroupId is required for the FIFO queue " \
                  f"{_last(p.get('arn'))}"
    elif t == "aws:sqs/queue:Queue":
        name = str(p.get("name") or "")
        fifo = bool(p.get("fifoQueue"))
        if name and fifo != name.endswith(".fifo"):
            yield f"Queue {res.name}: name {name!r} " + ("must end with .fifo for a FIFO queue (fifoQueue)" if fifo
                                                         else "ends with .fifo but fifoQueue is not set")
        if p.get("contentBasedDeduplication") and not fifo:
            yield f"Queue {res.name}: contentBasedDeduplication is only for FIFO queues"
        redrive = _json(p.get("redrivePolicy"))
        target = redrive.get("deadLetterTargetArn") if isinstance(redrive, Mapping) else None
        if target and _fifo_arn(target) != fifo:
            yield f"Queue {res.name}: redrivePolicy: a {'FIFO' if fifo else 'standard'} queue needs a " \
                  f"{'FIFO' if fifo else 'standard'} dead-letter queue, not {_last(target)}"
    elif t == "aws:ecs/taskDefinition:TaskDefinition":
        containers = _json(p.get("containerDefinitions"))
        names: list[str] = []
        for c in _list(containers):
            if not isinstance(c, Mapping):
                continue
            names.append(str(c.get("name")))
            for m in _list(c.get("portMappings")):
                if not isinstance(m, Mapping):
                    continue
                host, port = _num(m.get("hostPort")), _num(m.get("containerPort"))
                if p.get("networkMode") == "awsvpc" and host not in (None, port):
                    yield f"TaskDefinition {res.name}: containerDefinitions: hostPort {host} must equal " \
                          f"containerPort {port} in awsvpc mode"
        if len(names) != len(set(names)):
            yield f"TaskDefinition {res.name}: containerDefinitions: container names repeat"
        if containers and not any(isinstance(c, Mapping) and c.get("essential", True) for c in _list(containers)):
            yield f"TaskDefinition {res.name}: containerDefinitions: at least one container must be essential"
