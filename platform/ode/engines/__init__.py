"""Engines run one stack at a time: ``pulumi`` (the Automation API) and ``simulated`` (in-process, under mocks).

All engines follow :class:`Engine`; the orchestrator never knows which one it drives.
"""

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

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
    "make_engine",
]


def make_engine(name: str, library: object, state_dir: str | os.PathLike[str], *, failures: Iterable[str] = (),
                delays: Mapping[str, float] | None = None, announce: Callable[[str], None] | None = None,
                **pulumi_options: object) -> Engine:
    """The engine called ``name``: ``pulumi``, ``simulated`` or ``auto`` (pulumi where its CLI is found, else
    simulated, announced through ``announce``). ``failures`` and ``delays`` are the simulated engine's faults;
    ``ODE_SIMULATE_PROGRAMS=0`` makes it synthesize outputs from the contracts instead of running programs."""
    from ..contracts import ContractLibrary
    from ..errors import UsageError

    assert isinstance(library, ContractLibrary)
    if name not in ("auto", "pulumi", "simulated"):
        raise UsageError(f"--engine {name!r}: choose auto, pulumi or simulated")
    if name == "auto":
        from .pulumi import PulumiEngine

        name = "pulumi" if PulumiEngine.available() else "simulated"
        if announce is not None:
            announce("engine: pulumi" if name == "pulumi" else
                     "engine: simulated (no pulumi CLI on PATH: nothing is deployed, results are simulated)")
    if name != "simulated" and (failures or delays):
        raise UsageError("--simulate-failure and --simulate-delay need the simulated engine (--engine simulated)")
    if name == "simulated":
        from .simulated import SimulatedEngine

        run_programs = os.environ.get("ODE_SIMULATE_PROGRAMS", "1") not in ("0", "false", "no")
        return SimulatedEngine(library, Path(state_dir), failures=failures, delays=delays, run_programs=run_programs)
    from .pulumi import PulumiEngine

    return PulumiEngine(library, Path(state_dir), **pulumi_options)  # type: ignore[arg-type,call-arg,return-value]
