"""A step of the workflow: it does its part and records it in ``steps_done`` of the state it hands on."""

from __future__ import annotations

import os
from typing import Any


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise ValueError("a workflow step takes a JSON object")
    done = list(event.get("steps_done", []))
    done.append(os.environ.get("STEP_NAME", "step"))
    return {**event, "steps_done": done}
