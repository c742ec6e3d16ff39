"""Executors by URL: the ``ode.executors`` entry points, what every one is opened with, and what a remote one
requires of the state and the secrets.

An entry point is a factory ``(url, setup) -> Executor``, ``url`` being the whole ``--executor`` value and
``setup`` an :class:`ExecutorSetup`. ode declares ``local``, ``dask``, ``dask+local`` and ``codebuild``
(pyproject.toml) and imports an executor's module only when that executor is opened.

Parameters every URL takes: ``timeout=SECONDS`` (how long one stack's operation may take before it is stopped) and
``lease=SECONDS`` (how long a worker's stack lease outlives its last heartbeat: what a dead worker leaves behind).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ..errors import UsageError

if TYPE_CHECKING:
    from ..contracts import ContractLibrary
    from ..engines.protocol import Engine
    from ..execution.executor import Executor

#: The entry-point group that maps a URL scheme to its factory ``(url, setup) -> Executor``.
ENTRY_POINT_GROUP = "ode.executors"

#: Used when the distribution's metadata is not installed (a source tree): the targets pyproject.toml declares.
_BUILTIN = {"local": "ode.executors.local:open_local", "dask": "ode.executors.dask:open_dask",
            "dask+local": "ode.executors.dask:open_dask_local",
            "codebuild": "ode.executors.codebuild:open_codebuild"}

#: A worker's stack lease: how long it outlives its last heartbeat (renewed every third of it).
DEFAULT_LEASE_S = 60.0


@dataclass
class ExecutorSetup:
    """What an executor is opened with: the coordinator's engine (its name, backend and secrets provider go into
    every task; secret outputs are read back from its state), the library, the state directory, the registry's
    URL (where workers take their stack leases when it is shared), the simulated engine's faults (a rehearsal on
    workers rehearses the same), ``--parallel`` and where one-line notes go."""

    engine: Engine
    library: ContractLibrary
    state_dir: Path
    registry_url: str | None = None
    engine_options: dict[str, Any] = field(default_factory=dict)
    parallel: int = 8
    announce: Callable[[str], None] | None = None
    #: ``(env, producer) -> (parameter prefix, region)`` for environments whose outputs are published to SSM
    #: Parameter Store: a worker may read a secret upstream value there instead of the producer's state.
    ssm_place: Callable[[str, str], tuple[str, str | None] | None] | None = None

    def say(self, line: str) -> None:
        if self.announce is not None:
            self.announce(line)


@dataclass(frozen=True)
class ExecutorUrl:
    """An ``--executor`` URL taken apart: scheme, location (host:port, a project, a count), the query's
    parameters, and the parameters every executor takes."""

    text: str
    scheme: str
    location: str
    params: Mapping[str, str]
    timeout_s: float | None
    lease_s: float

    def number(self, name: str, *, low: float, high: float, default: float | None = None) -> float | None:
        """Parameter ``name`` as a number from ``low`` to ``high`` (one line naming it otherwise)."""
        text = self.params.get(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high):
            raise UsageError(f"--executor {self.text}: {name}={text} must be a number from {low:g} to {high:g}")
        return value

    def refuse_unknown(self, known: set[str]) -> None:
        unknown = sorted(set(self.params) - known - {"timeout", "lease"})
        if unknown:
            raise UsageError(f"--executor {self.text}: unknown parameter {unknown[0]!r} (known: "
                             f"{', '.join(sorted(known | {'timeout', 'lease'}))})")


def parse_url(text: str) -> ExecutorUrl:
    """``scheme://location?params``; ``local`` alone is ``local://``. Bad numbers are one line naming them."""
    raw = text.strip()
    if "://" not in raw:
        if raw in ("local", ""):
            raw = "local://"
        else:
            raise UsageError(f"--executor {text!r}: expected local, dask://HOST:PORT, dask+local://N or "
                             "codebuild://PROJECT?region=R")
    parts = urlsplit(raw)
    params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    half = ExecutorUrl(raw, parts.scheme, parts.netloc + parts.path.rstrip("/"), params, None, DEFAULT_LEASE_S)
    timeout = half.number("timeout", low=1, high=8 * 3600)
    lease = half.number("lease", low=1, high=3600, default=DEFAULT_LEASE_S)
    return ExecutorUrl(raw, parts.scheme, half.location, params, timeout, float(lease or DEFAULT_LEASE_S))


