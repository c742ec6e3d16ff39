"""The pulumi engine: each stack run by the ``pulumi`` CLI through Pulumi's Automation API.

Every stack gets its own workspace directory (``<state dir>/workspaces/<env>.<context>/``) holding a generated
``Pulumi.yaml`` and ``__main__.py`` that run :func:`ode.program.main` in this Python environment, so stacks run in
parallel without sharing files. State goes to the file backend under the state dir by default (``ODE_BACKEND_URL``
for any other backend), secrets are encrypted with a passphrase (``PULUMI_CONFIG_PASSPHRASE``, or one generated once
into ``<state dir>/passphrase`` with mode 0600), or by the provider ``ODE_SECRETS_PROVIDER`` names
(``awskms://...``). The producers' outputs reach a stack as its config; secret ones as secret config.

Progress and results come from the Automation API's typed engine events (``on_event``), never from scraping the CLI's
text: each resource's step (``creating``, ``updated``, ``failed``, with its URN) goes to the progress callback, the
result's ``resources`` carry each resource's operation and changed properties (old and new values, secrets masked),
read from both the pre-event and the outputs event of each step (a refresh says what drifted only in the latter),
policy violations and error diagnostics are kept, and errors are classified from the SDK's own error classes plus
the events (a diagnostic on the stack resource is the program's failure, a mandatory policy violation is the policy
pack's refusal, a failed step names its resource). With the policy gate installed, ``up`` and ``preview`` hand the
CLI the CrossGuard pack and this stack's pack configuration (``--policy-pack``, ``--policy-pack-config``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..contracts import ContractLibrary
from ..masking import SECRET_MASK
from ..program import StackSpec, stack_config
from ..state_dir import make_state_dir
from .protocol import (
    CliNotFoundError,
    ConcurrentUpdateError,
    EngineError,
    ProgramError,
    ProgressCallback,
    PropertyChange,
    ResourceChange,
    StackNotFoundError,
    StackResult,
)

_INSTALL_LOCK = threading.Lock()
_INSTALL_TRIED: list[bool] = []

#: Set to 1 to let the engine download a ``pulumi`` CLI when none is found (it never does so unasked).
INSTALL_VARIABLE = "ODE_INSTALL_PULUMI"
#: The stacks' secrets provider when not a passphrase: ``awskms://alias/KEY?region=R`` and the others Pulumi knows.
SECRETS_PROVIDER_VARIABLE = "ODE_SECRETS_PROVIDER"


def _cli_places() -> list[Path]:
    """Where a CLI is looked for beside PATH: the installer script's ``~/.pulumi/bin`` and the versioned folders
    ``PulumiCommand.install`` uses (``~/.pulumi/versions/<version>/bin``), newest first."""
    home = Path.home() / ".pulumi"
    versions = sorted((home / "versions").glob("*/bin/pulumi"), key=lambda p: _version_key(p.parent.parent.name),
                      reverse=True)
    return [home / "bin" / "pulumi", *versions]


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in text.lstrip("v").split("."))


def _find_cli() -> str | None:
    return shutil.which("pulumi") or next((str(p) for p in _cli_places() if p.is_file()), None)


def _yaml_string(value: str) -> str:
    """A YAML scalar that stays a string whatever it holds (a path with ':' or '#', a URL)."""
    return json.dumps(value)


class PulumiEngine:
    """Runs stacks with the ``pulumi`` CLI. Raises :class:`CliNotFoundError` when no CLI is found or installable."""

    name = "pulumi"

    def __init__(self, library: ContractLibrary, state_dir: str | Path, *, backend_url: str | None = None,
                 passphrase: str | None = None, env_vars: dict[str, str] | None = None,
                 secrets_provider: str | None = None):
        self.library = library
        self.state_dir = Path(state_dir).resolve()
        self.backend_url = backend_url or os.environ.get("ODE_BACKEND_URL") or (
            f"file://{self.state_dir / 'pulumi'}")
        # Private (0700) as the SQLite registry makes it, whoever comes first: it will hold the passphrase, the
        # stacks' state and their workspaces.
        make_state_dir(self.state_dir)
        if self.backend_url.startswith("file://"):
            Path(self.backend_url[len("file://"):]).mkdir(parents=True, exist_ok=True)
        #: ``passphrase`` (the default) or a KMS key (``awskms://...``, ``ODE_SECRETS_PROVIDER``): what every machine
        #: that runs a stack must be able to use when stacks run on workers elsewhere.
        self.secrets_provider = secrets_provider or os.environ.get(SECRETS_PROVIDER_VARIABLE) or "passphrase"
        #: Where the passphrase came from: ``given``, ``environment``, ``file`` (generated once into the state
        #: directory, which only this machine has) or None (a KMS secrets provider needs none).
        self.passphrase_source: str | None = None
        if passphrase or os.environ.get("PULUMI_CONFIG_PASSPHRASE"):
            self.passphrase_source = "given" if passphrase else "environment"
            self._passphrase = passphrase or os.environ.get("PULUMI_CONFIG_PASSPHRASE") or ""
        elif self.secrets_provider == "passphrase":
            self.passphrase_source = "file"
            self._passphrase = self._stored_passphrase()
        else:
            self._passphrase = ""
        self.env_vars = dict(env_vars or {})
        self.command = self._command()
        #: The policy gate (``ode.policy.gate.PolicyGate``): checks a stack before the CLI sees it, and gives the CLI
        #: the policy pack to run as well.
        self.gate: Any = None
        #: Stacks whose last refresh-preview here found drift: their next ``up`` refreshes first (``up --refresh``).
        #: A plain ``pulumi up`` compares the program with the state, which still holds the values the cloud no
        #: longer has, and would change nothing; refreshed first, the state holds what drifted and the update puts
        #: the program's values back (which is what healing means).
        self._drifted: set[str] = set()
        self._drifted_lock = threading.Lock()

    @staticmethod
    def available() -> bool:
        """Whether a ``pulumi`` CLI can be found (on PATH or in ``~/.pulumi/bin``)."""
        return _find_cli() is not None

    def _stored_passphrase(self) -> str:
        path = self.state_dir / "passphrase"
        if not path.exists():
            make_state_dir(self.state_dir)
            # Written whole under another name, then linked into place: of several processes racing here, one
            # link wins and the others read the winner's complete file (never a FileExistsError, never half a file).
            tmp = path.with_name(f".passphrase.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip()

    def _command(self) -> Any:
        from pulumi import automation as auto

        found = _find_cli()
        if found is not None:
            return auto.PulumiCommand(root=str(Path(found).parent.parent) if Path(found).parent.name == "bin"
                                      else None)
        if os.environ.get(INSTALL_VARIABLE) not in ("1", "true", "yes"):
            raise CliNotFoundError(
                "no `pulumi` CLI on PATH or in ~/.pulumi: install it (https://www.pulumi.com/docs/install/), set "
                f"{INSTALL_VARIABLE}=1 to let ode download it, or use --engine simulated")
        with _INSTALL_LOCK:  # try the installer once per process
            if not _INSTALL_TRIED:
                _INSTALL_TRIED.append(True)
                # Said before it happens: a download from get.pulumi.com into ~/.pulumi/versions/<version>.
                print(f"engine: no pulumi CLI found; downloading one ({INSTALL_VARIABLE}=1) into "
                      "~/.pulumi/versions/", file=sys.stderr, flush=True)
                try:
                    return auto.PulumiCommand.install()
                except Exception as exc:  # noqa: BLE001 - any failure means the same thing to the user
                    reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                    raise CliNotFoundError(
                        f"no `pulumi` CLI on PATH, and installing one failed ({reason}); install it "
                        "(https://www.pulumi.com/docs/install/) or use --engine simulated") from None
        raise CliNotFoundError("no `pulumi` CLI on PATH: install it (https://www.pulumi.com/docs/install/) or use "
                               "--engine simulated")

    # -- workspaces ----------------------------------------------------------------------------------------------

    def workspace_dir(self, spec: StackSpec) -> Path:
        """The stack's own workspace: a generated Pulumi project that runs ``ode.program.main``."""
        folder = self.state_dir / "workspaces" / spec.stack_name
        folder.mkdir(parents=True, exist_ok=True)
        # The program runs in this Python environment: a virtualenv's path when ode runs in one (quoted, it may
        # hold any character); outside one, no virtualenv at all and PULUMI_PYTHON_CMD names this interpreter.
        options = "    toolchain: pip\n"
        if sys.prefix != sys.base_prefix:
            options += f"    virtualenv: {_yaml_string(sys.prefix)}\n"
        (folder / "Pulumi.yaml").write_text(
            f"name: {_yaml_string(spec.project)}\n"
            "description: generated by ode for one bounded context\n"
            "runtime:\n  name: python\n  options:\n" + options +
            f"backend:\n  url: {_yaml_string(self.backend_url)}\n")
        (folder / "__main__.py").write_text("from ode.program import main\n\nmain()\n")
        return folder

    def environment(self) -> dict[str, str]:
        """What the CLI runs with: the passphrase, the backend, no update checks, and any extra variables."""
        found = {"PULUMI_BACKEND_URL": self.backend_url, "PULUMI_SKIP_UPDATE_CHECK": "true",
                 "PULUMI_PYTHON_CMD": sys.executable, **self.env_vars}
        if self._passphrase:
            found["PULUMI_CONFIG_PASSPHRASE"] = self._passphrase
        return found

    def _stack(self, spec: StackSpec, create: bool = True, configure: bool = True) -> Any:
        """The stack, created or selected; with ``configure`` its config set to exactly the spec's. A refresh keeps
        the config the last ``up`` set: it runs no program, and is given no upstream outputs to set."""
        from pulumi import automation as auto

        options = auto.LocalWorkspaceOptions(work_dir=str(self.workspace_dir(spec)), pulumi_command=self.command,
                                             env_vars=self.environment(), secrets_provider=self.secrets_provider)
        try:
            if create:
                stack = auto.create_or_select_stack(stack_name=spec.stack_name, work_dir=options.work_dir,
                                                    opts=options)
            else:
                stack = auto.select_stack(stack_name=spec.stack_name, work_dir=options.work_dir, opts=options)
        except Exception as exc:  # noqa: BLE001 - classified in one place
            raise classify(spec.stack_name, exc) from None
        if not configure:
            return stack
        plain, secret = stack_config(spec)
        values = {k: auto.ConfigValue(value=v) for k, v in plain.items()}
        values.update({k: auto.ConfigValue(value=v, secret=True) for k, v in secret.items()})
        try:
            stack.set_all_config(values)
            # Exactly what ode wants, every run: a key a previous run set and this one does not (a local target's
            # endpoint, secret upstream keys that are gone) would otherwise stay and steer the program.
            stale = sorted(set(stack.get_all_config()) - set(values))
            if stale:
                stack.remove_all_config(stale)
        except Exception as exc:  # noqa: BLE001
            raise classify(spec.stack_name, exc) from None
        return stack

    # -- operations ----------------------------------------------------------------------------------------------

    def _run(self, spec: StackSpec, operation: str, progress: ProgressCallback | None,
             preview_only: bool = False) -> StackResult:
        started = time.perf_counter()
        packs: dict[str, Any] = {}
        if self.gate is not None and operation in ("up", "preview"):
            self.gate(spec, None)
            packs = self.gate.pulumi_options(spec)
        stack = self._stack(spec, create=operation in ("up", "preview"), configure=operation != "refresh")
        events = EngineEvents(spec.stack_name, progress, refresh=operation == "refresh")
        common: dict[str, Any] = {"color": "never", "on_event": events}
        with self._drifted_lock:
            heal = operation == "up" and spec.stack_name in self._drifted
        if heal and progress is not None:
            progress(spec.stack_name, "refreshing first: drift was found in this stack")
        try:
            outputs = None
            if operation == "up":
                result = stack.up(**common, **packs, **({"refresh": True} if heal else {}))
                changes = dict(result.summary.resource_changes or {})
                outputs = result.outputs  # up already read them: no second pair of CLI calls
            elif operation == "preview":
                result = stack.preview(**common, **packs)
                changes = {str(k): v for k, v in (result.change_summary or {}).items()}
            elif operation == "refresh" and preview_only:
                result = stack.preview_refresh(**common)
                changes = {str(k): v for k, v in (result.change_summary or {}).items()}
            elif operation == "refresh":
                result = stack.refresh(**common)
                changes = dict(result.summary.resource_changes or {})
            else:
                result = stack.destroy(**common)
                changes = dict(result.summary.resource_changes or {})
            if outputs is None:
                outputs = stack.outputs() if operation != "destroy" else {}
        except Exception as exc:  # noqa: BLE001
            raise classify(spec.stack_name, exc, events) from None
        values = {k: v.value for k, v in outputs.items()}
        hidden = frozenset(k for k, v in outputs.items() if v.secret)
        if events.changes:  # the run's own summary event: the counts of exactly this operation
            changes = dict(events.changes)
        resources = events.resource_changes()
        with self._drifted_lock:
            if operation == "refresh" and preview_only and any(r.op != "same" for r in resources):
                self._drifted.add(spec.stack_name)
            elif operation != "preview":  # deployed over, adopted by a refresh, destroyed, or found clean
                self._drifted.discard(spec.stack_name)
        return StackResult(stack=spec.stack_name, operation=operation, outputs=values,  # type: ignore[arg-type]
                           secret_outputs=hidden, resources=resources, changes=changes,
                           simulated=False, duration_s=time.perf_counter() - started,
                           policy_violations=list(events.policies))

    def preview(self, spec: StackSpec, progress: ProgressCallback | None = None) -> StackResult:
        return self._run(spec, "preview", progress)

    def up(self, spec: StackSpec, progress: ProgressCallback | None = None) -> StackResult:
        return self._run(spec, "up", progress)

    def refresh(self, spec: StackSpec, progress: ProgressCallback | None = None, *,
                preview_only: bool = False) -> StackResult:
        """``pulumi refresh``; with ``preview_only`` a refresh-preview (``preview_refresh``) that changes nothing
        and returns the drifted resources with their changed properties."""
        return self._run(spec, "refresh", progress, preview_only=preview_only)

    def destroy(self, spec: StackSpec, progress: ProgressCallback | None = None) -> StackResult:
        return self._run(spec, "destroy", progress)

    def outputs(self, spec: StackSpec) -> dict[str, Any]:
        stack = self._stack(spec, create=False)
        try:
            return {k: v.value for k, v in stack.outputs().items()}
        except Exception as exc:  # noqa: BLE001
            raise classify(spec.stack_name, exc) from None


