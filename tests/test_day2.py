"""Day two: plan with per-property diffs, refresh, drift detection and healing, on the simulated engine and on the
stand-in CLI's engine-event stream (shaped after the real engine's recorded event streams: see tests/fakes/pulumi)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi.automation import CommandError
from pulumi.automation import events as ev
from pulumi.automation._cmd import CommandResult

from ode.contracts import load_library
from ode.engines import EngineError, ProgramError, StackSpec
from ode.engines.pulumi import EngineEvents, PulumiEngine, classify
from ode.engines.simulated import SimulatedEngine, property_diff
from ode.errors import UsageError
from ode.execution.drift import CLEAN, DRIFTED, HEALED, UNCHECKED, check_drift, heal, refresh
from ode.execution.orchestrator import Orchestrator
from ode.registry.sqlite import Registry

from .conftest import SAMPLE
from .test_pulumi_engine import calls, ode_on_the_stand_in, recorded, stand_in  # noqa: F401  (the stand-in CLI)


class Events:
    """What ``orchestrator.events`` receives."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def emit(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.sent.append((detail_type, detail))


def _orchestrator(library_dir: Path, state: Path, *, run_programs: bool = False, **faults: Any) -> Orchestrator:
    library = load_library(library_dir)
    engine = SimulatedEngine(library, state, run_programs=run_programs, **faults)
    return Orchestrator(library, Registry(state), engine, parallel=4)


# -- plan --diff on the simulated engine -----------------------------------------------------------------------------

