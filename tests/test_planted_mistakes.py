"""Plausible author mistakes, planted one at a time into a copy of the sample library (contracts and settings only),
each refused by ``ode validate`` or ``ode check`` with the setting or the rule named; and the unchanged sample
passing both in every environment.

The figure of the gate is ``len(MISTAKES)`` planted, every one caught (a test per mistake).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ode.clock import FrozenClock
from ode.contracts import ContractErrors, load_library
from ode.policy.environment import check_environment

from .conftest import SAMPLE

#: AWS's documented example access key id, assembled here so that no key-shaped string is committed.
PLANTED_KEY = "AKIA" + "IOSFODNN7EXAMPLE"

Edit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Mistake:
    """A mistake: the edits that plant it (file -> change), and what its refusal must name."""

    name: str
    edits: dict[str, Edit]
    names: tuple[str, ...]
    #: For a refusal by ``ode check``: the rule, the environment, the contexts to check, and ode's date.
    rule: str | None = None
    env: str = "dev"
    contexts: tuple[str, ...] | None = None
    today: datetime | None = None


def settings(**values: Any) -> Edit:
    return lambda doc: doc.setdefault("settings", {}).update(values)


def no_nat(doc: dict[str, Any]) -> None:
    """A network without NAT in every environment."""
    doc.setdefault("settings", {})["nat"] = "none"
    for override in doc.get("overrides", {}).values():
        override.pop("nat", None)


def chain(*edits: Edit) -> Edit:
    def apply(doc: dict[str, Any]) -> None:
        for edit in edits:
            edit(doc)
    return apply


def drop(key: str) -> Edit:
    return lambda doc: doc.get("settings", {}).pop(key, None)


def fifo_work_queue(doc: dict[str, Any]) -> None:
    doc["provides"]["shipments-queue"]["fifo"] = True
    doc.setdefault("settings", {})["batching_window_s"] = 5


def consume(entry: dict[str, Any]) -> Edit:
    return lambda doc: doc.setdefault("consumes", []).append(entry)


MISTAKES = [
    Mistake("an image from Docker Hub on a network without NAT",
            {"storefront": chain(drop("build"), settings(image="docker.io/library/nginx:1.27")), "network": no_nat},
            ("settings.image", "outside the context's own ECR")),
    Mistake("an image in another region's ECR on a network without NAT",
            {"storefront": chain(drop("build"), settings(image="111111111111.dkr.ecr.eu-west-1.amazonaws.com/web:1")),
             "network": no_nat}, ("settings.image", "outside the context's own ECR")),
    Mistake("a network without the ECR and logs endpoints, and no NAT",
            {"network": chain(no_nat, settings(endpoints=["s3", "dynamodb", "sqs", "events", "secretsmanager"]))},
            ("consumes[0]", "ecr.api", "logs")),
    Mistake("a public service on a network without public subnets",
            {"network": chain(no_nat, settings(public_subnets=False))}, ("settings.public", "public subnets")),
    Mistake("a container port the image does not expose", {"storefront": settings(container_port=9090)},
            ("settings.container_port", "9090 is not a port the image exposes")),
    Mistake("a FIFO work queue with a batching window", {"fulfilment": fifo_work_queue},
            ("settings.batching_window_s", "batching window on a FIFO queue")),
    Mistake("a project name with an underscore", {"environments": lambda d: d.update(project="my_shop")},
            ("project", "S3 bucket names")),
    Mistake("a project name with a dot", {"environments": lambda d: d.update(project="my.shop")},
            ("project", "Lambda function names")),
    Mistake("a project named internal", {"environments": lambda d: d.update(project="internal")},
            ("project", "never start with 'internal-'")),
    Mistake("reserved concurrency beyond the unreserved minimum",
            {"catalog": lambda d: d["overrides"]["prod"].update(reserved_concurrency=950)},
            ("overrides.prod.reserved_concurrency", "reserve 950 concurrent executions")),
    Mistake("reserved concurrency counted per step of a workflow", {"payments": settings(reserved_concurrency=460)},
            ("settings.reserved_concurrency", "reserve 920 concurrent executions")),
    Mistake("a variable Lambda reserves", {"orders": lambda d: d["settings"]["environment"].update(_HANDLER="x.y")},
            ("settings.environment._HANDLER", "reserved by Lambda")),
    Mistake("a variable AWS reserves", {"orders": lambda d: d["settings"]["environment"].update(AWS_REGION="x")},
            ("settings.environment", "AWS_REGION")),
    Mistake("a one-letter variable name", {"orders": lambda d: d["settings"]["environment"].update(X="1")},
            ("settings.environment.X", "not a name Lambda accepts")),
    Mistake("variables beyond 4 KB", {"orders": lambda d: d["settings"]["environment"].update(
        BANNER="a" * 3000, FOOTER="b" * 1500)}, ("settings.environment", "more than Lambda's 4096")),
    Mistake("an HTTP API consumed from the network without NAT", {"network": no_nat},
            ("consumes[1]", "only reachable over the internet")),
    Mistake("a table consumed from the network without its endpoint or NAT",
            {"network": chain(no_nat, settings(endpoints=["s3", "sqs", "events", "secretsmanager", "logs",
                                                          "ecr.api", "ecr.dkr"])),
             "payments": consume({"context": "identity", "interface": "customers-table", "access": "read"})},
            ("consumes[4]", "dynamodb")),
    Mistake("an alarm topic in another region", {"catalog": settings(
        alarm_topic_arn="arn:aws:sns:eu-west-1:111111111111:alerts")}, ("settings.alarm_topic_arn", "region")),
    Mistake("a runtime AWS deprecated long ago", {"orders": settings(runtime="python3.9")}, ("settings.runtime",)),
    Mistake("memory beyond Lambda's limit", {"catalog": settings(memory_mb=20000)}, ("settings.memory_mb",)),
    Mistake("a batch beyond 10 without a batching window", {"fulfilment": settings(batch_size=50)},
            ("settings.batch_size",)),
    Mistake("a Fargate memory that does not fit its cpu", {"storefront": settings(cpu=256, memory_mb=4096)},
            ("settings.memory_mb",)),
    Mistake("a log retention CloudWatch does not offer", {"catalog": settings(log_retention_days=10)},
            ("settings.log_retention_days",)),
    Mistake("more zones than the network's cidr holds", {"network": settings(cidr="10.20.0.0/24", az_count=6)},
            ("az_count",)),
    Mistake("a health check path without its slash", {"storefront": settings(health_check_path="healthz")},
            ("settings.health_check_path",)),
    Mistake("a runtime past its block date", {"orders": settings(runtime="python3.11")},
            ("no longer accepts new functions",), rule="aws-value-constraints", contexts=("orders",),
            today=datetime(2027, 8, 2, tzinfo=UTC)),
    Mistake("a credential in a function's variables",
            {"orders": lambda d: d["settings"]["environment"].update(PSP_KEY=PLANTED_KEY)},
            ("settings.environment.PSP_KEY",), rule="no-plaintext-secrets", contexts=("orders",)),
]


def plant(root: Path, edits: dict[str, Edit]) -> Path:
    library = root / "contracts"
    shutil.copytree(SAMPLE, library)
    for name, edit in edits.items():
        path = library / f"{name}.yaml"
        doc = yaml.safe_load(path.read_text())
        edit(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return library


def refusals(library: Path, mistake: Mistake) -> tuple[str, list[str]]:
    """("validate", errors) or ("check", blocking violations), each one line naming field or rule."""
    try:
        loaded = load_library(library)
    except ContractErrors as exc:
        return "validate", [str(e) for e in exc.errors]
    clock = FrozenClock(mistake.today) if mistake.today else FrozenClock(datetime.now(UTC))
    report = check_environment(loaded, mistake.env, mistake.contexts, clock=clock).report
    return "check", [f"{v.rule}: {v.message} ({v.file}:{v.line})" for v in report.violations if v.blocking] + \
        [f"not checked: {e}" for e in report.errors.values()]


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_a_planted_mistake_is_refused_naming_the_setting_or_rule(tmp_path: Path, mistake: Mistake) -> None:
    stage, found = refusals(plant(tmp_path, mistake.edits), mistake)
    assert found, f"{mistake.name}: not refused"
    assert stage == ("check" if mistake.rule else "validate"), (stage, found)
    named = [line for line in found if all(n in line for n in mistake.names)
             and (mistake.rule is None or line.startswith(f"{mistake.rule}:"))]
    assert named, f"{mistake.name}: refused, but nothing names {mistake.names}: {found}"


def test_there_are_at_least_25_mistakes() -> None:
    assert len(MISTAKES) >= 25
    assert len({m.name for m in MISTAKES}) == len(MISTAKES)


@pytest.mark.parametrize("env", ["dev", "stage", "prod"])
def test_the_unchanged_sample_passes_validate_and_check(env: str) -> None:
    library = load_library(SAMPLE, env)
    report = check_environment(library, env).report
    assert not report.errors, report.errors
    assert report.ok, [f"{v.rule}: {v.stack}: {v.message}" for v in report.violations if v.blocking]
