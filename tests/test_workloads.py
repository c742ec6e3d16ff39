"""Teams' own workloads: code directories and images in contracts, the settings AWS accepts, and what the recorded
resources must hold for the first real deploy to work (X-Ray permissions, the listener before the ECS service,
networking of containers, event subscriptions of every kind, bucket names, secrets kept out of every file)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ode.contracts import ContractErrors, load_library
from ode.engines import StackSpec
from ode.engines.simulated import SimulatedEngine, run_simulated, synthesize_outputs

from .cli_runner import ode
from .conftest import SAMPLE, context, write_library

LAMBDA = "aws:lambda/function:Function"


def library_with_code(root: Path) -> Path:
    """A copy of the sample whose payments steps and storefront image come from the team's own directories."""
    contracts = root / "contracts"
    shutil.copytree(SAMPLE, contracts)
    steps = root / "services" / "payments"
    steps.mkdir(parents=True)
    (steps / "steps.py").write_text("def authorize(event, context):\n    return event\n\n"
                                    "def capture(event, context):\n    return event\n")
    web = root / "services" / "storefront"
    web.mkdir()
    (web / "Dockerfile").write_text("FROM public.ecr.aws/docker/library/python:3.12-slim\nCOPY . /app\n"
                                    "USER 1000\nEXPOSE 8080\nCMD [\"python\", \"-m\", \"http.server\", \"8080\"]\n")
    pay = yaml.safe_load((contracts / "payments.yaml").read_text())
    pay["settings"].update(code="../services/payments", handler="steps.handler",
                           steps=["authorize", {"name": "capture", "handler": "steps.capture"}])
    (contracts / "payments.yaml").write_text(yaml.safe_dump(pay, sort_keys=False))
    front = yaml.safe_load((contracts / "storefront.yaml").read_text())
    front["settings"].pop("image", None)
    front["settings"].update(build="../services/storefront", health_check_path="/healthz", architecture="arm64",
                             environment={"LOG_LEVEL": "debug"})
    (contracts / "storefront.yaml").write_text(yaml.safe_dump(front, sort_keys=False))
    return contracts


def plan(contracts: Path, state: Path, env: str = "dev", ok: bool = True) -> dict[str, Any]:
    result = ode("plan", "--env", env, "--contracts", str(contracts), "--state-dir", str(state), "--json",
                 "--engine", "simulated")
    assert (result.returncode == 0) == ok, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def resources(payload: dict[str, Any], context: str) -> list[dict[str, Any]]:
    stack = next(s for s in payload["stacks"] if s["context"] == context)
    return stack["resources"] or []


# -- settings ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "field", "allowed"), [
    ({"runtime": "python3.9"}, "settings.runtime", "'python3.12'"),
    ({"log_retention_days": 42}, "settings.log_retention_days", "365"),
    ({"architecture": "arm"}, "settings.architecture", "'arm64'"),
    ({"batch_size": 100}, "settings.batch_size", "batching_window_s"),
    ({"code": "../nowhere"}, "settings.code", "does not exist"),
    ({"environment": {"AWS_REGION": "x"}}, "settings.environment", "reserved"),
])
def test_validate_names_the_field_and_the_allowed_values(tmp_path: Path, settings: dict[str, Any], field: str,
                                                         allowed: str) -> None:
    root = write_library(tmp_path / "lib", [context("w", "event-worker", {"q": {"kind": "queue", "version": "1.0.0"}},
                                                    settings=settings)])
    result = ode("validate", "--contracts", str(root))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    line = next(ln for ln in result.stderr.splitlines() if field in ln)
    assert "w.yaml" in line and allowed in line, line


def test_a_fifo_queue_limits_the_batch_size_in_validate(tmp_path: Path) -> None:
    worker = context("w", "event-worker", {"q": {"kind": "queue", "version": "1.0.0", "fifo": True}},
                     settings={"batch_size": 50, "batching_window_s": 5})
    result = ode("validate", "--contracts", str(write_library(tmp_path / "lib", [worker])))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "settings.batch_size: 50 is above 10, the most Lambda takes from a FIFO queue: allowed 1..10" in \
        result.stderr


