"""What every executor that hands tasks to workers does on the coordinator, whatever the distributed engine.

A :class:`RemoteExecutor` turns each :class:`~ode.execution.executor.StackTask` into a task document
(:mod:`ode.executors.tasks`), hands it to its engine (:meth:`RemoteExecutor._deliver`, one per engine), passes the
worker's progress lines on as they come and keeps them in the stack's log (``<state dir>/logs/<run>/<stack>.log``,
linked from the stack's registry record), and completes the runner's future with the worker's result: a
:class:`~ode.engines.protocol.StackResult` whose secret outputs are read back here from the producer's state (they
never travel), or the worker's error. ``cancel(stack)`` asks a running task to stop (gracefully: the worker interrupts
its ``pulumi``); ``interrupt()`` (Ctrl-C) does so for every running task, and a second one stops them hard.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

from ..engines.protocol import EngineError, ProgressCallback, StackResult
from ..execution.executor import StackTask, WorkerLostError
from .opening import ExecutorSetup, ExecutorUrl, lease_url, require_shared_state
from .tasks import Dispatch, git_place, read_result, task_document

log = logging.getLogger("ode.executors")


class Delivery(Protocol):
    """A task handed to a distributed engine."""

    def cancel(self, hard: bool = False) -> None:
        """Ask the task to stop (``hard``: at once, without waiting for the engine to save its state)."""


def dispatch_for(setup: ExecutorSetup, url: ExecutorUrl, *, remote: bool) -> Dispatch:
    """What every task of this executor carries besides the stack's own: the engine and where its state and
    secrets are, the contracts and their commit, the lease store, the time limit. A remote executor refuses state
    or secrets its workers cannot use."""
    if remote:
        require_shared_state(setup, url.text)
    engine = setup.engine
    contracts = Path(setup.library.root).resolve()
    repo_path, commit = git_place(contracts)
    real = getattr(engine, "name", "") != "simulated"
    provider = getattr(engine, "secrets_provider", None)
    return Dispatch(engine=engine.name, state_dir=str(setup.state_dir.resolve()), contracts=str(contracts),
                    lease_url=lease_url(setup, remote=remote), lease_s=url.lease_s, repo_path=repo_path,
                    commit=commit, backend_url=getattr(engine, "backend_url", None) if real else None,
                    secrets_provider=provider if real and provider != "passphrase" else None,
                    engine_options=dict(setup.engine_options), timeout_s=url.timeout_s, ssm_place=setup.ssm_place)


class RemoteExecutor:
    """The coordinator's side of an executor whose tasks run on workers (see the module's docstring)."""

    name = "remote"

    def __init__(self, setup: ExecutorSetup, url: ExecutorUrl, *, remote: bool, dispatch: Dispatch | None = None):
        self.setup = setup
        self.url = url
        #: Whether its workers may be on other machines (then the state and secrets must be shared).
        self.remote = remote
        self.dispatch = dispatch or dispatch_for(setup, url, remote=remote)
        self._lock = threading.Lock()
        self._running: dict[str, list[Delivery]] = {}
        self._interrupts = 0
        self.logs = setup.state_dir / "logs"

    # -- what each engine provides -----------------------------------------------------------------------------

    def _deliver(self, key: str, task: StackTask, document: dict[str, Any], line: Callable[[str], None],
                 done: Callable[[dict[str, Any] | BaseException], None]) -> Delivery:
        """Hand ``document`` to the engine under ``key``; call ``line`` with each progress line as it comes and
        ``done`` once with the result document (or the error that stands for it: a worker that died...)."""
        raise NotImplementedError

    def _log_link(self, task: StackTask, answer: dict[str, Any] | BaseException, kept: Path | None) -> str | None:
        """Where the stack's full log is (by default the file kept here)."""
        return str(kept) if kept is not None else None

    # -- the Executor protocol -----------------------------------------------------------------------------------

    def submit(self, task: StackTask, progress: ProgressCallback | None = None) -> Future[StackResult]:
        future: Future[StackResult] = Future()
        future.set_running_or_notify_cancel()
        document = task_document(task, self.dispatch)
        key = f"ode-{task.stack}-r{task.run_id or 0}-a{task.attempt}-{secrets.token_hex(4)}"
        lines: list[str] = []
        path = self.logs / str(task.run_id or 0) / f"{task.stack}.{task.attempt}.log"

        def line(text: str) -> None:
            lines.append(text)
            if progress is not None:
                progress(task.stack, text)

        holder: list[Delivery] = []
        finished: list[bool] = []

        def done(answer: dict[str, Any] | BaseException) -> None:
            with self._lock:
                finished.append(True)
                running = self._running.get(task.stack, [])
                for delivery in holder:
                    if delivery in running:
                        running.remove(delivery)
                if not running:
                    self._running.pop(task.stack, None)
            kept = self._keep_log(path, lines, answer)
            try:
                future.set_result(self._finish(task, answer, self._log_link(task, answer, kept)))
            except BaseException as exc:  # noqa: BLE001 - the runner gets it through the future
                future.set_exception(exc)

        try:
            delivery = self._deliver(key, task, document, line, done)
        except EngineError as exc:
            future.set_exception(exc)
            return future
        except Exception as exc:  # noqa: BLE001 - an engine that refused the task fails this stack alone
            future.set_exception(EngineError(task.stack, f"the {self.name} executor could not start it: "
                                                         f"{type(exc).__name__}: {exc}"))
            return future
        with self._lock:
            if not finished:
                holder.append(delivery)
                self._running.setdefault(task.stack, []).append(delivery)
        return future

    def cancel(self, stack: str) -> bool:
        with self._lock:
            deliveries = list(self._running.get(stack, []))
        for delivery in deliveries:
            delivery.cancel(hard=False)
        return bool(deliveries)

    def interrupt(self) -> None:
        """Ctrl-C on the coordinator: every running task is asked to stop (its worker interrupts the engine, which
        saves its state); a second time, they are stopped hard."""
        with self._lock:
            self._interrupts += 1
            hard = self._interrupts > 1
            deliveries = [d for ds in self._running.values() for d in ds]
        for delivery in deliveries:
            delivery.cancel(hard=hard)

    def running(self) -> list[str]:
        """The stacks with a task handed out and not answered yet."""
        with self._lock:
            return sorted(self._running)

    def close(self) -> None:
        pass

    # -- results -------------------------------------------------------------------------------------------------

    def _keep_log(self, path: Path, lines: list[str], answer: dict[str, Any] | BaseException) -> Path | None:
        """The worker's lines (what the result carries, else what arrived) in the stack's log file."""
        kept = answer.get("lines") if isinstance(answer, dict) else None
        text = "\n".join(kept if isinstance(kept, list) else lines)
        if isinstance(answer, BaseException):
            text += f"\n{answer}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
        except OSError:
            return None
        return path.resolve()

    def _finish(self, task: StackTask, answer: dict[str, Any] | BaseException, log_link: str | None) -> StackResult:
        if isinstance(answer, BaseException):
            if getattr(answer, "log", None) is None:
                answer.log = log_link  # type: ignore[attr-defined]
            raise answer
        try:
            result = read_result(answer)
        except EngineError as error:
            if getattr(error, "log", None) is None:
                error.log = log_link  # type: ignore[attr-defined]
            raise
        result.log = result.log or log_link
        if result.secret_outputs and task.operation == "up":
            self._read_back(task, result)
        return result

    def _read_back(self, task: StackTask, result: StackResult) -> None:
        """The real values of the result's secret outputs, read here from the stack's state (in memory only, for
        the consumers' fingerprints); a consumer's worker reads them itself all the same."""
        try:
            stored = self.setup.engine.outputs(task.spec)
        except Exception as exc:  # noqa: BLE001 - consumers' workers read them themselves
            log.warning("%s: its secret outputs could not be read back from its state (%s); its consumers' workers "
                        "read them themselves", task.stack, str(exc).splitlines()[0] if str(exc) else exc)
            return
        for name in result.secret_outputs:
            if name in stored:
                result.outputs[name] = stored[name]


def lost(stack: str, message: str, worker: dict[str, Any] | None = None) -> EngineError:
    """A worker that died or never answered: :class:`~ode.execution.executor.WorkerLostError` with where."""

    error = WorkerLostError(stack, message)
    error.worker = worker  # type: ignore[attr-defined]
    return error
