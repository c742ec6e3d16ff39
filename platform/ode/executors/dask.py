"""``--executor dask://HOST:PORT`` (a Dask distributed scheduler) and ``dask+local://N`` (a cluster of N worker
processes on this machine, started and stopped by ode): each stack's operation runs on a Dask worker.

The ready-set scheduler stays ode's: a stack is submitted when it is ready, at most ``--parallel`` in flight, and
Dask places it on a worker (one with the resource ``pool:NAME`` when the URL says ``?pool=NAME``: ``env`` and
``account`` stand for the stack's environment and account, so that a trust zone's workers take only its stacks,
e.g. ``dask worker ... --resources pool:prod=1``). On the worker, :func:`run_on_worker` runs
``ode stack run --task -`` as a child process of its own (its own session: a signal reaches it and its ``pulumi``),
sends each progress line back as a Dask event (topic ``ode-progress``), and watches two ``distributed.Event``\\ s: the
first asks the child to stop (SIGINT, which it passes on to ``pulumi``), the second kills it. The child dies with its
worker (the kernel's parent-death signal), so a killed worker's stack stops, and fails on the coordinator with the
cause; on ``dask+local`` Dask does not hand a dead worker's task to another (``allowed-failures`` 0), and where a
scheduler does, the stack's lease refuses the second delivery while the first may run.

Workers need ode installed (``pip install 'ondemandenv[dask]'``), the contracts at the same commit, and the
credentials of the environments they deploy (the program assumes each environment's deploy role).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..engines.protocol import EngineError
from ..errors import UsageError
from ..execution.executor import StackTask
from .opening import ExecutorSetup, ExecutorUrl, parse_url
from .remote import Delivery, RemoteExecutor, dispatch_for, lost
from .tasks import Dispatch, find_result, result_document

#: The Dask event topic progress lines travel on.
TOPIC = "ode-progress"
#: Seconds a child asked to stop is given before it is killed (beyond the worker command's own grace).
KILL_AFTER_S = float(os.environ.get("ODE_CANCEL_GRACE_S", "30") or 30) + 5
#: Seconds to wait for a scheduler to answer when connecting.
CONNECT_TIMEOUT_S = 15


def _dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError("--executor dask: Dask is not installed: pip install 'ondemandenv[dask]'") from None
    return distributed


def open_dask(url: str, setup: ExecutorSetup) -> DaskExecutor:
    """The ``dask`` entry point: ``dask://HOST:PORT[?pool=NAME]``, an existing scheduler."""
    parsed = parse_url(url)
    parsed.refuse_unknown({"pool"})
    if not parsed.location or ":" not in parsed.location:
        raise UsageError(f"--executor {url}: expected dask://HOST:PORT (the scheduler's address)")
    dispatch = dispatch_for(setup, parsed, remote=True)  # what workers cannot use is refused before connecting
    distributed = _dask()
    try:
        client = distributed.Client(f"tcp://{parsed.location}", timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        raise UsageError(f"--executor {url}: no Dask scheduler answers at {parsed.location} ({exc})") from None
    return DaskExecutor(client, setup, parsed, remote=True, dispatch=dispatch)


def open_dask_local(url: str, setup: ExecutorSetup) -> DaskExecutor:
    """The ``dask+local`` entry point: ``dask+local://N``, a cluster of N worker processes (one stack each at a
    time) on 127.0.0.1, stopped when the executor is closed."""
    parsed = parse_url(url)
    parsed.refuse_unknown({"pool"})
    dispatch = dispatch_for(setup, parsed, remote=False)
    try:
        workers = int(parsed.location)
    except ValueError:
        workers = 0
    if not 1 <= workers <= 256:
        raise UsageError(f"--executor {url}: expected dask+local://N, N worker processes from 1 to 256")
    distributed = _dask()
    import dask

    # A task whose worker died is not handed to another: the stack fails with the cause, and the next run redoes it.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None)
    client = distributed.Client(cluster)
    setup.say(f"executor: a local Dask cluster of {workers} worker processes at {cluster.scheduler_address}")
    return DaskExecutor(client, setup, parsed, remote=False, cluster=cluster, dispatch=dispatch)


class _DaskDelivery:
    def __init__(self, client: Any, key: str, future: Any):
        self.client, self.key, self.future = client, key, future

    def cancel(self, hard: bool = False) -> None:
        distributed = _dask()
        try:
            distributed.Event(f"{self.key}-stop", client=self.client).set()
            if hard:
                distributed.Event(f"{self.key}-kill", client=self.client).set()
        except Exception:  # noqa: BLE001 - a scheduler gone away: nothing left to stop
            pass


class DaskExecutor(RemoteExecutor):
    """Stacks on a Dask cluster's workers (see the module's docstring)."""

    name = "dask"

    def __init__(self, client: Any, setup: ExecutorSetup, url: ExecutorUrl, *, remote: bool,
                 cluster: Any = None, dispatch: Dispatch | None = None):
        super().__init__(setup, url, remote=remote, dispatch=dispatch)
        self.client = client
        self.cluster = cluster
        self.pool = url.params.get("pool")
        self._routes: dict[str, Callable[[str], None]] = {}
        self._routes_lock = threading.Lock()
        client.subscribe_topic(TOPIC, self._on_event)

    def _on_event(self, event: Any) -> None:
        _, message = event
        if not isinstance(message, dict):
            return
        with self._routes_lock:
            route = self._routes.get(str(message.get("key")))
        if route is not None:
            route(str(message.get("line", "")))

    def _resources(self, task: StackTask) -> dict[str, float] | None:
        if not self.pool:
            return None
        name = self.pool
        if name == "env":
            name = task.spec.settings_env
        elif name == "account":
            name = self.setup.library.environment(task.spec.settings_env).account
        return {f"pool:{name}": 1}

    def _deliver(self, key: str, task: StackTask, document: dict[str, Any], line: Callable[[str], None],
                 done: Callable[[dict[str, Any] | BaseException], None]) -> Delivery:
        distributed = _dask()
        with self._routes_lock:
            self._routes[key] = line
        future = self.client.submit(run_on_worker, document, key, TOPIC, key=key, pure=False,
                                    resources=self._resources(task), retries=0)

        def finished(f: Any) -> None:
            with self._routes_lock:
                self._routes.pop(key, None)
            answer: dict[str, Any] | BaseException
            try:
                answer = f.result()
            except distributed.scheduler.KilledWorker as exc:
                answer = lost(task.stack, f"the Dask worker running it died ({exc}); its lease runs out and the "
                                          "next run redoes it")
            except Exception as exc:  # noqa: BLE001 - cancelled, or the cluster went away
                answer = lost(task.stack, f"its Dask task ended without an answer: {type(exc).__name__}: {exc}")
            done(answer)

        future.add_done_callback(finished)
        return _DaskDelivery(self.client, key, future)

    def workers(self) -> dict[str, int]:
        """Each worker's address and process id."""
        found: dict[str, int] = self.client.run(os.getpid)
        return found

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


# -- on the worker ----------------------------------------------------------------------------------------------------


def run_on_worker(document: dict[str, Any], key: str, topic: str) -> dict[str, Any]:
    """What a Dask worker runs for one task: ``ode stack run --task -`` as a child process, its progress lines sent
    back as events on ``topic``, its result document returned (with where it ran and every line it printed). The
    events ``<key>-stop`` and ``<key>-kill`` stop the child (SIGINT, then SIGKILL)."""
    import distributed

    worker = distributed.get_worker()
    me = {"kind": "dask", "host": socket.gethostname(), "pid": os.getpid(), "address": worker.address}
    stack = f"{document.get('env')}.{document.get('context')}"
    operation = str(document.get("operation"))
    stop, kill = distributed.Event(f"{key}-stop"), distributed.Event(f"{key}-kill")
    if stop.is_set():
        return result_document(stack, operation, worker=me,
                               error=EngineError(stack, "cancelled before it started"))
    env = {**os.environ, "ODE_PARENT_PID": str(os.getpid()), "ODE_WORKER_KIND": "dask"}
    child = subprocess.Popen([sys.executable, "-m", "ode", "stack", "run", "--task", "-"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                             env=env)
    # The coordinator learns when the stack left Dask's queue and where it runs (its live view, its log).
    first = f"dask: running on worker {worker.address} ({me['host']} pid {me['pid']})"
    worker.log_event(topic, {"key": key, "line": first})
    lines: list[str] = [first]
    out: list[str] = []

    def errors() -> None:
        assert child.stderr is not None
        for raw in child.stderr:
            text = raw.rstrip("\n")
            lines.append(text)
            worker.log_event(topic, {"key": key, "line": text})

    def output() -> None:
        assert child.stdout is not None
        out.append(child.stdout.read())

    readers = [threading.Thread(target=errors, daemon=True), threading.Thread(target=output, daemon=True)]
    for reader in readers:
        reader.start()
    assert child.stdin is not None
    try:
        child.stdin.write(json.dumps(document))
        child.stdin.close()
    except OSError:
        pass
    timeout = document.get("timeout_s")
    backstop = None if timeout is None else time.monotonic() + float(timeout) + KILL_AFTER_S
    asked: float | None = None
    while child.poll() is None:
        try:
            child.wait(0.2)
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if asked is None and stop.is_set():
            asked = now
            _signal(child.pid, signal.SIGINT, group=False)
        if kill.is_set() or (asked is not None and now - asked > KILL_AFTER_S) or (backstop and now > backstop):
            _signal(child.pid, signal.SIGKILL, group=True)
            child.wait()
    for reader in readers:
        reader.join(timeout=10)
    answer = find_result("".join(out))
    if answer is None:
        tail = "; ".join(lines[-5:]) or "nothing on its standard error"
        answer = result_document(stack, operation, worker=me, error=lost(
            stack, f"`ode stack run` on {me['host']} ended with status {child.returncode} and no result: {tail}"))
    answer["worker"] = me
    answer["lines"] = lines
    return answer


def _signal(pid: int, sig: int, *, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except OSError:
        pass