def test_fargate_cpu_and_memory_must_pair_and_the_schema_carries_the_value_sets(tmp_path: Path) -> None:
    from components.kinds import ContainerServiceSettings, FunctionSettings, NetworkSettings

    net = context("net", "network", {"vpc": {"kind": "network", "version": "1.0.0"}})
    web = context("web", "container-service", {"api": {"kind": "http-api", "version": "1.0.0"}},
                  consumes=[{"context": "net", "interface": "vpc", "access": "attach"}],
                  settings={"cpu": 256, "memory_mb": 4096}, overrides={"prod": {"cpu": 300}})
    with pytest.raises(ContractErrors) as caught:
        load_library(write_library(tmp_path / "lib", [net, web]))
    found = [str(e) for e in caught.value.errors]
    assert any("settings.memory_mb" in e and "512, 1024, 2048" in e for e in found), found
    assert any("overrides.prod.cpu" in e and "16384" in e for e in found), found
    schema = FunctionSettings.model_json_schema()["properties"]
    assert "python3.12" in schema["runtime"]["enum"] and "python3.9" not in schema["runtime"]["enum"]
    assert 3653 in schema["log_retention_days"]["enum"] and 42 not in schema["log_retention_days"]["enum"]
    assert set(ContainerServiceSettings.model_json_schema()["properties"]["cpu"]["enum"]) >= {256, 4096}
    assert "ecr.dkr" in NetworkSettings.model_json_schema()["properties"]["endpoints"]["items"]["enum"]


# -- the sample as recorded ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("code")
    contracts = library_with_code(root)
    return contracts, plan(contracts, root / "state")


def test_plan_shows_each_functions_code_directory_and_digest(dev_plan: tuple[Path, dict[str, Any]]) -> None:
    contracts, payload = dev_plan
    text = json.dumps(payload)
    assert " object at 0x" not in text  # no Python repr of an archive, an asset or anything else
    orders = [r for r in resources(payload, "orders") if r["type"] == LAMBDA]
    assert orders and all(r["inputs"]["code"]["directory"] == str(contracts / "services/orders/src")
                          and len(r["inputs"]["code"]["digest"]) == 16 for r in orders)
    assert {r["inputs"]["handler"] for r in orders} == {"app.handler"}
    assert {tuple(r["inputs"]["architectures"]) for r in orders} == {("arm64",)}
    env = orders[0]["inputs"]["environment"]["variables"]
    assert env["LOG_LEVEL"] == "info" and "CATALOG_PRODUCTS_TABLE_NAME" in env
    pay = {r["name"]: r for r in resources(payload, "payments") if r["type"] == LAMBDA}
    assert {r["inputs"]["handler"] for r in pay.values()} == {"steps.authorize", "steps.capture", "index.publish"}
    # the workflow's events go out from the platform's own publisher, whatever code its steps run
    assert "ode_events.py" in pay["payments-emit"]["inputs"]["code"]["archive"]
    builtin = [r for r in resources(payload, "notifications") if r["type"] == LAMBDA]
    assert builtin and "index.py" in builtin[0]["inputs"]["code"]["archive"]


def test_every_traced_function_may_send_its_traces(dev_plan: tuple[Path, dict[str, Any]]) -> None:
    _, payload = dev_plan
    checked = 0
    for stack in payload["stacks"]:
        res = stack["resources"] or []
        by_name = {r["name"]: r for r in res}
        for fn in (r for r in res if r["type"] == LAMBDA):
            assert fn["inputs"]["tracingConfig"]["mode"] == "Active"
            role = next(d for d in fn["dependencies"] if by_name[d]["type"] == "aws:iam/role:Role")
            policies = [r for r in res if r["type"] == "aws:iam/rolePolicy:RolePolicy"
                        and role in r["dependencies"]]
            actions = {a for p in policies for s in json.loads(p["inputs"]["policy"])["Statement"]
                       for a in s["Action"]}
            assert {"xray:PutTraceSegments", "xray:PutTelemetryRecords"} <= actions, fn["name"]
            checked += 1
    assert checked >= 5