def test_plan_shows_each_changed_setting_old_and_new_and_unchanged_stacks_carry_no_resources(
        sample_library: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert _orchestrator(sample_library, state, run_programs=True).up("dev", ["orders"]).ok
    orders = sample_library / "orders.yaml"
    doc = yaml.safe_load(orders.read_text())
    doc["settings"]["memory_mb"] = 1024
    doc["settings"]["environment"]["LOG_LEVEL"] = "debug"
    orders.write_text(yaml.safe_dump(doc, sort_keys=False))
    plan = _orchestrator(sample_library, state, run_programs=True).plan("dev", ["orders"]).to_dict()
    by_stack = {s["stack"]: s for s in plan["stacks"]}
    assert by_stack["dev.network"]["action"] == "unchanged" and by_stack["dev.network"]["resources"] == []
    changed = [r for r in by_stack["dev.orders"]["resources"] if r["op"] != "same"]
    assert [(r["name"], r["op"]) for r in changed] == [("orders-api", "update")]
    diff = {d["path"]: d for d in changed[0]["diff"]}
    assert diff["memorySize"] == {"path": "memorySize", "old": 512, "new": 1024, "replaces": False}
    assert (diff["environment.variables.LOG_LEVEL"]["old"], diff["environment.variables.LOG_LEVEL"]["new"]) == (
        "info", "debug")
    assert by_stack["dev.orders"]["changes"]["update"] == 1


def test_a_property_diff_masks_secrets_and_says_which_changes_replace() -> None:
    diff = property_diff({"name": "a", "password": "[secret]", "tags": {"team": "x"}, "env": {"K": "[secret]"}},
                         {"name": "b", "password": "[secret]", "tags": {"team": "y"}, "env": {"K": "v"}})
    by_path = {d.path: d for d in diff}
    assert by_path["name"].replaces and not by_path["tags.team"].replaces
    assert (by_path["tags.team"].old, by_path["tags.team"].new) == ("x", "y")
    assert by_path["env.K"].old == "[secret]"  # a secret is never shown, not even as the old value
    assert "password" not in by_path  # masked on both sides: nothing to show


def test_a_deleted_resource_is_not_kept_in_the_state_of_the_last_up(tmp_path: Path) -> None:
    library = load_library(SAMPLE)
    engine = SimulatedEngine(library, tmp_path)
    spec = StackSpec(project="shop", env="dev", context="network", contracts_dir=SAMPLE)
    engine.up(spec)
    path = tmp_path / "simulated" / "dev.network.json"
    saved = json.loads(path.read_text())
    saved["resources"].append({"type": "aws:sqs/queue:Queue", "name": "gone", "parent": None, "inputs": {},
                               "dependencies": []})
    path.write_text(json.dumps(saved))
    first = engine.up(spec)
    assert [r.name for r in first.resources if r.op == "delete"] == ["gone"]
    assert [r.op for r in engine.preview(spec).resources if r.name == "gone"] == []  # deleted once, not forever


# -- drift, refresh and heal on the simulated engine ------------------------------------------------------------------

@pytest.fixture
def deployed(tmp_path: Path) -> tuple[Orchestrator, Events]:
    orchestrator = _orchestrator(SAMPLE, tmp_path / "state")
    assert orchestrator.up("dev").ok
    events = Events()
    orchestrator.events = events  # type: ignore[attr-defined]
    return orchestrator, events


def test_drift_names_the_drifted_stack_and_heal_redeploys_exactly_it(deployed: tuple[Orchestrator, Events]) -> None:
    orchestrator, events = deployed
    assert check_drift(orchestrator, "dev").exit_code == 0
    engine = orchestrator.engine
    assert isinstance(engine, SimulatedEngine)
    engine.inject_drift("dev.orders")
    report = check_drift(orchestrator, "dev")
    assert report.exit_code == 1 and [s.stack for s in report.drifted] == ["dev.orders"]
    drifted = report.drifted[0].resources
    assert drifted and drifted[0]["diff"][0]["path"] == "tags.changed-by" and drifted[0]["diff"][0]["new"]
    assert report.to_dict()["drifted"] == ["dev.orders"]
    checks = {c["context"]: c for c in orchestrator.registry.drift_checks("dev")}
    assert checks["orders"]["drifted"] == drifted and checks["payments"]["drifted"] == []
    assert [t for t, _ in events.sent] == ["DriftDetected"]
    assert events.sent[0][1]["stack"] == "dev.orders"

    healed = heal(orchestrator, "dev")
    assert healed.exit_code == 0 and [s.heal for s in healed.drifted] == [HEALED]
    assert healed.healed is not None
    deployed_now = {s.context: s.status for s in healed.healed.stacks}
    assert deployed_now.pop("orders") == "succeeded"
    assert set(deployed_now.values()) == {"unchanged"}  # consumers: outputs did not change (early cutoff)
    assert {"fulfilment", "storefront"} <= set(deployed_now)  # the consumers were considered
    assert orchestrator.registry.runs("dev")[-1].command == "drift --heal"
    orders = next(c for c in orchestrator.registry.drift_checks("dev") if c["context"] == "orders")
    assert orders["healed_at"] and orders["heal_run"] == orchestrator.registry.runs("dev")[-1].id
    # The heal is a deploy too: the orchestrator's own StackSucceeded goes out beside the drift events.
    assert [t for t, _ in events.sent if t != "StackSucceeded"] == ["DriftDetected", "DriftDetected", "StackHealed"]
    assert [d["stack"] for t, d in events.sent if t == "StackSucceeded"] == ["dev.orders"]
    assert events.sent[-1][1]["outputs_changed"] is False

    again = check_drift(orchestrator, "dev")
    assert again.exit_code == 0 and {s.status for s in again.stacks} == {CLEAN}


def test_a_stack_that_cannot_be_checked_fails_the_check_and_is_named(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert _orchestrator(SAMPLE, state).up("dev", ["payments"]).ok
    report = check_drift(_orchestrator(SAMPLE, state, failures={"payments"}), "dev")
    assert report.exit_code == 1 and not report.drifted
    assert report.to_dict()["unchecked"] == ["dev.payments"]
    assert next(s for s in report.stacks if s.status == UNCHECKED).error


def test_refresh_adopts_the_drift_into_the_state(deployed: tuple[Orchestrator, Events]) -> None:
    orchestrator, _ = deployed
    engine = orchestrator.engine
    assert isinstance(engine, SimulatedEngine)
    engine.inject_drift("dev.catalog")
    assert [s.stack for s in check_drift(orchestrator, "dev", ["catalog"]).drifted] == ["dev.catalog"]
    result = refresh(orchestrator, "dev", ["catalog"])
    assert result.ok and result.stack("catalog").changes["update"] == 1
    assert check_drift(orchestrator, "dev", ["catalog"]).stacks[0].status == CLEAN


def test_drift_of_a_context_not_deployed_is_a_usage_error(deployed: tuple[Orchestrator, Events]) -> None:
    orchestrator, _ = deployed
    with pytest.raises(UsageError, match="reporting"):
        check_drift(orchestrator, "dev", ["reporting"])
    engine = orchestrator.engine
    assert isinstance(engine, SimulatedEngine)
    with pytest.raises(UsageError, match="no such resource"):
        engine.inject_drift("dev.orders", "nothing-by-that-name")


def test_the_drift_commands_end_to_end(tmp_path: Path) -> None:
    """As the scheduled workflow runs them: inject, detect (exit 1, named), heal (exactly it), clean (exit 0)."""
    env = {**os.environ, "ODE_SIMULATE_PROGRAMS": "0"}

    def ode(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ode.cli", *args, "--env", "dev", "--engine", "simulated",
                               "--contracts", str(SAMPLE), "--state-dir", str(tmp_path / "state")],
                              capture_output=True, text=True, timeout=120, env=env)

    assert ode("up").returncode == 0
    found = ode("drift", "--simulate-drift", "notifications", "--json")
    assert found.returncode == 1, found.stderr
    assert json.loads(found.stdout)["drifted"] == ["dev.notifications"]
    healed = ode("drift", "--heal", "--json")
    assert healed.returncode == 0, healed.stderr
    run = json.loads(healed.stdout)["heal"]
    assert [s["stack"] for s in run["stacks"] if s["status"] == "succeeded"] == ["dev.notifications"]
    clean = ode("drift")
    assert clean.returncode == 0 and "0 drifted" in clean.stderr
    bad = ode("drift", "--simulate-drift", "ghost")
    assert bad.returncode == 2 and "no context 'ghost'" in bad.stderr and "Traceback" not in bad.stderr


# -- the pulumi engine on the stand-in's engine events ------------------------------------------------------------

def test_the_pulumi_engine_reads_resources_diffs_and_progress_from_engine_events(
        stand_in: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    fn = "aws:lambda/function:Function"
    monkeypatch.setenv("FAKE_PULUMI_STEPS", str(stand_in / "steps.json"))
    (stand_in / "steps.json").write_text(json.dumps({"dev.orders": {
        "preview": [
            {"op": "update", "type": fn, "name": "orders-api",
             "old": {"memorySize": 512, "environment": {"variables": {"LOG_LEVEL": "info", "TOKEN": "[secret]"}}},
             "new": {"memorySize": 1024, "environment": {"variables": {"LOG_LEVEL": "info", "TOKEN": "[secret]"}}},
             "diffs": ["memorySize", "environment.variables.TOKEN"],
             "policy": {"name": "lambda-tracing", "message": "tracing is off", "level": "advisory"}},
            {"op": "replace", "type": "aws:sqs/queue:Queue", "name": "jobs", "old": {"name": "a"},
             "new": {"name": "b"}, "keys": ["name"]},
            {"op": "create", "type": "aws:sns/topic:Topic", "name": "alarms", "new": {"name": "alarms"}},
            {"op": "same", "type": "aws:iam/role:Role", "name": "role", "old": {"name": "r"}, "new": {"name": "r"}}],
        "up": [{"op": "update", "type": fn, "name": "orders-api", "old": {"memorySize": 512},
                "new": {"memorySize": 1024}},
               {"op": "create", "type": "aws:s3/bucket:Bucket", "name": "files", "new": {"bucket": "f"},
                "fail": "creating S3 Bucket: AccessDenied"}],
        "refresh-preview": [{"op": "refresh", "type": fn, "name": "orders-api", "old": {"memorySize": 1024},
                             "new": {"memorySize": 2048}},
                            {"op": "refresh", "type": "aws:iam/role:Role", "name": "role", "old": {"name": "r"},
                             "new": {"name": "r"}}]}}))
    library = load_library(SAMPLE)
    engine = PulumiEngine(library, stand_in / "state")
    spec = StackSpec(project="shop", env="dev", context="orders", contracts_dir=SAMPLE)
    lines: list[str] = []
    result = engine.preview(spec, lambda stack, line: lines.append(line))
    ops = {r.name: r.op for r in result.resources}
    assert ops == {"orders-api": "update", "jobs": "replace", "alarms": "create", "role": "same"}
    api = next(r for r in result.resources if r.name == "orders-api")
    assert api.urn == f"urn:pulumi:dev.orders::shop::{fn}::orders-api"
    assert [d.to_dict() for d in api.diff] == [
        {"path": "memorySize", "old": 512, "new": 1024, "replaces": False},
        {"path": "environment.variables.TOKEN", "old": "[secret]", "new": "[secret]", "replaces": False}]
    jobs = next(r for r in result.resources if r.name == "jobs")
    assert jobs.diff[0].replaces and (jobs.diff[0].old, jobs.diff[0].new) == ("a", "b")
    assert f"updating {api.urn}" in lines
    assert any(line.startswith("policy lambda-tracing (advisory): tracing is off") for line in lines)
    assert [(p["policy"], p["level"], p["urn"]) for p in result.policy_violations] == [
        ("lambda-tracing", "advisory", api.urn)]

    with pytest.raises(EngineError) as failed:
        engine.up(spec, lambda stack, line: lines.append(line))
    assert not isinstance(failed.value, ProgramError)
    assert "urn:pulumi:dev.orders::shop::aws:s3/bucket:Bucket::files" in str(failed.value)
    assert "AccessDenied" in failed.value.detail
    assert f"updated {api.urn}" in lines and any(line.startswith("failed urn:") for line in lines)

    lines.clear()
    drift = engine.refresh(spec, lambda stack, line: lines.append(line), preview_only=True)
    assert [(r.name, r.op) for r in drift.resources] == [("orders-api", "update"), ("role", "same")]
    assert [d.to_dict() for d in drift.resources[0].diff] == [
        {"path": "memorySize", "old": 1024, "new": 2048, "replaces": False}]
    assert lines == [f"drifted {api.urn}"]
    assert drift.changes == {"same": 2, "update": 1}  # the stack resource, the role; the drifted function
    refreshes = [c["args"] for c in calls(stand_in) if c["args"][0] == "refresh"]
    assert refreshes and "--preview-only" in refreshes[-1]


def test_drift_through_the_orchestrator_on_the_pulumi_engine(stand_in: Path,  # noqa: F811
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PULUMI_STEPS", str(stand_in / "steps.json"))
    (stand_in / "steps.json").write_text(json.dumps({"dev.network": {"refresh-preview": [
        {"op": "refresh", "type": "aws:ec2/vpc:Vpc", "name": "network-vpc", "old": {"tags": {"team": "net"}},
         "new": {"tags": {"team": "someone"}}}]}}))
    state = stand_in / "state"
    library = load_library(SAMPLE)
    orchestrator = Orchestrator(library, Registry(state), PulumiEngine(library, state), parallel=2)
    assert orchestrator.up("dev", ["network", "shared-bus"]).ok
    report = check_drift(orchestrator, "dev")
    assert report.exit_code == 1 and [s.stack for s in report.drifted] == ["dev.network"]
    assert report.drifted[0].resources[0]["diff"] == [
        {"path": "tags.team", "old": "net", "new": "someone", "replaces": False}]
    assert {s.stack: s.status for s in report.stacks}["dev.shared-bus"] == CLEAN
    assert DRIFTED == report.drifted[0].status


# A refresh as the real engine reports it, after pulumi/pulumi's recorded event streams
# pkg/engine/lifecycletest/testdata/output/TestRefreshBasics/0-0-0-preview/eventstream.json (a drifted resource:
# resourcePreEvent `refresh` with new = old and no diffs, then resOutputsEvent `update` with the refreshed state,
# `diffs` and `detailedDiff`; a resource gone: resOutputsEvent `delete`, new null) and
# TestRefreshBasicsWithLegacyDiff/all-0-0 (an `update` reported without diffs): the same shapes, with AWS-like
# properties in place of the fixture's test provider's, and a secret as the engine blinds it in events.
_BLINDED = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "[secret]"}
_STACK = "urn:pulumi:dev.orders::shop::pulumi:pulumi:Stack::shop-dev.orders"
_PROVIDER = "urn:pulumi:dev.orders::shop::pulumi:providers:aws::aws::aws-id"


def _state(urn: str, inputs: dict[str, Any], outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": urn.split("::")[-2].split("$")[-1], "urn": urn, "custom": True, "id": urn.split("::")[-1],
            "parent": _STACK, "inputs": inputs, "outputs": inputs if outputs is None else outputs,
            "provider": _PROVIDER}


def _refresh_stream(resources: list[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any]]]
                    ) -> list[dict[str, Any]]:
    """A refresh --preview-only's events: (urn, old state, refreshed state or None, outputs-event extras)."""
    stream: list[dict[str, Any]] = [{"preludeEvent": {"config": {}}}]
    counts: dict[str, int] = {}
    for urn, old, new, extra in resources:
        meta = {"op": "refresh", "urn": urn, "type": old["type"], "old": old, "new": old, "detailedDiff": None,
                "provider": _PROVIDER}
        stream.append({"resourcePreEvent": {"metadata": meta, "planning": True}})
        op = extra.pop("op")
        counts[op] = counts.get(op, 0) + 1
        stream.append({"resOutputsEvent": {"metadata": {**meta, "op": op, "new": new, **extra}, "planning": True}})
    stream.append({"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": counts,
                                    "PolicyPacks": {}, "isPreview": True, "result": "succeeded"}})
    stream.append({"cancelEvent": {}})
    return [{"sequence": i, "timestamp": 0, **e} for i, e in enumerate(stream)]


