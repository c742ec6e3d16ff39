"""The registry as a protocol, whichever store is behind it (SQLite, DynamoDB, one a package declares)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .errors import LeaseLostError
from .records import EnvironmentRecord, LockInfo, RegistryIdentity, RunRecord, StackRecord


@runtime_checkable
class RegistryBackend(Protocol):
    """What the orchestrator, the ephemeral-environment service and the CLI need from a registry.

    Every method is atomic on its own and safe to call from several threads. Secret output values are never
    given to a registry: ``record_success`` gets public outputs and the *names* of the secret ones.

    **Fencing.** From :meth:`begin_run` to :meth:`end_run` (or :meth:`release_lock`), the run's id is a fencing
    token: every write this registry object makes about that environment (its record, its stacks, its drift
    checks) is applied only if that run still holds the environment's lock, checked atomically with the write (a
    condition in the same DynamoDB transaction, a check inside the same SQLite transaction). When another run took
    the lock over (or it was broken), the write changes nothing and raises :class:`LeaseLostError`, naming the
    successor; :meth:`lease_lost` then says so too, as it does when a lease's heartbeat finds the lease gone. Writes
    about environments this object holds no lock on (``registry copy``, tests) are not fenced.
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
        """Record how a run ended and release the lock it holds. A run that lost its lock is recorded
        ``abandoned`` instead (only if its record still says running or abandoned), and the successor's lock is
        left as it is."""

    def release_lock(self, env: str) -> bool:
        """Release this process's lock on ``env`` alone (when recording the run's end failed); False when even
        that write failed."""

    def lease_lost(self, env: str) -> LeaseLostError | None:
        """What this object knows, without asking the store, of a lost lock on ``env``: the error a fenced write
        raised or a heartbeat found, while the run is not ended; None while the lock is held (or none is)."""

    def lock_holder(self, env: str) -> str | None:
        """Who holds ``env``'s lock, for ``ode status``: a line starting ``user@host pid N``; None when free."""

    def lock_info(self, env: str) -> LockInfo | None:
        """Who holds ``env``'s lock and whether that holder can still be working (its process gone, its lease
        expired); None when nobody holds it."""

    def runs(self, env: str) -> list[RunRecord]:
        """The runs of ``env``, oldest first."""

    def identity(self) -> RegistryIdentity:
        """What store this is (kind, file or table, region, endpoint...), the same however its URL was spelled:
        ``registry copy`` refuses to copy a store onto itself."""

    def close(self) -> None:
        """Release connections and stop background threads."""

    # -- where stacks ran (optional: callers look for them with getattr) --
    def record_worker(self, env: str, context: str, *, worker: dict[str, Any], log: str | None) -> None:
        """Record where a stack's last operation ran (``{"kind", "host", "pid"}``, a build's id) and its log."""

    def workers(self, env: str) -> dict[str, dict[str, Any]]:
        """Where each stack of ``env`` last ran: context -> ``{"worker", "log"}``."""

    # -- drift checks --
    def record_drift_check(self, env: str, context: str, *, checked_at: str, drifted: list[dict[str, Any]] | None,
                           error: str | None = None) -> None:
        """Record a stack's drift check: the drifted resources (``[]`` none), or ``error`` (not checked)."""

    def record_heal(self, env: str, context: str, *, healed_at: str, run_id: int | None) -> None:
        """Record that a drifted stack was redeployed by run ``run_id``."""

    def drift_checks(self, env: str) -> list[dict[str, Any]]:
        """The last drift check of each stack of ``env`` (see :meth:`Registry.drift_checks`)."""