def test_the_ecs_service_waits_for_the_listener(dev_plan: tuple[Path, dict[str, Any]]) -> None:
    _, payload = dev_plan
    res = resources(payload, "storefront")
    service = next(r for r in res if r["type"] == "aws:ecs/service:Service")
    listener = next(r for r in res if r["type"] == "aws:lb/listener:Listener")
    assert listener["name"] in service["dependencies"]
    assert "storefront-targets" in service["dependencies"]  # from its inputs


def test_a_built_image_is_pushed_to_the_contexts_repository_and_run(dev_plan: tuple[Path, dict[str, Any]]) -> None:
    contracts, payload = dev_plan
    res = {r["name"]: r for r in resources(payload, "storefront")}
    image = next(r for r in res.values() if r["type"] == "docker-build:index:Image")
    assert image["inputs"]["context"]["location"] == str(contracts.parent / "services/storefront")
    assert image["inputs"]["push"] is True and image["inputs"]["platforms"] == ["linux/arm64"]
    assert "[secret]" in json.dumps(image["inputs"]["registries"])  # the registry's token is never shown
    assert "mock-ecr-token" not in json.dumps(payload)
    assert "storefront-repo" in image["dependencies"]
    task = next(r for r in res.values() if r["type"] == "aws:ecs/taskDefinition:TaskDefinition")
    (container,) = json.loads(task["inputs"]["containerDefinitions"])
    assert "@sha256:" in container["image"] and ".dkr.ecr." in container["image"]
    assert container["portMappings"] == [{"containerPort": 8080, "protocol": "tcp"}]
    assert {"name": "LOG_LEVEL", "value": "debug"} in container["environment"]
    assert container["readonlyRootFilesystem"] is True
    assert task["inputs"]["runtimePlatform"]["cpuArchitecture"] == "ARM64"
    assert [m["containerPath"] for m in container["mountPoints"]] == ["/tmp"]
    assert {v["name"] for v in task["inputs"]["volumes"]} == {m["sourceVolume"] for m in container["mountPoints"]}
    group = next(r for r in res.values() if r["type"] == "aws:lb/targetGroup:TargetGroup")
    assert group["inputs"]["healthCheck"]["path"] == "/healthz" and group["inputs"]["port"] == 8080


def test_containers_reach_ecr_and_their_consumers_through_the_network(dev_plan: tuple[Path, dict[str, Any]]) -> None:
    _, payload = dev_plan
    net = resources(payload, "network")
    services = {r["inputs"]["serviceName"].split(".", 3)[-1] for r in net
                if r["type"] == "aws:ec2/vpcEndpoint:VpcEndpoint"}
    assert {"ecr.api", "ecr.dkr", "logs", "s3"} <= services
    workloads = next(r for r in net if r["name"] == "network-workloads-sg")
    assert "egress" not in workloads["inputs"] and "ingress" not in workloads["inputs"]  # rules stand alone
    gateways = {r["inputs"]["prefixListId"] for r in net if r["type"] == EGRESS
                and r["inputs"]["securityGroupId"] == f"sg-{workloads_id(payload)}" and "prefixListId" in r["inputs"]}
    assert len(gateways) == 2  # S3 and DynamoDB gateways, each a prefix list of AWS's
    text = json.dumps(resources(payload, "storefront"))
    assert "10.0.0.0/8" not in text and "10.20.0.0/16" in text  # the network's own CIDR, exported
    task_egress = {r["name"]: r["inputs"] for r in resources(payload, "storefront") if r["type"] == EGRESS}
    assert task_egress["storefront-task-to-endpoints"]["cidrIpv4"] == "10.20.0.0/16"
    assert task_egress["storefront-task-to-s3"]["prefixListId"].startswith("pl-")


EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def workloads_id(payload: dict[str, Any], network: str = "network") -> str:
    """The mock id of the network's workloads group (what its consumers are given), without its ``sg-``."""
    rule = next(r for r in resources(payload, network) if r["name"] == f"{network}-workloads-to-endpoints")
    return str(rule["inputs"]["securityGroupId"]).removeprefix("sg-")


