"""A stack's task and its result as documents (JSON): what crosses from the coordinator to a worker and back.

    doc = task_document(task, dispatch)       # a dict: json.dumps(doc) is what `ode stack run --task -` reads
    task = read_task(doc)                     # on the worker: checked, one line naming a bad field
    ...
    answer = result_document(task.stack, task.operation, result=result, worker=this_process("dask"))
    result = read_result(answer)              # on the coordinator: a StackResult, or the worker's error raised

**A task** carries the operation, the environment and context (and the base of an environment made on demand),
the project, where the contracts are and at which commit, the producers' *public* values, the stack config, the
engine with its state backend and secrets provider (their URLs, never a passphrase), the simulated engine's faults,
the run id and attempt, the time limit, and where the stack's lease is taken. **A secret upstream value never
travels**: the task names where the worker reads it itself (:class:`SecretRef`): the producer's state (the engine's
encrypted state, as the planner reads it on the coordinator) or its SSM SecureString where the environment publishes
outputs there.

**A result** carries the outputs with each secret interface's values replaced by ``[secret]`` (the coordinator
reads the real ones back from the producer's state, in memory, as it does for an unchanged producer), the names of
the secret outputs, the resources with their changes (inputs and diffs already masked by the engines), the counts,
where it ran (``worker``), or the error (its kind, message, the engine's last words, and whether a retry may help).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import git
from ..engines.protocol import (
    ConcurrentUpdateError,
    EngineError,
    ProgramError,
    PropertyChange,
    ResourceChange,
    StackNotFoundError,
    StackResult,
)
from ..errors import OdeError, UsageError
from ..execution.executor import DuplicateDeliveryError, StackTask, TaskTimeoutError, WorkerLostError
from ..masking import SECRET_MASK
from ..program import StackSpec

#: The version of both documents; a worker refuses a task of another.
FORMAT = 1
#: The key that marks a result document (on a line of its own in a build's log).
RESULT_KEY = "ode_result"
_OPERATIONS = ("up", "destroy", "preview", "refresh")

#: Error kinds a result may name, rebuilt as these classes on the coordinator (anything else: EngineError).
_ERRORS: dict[str, type[EngineError]] = {
    "EngineError": EngineError, "ConcurrentUpdateError": ConcurrentUpdateError, "ProgramError": ProgramError,
    "StackNotFoundError": StackNotFoundError, "DuplicateDeliveryError": DuplicateDeliveryError,
    "TaskTimeoutError": TaskTimeoutError, "WorkerLostError": WorkerLostError,
}


@dataclass(frozen=True)
class Dispatch:
    """What the coordinator adds to every task of a run: the same for each of them."""

    engine: str
    state_dir: str
    contracts: str
    lease_url: str
    lease_s: float
    #: The contracts' folder inside its git work tree, and the commit checked out there (None outside git).
    repo_path: str | None = None
    commit: str | None = None
    backend_url: str | None = None
    secrets_provider: str | None = None
    #: The simulated engine's faults: ``failures`` (contexts), ``delays`` (context -> seconds).
    engine_options: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None
    #: ``(env, producer) -> (SSM parameter prefix, region)`` where an environment publishes outputs to SSM.
    ssm_place: Callable[[str, str], tuple[str, str | None] | None] | None = field(default=None, compare=False)


def git_place(contracts: Path) -> tuple[str | None, str | None]:
    """(the contracts' folder relative to its git work tree, HEAD's commit), or (None, None) outside git."""

    try:
        top = git.top(contracts, purpose="to name the commit workers deploy")
        commit = git.run(contracts, "rev-parse", "HEAD", purpose="to name the commit workers deploy").strip()
    except UsageError:
        return None, None
    try:
        relative = str(contracts.resolve().relative_to(top.resolve()))
    except ValueError:
        return None, commit
    return relative, commit


@dataclass(frozen=True)
class SecretRef:
    """Where a worker reads one secret upstream value itself: the producer's state (each ``(env, context,
    base_env)`` of ``states`` tried in turn: an environment made on demand may reuse its base's producer), or the
    SSM SecureString ``ssm`` holding the interface's outputs (JSON)."""

    producer: str
    interface: str
    field: str
    states: tuple[tuple[str, str, str | None], ...] = ()
    ssm: tuple[str, str | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"producer": self.producer, "interface": self.interface, "field": self.field,
                                 "state": [{"env": e, "context": c, "base_env": b} for e, c, b in self.states]}
        if self.ssm is not None:
            found["ssm"] = {"name": self.ssm[0], "region": self.ssm[1]}
        return found