def test_drift_the_engine_reports_only_in_the_outputs_event_is_read() -> None:
    """The real engine's refresh puts drift in the resOutputsEvent alone: read from the pre-events only, every
    resource below would look unchanged."""
    svc = "urn:pulumi:dev.orders::shop::ode:index:Service$"
    queue, fn, bucket, topic, role = (
        f"{svc}aws:sqs/queue:Queue::orders-jobs", f"{svc}aws:lambda/function:Function::orders-api",
        f"{svc}aws:s3/bucket:Bucket::orders-files", f"{svc}aws:sns/topic:Topic::orders-out",
        f"{svc}aws:iam/role:Role::orders-role")
    jobs = {"name": "orders-jobs", "visibilityTimeoutSeconds": 30, "tags": {"ode:env": "dev"}}
    api = {"memorySize": 512, "environment": {"variables": {"MODE": "a", "TOKEN": _BLINDED}}}
    stream = _refresh_stream([
        (queue, _state(queue, jobs), _state(queue, {**jobs, "visibilityTimeoutSeconds": 900,
                                                    "tags": {"ode:env": "dev", "changed-by": "console"}}),
         {"op": "update", "diffs": ["visibilityTimeoutSeconds", "tags"], "detailedDiff": {
             "visibilityTimeoutSeconds": {"diffKind": "update", "inputDiff": True},
             'tags["changed-by"]': {"diffKind": "add", "inputDiff": True}}}),
        (fn, _state(fn, api), _state(fn, {**api, "environment": {"variables": {"MODE": "a", "TOKEN": _BLINDED}}}),
         {"op": "update", "diffs": ["environment"], "detailedDiff": {
             "environment.variables.TOKEN": {"diffKind": "update", "inputDiff": True}}}),
        (bucket, _state(bucket, {"bucket": "orders-files"}), None, {"op": "delete"}),
        (topic, _state(topic, {"name": "orders-out"}, {"name": "orders-out", "displayName": "Orders"}),
         _state(topic, {"name": "orders-out"}, {"name": "orders-out", "displayName": "Changed by hand"}),
         {"op": "update"}),
        (role, _state(role, {"name": "orders-role"}), _state(role, {"name": "orders-role"}), {"op": "same"})])
    assert all("diffs" not in e["resourcePreEvent"]["metadata"] for e in stream if "resourcePreEvent" in e)

    lines: list[str] = []
    events = EngineEvents("dev.orders", lambda stack, line: lines.append(line), refresh=True)
    for event in stream:
        events(ev.EngineEvent.from_json(event))
    found = {r.name: r for r in events.resource_changes()}
    assert {name: r.op for name, r in found.items()} == {
        "orders-jobs": "update", "orders-api": "update", "orders-files": "delete", "orders-out": "update",
        "orders-role": "same"}
    assert [d.to_dict() for d in found["orders-jobs"].diff] == [
        {"path": "visibilityTimeoutSeconds", "old": 30, "new": 900, "replaces": False},
        {"path": 'tags["changed-by"]', "old": None, "new": "console", "replaces": False}]
    assert [d.to_dict() for d in found["orders-api"].diff] == [
        {"path": "environment.variables.TOKEN", "old": "[secret]", "new": "[secret]", "replaces": False}]
    assert found["orders-api"].inputs["environment"]["variables"]["TOKEN"] == "[secret]"
    assert [d.to_dict() for d in found["orders-out"].diff] == [  # no diffs from the engine: the outputs compared
        {"path": "displayName", "old": "Orders", "new": "Changed by hand", "replaces": False}]
    assert "ciphertext" not in json.dumps([r.to_dict() for r in found.values()])
    assert lines == [f"drifted {queue}", f"drifted {fn}", f"gone {bucket}", f"drifted {topic}"]
    assert events.changes == {"update": 3, "delete": 1, "same": 1}


