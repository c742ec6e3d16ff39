"""Engines by name: the ``ode.engines`` entry points, and ``auto`` (pulumi where its CLI is found, else simulated).

An entry point is a factory ``(library, state_dir, **options) -> Engine``; ode declares ``pulumi`` and ``simulated``
(pyproject.toml), and imports an engine's module only when that engine is opened.
"""

import os
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path

from ..contracts import ContractLibrary
from ..errors import UsageError
from .protocol import Engine

#: The entry-point group that maps an engine's name to its factory ``(library, state_dir, **options) -> Engine``.
ENTRY_POINT_GROUP = "ode.engines"

#: Used when the distribution's metadata is not installed (a source tree): the targets pyproject.toml declares.
_BUILTIN = {"pulumi": "ode.engines.factory:open_pulumi", "simulated": "ode.engines.factory:open_simulated"}


def open_pulumi(library: object, state_dir: Path, *, failures: Iterable[str] = (),
                delays: Mapping[str, float] | None = None, **options: object) -> Engine:
    """The ``pulumi`` entry point: the Automation API engine (``options``: backend_url, passphrase, env_vars)."""
    from .pulumi import PulumiEngine  # deferred: imports the pulumi SDK's automation package

    if failures or delays:
        raise UsageError("--simulate-failure and --simulate-delay need the simulated engine (--engine simulated)")
    return PulumiEngine(library, state_dir, **options)  # type: ignore[arg-type,return-value]


def open_simulated(library: object, state_dir: Path, *, failures: Iterable[str] = (),
                   delays: Mapping[str, float] | None = None, **_options: object) -> Engine:
    """The ``simulated`` entry point; ``ODE_SIMULATE_PROGRAMS=0`` synthesizes outputs instead of running programs."""
    from .simulated import SimulatedEngine  # deferred: imports pulumi's mocks

    run_programs = os.environ.get("ODE_SIMULATE_PROGRAMS", "1") not in ("0", "false", "no")
    return SimulatedEngine(library, state_dir, failures=failures, delays=delays,  # type: ignore[arg-type]
                           run_programs=run_programs)


def engine_names() -> list[str]:
    """Every engine name ``--engine`` accepts besides ``auto``: ode's own and those packages declare."""
    return sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)} | set(_BUILTIN))


def _factory(name: str) -> Callable[..., Engine]:
    found = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if name not in found and name in _BUILTIN:
        found[name] = metadata.EntryPoint(name, _BUILTIN[name], ENTRY_POINT_GROUP)
    if name not in found:
        raise UsageError(f"--engine {name!r}: no such engine (known: auto, {', '.join(engine_names())})")
    factory: Callable[..., Engine] = found[name].load()
    return factory


def make_engine(name: str, library: object, state_dir: str | os.PathLike[str], *, failures: Iterable[str] = (),
                delays: Mapping[str, float] | None = None, announce: Callable[[str], None] | None = None,
                ci: bool = False, **pulumi_options: object) -> Engine:
    """The engine called ``name`` (found through the ``ode.engines`` entry points), or ``auto``: pulumi where its
    CLI is found, else simulated, announced through ``announce``. ``failures`` and ``delays`` are the simulated
    engine's faults.

    With ``ci`` (``CI=true``), ``auto`` never falls back to the simulated engine: a runner without the Pulumi CLI
    fails with one line (:class:`~ode.errors.UsageError`) instead of reporting simulated deploys as green. The
    simulated engine still runs there when it is named (``--engine simulated``)."""
    assert isinstance(library, ContractLibrary)
    if name == "auto":
        from .pulumi import PulumiEngine  # deferred: imports the pulumi SDK's automation package

        if PulumiEngine.available():
            name = "pulumi"
        elif ci:
            raise UsageError("CI=true and no `pulumi` CLI on PATH: install the Pulumi CLI on this runner "
                             "(https://www.pulumi.com/docs/install/), or pass --engine simulated to run the "
                             "simulated engine on purpose (it deploys nothing)")
        else:
            name = "simulated"
        if announce is not None:
            announce("engine: pulumi" if name == "pulumi" else
                     "engine: simulated (no pulumi CLI on PATH: nothing is deployed, results are simulated)")
    if name == "pulumi":
        from .pulumi import INSTALL_VARIABLE, PulumiEngine  # deferred: the pulumi SDK's automation package

        if not PulumiEngine.available() and os.environ.get(INSTALL_VARIABLE) not in ("1", "true", "yes"):
            # Found now, in one line, rather than as the same failure of every stack.
            raise UsageError("--engine pulumi: no `pulumi` CLI on PATH or in ~/.pulumi: install it "
                             f"(https://www.pulumi.com/docs/install/), set {INSTALL_VARIABLE}=1 to let ode download "
                             "it, or use --engine simulated")
    factory = _factory(name)
    if name != "simulated" and (failures or delays):
        raise UsageError("--simulate-failure and --simulate-delay need the simulated engine (--engine simulated)")
    return factory(library, Path(state_dir), failures=failures, delays=delays, **pulumi_options)