class PolicyPackViolationError(EngineError):
    """The CLI's policy pack stopped the stack: a mandatory rule was broken (the CLI steps no further)."""

    def __init__(self, stack: str, violations: list[dict[str, Any]], detail: str = ""):
        self.violations = violations
        lines = [f"{v['policy']} on {(v['urn'] or '').split('::')[-1] or 'the stack'}: {v['message']}"
                 for v in violations]
        more = f" (and {len(lines) - 5} more)" if len(lines) > 5 else ""
        packs = ", ".join(sorted({v["pack"] for v in violations if v["pack"]})) or "the policy pack"
        super().__init__(stack, f"blocked by policy pack {packs}: " + "; ".join(lines[:5]) + more, detail)


def classify(stack: str, exc: BaseException, events: EngineEvents | None = None) -> Exception:
    """One place that turns what the Automation API raised into the engine's errors: the SDK's own error classes
    first, then what the engine events said (an error diagnostic of the program, a mandatory policy violation, a
    failed resource)."""
    from pulumi import automation as auto

    if isinstance(exc, FileNotFoundError):
        return CliNotFoundError(f"{stack}: the pulumi CLI could not be run ({exc})")
    if isinstance(exc, auto.ConcurrentUpdateError):
        return ConcurrentUpdateError(stack, "another update of this stack is running", str(exc))
    if isinstance(exc, auto.StackNotFoundError):
        return StackNotFoundError(stack, "no such stack", str(exc))
    if not isinstance(exc, auto.CommandError):
        return EngineError(stack, f"{type(exc).__name__}: {exc}")
    said = "\n".join(events.errors) if events is not None else ""
    detail = f"{said}\n{exc}" if said else str(exc)
    if isinstance(exc, (auto.RuntimeError, auto.InlineSourceRuntimeError, auto.CompilationError)) or (
            events is not None and events.program_failed):
        return ProgramError(stack, "the program failed", detail)
    blocking = [p for p in events.policies if p["level"] == "mandatory"] if events is not None else []
    if blocking:
        return PolicyPackViolationError(stack, blocking, detail)
    if events is not None and events.failed:
        return EngineError(stack, f"pulumi failed on {', '.join(events.failed)}", detail)
    if isinstance(exc, auto.StackAlreadyExistsError):
        return EngineError(stack, "the stack already exists", detail)
    return EngineError(stack, "pulumi failed", detail)


