"""The simulated engine: each stack's program run in-process under pulumi's mocks, creating nothing.

It gives deterministic ids and ARNs, the full resource graph of each stack (type, name, parent, inputs), and a
preview diff against its own last ``up`` (create, update, replace, delete, same, with each changed property's old
and new value). Every result it returns says ``simulated``. Faults can be injected per stack, so that failure
handling can be rehearsed:

    engine = SimulatedEngine(library, ".ode", failures={"payments"}, delays={"orders": 0.2})
    engine.inject_drift("dev.orders")      # a property changed "in the console", until the stack is healed

Its state of a stack (``<state dir>/simulated/<env>.<context>.json``) is what Pulumi's state would be: the outputs
and resources of the last ``up`` (secret values masked), plus the drift injected since, which stands for the cloud
differing from that state: ``refresh(preview_only=True)`` reports it, ``refresh`` adopts it, ``up`` undoes it.

Pulumi's mock runtime is global to a process: programs run one at a time in it, or, once a run asks for several at
the same time, in worker processes (:class:`ProgramRunner`; ``close()`` stops them). An injected delay is slept
outside either, so the orchestrator's scheduling around the engine is measured as it would be with real stacks.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.names import bucket_name

from ..contracts import OUTPUT_FIELDS, ContractLibrary
from ..errors import UsageError
from ..masking import SECRET_MASK
from ..program import StackSpec
from ..state_dir import make_state_dir
from ._pool import (
    PARALLEL_FROM,
    WORKERS_VARIABLE,
    ProgramRun,
    ProgramRunner,
    active_runner,
    program_workers,
    run_program,
)
from .protocol import (
    ConcurrentUpdateError,
    EngineError,
    ProgressCallback,
    PropertyChange,
    ResourceChange,
    StackNotFoundError,
    StackResult,
)

if TYPE_CHECKING:
    from ._mocks import Recording

__all__ = ["DRIFT_TAG", "PARALLEL_FROM", "WORKERS_VARIABLE", "ProgramRun", "ProgramRunner", "SimulatedEngine",
           "active_runner", "program_workers", "property_diff", "record", "run_simulated", "synthesize_outputs"]

#: ResourceChange fields that describe one operation, not the resource: never kept in the state.
_NOT_STORED = ("op", "checked_inputs", "diff", "urn", "outputs")
#: Top-level inputs whose change makes AWS replace the resource rather than update it (names, keys, placement).
#: Beside names: a target group's port, a task definition's containers and sizes (a new revision), a load balancer's
#: scheme, an ECS service's cluster and launch type, a route's destination, a NAT gateway's address and subnet, an
#: endpoint's service, a security group rule's group.
_REPLACES = frozenset({"name", "bucket", "functionName", "tableName", "hashKey", "rangeKey", "fifoQueue",
                       "cidrBlock", "vpcId", "availabilityZone", "engine", "roleName", "topic", "namePrefix",
                       "port", "targetType", "containerDefinitions", "family", "cpu", "memory", "runtimePlatform",
                       "internal", "loadBalancerType", "cluster", "launchType", "destinationCidrBlock",
                       "allocationId", "subnetId", "serviceName", "vpcEndpointType", "securityGroupId"})
#: The tag a drift is injected as when no resource property is named: what a change in the console looks like.
DRIFT_TAG = "changed-by"


def _digest(*parts: str, size: int = 12) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:size]


def synthesize_outputs(library: ContractLibrary, spec: StackSpec) -> dict[str, dict[str, Any]]:
    """Outputs shaped exactly as the contract promises, with deterministic values, for when programs are not run
    (``run_programs=False``): each interface of the context gets the fields of its kind."""
    ctx = library.contexts[spec.context]
    place = library.environment(spec.settings_env)
    acct, region = place.account, place.region
    base = f"{spec.project}-{spec.env}-{spec.context}"
    bus = library.bus_of(spec.context)
    outputs: dict[str, dict[str, Any]] = {}
    for name, iface in ctx.provides.items():
        key = _digest(spec.env, spec.context, name, size=8)
        values: dict[str, Any]
        if iface.kind == "event":
            bus_outputs = (spec.upstream.get(bus[0], {}).get(bus[1]) if bus and bus[0] != spec.context
                           else outputs.get(bus[1]) if bus else None) or {}
            values = {"bus_name": bus_outputs.get("name"), "bus_arn": bus_outputs.get("arn"),
                      "source": spec.context, "detail_type": name}
        elif iface.kind == "event-bus":
            values = {"name": f"{base}-{name}", "arn": f"arn:aws:events:{region}:{acct}:event-bus/{base}-{name}"}
        elif iface.kind == "http-api":
            api = key[:10]
            values = {"url": f"https://{api}.execute-api.{region}.amazonaws.com", "id": api,
                      "execution_arn": f"arn:aws:execute-api:{region}:{acct}:{api}"}
        elif iface.kind == "table":
            values = {"name": f"{base}-{name}", "arn": f"arn:aws:dynamodb:{region}:{acct}:table/{base}-{name}"}
        elif iface.kind == "bucket":
            bucket = bucket_name(spec.project, spec.env, spec.context, name, acct)  # what the program creates
            values = {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}
        elif iface.kind == "queue":
            values = {"name": f"{base}-{name}", "url": f"https://sqs.{region}.amazonaws.com/{acct}/{base}-{name}",
                      "arn": f"arn:aws:sqs:{region}:{acct}:{base}-{name}"}
        elif iface.kind == "workflow":
            values = {"name": f"{base}-{name}", "arn": f"arn:aws:states:{region}:{acct}:stateMachine:{base}-{name}"}
        elif iface.kind == "network":
            net = ctx.settings_for(spec.settings_env)
            nat = net.get("nat", "none")
            public = bool(net.get("public_subnets")) or nat != "none"
            values = {"vpc_id": f"vpc-{key}", "private_subnet_ids": [f"subnet-{key[:6]}a{i}" for i in range(2)],
                      "security_group_id": f"sg-{key}", "cidr": net.get("cidr", "10.0.0.0/16"),
                      "public_subnet_ids": [f"subnet-{key[:6]}b{i}" for i in range(2)] if public else [], "nat": nat}
        else:  # secret
            values = {"name": f"{base}/{name}",
                      "arn": f"arn:aws:secretsmanager:{region}:{acct}:secret:{base}/{name}-{key[:6]}"}
        outputs[name] = {f: values.get(f) for f in OUTPUT_FIELDS[iface.kind]}
    return outputs


class SimulatedEngine:
    """An engine that runs nothing in the cloud. See the module's docstring.

    ``failures`` names stacks (``dev.payments``) or contexts (``payments``, in any environment) whose operations
    fail; ``transient_failures`` maps such names to how many times they fail with a retryable error before they
    succeed; ``delays`` maps names to seconds each operation takes (``"*"`` for every stack). With
    ``run_programs=False`` the programs are not run at all: outputs are synthesized from the contracts (fast, for
    tests of the orchestrator alone).
    """

    name = "simulated"

    def __init__(self, library: ContractLibrary, state_dir: str | Path, *, failures: Iterable[str] = (),
                 transient_failures: Mapping[str, int] | None = None, delays: Mapping[str, float] | None = None,
                 run_programs: bool = True):
        self.library = library
        self.dir = Path(state_dir) / "simulated"
        self.failures = set(failures)
        self.transient = dict(transient_failures or {})
        self.delays = dict(delays or {})
        # A fault that cannot happen (a delay of nan or -5 s, a negative count) is the caller's mistake, said now
        # rather than as a stack failure later.
        for name, seconds in self.delays.items():
            if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
                raise UsageError(f"delay of {name!r}: {seconds!r} is not a number of seconds, zero or more")
        for name, count in self.transient.items():
            if not isinstance(count, int) or count < 0:
                raise UsageError(f"transient failures of {name!r}: {count!r} is not a count, zero or more")
        self.run_programs = run_programs
        #: Where programs run: here, or in worker processes once a run asks for several at the same time.
        self.runner = ProgramRunner(library)
        self._lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}
        #: Called as ``gate(spec, resources)`` before a preview or an up counts; raises to fail the stack
        #: (the policy gate: ``ode.policy.gate.PolicyGate``).
        self.gate: Callable[[StackSpec, list[ResourceChange] | None], None] | None = None

    # -- faults and time ---------------------------------------------------------------------------------------

    def _matches(self, names: Iterable[str], spec: StackSpec) -> str | None:
        return next((n for n in names if n in (spec.stack_name, spec.context)), None)

    def _inject(self, spec: StackSpec, operation: str) -> None:
        with self._lock:
            name = self._matches([n for n, left in self.transient.items() if left > 0], spec)
            if name is not None:
                self.transient[name] -= 1
                raise ConcurrentUpdateError(spec.stack_name, f"{operation}: transient failure injected (simulated)")
        if self._matches(self.failures, spec):
            raise EngineError(spec.stack_name, f"{operation} failed: failure injected by --simulate-failure "
                                               "(simulated)")

    def _delay(self, spec: StackSpec) -> None:
        seconds = self.delays.get(spec.stack_name, self.delays.get(spec.context, self.delays.get("*", 0.0)))
        if seconds:
            stop = threading.Event()  # what cancel() sets: an operation that takes time can be stopped
            with self._lock:
                self._stops[spec.stack_name] = stop
            try:
                if stop.wait(seconds):
                    raise EngineError(spec.stack_name, "cancelled before it ended (simulated)")
            finally:
                with self._lock:
                    self._stops.pop(spec.stack_name, None)

    def cancel(self, stack: str) -> bool:
        """Stop the operation running on ``stack`` (``env.context``) while it takes its injected time: it fails
        as cancelled, having changed nothing. False when no such operation is waiting."""
        with self._lock:
            stop = self._stops.get(stack)
        if stop is None:
            return False
        stop.set()
        return True

    # -- state of the last up ------------------------------------------------------------------------------------

    def _path(self, spec: StackSpec) -> Path:
        return self.dir / f"{spec.stack_name}.json"

    def _load(self, spec: StackSpec) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(spec).read_text())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    def _save(self, spec: StackSpec, result: StackResult) -> None:
        if not self.dir.is_dir():
            make_state_dir(self.dir.parent)  # private, whoever makes the state directory first
            self.dir.mkdir(exist_ok=True)
        public = {k: v for k, v in result.outputs.items() if k not in result.secret_outputs}
        state = {"outputs": public, "secret_outputs": sorted(result.secret_outputs),
                 "resources": [{k: v for k, v in asdict(r).items() if k not in _NOT_STORED}
                               for r in result.resources if r.op != "delete"]}
        self._write(spec, state)

    def _write(self, spec: StackSpec, state: dict[str, Any]) -> None:
        tmp = self._path(spec).with_suffix(".tmp")
        tmp.write_text(json.dumps(state, sort_keys=True, default=str))
        os.replace(tmp, self._path(spec))

    # -- running a program -------------------------------------------------------------------------------------

    def _run(self, spec: StackSpec, operation: str, progress: ProgressCallback | None) -> StackResult:
        started = time.perf_counter()
        if progress:
            progress(spec.stack_name, f"{operation} (simulated)")
        self._inject(spec, operation)
        self._delay(spec)
        if self.run_programs:
            run = run_simulated(spec, self.library, preview=operation == "preview", runner=self.runner)
            outputs, secrets, resources = run.outputs, run.secret_outputs, run.resources
        else:
            outputs, secrets, resources = synthesize_outputs(self.library, spec), frozenset(), []
        if self.gate is not None:
            self.gate(spec, resources if self.run_programs else None)  # None: the gate runs the program
        previous = self._load(spec)  # the same key as ``up`` saves under: the stack's name
        changes = _diff(resources, previous["resources"] if previous else [])
        result = StackResult(stack=spec.stack_name, operation=operation, outputs=outputs,  # type: ignore[arg-type]
                             secret_outputs=frozenset(secrets), resources=resources,
                             changes=changes, simulated=True, duration_s=time.perf_counter() - started)
        done = {"create": "created", "update": "updated", "replace": "replaced", "delete": "deleted"}
        for res in resources:
            res.urn = f"urn:pulumi:{spec.stack_name}::{spec.project}::{res.type}::{res.name}"
            if progress and operation == "up" and res.op in done:  # resource-level progress, as the engine's events
                progress(spec.stack_name, f"{done[res.op]} {res.urn}")
        if progress:
            progress(spec.stack_name, ", ".join(f"{n} {op}" for op, n in changes.items() if n) or "no resources")
        return result

    def preview(self, spec: StackSpec, progress: ProgressCallback | None = None) -> StackResult:
        return self._run(spec, "preview", progress)

    def close(self) -> None:
        """Stop the worker processes this engine started for its programs, if any."""
        self.runner.close()

    def up(self, spec: StackSpec, progress: ProgressCallback | None = None) -> StackResult:
        result = self._run(spec, "up", progress)
        self._save(spec, result)
        return result

    def refresh(self, spec: StackSpec, progress: ProgressCallback | None = None, *,
                preview_only: bool = False) -> StackResult:
        """Compare the stack's state with "the cloud" (its state plus the drift injected since): with
        ``preview_only`` report the drifted resources and properties and change nothing, else adopt them into the
        state (as ``pulumi refresh`` does; the next ``up`` puts the program's values back)."""
        started = time.perf_counter()
        if progress:
            progress(spec.stack_name, f"refresh{' preview' if preview_only else ''} (simulated)")
        self._inject(spec, "refresh")
        self._delay(spec)
        with self._lock:
            state = self._load(spec)
            if state is None:
                raise StackNotFoundError(spec.stack_name, "no such stack (simulated)")
            drift: dict[str, dict[str, Any]] = state.get("drift") or {}
            resources = []
            for key, props in sorted(drift.items()):
                type_, _, name = key.partition("::")
                stored = next((r for r in state["resources"] if r["type"] == type_ and r["name"] == name), None)
                inputs = stored["inputs"] if stored else {}
                flat = _flatten(inputs)
                diff = [PropertyChange(path, _shown(flat.get(path)), _shown(value)) for path, value in
                        sorted(props.items())]
                resources.append(ResourceChange(type=type_, name=name, parent=stored.get("parent") if stored else None,
                                                inputs=inputs, op="update", diff=diff))
                if progress:
                    progress(spec.stack_name, f"{name}: drifted ({', '.join(d.path for d in diff)})")
            if not preview_only and drift:
                for res in state["resources"]:
                    for path, value in drift.get(f"{res['type']}::{res['name']}", {}).items():
                        _set_path(res["inputs"], path, value)
                state["drift"] = {}
                self._write(spec, state)
        same = max(0, len(state["resources"]) - len(resources))
        return StackResult(stack=spec.stack_name, operation="refresh", outputs=state["outputs"],
                           secret_outputs=frozenset(state["secret_outputs"]), resources=resources,
                           changes={"update": len(resources), "same": same}, simulated=True,
                           duration_s=time.perf_counter() - started)

    def inject_drift(self, stack: str, resource: str | None = None) -> tuple[str, str]:
        """Change one property of one resource of ``stack`` (``env.context``) "in the cloud", as a hand-made change
        in the console would, until the stack is next deployed. ``resource`` is a resource's name or type (the
        first resource with tags when None). Returns (resource name, property path). A stack that was never
        deployed, or a resource it does not have, is a :class:`UsageError`."""
        with self._lock:
            path = self.dir / f"{stack}.json"
            try:
                state = json.loads(path.read_text())
            except FileNotFoundError:
                raise UsageError(f"--simulate-drift {stack}: the stack is not deployed (simulated engine)") from None
            candidates = state["resources"]
            if resource is not None:
                candidates = [r for r in candidates if resource in (r["name"], r["type"])]
                if not candidates:
                    names = ", ".join(sorted(r["name"] for r in state["resources"])[:8])
                    raise UsageError(f"--simulate-drift {stack}={resource}: no such resource in the stack"
                                     f"{' (some: ' + names + ')' if names else ''}")
            tagged = [r for r in candidates if isinstance(r["inputs"].get("tags"), dict)]
            target = (tagged or candidates or [None])[0]
            value: Any
            if target is None:  # no resources recorded (programs not run): the stack itself drifts
                key, name, prop, value = f"pulumi:pulumi:Stack::{stack}", stack, f"tags.{DRIFT_TAG}", "console"
            elif isinstance(target["inputs"].get("tags"), dict) or not target["inputs"]:
                key, name, prop, value = (f"{target['type']}::{target['name']}", target["name"], f"tags.{DRIFT_TAG}",
                                          "console")
            else:
                flat = {k: v for k, v in _flatten(target["inputs"]).items() if v != SECRET_MASK}
                prop = sorted(flat)[0] if flat else "description"
                old = flat.get(prop)
                value = (not old) if isinstance(old, bool) else (old + 1) if isinstance(old, int) else f"{old}-changed"
                key, name = f"{target['type']}::{target['name']}", target["name"]
            state.setdefault("drift", {}).setdefault(key, {})[prop] = value
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, sort_keys=True, default=str))
            os.replace(tmp, path)
        return name, prop

    def destroy(self, spec: StackSpec, progress: ProgressCallback | None = None) -> StackResult:
        started = time.perf_counter()
        if progress:
            progress(spec.stack_name, "destroy (simulated)")
        self._inject(spec, "destroy")
        self._delay(spec)
        state = self._load(spec)
        resources = [ResourceChange(op="delete", **r) for r in (state or {}).get("resources", [])]
        self._path(spec).unlink(missing_ok=True)
        return StackResult(stack=spec.stack_name, operation="destroy", resources=resources,
                           changes={"delete": len(resources)}, simulated=True,
                           duration_s=time.perf_counter() - started)

    def outputs(self, spec: StackSpec) -> dict[str, Any]:
        """The outputs of the stack's last ``up``. Secret values are not kept by this engine: a program run
        gives them again (they are deterministic under mocks)."""
        state = self._load(spec)
        if state is None:
            raise StackNotFoundError(spec.stack_name, "no such stack (simulated)")
        outputs: dict[str, Any] = state["outputs"]
        if state["secret_outputs"]:
            if self.run_programs:
                outputs = dict(run_simulated(spec, self.library, runner=self.runner).outputs)
            else:
                outputs = synthesize_outputs(self.library, spec)
        return outputs