def test_a_program_failure_is_classified_from_the_engine_events() -> None:
    events = EngineEvents("dev.orders")
    events(ev.EngineEvent.from_json({"sequence": 1, "timestamp": 0, "diagnosticEvent": {
        "urn": "urn:pulumi:dev.orders::shop::pulumi:pulumi:Stack::shop-dev.orders", "message": "boom",
        "color": "never", "severity": "error"}}))
    error = classify("dev.orders", CommandError(CommandResult("", "error: update failed", 255)), events)
    assert isinstance(error, ProgramError) and "boom" in error.detail


# -- the live view ---------------------------------------------------------------------------------------------------

def test_the_live_view_shows_resource_level_progress_of_running_stacks() -> None:
    from rich.console import Console

    from ode.progress import RUNNING, LiveReporter, resource_step

    urn = "urn:pulumi:dev.orders::shop::ode:index:Service$aws:lambda/function:Function::orders-api"
    assert resource_step(f"creating {urn}") == ("creating", "orders-api", "aws:lambda/function:Function")
    assert resource_step("up (simulated)") is None and resource_step("creating nothing") is None
    view = LiveReporter()
    view.update("dev.orders", RUNNING, f"created {urn.replace('orders-api', 'orders-table')}")
    view.update("dev.orders", RUNNING, f"creating {urn}")
    view.update("dev.network", "succeeded", "")
    console = Console(record=True, width=140)
    console.print(view._table())
    text = console.export_text()
    assert "1 resource(s) done" in text and "orders-api" in text and "creating" in text
    assert "aws:lambda:Function" in text and "urn:" not in text  # the type as Pulumi shows it, never a URN