def task_document(task: StackTask, dispatch: Dispatch) -> dict[str, Any]:
    """``task`` as a document a worker reads: its secret upstream values left out, each replaced by where the
    worker reads it (:class:`SecretRef`)."""
    spec = task.spec
    public: dict[str, dict[str, dict[str, Any]]] = {}
    refs: list[SecretRef] = []
    for producer, interfaces in spec.upstream.items():
        for interface, fields in interfaces.items():
            kept = public.setdefault(producer, {}).setdefault(interface, {})
            for name, value in (fields or {}).items():
                if (producer, interface, name) not in spec.secret_upstream:
                    kept[name] = value
                    continue
                states = [(spec.env, producer, spec.base_env)]
                if spec.base_env and spec.base_env != spec.env:
                    states.append((spec.base_env, producer, None))
                ssm = None
                if dispatch.ssm_place is not None:
                    place = dispatch.ssm_place(spec.env, producer)
                    if place is not None:
                        ssm = (f"{place[0]}/{interface}", place[1])
                refs.append(SecretRef(producer, interface, name, tuple(states), ssm))
    timeout = task.timeout_s if task.timeout_s is not None else dispatch.timeout_s
    return {
        "ode_task": FORMAT, "operation": task.operation, "preview_only": task.preview_only,
        "project": spec.project, "env": spec.env, "context": spec.context, "base_env": spec.base_env,
        "contracts": dispatch.contracts, "repo_path": dispatch.repo_path, "commit": dispatch.commit,
        "upstream": public, "secret_upstream": [r.to_dict() for r in refs], "config": dict(spec.config),
        "engine": dispatch.engine, "engine_options": dispatch.engine_options, "backend_url": dispatch.backend_url,
        "secrets_provider": dispatch.secrets_provider, "state_dir": dispatch.state_dir,
        "run_id": task.run_id, "attempt": task.attempt, "timeout_s": timeout,
        "lease": {"url": dispatch.lease_url, "seconds": dispatch.lease_s},
    }


@dataclass(frozen=True)
class TaskDocument:
    """A task as a worker reads it (see :func:`read_task`)."""

    operation: str
    preview_only: bool
    project: str
    env: str
    context: str
    base_env: str | None
    contracts: str
    repo_path: str | None
    commit: str | None
    upstream: dict[str, dict[str, dict[str, Any]]]
    secret_upstream: tuple[SecretRef, ...]
    config: dict[str, str]
    engine: str
    engine_options: dict[str, Any]
    backend_url: str | None
    secrets_provider: str | None
    state_dir: str
    run_id: int | None
    attempt: int
    timeout_s: float | None
    lease_url: str
    lease_s: float

    @property
    def stack(self) -> str:
        return f"{self.env}.{self.context}"

    def spec(self, contracts_dir: Path, secrets: Mapping[tuple[str, str, str], Any]) -> StackSpec:
        """The stack's spec on this worker: its contracts here, the public values, and ``secrets`` (the values the
        worker read for each secret reference) put back in place."""
        upstream = {p: {i: dict(f) for i, f in ifaces.items()} for p, ifaces in self.upstream.items()}
        for (producer, interface, name), value in secrets.items():
            upstream.setdefault(producer, {}).setdefault(interface, {})[name] = value
        return StackSpec(project=self.project, env=self.env, context=self.context, contracts_dir=contracts_dir,
                         base_env=self.base_env, upstream=upstream, secret_upstream=frozenset(secrets),
                         config=dict(self.config))

    def task(self, spec: StackSpec) -> StackTask:
        return StackTask(self.operation, spec, run_id=self.run_id, attempt=self.attempt,  # type: ignore[arg-type]
                         preview_only=self.preview_only, timeout_s=self.timeout_s)


