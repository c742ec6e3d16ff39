"""The pulumi engine at its boundary: a recorded stand-in for the `pulumi` executable on PATH checks the commands,
flags, config and environment it is given, and the outputs are parsed back. Its event streams follow the real
engine's recorded ones (the fixtures each shape follows are named in tests/fakes/pulumi and below), and it runs the
CrossGuard pack the way the CLI does, so the pack is proven through the CLI's path. The real CLI deploys the sample
environment in the integration test, which is skipped where no `pulumi` is on PATH."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from ode.contracts import load_library
from ode.engines import CliNotFoundError, StackSpec
from ode.engines.simulated import SimulatedEngine, synthesize_outputs
from ode.execution.orchestrator import Orchestrator
from ode.registry.sqlite import Registry

from .cli_runner import Ran, ode
from .conftest import ROOT, SAMPLE

FAKES = ROOT / "tests" / "fakes"


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in first on PATH; its log and the outputs it answers with under tmp_path."""
    library = load_library(SAMPLE)
    table: dict[str, Any] = {}
    for context in library.contexts:
        spec = StackSpec(project="shop", env="dev", context=context, contracts_dir=SAMPLE)
        table[spec.stack_name] = {"outputs": synthesize_outputs(library, spec),
                                  "secret": ["psp-credentials"] if context == "identity" else []}
    bus = table["dev.shared-bus"]["outputs"]["bus"]
    for entry in table.values():  # events travel on the shared bus
        for value in entry["outputs"].values():
            if "bus_name" in value:
                value.update(bus_name=bus["name"], bus_arn=bus["arn"])
    (tmp_path / "outputs.json").write_text(json.dumps(table))
    # the stand-in runs on this interpreter (it speaks gRPC to the SDK's event log, as the real CLI does)
    monkeypatch.setenv("PATH", os.pathsep.join([str(FAKES), os.path.dirname(sys.executable), os.environ["PATH"]]))
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_PULUMI_OUTPUTS", str(tmp_path / "outputs.json"))
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("ODE_BACKEND_URL", raising=False)
    return tmp_path


def logged(root: Path) -> list[dict[str, Any]]:
    """Everything the stand-in logged: its invocations, and the policy packs it started and stopped."""
    return [json.loads(line) for line in (root / "calls.jsonl").read_text().splitlines()]


def calls(root: Path) -> list[dict[str, Any]]:
    """The stand-in's invocations: arguments (secret values hidden), directory, environment, backend."""
    return [entry for entry in logged(root) if "args" in entry]


def test_the_engine_drives_the_cli_with_config_environment_and_a_workspace_per_stack(stand_in: Path) -> None:
    from ode.engines.pulumi import PulumiEngine

    state = stand_in / "state"
    library = load_library(SAMPLE)
    engine = PulumiEngine(library, state)
    registry = Registry(state)
    result = Orchestrator(library, registry, engine, parallel=2).up("dev", ["payments"])
    assert result.ok, [(s.stack, s.error) for s in result.stacks]
    assert not result.simulated
    log = calls(stand_in)
    ups = [c for c in log if c["args"][0] == "up"]
    assert sorted(c["args"][c["args"].index("--stack") + 1] for c in ups) == [
        "dev.identity", "dev.network", "dev.payments", "dev.shared-bus"]
    for c in ups:
        assert "--yes" in c["args"] and "--skip-preview" in c["args"]
        stack = c["args"][c["args"].index("--stack") + 1]
        assert c["cwd"] == str(state / "workspaces" / stack)
        assert c["env"]["PULUMI_CONFIG_PASSPHRASE"] is True
        assert c["backend"] == f"file://{state / 'pulumi'}"
    workspace = state / "workspaces" / "dev.payments"
    project = yaml.safe_load((workspace / "Pulumi.yaml").read_text())
    assert project["runtime"]["options"]["virtualenv"] == sys.prefix and project["name"] == "shop"
    assert "from ode.program import main" in (workspace / "__main__.py").read_text()
    assert (state / "passphrase").stat().st_mode & 0o777 == 0o600
    # The producers' outputs are handed over as config; the secret one as secret config.
    config = next(c for c in log if c["args"][:2] == ["config", "set-all"] and "dev.payments" in c["args"])
    plain = dict(a.split("=", 1) for i, a in enumerate(config["args"]) if config["args"][i - 1] == "--plaintext")
    assert plain["ode:env"] == "dev" and plain["ode:context"] == "payments"
    upstream = json.loads(plain["ode:upstream"])
    outputs = json.loads((stand_in / "outputs.json").read_text())
    assert upstream["network"]["vpc"] == outputs["dev.network"]["outputs"]["vpc"]
    assert "psp-credentials" not in upstream.get("identity", {})
    assert "ode:upstreamSecrets=<secret>" in config["args"]
    secret_value = outputs["dev.identity"]["outputs"]["psp-credentials"]["arn"]
    assert any(secret_value in v for v in config["secret_values"])
    # Outputs parsed back; the secret one never reaches the registry or any file ode writes.
    identity = registry.stack("dev", "identity")
    assert identity is not None and identity.secret_outputs == ["psp-credentials"]
    assert "psp-credentials" not in identity.outputs
    assert identity.outputs["customers-table"] == outputs["dev.identity"]["outputs"]["customers-table"]
    for path in state.rglob("*"):
        if path.is_file() and path.name != "passphrase":
            assert secret_value.encode() not in path.read_bytes(), path


