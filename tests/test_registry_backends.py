"""One behavioural suite for every registry backend: SQLite, and DynamoDB on moto's server.

The same assertions run against both (``backend`` is parametrized), including two runners in separate processes
and state dirs sharing one registry. What only leases can do (expiry, heartbeat, takeover after a kill, force) is
tested on DynamoDB alone.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import boto3
import pytest

from ode.clock import utcnow
from ode.contracts import load_library
from ode.engines import StackResult, StackSpec
from ode.engines.simulated import SimulatedEngine
from ode.errors import UsageError
from ode.execution.orchestrator import Orchestrator
from ode.registry import EnvironmentRecord, LockedError, RegistryBackend, RegistryError, copy, open_registry
from ode.registry.dynamodb import DynamoDBRegistry, LeaseHeldError, create_table, parse_url
from ode.registry.sqlite import Registry

from .conftest import SAMPLE
from .moto_server import REGION, aws, moto_server  # noqa: F401  (pytest fixtures)

RUNNER = Path(__file__).resolve().parent / "registry_runner.py"
TABLE = "ode-registry-test"
DDB_URL = f"dynamodb://{TABLE}?region={REGION}"
SECRET_VALUE = "hunter2-do-not-store"


@dataclass
class Backend:
    kind: str
    url: str
    registry: RegistryBackend
    state: Path


@pytest.fixture(params=["sqlite", "dynamodb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh registry of each kind; the URL lets other processes open the same one."""
    state = tmp_path / "state"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared' / 'registry.db'}"
    else:
        request.getfixturevalue("aws")
        create_table(TABLE, region=REGION)
        url = DDB_URL
    registry = open_registry(url, state)
    yield Backend(request.param, url, registry, state)
    registry.close()


def env_record(name: str, **extra: Any) -> EnvironmentRecord:
    return EnvironmentRecord(name=name, base="dev", ephemeral=True, owner="ana", created_at="2026-01-01T00:00:00",
                             expires_at="2026-01-02T00:00:00", contexts=["orders"], reuse=["network"], **extra)


def success(registry: RegistryBackend, env: str, context: str, **extra: Any) -> None:
    fields: dict[str, Any] = dict(fingerprint="f1", inputs={"contract": "c1"}, outputs={"api": {"url": "https://x"}},
                                  secret_outputs=["db-password"], engine="simulated", simulated=True,
                                  started_at="2026-01-01T00:00:00", finished_at="2026-01-01T00:00:01",
                                  duration_s=1.5)
    fields.update(extra)
    registry.record_success(env, context, **fields)


# -- the protocol, and opening by URL ------------------------------------------------------------------------------

def test_both_backends_satisfy_the_protocol(backend: Backend) -> None:
    assert isinstance(backend.registry, RegistryBackend)
    assert isinstance(backend.registry, Registry if backend.kind == "sqlite" else DynamoDBRegistry)


def test_a_sqlite_url_names_the_directory_of_registry_db(tmp_path: Path) -> None:
    registry = open_registry(f"sqlite:///{tmp_path}/elsewhere/registry.db", tmp_path / "state")
    assert isinstance(registry, Registry) and registry.path == tmp_path / "elsewhere" / "registry.db"
    default = open_registry(None, tmp_path / "state")
    assert isinstance(default, Registry) and default.path == tmp_path / "state" / "registry.db"
    with pytest.raises(UsageError, match="registry.db"):
        open_registry(f"sqlite:///{tmp_path}/other.db", tmp_path)


def test_an_unknown_scheme_is_a_usage_error_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"'etcd'.*dynamodb, sqlite"):
        open_registry("etcd://somewhere", tmp_path)