def test_the_simulated_state_and_its_diffs_never_hold_a_secret_value(tmp_path: Path) -> None:
    """The state keeps the masked inputs only (never the checked ones), and a diff against it stays masked."""
    from ode.engines import ResourceChange, StackResult

    engine = SimulatedEngine(load_library(SAMPLE), tmp_path, run_programs=False)
    spec = StackSpec(project="shop", env="dev", context="identity", contracts_dir=SAMPLE)
    db = ResourceChange(type="aws:rds/instance:Instance", name="db", parent=None,
                        inputs={"password": "[secret]", "tags": {"team": "id"}},
                        checked_inputs={"password": "hunter2-secret", "tags": {"team": "id"}})
    engine._save(spec, StackResult(stack=spec.stack_name, operation="up", outputs={"creds": "s3cr3t-value"},
                                   secret_outputs=frozenset({"creds"}), resources=[db]))
    written = (tmp_path / "simulated" / "dev.identity.json").read_text()
    assert "hunter2-secret" not in written and "s3cr3t-value" not in written
    engine.inject_drift("dev.identity", "db")
    drift = engine.refresh(spec, preview_only=True)
    assert "hunter2-secret" not in json.dumps([r.to_dict() for r in drift.resources])
    assert drift.resources[0].diff[0].path == "tags.changed-by"


