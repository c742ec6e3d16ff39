"""The pulumi engine at its boundary: a recorded stand-in for the `pulumi` executable on PATH checks the commands,
flags, config and environment it is given, and the outputs are parsed back. The real CLI deploys the sample
environment in the integration test, which is skipped where no `pulumi` is on PATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ode.contracts import load_library
from ode.engines import CliNotFoundError, StackSpec
from ode.engines.simulated import synthesize_outputs
from ode.execution.orchestrator import Orchestrator
from ode.registry.sqlite import Registry

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


def calls(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / "calls.jsonl").read_text().splitlines()]


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
    env = {**os.environ, "PATH": os.path.dirname(sys.executable), "ODE_SIMULATE_PROGRAMS": "0", "NO_COLOR": "1",
           "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "ode.cli", "up", "--env", "dev", "--contexts", "catalog",
                           "--contracts", str(SAMPLE), "--state-dir", str(tmp_path / "s"), "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
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
    assert result.changes == {"create": 3}
    log = calls(stand_in)
    select = [c for c in log if c["args"][:2] == ["stack", "select"]]
    init = [c for c in log if c["args"][:2] == ["stack", "init"]]
    assert select and init  # the first select failed, so the stack was created
    preview = next(c for c in log if c["args"][0] == "preview")
    assert preview["args"][preview["args"].index("--event-log") + 1].startswith("tcp://127.0.0.1:")
    assert auto  # the SDK module is what drove it


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