def test_consumers_of_a_container_api_get_no_meaningless_iam_grant(tmp_path: Path) -> None:
    net = context("net", "network", {"vpc": {"kind": "network", "version": "1.0.0"}}, settings={"nat": "one"})
    web = context("web", "container-service", {"api": {"kind": "http-api", "version": "1.0.0"}},
                  consumes=[{"context": "net", "interface": "vpc", "access": "attach"}])
    caller = context("caller", "serverless-api", {"t": {"kind": "table", "version": "1.0.0"}},
                     consumes=[{"context": "web", "interface": "api"},
                               {"context": "net", "interface": "vpc", "access": "attach"}])
    root = write_library(tmp_path / "lib", [net, web, caller])
    payload = plan(root, tmp_path / "state")
    text = json.dumps(resources(payload, "caller"))
    assert "execute-api:Invoke" not in text
    fn = next(r for r in resources(payload, "caller") if r["type"] == LAMBDA)
    assert fn["inputs"]["environment"]["variables"]["WEB_API_URL"].startswith("http://internal-")
    assert fn["inputs"]["vpcConfig"]["securityGroupIds"]  # in the group the load balancer admits
    admits = next(r for r in resources(payload, "web") if r["name"] == "web-alb-from-workloads")["inputs"]
    assert admits["referencedSecurityGroupId"] == fn["inputs"]["vpcConfig"]["securityGroupIds"][0]
    detached = context("detached", "serverless-api", {"t2": {"kind": "table", "version": "1.0.0"}},
                       consumes=[{"context": "web", "interface": "api"}])
    root = write_library(tmp_path / "lib2", [net, web, detached])
    payload = plan(root, tmp_path / "state2", ok=False)
    error = contract_error(payload, "detached.yaml")
    assert "consumes[0]" in error and "network" in error, error


def test_every_kind_that_runs_code_acts_on_its_subscriptions(dev_plan: tuple[Path, dict[str, Any]]) -> None:
    _, payload = dev_plan
    pay = resources(payload, "payments")
    rule = next(r for r in pay if r["type"] == "aws:cloudwatch/eventRule:EventRule")
    assert json.loads(rule["inputs"]["eventPattern"]) == {"source": ["orders"], "detail-type": ["OrderPlaced"]}
    target = next(r for r in pay if r["type"] == "aws:cloudwatch/eventTarget:EventTarget")
    machine = next(r for r in pay if r["type"] == "aws:sfn/stateMachine:StateMachine")
    assert machine["name"] in target["dependencies"] and target["inputs"]["roleArn"]
    orders = resources(payload, "orders")
    rules = [r for r in orders if r["type"] == "aws:cloudwatch/eventRule:EventRule"]
    assert {json.loads(r["inputs"]["eventPattern"])["detail-type"][0] for r in rules} == {"PaymentCaptured",
                                                                                           "OrderShipped"}
    # an API's events come through a queue of its own that Lambda polls, and the queue admits exactly those rules
    targets = [r for r in orders if r["type"] == "aws:cloudwatch/eventTarget:EventTarget"]
    inbox = next(r for r in orders if r["type"] == "aws:sqs/queue:Queue" and r["name"] == "orders-events")
    assert len(targets) == 2 and all(t["inputs"]["arn"].endswith(":" + inbox["inputs"]["name"]) for t in targets)
    policy = json.loads(next(r for r in orders if r["type"] == "aws:sqs/queuePolicy:QueuePolicy")["inputs"]["policy"])
    assert len(policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]) == 2
    source = next(r for r in orders if r["type"] == "aws:lambda/eventSourceMapping:EventSourceMapping")
    assert source["inputs"]["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert not [r for r in orders if r["type"] == "aws:lambda/permission:Permission"
                and r["inputs"]["principal"] == "events.amazonaws.com"]


def upstream_of(library: Any, context: str, env: str) -> dict[str, Any]:
    """The producers' outputs ``context`` needs, as the simulated engine synthesizes them."""
    upstream: dict[str, Any] = {}
    for link in library.links(context):
        if link.deploy:
            producer = StackSpec(project=library.project, env=env, context=link.producer, contracts_dir=SAMPLE)
            upstream.setdefault(link.producer, {})[link.interface] = synthesize_outputs(library, producer)[
                link.interface]
    return upstream