def test_a_program_error_is_classified_and_named_with_its_stack(stand_in: Path, monkeypatch: pytest.MonkeyPatch,
                                                                ) -> None:
    from ode.engines.pulumi import PulumiEngine

    monkeypatch.setenv("FAKE_PULUMI_FAIL", "dev.catalog")
    library = load_library(SAMPLE)
    state = stand_in / "state"
    result = Orchestrator(library, Registry(state), PulumiEngine(library, state), backoff_s=0).up("dev", ["catalog"])
    failed = result.stack("catalog")
    assert failed.status == "failed" and failed.attempts == 1  # a program error is not retried
    assert failed.error is not None and failed.error.startswith("dev.catalog: the program failed")
    assert "broken (stand-in)" in failed.error


def test_without_a_cli_the_engine_fails_with_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi import automation as auto

    from ode.engines import pulumi as engine_module

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(engine_module, "_INSTALL_TRIED", [])

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise OSError("no route to the download site")

    monkeypatch.setattr(auto.PulumiCommand, "install", no_network)
    monkeypatch.delenv("ODE_INSTALL_PULUMI", raising=False)
    # Unasked, nothing is downloaded: one line says how to get a CLI.
    with pytest.raises(CliNotFoundError, match="ODE_INSTALL_PULUMI=1 to let ode download it"):
        engine_module.PulumiEngine(load_library(SAMPLE), tmp_path)
    assert engine_module._INSTALL_TRIED == []  # noqa: SLF001
    monkeypatch.setenv("ODE_INSTALL_PULUMI", "1")
    with pytest.raises(CliNotFoundError, match=r"no `pulumi` CLI on PATH, and installing one failed \(OSError"):
        engine_module.PulumiEngine(load_library(SAMPLE), tmp_path)
    with pytest.raises(CliNotFoundError, match="use --engine simulated"):  # tried once only
        engine_module.PulumiEngine(load_library(SAMPLE), tmp_path)


