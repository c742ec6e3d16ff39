"""Environments made on demand: partial, reusing the base's shared contexts, with a TTL on an injectable clock."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ode.clock import FrozenClock, iso
from ode.contracts import load_library
from ode.engines import EngineError, StackResult, StackSpec
from ode.engines.simulated import SimulatedEngine
from ode.errors import OdeError, UsageError
from ode.execution.ephemeral import EphemeralEnvironments, ProtectedEnvironmentError
from ode.execution.orchestrator import Orchestrator
from ode.registry.sqlite import Registry

from .conftest import SAMPLE


class Spy:
    """An engine that records every call it passes on: (operation, spec)."""

    def __init__(self, inner: SimulatedEngine):
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[str, StackSpec]] = []
        self.failing_destroys: set[str] = set()
        self._lock = threading.Lock()

    def _record(self, op: str, spec: StackSpec) -> None:
        with self._lock:
            self.calls.append((op, spec))

    def preview(self, spec: StackSpec, progress: Any = None) -> StackResult:
        self._record("preview", spec)
        return self.inner.preview(spec, progress)

    def up(self, spec: StackSpec, progress: Any = None) -> StackResult:
        self._record("up", spec)
        return self.inner.up(spec, progress)

    def destroy(self, spec: StackSpec, progress: Any = None) -> StackResult:
        self._record("destroy", spec)
        if spec.stack_name in self.failing_destroys:
            raise EngineError(spec.stack_name, "destroy failed (injected)")
        return self.inner.destroy(spec, progress)

    def refresh(self, spec: StackSpec, progress: Any = None) -> StackResult:
        self._record("refresh", spec)
        return self.inner.refresh(spec, progress)

    def outputs(self, spec: StackSpec) -> dict[str, Any]:
        return self.inner.outputs(spec)

    def stacks(self, op: str) -> list[str]:
        return sorted(spec.stack_name for o, spec in self.calls if o == op)

    def spec(self, op: str, stack: str) -> StackSpec:
        return next(spec for o, spec in self.calls if o == op and spec.stack_name == stack)


class Platform:
    def __init__(self, state: Path, contracts: Path = SAMPLE, failures: tuple[str, ...] = ()):
        self.library = load_library(contracts)
        self.registry = Registry(state)
        self.engine = Spy(SimulatedEngine(self.library, state, failures=failures, run_programs=False))
        self.clock = FrozenClock()
        self.orchestrator = Orchestrator(self.library, self.registry, self.engine, parallel=4,  # type: ignore[arg-type]
                                         clock=self.clock, backoff_s=0)
        self.envs = EphemeralEnvironments(self.library, self.registry, self.orchestrator, clock=self.clock)

    def deploy_base(self) -> None:
        assert self.orchestrator.up("dev").ok
        self.engine.calls.clear()


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    p = Platform(tmp_path / "state")
    p.deploy_base()
    return p


def test_partial_environment_holds_exactly_what_the_contexts_need(platform: Platform) -> None:
    record, result = platform.envs.create("pr-7", contexts=["orders"], owner="alice")
    assert result.ok
    # orders needs catalog, identity, payments, network and shared-bus; the last two are reused from dev.
    assert platform.engine.stacks("up") == ["pr-7.catalog", "pr-7.identity", "pr-7.orders", "pr-7.payments"]
    assert sorted(s.context for s in result.stacks) == ["catalog", "identity", "orders", "payments"]
    assert record.base == "dev" and record.owner == "alice" and record.status == "active"
    assert record.contexts == ["orders"] and record.reuse == ["network", "shared-bus"]
    assert {spec.base_env for _, spec in platform.engine.calls} == {"dev"}


def test_reused_contexts_hand_the_base_outputs_to_their_consumers(platform: Platform) -> None:
    platform.envs.create("pr-7", contexts=["orders"])
    base_bus = platform.registry.stack("dev", "shared-bus")
    base_net = platform.registry.stack("dev", "network")
    assert base_bus is not None and base_net is not None
    payments = platform.engine.spec("up", "pr-7.payments")
    assert payments.upstream["shared-bus"]["bus"] == base_bus.outputs["bus"]
    assert payments.upstream["network"]["vpc"] == base_net.outputs["vpc"]
    # The consumer in the ephemeral environment gets its ephemeral producer's outputs, not dev's.
    orders = platform.engine.spec("up", "pr-7.orders")
    mine = platform.registry.stack("pr-7", "catalog")
    dev = platform.registry.stack("dev", "catalog")
    assert mine is not None and dev is not None
    assert orders.upstream["catalog"]["products-table"] == mine.outputs["products-table"]
    assert orders.upstream["catalog"]["products-table"] != dev.outputs["products-table"]


def test_without_contexts_every_context_but_the_reused(platform: Platform) -> None:
    _, result = platform.envs.create("feature-x", ttl="30m")
    deployed = {s.context for s in result.stacks}
    assert deployed == {"analytics", "identity", "catalog", "notifications", "payments", "orders", "fulfilment",
                        "storefront"}


def test_reuse_option_overrides_the_policy(platform: Platform) -> None:
    _, result = platform.envs.create("pr-8", contexts=["payments"], reuse=[])
    assert {s.context for s in result.stacks} == {"identity", "network", "shared-bus", "payments"}


def test_a_reused_context_missing_in_the_base_is_a_clear_error(tmp_path: Path) -> None:
    p = Platform(tmp_path / "state")  # dev never deployed
    with pytest.raises(OdeError, match=r"dev\.(network|shared-bus)"):
        p.envs.create("pr-9", contexts=["payments"])
    assert p.engine.stacks("up") == []


def test_ttl_rules(platform: Platform) -> None:
    record, _ = platform.envs.create("pr-7", contexts=["catalog"], ttl="90s")
    assert record.expires_at == iso(platform.clock.now + timedelta(seconds=90))
    with pytest.raises(UsageError, match="max_ttl"):
        platform.envs.create("pr-7", contexts=["catalog"], ttl="4d")
    with pytest.raises(UsageError, match="--ttl"):
        platform.envs.create("pr-7", contexts=["catalog"], ttl="soon")
    platform.clock.advance(60)
    extended = platform.envs.extend("pr-7", "2d")
    assert extended.expires_at == iso(platform.clock.now + timedelta(days=2))
    with pytest.raises(UsageError, match="max_ttl"):
        platform.envs.extend("pr-7", "73h")


def test_gc_destroys_only_the_expired(platform: Platform) -> None:
    platform.envs.create("pr-1", contexts=["catalog"], ttl="1h")
    platform.envs.create("pr-2", contexts=["identity"], ttl="3h")
    platform.engine.calls.clear()
    platform.clock.advance(2 * 3600)
    report = platform.envs.gc()
    assert report.ok
    assert [rec.name for rec, _ in report.destroyed] == ["pr-1"]
    assert [rec.name for rec in report.kept] == ["pr-2"]
    assert platform.engine.stacks("destroy") == ["pr-1.catalog"]
    assert [r.name for r in platform.envs.list()] == ["pr-2"]
    assert platform.registry.environment("pr-1").status == "destroyed"  # type: ignore[union-attr]
    assert platform.registry.stacks("pr-1") == []
    platform.clock.advance(2 * 3600)
    assert [rec.name for rec, _ in platform.envs.gc().destroyed] == ["pr-2"]


def test_gc_keeps_going_past_a_failure(tmp_path: Path) -> None:
    p = Platform(tmp_path / "state")
    p.deploy_base()
    p.envs.create("pr-1", contexts=["catalog"], ttl="1h")
    p.envs.create("pr-2", contexts=["identity"], ttl="1h")
    p.engine.failing_destroys = {"pr-1.catalog"}
    p.clock.advance(7200)
    report = p.envs.gc()
    assert not report.ok
    assert [rec.name for rec, _ in report.failed] == ["pr-1"]
    assert "pr-1.catalog" in report.failed[0][1]
    assert [rec.name for rec, _ in report.destroyed] == ["pr-2"]
    assert p.registry.environment("pr-1").status == "failed"  # type: ignore[union-attr]


def test_destroying_an_ephemeral_environment_leaves_the_base_untouched(platform: Platform) -> None:
    before = {(s.context, s.fingerprint, s.status) for s in platform.registry.stacks("dev")}
    platform.envs.create("pr-7", contexts=["orders"])
    platform.engine.calls.clear()
    result = platform.envs.destroy("pr-7")
    assert result.ok
    destroyed = [spec.stack_name for op, spec in platform.engine.calls if op == "destroy"]
    assert sorted(destroyed) == ["pr-7.catalog", "pr-7.identity", "pr-7.orders", "pr-7.payments"]
    # Reverse order: a consumer goes before its producers.
    assert destroyed.index("pr-7.orders") < destroyed.index("pr-7.payments") < destroyed.index("pr-7.identity")
    assert {(s.context, s.fingerprint, s.status) for s in platform.registry.stacks("dev")} == before


def test_protected_and_long_lived_environments_are_refused(platform: Platform) -> None:
    for name in ("prod", "dev"):
        with pytest.raises(ProtectedEnvironmentError, match=name):
            platform.envs.create(name, contexts=["catalog"])
        with pytest.raises(ProtectedEnvironmentError, match=name):
            platform.envs.destroy(name)
    with pytest.raises(UsageError, match="cannot name an environment"):
        platform.envs.create("Feature/X")
    with pytest.raises(UsageError, match="no environment made on demand"):
        platform.envs.destroy("pr-404")
    assert platform.engine.calls == []


def test_creating_again_adds_contexts_and_redeploys_only_what_changed(platform: Platform) -> None:
    platform.envs.create("pr-7", contexts=["catalog"], ttl="1h")
    platform.engine.calls.clear()
    platform.clock.advance(1800)
    record, result = platform.envs.create("pr-7", contexts=["payments"], ttl="1h")
    assert record.contexts == ["catalog", "payments"]
    assert record.expires_at == iso(platform.clock.now + timedelta(hours=1))
    assert platform.engine.stacks("up") == ["pr-7.identity", "pr-7.payments"]
    assert {s.context: s.status for s in result.stacks}["catalog"] == "unchanged"


def test_a_failed_stack_marks_the_environment_failed(tmp_path: Path) -> None:
    p = Platform(tmp_path / "state", failures=("pr-3.payments",))
    p.deploy_base()
    record, result = p.envs.create("pr-3", contexts=["orders"])
    assert not result.ok and record.status == "failed"
    status = {s.context: s.status for s in result.stacks}
    assert status["payments"] == "failed" and status["orders"] == "skipped"
    assert status["catalog"] == "succeeded"
