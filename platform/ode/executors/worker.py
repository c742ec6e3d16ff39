"""What a worker does with one task: ``ode stack run --task FILE|-`` (and nothing else runs a task elsewhere).

    answer, status = run_document(json.load(sys.stdin), progress=print_line)

1. read the task (one line naming a bad field, exit status 2);
2. find the contracts (the path the coordinator named, or the same folder of this worker's checkout) and check
   they are at the task's commit;
3. take the stack's lease (:mod:`ode.executors.leases`): a second delivery is refused, never run at once;
4. read each secret upstream value where the task says (the producer's state through the engine, or its SSM
   SecureString), in memory only: every progress line is masked with them;
5. run the operation with the engine the task names (its state backend and secrets provider from the task, the
   policy gate installed as on the coordinator), renewing the lease, within the task's time limit;
6. answer with a result document (:func:`ode.executors.tasks.result_document`), and release the lease.

**Stopping.** Ctrl-C, SIGTERM (a stopped build, a dying Dask worker passes it on) or the time limit ask the
operation to stop: the engine's ``cancel`` where it has one, and SIGINT to this process's children (the ``pulumi``
CLI, which then cancels and saves its state, as at a terminal's Ctrl-C). A second signal stops waiting. An
operation that does not end within :data:`GRACE_S` of being asked is left: its lease is not released (it may still
be running), and runs out.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import aws_clients, git
from ..contracts import load_library
from ..engines.factory import make_engine
from ..engines.protocol import Engine, EngineError, StackNotFoundError, StackResult
from ..errors import OdeError, UsageError
from ..execution.executor import StackTask, TaskTimeoutError, run_task
from ..masking import SECRET_MASK
from ..policy.gate import install_gate
from ..program import StackSpec
from .leases import Heartbeat, Lease, StackLeases, open_leases
from .tasks import SecretRef, TaskDocument, read_task, result_document

#: Seconds an operation asked to stop is waited for before the worker answers without it.
GRACE_S = float(os.environ.get("ODE_CANCEL_GRACE_S", "30") or 30)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def worker_identity() -> dict[str, Any]:
    """This worker as a stack's ``worker``: a CodeBuild build's id where there is one, else host and pid."""
    found: dict[str, Any] = {"kind": os.environ.get("ODE_WORKER_KIND") or "process", "host": socket.gethostname(),
                             "pid": os.getpid()}
    if os.environ.get("CODEBUILD_BUILD_ID"):
        found.update(kind="codebuild", build_id=os.environ["CODEBUILD_BUILD_ID"])
    return found


def find_contracts(task: TaskDocument, root: Path | None = None) -> Path:
    """The contracts of ``task`` on this worker: the coordinator's path where this machine has it, else the same
    folder of this worker's checkout (``root``, else the git work tree of the current directory); at the task's
    commit when it names one."""

    candidates = [Path(task.contracts)]
    if task.repo_path is not None:
        base = root
        if base is None:
            try:
                base = git.top(Path.cwd(), purpose="to find the checkout a task runs in")
            except UsageError:
                base = Path.cwd()
        candidates.append(base / task.repo_path)
    for folder in candidates:
        if not (folder / "environments.yaml").is_file():
            continue
        if task.commit:
            try:
                head = git.run(folder, "rev-parse", "HEAD", purpose="to check the task's commit").strip()
            except UsageError:
                head = None
            if head is not None and head != task.commit:
                raise UsageError(f"task: commit: this worker's checkout ({folder}) is at {head[:12]}, the task is "
                                 f"for {task.commit[:12]}: check that commit out (CodeBuild: the build's source "
                                 "version)")
        return folder
    raise UsageError(f"task: contracts: no contracts library at {' or '.join(str(c) for c in candidates)} on this "
                     "worker")


def make_worker_engine(task: TaskDocument, contracts: Path) -> Engine:
    """The engine the task names, as the coordinator opened it: its state backend and secrets provider, the
    simulated engine's faults, and the policy gate."""

    library = load_library(contracts)
    # The coordinator's state directory where this machine has it (workers beside it), else this worker's own.
    state_dir = Path(os.environ.get("ODE_STATE_DIR") or (task.state_dir if Path(task.state_dir).is_dir() else ".ode"))
    options: dict[str, Any] = {}
    if task.engine != "simulated":
        if task.backend_url:
            options["backend_url"] = task.backend_url
        if task.secrets_provider:
            options["secrets_provider"] = task.secrets_provider
    faults = task.engine_options if task.engine == "simulated" else {}
    engine = make_engine(task.engine, library, state_dir, failures=tuple(faults.get("failures") or ()),
                         delays={str(k): float(v) for k, v in (faults.get("delays") or {}).items()}, **options)
    if "run_programs" in faults and hasattr(engine, "run_programs"):
        # A rehearsal runs the stacks' programs on the workers exactly when it does on the coordinator.
        engine.run_programs = bool(faults["run_programs"])
    install_gate(engine, library, state_dir)
    return engine


