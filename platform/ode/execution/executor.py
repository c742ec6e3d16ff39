"""Where a stack's engine operation runs: the seam between the scheduler, which decides when, and whatever runs it.

    executor = LocalExecutor(engine)
    future = executor.submit(StackTask("up", spec, run_id=7), progress)
    result = future.result()                 # a StackResult: plain data (outputs, secret names, resources...)

A :class:`StackTask` is plain data: the operation, the stack's spec (its upstream values and config), the run it
belongs to and the attempt. What comes back is a :class:`~ode.engines.protocol.StackResult`, plain data too. The
coordinator (the runners of :mod:`ode.execution.runners`) does everything around it, the registry writes and the
publishing included, so an executor that runs the operation on another machine needs nothing but the task.

:class:`LocalExecutor`, the default, runs the operation at once in the calling thread: one of the scheduler's
worker threads (:func:`ode.execution.scheduler.run_ready`'s pool, ``--parallel`` of them), so the thread pool is
the local executor's pool. An executor that hands tasks elsewhere returns a future that completes when the task
does; the runner waits for it in its worker thread, so ``--parallel`` bounds the tasks in flight either way.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..engines.protocol import Engine, Operation, ProgressCallback, StackResult
from ..program import StackSpec

__all__ = ["Executor", "LocalExecutor", "StackTask", "run_task"]


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

    @property
    def stack(self) -> str:
        return self.spec.stack_name


@runtime_checkable
class Executor(Protocol):
    """What runs stack operations for the scheduler. Safe to call from several threads at once."""

    name: str

    def submit(self, task: StackTask, progress: ProgressCallback | None = None) -> Future[StackResult]:
        """Start ``task``; the future gives its result, or raises the engine's error (an ``EngineError``, whose
        ``transient`` says whether a retry may help). ``progress`` receives the engine's lines as they come."""

    def cancel(self, stack: str) -> bool:
        """Ask the running operation on ``stack`` to stop, where it can be stopped; True when it was asked. The
        operation's future then ends, with an error or with what it did before it stopped."""

    def close(self) -> None:
        """Stop what this executor started (nothing for the local one)."""


class LocalExecutor:
    """Runs each task at once, in the calling thread, with ``engine``: the scheduler's worker threads are its pool.
    A running operation can be cancelled where the engine offers ``cancel(stack)`` (the simulated engine does);
    other engines' operations run to their end, and the coordinator records nothing of them once the run lost its
    lock."""

    name = "local"

    def __init__(self, engine: Engine):
        self.engine = engine
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, task: StackTask, progress: ProgressCallback | None = None) -> Future[StackResult]:
        future: Future[StackResult] = Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            self._running.add(task.stack)
        try:
            future.set_result(_call(self.engine, task, progress))
        except Exception as exc:  # noqa: BLE001 - handed to the runner through the future, as a remote one would be
            future.set_exception(exc)
        finally:
            with self._lock:
                self._running.discard(task.stack)
        return future

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