def test_a_third_party_backend_is_found_through_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A package that declares ``ode.registries: memo = ...`` is opened by scheme, without any edit to ode."""
    import ode.registry.opening as api

    sys.modules["third_party_registry"] = type(sys)("third_party_registry")
    opened: list[tuple[str, Path]] = []

    def factory(url: str, state_dir: Path) -> Registry:
        opened.append((url, state_dir))
        return Registry(state_dir)

    sys.modules["third_party_registry"].open_memo = factory  # type: ignore[attr-defined]
    monkeypatch.setattr(api, "entry_points", lambda group: [
        EntryPoint("memo", "third_party_registry:open_memo", group)] if group == api.ENTRY_POINT_GROUP else [])
    try:
        registry = open_registry("memo://x", tmp_path)
    finally:
        del sys.modules["third_party_registry"]
    assert isinstance(registry, Registry) and opened == [("memo://x", tmp_path)]


def test_dynamodb_urls_are_checked() -> None:
    assert parse_url("dynamodb://t?region=eu-west-1") == ("t", "eu-west-1")
    assert parse_url("dynamodb://t") == ("t", None)
    with pytest.raises(UsageError, match="unknown parameter 'endpoint'"):
        parse_url("dynamodb://t?endpoint=http://x")
    with pytest.raises(UsageError, match="dynamodb://TABLE"):
        parse_url("dynamodb:///t")


@pytest.mark.usefixtures("aws")
def test_a_missing_table_is_made_on_first_use_as_registry_init_makes_it(tmp_path: Path) -> None:
    ddb = boto3.client("dynamodb")
    assert "absent" not in ddb.list_tables()["TableNames"]
    first = open_registry("dynamodb://absent?region=us-east-1", tmp_path)
    assert first.created  # the front end announces a new registry, as it does for a new SQLite file
    assert ddb.describe_table(TableName="absent")["Table"]["SSEDescription"]["Status"] == "ENABLED"
    backups = ddb.describe_continuous_backups(TableName="absent")["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    first.ensure_environment("dev")
    again = open_registry("dynamodb://absent?region=us-east-1", tmp_path)
    assert not again.created and again.knows("dev")


@pytest.mark.usefixtures("aws")
def test_a_table_written_by_a_newer_ode_is_refused() -> None:
    create_table(TABLE, region=REGION)
    boto3.client("dynamodb").put_item(TableName=TABLE, Item={"pk": {"S": "META"}, "sk": {"S": "SCHEMA"},
                                                             "version": {"N": "99"}})
    with pytest.raises(RegistryError, match="newer ode"):
        DynamoDBRegistry(TABLE, region=REGION)


def test_the_per_service_endpoint_variable_wins_over_the_general_one(request: pytest.FixtureRequest,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing in ode overrides boto3's endpoint resolution: AWS_ENDPOINT_URL_DYNAMODB is honoured."""
    endpoint = request.getfixturevalue("aws")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    create_table(TABLE, region=REGION)
    registry = DynamoDBRegistry(TABLE, region=REGION)
    registry.ensure_environment("dev")
    assert [e.name for e in registry.environments()] == ["dev"]


@pytest.mark.usefixtures("aws")
def test_init_creates_an_encrypted_on_demand_table_with_point_in_time_recovery() -> None:
    first = create_table(TABLE, region=REGION)
    again = create_table(TABLE, region=REGION)
    assert first["created"] and not again["created"]
    client = boto3.client("dynamodb")
    table = client.describe_table(TableName=TABLE)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    backups = client.describe_continuous_backups(TableName=TABLE)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    assert client.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}


def test_both_backends_are_declared_as_entry_points() -> None:
    from importlib.metadata import entry_points

    declared = {ep.name: ep.load() for ep in entry_points(group="ode.registries")}
    assert {"sqlite", "dynamodb"} <= set(declared)
    assert declared["sqlite"].__name__ == "open_sqlite" and declared["dynamodb"].__name__ == "open_dynamodb"


# -- environments and stacks -----------------------------------------------------------------------------------------

def test_environments_round_trip(backend: Backend) -> None:
    reg = backend.registry
    assert reg.environment("pr-1") is None and reg.environments() == []
    reg.put_environment(env_record("pr-2"))
    reg.put_environment(env_record("pr-1", status="creating"))
    reg.ensure_environment("dev")
    reg.ensure_environment("pr-1")  # known: a no-op
    got = reg.environment("pr-1")
    assert got == env_record("pr-1", status="creating")
    assert [e.name for e in reg.environments()] == ["dev", "pr-1", "pr-2"]
    dev = reg.environment("dev")
    assert dev is not None and not dev.ephemeral and dev.status == "active" and dev.contexts is None
    reg.set_environment_status("pr-1", "active")
    reg.set_environment_status("nowhere", "active")
    assert reg.environment("pr-1").status == "active"  # type: ignore[union-attr]
    assert reg.environment("nowhere") is None


