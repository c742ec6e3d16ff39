"""Engines run one stack at a time: ``pulumi`` (the Automation API) and ``simulated`` (in-process, under mocks).

All engines follow :class:`Engine`; the orchestrator never knows which one it drives.
"""

from ._base import (
    CliNotFoundError,
    ConcurrentUpdateError,
    Engine,
    EngineError,
    ProgramError,
    ProgressCallback,
    ResourceChange,
    StackNotFoundError,
    StackResult,
    StackSpec,
    Upstream,
)

__all__ = [
    "CliNotFoundError",
    "ConcurrentUpdateError",
    "Engine",
    "EngineError",
    "ProgramError",
    "ProgressCallback",
    "ResourceChange",
    "StackNotFoundError",
    "StackResult",
    "StackSpec",
    "Upstream",
]
