"""The composition root: options and ODE_* variables, engines found by name, CI's refusal of the simulated engine,
the publishers it wires, tags of environments made on demand, and `ode affected` against the merge-base."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
import yaml

import ode.engines as engines
from ode.engines.pulumi import PulumiEngine
from ode.engines.simulated import SimulatedEngine, run_simulated
from ode.errors import UsageError
from ode.execution.orchestrator import CONFIG_TAGS
from ode.publishing.lifecycle_events import LifecycleEmitter
from ode.registry.sqlite import Registry
from ode.workspace import DEFAULT_PARALLEL, WorkspaceOptions, open_workspace

from .cli_runner import ode
from .conftest import SAMPLE


@pytest.fixture(autouse=True)
def _programs_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODE_SIMULATE_PROGRAMS", "0")
    for name in ("CI", "ODE_REGISTRY", "ODE_ENGINE", "ODE_PARALLEL", "ODE_STATE_DIR", "ODE_CONTRACTS"):
        monkeypatch.delenv(name, raising=False)


def test_options_come_from_ode_variables_then_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = WorkspaceOptions().resolved()
    assert (plain.parallel, plain.engine, plain.registry, plain.state_dir, plain.ci) == (
        DEFAULT_PARALLEL, "auto", None, Path(".ode"), False)
    assert DEFAULT_PARALLEL == 8
    monkeypatch.setenv("ODE_REGISTRY", f"sqlite:///{tmp_path}/shared/registry.db")
    monkeypatch.setenv("ODE_PARALLEL", "3")
    monkeypatch.setenv("CI", "true")
    with open_workspace(contracts=SAMPLE, state_dir=tmp_path / "state", engine="simulated") as ws:
        assert ws.options.parallel == 3 and ws.options.ci
        registry = ws.registry
        assert isinstance(registry, Registry) and registry.path == tmp_path / "shared" / "registry.db"
        assert ws.orchestrator().parallel == 3
    monkeypatch.setenv("ODE_PARALLEL", "many")
    with pytest.raises(UsageError, match="ODE_PARALLEL"):
        open_workspace()


def test_every_front_end_defaults_to_the_same_parallelism() -> None:
    for args in (["up", "--help"], ["ci", "up", "--help"], ["env", "create", "--help"], ["ci", "gc", "--help"]):
        text = ode(*args).output
        assert "--parallel" in text and f"[default: {DEFAULT_PARALLEL};" in " ".join(text.split()), args


def test_an_engine_is_found_by_name_through_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    def factory(library: Any, state_dir: Path, **options: Any) -> SimulatedEngine:
        made.append(str(state_dir))
        return SimulatedEngine(library, state_dir, run_programs=False)

    module = type(sys)("third_party_engine")
    module.open_engine = factory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "third_party_engine", module)
    import importlib.metadata as metadata

    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points", lambda group=None, **kw: [
        EntryPoint("mine", "third_party_engine:open_engine", group)] if group == engines.ENTRY_POINT_GROUP
        else real(group=group, **kw))
    with open_workspace(contracts=SAMPLE, state_dir=tmp_path, engine="mine") as ws:
        assert ws.orchestrator().engine.name == "simulated" and made == [str(tmp_path)]
    with pytest.raises(UsageError, match=r"'nope'.*known: auto, mine, pulumi, simulated"):
        open_workspace(contracts=SAMPLE, state_dir=tmp_path / "x", engine="nope").orchestrator()


def test_under_ci_auto_never_falls_back_to_the_simulated_engine(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PulumiEngine, "available", staticmethod(lambda: False))
    with pytest.raises(UsageError, match="CI=true and no `pulumi` CLI") as err:
        open_workspace(contracts=SAMPLE, state_dir=tmp_path, ci=True).orchestrator()
    assert "\n" not in str(err.value) and not (tmp_path / "registry.db").exists()
    named = open_workspace(contracts=SAMPLE, state_dir=tmp_path, ci=True, engine="simulated")
    assert named.orchestrator().engine.name == "simulated"
    named.close()
    outside = open_workspace(contracts=SAMPLE, state_dir=tmp_path / "laptop", ci=False)
    assert outside.orchestrator().engine.name == "simulated"  # auto, announced, on a laptop
    outside.close()


def _library(tmp_path: Path, **dev: Any) -> Path:
    lib = tmp_path / "contracts"
    shutil.copytree(SAMPLE, lib)
    envs = yaml.safe_load((lib / "environments.yaml").read_text())
    envs["environments"]["dev"].update(dev)
    (lib / "environments.yaml").write_text(yaml.safe_dump(envs, sort_keys=False))
    return lib


def test_publishers_are_wired_only_where_environments_ask(tmp_path: Path) -> None:
    with open_workspace(contracts=SAMPLE, state_dir=tmp_path / "a", engine="simulated") as plain:
        orchestrator = plain.orchestrator()
        assert orchestrator.events is None and orchestrator.outputs is None
    lib = _library(tmp_path, publish="ssm", events={"bus": "platform"})
    with open_workspace(contracts=lib, state_dir=tmp_path / "b", engine="simulated") as ws:
        orchestrator = ws.orchestrator()
        assert isinstance(orchestrator.events, LifecycleEmitter) and orchestrator.outputs is not None
        assert orchestrator.outputs.place("dev") == (True, "us-east-1")
        assert orchestrator.outputs.place("stage")[0] is False and orchestrator.outputs.place("pr-1")[0] is False
        assert orchestrator.events.place("dev") == ("platform", "us-east-1")
        assert orchestrator.events.place("stage") is None and orchestrator.events.place("pr-1") is None


def test_emit_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    def broken(env: str) -> tuple[str, str | None]:
        raise RuntimeError("no network")

    emitter = LifecycleEmitter("shop", broken)
    with caplog.at_level(logging.WARNING, logger="ode.publishing.lifecycle_events"):
        emitter.emit("StackSucceeded", {"environment": "dev"})
    assert ["could not send lifecycle event StackSucceeded: no network"] == [r.getMessage() for r in caplog.records]


def test_an_unknown_publish_target_is_a_contract_error(tmp_path: Path) -> None:
    lib = _library(tmp_path, publish="s3")
    done = ode("validate", "--contracts", str(lib))
    assert done.exit_code == 2 and "publish" in done.output


def test_ephemeral_resources_are_tagged_and_an_extend_redeploys_nothing(tmp_path: Path) -> None:
    with open_workspace(contracts=SAMPLE, state_dir=tmp_path, engine="simulated") as ws:
        envs = ws.environments()
        record, result = envs.create("pr-42", contexts=["catalog"], ttl="2h", reuse=[], owner="ana")
        assert result.ok
        spec = envs.orchestrator.stack_spec("pr-42", "catalog", "dev")  # type: ignore[union-attr]
        tags = json.loads(spec.config[CONFIG_TAGS])
        assert tags == {"ode:created-by": "ana", "ode:expires-at": record.expires_at, "ode:pr": "42"}
        later = envs.extend("pr-42", "3h")
        assert later.expires_at != record.expires_at
    with open_workspace(contracts=SAMPLE, state_dir=tmp_path, engine="simulated") as again:
        rerun = again.orchestrator().up("pr-42")
        assert {s.status for s in rerun.stacks} == {"unchanged"}
        # ...while a stack that does deploy carries the new expiry
        spec = again.orchestrator().stack_spec("pr-42", "network", "dev")
        assert json.loads(spec.config[CONFIG_TAGS])["ode:expires-at"] == later.expires_at
    library = again.library()
    provider = next(r for r in run_simulated(spec, library).resources if r.type == "pulumi:providers:aws")
    raw = provider.inputs["defaultTags"]  # a provider's inputs reach the mocks JSON-encoded
    default_tags = (json.loads(raw) if isinstance(raw, str) else raw)["tags"]
    assert default_tags["ode:expires-at"] == later.expires_at and default_tags["ode:pr"] == "42"
    assert default_tags["ode:created-by"] == "ana"


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=30)


def _bump(path: Path, key: str, value: Any) -> None:
    doc = yaml.safe_load(path.read_text())
    doc.setdefault("settings", {})[key] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_affected_compares_with_the_merge_base_and_says_why(tmp_path: Path) -> None:
    """main moves on after the branch forked (catalog changes there): only the branch's own change counts."""
    shutil.copytree(SAMPLE, tmp_path / "contracts")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "sample")
    git(tmp_path, "checkout", "-qb", "feature")
    _bump(tmp_path / "contracts" / "payments.yaml", "timeout_s", 45)
    git(tmp_path, "commit", "-qam", "payments")
    git(tmp_path, "checkout", "-q", "main")
    _bump(tmp_path / "contracts" / "catalog.yaml", "memory_mb", 1024)
    git(tmp_path, "commit", "-qam", "catalog")
    git(tmp_path, "checkout", "-q", "feature")
    done = ode("affected", "--since", "main", "--contracts", str(tmp_path / "contracts"), "--json")
    assert done.exit_code == 0, done.output
    found = json.loads(done.output)
    assert list(found["changed"]) == ["payments"] and "catalog" not in found["contexts"]
    assert found["why"]["payments"] == "contract changed in contracts/payments.yaml"
    assert found["why"]["orders"] == "consumes payments, which is affected"
    text = ode("affected", "--since", "main", "--contracts", str(tmp_path / "contracts")).output
    assert text.splitlines()[0] == "payments\tchanged\tcontract changed in contracts/payments.yaml"
