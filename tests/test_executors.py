"""Executors without a cluster: URLs, what a remote executor refuses, the task and result documents (no secret in
either), the worker command `ode stack run`, stack leases in SQLite and in DynamoDB on moto, and
`ode executor init codebuild` against moto (idempotent, least privilege)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ode.contracts import load_library
from ode.engines import EngineError, ProgramError, ResourceChange, StackResult, StackSpec
from ode.engines.simulated import SimulatedEngine
from ode.errors import UsageError
from ode.execution.executor import DuplicateDeliveryError, LocalExecutor, StackTask, TaskTimeoutError
from ode.executors import ExecutorSetup, open_executor
from ode.executors.codebuild import buildspec
from ode.executors.leases import Heartbeat, LeaseLost, SqliteLeases, open_leases
from ode.executors.opening import parse_url, require_shared_state
from ode.executors.tasks import Dispatch, read_result, read_task, result_document, task_document
from ode.executors.worker import read_secrets, run_document
from ode.masking import SECRET_MASK
from ode.workspace import open_workspace

from .cli_runner import ode
from .conftest import SAMPLE, context, write_library
from .moto_server import REGION, aws, moto_server  # noqa: F401  (pytest fixtures)

ROOT = Path(__file__).resolve().parents[1]
FAKES = ROOT / "tests" / "fakes"
SECRET = "s3cr3t-v4lue-never-sent"


# -- URLs and what a remote executor refuses --------------------------------------------------------------------------


def test_executor_urls_are_read_and_bad_ones_named_in_one_line(tmp_path: Path) -> None:
    parsed = parse_url("codebuild://ode-{account}?region=eu-west-1&timeout=900&lease=30")
    assert (parsed.scheme, parsed.location, parsed.timeout_s, parsed.lease_s) == ("codebuild", "ode-{account}",
                                                                                    900.0, 30.0)
    assert parse_url("local").scheme == "local"
    library = load_library(SAMPLE)
    setup = ExecutorSetup(engine=SimulatedEngine(library, tmp_path), library=library, state_dir=tmp_path)
    with pytest.raises(UsageError, match=r"no executor for ray:// \(known: codebuild, dask, dask\+local, local"):
        open_executor("ray://head:10001", setup)
    with pytest.raises(UsageError, match="timeout=soon must be a number from 1 to 28800"):
        open_executor("local://?timeout=soon", setup)
    with pytest.raises(UsageError, match="unknown parameter 'pool'"):
        open_executor("local://?pool=prod", setup)
    with pytest.raises(UsageError, match="expected dask\\+local://N"):
        open_executor("dask+local://many", setup)
    assert isinstance(open_executor(None, setup), LocalExecutor)


class FakePulumi:
    """What the remote check reads of a pulumi engine: its name, backend and where its passphrase came from."""

    name = "pulumi"

    def __init__(self, backend_url: str, passphrase_source: str | None, secrets_provider: str = "passphrase"):
        self.backend_url, self.passphrase_source, self.secrets_provider = backend_url, passphrase_source, \
            secrets_provider


def test_a_remote_executor_refuses_state_and_secrets_its_workers_cannot_use(tmp_path: Path) -> None:
    library = load_library(SAMPLE)

    def setup(engine: Any) -> ExecutorSetup:
        return ExecutorSetup(engine=engine, library=library, state_dir=tmp_path)

    with pytest.raises(UsageError, match=r"cannot use the file:// state backend .*ODE_BACKEND_URL=s3://BUCKET/PREFIX"
                                         r".*ODE_SECRETS_PROVIDER=awskms://"):
        require_shared_state(setup(FakePulumi("file:///home/me/.ode/pulumi", "file")), "dask://h:8786")
    with pytest.raises(UsageError, match="passphrase is kept in a file .* ODE_SECRETS_PROVIDER=awskms://"):
        require_shared_state(setup(FakePulumi("s3://state/shop", "file")), "dask://h:8786")
    require_shared_state(setup(FakePulumi("s3://state/shop", None, "awskms://alias/ode")), "dask://h:8786")
    require_shared_state(setup(FakePulumi("s3://state/shop", "environment")), "dask://h:8786")


def test_ode_up_with_a_remote_executor_and_the_file_backend_is_one_line_and_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The stand-in `pulumi` makes the real engine available; nothing reaches a scheduler: the refusal comes first.
    monkeypatch.setenv("PATH", os.pathsep.join([str(FAKES), os.path.dirname(sys.executable), os.environ["PATH"]]))
    for name in ("PULUMI_CONFIG_PASSPHRASE", "ODE_BACKEND_URL", "ODE_SECRETS_PROVIDER", "ODE_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    state = tmp_path / "state"
    done = ode(*["up", "--env", "dev", "--engine", "pulumi", "--executor", "dask://127.0.0.1:9",
                                    "--contracts", str(SAMPLE), "--state-dir", str(state)])
    assert done.exit_code == 2, done.output
    errors = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "file:// state backend" in errors[0] and "Traceback" not in done.output
    assert not (state / "registry.db").exists()  # refused before anything was written


def test_a_remote_executor_needs_a_shared_registry_for_its_stack_leases(tmp_path: Path) -> None:
    with open_workspace(contracts=SAMPLE, state_dir=tmp_path, engine="simulated",
                        executor="codebuild://p?region=us-east-1") as ws:
        with pytest.raises(UsageError, match=r"stack leases .* --registry dynamodb://TABLE\?region=R"):
            ws.orchestrator("dev")


# -- the documents ---------------------------------------------------------------------------------------------------


def spec_with_a_secret(contracts: Path) -> StackSpec:
    return StackSpec(project="test", env="pr-1", context="b", contracts_dir=contracts, base_env="dev",
                     upstream={"a": {"t": {"name": "table-a", "arn": SECRET}}},
                     secret_upstream=frozenset({("a", "t", "arn")}), config={"ode:target": "aws"})


DISPATCH = Dispatch(engine="simulated", state_dir="/state", contracts="/repo/contracts", lease_url="sqlite:///l.db",
                    lease_s=60, repo_path="contracts", commit="abc123", timeout_s=600)


def test_a_task_document_carries_no_secret_value_only_where_to_read_it() -> None:
    task = StackTask("up", spec_with_a_secret(Path("/repo/contracts")), run_id=7, attempt=2)
    doc = task_document(task, DISPATCH)
    text = json.dumps(doc)
    assert SECRET not in text
    assert doc["upstream"] == {"a": {"t": {"name": "table-a"}}}
    assert doc["secret_upstream"] == [{"producer": "a", "interface": "t", "field": "arn", "state": [
        {"env": "pr-1", "context": "a", "base_env": "dev"}, {"env": "dev", "context": "a", "base_env": None}]}]
    assert (doc["commit"], doc["run_id"], doc["attempt"], doc["timeout_s"]) == ("abc123", 7, 2, 600)
    # Where the environment publishes outputs to SSM, the SecureString is named too.
    ssm = Dispatch(**{**DISPATCH.__dict__, "ssm_place": lambda env, producer: (f"/ode/test/{env}/{producer}", "r")})
    assert task_document(task, ssm)["secret_upstream"][0]["ssm"] == {"name": "/ode/test/pr-1/a/t", "region": "r"}
    read = read_task(json.loads(text))
    assert read.stack == "pr-1.b" and read.secret_upstream[0].states[1] == ("dev", "a", None)
    spec = read.spec(Path("/w/contracts"), {("a", "t", "arn"): SECRET})
    assert spec.upstream == task.spec.upstream and spec.secret_upstream == task.spec.secret_upstream


@pytest.mark.parametrize("change, message", [
    ({"ode_task": 9}, "ode_task: this worker reads format 1, not 9"),
    ({"operation": "apply"}, "operation: 'apply' is not one of up, destroy, preview, refresh"),
    ({"attempt": "two"}, "attempt: expected int, got str"),
    ({"lease": None}, "lease: expected dict"),
])
def test_a_bad_task_is_one_line_naming_its_field(change: dict[str, Any], message: str) -> None:
    doc = {**task_document(StackTask("up", spec_with_a_secret(Path("/c"))), DISPATCH), **change}
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_task(doc)


def test_a_result_document_masks_secret_outputs_and_carries_errors_back() -> None:
    result = StackResult(stack="dev.a", operation="up", outputs={"t": {"name": "n", "arn": "a"},
                                                                 "key": {"value": SECRET}},
                         secret_outputs=frozenset({"key"}), changes={"create": 1}, simulated=True,
                         resources=[ResourceChange(type="aws:s3/bucket:Bucket", name="b", parent=None,
                                                   inputs={"bucket": "x"}, op="create")])
    doc = result_document("dev.a", "up", result=result, worker={"kind": "dask", "host": "h", "pid": 1})
    assert SECRET not in json.dumps(doc)
    back = read_result(json.loads(json.dumps(doc)))
    assert back.outputs["key"] == {"value": SECRET_MASK} and back.secret_outputs == {"key"}
    assert back.resources[0].op == "create" and back.worker == {"kind": "dask", "host": "h", "pid": 1}
    failed = result_document("dev.a", "up", error=ProgramError("dev.a", "settings.memory: too small", "trace"),
                             worker={"kind": "codebuild", "build_id": "p:1"})
    with pytest.raises(ProgramError, match="dev.a: settings.memory: too small") as raised:
        read_result(failed)
    assert raised.value.worker == {"kind": "codebuild", "build_id": "p:1"}  # type: ignore[attr-defined]


# -- the worker ------------------------------------------------------------------------------------------------------


@pytest.fixture
def two(tmp_path: Path) -> Path:
    return write_library(tmp_path / "contracts", [context("a"), context("b", consumes=[
        {"context": "a", "interface": "t"}])])


def test_a_worker_reads_secret_upstream_values_from_the_producers_state(two: Path, tmp_path: Path) -> None:
    library = load_library(two)
    engine = SimulatedEngine(library, tmp_path / "state", run_programs=False)
    produced = engine.up(StackSpec(project="test", env="dev", context="a", contracts_dir=two))
    # The producer's output is secret: its state keeps its name only, and the engine gives the value back.
    state = tmp_path / "state" / "simulated" / "dev.a.json"
    stored = json.loads(state.read_text())
    stored.update(outputs={}, secret_outputs=["t"])
    state.write_text(json.dumps(stored))
    spec = StackSpec(project="test", env="dev", context="b", contracts_dir=two, upstream={"a": {"t": {
        "name": produced.outputs["t"]["name"], "arn": produced.outputs["t"]["arn"]}}},
        secret_upstream=frozenset({("a", "t", "arn")}))
    doc = task_document(StackTask("up", spec), Dispatch(engine="simulated", state_dir=str(tmp_path / "state"),
                                                        contracts=str(two), lease_url="", lease_s=5))
    assert produced.outputs["t"]["arn"] not in json.dumps(doc)
    found = read_secrets(read_task(doc), engine, two)
    assert found == {("a", "t", "arn"): produced.outputs["t"]["arn"]}


def test_a_worker_reads_a_secret_from_its_ssm_securestring(aws: str, two: Path, tmp_path: Path) -> None:  # noqa: F811
    import boto3

    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/ode/test/dev/a/t", Type="SecureString", Value=json.dumps({"name": "n", "arn": SECRET}))
    spec = spec_with_a_secret(two)
    dispatch = Dispatch(engine="simulated", state_dir=str(tmp_path), contracts=str(two), lease_url="", lease_s=5,
                        ssm_place=lambda env, producer: (f"/ode/test/dev/{producer}", REGION))
    task = read_task(task_document(StackTask("up", spec), dispatch))

    class NoState:  # the state is not read when SSM has the value
        def outputs(self, spec: StackSpec) -> dict[str, Any]:
            raise AssertionError("read the state")

    assert read_secrets(task, NoState(), two) == {("a", "t", "arn"): SECRET}  # type: ignore[arg-type]


def stack_run(doc: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ode", "stack", "run", "--task", "-"], input=json.dumps(doc),
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ODE_SIMULATE_PROGRAMS": "0", **(env or {})})


def test_ode_stack_run_answers_with_one_json_line_and_says_progress_on_stderr(two: Path, tmp_path: Path) -> None:
    spec = StackSpec(project="test", env="dev", context="a", contracts_dir=two)
    dispatch = Dispatch(engine="simulated", state_dir=str(tmp_path / "state"), contracts=str(two),
                        lease_url=f"sqlite:///{tmp_path / 'leases.db'}", lease_s=30)
    done = stack_run(task_document(StackTask("up", spec, run_id=3), dispatch))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip())
    assert answer["ok"] and answer["outputs"]["t"]["name"] and answer["worker"]["pid"] > 0
    assert "up (simulated)" in done.stderr
    assert SqliteLeases(tmp_path / "leases.db").holder("dev.a") is None  # released when it ended
    # A second delivery while another worker holds the stack is refused, naming the holder; nothing runs.
    held = SqliteLeases(tmp_path / "leases.db").acquire("dev.a", {"host": "elsewhere", "pid": 99, "run_id": 3}, 30)
    refused = stack_run(task_document(StackTask("up", spec, run_id=3), dispatch))
    assert refused.returncode == 1
    answer = json.loads(refused.stdout.strip())
    assert answer["error"]["type"] == "DuplicateDeliveryError"
    assert "leased by elsewhere pid 99, run 3" in answer["error"]["message"]
    assert "up (simulated)" not in refused.stderr
    assert held.token  # still the other worker's


def test_ode_stack_run_with_a_bad_task_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ode", "stack", "run", "--task", "-"], input="{not json",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == ["error: task -: not a JSON document (Expecting property name "
                                                "enclosed in double quotes: line 1 column 2 (char 1))"]
    answer, status = run_document({"ode_task": 1, "operation": "up"}, progress=print)
    assert status == 2 and answer["error"]["message"] == "task: secret_upstream: expected list, got NoneType"


def test_a_worker_stops_at_its_time_limit(two: Path, tmp_path: Path) -> None:
    spec = StackSpec(project="test", env="dev", context="a", contracts_dir=two)
    dispatch = Dispatch(engine="simulated", state_dir=str(tmp_path / "state"), contracts=str(two),
                        lease_url=f"sqlite:///{tmp_path / 'leases.db'}", lease_s=30,
                        engine_options={"delays": {"a": 60}, "run_programs": False})
    lines: list[str] = []
    answer, status = run_document(task_document(StackTask("up", spec, timeout_s=1), dispatch), progress=lines.append)
    assert status == 1 and answer["error"]["type"] == "TaskTimeoutError"
    assert answer["error"]["message"].startswith("timed out after 1 s")
    with pytest.raises(TaskTimeoutError):
        read_result(answer)


def test_a_worker_masks_the_secret_values_it_read_in_every_line(two: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from ode.executors import worker

    state = tmp_path / "state"
    monkeypatch.setenv("ODE_SIMULATE_PROGRAMS", "0")
    library = load_library(two)
    produced = SimulatedEngine(library, state, run_programs=False).up(
        StackSpec(project="test", env="dev", context="a", contracts_dir=two))
    secret = produced.outputs["t"]["arn"]
    spec = StackSpec(project="test", env="dev", context="b", contracts_dir=two,
                     upstream={"a": {"t": {"name": produced.outputs["t"]["name"], "arn": secret}}},
                     secret_upstream=frozenset({("a", "t", "arn")}))
    doc = task_document(StackTask("up", spec), Dispatch(engine="simulated", state_dir=str(state), contracts=str(two),
                                                        lease_url=f"sqlite:///{tmp_path / 'l.db'}", lease_s=30))
    assert secret not in json.dumps(doc)
    received: list[Any] = []
    real = worker.run_task

    def chatty(engine: Any, task: StackTask, progress: Any = None) -> StackResult:
        # An engine that says what it was given, as pulumi's diagnostics may: the value the worker read itself.
        received.append(task.spec.upstream["a"]["t"]["arn"])
        progress(task.stack, f"config a.t.arn = {received[-1]} (from the producer)")
        return real(engine, task, progress)

    monkeypatch.setattr(worker, "run_task", chatty)
    lines: list[str] = []
    answer, status = run_document(doc, progress=lines.append)
    assert status == 0 and answer["ok"], answer
    assert received == [secret]  # the worker read the real value from the producer's state
    assert f"config a.t.arn = {SECRET_MASK} (from the producer)" in lines
    assert not any(secret in line for line in lines) and secret not in json.dumps(answer)


def test_a_worker_runs_the_programs_when_the_coordinator_does(two: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from ode.executors.worker import make_worker_engine

    monkeypatch.setenv("ODE_SIMULATE_PROGRAMS", "1")  # the worker's own default, which the task overrides
    spec = StackSpec(project="test", env="dev", context="a", contracts_dir=two)
    for wanted in (False, True):
        dispatch = Dispatch(engine="simulated", state_dir=str(tmp_path), contracts=str(two), lease_url="", lease_s=5,
                            engine_options={"run_programs": wanted, "failures": ["a"]})
        engine = make_worker_engine(read_task(task_document(StackTask("up", spec), dispatch)), two)
        assert (engine.run_programs, engine.failures) == (wanted, {"a"})  # type: ignore[attr-defined]


def test_up_and_status_say_where_each_stack_ran_with_the_local_executor(two: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODE_SIMULATE_PROGRAMS", "0")
    common = ["--env", "dev", "--contracts", str(two), "--state-dir", str(tmp_path / "state"), "--json"]
    done = ode(*["up", *common, "--engine", "simulated", "--executor", "local"])
    assert done.exit_code == 0, done.output
    ran = {s["context"]: s["worker"] for s in json.loads(done.stdout)["stacks"]}
    assert ran == dict.fromkeys("ab", ran["a"]) and ran["a"]["kind"] == "local" and ran["a"]["pid"] == os.getpid()
    status = ode(*["status", *common])
    assert status.exit_code == 0, status.output
    assert {s["context"]: s["worker"] for s in json.loads(status.stdout)["stacks"]} == ran  # kept in SQLite
    # A stack left unchanged by the next run keeps where it last ran.
    again = json.loads(ode(*["up", *common, "--engine", "simulated"]).stdout)["stacks"]
    assert [s["worker"] for s in again] == [None, None]
    assert {s["context"]: s["worker"] for s in json.loads(ode(*["status", *common]).stdout)[
        "stacks"]} == ran


# -- the local executor ----------------------------------------------------------------------------------------------


def test_the_local_executor_refuses_a_second_delivery_and_stops_at_a_time_limit(two: Path, tmp_path: Path) -> None:
    library = load_library(two)
    engine = SimulatedEngine(library, tmp_path, delays={"a": 30}, run_programs=False)
    executor = LocalExecutor(engine, timeout_s=1)
    task = StackTask("up", StackSpec(project="test", env="dev", context="a", contracts_dir=two))
    first = threading.Thread(target=lambda: executor.submit(task))
    first.start()
    deadline = time.monotonic() + 30
    while not executor.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(DuplicateDeliveryError, match="running here already"):
        executor.submit(task).result()
    first.join(timeout=30)
    with pytest.raises(TaskTimeoutError, match="timed out after 1 s"):
        executor.submit(task).result()


# -- leases ----------------------------------------------------------------------------------------------------------


def check_leases(leases: Any) -> None:
    mine = leases.acquire("dev.a", {"host": "h1", "pid": 1}, 1.0)
    with pytest.raises(DuplicateDeliveryError, match="leased by h1 pid 1"):
        leases.acquire("dev.a", {"host": "h2", "pid": 2}, 1.0)
    leases.renew(mine)
    assert leases.holder("dev.a")["host"] == "h1"
    deadline = time.monotonic() + 10
    while leases.holder("dev.a") is not None and time.monotonic() < deadline:  # it runs out without renewals
        time.sleep(0.1)
    theirs = leases.acquire("dev.a", {"host": "h2", "pid": 2}, 30.0)
    with pytest.raises(LeaseLost):
        leases.renew(mine)
    leases.release(mine)  # not ours any more: nothing happens
    assert leases.holder("dev.a")["host"] == "h2"
    leases.release(theirs)
    assert leases.holder("dev.a") is None


def test_stack_leases_in_sqlite(tmp_path: Path) -> None:
    check_leases(open_leases(f"sqlite:///{tmp_path / 'leases.db'}"))


def test_stack_leases_in_dynamodb_beside_the_registry(aws: str, tmp_path: Path) -> None:  # noqa: F811
    from ode.registry import open_registry

    registry = open_registry(f"dynamodb://leases?region={REGION}", tmp_path)
    check_leases(open_leases(f"dynamodb://leases?region={REGION}"))
    assert registry.environments() == []  # the registry's own records are untouched


def test_a_heartbeat_keeps_a_lease_and_says_when_it_is_lost(tmp_path: Path) -> None:
    leases = SqliteLeases(tmp_path / "l.db")
    lease = leases.acquire("dev.a", {"host": "h"}, 0.6)
    lost: list[str] = []
    with Heartbeat(leases, lease, on_lost=lost.append) as beat:
        time.sleep(1.5)  # longer than the lease: only the renewals keep it
        assert leases.holder("dev.a") is not None and beat.lost is None
        with leases._db() as db:  # noqa: SLF001 - another worker takes it over
            db.execute("UPDATE stack_leases SET token = 'other'")
        deadline = time.monotonic() + 10
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
    assert lost and "no longer this worker's" in lost[0]


# -- ode executor init codebuild -------------------------------------------------------------------------------------


def test_executor_init_codebuild_creates_a_least_privilege_project_once(
        aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from ode import aws_clients

    # moto keeps a project's encryptionKey as its own default whatever is asked: the request is looked at instead.
    asked: list[dict[str, Any]] = []
    made = aws_clients.client

    def recording(service: str, region: str | None = None) -> Any:
        client = made(service, region)
        if service == "codebuild":
            client.meta.events.register("provide-client-params.codebuild.CreateProject",
                                        lambda params, **_: asked.append(dict(params)))
        return client

    monkeypatch.setattr(aws_clients, "client", recording)
    contracts = write_library(tmp_path / "contracts", [context("a")], {"project": "shop", "environments": {
        "dev": {"account": "123456789012", "region": REGION, "role_arn": "arn:aws:iam::123456789012:role/deploy"},
        "prod": {"account": "333333333333", "region": REGION}}})
    common = ["--region", REGION, "--source-location", "https://github.com/example/shop", "--backend-url",
              "s3://state-bucket/shop", "--registry", f"dynamodb://ode-registry?region={REGION}", "--contracts",
              str(contracts), "--state-dir", str(tmp_path / "state"), "--json"]
    key = f"arn:aws:kms:{REGION}:123456789012:key/k"
    first = ode(*["executor", "init", "codebuild", "--project", "ode-deploy", "--kms-key-arn", key,
                                     *common])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert [report[k] for k in ("log_group", "role", "policy", "codebuild_project")] == ["created"] * 4
    assert report["executor"] == f"codebuild://ode-deploy?region={REGION}"
    assert any("prod is in account 333333333333" in n for n in report["notes"])
    assert asked[0]["encryptionKey"] == key

    import boto3

    project = boto3.client("codebuild", region_name=REGION).batch_get_projects(names=["ode-deploy"])["projects"][0]
    assert project["source"]["buildspec"] == buildspec("python3 -m pip install --quiet 'ondemandenv[dask]'")
    assert project["logsConfig"]["cloudWatchLogs"]["groupName"] == "/ode/codebuild/ode-deploy"
    assert project["environment"]["privilegedMode"] is False
    group = boto3.client("logs", region_name=REGION).describe_log_groups(
        logGroupNamePrefix="/ode/codebuild/ode-deploy")["logGroups"][0]
    assert group["retentionInDays"] == 30 and group["kmsKeyId"] == key
    iam = boto3.client("iam", region_name=REGION)
    trust = iam.get_role(RoleName="ode-deploy-service-role")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "codebuild.amazonaws.com"}
    policy = iam.get_role_policy(RoleName="ode-deploy-service-role", PolicyName="ode-worker")["PolicyDocument"]
    # moto enforces no IAM policy: the policy itself is what is checked. No wildcard action, no "*" resource.
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    for statement in policy["Statement"]:
        assert all("*" not in action for action in statement["Action"]), statement
        assert "*" not in statement["Resource"], statement
    assert by_sid["AssumeDeployRoles"]["Resource"] == ["arn:aws:iam::123456789012:role/deploy"]
    assert by_sid["PulumiState"]["Resource"] == ["arn:aws:s3:::state-bucket/shop/*"]
    assert by_sid["SecretsProvider"]["Resource"] == [key]
    assert by_sid["StackLeases"]["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["STACKLEASE#*"]}}
    assert by_sid["PublishedOutputs"]["Resource"] == [f"arn:aws:ssm:{REGION}:123456789012:parameter/ode/shop/*"]

    # Run again, nothing changes; a changed setting brings its part up to date, and says so.
    args = ["executor", "init", "codebuild", "--project", "ode-plain", *common]
    assert ode(*args).exit_code == 0
    again = json.loads(ode(*args).stdout)
    assert [again[k] for k in ("log_group", "role", "policy", "codebuild_project")] == ["unchanged"] * 4
    longer = json.loads(ode(*[*args, "--log-retention-days", "90"]).stdout)
    assert [longer[k] for k in ("log_group", "role", "policy", "codebuild_project")] == [
        "updated", "unchanged", "unchanged", "unchanged"]


# -- Ctrl-C reaches the workers ----------------------------------------------------------------------------------


def test_ctrl_c_asks_remote_tasks_to_stop_and_a_second_one_stops_them_hard(two: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import wait as real_wait

    from ode.execution import scheduler
    from ode.execution.orchestrator import Orchestrator
    from ode.executors.opening import parse_url
    from ode.executors.remote import RemoteExecutor
    from ode.registry.sqlite import Registry

    library = load_library(two)
    engine = SimulatedEngine(library, tmp_path, run_programs=False)
    asked: list[bool] = []

    class Held:
        """A task some engine holds: it ends when asked to stop hard."""

        def __init__(self, done: Any) -> None:
            self.done = done

        def cancel(self, hard: bool = False) -> None:
            asked.append(hard)
            if hard:
                self.done(EngineError("dev.a", "stopped hard"))

    class Holding(RemoteExecutor):
        def _deliver(self, key: str, task: StackTask, document: dict[str, Any], line: Any, done: Any) -> Any:
            return Held(done)

    executor = Holding(ExecutorSetup(engine=engine, library=library, state_dir=tmp_path), parse_url("hold://"),
                       remote=False)
    presses = iter([True, True])

    def pressing(futures: Any, **kwargs: Any) -> Any:
        if next(presses, False):  # Ctrl-C, twice, while the scheduler waits
            time.sleep(0.2)
            raise KeyboardInterrupt
        return real_wait(futures, **kwargs)

    monkeypatch.setattr(scheduler, "wait", pressing)
    result = Orchestrator(library, Registry(tmp_path), engine, executor=executor, retries=0).up("dev")
    assert asked == [False, True]  # the first asks gracefully, the second stops hard
    assert result.interrupted and result.stack("a").status == "failed" and "stopped hard" in result.stack("a").error


# -- where a task runs: the commit, the checkout, the pool ------------------------------------------------------


def test_a_task_names_the_commit_and_a_worker_at_another_refuses_it(tmp_path: Path) -> None:
    from dataclasses import replace

    from ode.executors.remote import dispatch_for
    from ode.executors.worker import find_contracts

    library = load_library(SAMPLE)
    setup = ExecutorSetup(engine=SimulatedEngine(library, tmp_path), library=library, state_dir=tmp_path)
    dispatch = dispatch_for(setup, parse_url("dask+local://2"), remote=False)
    head = subprocess.run(["git", "-C", str(SAMPLE), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert (dispatch.repo_path, dispatch.commit) == ("contracts", head.strip())
    task = read_task(task_document(StackTask("up", StackSpec(project="shop", env="dev", context="orders",
                                                             contracts_dir=SAMPLE)), dispatch))
    assert find_contracts(task) == SAMPLE.resolve()
    # A worker whose checkout is elsewhere finds the same folder in it; one at another commit refuses.
    elsewhere = replace(task, contracts="/nowhere/contracts")
    assert find_contracts(elsewhere, root=ROOT) == ROOT / "contracts"
    with pytest.raises(UsageError, match=r"is at [0-9a-f]{12}, the task is for 0000000000ab: check that commit out"):
        find_contracts(replace(task, commit="0000000000ab"))


def test_dask_pools_name_the_stacks_trust_zone(tmp_path: Path) -> None:
    from ode.executors.dask import DaskExecutor

    class Client:
        def subscribe_topic(self, topic: str, handler: Any) -> None:
            pass

    library = load_library(SAMPLE)
    setup = ExecutorSetup(engine=SimulatedEngine(library, tmp_path), library=library, state_dir=tmp_path)
    task = StackTask("up", StackSpec(project="shop", env="pr-7", context="orders", contracts_dir=SAMPLE,
                                     base_env="prod"))
    pools = {}
    for pool in ("env", "account", "blue"):
        executor = DaskExecutor(Client(), setup, parse_url(f"dask+local://1?pool={pool}"), remote=False)
        pools[pool] = executor._resources(task)  # noqa: SLF001
    assert pools == {"env": {"pool:prod": 1}, "account": {"pool:333333333333": 1}, "blue": {"pool:blue": 1}}