def executor_names() -> list[str]:
    """Every scheme ``--executor`` accepts: ode's own and those packages declare."""
    return sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)} | set(_BUILTIN))


def open_executor(url: str | None, setup: ExecutorSetup) -> Executor:
    """The executor ``url`` names (None or ``local``: this machine's threads), found by its scheme through the
    ``ode.executors`` entry points. A scheme nobody declares, or a remote executor without state and secrets
    every worker can use (see :func:`require_shared_state`), is one line (:class:`UsageError`)."""
    parsed = parse_url(url or os.environ.get("ODE_EXECUTOR") or "local")
    found = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if parsed.scheme not in found and parsed.scheme in _BUILTIN:
        found[parsed.scheme] = metadata.EntryPoint(parsed.scheme, _BUILTIN[parsed.scheme], ENTRY_POINT_GROUP)
    if parsed.scheme not in found:
        raise UsageError(f"--executor {parsed.text}: no executor for {parsed.scheme}:// (known: "
                         f"{', '.join(executor_names())})")
    factory: Callable[[str, ExecutorSetup], Executor] = found[parsed.scheme].load()
    return factory(parsed.text, setup)


def lease_url(setup: ExecutorSetup, *, remote: bool) -> str:
    """Where workers take their stack leases: the registry's DynamoDB table when the registry is one (items of
    their own, ``STACKLEASE#<stack>``), else a SQLite file in the state directory, which only workers on this
    machine can reach: a remote executor without a shared registry is refused (one line saying what to set)."""
    registry = setup.registry_url or os.environ.get("ODE_REGISTRY") or ""
    if registry.startswith("dynamodb://"):
        return registry
    if remote:
        raise UsageError("workers on other machines take their stack leases in the team's registry, which this "
                         f"run does not share ({registry or 'SQLite under ' + str(setup.state_dir)}): set "
                         "--registry dynamodb://TABLE?region=R (or ODE_REGISTRY)")
    return f"sqlite:///{(setup.state_dir / 'stack-leases.db').resolve()}"


def require_shared_state(setup: ExecutorSetup, where: str) -> None:
    """Refuse, in one line saying what to set, what workers on other machines cannot use: the ``file://`` state
    backend (each machine would keep its own state) and a passphrase kept in a file of this state directory (no
    worker has it). The simulated engine deploys nothing and keeps its rehearsal state on each machine; it is
    let through, and said so."""
    engine = setup.engine
    if getattr(engine, "name", "") == "simulated":
        setup.say(f"executor: {where} with the simulated engine: a rehearsal; each machine keeps its own "
                  "simulated state")
        return
    backend = str(getattr(engine, "backend_url", "") or "")
    if backend.startswith("file://"):
        raise UsageError(f"--executor {where}: workers on other machines cannot use the file:// state backend "
                         f"({backend}): set ODE_BACKEND_URL=s3://BUCKET/PREFIX and a secrets provider every worker "
                         "can use, ODE_SECRETS_PROVIDER=awskms://alias/KEY?region=R (or PULUMI_CONFIG_PASSPHRASE "
                         "from a secrets manager on every worker)")
    if getattr(engine, "passphrase_source", None) == "file":
        raise UsageError(f"--executor {where}: the stacks' secrets passphrase is kept in a file of "
                         f"{setup.state_dir} that no worker has: set ODE_SECRETS_PROVIDER=awskms://alias/KEY?region=R "
                         "(a KMS key every worker may use), or PULUMI_CONFIG_PASSPHRASE from a secrets manager on "
                         "the coordinator and every worker")
