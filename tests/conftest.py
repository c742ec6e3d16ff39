"""Shared fixtures: contract libraries written into temporary directories."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "contracts"

ENVIRONMENTS: dict[str, Any] = {
    "project": "test",
    "environments": {
        "dev": {"account": "111111111111", "region": "us-east-1"},
        "prod": {"account": "333333333333", "region": "eu-west-1", "protected": True},
    },
    "ephemeral": {"base": "dev", "ttl": "8h", "max_ttl": "72h", "reuse": []},
}


def context(name: str, component: str = "data-store", provides: dict[str, Any] | None = None,
            consumes: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """A minimal valid contract for ``name``."""
    doc: dict[str, Any] = {"context": name, "owner": "team", "version": "1.0.0", "component": component}
    doc["provides"] = provides if provides is not None else {"t": {"kind": "table", "version": "1.0.0"}}
    if consumes:
        doc["consumes"] = consumes
    doc.update(extra)
    return doc


def write_library(root: Path, contexts: list[dict[str, Any]], environments: dict[str, Any] | None = None,
                  raw: dict[str, str] | None = None) -> Path:
    """Write a library: one YAML file per context (named after it), environments.yaml, and raw files as given."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "environments.yaml").write_text(yaml.safe_dump(environments or ENVIRONMENTS, sort_keys=False))
    for doc in contexts:
        (root / f"{doc['context']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for name, text in (raw or {}).items():
        (root / name).write_text(text)
    return root


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with the most ``slow`` tests first, then the larger files: the parallel workers (``--dist
    loadfile`` without reordering, in ``pyproject.toml``) take whole files in this order, so that no long file starts
    last and runs on alone while the other workers are done. A file's tests keep their order."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    size = Counter(item.path for item in items)
    items.sort(key=lambda item: (-slow[item.path], -size[item.path]))  # stable: files stay whole


#: What a developer's shell or a CI runner may set that changes what ode does; the tests that mean it set it.
AMBIENT = ("CI", "NO_COLOR", "FORCE_COLOR", "TERM", "ODE_ENV", "ODE_ENGINE", "ODE_REGISTRY", "ODE_STATE_DIR",
           "ODE_PARALLEL", "ODE_SIMULATE_PROGRAMS")


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite behaves the same on a laptop and on a CI runner: under ``CI=true`` ode refuses to fall back to the
    simulated engine, a runner's ``GITHUB_*`` variables name a pull request, and a shell's ``ODE_ENV`` or
    ``NO_COLOR`` changes what commands print, so none of them reaches a test (or the ``ode`` it runs) unless the
    test sets it."""
    for name in [n for n in os.environ if n in AMBIENT or n.startswith(("GITHUB_", "CI_"))]:
        monkeypatch.delenv(name)


@pytest.fixture
def sample_library(tmp_path: Path) -> Path:
    """A copy of the sample shop library that a test may change."""
    dest = tmp_path / "contracts"
    shutil.copytree(SAMPLE, dest)
    return dest


def git(repo: Path, *args: str) -> None:
    """``git ARGS`` in ``repo`` as a fixed author, bounded in time."""
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=dev@example.com", "-c", "user.name=dev", *args],
                   check=True, capture_output=True, timeout=60)


def committed_sample(root: Path, prepare: Callable[[Path], None] | None = None) -> Path:
    """A git repository at ``root`` holding a copy of the sample library under ``contracts/`` (changed by
    ``prepare(root)`` first), committed once; the test is skipped where git is not installed."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    shutil.copytree(SAMPLE, root / "contracts")
    if prepare is not None:
        prepare(root)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "library")
    return root
