"""`affected`: exactly the changed contexts and their consumers, in a temporary git repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ode import load_library
from ode.authoring.affected import affected, kinds_of_code
from ode.errors import UsageError

from .conftest import SAMPLE

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(SAMPLE, tmp_path / "contracts")
    (tmp_path / "components" / "handlers" / "serverless_api").mkdir(parents=True)
    (tmp_path / "components" / "serverless_api.py").write_text("# api\n")
    (tmp_path / "components" / "network.py").write_text("# network\n")
    (tmp_path / "components" / "common.py").write_text("# shared\n")
    (tmp_path / "components" / "handlers" / "serverless_api" / "app.py").write_text("# handler\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-qm", "base")
    return tmp_path


def run(repo: Path, env: str = "dev") -> list[str]:
    return affected(load_library(repo / "contracts"), "main", env).contexts


def test_nothing_changed(repo: Path) -> None:
    assert run(repo) == []


def test_comment_only_change_is_no_change(repo: Path) -> None:
    path = repo / "contracts" / "catalog.yaml"
    path.write_text("# a comment\n" + path.read_text())
    assert run(repo) == []


def test_changed_contract_and_its_consumers(repo: Path) -> None:
    path = repo / "contracts" / "catalog.yaml"
    path.write_text(path.read_text().replace("memory_mb: 256", "memory_mb: 384"))
    result = affected(load_library(repo / "contracts"), "main", "dev")
    # catalog changed; orders consumes its table, storefront its API and orders', fulfilment orders' table.
    assert result.contexts == ["catalog", "orders", "fulfilment", "storefront"]
    assert list(result.changed) == ["catalog"]
    assert result.consumers == {"orders": "catalog", "storefront": "catalog", "fulfilment": "orders"}
    # Event subscribers are not deploy consumers: notifications subscribes to orders' events only.
    assert "notifications" not in result.contexts


def test_leaf_change_stays_alone(repo: Path) -> None:
    path = repo / "contracts" / "storefront.yaml"
    path.write_text(path.read_text().replace("desired_count: 1", "desired_count: 2"))
    assert run(repo) == ["storefront"]


def test_component_code_maps_to_its_kind(repo: Path) -> None:
    (repo / "components" / "network.py").write_text("# network, changed\n")
    assert run(repo) == ["network", "payments", "orders", "fulfilment", "storefront"]


def test_handler_change_maps_to_its_kind(repo: Path) -> None:
    (repo / "components" / "handlers" / "serverless_api" / "app.py").write_text("# changed\n")
    changed = affected(load_library(repo / "contracts"), "main", "dev").changed
    assert set(changed) == {"catalog", "orders"}


def test_shared_code_touches_every_context(repo: Path) -> None:
    (repo / "components" / "common.py").write_text("# shared, changed\n")
    library = load_library(repo / "contracts")
    assert set(run(repo)) == {n for n, c in library.contexts.items() if c.deployed_in("dev")}


def test_new_context_file_counts(repo: Path) -> None:
    (repo / "contracts" / "search.yaml").write_text(
        "context: search\nowner: team-search\nversion: 1.0.0\ncomponent: data-store\n"
        "provides:\n  index: {kind: bucket, version: 1.0.0}\n"
        "consumes:\n  - {context: catalog, interface: product-images, access: read}\n")
    assert run(repo) == ["search"]


def test_unknown_ref_is_named(repo: Path) -> None:
    with pytest.raises(UsageError, match="does not know the ref 'nope'"):
        affected(load_library(repo / "contracts"), "nope", "dev")


def test_code_mapping() -> None:
    kinds = {"serverless-api", "network"}
    assert kinds_of_code("components/serverless_api.py", kinds) == {"serverless-api"}
    assert kinds_of_code("components/common.py", kinds) == kinds
    assert kinds_of_code("README.md", kinds) is None
    assert kinds_of_code("components/README.md", kinds) == set()