#: Operations of the engine's steps as a plan shows them.
_OPS = {"same": "same", "create": "create", "update": "update", "delete": "delete", "replace": "replace",
        "create-replacement": "replace", "delete-replaced": "replace", "read": "same", "read-replacement": "replace",
        "import": "create", "import-replacement": "replace", "discard": "delete", "discard-replaced": "replace",
        "remove-pending-replace": "same", "refresh": "same"}
#: Steps that close a replacement: they carry neither the new state nor the diff, so they never replace the step
#: that did.
_TRAILING = {"delete-replaced", "discard-replaced", "remove-pending-replace"}
#: What a resource's step is called while it runs, and once it is done.
_DOING = {"create": "creating", "update": "updating", "delete": "deleting", "replace": "replacing"}
_DONE = {"create": "created", "update": "updated", "delete": "deleted", "replace": "replaced"}
#: The key pulumi marks a secret value with in serialized state.
_SECRET_SIG = "4dabf18193072939515e22adb298388d"
_PATH_PART = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|\.?([^.\[\]]+)')
#: Property path segments pulumi prints without quotes (PropertyPath.String in the Go SDK).
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_]+$")


def _masked(value: Any) -> Any:
    """A state value as ode may show it: secrets (and anything holding one) masked."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) is not None:
            return SECRET_MASK
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _at(tree: Any, path: str) -> Any:
    """The value at a property path of the engine's diffs (``tags.team``, ``rules[0].cidr``, ``tags["a.b"]``)."""
    node = tree
    for quoted, index, plain in _PATH_PART.findall(path):
        if index:
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
        else:
            key = re.sub(r"\\(.)", r"\1", quoted) if quoted else plain
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a value by its property path, written as the engine writes paths."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            part = key if _PLAIN_KEY.match(key) else '["' + key.replace('"', '\\"') + '"]'
            out.update(_leaves(item, part if not prefix else prefix + (part if part.startswith("[") else "." + part)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, item in enumerate(value):
            out.update(_leaves(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value} if prefix else {}


def _side(state: Any, first: str) -> dict[str, Any]:
    """A step state's inputs or outputs (masked), the other ones where those are empty (a preview's new state
    has no outputs yet; a state read back may have no inputs)."""
    if state is None:
        return {}
    other = "outputs" if first == "inputs" else "inputs"
    return _masked(dict(getattr(state, first) or getattr(state, other) or {}))


class EngineEvents:
    """Collects one operation's engine events (``on_event``): each resource's step with its operation and changed
    properties, progress lines per resource, policy violations, error diagnostics, the summary. Called from the
    SDK's event thread while the CLI runs; read once the operation has returned or raised.

    A resource's ``resourcePreEvent`` says what the engine is about to do and its ``resOutputsEvent`` what it did;
    both are read, the later one winning. That matters for a refresh: its pre-event has the op ``refresh`` with the
    new state equal to the old one and no diffs, and only the outputs event says whether the resource drifted
    (``update`` with the refreshed state, ``diffs`` and ``detailedDiff``; ``delete`` with no new state when it is
    gone; ``same``), or, where the engine reports refreshes without diffs, only by its differing outputs.
    """

    def __init__(self, stack: str, progress: ProgressCallback | None = None, *, refresh: bool = False):
        self.stack = stack
        self.progress = progress
        self.refresh = refresh
        self._lock = threading.Lock()
        self._steps: dict[str, ResourceChange] = {}
        #: URNs of the resources whose step failed.
        self.failed: list[str] = []
        #: Error diagnostics, in order (the program's traceback, a provider's refusal...).
        self.errors: list[str] = []
        #: Policy violations: ``{"policy", "pack", "level", "message", "urn"}``.
        self.policies: list[dict[str, Any]] = []
        #: The summary's resource changes by operation.
        self.changes: dict[str, int] = {}
        #: True when an error diagnostic came from the stack resource itself (the program raised).
        self.program_failed = False

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(self.stack, line)

    def __call__(self, event: Any) -> None:
        """Take one :class:`pulumi.automation.events.EngineEvent`."""
        try:
            self._take(event)
        except Exception:  # noqa: BLE001 - a malformed event must not stop the operation it describes
            pass

    def _take(self, event: Any) -> None:
        if event.resource_pre_event is not None:
            self._step(event.resource_pre_event.metadata, done=False)
        elif event.res_outputs_event is not None:
            # a preview's outputs events (planning) say what would be done: nothing was done to report
            self._step(event.res_outputs_event.metadata, done=True,
                       quiet=bool(event.res_outputs_event.planning) and not self.refresh)
        elif event.res_op_failed_event is not None:
            urn = event.res_op_failed_event.metadata.urn
            with self._lock:
                self.failed.append(urn)
            self._say(f"failed {urn}")
        elif event.diagnostic_event is not None:
            diag = event.diagnostic_event
            message = (diag.message or "").strip()
            if diag.severity == "error" and message:
                with self._lock:
                    self.errors.append(message)
                    if (diag.urn or "").split("::")[-2:-1] == ["pulumi:pulumi:Stack"]:
                        self.program_failed = True
            if diag.severity in ("error", "warning") and message:
                self._say(f"{diag.severity}: {message.splitlines()[0]}")
        elif event.policy_event is not None:
            pol = event.policy_event
            # the pack's message is the policy's description, then what this resource did wrong
            message = " ".join(line.strip() for line in (pol.message or "").splitlines() if line.strip())
            found = {"policy": pol.policy_name, "pack": pol.policy_pack_name, "level": pol.enforcement_level,
                     "message": message, "urn": pol.resource_urn}
            with self._lock:
                self.policies.append(found)
            self._say(f"policy {pol.policy_name} ({pol.enforcement_level}): {message}" if message
                      else f"policy {pol.policy_name} ({pol.enforcement_level})")
        elif event.summary_event is not None:
            self.changes = {str(getattr(k, "value", k)): int(v) for k, v in
                            (event.summary_event.resource_changes or {}).items()}

    def _step(self, meta: Any, *, done: bool, quiet: bool = False) -> None:
        raw = str(getattr(meta.op, "value", meta.op))
        change = self._change(meta, raw, done)
        key = change.urn or change.name
        with self._lock:
            prior = self._steps.get(key)
            if prior is not None and raw in _TRAILING:
                return
            if prior is not None and prior.diff and not change.diff and change.op == prior.op:
                # a replacement is several steps of one URN; the one that carries the changed properties is kept
                change.diff = prior.diff
            self._steps[key] = change
        if change.op == "same" or quiet or (self.refresh and not done):
            return
        if self.refresh:  # what the cloud holds differs from the state (or the resource is gone)
            self._say(f"{'gone' if change.op == 'delete' else 'drifted'} {change.urn}")
        else:
            self._say(f"{(_DONE if done else _DOING).get(change.op, change.op)} {change.urn}")

    def _op(self, meta: Any, raw: str, done: bool) -> str:
        if not self.refresh or raw not in ("refresh", "same", "update", "delete"):
            return _OPS.get(raw, "update")
        if not done:
            return "same"  # the pre-event of a refresh: nothing is known yet
        if meta.new is None and meta.old is not None:
            return "delete"
        if raw != "refresh":
            return raw  # the refresh's result: same, update (drifted) or delete (gone)
        # a refresh that ran the program reports its step as `refresh`: drifted when it differs
        if meta.diffs or meta.detailed_diff:
            return "update"
        return "update" if _side(meta.old, "outputs") != _side(meta.new, "outputs") else "same"

    def _change(self, meta: Any, raw: str, done: bool) -> ResourceChange:
        op = self._op(meta, raw, done)
        old_state, new_state = meta.old, meta.new
        diff: list[PropertyChange] = []
        if op in ("update", "replace"):
            diff = self._diff(meta)
        state = new_state or old_state
        inputs = _side(state, "inputs")
        return ResourceChange(type=meta.type, name=meta.urn.split("::")[-1], parent=(state.parent or None)
                              if state is not None else None, inputs=inputs, op=op,  # type: ignore[arg-type]
                              diff=diff, urn=meta.urn)

    def _diff(self, meta: Any) -> list[PropertyChange]:
        """Each changed property, old -> new. ``detailedDiff`` paths are looked up in the old and new inputs (or,
        for a difference against the old state, ``inputDiff`` false, in the old outputs); without any diff from the
        engine (a refresh reported by outputs alone), the outputs are compared leaf by leaf."""
        detailed = meta.detailed_diff or {}
        keys = set(meta.keys or [])
        if detailed or meta.diffs:
            paths = list(detailed) or list(dict.fromkeys(meta.diffs or []))
            changes = []
            for path in paths:
                item = detailed.get(path)
                kind = str(getattr(item.diff_kind, "value", item.diff_kind)) if item is not None else ""
                from_inputs = item is None or item.input_diff
                # a refresh's diff is the provider's diff inverted: its "new" side is what was read back
                new_side = "inputs" if from_inputs or not self.refresh else "outputs"
                old = _at(_side(meta.old, "inputs" if from_inputs else "outputs"), path)
                new = _at(_side(meta.new, new_side), path) if meta.new is not None else None
                top = _PATH_PART.findall(path)[0] if path else ("", "", "")
                changes.append(PropertyChange(path, old, new, kind.endswith("-replace") or (
                    top[0] or top[2]) in keys))
            return changes
        before = _leaves(_side(meta.old, "outputs"))
        after = _leaves(_side(meta.new, "outputs"))
        return [PropertyChange(path, before.get(path), after.get(path))
                for path in [*before, *(p for p in after if p not in before)] if before.get(path) != after.get(path)]

    def resource_changes(self) -> list[ResourceChange]:
        """Every resource the engine stepped through, in the order it did (the stack resource left out)."""
        with self._lock:
            return [c for c in self._steps.values() if c.type != "pulumi:pulumi:Stack"]