def test_plan_diff_on_the_command_line_shows_a_changed_setting(sample_library: Path, tmp_path: Path) -> None:
    def ode(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ode.cli", *args, "--env", "dev", "--engine", "simulated",
                               "--contracts", str(sample_library), "--state-dir", str(tmp_path / "state")],
                              capture_output=True, text=True, timeout=120)

    assert ode("up", "--contexts", "notifications").returncode == 0
    path = sample_library / "notifications.yaml"
    doc = yaml.safe_load(path.read_text())
    settings = doc.setdefault("settings", {})
    before = settings.get("memory_mb", 256)
    settings["memory_mb"] = before + 128
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    shown = ode("plan", "--diff", "--contexts", "notifications")
    assert shown.returncode == 0, shown.stderr
    assert f"memorySize: {before} -> {before + 128}" in shown.stdout
    assert "update" in shown.stdout and "dev.notifications" in shown.stdout


def test_heal_in_an_environment_made_on_demand_never_deploys_what_it_reuses(tmp_path: Path) -> None:
    from ode.execution.ephemeral import EphemeralEnvironments

    state = tmp_path / "state"
    orchestrator = _orchestrator(SAMPLE, state)
    assert orchestrator.up("dev").ok
    envs = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator)
    record, created = envs.create("pr-7", contexts=["orders"])
    assert created.ok and record.reuse == ["network", "shared-bus"]
    engine = orchestrator.engine
    assert isinstance(engine, SimulatedEngine)
    engine.inject_drift("pr-7.payments")
    report = heal(orchestrator, "pr-7")
    assert [s.stack for s in report.drifted] == ["pr-7.payments"] and report.exit_code == 0
    assert report.healed is not None
    ran = {s.context: s.status for s in report.healed.stacks}
    assert ran["payments"] == "succeeded" and "network" not in ran and "shared-bus" not in ran
    assert orchestrator.registry.stack("pr-7", "network") is None