def test_stack_lifecycle(backend: Backend) -> None:
    reg = backend.registry
    reg.mark_running("dev", "orders", engine="simulated", started_at="2026-01-01T00:00:00", run_id=7)
    rec = reg.stack("dev", "orders")
    assert rec is not None and rec.status == "running" and rec.fingerprint is None and rec.outputs == {}
    assert [s.context for s in reg.interrupted("dev")] == ["orders"]
    success(reg, "dev", "orders")
    rec = reg.stack("dev", "orders")
    assert rec is not None and rec.status == "succeeded" and rec.fingerprint == "f1"
    assert rec.inputs == {"contract": "c1"} and rec.outputs == {"api": {"url": "https://x"}}
    assert rec.secret_outputs == ["db-password"] and rec.simulated and rec.duration_s == 1.5
    assert rec.stack == "dev.orders" and reg.interrupted("dev") == []
    # a new run clears the fingerprint but keeps the last outputs
    reg.mark_running("dev", "orders", engine="pulumi", started_at="2026-01-02T00:00:00", run_id=8)
    rec = reg.stack("dev", "orders")
    assert rec is not None and rec.fingerprint is None and rec.outputs == {"api": {"url": "https://x"}}
    reg.record_failure("dev", "orders", error="boom", finished_at="2026-01-02T00:00:03", duration_s=3.0)
    rec = reg.stack("dev", "orders")
    assert rec is not None and (rec.status, rec.error, rec.fingerprint) == ("failed", "boom", None)
    assert rec.outputs == {"api": {"url": "https://x"}} and rec.duration_s == 3.0
    reg.record_failure("dev", "ghost", error="x", finished_at="t", duration_s=0.0)
    assert reg.stack("dev", "ghost") is None
    success(reg, "dev", "catalog")
    reg.mark_running("dev", "catalog", engine="simulated", started_at="t", run_id=9, operation="destroy")
    assert [(s.context, s.status) for s in reg.stacks("dev")] == [("catalog", "destroying"), ("orders", "failed")]
    assert [s.context for s in reg.interrupted("dev")] == ["catalog"]
    reg.forget_stack("dev", "catalog")
    assert [s.context for s in reg.stacks("dev")] == ["orders"] and reg.stacks("stage") == []


def test_runs_and_the_lock(backend: Backend) -> None:
    reg = backend.registry
    first = reg.begin_run("dev", "up", "simulated")
    holder = reg.lock_holder("dev")
    assert holder is not None and f"pid {os.getpid()}" in holder
    with pytest.raises(LockedError) as err:
        reg.begin_run("dev", "destroy", "simulated")
    assert err.value.exit_code == 3 and "dev" in str(err.value) and "\n" not in str(err.value)
    other = reg.begin_run("stage", "up", "simulated")  # one lock per environment
    reg.end_run(first, "dev", "succeeded")
    assert reg.lock_holder("dev") is None and reg.lock_holder("stage") is not None
    second = reg.begin_run("dev", "destroy", "simulated")
    reg.end_run(second, "dev", "failed")
    reg.end_run(other, "stage", "succeeded")
    assert second > first
    runs = reg.runs("dev")
    assert [(r.id, r.command, r.status) for r in runs] == [(first, "up", "succeeded"), (second, "destroy", "failed")]
    assert all(r.finished_at and r.env == "dev" and r.engine == "simulated" for r in runs)


def test_knows_any_record_of_an_environment(backend: Backend) -> None:
    reg = backend.registry
    assert not reg.knows("dev") and not reg.knows("pr-1") and not reg.knows("stage")
    reg.ensure_environment("dev")
    success(reg, "pr-1", "orders")  # a stack alone (no environment record)
    run = reg.begin_run("stage", "up", "simulated")  # a run alone
    reg.end_run(run, "stage", "succeeded")
    assert reg.knows("dev") and reg.knows("pr-1") and reg.knows("stage") and not reg.knows("prod")


