"""The registry as a protocol, whichever store is behind it, and opening one from a URL.

    from ode.registry_api import open_registry

    registry = open_registry("dynamodb://ode-registry?region=eu-west-1", ".ode")   # or sqlite:///.ode/registry.db
    registry.stacks("dev")

URLs are resolved by scheme through the entry-point group ``ode.registries``: each entry is a factory
``(url, state_dir) -> RegistryBackend``. ode declares ``sqlite`` and ``dynamodb``; a third party adds a store by
declaring its own entry in its package, without editing ode::

    [project.entry-points."ode.registries"]
    etcd = "my_package.registry:open_etcd"
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from .errors import UsageError
from .registry import EnvironmentRecord, Registry, RunRecord, StackRecord

#: The entry-point group that maps a URL scheme to a registry factory.
ENTRY_POINT_GROUP = "ode.registries"

#: Used when the distribution's metadata is not installed (running from a source tree): the same targets as
#: pyproject.toml declares, loaded the same way.
_BUILTIN = {
    "sqlite": "ode.registry_api:open_sqlite",
    "dynamodb": "ode.registry_dynamodb:open_dynamodb",
}

RegistryFactory = Callable[[str, Path], "RegistryBackend"]


@runtime_checkable
class RegistryBackend(Protocol):
    """What the orchestrator, the ephemeral-environment service and the CLI need from a registry.

    Every method is atomic on its own and safe to call from several threads. Secret output values are never
    given to a registry: ``record_success`` gets public outputs and the *names* of the secret ones.
    """

    #: True when opening it made a new, empty store (a new SQLite file): a command says so, as a wrong
    #: ``--state-dir`` must not pass for an empty registry.
    created: bool

    # -- environments --
    def put_environment(self, record: EnvironmentRecord) -> None:
        """Insert or replace an environment's record."""

    def ensure_environment(self, name: str, base: str | None = None) -> None:
        """Record a long-lived environment on its first run (a no-op when it is known)."""

    def set_environment_status(self, name: str, status: str) -> None:
        """Change a known environment's status (a no-op for an unknown one)."""

    def environment(self, name: str) -> EnvironmentRecord | None:
        """One environment's record, or None."""

    def environments(self) -> list[EnvironmentRecord]:
        """Every environment, by name."""

    def knows(self, env: str) -> bool:
        """Whether the registry has any record of ``env``: the environment, a stack or a run."""

    # -- stacks --
    def stack(self, env: str, context: str) -> StackRecord | None:
        """One stack's last known state, or None."""

    def stacks(self, env: str) -> list[StackRecord]:
        """Every stack of ``env``, by context."""

    def mark_running(self, env: str, context: str, *, engine: str, started_at: str, run_id: int | None,
                     operation: str = "up") -> None:
        """A stack's engine run starts: status running (destroying), fingerprint cleared."""

    def record_success(self, env: str, context: str, *, fingerprint: str, inputs: dict[str, str],
                       outputs: dict[str, Any], secret_outputs: list[str], engine: str, simulated: bool,
                       started_at: str, finished_at: str, duration_s: float) -> None:
        """A stack deployed: fingerprint, digests of its parts, public outputs and the names of secret ones."""

    def record_failure(self, env: str, context: str, *, error: str, finished_at: str, duration_s: float) -> None:
        """A stack's run failed: status failed, no fingerprint, last outputs kept."""

    def forget_stack(self, env: str, context: str) -> None:
        """A stack was destroyed: it leaves the registry."""

    def interrupted(self, env: str) -> list[StackRecord]:
        """Stacks left running or destroying by a run that did not finish."""

    # -- runs and locks --
    def begin_run(self, env: str, command: str, engine: str, *, force_unlock: bool = False,
                  force: bool = False) -> int:
        """Take the environment's lock and record a run; ``LockedError`` while another live run holds it.
        ``force_unlock`` breaks a lock whose holder is gone (an expired lease, a dead pid); a live one only with
        ``force`` too, where the backend can tell (leases)."""

    def end_run(self, run_id: int, env: str, status: str) -> None:
        """Record how a run ended and release the lock it holds."""

    def release_lock(self, env: str) -> bool:
        """Release this process's lock on ``env`` alone (when recording the run's end failed); False when even
        that write failed."""

    def lock_holder(self, env: str) -> str | None:
        """Who holds ``env``'s lock, for ``ode status``: a line starting ``user@host pid N``; None when free."""

    def runs(self, env: str) -> list[RunRecord]:
        """The runs of ``env``, oldest first."""

    def close(self) -> None:
        """Release connections and stop background threads."""

    # -- drift checks --
    def record_drift_check(self, env: str, context: str, *, checked_at: str, drifted: list[dict[str, Any]] | None,
                           error: str | None = None) -> None:
        """Record a stack's drift check: the drifted resources (``[]`` none), or ``error`` (not checked)."""

    def record_heal(self, env: str, context: str, *, healed_at: str, run_id: int | None) -> None:
        """Record that a drifted stack was redeployed by run ``run_id``."""

    def drift_checks(self, env: str) -> list[dict[str, Any]]:
        """The last drift check of each stack of ``env`` (see :meth:`Registry.drift_checks`)."""


