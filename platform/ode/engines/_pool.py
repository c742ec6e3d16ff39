"""Where the simulated engine's programs run: in this process, one at a time, or in worker processes, several at
once.

Pulumi's mock runtime is global to a process (its settings, its root stack, its event loop): programs in threads of
one process hang or run slower than one after another. A :class:`ProgramRunner` runs them in worker processes
instead, forked from a server that imported pulumi, pulumi_aws and the components once, so that as many programs run
at once as there are workers:

    with ProgramRunner(library, eager=True) as runner:   # its workers start now and stop on leaving the block
        run = runner.run(spec)                           # from any thread; at most `workers` programs at once

An *eager* runner is for work known to be large (``ode check`` previews every stack of an environment); while it is
open, :func:`run_program` sends that library's programs to it from anywhere (the policy gate's previews included). An
*adaptive* runner (an engine's own) runs programs here until several are asked for at the same time in a run of many
stacks; it then starts its workers and sends programs to them once the first is ready. Either way a program gives
the same result: it runs under the same mocks, with this process's environment variables and working directory, and
its resources come back in the program's order of construction.

``ODE_PROGRAM_WORKERS`` sets the number of worker processes (0 or 1: none); by default a run of 24 stacks or more
gets one per CPU, at most 4.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import threading
import weakref
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contracts import ContractLibrary
from ..errors import UsageError
from ..program import StackSpec, build
from .protocol import ProgramError, ResourceChange

#: The variable that sets how many worker processes run programs.
WORKERS_VARIABLE = "ODE_PROGRAM_WORKERS"
#: Most worker processes by default: each holds pulumi and pulumi_aws (about 200 MB), and programs are short.
DEFAULT_MOST_WORKERS = 4
#: Most worker processes a user may ask for.
MOST_WORKERS = 64
#: Stacks from which a run gets worker processes unless ``ODE_PROGRAM_WORKERS`` says otherwise: a smaller run is
#: done (a tenth of a second a program) before the workers would be ready (a second or two).
PARALLEL_FROM = 24
#: Programs an adaptive runner runs here before it starts workers: a small run ends before workers would be ready.
ADAPT_AFTER = 4


@dataclass
class ProgramRun:
    """What the program of one stack made under mocks."""

    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: frozenset[str] = frozenset()
    resources: list[ResourceChange] = field(default_factory=list)


def program_workers(stacks: int) -> int:
    """How many worker processes to run the programs of ``stacks`` stacks in (1: none, programs run here).

    ``ODE_PROGRAM_WORKERS`` decides where it is set (0 or 1: none); else runs of at least 24 stacks get one worker per
    CPU, at most 4 (a smaller run is done before workers would be ready). A value that is not a whole number from 0
    to 64 is a :class:`UsageError` naming the variable."""
    given = os.environ.get(WORKERS_VARIABLE, "").strip()
    if not given:
        wanted = min(os.cpu_count() or 1, DEFAULT_MOST_WORKERS) if stacks >= PARALLEL_FROM else 1
    else:
        try:
            wanted = int(given)
        except ValueError:
            wanted = -1
        if not 0 <= wanted <= MOST_WORKERS:
            raise UsageError(f"{WORKERS_VARIABLE}={given!r}: a number of worker processes from 0 to {MOST_WORKERS}")
    return max(1, min(wanted, stacks))


def run_here(spec: StackSpec, library: ContractLibrary) -> ProgramRun:
    """Run the stack's program in this process under pulumi's mocks (callers are serialized); a program that
    raises is a :class:`ProgramError` naming the stack."""
    from ._mocks import record  # deferred: pulumi's mock runtime costs seconds, and a no-op `up` runs no program

    place = library.environment(spec.settings_env)
    try:
        recording = record(build(spec, library), project=library.project, stack=spec.stack_name,
                           account=place.account, region=place.region)
    except Exception as exc:  # noqa: BLE001 - whatever the program raised, named with its stack
        raise ProgramError(spec.stack_name, f"program failed: {type(exc).__name__}: {exc}") from exc
    resources = [ResourceChange(type=r.type, name=r.name, parent=r.parent, inputs=r.inputs,
                                dependencies=list(r.dependencies), checked_inputs=r.checked_inputs,
                                outputs=r.outputs)
                 for r in recording.resources]
    return ProgramRun(outputs=recording.outputs, secret_outputs=frozenset(recording.secret_outputs),
                      resources=resources)


# -- the workers' side -------------------------------------------------------------------------------------------

_WORKER_LIBRARY: ContractLibrary | None = None


def _start_worker(library: ContractLibrary) -> None:
    """A worker's start: the library it runs programs of. Ctrl-C is for the parent, which stops the workers; a
    parent that is killed (``kill -9``) cannot, so the worker ends itself when its parent is gone."""
    global _WORKER_LIBRARY
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_LIBRARY = library
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        threading.Thread(target=_end_with, args=(parent.sentinel,), name="ode-parent-watch", daemon=True).start()


def _end_with(sentinel: int) -> None:
    # A worker waits on its task queue, whose other end it holds itself: it would wait for ever after its parent.
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


def _ready() -> int:
    return os.getpid()


def _work(spec: StackSpec, environ: dict[str, str], cwd: str) -> tuple[int, str, Any]:
    """One program in a worker: (this process's id, then "ok" and the ProgramRun, "error" and the ProgramError's
    words, or "here" and None when it failed otherwise: the parent runs it itself, so that it raises exactly as it
    would there)."""
    if os.environ != environ:  # the program reads the environment as the parent has it now (an endpoint, a region)
        os.environ.clear()
        os.environ.update(environ)
    if os.getcwd() != cwd:
        os.chdir(cwd)
    assert _WORKER_LIBRARY is not None
    try:
        return os.getpid(), "ok", run_here(spec, _WORKER_LIBRARY)
    except ProgramError as exc:
        return os.getpid(), "error", str(exc).removeprefix(f"{spec.stack_name}: ")
    except Exception:  # noqa: BLE001 - the parent repeats it here, where it raises as it always did
        return os.getpid(), "here", None


# -- the parent's side -------------------------------------------------------------------------------------------

#: Names of the AWS modules the components use (``aws.ec2.Vpc`` -> ``ec2``), imported once by the fork server.
_AWS_MODULE = re.compile(r"\baws\.([a-z][a-z0-9_]*)\.[A-Za-z_]")


def _preload() -> list[str]:
    """What the fork server imports before it forks workers: pulumi, pulumi_aws's modules that the components use,
    the components and the program (so a worker's first program does not pay for them)."""
    import components

    folder = Path(components.__file__).resolve().parent
    aws = sorted({m for path in folder.glob("*.py") for m in _AWS_MODULE.findall(path.read_text(errors="replace"))})
    return ["pulumi", "pulumi_aws", *(f"pulumi_aws.{m}" for m in aws), "ode.engines._mocks", __name__,
            *(f"components.{m}" for m in components.MODULES.values())]


_NO_MAIN = threading.local()


def _preparation_data(original: Any) -> Any:
    """``multiprocessing.spawn.get_preparation_data`` that leaves the parent's ``__main__`` out for ode's workers.

    A spawned or fork-server child imports the parent's main script again before it works, so a script that calls
    ode at its top level without ``if __name__ == "__main__"`` would start itself over in every worker. The workers
    need nothing from it (their work is in this module), so they are not given it; other processes are."""

    def prepared(name: str) -> Any:
        data = original(name)
        if getattr(_NO_MAIN, "on", False):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    prepared.leaves_main_out = True  # type: ignore[attr-defined]
    return prepared


def _base_context() -> Any:
    """Fork server where the platform has it (workers forked from a process that never ran a thread, already warm),
    else spawn. Never a plain fork: this process runs threads, whose locks a forked child would inherit held."""
    name = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(name)


_BASE = type(_base_context())


class _WorkerProcess(_BASE.Process):  # type: ignore[misc,name-defined]
    """A worker process started without the parent's main script (see :func:`_preparation_data`)."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:  # noqa: N802 - multiprocessing's name
        _NO_MAIN.on = True
        try:
            return _BASE.Process._Popen(process_obj)
        finally:
            _NO_MAIN.on = False


class _WorkerContext(_BASE):  # type: ignore[misc,valid-type]
    Process = _WorkerProcess


def _context() -> Any:
    """The multiprocessing context of the workers; the fork server imports :func:`_preload` first."""
    from multiprocessing import spawn

    if not getattr(spawn.get_preparation_data, "leaves_main_out", False):
        spawn.get_preparation_data = _preparation_data(spawn.get_preparation_data)
    context = _WorkerContext()
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(_preload())
    return context


def _shutdown(executor: ProcessPoolExecutor) -> None:
    executor.shutdown(wait=True, cancel_futures=True)


class ProgramRunner:
    """Runs the programs of one library's stacks under mocks: here, or in at most ``workers`` worker processes.
    See the module's docstring. Thread-safe; ``close()`` (or leaving ``with``) stops the workers."""

    def __init__(self, library: ContractLibrary, *, workers: int | None = None, eager: bool = False):
        self.library = library
        self.workers = program_workers(len(library.contexts)) if workers is None else workers
        self.eager = eager
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._finalizer: weakref.finalize | None = None
        self._ready = threading.Event()
        self._closed = False
        self._asked = 0
        self._running = 0
        self._starting = False
        #: The ids of the worker processes that answered (for tests and diagnostics).
        self.pids: set[int] = set()

    @property
    def parallel(self) -> bool:
        """Whether programs go to worker processes now."""
        return self._executor is not None and self._ready.is_set()

    def __enter__(self) -> ProgramRunner:
        if self.eager:
            self.start()
        with _ACTIVE_LOCK:
            _ACTIVE.setdefault(id(self.library), []).append(self)
        return self

    def __exit__(self, *_: object) -> None:
        with _ACTIVE_LOCK:
            runners = _ACTIVE.get(id(self.library), [])
            if self in runners:
                runners.remove(self)
            if not runners:
                _ACTIVE.pop(id(self.library), None)
        self.close()

    def start(self) -> None:
        """Start the worker processes (nothing when fewer than two are asked for, or when closed)."""
        with self._lock:
            if self._executor is not None or self._closed or self.workers < 2:
                return
            executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=_context(),
                                           initializer=_start_worker, initargs=(self.library,))
            self._executor = executor
            # Stopped however this runner ends: closed, collected, or at the interpreter's exit.
            self._finalizer = weakref.finalize(self, _shutdown, executor)
        try:
            for _ in range(self.workers):
                executor.submit(_ready).add_done_callback(self._answered)
        except RuntimeError:
            pass  # closed meanwhile: its programs run here

    def _answered(self, future: Future[int]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.pids.add(future.result())
            self._ready.set()

    def close(self) -> None:
        """Stop the worker processes (each finishes the program it runs; nothing queued starts)."""
        with self._lock:
            self._closed = True
            finalizer, self._finalizer, self._executor = self._finalizer, None, None
            self._ready.clear()
        if finalizer is not None:
            finalizer()

    def run(self, spec: StackSpec) -> ProgramRun:
        """Run the stack's program: in a worker when they are ready, else here. Raises :class:`ProgramError`."""
        with self._lock:
            self._asked += 1
            self._running += 1
            start = (not self.eager and not self._starting and self._executor is None and not self._closed
                     and self.workers > 1 and self._running > 1 and self._asked > ADAPT_AFTER)
            self._starting = self._starting or start
        try:
            if start:  # the fork server takes a second or two to be ready: programs run here meanwhile
                threading.Thread(target=self.start, name="ode-program-workers", daemon=True).start()
            executor = self._executor
            if executor is not None and (self.eager or self._ready.is_set()):
                return self._remote(executor, spec)
            return run_here(spec, self.library)
        finally:
            with self._lock:
                self._running -= 1

    def _remote(self, executor: ProcessPoolExecutor, spec: StackSpec) -> ProgramRun:
        try:
            pid, status, value = executor.submit(_work, spec, dict(os.environ), os.getcwd()).result()
        except BrokenProcessPool:
            # A worker died (killed, out of memory): this program and the later ones run here, as without workers.
            self.close()
            return run_here(spec, self.library)
        except Exception:  # noqa: BLE001 - closed meanwhile, or a spec that cannot travel: run it here instead
            return run_here(spec, self.library)
        self.pids.add(pid)
        if status == "ok":
            return value  # type: ignore[no-any-return]
        if status == "error":
            raise ProgramError(spec.stack_name, value)
        return run_here(spec, self.library)


_ACTIVE: dict[int, list[ProgramRunner]] = {}
_ACTIVE_LOCK = threading.Lock()


def active_runner(library: ContractLibrary) -> ProgramRunner | None:
    """The runner opened (``with``) for ``library`` most recently and still open, if any."""
    with _ACTIVE_LOCK:
        runners = _ACTIVE.get(id(library))
        return runners[-1] if runners else None


def run_program(spec: StackSpec, library: ContractLibrary, runner: ProgramRunner | None = None) -> ProgramRun:
    """Run the stack's program: in the runner open for ``library`` (``with``), else in ``runner``, else here."""
    chosen = active_runner(library) or runner
    return chosen.run(spec) if chosen is not None else run_here(spec, library)