def test_release_lock_drops_this_processs_lock_only(backend: Backend) -> None:
    reg = backend.registry
    assert reg.created is (backend.kind == "sqlite")
    run = reg.begin_run("dev", "up", "simulated")
    assert reg.lock_holder("dev") is not None
    assert reg.release_lock("dev") is True
    assert reg.lock_holder("dev") is None
    assert reg.release_lock("dev") is True  # nothing held: nothing to do
    again = reg.begin_run("dev", "up", "simulated")  # the lock can be taken again at once
    reg.end_run(again, "dev", "succeeded")
    assert {r.id for r in reg.runs("dev")} >= {run, again}


class SecretEngine(SimulatedEngine):
    """The simulated engine, with one secret output on every stack (as a real engine reports it)."""

    def up(self, spec: StackSpec, progress: Any = None) -> StackResult:
        result = super().up(spec, progress)
        return replace(result, outputs={**result.outputs, "db-password": {"value": SECRET_VALUE}},
                       secret_outputs=frozenset({"db-password"}))


def raw_store(backend: Backend) -> str:
    """Everything the backend holds, as text (a test may scan; ode never does)."""
    if backend.kind == "sqlite":
        db = sqlite3.connect(backend.registry.path)  # type: ignore[attr-defined]
        try:
            return json.dumps([db.execute(f"SELECT * FROM {t}").fetchall()  # noqa: S608 - fixed table names
                               for t in ("environments", "stacks", "runs", "locks", "meta")])
        finally:
            db.close()
    return json.dumps(boto3.client("dynamodb").scan(TableName=TABLE)["Items"])


def test_an_orchestrated_up_works_and_stores_no_secret(backend: Backend) -> None:
    library = load_library(SAMPLE)
    engine = SecretEngine(library, backend.state, run_programs=False)
    orchestrator = Orchestrator(library, backend.registry, engine, parallel=4)  # type: ignore[arg-type]
    first = orchestrator.up("dev")
    assert first.ok and {s.status for s in first.stacks} == {"succeeded"}
    again = orchestrator.up("dev")
    assert again.ok and {s.status for s in again.stacks} == {"unchanged"}
    stored = raw_store(backend)
    assert "db-password" in stored  # kept by name
    assert SECRET_VALUE not in stored
    assert all(r.status == "succeeded" for r in backend.registry.runs("dev"))
    assert backend.registry.lock_holder("dev") is None


@pytest.mark.usefixtures("aws")
def test_the_hot_path_never_scans(tmp_path: Path) -> None:
    create_table(TABLE, region=REGION)
    registry = DynamoDBRegistry(TABLE, region=REGION)
    operations: list[str] = []
    registry.client.meta.events.register("before-call.dynamodb.*",
                                         lambda model, **_: operations.append(model.name))
    library = load_library(SAMPLE)
    orchestrator = Orchestrator(library, registry, SimulatedEngine(library, tmp_path, run_programs=False))  # type: ignore[arg-type]
    assert orchestrator.up("dev").ok and orchestrator.up("dev").ok and orchestrator.status("dev").ok
    assert orchestrator.destroy("dev").ok
    assert operations and "Scan" not in operations
    assert set(operations) <= {"GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"}


# -- copy ----------------------------------------------------------------------------------------------------------

def fill(registry: RegistryBackend) -> None:
    registry.put_environment(env_record("pr-1"))
    registry.ensure_environment("dev")
    success(registry, "dev", "orders")
    success(registry, "dev", "catalog")
    registry.record_failure("dev", "catalog", error="boom", finished_at="t2", duration_s=2.0)
    success(registry, "pr-1", "orders")
    registry.mark_running("pr-1", "orders", engine="simulated", started_at="t3", run_id=None)


def snapshot(registry: RegistryBackend) -> list[Any]:
    return [(e, registry.stacks(e.name)) for e in registry.environments()]


