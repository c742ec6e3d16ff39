"""Rehearsals apart from reality: a simulated run never replaces what a real engine deployed (registry records, SSM
parameters, lifecycle events): it is refused in one line, exit 2, with nothing written. What a simulated run
publishes is marked (a tag on parameters, a field on events), and a real run takes nothing a rehearsal made for
real. The real engine here is the pulumi engine driving the recorded stand-in CLI (tests/fakes/pulumi)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from ode.contracts import load_library
from ode.engines import StackSpec
from ode.engines.simulated import SimulatedEngine, synthesize_outputs
from ode.errors import OdeError
from ode.execution.orchestrator import Orchestrator
from ode.execution.planning import Planner, RehearsalError
from ode.registry.sqlite import Registry
from ode.workspace import open_workspace

from .cli_runner import Ran
from .cli_runner import ode as run_ode
from .conftest import ROOT, SAMPLE
from .moto_server import REGION, aws, moto_server  # noqa: F401  (pytest fixtures)

FAKES = ROOT / "tests" / "fakes"
BUS = "ode-rehearsals"


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in `pulumi` first on PATH (for this process and the `ode` processes it starts), answering with
    contract-shaped outputs for dev, stage and pr-4 (made from stage); identity's psp-credentials is secret."""
    library = load_library(SAMPLE)
    table: dict[str, Any] = {}
    for env, base in (("dev", None), ("stage", None), ("pr-4", "stage")):
        for context in library.contexts:
            spec = StackSpec(project="shop", env=env, context=context, contracts_dir=SAMPLE, base_env=base)
            table[spec.stack_name] = {"outputs": synthesize_outputs(library, spec),
                                      "secret": ["psp-credentials"] if context == "identity" else []}
        bus = table[f"{env}.shared-bus"]["outputs"]["bus"]
        for name, entry in table.items():  # events travel on the environment's shared bus
            for value in entry["outputs"].values() if name.startswith(f"{env}.") else ():
                if "bus_name" in value:
                    value.update(bus_name=bus["name"], bus_arn=bus["arn"])
    (tmp_path / "outputs.json").write_text(json.dumps(table))
    monkeypatch.setenv("PATH", os.pathsep.join([str(FAKES), os.path.dirname(sys.executable), os.environ["PATH"]]))
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_PULUMI_OUTPUTS", str(tmp_path / "outputs.json"))
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("ODE_BACKEND_URL", raising=False)
    return tmp_path


def ode(cwd: Path, *args: str) -> Ran:
    return run_ode(*args, cwd=cwd, env={"NO_COLOR": "1", "ODE_SIMULATE_PROGRAMS": "0"})


