"""The ``ode`` command end to end, as a user types it."""

from __future__ import annotations

import json
from pathlib import Path

from .cli_runner import ode
from .conftest import SAMPLE, context, write_library


def test_validate_sample() -> None:
    result = ode("validate", "--contracts", str(SAMPLE))
    assert result.returncode == 0, result.stderr
    assert "ok: 11 contexts" in result.stdout


def test_validate_json_and_errors_without_traceback(tmp_path: Path) -> None:
    root = write_library(tmp_path, [context("a", consumes=[{"context": "ghost", "interface": "t"}])])
    result = ode("validate", "--contracts", str(root), "--json")
    assert result.returncode == 2  # a contract mistake (the exit-status table)
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert payload["errors"][0]["field"] == "consumes[0].context"
    assert "Traceback" not in result.stderr
    assert "a.yaml:" in result.stderr and "'ghost' does not exist" in result.stderr


def test_unknown_environment_exits_nonzero() -> None:
    result = ode("graph", "--env", "qa", "--contracts", str(SAMPLE))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown environment 'qa' (environments.yaml has: dev, stage, prod)"


def test_graph_formats() -> None:
    data = json.loads(ode("graph", "--env", "dev", "--format", "json", "--contracts", str(SAMPLE)).stdout)
    assert data["env"] == "dev" and data["nodes"] and data["edges"]
    assert ode("graph", "--env", "dev", "--contracts", str(SAMPLE)).stdout.startswith("flowchart LR")
    dot = ode("graph", "--env", "dev", "--format", "dot", "--contracts", str(SAMPLE), "--contexts", "orders")
    assert "storefront" not in dot.stdout and '"orders"' in dot.stdout


def test_schema_is_json_schema() -> None:
    schema = json.loads(ode("schema").stdout)
    assert schema["additionalProperties"] is False
    assert {"context", "owner", "version", "component"} <= set(schema["required"])
    assert "provides" in schema["properties"]


def test_plan_with_the_simulated_engine_shows_each_stacks_resources(tmp_path: Path) -> None:
    done = ode("plan", "--env", "dev", "--engine", "simulated", "--contexts", "orders", "--contracts", str(SAMPLE),
               "--state-dir", str(tmp_path), "--json", env={"NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["simulated"] is True and plan["order"][-1] == "dev.orders"
    orders = next(s for s in plan["stacks"] if s["context"] == "orders")
    assert orders["action"] == "deploy" and orders["changes"]["create"] == len(orders["resources"])
    kinds = {r["type"] for r in orders["resources"]}
    assert {"ode:index:ServerlessApi", "aws:apigatewayv2/api:Api", "aws:dynamodb/table:Table",
            "aws:lambda/function:Function"} <= kinds
    table = next(r for r in orders["resources"] if r["type"] == "aws:dynamodb/table:Table")
    assert table["parent"] == "orders" and table["inputs"]["hashKey"] == "order_id"