@pytest.mark.usefixtures("aws")
def test_copy_moves_a_registry_both_ways(tmp_path: Path) -> None:
    create_table(TABLE, region=REGION)
    sqlite_reg = Registry(tmp_path / "a")
    fill(sqlite_reg)
    dynamo = open_registry(DDB_URL, tmp_path / "b")
    report = copy(sqlite_reg, dynamo)
    assert report.to_dict() == {"environments": 2, "stacks": 3}
    assert snapshot(dynamo) == snapshot(sqlite_reg)
    back = Registry(tmp_path / "c")
    copy(dynamo, back)
    assert snapshot(back) == snapshot(sqlite_reg)
    with pytest.raises(UsageError, match="already has dev, pr-1"):
        copy(sqlite_reg, back)
    copy(sqlite_reg, back, overwrite=True)
    assert snapshot(back) == snapshot(sqlite_reg)


def test_copy_is_refused_while_a_run_holds_a_lock(backend: Backend, tmp_path: Path) -> None:
    fill(backend.registry)
    run = backend.registry.begin_run("dev", "up", "simulated")
    with pytest.raises(LockedError, match="'dev' in the source is locked by a live run") as info:
        copy(backend.registry, Registry(tmp_path / "dest"))
    assert info.value.exit_code == 3
    assert Registry(tmp_path / "dest").environments() == []  # nothing was written
    backend.registry.end_run(run, "dev", "succeeded")
    assert copy(backend.registry, Registry(tmp_path / "dest")).stacks == 3


def test_copy_into_a_registry_where_a_run_is_live_is_refused(backend: Backend, tmp_path: Path) -> None:
    source = Registry(tmp_path / "laptop")
    fill(source)
    fill(backend.registry)
    before = snapshot(backend.registry)
    run = backend.registry.begin_run("pr-1", "up", "simulated")
    with pytest.raises(LockedError, match="'pr-1' in the destination is locked by a live run") as info:
        copy(source, backend.registry, overwrite=True)
    assert info.value.exit_code == 3
    assert snapshot(backend.registry) == before  # the live run's records are as it left them
    backend.registry.end_run(run, "pr-1", "succeeded")
    assert copy(source, backend.registry, overwrite=True).stacks == 3


# -- two runners, separate processes and state dirs, one registry ----------------------------------------------------