def test_bucket_names_are_unique_per_account_and_agree_with_the_simulation(tmp_path: Path) -> None:
    library = load_library(SAMPLE)
    for env in ("dev", "prod"):
        spec = StackSpec(project=library.project, env=env, context="catalog", contracts_dir=SAMPLE,
                         upstream=upstream_of(library, "catalog", env))
        ran = run_simulated(spec, library).outputs["product-images"]["name"]
        assert library.environment(env).account in ran and len(ran) <= 63
        assert synthesize_outputs(library, spec)["product-images"]["name"] == ran


# -- fingerprints ------------------------------------------------------------------------------------------------


def test_a_changed_handler_file_redeploys_exactly_its_context(tmp_path: Path) -> None:
    contracts = library_with_code(tmp_path)
    state = tmp_path / "state"
    up = ode("up", "--env", "dev", "--contracts", str(contracts), "--state-dir", str(state), "--engine",
             "simulated", "--json")
    assert up.returncode == 0, up.stderr
    assert all(s["action"] == "unchanged" for s in plan(contracts, state)["stacks"])
    (tmp_path / "services" / "payments" / "steps.py").write_text("def authorize(e, c):\n    return {}\n"
                                                                 "def capture(e, c):\n    return {}\n")
    stacks = plan(contracts, state)["stacks"]
    deploying = {s["context"]: s["reason"] for s in stacks if s["action"] == "deploy"}
    assert list(deploying) == ["payments"], deploying
    assert "service code" in deploying["payments"]
    (tmp_path / "services" / "storefront" / "index.html").write_text("<h1>new</h1>")
    deploying = {s["context"] for s in plan(contracts, state)["stacks"] if s["action"] == "deploy"}
    assert deploying == {"payments", "storefront"}


def test_affected_maps_a_code_directory_to_its_context(tmp_path: Path) -> None:
    from ode.authoring.affected import affected

    contracts = library_with_code(tmp_path)
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    (contracts / "services" / "orders" / "src" / "app.py").write_text("def handler(e, c):\n    return {}\n")
    result = affected(load_library(contracts), "HEAD", "dev")
    assert set(result.changed) == {"orders"}
    assert "contracts/services/orders/src/app.py" in result.changed["orders"][0]


# -- secrets -----------------------------------------------------------------------------------------------------


def test_upstream_secrets_stay_secret_in_the_program_and_out_of_every_file(tmp_path: Path) -> None:
    library = load_library(SAMPLE)
    secret_value = "arn:aws:secretsmanager:us-east-1:111111111111:secret:TOPSECRET-value"
    upstream = upstream_of(library, "payments", "dev")
    upstream["identity"]["psp-credentials"]["arn"] = secret_value
    spec = StackSpec(project="shop", env="dev", context="payments", contracts_dir=SAMPLE, upstream=upstream,
                     secret_upstream=frozenset({("identity", "psp-credentials", "arn")}))
    state = tmp_path / "state"
    engine = SimulatedEngine(library, state)
    result = engine.up(spec)
    fns = [r for r in result.resources if r.type == LAMBDA]
    assert fns and all(r.inputs["environment"] == "[secret]" or
                       r.inputs["environment"]["variables"]["IDENTITY_PSP_CREDENTIALS_ARN"] == "[secret]"
                       for r in fns)
    assert secret_value not in json.dumps([r.to_dict() for r in result.resources])
    for path in state.rglob("*"):
        if path.is_file():
            assert "TOPSECRET" not in path.read_text(errors="replace"), path