def refused(done: Ran, *needles: str) -> str:
    """Exit 2, one error line (no traceback) holding ``needles``; returns that line."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def rows(state: Path) -> dict[str, list[Any]]:
    """Everything the SQLite registry under ``state`` holds."""
    db = sqlite3.connect(state / "registry.db", timeout=30)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in sorted(tables)}  # noqa: S608
    finally:
        db.close()


def real_orchestrator(library_root: Path, state: Path) -> Orchestrator:
    from ode.engines.pulumi import PulumiEngine

    library = load_library(library_root)
    return Orchestrator(library, Registry(state), PulumiEngine(library, state), parallel=2)


# -- the registry ----------------------------------------------------------------------------------------------------


def test_a_simulated_run_is_refused_where_a_real_engine_deployed(stand_in: Path) -> None:
    state = stand_in / "state"
    real = real_orchestrator(SAMPLE, state)
    assert real.up("dev", ["identity", "catalog"]).ok
    assert {(s.engine, s.simulated) for s in real.registry.stacks("dev")} == {("pulumi", False)}
    deployed = {s.stack for s in real.registry.stacks("dev")}
    real.registry.close()
    before = rows(state)
    common = ("--env", "dev", "--engine", "simulated", "--contracts", str(SAMPLE), "--state-dir", str(state))
    for command in (("up",), ("up", "--contexts", "catalog"), ("destroy", "--yes"), ("drift",), ("refresh",),
                    ("drift", "--heal")):
        line = refused(ode(stand_in, *command, *common), "deployed by the pulumi engine",
                       "a simulated run never replaces")
        assert any(f"error: {stack} was deployed" in line for stack in deployed), line
        assert rows(state) == before, command  # nothing written: no stack, no run, no lock
    # an environment of its own is where a rehearsal goes: that is allowed, and marked
    rehearsal = ode(stand_in, "up", "--env", "stage", "--contexts", "catalog", "--engine", "simulated", "--contracts",
                    str(SAMPLE), "--state-dir", str(state), "--json")
    assert rehearsal.returncode == 0, rehearsal.stderr
    stage = Registry(state).stack("stage", "catalog")
    assert stage is not None and stage.simulated and stage.engine == "simulated"


def test_a_real_run_deploys_for_real_what_only_a_rehearsal_deployed(stand_in: Path) -> None:
    state = stand_in / "state"
    library = load_library(SAMPLE)
    rehearsal = Orchestrator(library, Registry(state), SimulatedEngine(library, state, run_programs=False))
    assert rehearsal.up("dev", ["payments"]).ok
    real = real_orchestrator(SAMPLE, state)
    plan = {s.context: s for s in real.plan("dev", ["payments"], preview=False).stacks}
    assert {s.action for s in plan.values()} == {"deploy"}
    result = real.up("dev", ["payments"])
    assert result.ok and {s.status for s in result.stacks} == {"succeeded"}
    assert result.stack("network").reason == "deployed by the simulated engine only: now for real"
    assert {(s.engine, s.simulated) for s in real.registry.stacks("dev")} == {("pulumi", False)}
    assert {s.status for s in real.up("dev", ["payments"]).stacks} == {"unchanged"}


class Published:
    """Outputs in SSM as a consumer in another repository finds them: made up by a rehearsal."""

    def __init__(self, outputs: dict[str, Any]):
        self.outputs = outputs

    def read(self, env: str, context: str) -> tuple[dict[str, Any], frozenset[str]] | None:
        return (self.outputs, frozenset()) if context == "catalog" else None

    def simulated(self, env: str, context: str) -> bool:
        return True

    def real(self, env: str, contexts: Any) -> list[str]:
        return []


def test_a_real_run_never_consumes_outputs_a_rehearsal_published(tmp_path: Path) -> None:
    library = load_library(SAMPLE)
    outputs = synthesize_outputs(library, StackSpec(project="shop", env="dev", context="catalog",
                                                    contracts_dir=SAMPLE))
    registry = Registry(tmp_path)  # it never heard of dev.catalog: SSM is where a consumer finds it
    with pytest.raises(OdeError, match="published by a simulated run"):
        Planner(library, registry, published=Published(outputs)).deployed("dev", "catalog")
    rehearsal = Planner(library, registry, published=Published(outputs), simulated=True)
    assert rehearsal.deployed("dev", "catalog") == (outputs, frozenset())  # a rehearsal may build on a rehearsal
    registry.record_success("dev", "catalog", fingerprint="f", inputs={}, outputs=outputs, secret_outputs=[],
                            engine="simulated", simulated=True, started_at="t", finished_at="t", duration_s=1.0)
    with pytest.raises(OdeError, match="deployed by the simulated engine only"):
        Planner(library, registry).deployed("dev", "catalog")
    assert rehearsal.deployed("dev", "catalog") == (outputs, frozenset())


# -- SSM parameters and lifecycle events, on moto's server ------------------------------------------------------------


def _library(tmp_path: Path) -> Path:
    """The sample with dev and stage publishing outputs to SSM and lifecycle events to a bus."""
    lib = tmp_path / "contracts"
    shutil.copytree(SAMPLE, lib)
    envs = yaml.safe_load((lib / "environments.yaml").read_text())
    for env in ("dev", "stage"):
        envs["environments"][env].update({"publish": "ssm", "events": {"bus": BUS}})
    (lib / "environments.yaml").write_text(yaml.safe_dump(envs, sort_keys=False))
    return lib


def _parameters(ssm: Any, env: str) -> dict[str, dict[str, Any]]:
    """Each parameter under ``env``: type, value, version and tags."""
    found = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=f"/ode/shop/{env}", Recursive=True,
                                                                      WithDecryption=True):
        for p in page["Parameters"]:
            tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=p["Name"])["TagList"]
            found[p["Name"]] = {"type": p["Type"], "value": p["Value"], "version": p["Version"],
                                "tags": {t["Key"]: t["Value"] for t in tags}}
    return found


def _received(sqs: Any, queue: str, wanted: int = 0, wait_s: float = 10.0) -> list[dict[str, Any]]:
    """The events on the queue: until ``wanted`` came (or ``wait_s`` passed), or, with 0, what is there now."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_s
    while True:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            got.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        if (wanted and len(got) >= wanted) or (not wanted and not messages) or time.monotonic() > deadline:
            return got


