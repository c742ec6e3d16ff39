"""Where a stack's engine operation runs: the seam between the scheduler, which decides when, and whatever runs it.

    executor = LocalExecutor(engine)
    future = executor.submit(StackTask("up", spec, run_id=7), progress)
    result = future.result()                 # a StackResult: plain data (outputs, secret names, resources...)

A :class:`StackTask` is plain data: the operation, the stack's spec (its upstream values and config), the run it
belongs to, the attempt and how long it may take. What comes back is a :class:`~ode.engines.protocol.StackResult`,
plain data too. The coordinator (the runners of :mod:`ode.execution.runners`) does everything around it, the
registry writes and the publishing included, so an executor that runs the operation on another machine needs
nothing but the task.

:class:`LocalExecutor`, the default, runs the operation at once in the calling thread: one of the scheduler's
worker threads (:func:`ode.execution.scheduler.run_ready`'s pool, ``--parallel`` of them), so the thread pool is
the local executor's pool. An executor that hands tasks elsewhere returns a future that completes when the task
does; the runner waits for it in its worker thread, so ``--parallel`` bounds the tasks in flight either way.
Executors that run tasks on other machines live in :mod:`ode.executors` (Dask, AWS CodeBuild), found by the URL
scheme of ``--executor`` through the ``ode.executors`` entry points.

Whatever runs a task promises the same (the executors' conformance suite holds every one of them to it): one run
of a stack at a time (a second delivery of a task whose stack is running is refused with
:class:`DuplicateDeliveryError`, never run), a ``timeout_s`` that stops the operation (:class:`TaskTimeoutError`), a
:meth:`Executor.cancel` that stops it where the engine can be stopped, a worker that dies failing its task alone
(:class:`WorkerLostError`), and each result saying where it ran (``StackResult.worker``).
"""

from __future__ import annotations

import os
import socket
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..engines.protocol import Engine, EngineError, Operation, ProgressCallback, StackResult
from ..program import StackSpec

__all__ = ["DuplicateDeliveryError", "Executor", "LocalExecutor", "StackTask", "TaskTimeoutError",
           "WorkerLostError", "run_task", "this_process"]


class DuplicateDeliveryError(EngineError):
    """A task arrived for a stack that is running already (a retry of the distributed engine, a second delivery):
    refused, never run a second time at once. Not worth retrying at once: the first delivery is still at work."""


class WorkerLostError(EngineError):
    """The worker that ran the task died (its process was killed, its machine went away) before it answered."""


class TaskTimeoutError(EngineError):
    """The task took longer than its ``timeout_s``: its operation was asked to stop."""


def this_process(kind: str = "local") -> dict[str, Any]:
    """This process as a stack's ``worker``: its kind, host and pid."""
    return {"kind": kind, "host": socket.gethostname(), "pid": os.getpid()}


@dataclass(frozen=True)
class StackTask:
    """One operation on one stack, as plain data: what whoever runs it needs, and nothing of the coordinator."""

    operation: Operation
    spec: StackSpec
    #: The run it belongs to (a worker may name it in its logs, or fence a stack with it).
    run_id: int | None = None
    #: 1 for the first try, 2 for the retry after a transient error...
    attempt: int = 1
    #: ``refresh`` only: a refresh-preview (a drift check) that changes nothing.
    preview_only: bool = False
    #: Seconds the operation may take before it is asked to stop (None: no limit).
    timeout_s: float | None = None

    @property
    def stack(self) -> str:
        return self.spec.stack_name


@runtime_checkable
class Executor(Protocol):
    """What runs stack operations for the scheduler. Safe to call from several threads at once.

    An executor whose workers are elsewhere may also offer ``interrupt()``: the coordinator's Ctrl-C, passed on to
    them (the first asks every running operation to stop gracefully, a second stops them hard); at a terminal, the
    local executor's operations get the Ctrl-C themselves."""

    name: str

    def submit(self, task: StackTask, progress: ProgressCallback | None = None) -> Future[StackResult]:
        """Start ``task``; the future gives its result, or raises the engine's error (an ``EngineError``, whose
        ``transient`` says whether a retry may help). ``progress`` receives the engine's lines as they come. The
        result's ``worker`` says where it ran."""

    def cancel(self, stack: str) -> bool:
        """Ask the running operation on ``stack`` to stop, where it can be stopped; True when it was asked. The
        operation's future then ends, with an error or with what it did before it stopped."""

    def close(self) -> None:
        """Stop what this executor started (nothing for the local one)."""