def read_secrets(task: TaskDocument, engine: Engine, contracts: Path) -> dict[tuple[str, str, str], Any]:
    """Each secret upstream value, read where its reference says: SSM first where named (one call), else the
    producer's state through ``engine`` (each candidate environment in turn)."""

    found: dict[tuple[str, str, str], Any] = {}
    states: dict[tuple[str, str], dict[str, Any]] = {}
    for ref in task.secret_upstream:
        key = (ref.producer, ref.interface, ref.field)
        if ref.ssm is not None:
            value = _from_ssm(ref)
            if value is not None:
                found[key] = value
                continue
        problems = []
        for env, context, base in ref.states:
            if (env, context) not in states:
                spec = StackSpec(project=task.project, env=env, context=context, contracts_dir=contracts,
                                 base_env=base)
                try:
                    states[(env, context)] = engine.outputs(spec)
                except StackNotFoundError as exc:
                    problems.append(str(exc).splitlines()[0])
                    continue
            outputs = states[(env, context)]
            fields = outputs.get(ref.interface)
            if isinstance(fields, dict) and ref.field in fields:
                found[key] = fields[ref.field]
                break
            problems.append(f"{env}.{context} has no {ref.interface}.{ref.field}")
        else:
            raise EngineError(task.stack, f"its secret upstream value {ref.producer}.{ref.interface}.{ref.field} "
                                          f"could not be read on the worker: {'; '.join(problems) or 'nowhere named'}")
    return found


def _from_ssm(ref: SecretRef) -> Any:
    import json


    assert ref.ssm is not None
    name, region = ref.ssm
    try:
        got = aws_clients.client("ssm", region).get_parameter(Name=name, WithDecryption=True)
        return json.loads(got["Parameter"]["Value"]).get(ref.field)
    except Exception:  # noqa: BLE001 - the producer's state is read instead
        return None


def _children() -> list[int]:
    """This process's children (Linux's /proc; elsewhere none are known)."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat") if Path("/proc").is_dir() else []:
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[1] == str(me):
            found.append(int(entry.parent.name))
    return found


def die_with_parent() -> None:
    """When started by a Dask worker (``ODE_PARENT_PID``), end with it: the kernel sends SIGTERM when the parent
    dies (Linux), which stops the operation as Ctrl-C does and releases the lease."""
    parent = os.environ.pop("ODE_PARENT_PID", "")
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != parent:  # the parent died before the call took effect
        os.kill(os.getpid(), signal.SIGTERM)


class _Masked:
    """Progress lines with every secret value read for the task replaced by ``[secret]``."""

    def __init__(self, out: Callable[[str], None]):
        self.out = out
        self.values: list[str] = []

    def hide(self, values: dict[tuple[str, str, str], Any]) -> None:
        self.values = sorted({str(v) for v in values.values() if v is not None and len(str(v)) >= 4}, key=len,
                             reverse=True)

    def __call__(self, stack: str, line: str) -> None:
        for value in self.values:
            line = line.replace(value, SECRET_MASK)
        self.out(line)


def run_document(doc: Any, *, progress: Callable[[str], None], root: Path | None = None,
                 leases: StackLeases | None = None) -> tuple[dict[str, Any], int]:
    """Run one task document where this is called: (the result document, the exit status). Never raises for a
    stack's failure or a bad task: the result says what went wrong."""
    started = time.perf_counter()
    worker = worker_identity()
    stack = operation = "?"
    if isinstance(doc, dict):
        stack, operation = f"{doc.get('env')}.{doc.get('context')}", str(doc.get("operation"))
    try:
        task = read_task(doc)
        contracts = find_contracts(task, root)
        engine = make_worker_engine(task, contracts)
        store = leases or open_leases(task.lease_url)
    except OdeError as exc:
        return result_document(stack, operation, error=exc, worker=worker), EXIT_USAGE
    holder = {**worker, "run_id": task.run_id, "attempt": task.attempt}
    try:
        lease = store.acquire(task.stack, holder, task.lease_s)
    except EngineError as exc:
        return result_document(task.stack, task.operation, error=exc, worker=worker), EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - a lease store that cannot be used: the stack does not run
        error = EngineError(task.stack, f"its lease could not be taken ({task.lease_url}): {exc}")
        return result_document(task.stack, task.operation, error=error, worker=worker), EXIT_FAILED
    release = True
    try:
        masked = _Masked(progress)
        run = _Running(task, engine, masked, contracts, store, lease)
        status = run.wait()
        release = run.ended
        doc_out = result_document(task.stack, task.operation, result=run.result, error=run.error, worker=worker)
        doc_out["duration_s"] = doc_out.get("duration_s") or time.perf_counter() - started
        return doc_out, status
    finally:
        if release:
            try:
                store.release(lease)
            except Exception:  # noqa: BLE001 - it runs out by itself
                pass
        store.close()


