"""OnDemandEnv for Pulumi: contracts between bounded contexts, turned into deployed AWS environments.

Use it from Python::

    from ode import load_library, EnvGraph

    library = load_library("contracts")          # raises ContractErrors listing every mistake
    graph = EnvGraph.resolve(library, "dev")     # the checked dependency graph of one environment
    print(graph.contexts)                        # producers before consumers

    with open_workspace(contracts="contracts", engine="simulated") as workspace:   # what `ode` runs with
        result = workspace.orchestrator().up("dev")  # a RunResult: result.ok, result.to_dict()

Each public name is imported on first use, so that ``import ode`` (and ``ode --help``) pays for none of the heavy
libraries (pydantic, networkx, boto3, pulumi) until a name that needs them is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it.
_WHERE = {
    "Context": "ode.contracts",
    "ContractError": "ode.contracts",
    "ContractErrors": "ode.contracts",
    "ContractLibrary": "ode.contracts",
    "EnvironmentsFile": "ode.contracts",
    "UnknownEnvironmentError": "ode.contracts",
    "json_schema": "ode.contracts",
    "load_library": "ode.contracts",
    "parse_duration": "ode.contracts",
    "OdeError": "ode.errors",
    "UsageError": "ode.errors",
    "CycleError": "ode.graph",
    "Edge": "ode.graph",
    "EnvGraph": "ode.graph",
    "Orchestrator": "ode.execution.orchestrator",
    "RunResult": "ode.execution.results",
    "StackOutcome": "ode.execution.results",
    "LockedError": "ode.registry.errors",
    "Registry": "ode.registry.sqlite",
    "Workspace": "ode.workspace",
    "WorkspaceOptions": "ode.workspace",
    "open_workspace": "ode.workspace",
}

__all__ = [
    "ContractError",
    "ContractErrors",
    "ContractLibrary",
    "Context",
    "CycleError",
    "Edge",
    "EnvGraph",
    "EnvironmentsFile",
    "OdeError",
    "UnknownEnvironmentError",
    "UsageError",
    "LockedError",
    "Orchestrator",
    "Registry",
    "RunResult",
    "StackOutcome",
    "Workspace",
    "WorkspaceOptions",
    "json_schema",
    "load_library",
    "open_workspace",
    "parse_duration",
]

if TYPE_CHECKING:  # what type checkers and editors see; at run time each name comes from __getattr__
    from .contracts import (
        Context,
        ContractError,
        ContractErrors,
        ContractLibrary,
        EnvironmentsFile,
        UnknownEnvironmentError,
        json_schema,
        load_library,
        parse_duration,
    )
    from .errors import OdeError, UsageError
    from .execution.orchestrator import Orchestrator
    from .execution.results import RunResult, StackOutcome
    from .graph import CycleError, Edge, EnvGraph
    from .registry.errors import LockedError
    from .registry.sqlite import Registry
    from .workspace import Workspace, WorkspaceOptions, open_workspace


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f"{__name__}.{name}")  # a room of the package: ode.contracts, ode.graph...
    else:
        raise AttributeError(f"module 'ode' has no attribute {name!r}")
    globals()[name] = value  # resolved once: later uses are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
