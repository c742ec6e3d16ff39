"""The workflow's built-in functions.

``handler`` is a step: it does its part and records it in ``steps_done`` of the state it hands on.

``publish`` is the task the state machine runs after its last step (``{"outcome": "success", "state": ...}``) and
when a step failed for good (``{"outcome": "failure", "state": ...}``, the error in ``state.error``): it publishes the
events the context emits on that outcome (``EVENT_EMITS``). Their detail is the business data the execution carries:
the detail of the event that started it (or its input), without the workflow's own bookkeeping, plus a ``reason`` on
failure. A detail that an event's declared schema refuses is not published: the task fails, naming the event and the
field (the steps must hand on what the events need).
"""

from __future__ import annotations

import json
import os
from typing import Any

import ode_events

#: What the workflow itself adds to its state, which is no business of an event's reader.
BOOKKEEPING = ("steps_done", "error")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise ValueError("a workflow step takes a JSON object")
    done = list(event.get("steps_done", []))
    done.append(os.environ.get("STEP_NAME", "step"))
    return {**event, "steps_done": done}


def _reason(error: Any) -> str:
    """A readable reason from Step Functions' ``{"Error": ..., "Cause": ...}`` (a Lambda error's cause is JSON)."""
    if not isinstance(error, dict):
        return "the workflow failed"
    cause = error.get("Cause") or ""
    try:
        parsed = json.loads(cause)
        cause = parsed.get("errorMessage") or cause if isinstance(parsed, dict) else cause
    except (TypeError, ValueError):
        pass
    return f"{error.get('Error') or 'Error'}: {cause}" if cause else str(error.get("Error") or "the workflow failed")


def detail_of(state: dict[str, Any]) -> dict[str, Any]:
    """The business data of an execution's state: an EventBridge event's detail, or the state itself."""
    event = {k: v for k, v in state.items() if k not in BOOKKEEPING}
    if {"source", "detail-type", "detail"} <= event.keys() and isinstance(event["detail"], dict):
        return dict(event["detail"])
    return event


def publish(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    outcome, state = event.get("outcome"), event.get("state")
    if outcome not in ("success", "failure") or not isinstance(state, dict):
        raise ValueError('publish takes {"outcome": "success" | "failure", "state": {...}}')
    detail = detail_of(state)
    if outcome == "failure":
        detail["reason"] = _reason(state.get("error"))
    return {"published": ode_events.publish(ode_events.emitted_on(outcome), detail)}
