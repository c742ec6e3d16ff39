"""A run's hold on its environment: the registry's lock (a pid lock in SQLite, a lease in DynamoDB) taken for the
run, and the run recorded however it ends.

A crash is never recorded as a success: a run ends ``failed`` unless its block said otherwise (``interrupted`` on
Ctrl-C), and the lock is released even when recording the end fails.

**A lost lock.** The run's id fences every registry write it makes (see :class:`ode.registry.protocol.
RegistryBackend`). When one is refused, or the lease's heartbeat finds the lease taken over, :meth:`Run.lose`
records it once and tells whoever listens (the scheduler stops starting stacks, the executor cancels what it can).
The run then ends ``abandoned`` (the registry leaves the successor's lock and records alone) and
:class:`~ode.registry.errors.LeaseLostError` leaves the block: one line naming the successor, exit status 3.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..registry.errors import LeaseLostError, LockedError
from ..registry.protocol import RegistryBackend
from ..status import RunStatus


@dataclass
class Run:
    """A run in progress: its id in the registry, the status it ends with (``failed`` unless set), and whether it
    lost its lock (``lost``: the error, naming who took over)."""

    id: int
    status: RunStatus = RunStatus.FAILED
    env: str = ""
    lost: LeaseLostError | None = None
    _listeners: list[Callable[[LeaseLostError], None]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def lose(self, error: LeaseLostError) -> None:
        """Record that this run lost its lock (the first error is kept) and tell every listener, once."""
        with self._lock:
            if self.lost is not None:
                return
            self.lost = error
            listeners = list(self._listeners)
        for listener in listeners:
            listener(error)

    def on_lost(self, listener: Callable[[LeaseLostError], None]) -> Callable[[], None]:
        """Call ``listener`` when the lock is lost (at once if it is already); returns what stops listening."""
        with self._lock:
            lost = self.lost
            if lost is None:
                self._listeners.append(listener)
        if lost is not None:
            listener(lost)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    def check(self) -> None:
        """Raise :class:`LeaseLostError` when this run lost its lock."""
        if self.lost is not None:
            raise self.lost


@contextmanager
def held(registry: RegistryBackend, env: str, command: str, engine: str, *, run_id: int | None = None,
         force_unlock: bool = False, force: bool = False, run: Run | None = None) -> Iterator[Run]:
    """Take ``env``'s lock and record a run of ``command`` for the block; the block sets ``run.status``. With
    ``run_id`` (or ``run``), the caller holds the lock and records the run already: nothing is taken or released
    here. A run that lost its lock ends ``abandoned`` and :class:`LeaseLostError` leaves the block."""
    if run is not None or run_id is not None:
        yield run if run is not None else Run(int(run_id or 0), env=env)
        return
    try:
        taken = Run(registry.begin_run(env, command, engine, force_unlock=force_unlock, force=force), env=env)
    except LockedError:
        raise
    except Exception:
        release(registry, env)  # the write may have taken the lock before it failed
        raise
    try:
        yield taken
    except LeaseLostError as error:
        if error.env != env and taken.lost is None:  # another environment's run (a nested one) lost its lock
            _end(registry, taken.id, env, RunStatus.FAILED, failing=True)
            raise
        taken.lose(error)
        _abandon(registry, taken)
        raise (taken.lost or error) from None
    except KeyboardInterrupt:
        if taken.lost is not None:
            _abandon(registry, taken)
            raise taken.lost from None
        _end(registry, taken.id, env, RunStatus.INTERRUPTED, failing=True)
        raise
    except BaseException:
        if taken.lost is not None:
            _abandon(registry, taken)
            raise taken.lost from None
        _end(registry, taken.id, env, RunStatus.FAILED, failing=True)
        raise
    if taken.lost is not None:
        _abandon(registry, taken)
        raise taken.lost
    _end(registry, taken.id, env, taken.status, failing=False)


def _abandon(registry: RegistryBackend, run: Run) -> None:
    """End a run that lost its lock: ``abandoned`` on its own record where the registry can, never a write to the
    successor's lock or records (the registry's ``end_run`` sees the lock is not this run's)."""
    try:
        registry.end_run(run.id, run.env, RunStatus.ABANDONED)
    except Exception:  # noqa: BLE001 - the lost lock is what the user must hear about
        pass


def _end(registry: RegistryBackend, run_id: int, env: str, status: RunStatus, *, failing: bool) -> None:
    """Record the run's end and release the lock, trying again once and then releasing the lock alone when the
    write fails. When an error is already on its way out, a registry error here must not hide it."""
    try:
        registry.end_run(run_id, env, status)
    except Exception:
        try:
            registry.end_run(run_id, env, status)  # a write that failed once may go through now
            return
        except Exception:  # noqa: BLE001 - the first error is the one to report
            release(registry, env)
        if not failing:
            raise


def release(registry: RegistryBackend, env: str) -> None:
    """Last try at releasing this process's lock on ``env``; quiet, as an error is on its way out already."""
    try:
        release_lock = getattr(registry, "release_lock", None)
        if release_lock is not None:
            release_lock(env)
            return
        # A backend written before release_lock joined the protocol: end this process's last running run of
        # ``env``, which drops its lock.
        me = f" pid {os.getpid()}"
        if (registry.lock_holder(env) or "").endswith(me):
            mine = [r for r in registry.runs(env) if r.status == RunStatus.RUNNING and r.holder.endswith(me)]
            if mine:
                registry.end_run(mine[-1].id, env, RunStatus.FAILED)
    except Exception:  # noqa: BLE001 - see the docstring
        pass


def lease_lost(registry: RegistryBackend, env: str) -> LeaseLostError | None:
    """What the registry knows of a lost lock on ``env`` (None also for a backend written before fencing)."""
    found = getattr(registry, "lease_lost", None)
    return found(env) if callable(found) else None


def knows(registry: RegistryBackend, env: str) -> bool:
    """Whether the registry has any record of ``env`` (also of a backend written before ``knows`` joined the
    protocol)."""
    found = getattr(registry, "knows", None)
    if found is not None:
        return bool(found(env))
    return registry.environment(env) is not None or bool(registry.stacks(env))