def test_plan_on_the_pulumi_engine_lists_the_resources_of_the_preview(stand_in: Path) -> None:  # noqa: F811
    state = stand_in / "state"
    library = load_library(SAMPLE)
    plan = Orchestrator(library, Registry(state), PulumiEngine(library, state)).plan("dev", ["network"]).to_dict()
    network = next(s for s in plan["stacks"] if s["stack"] == "dev.network")
    assert [(r["name"], r["op"]) for r in network["resources"]] == [("files", "create"), ("jobs", "create"),
                                                                      ("role", "create")]
    assert all(r["urn"].startswith("urn:pulumi:dev.network::") and r["diff"] == [] for r in network["resources"])


def test_a_drift_check_keeps_the_upstream_config_the_last_up_set(stand_in: Path) -> None:  # noqa: F811
    state = stand_in / "state"
    library = load_library(SAMPLE)
    orchestrator = Orchestrator(library, Registry(state), PulumiEngine(library, state), parallel=2)
    assert orchestrator.up("dev", ["notifications"]).ok
    stored = state / "pulumi" / ".fake-pulumi" / "stacks" / "dev.notifications.json"
    before = json.loads(stored.read_text())["config"]
    assert any("upstream" in key and value["value"] not in ("{}", "") for key, value in before.items()), before
    assert check_drift(orchestrator, "dev", ["notifications"]).exit_code == 0
    assert refresh(orchestrator, "dev", ["notifications"]).ok
    assert json.loads(stored.read_text())["config"] == before


