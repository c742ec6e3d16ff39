"""Team scale, end to end through the real ``ode`` command line: two runners (separate processes and state dirs)
sharing one DynamoDB registry on moto's server; outputs to SSM read back by a consumer whose registry lacks them;
lifecycle events reaching an SQS queue through a rule on the bus; and CI refusing the simulated engine unless it
is named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
import yaml

from ode.clock import parse_iso, utcnow
from ode.publishing.lifecycle_events import SCHEMAS
from ode.registry.dynamodb import DynamoDBRegistry
from ode.rendering import exact

from .conftest import SAMPLE
from .moto_server import REGION, aws, moto_server  # noqa: F401  (pytest fixtures)

TABLE = "ode-team"
URL = f"dynamodb://{TABLE}?region={REGION}"
BUS = "ode-events"


def ode(cwd: Path, state: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``ode ARGS --state-dir STATE`` as a separate process: a runner of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI_")) and k != "CI"}
    env.update({"NO_COLOR": "1", "ODE_SIMULATE_PROGRAMS": "0", **extra})
    return subprocess.run([sys.executable, "-m", "ode.cli", *args, "--state-dir", str(state)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=180)


def ok(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    # At interpreter exit, pulumi's runtime sometimes leaves an event loop for the garbage collector, which then
    # prints "Exception ignored in: BaseEventLoop.__del__": noise after the command ended, not one of its errors.
    assert "Traceback" not in done.stderr or "Exception ignored in" in done.stderr, done.stderr
    return json.loads(done.stdout) if done.stdout.strip().startswith(("{", "[")) else done.stdout


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.mark.slow
@pytest.mark.usefixtures("aws")
def test_two_runners_share_pr_environments_through_dynamodb(tmp_path: Path) -> None:
    """Runner A makes the table and creates pr-9 (and a short-lived pr-10) with `ode ci up`; runner B, with its
    own state dir, lists them, is locked out of pr-9 while a run holds it, destroys pr-9 and collects pr-10."""
    a, b = tmp_path / "runner-a", tmp_path / "runner-b"
    out, summary, comment = tmp_path / "github_output", tmp_path / "summary.md", tmp_path / "comment.md"
    init = ok(ode(SAMPLE.parent, a, "registry", "init", "--registry", URL, "--json"))
    assert init["created"] and init["table"] == TABLE
    up = ok(ode(SAMPLE.parent, a, "ci", "up", "--pr", "9", "--contexts", "orders", "--reuse", "", "--ttl", "2h",
                "--engine", "simulated", "--registry", URL, "--comment-file", str(comment),
                GITHUB_OUTPUT=str(out), GITHUB_STEP_SUMMARY=str(summary)))
    assert up["env"] == "pr-9" and up["deployed"] and up["ok"]
    deployed = sorted(s["context"] for s in up["stacks"])
    assert {"orders", "catalog", "network"} <= set(deployed)  # orders and everything it needs
    assert "env=pr-9\n" in out.read_text() and "expires_at=" in out.read_text()
    body = comment.read_text()
    # the expiry as people read it, the exact moment beside the relative one
    assert "pr-9" in body and f"in 2 h ({exact(up['environment']['expires_at'])})" in body
    assert "| pr-9.orders | succeeded |" in body
    assert summary.read_text().startswith("### ode: environment pr-9")
    ok(ode(SAMPLE.parent, a, "ci", "up", "--pr", "10", "--contexts", "catalog", "--reuse", "", "--ttl", "1s",
           "--engine", "simulated", "--registry", URL))
    assert not (b / "registry.db").exists()

    listed = ok(ode(SAMPLE.parent, b, "env", "list", "--json", "--registry", URL))
    assert [e["name"] for e in listed["environments"]] == ["pr-10", "pr-9"]

    # A run (runner A's, still working) holds pr-9: B is locked out, and --force-unlock of a live lease needs --force.
    holder = DynamoDBRegistry(TABLE, region=REGION)
    run = holder.begin_run("pr-9", "ci up", "simulated")
    try:
        status = ode(SAMPLE.parent, b, "status", "--env", "pr-9", "--registry", URL)
        assert status.returncode == 0 and f"(run {run}, `ci up`" in status.stderr and "lease until" in status.stderr
        locked = ode(SAMPLE.parent, b, "ci", "down", "--pr", "9", "--engine", "simulated", "--registry", URL)
        assert locked.returncode == 3 and "pr-9" in one_line_error(locked) and "locked by" in locked.stderr
        refused = ode(SAMPLE.parent, b, "ci", "down", "--pr", "9", "--engine", "simulated", "--registry", URL,
                      "--force-unlock")
        assert refused.returncode == 3 and "--force" in one_line_error(refused)
    finally:
        holder.end_run(run, "pr-9", "succeeded")
        holder.close()

    down = ok(ode(SAMPLE.parent, b, "ci", "down", "--pr", "9", "--engine", "simulated", "--registry", URL))
    assert sorted(s["context"] for s in down["stacks"]) == deployed
    assert {s["status"] for s in down["stacks"]} == {"destroyed"}

    registry = DynamoDBRegistry(TABLE, region=REGION)
    record = registry.environment("pr-10")
    assert record is not None
    deadline = time.monotonic() + 30
    while (parse_iso(record.expires_at) or utcnow()) > utcnow() and time.monotonic() < deadline:
        time.sleep(0.1)  # a one-second TTL: wait until it has run out
    collected = ok(ode(SAMPLE.parent, b, "ci", "gc", "--engine", "simulated", "--registry", URL))
    assert [e["name"] for e in collected["destroyed"]] == ["pr-10"]
    assert [(e.name, e.status) for e in registry.environments()] == [("pr-10", "destroyed"), ("pr-9", "destroyed")]
    assert registry.stacks("pr-9") == [] and registry.stacks("pr-10") == []
    assert not (b / "registry.db").exists()  # runner B's memory is the shared registry, not its state dir

    copied = ok(ode(SAMPLE.parent, b, "registry", "copy", "--registry", URL, "--to",
                    f"sqlite:///{tmp_path / 'copy' / 'registry.db'}", "--json"))
    assert copied["environments"] == 2
    registry.close()


def _library(tmp_path: Path) -> Path:
    """The sample library with dev publishing outputs to SSM and lifecycle events to a bus."""
    lib = tmp_path / "contracts"
    shutil.copytree(SAMPLE, lib)
    envs = yaml.safe_load((lib / "environments.yaml").read_text())
    envs["environments"]["dev"].update({"publish": "ssm", "events": {"bus": BUS}})
    (lib / "environments.yaml").write_text(yaml.safe_dump(envs, sort_keys=False))
    return lib


@pytest.mark.slow
@pytest.mark.usefixtures("aws")
def test_outputs_reach_a_consumer_through_ssm_and_events_reach_a_queue(tmp_path: Path) -> None:
    lib = _library(tmp_path)
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    events.create_event_bus(Name=BUS)
    queue = sqs.create_queue(QueueName="ode-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all-ode", EventBusName=BUS, EventPattern=json.dumps({"source": ["ode"]}))
    events.put_targets(Rule="all-ode", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])

    # Runner A deploys dev (its own SQLite registry): outputs go to SSM, one StackSucceeded per stack.
    producer = ok(ode(tmp_path, tmp_path / "a", "up", "--env", "dev", "--contracts", str(lib), "--engine",
                      "simulated", "--json"))
    stacks = {s["context"] for s in producer["stacks"]}
    ssm = boto3.client("ssm", region_name=REGION)
    names = {p["Name"] for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path="/ode/shop/dev", Recursive=True) for p in page["Parameters"]}
    assert "/ode/shop/dev/catalog/products-table" in names
    assert {n.split("/")[4] for n in names} == {c for c in stacks if producer_outputs(producer, c)}

    # Runner B (another repository: a fresh registry that never saw dev) deploys orders in pr-5, reusing every
    # producer from dev: their outputs are read from SSM.
    reuse = "network,shared-bus,catalog,identity,payments"
    consumer = ok(ode(tmp_path, tmp_path / "b", "env", "create", "pr-5", "--contexts", "orders", "--reuse", reuse,
                      "--contracts", str(lib), "--engine", "simulated", "--json"))
    assert [s["context"] for s in consumer["stacks"]] == ["orders"] and consumer["ok"]
    b_stacks = ok(ode(tmp_path, tmp_path / "b", "status", "--env", "dev", "--contracts", str(lib), "--json"))
    assert b_stacks["stacks"] == []  # B's registry knows nothing of dev: what orders got came from SSM
    ok(ode(tmp_path, tmp_path / "b", "env", "destroy", "pr-5", "--yes", "--contracts", str(lib), "--engine",
           "simulated"))

    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not {"EnvironmentDestroyed", "EnvironmentCreated"} <= {
            e["detail-type"] for e in received}:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    kinds = [e["detail-type"] for e in received]
    assert kinds.count("StackSucceeded") == len(stacks) + 1  # dev's stacks, then pr-5.orders
    assert "EnvironmentCreated" in kinds and "EnvironmentDestroyed" in kinds
    for event in received:
        assert event["source"] == "ode"
        jsonschema.validate(event["detail"], SCHEMAS[event["detail-type"]])
    created = next(e["detail"] for e in received if e["detail-type"] == "EnvironmentCreated")
    assert (created["environment"], created["base"], created["contexts"], created["ok"]) == (
        "pr-5", "dev", ["orders"], True)


def producer_outputs(result: dict[str, Any], context: str) -> dict[str, Any]:
    return next(s["outputs"] for s in result["stacks"] if s["context"] == context)


@pytest.mark.usefixtures("aws")
def test_a_publishing_failure_is_one_warning_never_a_failed_deploy(tmp_path: Path) -> None:
    """The bus does not exist: every event is refused, and the deploy succeeds all the same."""
    lib = _library(tmp_path)
    done = ode(tmp_path, tmp_path / "a", "up", "--env", "dev", "--contracts", str(lib), "--contexts", "catalog",
               "--engine", "simulated")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warnings and all("StackSucceeded" in w and BUS in w for w in warnings)


def _no_pulumi_path(tmp_path: Path) -> dict[str, str]:
    """PATH and HOME where no `pulumi` can be found (this machine has none; a developer's might)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git",):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{bin_dir}", "HOME": str(tmp_path / "home")}


def test_ci_refuses_the_simulated_engine_unless_it_is_named(tmp_path: Path) -> None:
    where = _no_pulumi_path(tmp_path)
    state = tmp_path / "state"
    for args in (["ci", "up", "--pr", "3", "--all"], ["up", "--env", "dev"], ["env", "create", "pr-3"]):
        done = ode(SAMPLE.parent, state, *args, CI="true", **where)
        line = one_line_error(done)
        assert done.returncode == 2 and "CI=true" in line and "pulumi" in line and "--engine simulated" in line
        assert done.stdout == ""
    explicit = ode(SAMPLE.parent, state, "ci", "up", "--pr", "3", "--all", "--engine", "pulumi", CI="true", **where)
    assert explicit.returncode == 2 and "no `pulumi` CLI" in one_line_error(explicit)
    assert not (state / "registry.db").exists()  # refused before anything was written
    named = ode(SAMPLE.parent, state, "up", "--env", "dev", "--contexts", "catalog", "--engine", "simulated",
                CI="true", **where)
    assert named.returncode == 0, named.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("aws")
def test_a_killed_runners_lease_runs_out_and_the_next_runner_takes_over(tmp_path: Path) -> None:
    """kill -9 an `ode up` in the middle of its run: the environment stays locked until its lease (8 s here, from
    the URL) runs out, then another runner's `ode up` takes it over and redoes what was left running."""
    url = f"{URL}&lease=8"
    ok(ode(SAMPLE.parent, tmp_path / "a", "registry", "init", "--registry", url))
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update({"NO_COLOR": "1", "ODE_SIMULATE_PROGRAMS": "0"})
    holder = subprocess.Popen([sys.executable, "-m", "ode.cli", "up", "--env", "dev", "--contexts", "catalog",
                               "--engine", "simulated", "--simulate-delay", "*=60", "--registry", url,
                               "--state-dir", str(tmp_path / "a")], cwd=SAMPLE.parent, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    registry = DynamoDBRegistry(TABLE, region=REGION)
    try:
        deadline = time.monotonic() + 60
        while (registry.lease("dev") is None or not registry.interrupted("dev")) and time.monotonic() < deadline:
            assert holder.poll() is None, "the holder ended early"
            time.sleep(0.1)
        lease = registry.lease("dev")
        assert lease is not None and lease.pid == holder.pid
    finally:
        holder.kill()
        holder.wait(timeout=30)
    locked = ode(SAMPLE.parent, tmp_path / "b", "up", "--env", "dev", "--contexts", "catalog", "--engine",
                 "simulated", "--registry", url)
    assert locked.returncode == 3 and "lease" in one_line_error(locked)
    taken = locked
    deadline = time.monotonic() + 60
    while taken.returncode == 3 and time.monotonic() < deadline:
        time.sleep(1)
        taken = ode(SAMPLE.parent, tmp_path / "b", "up", "--env", "dev", "--contexts", "catalog", "--engine",
                    "simulated", "--registry", url)
    ok(taken)
    assert [r.status for r in registry.runs("dev")] == ["abandoned", "succeeded"]
    assert {s.status for s in registry.stacks("dev")} == {"succeeded"} and registry.lease("dev") is None
    registry.close()