def test_the_local_target_sets_each_service_endpoint_once(monkeypatch: pytest.MonkeyPatch) -> None:
    library = load_library(SAMPLE)
    monkeypatch.setenv("ODE_AWS_ENDPOINT", "http://127.0.0.1:5999")
    spec = StackSpec(project="shop", env="dev", context="shared-bus", contracts_dir=SAMPLE,
                     config={"ode:target": "local"}, upstream=upstream_of(library, "shared-bus", "dev"))
    run = run_simulated(spec, library)
    provider = next(r for r in run.resources if r.type == "pulumi:providers:aws")
    endpoints = json.loads(provider.inputs["endpoints"]) if isinstance(provider.inputs["endpoints"], str) else \
        provider.inputs["endpoints"]
    names = set(endpoints[0])
    assert {"events", "logs"} <= names and not names & {"cloudwatchevents", "cloudwatchlogs"}
    assert set(endpoints[0].values()) == {"http://127.0.0.1:5999"}


def test_the_root_program_refuses_a_project_name_that_environments_yaml_does_not_have() -> None:
    from ode.engines.simulated import record
    from ode.program import main

    config = {"ode:env": "dev", "ode:context": "shared-bus", "ode:contractsDir": str(SAMPLE)}
    with pytest.raises(ValueError, match="Pulumi.yaml names project 'other'.*project: 'shop'"):
        record(main, project="other", stack="dev.shared-bus", config=config)
    assert record(main, project="shop", stack="dev.shared-bus", config=config).outputs["bus"]["name"]


# -- network paths: public ingress, NAT egress, replacements -------------------------------------------------


