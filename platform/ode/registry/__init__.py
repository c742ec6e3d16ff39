"""The registry: what was deployed where (environments, stacks, fingerprints, outputs, runs, locks).

    from ode.registry import open_registry

    registry = open_registry(None, ".ode")       # SQLite under the state dir; or sqlite:///..., dynamodb://TABLE

Rooms: :mod:`~ode.registry.protocol` (what every backend offers), :mod:`~ode.registry.records` and
:mod:`~ode.registry.errors` (what they keep and raise), :mod:`~ode.registry.opening` (a backend from a URL, through
the ``ode.registries`` entry points), :mod:`~ode.registry.copy`; the backends are :mod:`~ode.registry.sqlite`
(the default) and :mod:`~ode.registry.dynamodb` (shared by a team), imported only when a URL names them.
"""

from .copy import CopyReport, copy, same_store
from .errors import CopyLockedError, LockedError, RegistryError, RegistryNotFoundError
from .opening import ENTRY_POINT_GROUP, RegistryFactory, open_registry
from .protocol import RegistryBackend
from .records import EnvironmentRecord, LockInfo, RegistryIdentity, RunRecord, StackRecord, holder, lock_info_of

__all__ = [
    "ENTRY_POINT_GROUP",
    "CopyLockedError",
    "CopyReport",
    "EnvironmentRecord",
    "LockInfo",
    "LockedError",
    "RegistryBackend",
    "RegistryError",
    "RegistryFactory",
    "RegistryIdentity",
    "RegistryNotFoundError",
    "RunRecord",
    "StackRecord",
    "copy",
    "holder",
    "lock_info_of",
    "open_registry",
    "same_store",
]