def _diff(now: list[ResourceChange], before: list[dict[str, Any]]) -> dict[str, int]:
    """Mark each resource create/update/replace/same against the last up (with each changed property), add the
    deleted ones, and count them."""
    old = {(r["type"], r["name"]): r for r in before}
    counts = {"create": 0, "update": 0, "delete": 0, "same": 0}
    seen = set()
    for res in now:
        key = (res.type, res.name)
        seen.add(key)
        prior = old.get(key)
        if prior is None:
            res.op = "create"
        else:
            res.diff = property_diff(prior["inputs"], res.inputs)
            res.op = "same" if not res.diff else "replace" if any(d.replaces for d in res.diff) else "update"
        counts[res.op] = counts.get(res.op, 0) + 1
    for key, prior in old.items():
        if key not in seen:
            now.append(ResourceChange(type=prior["type"], name=prior["name"], parent=prior.get("parent"),
                                      inputs=prior["inputs"], op="delete"))
            counts["delete"] += 1
    return counts


def property_diff(old: dict[str, Any], new: dict[str, Any]) -> list[PropertyChange]:
    """Each property path whose value differs between two sets of (already masked) inputs, sorted by path."""
    before, after = _flatten(old), _flatten(new)
    changes = []
    for path in sorted(set(before) | set(after)):
        was, now = before.get(path), after.get(path)
        if _canon(was) != _canon(now):
            top = path.split(".", 1)[0].split("[", 1)[0]
            changes.append(PropertyChange(path, _shown(was), _shown(now), top in _REPLACES))
    return changes


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested inputs as ``{"a.b[0].c": leaf}``; lists of plain values stay whole (read as one value)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value} if prefix else {}