def _field(doc: Mapping[str, Any], name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    value = doc.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind in (int, float, (int, float)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UsageError(f"task: {name}: expected {expected}, got {type(value).__name__}")
    return value


def read_task(doc: Any) -> TaskDocument:
    """A task document, checked: a missing or mistyped field is one :class:`UsageError` naming it."""
    if not isinstance(doc, dict):
        raise UsageError(f"task: expected a JSON object, got {type(doc).__name__}")
    if doc.get("ode_task") != FORMAT:
        raise UsageError(f"task: ode_task: this worker reads format {FORMAT}, not {doc.get('ode_task')!r}")
    operation = _field(doc, "operation", str)
    if operation not in _OPERATIONS:
        raise UsageError(f"task: operation: {operation!r} is not one of {', '.join(_OPERATIONS)}")
    refs = []
    for i, raw in enumerate(_field(doc, "secret_upstream", list)):
        if not isinstance(raw, dict):
            raise UsageError(f"task: secret_upstream[{i}]: expected an object")
        states = tuple((str(s["env"]), str(s["context"]), s.get("base_env")) for s in raw.get("state") or [])
        ssm = raw.get("ssm")
        refs.append(SecretRef(str(raw.get("producer")), str(raw.get("interface")), str(raw.get("field")), states,
                              (str(ssm["name"]), ssm.get("region")) if isinstance(ssm, dict) else None))
    lease = _field(doc, "lease", dict)
    timeout = _field(doc, "timeout_s", (int, float), optional=True)
    return TaskDocument(
        operation=operation, preview_only=bool(doc.get("preview_only")), project=_field(doc, "project", str),
        env=_field(doc, "env", str), context=_field(doc, "context", str),
        base_env=_field(doc, "base_env", str, optional=True), contracts=_field(doc, "contracts", str),
        repo_path=_field(doc, "repo_path", str, optional=True), commit=_field(doc, "commit", str, optional=True),
        upstream=_field(doc, "upstream", dict), secret_upstream=tuple(refs),
        config={str(k): str(v) for k, v in _field(doc, "config", dict).items()}, engine=_field(doc, "engine", str),
        engine_options=_field(doc, "engine_options", dict, optional=True) or {},
        backend_url=_field(doc, "backend_url", str, optional=True),
        secrets_provider=_field(doc, "secrets_provider", str, optional=True),
        state_dir=_field(doc, "state_dir", str), run_id=_field(doc, "run_id", int, optional=True),
        attempt=_field(doc, "attempt", int), timeout_s=None if timeout is None else float(timeout),
        lease_url=_field(lease, "url", str), lease_s=float(_field(lease, "seconds", (int, float))))


# -- results ---------------------------------------------------------------------------------------------------------


def masked_outputs(outputs: Mapping[str, Any], secret: frozenset[str] | set[str]) -> dict[str, Any]:
    """Outputs with each secret interface's values replaced by ``[secret]``, its fields kept (so that the
    coordinator still sees which fields the contract's interface has)."""
    return {k: ({f: SECRET_MASK for f in v} if isinstance(v, dict) else SECRET_MASK) if k in secret else v
            for k, v in outputs.items()}


def result_document(stack: str, operation: str, *, result: StackResult | None = None,
                    error: BaseException | None = None, worker: dict[str, Any] | None = None,
                    log: str | None = None) -> dict[str, Any]:
    """The answer to a task: the result (secret values masked) or the error, and where it ran."""
    doc: dict[str, Any] = {RESULT_KEY: FORMAT, "stack": stack, "operation": operation, "ok": error is None,
                           "worker": worker, "log": log}
    if result is not None:
        doc.update(outputs=masked_outputs(result.outputs, result.secret_outputs),
                   secret_outputs=sorted(result.secret_outputs),
                   resources=[r.to_dict() for r in result.resources], changes=dict(result.changes),
                   simulated=result.simulated, duration_s=result.duration_s,
                   policy_violations=list(result.policy_violations))
    if error is not None:
        prefix = f"{stack}: "
        text = str(error)
        kind = type(error).__name__
        if not isinstance(error, EngineError):
            if not isinstance(error, OdeError):  # a bug's class says what it was; a user's mistake says itself
                text = f"{kind}: {text}" if text else kind
            kind = "EngineError"
        doc["error"] = {"type": kind, "message": text[len(prefix):] if text.startswith(prefix) else text,
                        "detail": getattr(error, "detail", "") or "",
                        "transient": bool(getattr(error, "transient", False))}
    return doc


def find_result(text: str) -> dict[str, Any] | None:
    """The last result document in ``text`` (a worker's standard output, a build's log): a line holding a JSON
    object with :data:`RESULT_KEY`."""
    import json

    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and RESULT_KEY in line:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and RESULT_KEY in doc:
                return doc
    return None


def read_result(doc: Mapping[str, Any]) -> StackResult:
    """The :class:`StackResult` of a result document, or its error raised (an :class:`EngineError` of the kind the
    worker named, carrying ``worker`` and ``log``)."""
    stack = str(doc.get("stack") or "?")
    worker = doc.get("worker") if isinstance(doc.get("worker"), dict) else None
    log = doc.get("log") if isinstance(doc.get("log"), str) else None
    if not doc.get("ok"):
        found = doc.get("error")
        raw: dict[str, Any] = found if isinstance(found, dict) else {}
        kind = _ERRORS.get(str(raw.get("type")), EngineError)
        error = kind(stack, str(raw.get("message") or "failed on its worker"), str(raw.get("detail") or ""))
        if raw.get("transient") and not kind.transient:
            error.transient = True  # type: ignore[misc]
        error.worker = worker  # type: ignore[attr-defined]
        error.log = log  # type: ignore[attr-defined]
        raise error
    resources = []
    for r in doc.get("resources") or []:
        resources.append(ResourceChange(
            type=r["type"], name=r["name"], parent=r.get("parent"), inputs=r.get("inputs") or {},
            op=r.get("op") or "same", dependencies=list(r.get("dependencies") or []), urn=r.get("urn"),
            diff=[PropertyChange(d["path"], d.get("old"), d.get("new"), bool(d.get("replaces")))
                  for d in r.get("diff") or []]))
    return StackResult(stack=stack, operation=doc.get("operation") or "up",  # type: ignore[arg-type]
                       outputs=dict(doc.get("outputs") or {}),
                       secret_outputs=frozenset(doc.get("secret_outputs") or ()), resources=resources,
                       changes=dict(doc.get("changes") or {}), simulated=bool(doc.get("simulated")),
                       duration_s=float(doc.get("duration_s") or 0.0),
                       policy_violations=list(doc.get("policy_violations") or []), worker=worker, log=log)