def _sqlite_is_a_backend(registry: Registry) -> RegistryBackend:
    # Never called: mypy checks here that the SQLite registry satisfies the protocol.
    return registry


def sqlite_state_dir(url: str, state_dir: str | Path) -> Path:
    """The directory of a ``sqlite://`` URL's ``registry.db``.

    As in SQLAlchemy, ``sqlite:///rel/registry.db`` is relative and ``sqlite:////abs/registry.db`` absolute; a URL
    may name the file or its directory. ``sqlite://`` alone means ``<state dir>/registry.db``.
    """
    parts = urlsplit(url)
    if parts.netloc:
        raise UsageError(f"--registry {url}: write sqlite:///relative/path or sqlite:////absolute/path")
    raw = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not raw:
        return Path(state_dir)
    path = Path(raw)
    if path.suffix == ".db":
        if path.name != "registry.db":
            raise UsageError(f"--registry {url}: the SQLite registry file is named registry.db; give its directory "
                             f"({path.parent})")
        return path.parent
    return path


def open_sqlite(url: str, state_dir: Path) -> Registry:
    """The ``sqlite`` entry point: the SQLite registry a ``sqlite://`` URL names."""
    return Registry(sqlite_state_dir(url, state_dir))


def _factory(scheme: str) -> RegistryFactory:
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if scheme not in found and scheme in _BUILTIN:
        found[scheme] = EntryPoint(scheme, _BUILTIN[scheme], ENTRY_POINT_GROUP)
    if scheme not in found:
        known = ", ".join(sorted(set(found) | set(_BUILTIN)))
        raise UsageError(f"--registry: no registry backend for scheme {scheme!r} (known: {known})")
    factory: RegistryFactory = found[scheme].load()
    return factory


def open_registry(url: str | None, state_dir: str | Path) -> RegistryBackend:
    """The registry ``url`` names (``sqlite:///...``, ``dynamodb://TABLE?region=R``, or any scheme a package
    declares under ``ode.registries``); None or empty: ``<state_dir>/registry.db``."""
    state = Path(state_dir)
    if not url:
        return Registry(state)
    scheme = urlsplit(url).scheme
    if not scheme:
        raise UsageError(f"--registry {url!r}: expected a URL such as sqlite:///.ode/registry.db or "
                         "dynamodb://TABLE?region=REGION")
    return _factory(scheme)(url, state)


@dataclass
class CopyReport:
    """What :func:`copy` moved."""

    environments: int = 0
    stacks: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"environments": self.environments, "stacks": self.stacks}


def copy(src: RegistryBackend, dst: RegistryBackend, *, overwrite: bool = False) -> CopyReport:
    """Copy every environment and stack of ``src`` into ``dst`` (for ``ode registry copy --to URL``).

    Refused while a run holds a lock in ``src`` (its stacks are changing), and, unless ``overwrite``, when ``dst``
    already knows one of the environments. Run history and locks stay behind: the copy starts with no run.
    """
    envs = src.environments()
    locked = [e.name for e in envs if src.lock_holder(e.name)]
    if locked:
        raise UsageError(f"registry copy: {', '.join(locked)} locked by a running `ode` (holder: "
                         f"{src.lock_holder(locked[0])}); wait for it to finish")
    if not overwrite:
        clash = [e.name for e in envs if dst.environment(e.name) is not None]
        if clash:
            raise UsageError(f"registry copy: the destination already has {', '.join(clash)}; use --overwrite to "
                             "replace them")
    report = CopyReport()
    for env in envs:
        dst.put_environment(env)
        report.environments += 1
        for old in dst.stacks(env.name):
            dst.forget_stack(env.name, old.context)
        for rec in src.stacks(env.name):
            _copy_stack(rec, dst)
            report.stacks += 1
    return report


def _copy_stack(rec: StackRecord, dst: RegistryBackend) -> None:
    """Rebuild ``rec`` in ``dst`` with the protocol's own writes (so any backend can be a destination)."""
    # Outputs are laid down by a success first: a failed or interrupted stack keeps its last outputs.
    dst.record_success(rec.env, rec.context, fingerprint=rec.fingerprint or "", inputs=rec.inputs,
                       outputs=rec.outputs, secret_outputs=rec.secret_outputs, engine=rec.engine or "",
                       simulated=rec.simulated, started_at=rec.started_at or "", finished_at=rec.finished_at or "",
                       duration_s=rec.duration_s or 0.0)
    if rec.status in ("running", "destroying"):
        dst.mark_running(rec.env, rec.context, engine=rec.engine or "", started_at=rec.started_at or "",
                         run_id=None, operation="destroy" if rec.status == "destroying" else "up")
    elif rec.status == "failed":
        dst.record_failure(rec.env, rec.context, error=rec.error or "", finished_at=rec.finished_at or "",
                           duration_s=rec.duration_s or 0.0)