def net_and_service(net_settings: dict[str, Any], web_settings: dict[str, Any],
                    web_consumes: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    net = context("net", "network", {"vpc": {"kind": "network", "version": "1.0.0"}}, settings=net_settings)
    web = context("web", "container-service", {"api": {"kind": "http-api", "version": "1.0.0"}},
                  consumes=[{"context": "net", "interface": "vpc", "access": "attach"}, *(web_consumes or [])],
                  settings=web_settings)
    return [net, web]


def stack_error(payload: dict[str, Any], context_name: str) -> str:
    return str(next(s for s in payload["stacks"] if s["context"] == context_name)["error"])


def test_an_internal_service_stays_in_the_private_subnets_and_admits_the_network(tmp_path: Path) -> None:
    ecr = "111111111111.dkr.ecr.us-east-1.amazonaws.com/web:1.0"
    payload = plan(write_library(tmp_path / "lib", net_and_service({}, {"image": ecr})), tmp_path / "state")
    web = {r["name"]: r for r in resources(payload, "web")}
    balancer = next(r for r in web.values() if r["type"] == "aws:lb/loadBalancer:LoadBalancer")
    assert balancer["inputs"]["internal"] is True and "name" not in balancer["inputs"]
    assert not [r for r in web.values() if r["type"] == "aws:cloudfront/distribution:Distribution"]
    workloads = f"sg-{workloads_id(payload, 'net')}"
    assert web["web-alb-from-workloads"]["inputs"]["referencedSecurityGroupId"] == workloads
    assert web["web-workloads-to-alb"]["inputs"]["securityGroupId"] == workloads
    # an image in the region's private ECR comes through the endpoints: no way to the internet is opened
    assert "web-task-to-internet" not in web
    assert not [r for r in resources(payload, "net") if r["type"] in ("aws:ec2/internetGateway:InternetGateway",
                                                "aws:ec2/natGateway:NatGateway")]


@pytest.mark.parametrize(("net_settings", "web_settings", "consumes", "field", "says"), [
    ({}, {"public": True, "image": "111111111111.dkr.ecr.us-east-1.amazonaws.com/web:1"}, [], "settings.public",
     "public: true needs public subnets, and network net has none"),
    ({}, {}, [], "settings", "image public.ecr.aws/nginx/nginx-unprivileged:stable is outside the context's own ECR"),
    ({"public_subnets": True}, {"image": "docker.io/library/nginx:1.27"}, [], "settings.image",
     "image docker.io/library/nginx:1.27 is outside the context's own ECR (111111111111, us-east-1)"),
    ({}, {"image": "111111111111.dkr.ecr.us-east-1.amazonaws.com/web:1"},
     [{"context": "api", "interface": "rest", "access": "invoke"}], "consumes[1]",
     "api/rest is an API Gateway HTTP API, which is only reachable over the internet"),
])
def test_what_a_network_cannot_carry_is_refused_naming_the_setting(tmp_path: Path, net_settings: dict[str, Any],
                                                                   web_settings: dict[str, Any],
                                                                   consumes: list[dict[str, Any]], field: str,
                                                                   says: str) -> None:
    api = context("api", "serverless-api", {"rest": {"kind": "http-api", "version": "1.0.0", "routes": ["GET /x"]}})
    root = write_library(tmp_path / "lib", [*net_and_service(net_settings, web_settings, consumes), api])
    payload = plan(root, tmp_path / "state", ok=False)
    # refused before any stack is planned, at the contract: the file, the field, and what to set on which context
    (error,) = [e for e in payload["errors"] if e["file"].endswith("web.yaml")]
    assert error["field"] == field and says in error["message"], error
    assert "nat" in error["message"] or "public_subnets" in error["message"]
    assert not payload.get("stacks")


def contract_error(payload: dict[str, Any], file_name: str) -> str:
    """The contract errors of one file of a refused plan, as one text."""
    return "; ".join(f"{e['field']}: {e['message']}" for e in payload["errors"] if e["file"].endswith(file_name))


def test_with_nat_a_public_image_and_a_public_api_are_reached_through_it(tmp_path: Path) -> None:
    api = context("api", "serverless-api", {"rest": {"kind": "http-api", "version": "1.0.0",
                                                     "routes": ["GET /items/{id}"]}})
    # the stock image from ECR Public is pulled through the NAT gateway
    payload = plan(write_library(tmp_path / "lib", [*net_and_service({"nat": "one"}, {}), api]),
                   tmp_path / "state")
    web = {r["name"]: r for r in resources(payload, "web")}
    assert web["web-task-to-internet"]["inputs"]["cidrIpv4"] == "0.0.0.0/0"
    # the team's own image (in the account's ECR: it can sign with SigV4) calls the AWS_IAM API through it too
    ecr = "111111111111.dkr.ecr.us-east-1.amazonaws.com/web:1.0"
    root = write_library(tmp_path / "lib2", [*net_and_service({"nat": "one"}, {"image": ecr}, [
        {"context": "api", "interface": "rest", "access": "invoke"}]), api])
    payload = plan(root, tmp_path / "state2")
    web = {r["name"]: r for r in resources(payload, "web")}
    assert web["web-task-to-internet"]["inputs"]["cidrIpv4"] == "0.0.0.0/0"
    statements = json.loads(web["web-task-policy"]["inputs"]["policy"])["Statement"]
    (invoke,) = [s for s in statements if s["Action"] == ["execute-api:Invoke"]]
    assert len(invoke["Resource"]) == 1 and invoke["Resource"][0].endswith("/*/GET/items/*")


def test_a_stock_image_calling_an_iam_api_is_refused_by_the_gate(tmp_path: Path) -> None:
    api = context("api", "serverless-api", {"rest": {"kind": "http-api", "version": "1.0.0",
                                                     "routes": ["GET /items/{id}"]}})
    root = write_library(tmp_path / "lib", [*net_and_service({"nat": "one"}, {}, [
        {"context": "api", "interface": "rest", "access": "invoke"}]), api])
    error = stack_error(plan(root, tmp_path / "state", ok=False), "web")
    assert "contract-reachable" in error and "web -> api/rest" in error, error


def test_a_container_port_change_replaces_the_target_group_without_a_name_collision(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    shutil.copytree(SAMPLE, contracts)
    state = tmp_path / "state"
    up = ode("up", "--env", "dev", "--contexts", "storefront", "--contracts", str(contracts), "--state-dir",
             str(state), "--engine", "simulated")
    assert up.returncode == 0, up.stderr
    front = contracts / "storefront.yaml"
    front.write_text(front.read_text().replace("container_port: 8080", "container_port: 9090"))
    dockerfile = contracts / "services" / "storefront" / "Dockerfile"  # the image listens where the contract says
    dockerfile.write_text(dockerfile.read_text().replace("8080", "9090"))
    result = ode("plan", "--env", "dev", "--contexts", "storefront", "--diff", "--json", "--contracts",
                 str(contracts), "--state-dir", str(state), "--engine", "simulated")
    assert result.returncode == 0, result.stderr
    changed = {r["name"]: r for r in resources(json.loads(result.stdout), "storefront") if r["op"] != "same"}
    group = changed["storefront-targets"]
    assert group["op"] == "replace" and [(d["path"], d["old"], d["new"]) for d in group["diff"]] == [
        ("port", 8080, 9090)]
    # no fixed name: the provider names the new group, which exists beside the old one until nothing uses it
    assert "name" not in group["inputs"] and "namePrefix" not in group["inputs"]
    listener, service = changed["storefront-http"], changed["storefront-service"]
    assert listener["op"] == "update" and [d["path"] for d in listener["diff"]] == [
        "defaultActions[0].targetGroupArn"]
    assert service["op"] == "update" and "name" not in service["inputs"]
    assert {d["path"] for d in service["diff"]} == {"loadBalancers[0].containerPort",
                                                    "loadBalancers[0].targetGroupArn"}
    assert changed["storefront-task-from-alb"]["op"] == "update"  # the tasks admit the new port in place


def test_a_function_in_the_network_calling_a_public_api_gets_its_own_way_out(tmp_path: Path) -> None:
    net = context("net", "network", {"vpc": {"kind": "network", "version": "1.0.0"}}, settings={"nat": "per-az"})
    api = context("api", "serverless-api", {"rest": {"kind": "http-api", "version": "1.0.0", "routes": ["POST /x"]}})
    caller = context("caller", "serverless-api", {"t": {"kind": "table", "version": "1.0.0"}},
                     consumes=[{"context": "api", "interface": "rest"},
                               {"context": "net", "interface": "vpc", "access": "attach"}])
    payload = plan(write_library(tmp_path / "lib", [net, api, caller]), tmp_path / "state")
    made = {r["name"]: r for r in resources(payload, "caller")}
    fn = next(r for r in made.values() if r["type"] == LAMBDA)
    workloads, own = fn["inputs"]["vpcConfig"]["securityGroupIds"]
    assert workloads == f"sg-{workloads_id(payload, 'net')}"
    (out,) = [r["inputs"] for r in made.values() if r["type"] == EGRESS]
    assert (out["securityGroupId"], out["cidrIpv4"], out["fromPort"]) == (own, "0.0.0.0/0", 443)
    assert "egress-sg" not in json.dumps(resources(payload, "api"))  # the producer, outside the VPC, needs none
    net["settings"] = {}
    payload = plan(write_library(tmp_path / "lib2", [net, api, caller]), tmp_path / "state2", ok=False)
    error = contract_error(payload, "caller.yaml")
    assert "consumes[0]" in error and "no NAT (nat: none)" in error, error


def test_a_public_service_is_called_at_its_https_address_without_iam(tmp_path: Path) -> None:
    ecr = "111111111111.dkr.ecr.us-east-1.amazonaws.com/web:1.0"
    caller = context("caller", "serverless-api", {"t": {"kind": "table", "version": "1.0.0"}},
                     consumes=[{"context": "web", "interface": "api"},
                               {"context": "net", "interface": "vpc", "access": "attach"}])
    libs = [*net_and_service({"nat": "one"}, {"image": ecr, "public": True}), caller]
    payload = plan(write_library(tmp_path / "lib", libs), tmp_path / "state")
    fn = next(r for r in resources(payload, "caller") if r["type"] == LAMBDA)
    assert re.fullmatch(r"https://d[0-9a-f]+\.cloudfront\.net", fn["inputs"]["environment"]["variables"]["WEB_API_URL"])
    assert "execute-api:Invoke" not in json.dumps(resources(payload, "caller"))  # CloudFront checks no IAM
    assert len(fn["inputs"]["vpcConfig"]["securityGroupIds"]) == 2  # its way out through NAT
    web = {r["name"]: r for r in resources(payload, "web")}
    assert "web-workloads-to-alb" not in web and "web-alb-from-workloads" not in web  # nothing inside reaches it
