"""Engines run one stack at a time: ``pulumi`` (the Automation API) and ``simulated`` (in-process, under mocks).

All engines follow :class:`Engine` (:mod:`ode.engines.protocol`); the orchestrator never knows which one it drives.
They are found by name through the entry points ``ode.engines`` (:func:`make_engine`, :mod:`ode.engines.factory`),
so a package adds one without editing ode.
"""

from .factory import ENTRY_POINT_GROUP, engine_names, make_engine, open_pulumi, open_simulated
from .protocol import (
    CliNotFoundError,
    ConcurrentUpdateError,
    Engine,
    EngineError,
    ProgramError,
    ProgressCallback,
    PropertyChange,
    ResourceChange,
    StackNotFoundError,
    StackResult,
    StackSpec,
    Upstream,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "CliNotFoundError",
    "ConcurrentUpdateError",
    "Engine",
    "EngineError",
    "ProgramError",
    "ProgressCallback",
    "PropertyChange",
    "ResourceChange",
    "StackNotFoundError",
    "StackResult",
    "StackSpec",
    "Upstream",
    "engine_names",
    "make_engine",
    "open_pulumi",
    "open_simulated",
]