@pytest.mark.slow
def test_drift_heal_and_refresh_through_the_cli_on_the_pulumi_engine(tmp_path: Path) -> None:
    """`ode drift`, `ode drift --heal` and `ode refresh` with the pulumi engine, the stand-in CLI holding the
    sample's stacks (their real resources, the policy pack run on every up) and a change made by hand in the
    cloud: found as the real engine reports it, healed so that the cloud holds the program's values again, or
    adopted into the state by a refresh."""
    steps, outputs = recorded("notifications")
    changes = tmp_path / "changed-by-hand.json"
    changes.write_text("{}")

    def ode(*args: str) -> subprocess.CompletedProcess[str]:
        return ode_on_the_stand_in(tmp_path, *args, steps=steps, outputs=outputs, FAKE_PULUMI_DRIFT=str(changes))

    assert ode("up", "--contexts", "notifications").returncode == 0
    clean = ode("drift", "--json")
    assert clean.returncode == 0 and json.loads(clean.stdout)["drifted"] == [], clean.stderr

    changes.write_text(json.dumps({"dev.notifications": {"notifications-outbox": {"visibilityTimeoutSeconds": 900}}}))
    found = ode("drift", "--json")
    assert found.returncode == 1, found.stderr
    report = json.loads(found.stdout)
    assert report["drifted"] == ["dev.notifications"]
    drifted = next(s for s in report["stacks"] if s["stack"] == "dev.notifications")["resources"]
    assert [(r["name"], r["op"], r["diff"]) for r in drifted] == [("notifications-outbox", "update", [
        {"path": "visibilityTimeoutSeconds", "old": 60.0, "new": 900, "replaces": False}])]

    healed = ode("drift", "--heal", "--json")
    assert healed.returncode == 0, healed.stderr
    run = json.loads(healed.stdout)["heal"]
    assert [s["stack"] for s in run["stacks"] if s["status"] == "succeeded"] == ["dev.notifications"]
    ups = [c["args"] for c in calls(tmp_path) if c["args"][0] == "up"]
    assert len(ups) == 4 and not any("--refresh" in args for args in ups[:3])
    assert "dev.notifications" in ups[-1] and "--refresh" in ups[-1]  # a plain up would leave the cloud as it is
    assert ode("drift").returncode == 0  # the cloud holds the program's values again

    changes.write_text(json.dumps({**json.loads(changes.read_text()), "dev.shared-bus": {
        "shared-bus-bus": {"tags": {"ode:env": "dev", "ode:context": "shared-bus", "ode:owner": "someone"}}}}))
    found = ode("drift", "--json", "--contexts", "shared-bus")
    assert found.returncode == 1 and json.loads(found.stdout)["drifted"] == ["dev.shared-bus"]
    diff = json.loads(found.stdout)["stacks"][0]["resources"][0]["diff"]
    assert diff == [{"path": 'tags["ode:owner"]', "old": "team-platform", "new": "someone", "replaces": False}]
    adopted = ode("refresh", "--contexts", "shared-bus", "--json")
    assert adopted.returncode == 0, adopted.stderr
    assert ode("drift", "--contexts", "shared-bus").returncode == 0  # the state took what the cloud holds
