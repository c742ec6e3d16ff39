"""The contract language and the contracts library: what a bounded context provides and consumes.

    from ode.contracts import load_library

    library = load_library("contracts")          # raises ContractErrors listing every mistake, file:line: field

Rooms: :mod:`~ode.contracts.model` (the pydantic models), :mod:`~ode.contracts.loading` and
:mod:`~ode.contracts.diagnostics` (reading files, naming the file, line and field of each mistake),
:mod:`~ode.contracts.rules` (the rules that span files, with stable ids), :mod:`~ode.contracts.schema` (JSON Schema
for editors), :mod:`~ode.contracts.versions` (semantic versions and ranges) and :mod:`~ode.contracts.policies` (the
vocabulary of policy levels and waivers a contract is written in).
"""

from components.kinds import KINDS

from .diagnostics import MAX_FILE_BYTES, ContractError, ContractErrors, line_of
from .library import ContractLibrary, UnknownEnvironmentError
from .loading import load_library, read_library
from .model import (
    ACCESS,
    ENVIRONMENTS_FILE,
    INTERFACE_PATTERN,
    MAX_DURATION_SECONDS,
    MAY_BE_EMPTY,
    NAME_PATTERN,
    OUTPUT_FIELDS,
    AlarmSubscriptions,
    Consumes,
    Context,
    Environment,
    EnvironmentsFile,
    EphemeralPolicy,
    EventsSetting,
    InterfaceKind,
    Link,
    did_you_mean,
    is_deploy_kind,
    parse_duration,
    settings_context,
)
from .rules import RULES, check_library
from .schema import json_schema

__all__ = [
    "ACCESS",
    "ENVIRONMENTS_FILE",
    "INTERFACE_PATTERN",
    "KINDS",
    "MAX_DURATION_SECONDS",
    "MAX_FILE_BYTES",
    "NAME_PATTERN",
    "MAY_BE_EMPTY",
    "OUTPUT_FIELDS",
    "RULES",
    "AlarmSubscriptions",
    "Consumes",
    "Context",
    "ContractError",
    "ContractErrors",
    "ContractLibrary",
    "Environment",
    "EnvironmentsFile",
    "EphemeralPolicy",
    "EventsSetting",
    "InterfaceKind",
    "Link",
    "UnknownEnvironmentError",
    "check_library",
    "did_you_mean",
    "is_deploy_kind",
    "json_schema",
    "line_of",
    "load_library",
    "parse_duration",
    "read_library",
    "settings_context",
]