@pytest.mark.slow
@pytest.mark.usefixtures("aws")
def test_a_rehearsal_never_replaces_real_outputs_in_ssm_and_marks_what_it_publishes(stand_in: Path) -> None:
    lib = _library(stand_in)
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    ssm = boto3.client("ssm", region_name=REGION)
    events.create_event_bus(Name=BUS)
    queue = sqs.create_queue(QueueName="ode-rehearsals")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all-ode", EventBusName=BUS, EventPattern=json.dumps({"source": ["ode"]}))
    events.put_targets(Rule="all-ode", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])

    # A real deploy of identity (a secret output: a SecureString) publishes its outputs, tagged as real.
    with open_workspace(contracts=lib, state_dir=stand_in / "real", engine="simulated") as ws:
        library = ws.library()
        real = real_orchestrator(lib, stand_in / "real")
        real.outputs, real.events = ws.outputs(library), ws.events(library)
        assert real.up("dev", ["identity"]).ok
    published = _parameters(ssm, "dev")
    assert published and {p["tags"]["ode:simulated"] for p in published.values()} == {"false"}
    assert {p["tags"]["ode:engine"] for p in published.values()} == {"pulumi"}
    assert published["/ode/shop/dev/identity/psp-credentials"]["type"] == "SecureString"
    real_events = _received(sqs, queue, wanted=1)
    assert [(e["detail-type"], e["detail"]["simulated"]) for e in real_events] == [("StackSucceeded", False)]

    # A rehearsal from another state dir (its registry has never heard of dev) is refused: SSM says real.
    again = ode(stand_in, "up", "--env", "dev", "--contexts", "identity", "--engine", "simulated", "--contracts",
                str(lib), "--state-dir", str(stand_in / "elsewhere"))
    refused(again, "dev.identity", "SSM", "published by a real engine")
    assert _parameters(ssm, "dev") == published  # not one value, type, version or tag changed
    assert _received(sqs, queue) == []  # no event either
    elsewhere = rows(stand_in / "elsewhere")
    assert elsewhere["stacks"] == [] and elsewhere["runs"] == [] and elsewhere["locks"] == []

    # A rehearsal in an environment of its own publishes, marked: the parameters' tags and every event.
    stage = ode(stand_in, "env", "create", "pr-4", "--base", "stage", "--contexts", "identity", "--reuse", "",
                "--engine", "simulated", "--contracts", str(lib), "--state-dir", str(stand_in / "elsewhere"))
    assert stage.returncode == 0, stage.stderr
    marked = _parameters(ssm, "pr-4")
    assert marked and {p["tags"]["ode:simulated"] for p in marked.values()} == {"true"}
    assert {p["tags"]["ode:engine"] for p in marked.values()} == {"simulated"}
    rehearsed = _received(sqs, queue, wanted=2)
    assert {e["detail-type"] for e in rehearsed} == {"StackSucceeded", "EnvironmentCreated"}
    assert all(e["detail"]["simulated"] is True for e in rehearsed)

    # A real deploy over a rehearsal's parameters is what a rehearsal is for: they become real.
    with open_workspace(contracts=lib, state_dir=stand_in / "elsewhere", engine="simulated") as ws:
        library = ws.library()
        over = real_orchestrator(lib, stand_in / "elsewhere")
        over.outputs = ws.outputs(library)
        assert over.up("pr-4", ["identity"]).ok
    assert {p["tags"]["ode:simulated"] for p in _parameters(ssm, "pr-4").values()} == {"false"}


def test_the_rehearsal_error_is_a_usage_error() -> None:
    assert issubclass(RehearsalError, OdeError) and RehearsalError("x").exit_code == 2


@pytest.mark.usefixtures("aws")
def test_ssm_itself_never_lets_a_rehearsal_replace_or_remove_a_real_parameter() -> None:
    from ode.publishing.ssm_outputs import PublishError, SsmOutputs

    ssm = boto3.client("ssm", region_name=REGION)
    store = SsmOutputs("shop", region=REGION)
    real = {"psp-credentials": {"arn": "arn:aws:secretsmanager:us-east-1:111111111111:secret:real"}}
    store.publish("dev", "identity", real, {"psp-credentials"}, engine="pulumi")
    before = _parameters(ssm, "dev")
    (param,) = before.values()
    assert param["type"] == "SecureString" and param["tags"] == {"ode:engine": "pulumi", "ode:simulated": "false"}
    fake = {"psp-credentials": {"arn": "arn:aws:secretsmanager:us-east-1:111111111111:secret:made-up"}}
    with pytest.raises(PublishError, match="published by a real engine"):
        store.publish("dev", "identity", fake, (), engine="simulated", simulated=True)
    with pytest.raises(PublishError, match="published by a real engine"):
        store.unpublish("dev", "identity", simulated=True)
    assert _parameters(ssm, "dev") == before and not store.simulated("dev", "identity")
    # what a rehearsal published, a rehearsal may replace and remove; a real deploy takes it over
    store.publish("stage", "identity", fake, (), engine="simulated", simulated=True)
    assert store.simulated("stage", "identity")
    store.publish("stage", "identity", fake, (), engine="simulated", simulated=True)
    store.publish("stage", "identity", real, {"psp-credentials"}, engine="pulumi")
    assert not store.simulated("stage", "identity")
    store.publish("pr-1", "identity", fake, (), engine="simulated", simulated=True)
    assert store.unpublish("pr-1", "identity", simulated=True) == ["/ode/shop/pr-1/identity/psp-credentials"]
    assert _parameters(ssm, "pr-1") == {}