class LocalExecutor:
    """Runs each task at once, in the calling thread, with ``engine``: the scheduler's worker threads are its pool.
    A running operation can be cancelled, or stopped at its ``timeout_s``, where the engine offers
    ``cancel(stack)`` (the simulated engine does); other engines' operations run to their end, and the coordinator
    records nothing of them once the run lost its lock. A task for a stack already running here is refused."""

    name = "local"
    #: Its tasks run on this machine: the local state backend and passphrase serve them.
    remote = False

    def __init__(self, engine: Engine, *, timeout_s: float | None = None):
        self.engine = engine
        #: The time limit of a task that sets none (``local://?timeout=SECONDS``).
        self.timeout_s = timeout_s
        self._running: set[str] = set()
        self._timed_out: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, task: StackTask, progress: ProgressCallback | None = None) -> Future[StackResult]:
        future: Future[StackResult] = Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            if task.stack in self._running:
                future.set_exception(DuplicateDeliveryError(
                    task.stack, f"refused: {task.stack} is running here already (run {task.run_id}); one run of a "
                                "stack at a time"))
                return future
            self._running.add(task.stack)
            self._timed_out.discard(task.stack)
        timer = None
        limit = task.timeout_s if task.timeout_s is not None else self.timeout_s
        if limit is not None:
            timer = threading.Timer(limit, self._time_out, (task.stack,))
            timer.daemon = True
            timer.start()
        try:
            result = _call(self.engine, task, progress)
            result.worker = this_process()
            future.set_result(result)
        except Exception as exc:  # noqa: BLE001 - handed to the runner through the future, as a remote one would be
            with self._lock:
                timed_out = task.stack in self._timed_out
            if timed_out:
                error: Exception = TaskTimeoutError(task.stack, f"timed out after {limit:g} s: its operation was "
                                                                "stopped", detail=str(exc))
                error.__cause__ = exc
                exc = error
            exc.worker = this_process()  # type: ignore[attr-defined]
            future.set_exception(exc)
        finally:
            if timer is not None:
                timer.cancel()
            with self._lock:
                self._running.discard(task.stack)
                self._timed_out.discard(task.stack)
        return future

    def _time_out(self, stack: str) -> None:
        with self._lock:
            if stack not in self._running:
                return
            self._timed_out.add(stack)
        self.cancel(stack)

    def cancel(self, stack: str) -> bool:
        with self._lock:
            if stack not in self._running:
                return False
        cancel = getattr(self.engine, "cancel", None)
        return bool(cancel(stack)) if callable(cancel) else False

    def running(self) -> list[str]:
        """The stacks whose operation is running now."""
        with self._lock:
            return sorted(self._running)

    def close(self) -> None:
        pass


def _call(engine: Engine, task: StackTask, progress: ProgressCallback | None) -> StackResult:
    """Run ``task``'s operation with ``engine``: what every executor does in the end, wherever it runs."""
    spec = task.spec
    if task.operation == "up":
        return engine.up(spec, progress)
    if task.operation == "destroy":
        return engine.destroy(spec, progress)
    if task.operation == "preview":
        return engine.preview(spec, progress)
    if task.operation == "refresh":
        if task.preview_only:
            return engine.refresh(spec, progress, preview_only=True)
        return engine.refresh(spec, progress)
    raise ValueError(f"unknown operation {task.operation!r}")


def run_task(engine: Engine, task: StackTask, progress: ProgressCallback | None = None) -> StackResult:
    """Run one task with ``engine`` where this is called (what a worker on another machine does with a task)."""
    return _call(engine, task, progress)
