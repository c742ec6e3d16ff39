"""The policy gate: every mandatory rule over a stack's resources, run before an engine previews or deploys it.

The workspace installs it in the engine it opens (``ode plan``, ``ode up``, ``ode env create``, ``ode ci``...);
``ode check`` runs the same rules over a whole environment (:mod:`ode.policy.environment`). The rules themselves are
imported when the first stack is checked: a no-op ``up`` pays nothing for them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clock import Clock, utcnow
from ..contracts import ContractLibrary
from ..engines.protocol import ResourceChange
from ..engines.simulated import ProgramRunner, run_simulated
from ..program import StackSpec

if TYPE_CHECKING:
    from ._evaluate import Policies
    from ._model import Res

#: The CrossGuard pack in a source checkout (``pulumi up --policy-pack policies``).
POLICY_PACK = Path(__file__).resolve().parents[3] / "policies"


@dataclass
class StackRun:
    """One stack's previewed program: its resources as the rules see them, its outputs, and the time it took."""

    resources: list[Res]
    outputs: dict[str, Any]
    seconds: float


def preview_stack(spec: StackSpec, library: ContractLibrary, runner: ProgramRunner | None = None) -> StackRun:
    """Run a stack's program under mocks and return its resources and outputs (raises ``ProgramError``): in the
    runner open for the library, else in ``runner``, else in this process."""
    from ._evaluate import resources_from  # deferred: see the module's docstring

    started = time.perf_counter()
    run = run_simulated(spec, library, preview=True, runner=runner)
    return StackRun(resources_from(run.resources), dict(run.outputs), time.perf_counter() - started)


class PolicyGate:
    """Run before an engine previews or deploys a stack: raises :class:`PolicyViolationError` (an engine error,
    so the stack fails and its consumers are skipped) when the stack breaks a mandatory rule.

    Engines call it as ``gate(spec, resources)`` with the resources their program recorded; with ``None`` (an
    engine that has not run the program, such as the pulumi engine) the gate runs it under mocks first, so a
    violating stack never reaches the cloud. ``pulumi_options(spec)`` gives the pulumi engine the policy pack and
    this stack's pack configuration, so that the CLI applies the same rules.
    """

    def __init__(self, library: ContractLibrary, state_dir: str | Path, *, clock: Clock = utcnow):
        self.library = library
        self.state_dir = Path(state_dir)
        self.clock = clock
        self._policies: dict[str, Policies] = {}
        #: The stacks this gate has checked, per environment: what environment rules see of the stacks before.
        self._seen: dict[str, dict[str, tuple[list[Res], dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        #: Where the previews of stacks whose engine runs no program go: here, or worker processes in a large run.
        self.runner = ProgramRunner(library)

    def policies(self, env: str) -> Policies:
        """The rules as ``env`` sets them (levels, configuration), read once per environment."""
        from ._evaluate import Policies  # deferred: see the module's docstring

        if env not in self._policies:
            self._policies[env] = Policies(self.library, env, clock=self.clock)
        return self._policies[env]

    def __call__(self, spec: StackSpec, resources: Sequence[ResourceChange] | None) -> None:
        from ._environment import environment_view  # deferred: see the module's docstring
        from ._evaluate import PolicyViolationError, resources_from

        if spec.context not in self.library.contexts:
            return
        views = resources_from(resources) if resources is not None else \
            preview_stack(spec, self.library, self.runner).resources
        policies = self.policies(spec.settings_env)
        violations = policies.check_stack(spec.context, views, spec.upstream, stack=spec.stack_name)
        # Environment rules over this stack and those checked before it in this environment: hops into a stack
        # this gate has not seen are not judged (``ode check`` sees them all).
        with self._lock:  # engines run stacks in threads
            seen = self._seen.setdefault(spec.env, {})
            seen[spec.context] = (views, {k: dict(v) for k, v in spec.upstream.items()})
            stacks = {c: r for c, (r, _) in seen.items()}
            produced: dict[str, dict[str, Any]] = {}
            for _, upstream in seen.values():
                for producer, interfaces in upstream.items():
                    produced.setdefault(producer, {}).update(interfaces)
        view = environment_view(self.library, spec.settings_env, stacks, produced, [spec.context])
        violations += policies.check_environment(view, [spec.context], {spec.context: spec.stack_name})
        blocking = [v for v in violations if v.blocking]
        if blocking:
            raise PolicyViolationError(spec.stack_name, blocking)

    def close(self) -> None:
        """Stop the worker processes this gate started for its previews, if any."""
        self.runner.close()

    def pulumi_options(self, spec: StackSpec) -> dict[str, list[str]]:
        """``policy_packs`` and ``policy_pack_configs`` for the Automation API's up and preview (empty where
        the pack is not beside the sources, as in an installed copy)."""
        from ._stack_rules import bounds_for  # deferred: see the module's docstring

        if not (POLICY_PACK / "PulumiPolicy.yaml").exists():
            return {}
        policies = self.policies(spec.settings_env)
        bounds = bounds_for(self.library, spec.context, spec.upstream, spec.secret_upstream)
        config = policies.pack_config(spec.context, bounds)
        folder = self.state_dir / "policy"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{spec.stack_name}.json"
        path.write_text(json.dumps(config, indent=2, sort_keys=True))
        return {"policy_packs": [str(POLICY_PACK)], "policy_pack_configs": [str(path)]}


def install_gate(engine: object, library: ContractLibrary, state_dir: str | Path) -> None:
    """Give an engine the policy gate (engines without a ``gate`` attribute are left as they are)."""
    if hasattr(engine, "gate"):
        engine.gate = PolicyGate(library, state_dir)