def test_the_cli_says_which_engine_auto_chose(tmp_path: Path) -> None:
    env = {"PATH": os.path.dirname(sys.executable), "ODE_SIMULATE_PROGRAMS": "0", "NO_COLOR": "1",
           "HOME": str(tmp_path)}
    done = ode("up", "--env", "dev", "--contexts", "catalog", "--contracts", str(SAMPLE), "--state-dir",
               str(tmp_path / "s"), "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert "engine: simulated (no pulumi CLI on PATH" in done.stderr
    assert json.loads(done.stdout)["simulated"] is True


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("pulumi") is None,
                    reason="no `pulumi` CLI on PATH: the real-CLI deployment of the sample environment is skipped")
def test_the_sample_environment_deploys_with_the_real_cli_into_an_embedded_aws(tmp_path: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    args = [sys.executable, "-m", "ode.cli", "up", "--env", "dev", "--engine", "pulumi", "--target", "local",
            "--contracts", str(SAMPLE), "--state-dir", str(tmp_path), "--json"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["simulated"] is False
    assert {s["status"] for s in result["stacks"]} == {"succeeded"}
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=1800)
    assert {s["status"] for s in json.loads(again.stdout)["stacks"]} == {"unchanged"}


def test_a_cli_installed_by_the_sdk_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ode.engines import pulumi as engine_module

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert engine_module._find_cli() is None  # noqa: SLF001
    for version in ("3.99.0", "3.272.0"):  # where PulumiCommand.install puts it: ~/.pulumi/versions/<v>/bin
        cli = tmp_path / ".pulumi" / "versions" / version / "bin" / "pulumi"
        cli.parent.mkdir(parents=True)
        cli.write_text("#!/bin/sh\n")
        cli.chmod(0o755)
    assert engine_module._find_cli() == str(tmp_path / ".pulumi/versions/3.272.0/bin/pulumi")  # noqa: SLF001


def test_the_stand_in_behaves_like_the_cli_the_sdk_expects(stand_in: Path) -> None:
    from pulumi import automation as auto

    from ode.engines.pulumi import PulumiEngine

    engine = PulumiEngine(load_library(SAMPLE), stand_in / "state")
    assert str(engine.command.version) == "3.272.0"  # above 3.205: previews stream events over gRPC
    spec = StackSpec(project="shop", env="dev", context="shared-bus", contracts_dir=SAMPLE)
    with pytest.raises(Exception) as caught:  # noqa: PT011 - what the SDK raises, classified by the engine
        engine.outputs(spec)
    assert "no such stack" in str(caught.value)
    result = engine.preview(spec)
    # the stack resource is created with the three resources and counted with them (as in the recorded up-3.json)
    assert result.changes == {"create": 4} and [r.op for r in result.resources] == ["create"] * 3
    log = calls(stand_in)
    select = [c for c in log if c["args"][:2] == ["stack", "select"]]
    init = [c for c in log if c["args"][:2] == ["stack", "init"]]
    assert select and init  # the first select failed, so the stack was created
    preview = next(c for c in log if c["args"][0] == "preview")
    assert preview["args"][preview["args"].index("--event-log") + 1].startswith("tcp://127.0.0.1:")
    assert auto  # the SDK module is what drove it


def _kind(event: dict[str, Any]) -> str:
    return next(k for k in event if k not in ("sequence", "timestamp"))


def test_the_stand_ins_event_streams_have_the_recorded_engines_shapes(tmp_path: Path) -> None:
    """The stand-in's `--event-log` (the file form) against pulumi/pulumi's recorded streams: an up as
    pkg/backend/display/testdata/not-truncated/up-3.json (the stack resource first, each resource's pre-event and
    outputs event with the same op, summaryEvent then cancelEvent); a refresh --preview-only that finds drift as
    pkg/engine/lifecycletest/testdata/output/TestRefreshBasics/0-0-0-preview/eventstream.json (pre-event `refresh`
    with new = old and no diffs; the outputs event `update` carrying the diffs; `planning` set)."""
    env = {**os.environ, "PATH": os.pathsep.join([str(FAKES), os.path.dirname(sys.executable), os.environ["PATH"]]),
           "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}", "FAKE_PULUMI_LOG": str(tmp_path / "calls.jsonl"),
           "FAKE_PULUMI_DRIFT": str(tmp_path / "drift.json")}
    env.pop("FAKE_PULUMI_STEPS", None)
    (tmp_path / "Pulumi.yaml").write_text('name: "shop"\nruntime: python\n')
    (tmp_path / "drift.json").write_text("{}")

    def pulumi(*args: str) -> list[dict[str, Any]]:
        log = tmp_path / f"events-{len(list(tmp_path.glob('events-*')))}.jsonl"
        done = subprocess.run([str(FAKES / "pulumi"), *args, "--stack", "dev.orders", "--event-log", str(log)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in log.read_text().splitlines()]

    subprocess.run([str(FAKES / "pulumi"), "stack", "init", "dev.orders"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=60)
    up = pulumi("up", "--yes", "--skip-preview")
    assert [_kind(e) for e in up] == ["preludeEvent", *["resourcePreEvent", "resOutputsEvent"] * 4, "summaryEvent",
                                      "cancelEvent"]
    steps = [e[_kind(e)]["metadata"] for e in up[1:-2]]
    assert steps[0]["urn"] == "urn:pulumi:dev.orders::shop::pulumi:pulumi:Stack::shop-dev.orders"
    assert {m["op"] for m in steps} == {"create"} and all(m["old"] is None for m in steps)
    assert set(steps[2]["new"]) == {"type", "urn", "custom", "id", "parent", "inputs", "outputs", "provider"}
    assert all("planning" not in e[_kind(e)] for e in up[1:-2])
    summary = up[-2]["summaryEvent"]
    assert summary == {"maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {"create": 4},
                       "PolicyPacks": {}, "isPreview": False, "result": "succeeded"}

    (tmp_path / "drift.json").write_text(json.dumps({"dev.orders": {"jobs": {"name": "renamed-by-hand"}}}))
    drift = pulumi("refresh", "--preview-only")
    pre = {e["resourcePreEvent"]["metadata"]["urn"].split("::")[-1]: e["resourcePreEvent"]["metadata"]
           for e in drift if "resourcePreEvent" in e}
    out = {e["resOutputsEvent"]["metadata"]["urn"].split("::")[-1]: e["resOutputsEvent"]["metadata"]
           for e in drift if "resOutputsEvent" in e}
    assert all(m["op"] == "refresh" and m["new"] == m["old"] and "diffs" not in m and m["detailedDiff"] is None
               for m in pre.values())
    assert {name: m["op"] for name, m in out.items()} == {"shop-dev.orders": "same", "files": "same",
                                                          "jobs": "update", "role": "same"}
    assert out["jobs"]["diffs"] == ["name"] and out["jobs"]["detailedDiff"] == {
        "name": {"diffKind": "update", "inputDiff": True}}
    assert out["jobs"]["old"]["inputs"]["name"] == "jobs" and out["jobs"]["new"]["inputs"]["name"] == "renamed-by-hand"
    assert all(e[_kind(e)].get("planning") is True for e in drift if _kind(e) in ("resourcePreEvent",
                                                                                  "resOutputsEvent"))
    assert drift[-2]["summaryEvent"]["resourceChanges"] == {"same": 3, "update": 1}
    assert drift[-2]["summaryEvent"]["isPreview"] is True and _kind(drift[-1]) == "cancelEvent"


def test_a_stacks_config_is_exactly_what_ode_wants_every_run(stand_in: Path) -> None:
    from ode.engines.pulumi import PulumiEngine

    library = load_library(SAMPLE)
    state = stand_in / "state"
    engine = PulumiEngine(library, state)
    spec = StackSpec(project="shop", env="dev", context="shared-bus", contracts_dir=SAMPLE,
                     config={"ode:target": "local", "ode:awsEndpoint": "http://127.0.0.1:4566"})
    engine.up(spec)
    stored = json.loads((state / "pulumi/.fake-pulumi/stacks/dev.shared-bus.json").read_text())["config"]
    assert stored["ode:target"]["value"] == "local"
    engine.up(StackSpec(project="shop", env="dev", context="shared-bus", contracts_dir=SAMPLE))  # --target aws
    stored = json.loads((state / "pulumi/.fake-pulumi/stacks/dev.shared-bus.json").read_text())["config"]
    assert "ode:awsEndpoint" not in stored and "ode:target" not in stored
    assert stored["ode:env"]["value"] == "dev"
    ups = [c for c in calls(stand_in) if c["args"][0] == "up"]
    outputs = [c for c in calls(stand_in) if c["args"][:2] == ["stack", "output"]]
    assert len(outputs) == 2 * len(ups)  # the outputs that up read, not read again


def test_the_workspace_project_file_is_valid_yaml_in_and_outside_a_venv(stand_in: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from ode.engines.pulumi import PulumiEngine

    engine = PulumiEngine(load_library(SAMPLE), stand_in / "state: #odd")
    spec = StackSpec(project="shop", env="dev", context="orders", contracts_dir=SAMPLE)
    monkeypatch.setattr(sys, "prefix", "/opt/venvs/ode: #1")
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    project = yaml.safe_load((engine.workspace_dir(spec) / "Pulumi.yaml").read_text())
    assert project["runtime"]["options"]["virtualenv"] == "/opt/venvs/ode: #1"
    assert project["backend"]["url"] == engine.backend_url
    monkeypatch.setattr(sys, "base_prefix", "/opt/venvs/ode: #1")  # a plain interpreter, no venv
    project = yaml.safe_load((engine.workspace_dir(spec) / "Pulumi.yaml").read_text())
    assert "virtualenv" not in project["runtime"]["options"]
    assert engine.environment()["PULUMI_PYTHON_CMD"] == sys.executable


# -- the policy pack through the CLI's path --------------------------------------------------------------------------

_RECORDED: dict[tuple[str, tuple[str, ...]], tuple[dict[str, Any], dict[str, Any]]] = {}


def recorded(*contexts: str, library_dir: Path = SAMPLE) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a library's stacks (``contexts`` and their producers, in dev) register, as the stand-in's steps
    ($FAKE_PULUMI_STEPS: every resource created, AWS resources on the stack's explicit provider), and their outputs
    ($FAKE_PULUMI_OUTPUTS). Recorded from the same programs run under pulumi's mocks (the simulated engine), with
    the producers' outputs handed on as the orchestrator hands them on: the resources a real CLI would analyze."""
    key = (str(library_dir), contexts)
    if key not in _RECORDED:
        library = load_library(library_dir)
        with tempfile.TemporaryDirectory() as scratch:
            engine = SimulatedEngine(library, scratch, run_programs=True)
            results: dict[str, Any] = {}
            run = engine.up

            def up(spec: StackSpec, progress: Any = None) -> Any:
                results[spec.stack_name] = result = run(spec, progress)
                return result

            engine.up = up  # type: ignore[method-assign]
            assert Orchestrator(library, Registry(scratch), engine).up("dev", list(contexts)).ok
        steps = {stack: {"up": [{"op": "create", "type": r.type, "name": r.name, "parent": r.parent,
                                 "dependencies": r.dependencies, "new": r.inputs,
                                 **({"provider": "aws"} if r.type.startswith("aws:") else {})}
                                for r in result.resources]}
                 for stack, result in results.items()}
        outputs = {stack: {"outputs": result.outputs, "secret": sorted(result.secret_outputs)}
                   for stack, result in results.items()}
        _RECORDED[key] = steps, outputs
    return copy.deepcopy(_RECORDED[key])


def use_recorded(root: Path, monkeypatch: pytest.MonkeyPatch, *contexts: str, library_dir: Path = SAMPLE) -> None:
    """Have the `stand_in` fixture's CLI answer with the recorded resources and outputs of ``contexts``: needed
    wherever the policy pack runs, since the pack checks what the CLI registers."""
    steps, outputs = recorded(*contexts, library_dir=library_dir)
    marked = json.loads((root / "outputs.json").read_text())
    hidden: list[str] = []
    for stack, entry in outputs.items():  # the outputs the fixture marks secret stay secret
        entry["secret"] = marked.get(stack, {}).get("secret", entry["secret"])
        hidden += [v for name in entry["secret"] for v in _leaf_strings(entry["outputs"].get(name))]

    def secret_where_derived(value: Any) -> Any:
        # a value made from a secret is secret as a whole, as pulumi marks it (an IAM policy naming a secret's ARN)
        if isinstance(value, dict):
            return {k: secret_where_derived(v) for k, v in value.items()}
        if isinstance(value, list):
            return [secret_where_derived(v) for v in value]
        if isinstance(value, str) and any(h in value for h in hidden):
            return {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": value}
        return value

    for stack in steps.values():
        for step in stack["up"]:
            step["new"] = secret_where_derived(step["new"])
    (root / "steps.json").write_text(json.dumps(steps))
    (root / "outputs.json").write_text(json.dumps(outputs))
    monkeypatch.setenv("FAKE_PULUMI_STEPS", str(root / "steps.json"))


def _leaf_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _leaf_strings(v)]
    return [value] if isinstance(value, str) and len(value) > 8 else []


def ode_on_the_stand_in(root: Path, *args: str, steps: dict[str, Any], outputs: dict[str, Any],
                        **env: str) -> Ran:
    """``ode ... --engine pulumi`` as a user runs it (the CLI starts the stand-in, which starts the policy pack, as
    they would start pulumi), the stand-in first on PATH answering with ``steps`` and ``outputs``; the policy gate
    is on, so the CLI is handed the pack and its configuration."""
    (root / "steps.json").write_text(json.dumps(steps))
    (root / "outputs.json").write_text(json.dumps(outputs))
    environ: dict[str, str | None] = {
        "PULUMI_CONFIG_PASSPHRASE": None, "ODE_BACKEND_URL": None,
        "PATH": os.pathsep.join([str(FAKES), os.path.dirname(sys.executable), os.environ["PATH"]]),
        "FAKE_PULUMI_LOG": str(root / "calls.jsonl"), "FAKE_PULUMI_STEPS": str(root / "steps.json"),
        "FAKE_PULUMI_OUTPUTS": str(root / "outputs.json"), "NO_COLOR": "1", **env}
    return ode(*args, "--env", "dev", "--engine", "pulumi", "--contracts", str(SAMPLE), "--state-dir",
               str(root / "state"), env=environ, timeout=600)


def analyzers(root: Path) -> dict[int, list[str]]:
    """Each policy-pack process the stand-in started, with what became of it."""
    seen: dict[int, list[str]] = {}
    for entry in logged(root):
        if "policy" in entry:
            seen.setdefault(entry["pid"], []).append(entry["policy"])
    return seen


def assert_stopped(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def drop(steps: dict[str, Any], stack: str, name: str) -> None:
    steps[stack]["up"] = [s for s in steps[stack]["up"] if s["name"] != name]


@pytest.mark.slow
def test_the_policy_pack_runs_as_the_cli_runs_it_and_an_advisory_violation_is_reported(tmp_path: Path) -> None:
    steps, outputs = recorded("notifications")
    for alarm in ("notifications-worker-errors-alarm", "notifications-worker-throttles-alarm"):
        drop(steps, "dev.notifications", alarm)  # a function left unwatched: the `alarms` rule is advisory
    done = ode_on_the_stand_in(tmp_path, "up", "--contexts", "notifications", "--json", steps=steps,
                               outputs=outputs)
    assert done.returncode == 0, done.stderr
    assert {s["stack"]: s["status"] for s in json.loads(done.stdout)["stacks"]} == {
        "dev.identity": "succeeded", "dev.shared-bus": "succeeded", "dev.notifications": "succeeded"}
    reported = [line for line in done.stderr.splitlines() if "policy alarms (advisory)" in line]
    assert len(reported) == 1 and "dev.notifications" in reported[0] and "notifications-worker" in reported[0]
    assert "policy " not in done.stderr.replace(reported[0], "")  # the other stacks are clean
    # Started the way the CLI starts a Python pack, configured, analyzed, stopped: once per stack.
    ups = [c for c in calls(tmp_path) if c["args"][0] == "up"]
    assert len(ups) == 3
    for up in ups:
        pack = up["args"][up["args"].index("--policy-pack") + 1]
        config = up["args"][up["args"].index("--policy-pack-config") + 1]
        assert Path(pack) == ROOT / "policies" and json.loads(Path(config).read_text())["alarms"] == {
            "enforcementLevel": "advisory"}
    started = [e for e in logged(tmp_path) if e.get("policy") == "policy-pack-started"]
    assert [e["argv"][1:4] for e in started] == [["-u", "-m", "pulumi.policy"]] * 3
    assert all(e["argv"][-1] == str(ROOT / "policies") for e in started)
    assert all(steps_ == ["policy-pack-started", "policy-pack-configured", "policy-pack-stopped"]
               for steps_ in analyzers(tmp_path).values())
    assert_stopped(list(analyzers(tmp_path)))


@pytest.mark.slow
def test_a_mandatory_violation_the_pack_finds_under_the_cli_fails_the_stack_and_names_the_rule(
        tmp_path: Path) -> None:
    """The program the gate runs in-process is clean; what the CLI sees is not (an outbox queue whose encryption
    was switched off): the pack, run by the CLI, refuses it before its step, and the stack fails naming the rule."""
    steps, outputs = recorded("notifications")
    outbox = next(s for s in steps["dev.notifications"]["up"] if s["name"] == "notifications-outbox")
    outbox["new"] = {k: v for k, v in outbox["new"].items() if k != "kmsMasterKeyId"}
    outbox["new"]["sqsManagedSseEnabled"] = False
    done = ode_on_the_stand_in(tmp_path, "up", "--contexts", "notifications", "--json", steps=steps,
                               outputs=outputs)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    stacks = {s["stack"]: s for s in json.loads(done.stdout)["stacks"]}
    assert stacks["dev.identity"]["status"] == stacks["dev.shared-bus"]["status"] == "succeeded"  # clean: passed
    failed = stacks["dev.notifications"]
    assert failed["status"] == "failed" and failed["attempts"] == 1  # refused by policy: not retried
    assert failed["error"].startswith("dev.notifications: blocked by policy pack ondemandenv: encryption-at-rest "
                                      "on notifications-outbox")
    assert "notifications-outbox is not encrypted" in failed["error"]
    # The pack refused the queue before its step: the queue was never created, nor anything after it.
    kept = json.loads((tmp_path / "state/pulumi/.fake-pulumi/stacks/dev.notifications.json").read_text())
    names = [r["name"] for r in kept["resources"]]
    assert "notifications-outbox" not in names and "notifications-worker" not in names
    assert kept["history"][0]["result"] == "failed"
    assert_stopped(list(analyzers(tmp_path)))
    assert len(analyzers(tmp_path)) == 3