def _set_path(inputs: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path (as :func:`_flatten` names it, list indexes aside) in nested inputs."""
    parts = path.split(".")
    node = inputs
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value


def _shown(value: Any) -> Any:
    """A value as a diff shows it: a secret one stays masked, a value holding one is masked whole; a whole number
    that went through protobuf (always a double there) is shown as one."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return SECRET_MASK if SECRET_MASK in _canon(value) else value


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def run_simulated(spec: StackSpec, library: ContractLibrary, preview: bool = False,
                  runner: ProgramRunner | None = None) -> ProgramRun:
    """Run the stack's program under pulumi's mocks: deterministic ids and ARNs, nothing created. It runs in the
    :class:`ProgramRunner` open for ``library`` (``with``), else in ``runner``, else in this process; the result is
    the same wherever it ran.

    ``preview`` is accepted for symmetry; the mocks always compute values, so that a plan can hand a previewed
    producer's outputs to its consumers' previews.
    """
    del preview
    return run_program(spec, library, runner)


def record(program: Callable[[], None], **options: Any) -> Recording:
    """Run a Pulumi program under ode's mocks and return what it registered and exported (``options``: project,
    stack, account, region, preview, config, secret_keys; see :func:`ode.engines._mocks.record`)."""
    from ._mocks import record as recorder  # deferred: pulumi's mock runtime costs seconds

    return recorder(program, **options)
