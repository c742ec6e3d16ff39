"""OnDemandEnv for Pulumi: contracts between bounded contexts, turned into deployed AWS environments.

Use it from Python::

    from ode import load_library, EnvGraph

    library = load_library("contracts")          # raises ContractErrors listing every mistake
    graph = EnvGraph.resolve(library, "dev")     # the checked dependency graph of one environment
    print(graph.contexts)                        # producers before consumers

    with open_workspace(contracts="contracts", engine="simulated") as workspace:   # what `ode` runs with
        result = workspace.orchestrator().up("dev")  # a RunResult: result.ok, result.to_dict()
"""

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
from .graph import CycleError, Edge, EnvGraph
from .orchestrator import Orchestrator, RunResult, StackOutcome
from .registry import LockedError, Registry
from .workspace import Workspace, WorkspaceOptions, open_workspace

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
