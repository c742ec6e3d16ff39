"""The ComponentResources that deploy bounded contexts, one per kind. Importing this package imports no Pulumi:
``load(kind)`` imports a kind's module when it is needed.

    from components import load

    Component, Args = load("serverless-api")      # ServerlessApi, ServerlessApiArgs
    api = Component("orders", Args(identity=..., settings=...))
"""

from __future__ import annotations

import importlib
from typing import Any

#: Kind -> module of this package.
MODULES: dict[str, str] = {
    "network": "network",
    "event-bus": "event_bus",
    "serverless-api": "serverless_api",
    "event-worker": "event_worker",
    "workflow": "workflow",
    "container-service": "container_service",
    "data-store": "data_store",
}


def class_name(kind: str) -> str:
    """``serverless-api`` -> ``ServerlessApi``."""
    return "".join(part.capitalize() for part in kind.split("-"))


def load(kind: str) -> tuple[type[Any], type[Any]]:
    """The component class of ``kind`` and its args class."""
    if kind not in MODULES:
        raise KeyError(f"no component of kind {kind!r} (known: {', '.join(sorted(MODULES))})")
    module = importlib.import_module(f"components.{MODULES[kind]}")
    name = class_name(kind)
    return getattr(module, name), getattr(module, f"{name}Args")


__all__ = ["MODULES", "class_name", "load"]