class _Running:
    """One operation in a thread of its own, watched from the calling (main) thread: the time limit, Ctrl-C and
    SIGTERM, and the lease's heartbeat."""

    def __init__(self, task: TaskDocument, engine: Engine, progress: _Masked, contracts: Path,
                 store: StackLeases, lease: Lease):
        self.task, self.engine, self.progress = task, engine, progress
        self.contracts, self.store, self.lease = contracts, store, lease
        self.result: StackResult | None = None
        self.error: BaseException | None = None
        self.ended = False
        self._stopping: str | None = None
        self._stopped_at = 0.0

    def _work(self) -> None:
        try:
            secrets = read_secrets(self.task, self.engine, self.contracts)
            self.progress.hide(secrets)
            spec = self.task.spec(self.contracts, secrets)
            task: StackTask = self.task.task(spec)
            self.result = run_task(self.engine, task, self.progress)
        except BaseException as exc:  # noqa: BLE001 - reported in the result document
            self.error = exc
        finally:
            self.ended = True

    def stop(self, why: str) -> None:
        """Ask the operation to stop: the engine's ``cancel``, and SIGINT to this process's children."""
        if self._stopping is not None:
            return
        self._stopping = why
        self._stopped_at = time.monotonic()
        cancel = getattr(self.engine, "cancel", None)
        if callable(cancel):
            cancel(self.task.stack)
        for child in _children():
            try:
                os.kill(child, signal.SIGINT)
            except OSError:
                pass

    def wait(self) -> int:
        thread = threading.Thread(target=self._work, name=f"ode-task-{self.task.stack}", daemon=True)
        deadline = None if self.task.timeout_s is None else time.monotonic() + self.task.timeout_s
        with Heartbeat(self.store, self.lease, on_lost=lambda why: self.stop(f"lost its lease: {why}")):
            thread.start()
            while thread.is_alive():
                try:
                    thread.join(0.1)
                except KeyboardInterrupt:
                    if self._stopping is not None:  # a second one: stop waiting
                        break
                    self.stop("interrupted")
                    continue
                now = time.monotonic()
                if deadline is not None and now >= deadline and self._stopping is None:
                    self.stop("timeout")
                if self._stopping is not None and now - self._stopped_at >= GRACE_S:
                    break
        stack = self.task.stack
        if self.ended and self.error is None:  # it ended well before the stop took effect: what it did counts
            return EXIT_OK
        if self._stopping == "timeout":
            self.error = TaskTimeoutError(stack, f"timed out after {self.task.timeout_s:g} s: its operation was "
                                                 f"stopped{'' if self.ended else ' (it did not end in time)'}",
                                          detail=str(self.error or ""))
            self.result = None
            return EXIT_FAILED
        if self._stopping is not None:
            self.result = None
            if self.error is None or not self.ended:
                self.error = EngineError(stack, f"{self._stopping}: its operation was asked to stop"
                                                f"{'' if self.ended else ' and had not ended'}")
            return EXIT_INTERRUPTED if self._stopping == "interrupted" else EXIT_FAILED
        return EXIT_OK if self.error is None else EXIT_FAILED
