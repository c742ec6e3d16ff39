"""``ode check`` end to end, and the gate in front of ``ode plan`` and ``ode up``: a production environment that makes
``log-retention`` mandatory at 365 days and a context that keeps 30."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ode.contracts import load_library
from ode.execution.orchestrator import Orchestrator
from ode.policy.gate import install_gate
from ode.registry.sqlite import Registry

from .conftest import SAMPLE
from .test_pulumi_engine import calls, stand_in, use_recorded  # noqa: F401 - the recorded pulumi stand-in

#: A date a waiver may run to (at most three years ahead).
NEXT_YEAR = (date.today() + timedelta(days=365)).isoformat()

#: AWS's documented example access key id, assembled here so that no key-shaped string is committed.
PLANTED_KEY = "AKIA" + "IOSFODNN7EXAMPLE"

SCHEMA = Path(__file__).resolve().parent / "data" / "sarif-schema-2.1.0.json"


def ode(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ode.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, "NO_COLOR": "1"})


def _edit(path: Path, change: Any) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def strict_retention(root: Path, env: str = "prod", short: str = "catalog",
                     waivers: list[dict[str, Any]] | None = None) -> Path:
    """The sample with ``log-retention`` mandatory at 365 days in ``env``; every context keeps 365 but ``short``,
    which keeps 30 (with ``waivers`` where given)."""
    _edit(root / "environments.yaml", lambda d: d["environments"][env].update(
        policies={"log-retention": {"level": "mandatory", "minimum_days": 365}, "alarms": "advisory"}))
    for path in root.glob("*.yaml"):
        if path.name == "environments.yaml":
            continue

        def keep(d: dict[str, Any], name: str = path.stem) -> None:
            d.setdefault("settings", {})["log_retention_days"] = 30 if name == short else 365
            if name == short and waivers:
                d["waivers"] = waivers

        _edit(path, keep)
    return root


def test_check_fails_naming_the_rule_and_the_context(sample_library: Path) -> None:
    strict_retention(sample_library)
    done = ode("check", "--env", "prod", "--contracts", str(sample_library), "--format", "json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"env", "ok", "violations"} and report["env"] == "prod" and report["ok"] is False
    blocking = [v for v in report["violations"] if v["level"] == "mandatory" and not v["waived"]]
    assert blocking and {v["rule"] for v in blocking} == {"log-retention"}
    assert {v["context"] for v in blocking} == {"catalog"}
    first = blocking[0]
    assert set(first) == {"rule", "level", "stack", "context", "resource", "type", "message", "waived", "file",
                          "line"}
    assert first["stack"] == "prod.catalog" and first["type"] == "aws:cloudwatch/logGroup:LogGroup"
    assert "fewer than 365" in first["message"] and first["file"].endswith("catalog.yaml")
    lines = (sample_library / "catalog.yaml").read_text().splitlines()
    assert "log_retention_days" in lines[first["line"] - 1]
    # Text: one line per violation, the summary last; no traceback.
    text = ode("check", "--env", "prod", "--contracts", str(sample_library))
    assert text.returncode == 1 and "Traceback" not in text.stderr
    assert "mandatory: log-retention: prod.catalog" in text.stdout


def test_up_refuses_the_violating_stack_and_skips_its_consumers(sample_library: Path, tmp_path: Path) -> None:
    strict_retention(sample_library)
    done = ode("up", "--env", "prod", "--engine", "simulated", "--contracts", str(sample_library), "--state-dir",
               str(tmp_path / "state"), "--json")
    assert done.returncode == 1, done.stderr
    stacks = {s["context"]: s for s in json.loads(done.stdout)["stacks"]}
    assert stacks["catalog"]["status"] == "failed" and "log-retention" in stacks["catalog"]["error"]
    for consumer in ("orders", "storefront", "fulfilment", "reporting"):
        assert stacks[consumer]["status"] == "skipped", stacks[consumer]
    for independent in ("network", "shared-bus", "identity", "analytics"):
        assert stacks[independent]["status"] == "succeeded", stacks[independent]
    # Never sent to the engine: the simulated engine kept no state for it.
    assert not (tmp_path / "state" / "simulated" / "prod.catalog.json").exists()
    plan = ode("plan", "--env", "prod", "--engine", "simulated", "--contracts", str(sample_library), "--state-dir",
               str(tmp_path / "plan-state"), "--json", "--contexts", "catalog")
    assert plan.returncode == 1
    item = next(s for s in json.loads(plan.stdout)["stacks"] if s["context"] == "catalog")
    assert "log-retention" in item["error"]


def test_a_current_waiver_passes_and_an_expired_one_fails(sample_library: Path, tmp_path: Path) -> None:
    waiver = {"rule": "log-retention", "reason": "debug stream, kept short on purpose", "expires": NEXT_YEAR}
    strict_retention(sample_library, waivers=[waiver])
    done = ode("check", "--env", "prod", "--contracts", str(sample_library), "--format", "json")
    assert done.returncode == 0, done.stdout
    report = json.loads(done.stdout)
    waived = [v for v in report["violations"] if v["rule"] == "log-retention"]
    assert report["ok"] is True and waived and all(v["waived"] for v in waived)
    up = ode("up", "--env", "prod", "--engine", "simulated", "--contracts", str(sample_library), "--state-dir",
             str(tmp_path / "state"), "--contexts", "catalog", "--json")
    assert up.returncode == 0, up.stdout

    _edit(sample_library / "catalog.yaml", lambda d: d["waivers"][0].update(expires="2020-01-01"))
    done = ode("check", "--env", "prod", "--contracts", str(sample_library), "--format", "json",
               "--contexts", "catalog")
    assert done.returncode == 1
    expired = [v for v in json.loads(done.stdout)["violations"] if v["rule"] == "log-retention"]
    assert expired and not any(v["waived"] for v in expired) and "expired on 2020-01-01" in expired[0]["message"]


def test_a_waiver_without_a_reason_is_a_contract_error(sample_library: Path) -> None:
    strict_retention(sample_library, waivers=[{"rule": "log-retention", "expires": NEXT_YEAR}])
    done = ode("check", "--env", "prod", "--contracts", str(sample_library))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "catalog.yaml" in done.stderr and "waivers[0].reason" in done.stderr


def test_sarif_is_valid_sarif_2_1_0_located_at_the_contract(sample_library: Path, tmp_path: Path) -> None:
    import jsonschema

    strict_retention(sample_library)
    out = tmp_path / "check.sarif"
    done = ode("check", "--env", "prod", "--contracts", str(sample_library), "--format", "sarif", "--output",
               str(out))
    assert done.returncode == 1 and done.stdout == ""
    sarif = json.loads(out.read_text())
    jsonschema.Draft4Validator(json.loads(SCHEMA.read_text())).validate(sarif)
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len(rules) == 21 and all(r["help"]["text"] for r in rules)
    assert {"contract-reachable", "ingress-reachable"} <= {r["id"] for r in rules}
    assert len({r["id"] for r in rules}) == 21
    catalog = [r for r in run["results"] if r["ruleId"] == "log-retention"]
    assert catalog and catalog[0]["level"] == "error"
    location = catalog[0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].endswith("catalog.yaml")
    # Run from the library's parent, files are named relative to it: code scanning resolves them in the checkout.
    relative = ode("check", "--env", "prod", "--contracts", "contracts", "--format", "sarif",
                   cwd=sample_library.parent)
    artifact = json.loads(relative.stdout)["runs"][0]["results"][0]["locations"][0]["physicalLocation"][
        "artifactLocation"]
    assert artifact["uri"].startswith("contracts/") and artifact["uriBaseId"] == "%SRCROOT%"
    line = (sample_library / "catalog.yaml").read_text().splitlines()[location["region"]["startLine"] - 1]
    assert "log_retention_days" in line
    assert rules[catalog[0]["ruleIndex"]]["id"] == "log-retention"


def test_a_plaintext_aws_key_in_settings_environment_fails(sample_library: Path) -> None:
    from components.kinds import KINDS

    if "environment" not in KINDS["serverless-api"].settings.model_fields:
        pytest.skip("the function settings of this version take no `environment` (covered in test_policy)")
    _edit(sample_library / "catalog.yaml", lambda d: d.setdefault("settings", {}).update(
        environment={"PSP_ACCESS_KEY": PLANTED_KEY}))
    done = ode("check", "--env", "dev", "--contracts", str(sample_library), "--format", "json")
    assert done.returncode == 1, done.stderr
    found = [v for v in json.loads(done.stdout)["violations"] if v["rule"] == "no-plaintext-secrets"]
    assert found and found[0]["context"] == "catalog" and PLANTED_KEY not in done.stdout


def test_usage_mistakes_are_one_line(sample_library: Path, tmp_path: Path) -> None:
    done = ode("check", "--env", "dev", "--contracts", str(sample_library), "--contexts", "nope")
    assert done.returncode == 2 and "nope" in done.stderr and "Traceback" not in done.stderr
    done = ode("check", "--env", "nowhere", "--contracts", str(sample_library))
    assert done.returncode != 0 and "nowhere" in done.stderr and "Traceback" not in done.stderr
    done = ode("check", "--env", "dev", "--contracts", str(sample_library), "--output", str(tmp_path / "no" / "x"))
    assert done.returncode == 2 and "--output" in done.stderr


def test_the_pulumi_engine_never_sees_a_blocked_stack_and_gets_the_pack(stand_in: Path,  # noqa: F811
                                                                        sample_library: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from ode.engines.pulumi import PulumiEngine

    strict_retention(sample_library, env="dev", short="payments")
    use_recorded(stand_in, monkeypatch, "payments", library_dir=sample_library)  # what the CLI's pack checks
    library = load_library(sample_library)
    state = stand_in / "state"
    engine = PulumiEngine(library, state)
    install_gate(engine, library, state)
    result = Orchestrator(library, Registry(state), engine, parallel=2).up("dev", ["payments"])
    outcome = result.stack("payments")
    assert outcome.status == "failed" and "log-retention" in (outcome.error or "")
    ups = [c for c in calls(stand_in) if c["args"][0] == "up"]
    stacks = sorted(c["args"][c["args"].index("--stack") + 1] for c in ups)
    assert stacks == ["dev.identity", "dev.network", "dev.shared-bus"]
    for c in ups:
        pack = c["args"][c["args"].index("--policy-pack") + 1]
        assert Path(pack).name == "policies" and (Path(pack) / "PulumiPolicy.yaml").exists()
        config = json.loads(Path(c["args"][c["args"].index("--policy-pack-config") + 1]).read_text())
        assert config["log-retention"] == {"enforcementLevel": "mandatory", "minimum_days": 365}


def test_the_pack_configuration_never_holds_a_secret_output(stand_in: Path,  # noqa: F811
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from ode.engines.pulumi import PulumiEngine

    use_recorded(stand_in, monkeypatch, "payments")  # what the CLI's pack checks

    library = load_library(SAMPLE)
    state = stand_in / "state"
    engine = PulumiEngine(library, state)
    install_gate(engine, library, state)
    result = Orchestrator(library, Registry(state), engine, parallel=2).up("dev", ["payments"])
    assert result.ok, [(s.stack, s.error) for s in result.stacks]
    outputs = json.loads((stand_in / "outputs.json").read_text())
    secret_value = outputs["dev.identity"]["outputs"]["psp-credentials"]["arn"]
    config = (state / "policy" / "dev.payments.json").read_text()
    assert "psp-credentials" in config and secret_value not in config  # the interface is named, its ARN is not
    for path in state.rglob("*"):
        if path.is_file() and path.name != "passphrase":
            assert secret_value.encode() not in path.read_bytes(), path


def test_env_create_runs_the_check_first(sample_library: Path, tmp_path: Path) -> None:
    # Environments made on demand take their levels from their base (dev here); network and shared-bus are reused.
    strict_retention(sample_library, env="dev")
    state = str(tmp_path / "state")
    base = ode("up", "--env", "dev", "--engine", "simulated", "--contracts", str(sample_library), "--state-dir",
               state, "--contexts", "network,shared-bus", "--json")
    assert base.returncode == 0, base.stdout
    done = ode("env", "create", "pr-7", "--engine", "simulated", "--contracts", str(sample_library), "--state-dir",
               state, "--contexts", "orders", "--json")
    assert done.returncode == 1, done.stderr
    stacks = {s["context"]: s for s in json.loads(done.stdout)["stacks"]}
    assert stacks["catalog"]["status"] == "failed" and "log-retention" in stacks["catalog"]["error"]
    assert stacks["orders"]["status"] == "skipped"


def test_no_mode_of_the_simulated_engine_skips_the_gate(sample_library: Path, tmp_path: Path) -> None:
    # Without program runs (outputs synthesized from the contracts) the gate runs the stack's program itself.
    strict_retention(sample_library)
    done = subprocess.run([sys.executable, "-m", "ode.cli", "up", "--env", "prod", "--engine", "simulated",
                           "--contracts", str(sample_library), "--state-dir", str(tmp_path / "state"), "--contexts",
                           "orders", "--json"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1", "ODE_SIMULATE_PROGRAMS": "0"})
    assert done.returncode == 1, done.stderr
    stacks = {s["context"]: s for s in json.loads(done.stdout)["stacks"]}
    assert stacks["catalog"]["status"] == "failed" and "log-retention" in stacks["catalog"]["error"]
    assert stacks["orders"]["status"] == "skipped" and stacks["identity"]["status"] == "succeeded"
