"""``ode env ...``, ``ode gc``, ``ode affected`` and the CI script, end to end through their command lines."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .cli_runner import Ran, ode_script
from .cli_runner import ode as run_ode
from .conftest import ROOT, SAMPLE

SCRIPT = ROOT / "scripts" / "ephemeral_env.py"


#: What every run here sees: no colour, outputs synthesized from the contracts (no program runs).
ENV = {"NO_COLOR": "1", "ODE_SIMULATE_PROGRAMS": "0"}


def ode(cwd: Path, *args: str, **extra: str) -> Ran:
    return run_ode(*args, cwd=cwd, env={**ENV, **extra})


def script(cwd: Path, *args: str, **extra: str) -> Ran:
    return ode_script(SCRIPT, *args, cwd=cwd, env={**ENV, **extra})


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def deployed_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding a copy of the sample library, with dev deployed by the simulated engine, made once
    for the module (each test changes a copy of its own: :func:`repo`)."""
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(SAMPLE, root / "contracts")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-qm", "sample")
    done = ode(root, "up", "--env", "dev", "--engine", "simulated", "--json")
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def repo(deployed_repo: Path, tmp_path: Path) -> Path:
    """A git repository holding a copy of the sample library, with dev deployed by the simulated engine."""
    dest = tmp_path / "repo"
    shutil.copytree(deployed_repo, dest, symlinks=True)
    return dest


def _json(done: Ran) -> Any:
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout)


def test_env_create_list_extend_destroy(repo: Path) -> None:
    done = ode(repo, "env", "create", "pr-3", "--contexts", "orders", "--ttl", "2h", "--owner", "bob",
               "--engine", "simulated", "--json")
    assert done.returncode == 0, done.stderr
    created = _json(done)
    assert created["env"] == "pr-3"
    assert sorted(s["context"] for s in created["stacks"]) == ["catalog", "identity", "orders", "payments"]
    for stack in created["stacks"]:  # the same shape as `ode up --json`
        assert set(stack) >= {"stack", "context", "status", "started_at", "finished_at", "duration_s", "outputs",
                              "error"}
        assert stack["status"] == "succeeded" and stack["stack"] == f"pr-3.{stack['context']}"

    listed = _json(ode(repo, "env", "list", "--json"))["environments"]
    assert [(e["name"], e["base"], e["owner"], e["contexts"], e["status"]) for e in listed] == [
        ("pr-3", "dev", "bob", ["orders"], "active")]
    assert listed[0]["expires_at"].endswith("+00:00")

    table = ode(repo, "env", "list")
    assert table.returncode == 0 and "pr-3" in table.stdout and "bob" in table.stdout

    too_long = ode(repo, "env", "extend", "pr-3", "--ttl", "5d")
    assert too_long.returncode != 0 and "max_ttl" in too_long.stderr and "Traceback" not in too_long.stderr
    extended = _json(ode(repo, "env", "extend", "pr-3", "--ttl", "3d", "--json"))
    assert extended["expires_at"] > listed[0]["expires_at"]

    destroyed = _json(ode(repo, "env", "destroy", "pr-3", "--engine", "simulated", "--json"))
    assert {s["status"] for s in destroyed["stacks"]} == {"destroyed"}
    assert _json(ode(repo, "env", "list", "--json"))["environments"] == []
    status = _json(ode(repo, "status", "--env", "dev", "--json"))
    assert len(status["stacks"]) == 10 and {s["status"] for s in status["stacks"]} <= {"succeeded", "unchanged"}


def test_protected_environment_is_refused(repo: Path) -> None:
    done = ode(repo, "env", "destroy", "prod", "--engine", "simulated")
    assert done.returncode == 2
    assert "prod" in done.stderr and "Traceback" not in done.stderr


def test_gc_with_nothing_expired(repo: Path) -> None:
    assert ode(repo, "env", "create", "pr-4", "--contexts", "catalog", "--engine", "simulated").returncode == 0
    done = ode(repo, "gc", "--engine", "simulated", "--json")
    assert done.returncode == 0, done.stderr
    report = _json(done)
    assert report["destroyed"] == [] and [e["name"] for e in report["kept"]] == ["pr-4"]


def test_affected_command(repo: Path) -> None:
    path = repo / "contracts" / "catalog.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["settings"] = {**(doc.get("settings") or {}), "memory_mb": 1024}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    found = _json(ode(repo, "affected", "--since", "HEAD", "--json"))
    assert found["contexts"] == ["catalog", "orders", "fulfilment", "storefront"]
    assert list(found["changed"]) == ["catalog"]
    text = ode(repo, "affected", "--since", "HEAD")
    assert text.returncode == 0 and text.stdout.splitlines()[0].startswith("catalog")
    bad = ode(repo, "affected", "--since", "no-such-ref")
    assert bad.returncode == 2 and "no-such-ref" in bad.stderr


def test_ci_script_up_down_with_github_output(repo: Path) -> None:
    path = repo / "contracts" / "payments.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["settings"]["timeout_s"] = 45
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = repo / "github_output"
    done = script(repo, "up", "--pr", "12", "--since", "HEAD", "--engine", "simulated", "--ttl", "1h",
                  GITHUB_OUTPUT=str(out))
    assert done.returncode == 0, done.stderr
    doc = _json(done)
    assert doc["env"] == "pr-12" and doc["deployed"] is True
    # payments changed; orders consumes it, and fulfilment and storefront consume orders.
    assert sorted(s["context"] for s in doc["stacks"]) == ["analytics", "catalog", "fulfilment", "identity",
                                                            "orders", "payments", "storefront"]
    assert doc["outputs"]["orders"]["orders-api"]["url"]
    written = out.read_text()
    assert "env=pr-12\n" in written and "expires_at=" in written
    start = written.index("outputs<<") + len("outputs<<")
    delimiter = written[start:written.index("\n", start)]
    body = written.split(f"outputs<<{delimiter}\n", 1)[1].split(f"\n{delimiter}\n", 1)[0]
    assert json.loads(body) == doc["outputs"]

    down = script(repo, "down", "--pr", "12", "--engine", "simulated")
    assert down.returncode == 0, down.stderr
    assert {s["status"] for s in _json(down)["stacks"]} == {"destroyed"}


def test_ci_script_nothing_changed_and_errors(repo: Path) -> None:
    done = script(repo, "up", "--branch", "feature/Nothing", "--since", "HEAD", "--engine", "simulated")
    assert done.returncode == 0, done.stderr
    doc = _json(done)
    assert doc["deployed"] is False and doc["stacks"] == [] and doc["env"].startswith("feature-nothing-")
    bad = script(repo, "up", "--name", "Bad/Name", "--engine", "simulated")
    assert bad.returncode == 2 and "cannot name an environment" in bad.stderr
    missing = script(repo, "down", "--name", "pr-99", "--engine", "simulated")
    assert missing.returncode == 2 and "pr-99" in missing.stderr
