"""A run's hold on its environment: the registry's lock (a pid lock in SQLite, a lease in DynamoDB) taken for the
run, and the run recorded however it ends.

A crash is never recorded as a success: a run ends ``failed`` unless its block said otherwise (``interrupted`` on
Ctrl-C), and the lock is released even when recording the end fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..registry.errors import LockedError
from ..registry.protocol import RegistryBackend
from ..status import RunStatus


@dataclass
class Run:
    """A run in progress: its id in the registry, and the status it ends with (``failed`` unless set)."""

    id: int
    status: RunStatus = RunStatus.FAILED


@contextmanager
def held(registry: RegistryBackend, env: str, command: str, engine: str, *, run_id: int | None = None,
         force_unlock: bool = False, force: bool = False) -> Iterator[Run]:
    """Take ``env``'s lock and record a run of ``command`` for the block; the block sets ``run.status``. With
    ``run_id``, the caller holds the lock and records the run already: nothing is taken or released here."""
    if run_id is not None:
        yield Run(run_id)
        return
    try:
        run = Run(registry.begin_run(env, command, engine, force_unlock=force_unlock, force=force))
    except LockedError:
        raise
    except Exception:
        release(registry, env)  # the write may have taken the lock before it failed
        raise
    try:
        yield run
    except KeyboardInterrupt:
        _end(registry, run.id, env, RunStatus.INTERRUPTED, failing=True)
        raise
    except BaseException:
        _end(registry, run.id, env, RunStatus.FAILED, failing=True)
        raise
    _end(registry, run.id, env, run.status, failing=False)


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


def knows(registry: RegistryBackend, env: str) -> bool:
    """Whether the registry has any record of ``env`` (also of a backend written before ``knows`` joined the
    protocol)."""
    found = getattr(registry, "knows", None)
    if found is not None:
        return bool(found(env))
    return registry.environment(env) is not None or bool(registry.stacks(env))