def runner(url: str, state: Path, *args: str, wait: bool = True) -> Any:
    cmd = [sys.executable, str(RUNNER), "--registry", url, "--state", str(state), *args]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def wait_for(path: Path, proc: subprocess.Popen[str], limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"runner ended early ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.05)


@pytest.mark.slow
def test_two_runners_share_environments_made_on_demand(backend: Backend, tmp_path: Path) -> None:
    """Runner A creates pr-9 and pr-10 and holds pr-9's lock; runner B, with its own state dir, lists them, is
    locked out of pr-9 (exit 3, one line), destroys it once A lets go, and collects the expired pr-10."""
    a_state, b_state, hold = tmp_path / "runner-a", tmp_path / "runner-b", tmp_path / "hold"
    hold.mkdir()
    created = runner(backend.url, a_state, "create", "pr-10", "--ttl", "1h")
    assert created.returncode == 0, created.stderr
    a = runner(backend.url, a_state, "create", "pr-9", "--hold", str(hold), wait=False)
    try:
        wait_for(hold / "locked", a)
        listed = runner(backend.url, b_state, "list")
        assert listed.returncode == 0 and json.loads(listed.stdout) == ["pr-10", "pr-9"]
        locked = runner(backend.url, b_state, "destroy", "pr-9")
        assert locked.returncode == 3
        assert "pr-9" in locked.stderr and "locked by" in locked.stderr and "Traceback" not in locked.stderr
        assert len(locked.stderr.strip().splitlines()) == 1
    finally:
        (hold / "release").write_text("")
        a.wait(timeout=60)
    assert a.returncode == 0
    deployed = len(backend.registry.stacks("pr-9"))
    assert deployed == json.loads(created.stdout)["stacks"] > 1
    destroyed = runner(backend.url, b_state, "destroy", "pr-9")
    assert destroyed.returncode == 0, destroyed.stderr
    assert json.loads(destroyed.stdout)["destroyed"] == deployed
    collected = runner(backend.url, b_state, "gc", "--later", str(2 * 3600))
    assert collected.returncode == 0, collected.stderr
    assert json.loads(collected.stdout) == {"destroyed": ["pr-10"], "kept": []}
    registry = backend.registry
    assert [(e.name, e.status) for e in registry.environments()] == [("pr-10", "destroyed"), ("pr-9", "destroyed")]
    assert registry.stacks("pr-9") == [] and registry.stacks("pr-10") == []
    assert not (b_state / "registry.db").exists()  # runner B's memory is the shared registry, not its state dir


# -- leases (DynamoDB) -----------------------------------------------------------------------------------------------

class MovableClock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> Any:
        return utcnow() + self.offset


@pytest.fixture
def ddb(request: pytest.FixtureRequest) -> Iterator[DynamoDBRegistry]:
    request.getfixturevalue("aws")
    create_table(TABLE, region=REGION)
    registry = DynamoDBRegistry(TABLE, region=REGION, lease_s=30, clock=MovableClock())
    yield registry
    registry.close()


def test_a_lease_names_its_holder_and_expiry(ddb: DynamoDBRegistry) -> None:
    run = ddb.begin_run("dev", "up", "pulumi")
    lease = ddb.lease("dev")
    assert lease is not None and not lease.expired
    assert (lease.pid, lease.run_id, lease.command) == (os.getpid(), run, "up")
    assert lease.host and lease.owner and lease.expires_at > lease.acquired_at
    # what `ode status` shows: who, which run, until when
    assert ddb.lock_holder("dev") == lease.describe()
    assert lease.describe().startswith(f"{lease.holder} (run {run}, `up` since ")
    assert lease.expires_at in lease.describe()
    ddb.end_run(run, "dev", "succeeded")
    assert ddb.lease("dev") is None


def test_an_expired_lease_is_taken_over_and_its_run_abandoned(ddb: DynamoDBRegistry) -> None:
    clock: MovableClock = ddb.clock  # type: ignore[assignment]
    stale = ddb.begin_run("dev", "up", "pulumi")
    ddb.close()  # the holder stops renewing (as a killed runner would)
    clock.offset = timedelta(seconds=31)
    assert ddb.lease("dev").expired and ddb.lock_holder("dev") is None  # type: ignore[union-attr]
    fresh = ddb.begin_run("dev", "up", "pulumi")
    assert {r.id: r.status for r in ddb.runs("dev")} == {stale: "abandoned", fresh: "running"}
    ddb.end_run(stale, "dev", "succeeded")  # the old holder coming back does not release the new lease
    assert ddb.lease("dev").run_id == fresh  # type: ignore[union-attr]
    ddb.end_run(fresh, "dev", "succeeded")


def test_a_lease_renewed_after_a_runner_saw_it_expired_is_not_taken(ddb: DynamoDBRegistry,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    holder = ddb.begin_run("dev", "up", "pulumi")
    late = DynamoDBRegistry(TABLE, region=REGION, clock=lambda: utcnow() + timedelta(seconds=31))
    stale = late.lease("dev")
    assert stale is not None and stale.expired
    ddb.lease_s = 120  # the holder comes back and renews, far beyond the late runner's clock
    assert ddb.renew("dev", holder)
    looks = iter([stale])
    real_lease = late.lease
    monkeypatch.setattr(late, "lease", lambda env: next(looks, None) or real_lease(env))
    with pytest.raises(LeaseHeldError):
        late.begin_run("dev", "up", "pulumi")
    assert ddb.lease("dev").run_id == holder  # type: ignore[union-attr]
    assert {r.id: r.status for r in ddb.runs("dev")} == {holder: "running"}
    ddb.end_run(holder, "dev", "succeeded")


def test_force_unlock_of_a_live_lease_needs_force(ddb: DynamoDBRegistry) -> None:
    held = ddb.begin_run("dev", "up", "pulumi")
    with pytest.raises(LeaseHeldError, match="add --force") as err:
        ddb.begin_run("dev", "up", "pulumi", force_unlock=True)
    assert isinstance(err.value, LockedError) and err.value.exit_code == 3
    with pytest.raises(LeaseHeldError, match="add --force"):
        ddb.break_lock("dev")
    broken = ddb.break_lock("dev", force=True)
    assert broken is not None and broken.run_id == held and ddb.lease("dev") is None
    taken = ddb.begin_run("dev", "up", "pulumi", force_unlock=True, force=True)
    again = ddb.begin_run("dev", "up", "pulumi", force_unlock=True, force=True)
    assert {r.id: r.status for r in ddb.runs("dev")} == {held: "abandoned", taken: "abandoned", again: "running"}
    ddb.end_run(again, "dev", "succeeded")


@pytest.mark.usefixtures("aws")
def test_the_heartbeat_renews_a_live_lease() -> None:
    create_table(TABLE, region=REGION)
    registry = DynamoDBRegistry(TABLE, region=REGION, lease_s=0.6)
    run = registry.begin_run("dev", "up", "pulumi")
    first = registry.lease("dev")
    assert first is not None
    renewed = first
    deadline = time.monotonic() + 20
    while renewed.expires_at == first.expires_at and time.monotonic() < deadline:
        time.sleep(0.1)
        renewed = registry.lease("dev")  # type: ignore[assignment]
    assert renewed.expires_at > first.expires_at and renewed.run_id == run
    registry.end_run(run, "dev", "succeeded")
    assert registry.lease("dev") is None and not registry._heartbeats
    registry.close()


@pytest.mark.usefixtures("aws")
@pytest.mark.slow
def test_a_killed_holders_lease_runs_out_and_is_taken_over(tmp_path: Path) -> None:
    """kill -9 a runner holding a 2-second lease: it stays locked until the lease runs out, then another
    runner takes it over and the killed run is recorded as abandoned."""
    create_table(TABLE, region=REGION)
    ready = tmp_path / "ready"
    holder = runner(DDB_URL, tmp_path / "a", "lease", "dev", "2", str(ready), wait=False)
    try:
        wait_for(ready, holder)
        killed_run = int(ready.read_text())
        registry = DynamoDBRegistry(TABLE, region=REGION)
        with pytest.raises(LeaseHeldError):
            registry.begin_run("dev", "up", "pulumi")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert holder.returncode == -signal.SIGKILL
    lease = registry.lease("dev")
    assert lease is not None and lease.run_id == killed_run and lease.pid == holder.pid
    taken = None
    deadline = time.monotonic() + 30
    while taken is None and time.monotonic() < deadline:
        try:
            taken = registry.begin_run("dev", "up", "pulumi")
        except LeaseHeldError:
            time.sleep(0.2)
    assert taken is not None, "the killed runner's lease never ran out"
    assert {r.id: r.status for r in registry.runs("dev")} == {killed_run: "abandoned", taken: "running"}
    registry.end_run(taken, "dev", "succeeded")
    registry.close()


def test_drift_checks_and_heals_are_kept_per_stack(backend: Backend) -> None:
    registry: Any = backend.registry
    assert registry.drift_checks("dev") == []
    drifted = [{"type": "aws:s3/bucket:Bucket", "name": "files", "urn": None, "op": "update",
                "diff": [{"path": "tags.team", "old": "a", "new": "b", "replaces": False}]}]
    registry.record_drift_check("dev", "orders", checked_at="2026-01-01T00:00:00", drifted=drifted)
    registry.record_drift_check("dev", "payments", checked_at="2026-01-01T00:00:00", drifted=None, error="boom")
    registry.record_heal("dev", "orders", healed_at="2026-01-01T00:01:00", run_id=7)
    registry.record_drift_check("dev", "orders", checked_at="2026-01-01T00:02:00", drifted=[])
    checks = {c["context"]: c for c in registry.drift_checks("dev")}
    assert checks["orders"]["checked_at"] == "2026-01-01T00:02:00" and checks["orders"]["drifted"] == []
    assert (checks["orders"]["healed_at"], checks["orders"]["heal_run"]) == ("2026-01-01T00:01:00", 7)
    assert checks["payments"]["drifted"] is None and checks["payments"]["error"] == "boom"
    assert registry.drift_checks("prod") == [] and registry.stacks("dev") == []  # kept apart from the stacks
